package mongo_test

import (
	"bytes"
	"errors"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"blog/internal/changes"
	"blog/internal/comment"
	"blog/internal/mongowire"
	"blog/internal/page"
	"blog/internal/post"
	"blog/internal/store/mongo"
	"blog/internal/store/mongo/mongotest"
)

// Tests of what an operator reaches beyond the consumer: repairing one post
// and reading dead letters. The contract suite checks their outcome; these
// check what it cannot see (what is stored, what is left alone).

func repairer(t *testing.T, db *mongo.DB) post.Repairer {
	t.Helper()
	rp, ok := db.Posts().(post.Repairer)
	if !ok {
		t.Fatal("the posts store is not a post.Repairer")
	}
	return rp
}

// TestRebuildPostUnknown checks an unknown or impossible post id is
// post.ErrNotFound and writes nothing, even when comments of that (deleted)
// post are still stored.
func TestRebuildPostUnknown(t *testing.T) {
	db, b := mongotest.OpenEnv(t, mongowire.Options{}, mongo.Options{})
	p := newPost(t, db, "doomed", at(0))
	newComment(t, db, p.ID, "orphan to be", at(1))
	if err := db.Posts().Delete(ctxFor(t), p.ID); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{p.ID, bson.NewObjectID().Hex(), "not-an-id"} {
		if err := repairer(t, db).RebuildPost(ctxFor(t), id); !errors.Is(err, post.ErrNotFound) {
			t.Errorf("rebuild post %q: %v, want post.ErrNotFound", id, err)
		}
	}
	for _, coll := range []string{"posts", "post_comments"} {
		if n, err := b.Database().Collection(coll).CountDocuments(ctxFor(t), bson.M{}); err != nil || n != 0 {
			t.Errorf("%s holds %d documents (%v) after rebuilding unknown posts, want 0", coll, n, err)
		}
	}
}

// TestRebuildPostSkipsUnreadable checks a comment written by hand in a shape
// the service cannot read does not stop a post's repair, which embeds and
// counts the readable ones.
func TestRebuildPostSkipsUnreadable(t *testing.T) {
	db, b := mongotest.OpenEnv(t, mongowire.Options{}, mongo.Options{})
	p := newPost(t, db, "p", at(0))
	newComment(t, db, p.ID, "fine", at(1))
	insertBadComment(t, b, p.ID)
	if err := repairer(t, db).RebuildPost(ctxFor(t), p.ID); err != nil {
		t.Fatalf("rebuild post: %v", err)
	}
	wantPost(t, db, p.ID, 1, "fine")
}

// TestDeadLetters checks what a parked event records: the decoded document
// of one the sink refused, the raw document as written of one that could
// not be decoded, oldest first, and a second parking of the same event
// updates its record in place.
func TestDeadLetters(t *testing.T) {
	db := mongotest.Open(t, mongo.Options{})
	ctx := ctxFor(t)
	h := head(t, db.CommentFeed())
	p := newPost(t, db, "p", at(0))
	bad := mongotest.InjectMalformedComment(t, db, p.ID)
	good := newComment(t, db, p.ID, "good", at(1))
	evs := read(t, db.CommentFeed(), h, 2).Events
	if evs[0].Key != bad || evs[0].Err == nil || evs[1].Key != good.ID || evs[1].Err != nil {
		t.Fatalf("events %v, want the malformed comment's (with an error) then the good one's", evs)
	}

	// The injected comment belongs to no post's listing.
	cs, err := db.Comments().ListByPost(ctx, p.ID, page.Query{})
	if err != nil || len(cs) != 1 || cs[0].ID != good.ID {
		t.Fatalf("comments of the post: %v (%v), want only %s", cs, err, good.ID)
	}

	dl := db.Posts().(changes.DeadLetterer[comment.Comment])
	park := func(ev changes.Event[comment.Comment], reason string) {
		t.Helper()
		if err := dl.DeadLetter(ctx, "c", ev, reason, 0); err != nil {
			t.Fatalf("park %s: %v", ev.Key, err)
		}
	}
	park(evs[1], "refused")
	park(evs[0], "undecodable")
	first, err := db.DeadLetters(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	park(evs[1], "refused again") // a replay after a crash
	got, err := db.DeadLetters(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Key != good.ID || got[1].Key != bad {
		t.Fatalf("dead letters %+v, want %s then %s", got, good.ID, bad)
	}

	g := got[0]
	if g.Consumer != "c" || g.Op != changes.Insert || g.Reason != "refused again" ||
		!bytes.Equal(g.Token, evs[1].Token) || !g.At.Equal(first[0].At) || g.ID != first[0].ID {
		t.Errorf("re-parked dead letter %+v, want consumer c, insert, the new reason, its token, its first At %s and ID %s",
			g, first[0].At, first[0].ID)
	}
	if pid, ok := bson.Raw(g.Doc).Lookup("postId").ObjectIDOK(); !ok || pid.Hex() != p.ID || bson.Raw(g.Doc).Lookup("text").StringValue() != "good" {
		t.Errorf("refused comment's document %s, want its postId as an ObjectID and its text", g.Doc)
	}

	m := got[1]
	if pid, ok := bson.Raw(m.Doc).Lookup("postId").Int32OK(); !ok || pid != 123 || m.Reason != "undecodable" {
		t.Errorf("malformed comment's dead letter %+v, want its document as written (postId 123)", m)
	}
	if tok := checkpoint(t, db, "c"); !bytes.Equal(tok, evs[1].Token) {
		t.Errorf("checkpoint %q, want the last parked event's token", tok)
	}
	if other, err := db.DeadLetters(ctx, "other"); err != nil || len(other) != 0 {
		t.Errorf("another consumer's dead letters %+v (%v), want none", other, err)
	}
}
