package mongo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"blog/internal/changes"
	"blog/internal/comment"
	"blog/internal/mongowire"
	"blog/internal/page"
	"blog/internal/post"
	"blog/internal/store/mongo"
	"blog/internal/store/mongo/mongotest"
)

// These tests cover what the shared contract suite cannot see: the stored
// document shapes, indexes, the transaction around Apply, lost history,
// dropped collections, undecodable documents, batch bounds and the consumer
// loop end to end. They run through the v2 driver over TCP against the wire
// server (mongowire), or against TEST_MONGO_URI; the few that need the wire
// server's knobs (a tiny oplog, its command observer) skip on a real one.

func ctxFor(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func at(sec int) time.Time {
	return time.Date(2024, 10, 22, 12, 0, sec, 0, time.UTC)
}

func newPost(t *testing.T, db *mongo.DB, title string, created time.Time) post.Post {
	t.Helper()
	p := post.Post{ID: bson.NewObjectID().Hex(), Title: title, Content: "about " + title, Comments: []post.Comment{}, CreatedAt: created}
	if err := db.Posts().Create(ctxFor(t), p); err != nil {
		t.Fatalf("create post: %v", err)
	}
	return p
}

func newComment(t *testing.T, db *mongo.DB, postID, text string, created time.Time) comment.Comment {
	t.Helper()
	c := comment.Comment{ID: bson.NewObjectID().Hex(), PostID: postID, Text: text, CreatedAt: created}
	if err := db.Comments().Create(ctxFor(t), c); err != nil {
		t.Fatalf("create comment: %v", err)
	}
	return c
}

func head[T any](t *testing.T, f changes.Feed[T]) changes.Token {
	t.Helper()
	tok, err := f.Head(ctxFor(t))
	if err != nil {
		t.Fatalf("head: %v", err)
	}
	return tok
}

// read collects at least n events from a stream opened after tok.
func read[T any](t *testing.T, f changes.Feed[T], tok changes.Token, n int) changes.Batch[T] {
	t.Helper()
	st, err := f.Open(ctxFor(t), tok)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer st.Close(context.Background())
	var all changes.Batch[T]
	for len(all.Events) < n {
		b, err := st.Next(ctxFor(t))
		if err != nil {
			t.Fatalf("next after %d events: %v", len(all.Events), err)
		}
		all.Events = append(all.Events, b.Events...)
		all.Token = b.Token
	}
	return all
}

func raw(t *testing.T, b *mongotest.Env, coll string, id string) bson.M {
	t.Helper()
	oid, err := bson.ObjectIDFromHex(id)
	if err != nil {
		t.Fatal(err)
	}
	var doc bson.M
	if err := b.Database().Collection(coll).FindOne(ctxFor(t), bson.M{"_id": oid}).Decode(&doc); err != nil {
		t.Fatalf("raw find %s in %s: %v", id, coll, err)
	}
	return doc
}

// TestDocumentShape checks documents are stored the way the seed's mongoose
// models store them, so an existing seed database reads and writes the same.
func TestDocumentShape(t *testing.T) {
	db, b := mongotest.OpenEnv(t, mongowire.Options{}, mongo.Options{EmbedLimit: 2})
	p := newPost(t, db, "shape", at(0).Add(123456789*time.Nanosecond))
	c := newComment(t, db, p.ID, "hi", at(1))

	pd := raw(t, b, "posts", p.ID)
	if _, ok := pd["_id"].(bson.ObjectID); !ok {
		t.Errorf("post _id is %T, want ObjectId", pd["_id"])
	}
	if got, ok := pd["createdAt"].(bson.DateTime); !ok || got.Time().UTC() != at(0).Add(123*time.Millisecond) {
		t.Errorf("post createdAt = %#v, want Date %s (milliseconds)", pd["createdAt"], at(0).Add(123*time.Millisecond))
	}
	if cs, ok := pd["comments"].(bson.A); !ok || len(cs) != 0 {
		t.Errorf("post comments = %#v, want []", pd["comments"])
	}
	for _, k := range []string{"title", "content", "commentCount"} {
		if _, ok := pd[k]; !ok {
			t.Errorf("post has no %s: %v", k, pd)
		}
	}
	if _, ok := pd["updatedAt"]; ok {
		t.Errorf("new post has updatedAt: %v", pd)
	}

	cd := raw(t, b, "comments", c.ID)
	if pid, ok := cd["postId"].(bson.ObjectID); !ok || pid.Hex() != p.ID {
		t.Errorf("comment postId = %#v, want ObjectId(%s)", cd["postId"], p.ID)
	}
	if _, ok := cd["createdAt"].(bson.DateTime); !ok {
		t.Errorf("comment createdAt is %T, want Date", cd["createdAt"])
	}

	got, err := db.Posts().Get(ctxFor(t), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.CreatedAt.Equal(at(0).Add(123*time.Millisecond)) || got.CreatedAt.Location() != time.UTC {
		t.Errorf("read back createdAt %v, want UTC milliseconds", got.CreatedAt)
	}
}

// TestSeedDocuments reads documents written by the seed (mongoose: __v,
// no commentCount, embedded comments without updatedAt) and applies to them.
func TestSeedDocuments(t *testing.T) {
	db, b := mongotest.OpenEnv(t, mongowire.Options{}, mongo.Options{})
	h := head(t, db.CommentFeed())
	pid := bson.NewObjectID()
	old := bson.NewObjectID()
	seed := bson.M{
		"_id": pid, "title": "from the seed", "content": "x", "__v": 0,
		"createdAt": bson.NewDateTimeFromTime(at(0)),
		"comments":  bson.A{bson.M{"_id": old, "text": "old", "createdAt": bson.NewDateTimeFromTime(at(1))}},
	}
	if _, err := b.Database().Collection("posts").InsertOne(ctxFor(t), seed); err != nil {
		t.Fatal(err)
	}
	c := newComment(t, db, pid.Hex(), "new", at(2))
	if err := db.Posts().Apply(ctxFor(t), "test", read(t, db.CommentFeed(), h, 1)); err != nil {
		t.Fatalf("apply: %v", err)
	}
	got, err := db.Posts().Get(ctxFor(t), pid.Hex())
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, e := range got.Comments {
		ids = append(ids, e.ID)
	}
	if !slices.Equal(ids, []string{old.Hex(), c.ID}) || got.CommentCount != 1 {
		t.Errorf("seed post after a comment: comments %v count %d; want [%s %s], 1 (the count starts where the seed left none)",
			ids, got.CommentCount, old.Hex(), c.ID)
	}
}

// TestIndexes checks Open creates the indexes the queries rely on, and that
// opening again (every start-up does) is harmless.
func TestIndexes(t *testing.T) {
	_, b := mongotest.OpenEnv(t, mongowire.Options{}, mongo.Options{})
	again, err := mongo.Open(ctxFor(t), b.URI, mongo.Options{})
	if err != nil {
		t.Fatalf("second Open on the same database: %v", err)
	}
	_ = again.Close(ctxFor(t))
	for coll, want := range map[string]string{
		"posts":         "createdAt_-1__id_-1",
		"comments":      "postId_1_createdAt_1__id_1",
		"post_comments": "postId_1_createdAt_1__id_1",
		"dead_letters":  "consumer_1_parkedAt_1_seq_1",
	} {
		cur, err := b.Database().Collection(coll).Indexes().List(ctxFor(t))
		if err != nil {
			t.Fatalf("list indexes of %s: %v", coll, err)
		}
		var specs []bson.M
		if err := cur.All(ctxFor(t), &specs); err != nil {
			t.Fatalf("read indexes of %s: %v", coll, err)
		}
		var names []string
		for _, s := range specs {
			names = append(names, fmt.Sprint(s["name"]))
		}
		if !slices.Contains(names, want) {
			t.Errorf("%s indexes %v, want %s", coll, names, want)
		}
	}
}

// TestBadIDs checks ids that cannot be ObjectIDs are "not found", never a
// 500: they come straight from URLs.
func TestBadIDs(t *testing.T) {
	db := mongotest.Open(t, mongo.Options{})
	ctx := ctxFor(t)
	if _, err := db.Posts().Get(ctx, "nope"); !errors.Is(err, post.ErrNotFound) {
		t.Errorf("get post nope: %v", err)
	}
	if _, err := db.Posts().Update(ctx, "nope", post.Patch{}, at(0)); !errors.Is(err, post.ErrNotFound) {
		t.Errorf("update post nope: %v", err)
	}
	if err := db.Posts().Delete(ctx, "nope"); !errors.Is(err, post.ErrNotFound) {
		t.Errorf("delete post nope: %v", err)
	}
	if _, err := db.Comments().Get(ctx, "nope"); !errors.Is(err, comment.ErrNotFound) {
		t.Errorf("get comment nope: %v", err)
	}
	c := comment.Comment{ID: bson.NewObjectID().Hex(), PostID: "nope", Text: "x", CreatedAt: at(0)}
	if err := db.Comments().Create(ctx, c); !errors.Is(err, comment.ErrPostNotFound) {
		t.Errorf("create comment on post nope: %v", err)
	}
	if got, err := db.Comments().ListByPost(ctx, "nope", page.Query{}); err != nil || len(got) != 0 {
		t.Errorf("list comments of nope = %v, %v", got, err)
	}
	if n, err := db.Comments().DeleteByPost(ctx, "nope"); err != nil || n != 0 {
		t.Errorf("delete comments of nope = %d, %v", n, err)
	}
	bad := &page.Cursor{At: at(0), ID: "nope"}
	if _, err := db.Posts().List(ctx, page.Query{Limit: 1, After: bad}); !errors.Is(err, page.ErrBadCursor) {
		t.Errorf("list posts after bad cursor: %v", err)
	}
}

// TestDefaultPageSize checks an unset limit means page.DefaultLimit.
func TestDefaultPageSize(t *testing.T) {
	db := mongotest.Open(t, mongo.Options{})
	p := newPost(t, db, "p", at(0))
	for i := range page.DefaultLimit + 1 {
		newComment(t, db, p.ID, fmt.Sprint(i), at(i))
	}
	got, err := db.Comments().ListByPost(ctxFor(t), p.ID, page.Query{})
	if err != nil || len(got) != page.DefaultLimit {
		t.Errorf("list with no limit = %d comments, %v; want %d", len(got), err, page.DefaultLimit)
	}
}

// TestApplyIsOneTransaction makes the second event of a batch fail and
// checks the first event's effects and the checkpoint are rolled back with
// it: a crash or error mid-batch leaves nothing half-applied.
func TestApplyIsOneTransaction(t *testing.T) {
	db, b := mongotest.OpenEnv(t, mongowire.Options{}, mongo.Options{})
	posts := db.Posts()
	h := head(t, db.CommentFeed())
	p1 := newPost(t, db, "p1", at(0))
	p2 := newPost(t, db, "p2", at(0))
	c1 := newComment(t, db, p1.ID, "c1", at(1))
	newComment(t, db, p2.ID, "c2", at(2))
	batch := read(t, db.CommentFeed(), h, 2)

	// A post document this service cannot decode makes the second event
	// fail after the first has been applied inside the transaction.
	p2id, _ := bson.ObjectIDFromHex(p2.ID)
	posts2 := b.Database().Collection("posts")
	if _, err := posts2.UpdateOne(ctxFor(t), bson.M{"_id": p2id}, bson.M{"$set": bson.M{"commentCount": "many"}}); err != nil {
		t.Fatal(err)
	}
	if err := posts.Apply(ctxFor(t), "test", batch); err == nil {
		t.Fatal("apply over a corrupt post succeeded")
	}
	got, err := posts.Get(ctxFor(t), p1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Comments) != 0 || got.CommentCount != 0 {
		t.Errorf("failed batch left p1 with comments %v, count %d", got.Comments, got.CommentCount)
	}
	if n, err := b.Database().Collection("post_comments").CountDocuments(ctxFor(t), bson.M{}); err != nil || n != 0 {
		t.Errorf("failed batch left %d post_comments (%v)", n, err)
	}
	if tok, err := posts.Checkpoint(ctxFor(t), "test"); err != nil || tok != nil {
		t.Errorf("failed batch saved checkpoint %x (%v)", tok, err)
	}

	// Repaired, the same batch applies whole.
	if _, err := posts2.UpdateOne(ctxFor(t), bson.M{"_id": p2id}, bson.M{"$set": bson.M{"commentCount": 0}}); err != nil {
		t.Fatal(err)
	}
	if err := posts.Apply(ctxFor(t), "test", batch); err != nil {
		t.Fatalf("apply after repair: %v", err)
	}
	got, err = posts.Get(ctxFor(t), p1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Comments) != 1 || got.Comments[0].ID != c1.ID || got.CommentCount != 1 {
		t.Errorf("p1 after repair: comments %v, count %d", got.Comments, got.CommentCount)
	}
	if tok, err := posts.Checkpoint(ctxFor(t), "test"); err != nil || !bytes.Equal(tok, batch.Token) {
		t.Errorf("checkpoint after repair %x, %v; want %x", tok, err, batch.Token)
	}
}

// TestEventFields checks what a feed event carries beyond the contract's
// checks: key and commit time, and a batch token that resumes after it.
func TestEventFields(t *testing.T) {
	db := mongotest.Open(t, mongo.Options{})
	h := head(t, db.CommentFeed())
	before := time.Now().Add(-time.Second)
	p := newPost(t, db, "p", at(0))
	c := newComment(t, db, p.ID, "c", at(1))
	b := read(t, db.CommentFeed(), h, 1)
	ev := b.Events[0]
	if ev.Op != changes.Insert || ev.Key != c.ID || !ev.Found || ev.Doc.PostID != p.ID {
		t.Errorf("event %+v, want insert of %s on %s", ev, c.ID, p.ID)
	}
	// The wire server's cluster time has one-second resolution and no
	// wallTime.
	if ev.At.Before(before.Truncate(time.Second)) || ev.At.After(time.Now()) || ev.At.Location() != time.UTC {
		t.Errorf("event time %v, want about now, UTC", ev.At)
	}
	if len(b.Token) == 0 {
		t.Errorf("batch has no token")
	}
}

// TestBatchBound checks a backlog is delivered in batches of at most 500
// events, so one Apply transaction stays small.
func TestBatchBound(t *testing.T) {
	db := mongotest.Open(t, mongo.Options{})
	f := db.CommentFeed()
	h := head(t, f)
	p := newPost(t, db, "p", at(0))
	const n = 520
	for i := range n {
		newComment(t, db, p.ID, fmt.Sprint(i), at(i))
	}
	st, err := f.Open(ctxFor(t), h)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(context.Background())
	var sizes []int
	for total := 0; total < n; {
		b, err := st.Next(ctxFor(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Events) > 500 {
			t.Fatalf("batch of %d events", len(b.Events))
		}
		sizes = append(sizes, len(b.Events))
		total += len(b.Events)
	}
	if sizes[0] != 500 {
		t.Errorf("batch sizes %v, want the backlog drained 500 at a time", sizes)
	}
}

// TestHistoryLost shrinks the wire server's oplog to one entry and checks a token
// that has rolled off it is reported as changes.ErrHistoryLost, both when a
// stream is opened there and when a running stream falls behind.
func TestHistoryLost(t *testing.T) {
	t.Parallel()
	tiny := mongowire.Options{OplogMinSize: 1, OplogMaxSize: 1, OplogMinAge: time.Nanosecond}
	db, env := mongotest.OpenEnv(t, tiny, mongo.Options{})
	if env.Real() {
		t.Skip("needs the wire server's tiny oplog")
	}
	f := db.CommentFeed()
	h := head(t, f)
	behind, err := f.Open(ctxFor(t), h)
	if err != nil {
		t.Fatalf("open at head: %v", err)
	}
	defer behind.Close(context.Background())

	// The wire server (lungo) trims entries older than its minimum age,
	// measured in whole seconds; wait for the next second so everything so far is older.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 20*time.Millisecond)))
	p := newPost(t, db, "p", at(0))
	newComment(t, db, p.ID, "c", at(1))

	if _, err := f.Open(ctxFor(t), h); !errors.Is(err, changes.ErrHistoryLost) {
		t.Errorf("open at a trimmed token: %v, want ErrHistoryLost", err)
	}
	if _, err := behind.Next(ctxFor(t)); !errors.Is(err, changes.ErrHistoryLost) {
		t.Errorf("next on a stream whose position was trimmed: %v, want ErrHistoryLost", err)
	}
}

// TestDroppedCollection checks a drop of the watched collection ends the
// stream with ErrHistoryLost (the documents went without delete events, so
// the read model must be rebuilt), after delivering what came before it.
func TestDroppedCollection(t *testing.T) {
	db, b := mongotest.OpenEnv(t, mongowire.Options{}, mongo.Options{})
	f := db.CommentFeed()
	st, err := f.Open(ctxFor(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(context.Background())
	p := newPost(t, db, "p", at(0))
	c := newComment(t, db, p.ID, "c", at(1))
	if err := b.Database().Collection("comments").Drop(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for {
		batch, err := st.Next(ctxFor(t))
		if err != nil {
			if !errors.Is(err, changes.ErrHistoryLost) {
				t.Errorf("stream ended with %v, want ErrHistoryLost", err)
			}
			break
		}
		for _, e := range batch.Events {
			keys = append(keys, e.Key)
		}
	}
	if !slices.Equal(keys, []string{c.ID}) {
		t.Errorf("events before the drop %v, want [%s]", keys, c.ID)
	}
}

// TestUndecodableDocument checks comments written by hand in a shape this
// service cannot read (a numeric text, a string _id) are delivered with
// Event.Err set (the consumer parks them), without holding up the events
// after them.
func TestUndecodableDocument(t *testing.T) {
	db, b := mongotest.OpenEnv(t, mongowire.Options{}, mongo.Options{})
	h := head(t, db.CommentFeed())
	p := newPost(t, db, "p", at(0))
	bad := insertBadComment(t, b, p.ID)
	pid, _ := bson.ObjectIDFromHex(p.ID)
	handMade := bson.M{"_id": "hand-made", "postId": pid, "text": "x", "createdAt": bson.NewDateTimeFromTime(at(0))}
	if _, err := b.Database().Collection("comments").InsertOne(ctxFor(t), handMade); err != nil {
		t.Fatal(err)
	}
	good := newComment(t, db, p.ID, "fine", at(1))
	batch := read(t, db.CommentFeed(), h, 3)
	if e := batch.Events[0]; e.Key != bad || e.Found || e.Err == nil || !strings.Contains(e.Err.Error(), bad) {
		t.Errorf("bad document event %+v, want key %s, not found, an error naming it", e, bad)
	}
	if e := batch.Events[1]; !strings.Contains(e.Key, "hand-made") || e.Err == nil {
		t.Errorf("string _id event %+v, want its key and an error", e)
	}
	if e := batch.Events[2]; e.Key != good.ID || !e.Found || e.Err != nil {
		t.Errorf("next event %+v, want %s found", e, good.ID)
	}
	if err := db.Posts().Apply(ctxFor(t), "test", batch); err == nil {
		t.Errorf("apply of a batch with an undecodable event succeeded")
	}
}

// insertBadComment stores a comment whose text is a number, which the
// service cannot decode, and returns its id.
func insertBadComment(t *testing.T, b *mongotest.Env, postID string) string {
	t.Helper()
	pid, _ := bson.ObjectIDFromHex(postID)
	bad := bson.NewObjectID()
	doc := bson.M{"_id": bad, "postId": pid, "text": 42, "createdAt": bson.NewDateTimeFromTime(at(0))}
	if _, err := b.Database().Collection("comments").InsertOne(ctxFor(t), doc); err != nil {
		t.Fatal(err)
	}
	return bad.Hex()
}

// TestCommentSync runs the posts service's real consumer over this adapter:
// the seed's screenshot (a new comment shows up in its post), then a
// restart that resumes from the saved checkpoint without losing the comment
// written while it was down.
func TestCommentSync(t *testing.T) {
	db := mongotest.Open(t, mongo.Options{EmbedLimit: 2})
	run := func() (stop func()) {
		sync := post.NewCommentSync(db.Posts(), db.CommentFeed(), nil)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = sync.Run(ctx)
		}()
		waitFor(t, "consumer running", sync.Running)
		return func() { cancel(); <-done }
	}
	embedded := func(id string, n int) func() bool {
		return func() bool {
			p, err := db.Posts().Get(ctxFor(t), id)
			return err == nil && p.CommentCount == n && len(p.Comments) == min(n, 2)
		}
	}

	stop := run()
	p := newPost(t, db, "p", at(0))
	newComment(t, db, p.ID, "first", at(1))
	waitFor(t, "first comment embedded", embedded(p.ID, 1))
	stop()

	newComment(t, db, p.ID, "while down", at(2))
	newComment(t, db, p.ID, "also while down", at(3))
	stop = run()
	defer stop()
	waitFor(t, "comments written while down embedded", embedded(p.ID, 3))
	got, err := db.Posts().Get(ctxFor(t), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Comments[0].Text != "while down" || got.Comments[1].Text != "also while down" {
		t.Errorf("embedded %+v, want the two latest, oldest first", got.Comments)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestListsSkipUnreadable checks a post written by hand with a badly typed
// field is skipped by the posts list instead of failing every page that
// holds it, and the page is topped up from the posts after it (a short
// page ends a client's paging), whatever the page size; and that a comment
// with a string _id on a good post does not break its listing either.
func TestListsSkipUnreadable(t *testing.T) {
	db, b := mongotest.OpenEnv(t, mongowire.Options{}, mongo.Options{})
	var want []string // newest first
	for i := 5; i >= 0; i-- {
		if i == 3 {
			bad := bson.M{"_id": bson.NewObjectID(), "title": 42, "content": "x", "comments": bson.A{},
				"createdAt": bson.NewDateTimeFromTime(at(i))}
			if _, err := b.Database().Collection("posts").InsertOne(ctxFor(t), bad); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want = append(want, newPost(t, db, fmt.Sprint("p", i), at(i)).ID)
	}
	for _, size := range []int{1, 2, 3, 10} {
		var got []string
		q := page.Query{Limit: size}
		for range 10 {
			ps, err := db.Posts().List(ctxFor(t), q)
			if err != nil {
				t.Fatalf("pages of %d: %v", size, err)
			}
			for _, p := range ps {
				got = append(got, p.ID)
			}
			if len(ps) < size {
				break
			}
			c := ps[len(ps)-1].Cursor()
			q.After = &c
		}
		if !slices.Equal(got, want) {
			t.Errorf("pages of %d: %v, want %v", size, got, want)
		}
	}

	pid, _ := bson.ObjectIDFromHex(want[0])
	handMade := bson.M{"_id": "hand-made", "postId": pid, "text": "x", "createdAt": bson.NewDateTimeFromTime(at(1))}
	if _, err := b.Database().Collection("comments").InsertOne(ctxFor(t), handMade); err != nil {
		t.Fatal(err)
	}
	good := newComment(t, db, want[0], "good", at(2))
	if cs, err := db.Comments().ListByPost(ctxFor(t), want[0], page.Query{Limit: 1}); err != nil || len(cs) != 1 || cs[0].ID != good.ID {
		t.Errorf("comments %v, %v; want %s", cs, err, good.ID)
	}
	// DeleteByPost deletes it with the rest, whatever its _id.
	if n, err := db.Comments().DeleteByPost(ctxFor(t), want[0]); err != nil || n != 2 {
		t.Errorf("delete by post = %d, %v; want 2", n, err)
	}
}
