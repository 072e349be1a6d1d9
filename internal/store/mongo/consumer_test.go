package mongo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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

// Tests of the consumer-facing extras the adapter offers beyond the Sink:
// leases and fencing, dead letters, and rebuilding after lost history.

func rebuilder(t *testing.T, db *mongo.DB) changes.Rebuilder {
	t.Helper()
	rb, ok := db.Posts().(changes.Rebuilder)
	if !ok {
		t.Fatal("the posts store is not a changes.Rebuilder")
	}
	return rb
}

func checkpoint(t *testing.T, db *mongo.DB, name string) changes.Token {
	t.Helper()
	tok, err := db.Posts().Checkpoint(ctxFor(t), name)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func wantPost(t *testing.T, db *mongo.DB, id string, count int, texts ...string) {
	t.Helper()
	p, err := db.Posts().Get(ctxFor(t), id)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range p.Comments {
		got = append(got, c.Text)
	}
	if p.CommentCount != count || fmt.Sprint(got) != fmt.Sprint(texts) {
		t.Errorf("post %s: comments %q, count %d; want %q, %d", id, got, p.CommentCount, texts, count)
	}
}

func TestLease(t *testing.T) {
	db := mongotest.Open(t, mongo.Options{})
	l := db.Leases()
	ctx := ctxFor(t)
	acquire := func(name, holder string, ttl time.Duration, wantFence int64, wantHeld bool) {
		t.Helper()
		f, held, err := l.Acquire(ctx, name, holder, ttl)
		if err != nil || held != wantHeld || (held && f != wantFence) {
			t.Errorf("Acquire(%s, %s) = %d, %v, %v; want %d, %v", name, holder, f, held, err, wantFence, wantHeld)
		}
	}
	acquire("c", "a", time.Hour, 1, true)
	acquire("c", "b", time.Hour, 0, false)
	acquire("c", "a", time.Hour, 1, true) // renewal keeps the fence
	if err := l.Release(ctx, "c", "b"); err != nil {
		t.Fatal(err)
	}
	acquire("c", "b", time.Hour, 0, false) // not b's to release
	if err := l.Release(ctx, "c", "a"); err != nil {
		t.Fatal(err)
	}
	acquire("c", "b", time.Hour, 2, true) // changed hands: new fence
	acquire("c", "a", time.Hour, 0, false)

	acquire("d", "a", time.Millisecond, 1, true)
	time.Sleep(10 * time.Millisecond)
	acquire("d", "b", time.Hour, 2, true) // expired: taken over
}

// TestFencing checks every write a consumer makes under a lease is refused
// once the lease has passed to another replica, and changes nothing.
func TestFencing(t *testing.T) {
	db := mongotest.Open(t, mongo.Options{})
	const name = post.CommentsConsumer
	ctx := ctxFor(t)
	old, _, err := db.Leases().Acquire(ctx, name, "old", time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	h := head(t, db.CommentFeed())
	p := newPost(t, db, "p", at(0))
	newComment(t, db, p.ID, "c", at(1))
	b := read(t, db.CommentFeed(), h, 1)
	time.Sleep(5 * time.Millisecond)
	current, held, err := db.Leases().Acquire(ctx, name, "new", time.Hour)
	if err != nil || !held || current == old {
		t.Fatalf("takeover: fence %d, held %v, %v", current, held, err)
	}

	stale := b
	stale.Fence = old
	if err := db.Posts().Apply(ctx, name, stale); !errors.Is(err, changes.ErrFenced) {
		t.Errorf("apply under a stale fence: %v, want ErrFenced", err)
	}
	if err := rebuilder(t, db).Rebuild(ctx, name, b.Token, old); !errors.Is(err, changes.ErrFenced) {
		t.Errorf("rebuild under a stale fence: %v, want ErrFenced", err)
	}
	dl := db.Posts().(changes.DeadLetterer[comment.Comment])
	if err := dl.DeadLetter(ctx, name, b.Events[0], "test", old); !errors.Is(err, changes.ErrFenced) {
		t.Errorf("dead letter under a stale fence: %v, want ErrFenced", err)
	}
	wantPost(t, db, p.ID, 0)
	if tok := checkpoint(t, db, name); tok != nil {
		t.Errorf("fenced writes saved checkpoint %x", tok)
	}

	b.Fence = current
	if err := db.Posts().Apply(ctx, name, b); err != nil {
		t.Fatalf("apply under the current fence: %v", err)
	}
	wantPost(t, db, p.ID, 1, "c")
}

// TestReplicasTakeTurns runs two replicas of the comment sync with a lease:
// one leads, the other stands by, and every comment is counted once.
func TestReplicasTakeTurns(t *testing.T) {
	db := mongotest.Open(t, mongo.Options{})
	var syncs []*changes.Consumer[comment.Comment]
	for _, holder := range []string{"replica-1", "replica-2"} {
		s := post.NewCommentSync(db.Posts(), db.CommentFeed(), nil)
		s.Lease, s.Holder, s.LeaseTTL = db.Leases(), holder, 300*time.Millisecond
		syncs = append(syncs, s)
		start(t, s)
	}
	waitFor(t, "a leader", func() bool { return syncs[0].Stats().Leader || syncs[1].Stats().Leader })
	p := newPost(t, db, "p", at(0))
	for i := range 5 {
		newComment(t, db, p.ID, fmt.Sprint(i), at(i))
	}
	waitFor(t, "five comments counted", func() bool {
		got, err := db.Posts().Get(ctxFor(t), p.ID)
		return err == nil && got.CommentCount == 5
	})
	if syncs[0].Stats().Leader == syncs[1].Stats().Leader {
		t.Errorf("leaders: %v, %v; want exactly one", syncs[0].Stats().Leader, syncs[1].Stats().Leader)
	}
	wantPost(t, db, p.ID, 5, "0", "1", "2", "3", "4")
}

// start runs a consumer until the test ends.
func start[T any](t *testing.T, c *changes.Consumer[T]) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// TestRebuild checks a rebuild makes the read model match the comments
// collection whatever state it was in, and ends at the given position.
func TestRebuild(t *testing.T) {
	db, b := mongotest.OpenEnv(t, mongowire.Options{}, mongo.Options{EmbedLimit: 2})
	ctx := ctxFor(t)
	h := head(t, db.CommentFeed())
	p1 := newPost(t, db, "p1", at(0))
	p2 := newPost(t, db, "p2", at(0))
	empty := newPost(t, db, "empty", at(0))
	gone := newComment(t, db, p1.ID, "gone", at(1))
	newComment(t, db, p1.ID, "a", at(2))
	edited := newComment(t, db, p1.ID, "b", at(3))
	newComment(t, db, p1.ID, "c", at(4))
	newComment(t, db, p2.ID, "x", at(5))
	if err := db.Posts().Apply(ctx, "c", read(t, db.CommentFeed(), h, 5)); err != nil {
		t.Fatal(err)
	}
	// Changes the read model never sees: a delete, an edit, a new comment,
	// and a bogus count on a post with no comments.
	if _, err := db.Comments().Delete(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Comments().Update(ctx, edited.ID, "b, edited", at(9)); err != nil {
		t.Fatal(err)
	}
	newComment(t, db, p2.ID, "y", at(6))
	eid, _ := bson.ObjectIDFromHex(empty.ID)
	if _, err := b.Database().Collection("posts").UpdateOne(ctx, bson.M{"_id": eid}, bson.M{"$set": bson.M{"commentCount": 7}}); err != nil {
		t.Fatal(err)
	}

	at := head(t, db.CommentFeed())
	if err := rebuilder(t, db).Rebuild(ctx, "c", at, 0); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	wantPost(t, db, p1.ID, 3, "b, edited", "c")
	wantPost(t, db, p2.ID, 2, "x", "y")
	wantPost(t, db, empty.ID, 0)
	if tok := checkpoint(t, db, "c"); !bytes.Equal(tok, at) {
		t.Errorf("checkpoint after rebuild %x, want %x", tok, at)
	}
	if n, err := b.Database().Collection("post_comments").CountDocuments(ctx, bson.M{}); err != nil || n != 5 {
		t.Errorf("post_comments holds %d copies (%v), want 5", n, err)
	}
	var cp bson.M
	if err := b.Database().Collection("checkpoints").FindOne(ctx, bson.M{"_id": "c"}).Decode(&cp); err != nil {
		t.Fatal(err)
	}
	if _, ok := cp["rebuild"]; ok {
		t.Errorf("rebuild progress left behind: %v", cp)
	}
}

// TestRebuildResumes plants the progress a crash in the last phase would
// leave and checks that a rebuild towards the same position resumes there
// (the copy phase is not redone), while one towards a new position starts
// over.
func TestRebuildResumes(t *testing.T) {
	db, b := mongotest.OpenEnv(t, mongowire.Options{}, mongo.Options{})
	ctx := ctxFor(t)
	p := newPost(t, db, "p", at(0))
	newComment(t, db, p.ID, "a", at(1))
	at1 := head(t, db.CommentFeed())
	if err := rebuilder(t, db).Rebuild(ctx, "c", at1, 0); err != nil {
		t.Fatal(err)
	}
	wantPost(t, db, p.ID, 1, "a")

	// Written after the copy phase of an interrupted rebuild towards at1.
	newComment(t, db, p.ID, "b", at(2))
	progress := bson.M{"at": bson.Binary{Data: at1}, "phase": "posts", "after": bson.NilObjectID}
	if _, err := b.Database().Collection("checkpoints").UpdateOne(ctx, bson.M{"_id": "c"}, bson.M{"$set": bson.M{"rebuild": progress}}); err != nil {
		t.Fatal(err)
	}
	if err := rebuilder(t, db).Rebuild(ctx, "c", at1, 0); err != nil {
		t.Fatalf("resumed rebuild: %v", err)
	}
	wantPost(t, db, p.ID, 1, "a")

	at2 := head(t, db.CommentFeed())
	if err := rebuilder(t, db).Rebuild(ctx, "c", at2, 0); err != nil {
		t.Fatalf("rebuild towards a new position: %v", err)
	}
	wantPost(t, db, p.ID, 2, "a", "b")
}

// TestRebuildSkipsUnreadable checks documents written by hand in shapes the
// service cannot read do not stop a rebuild, in either sink.
func TestRebuildSkipsUnreadable(t *testing.T) {
	db, b := mongotest.OpenEnv(t, mongowire.Options{}, mongo.Options{})
	ctx := ctxFor(t)
	p := newPost(t, db, "p", at(0))
	newComment(t, db, p.ID, "fine", at(1))
	insertBadComment(t, b, p.ID)
	if _, err := b.Database().Collection("posts").InsertOne(ctx, bson.M{"_id": "hand-made"}); err != nil {
		t.Fatal(err)
	}
	h := head(t, db.CommentFeed())
	if err := rebuilder(t, db).Rebuild(ctx, "c", h, 0); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	wantPost(t, db, p.ID, 1, "fine")
	if err := db.PostCascade().(changes.Rebuilder).Rebuild(ctx, "cascade", head(t, db.PostFeed()), 0); err != nil {
		t.Fatalf("cascade rebuild: %v", err)
	}
}

// TestSyncSurvivesLostHistory stops the comment sync, lets the wire
// server's tiny oplog forget its checkpoint while comments are written, and checks that
// on restart the consumer rebuilds instead of skipping them.
func TestSyncSurvivesLostHistory(t *testing.T) {
	t.Parallel()
	tiny := mongowire.Options{OplogMinSize: 1, OplogMaxSize: 1, OplogMinAge: time.Nanosecond}
	db, env := mongotest.OpenEnv(t, tiny, mongo.Options{})
	if env.Real() {
		t.Skip("needs the wire server's tiny oplog")
	}
	p := newPost(t, db, "p", at(0))
	run := func() (*changes.Consumer[comment.Comment], func()) {
		s := post.NewCommentSync(db.Posts(), db.CommentFeed(), nil)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = s.Run(ctx)
		}()
		waitFor(t, "consumer running", s.Running)
		return s, func() { cancel(); <-done }
	}
	_, stop := run()
	newComment(t, db, p.ID, "seen", at(1))
	waitFor(t, "the first comment", func() bool {
		got, err := db.Posts().Get(ctxFor(t), p.ID)
		return err == nil && got.CommentCount == 1
	})
	stop()

	// The wire server's oplog (lungo's) ages in whole seconds: move past
	// this one, then write.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 20*time.Millisecond)))
	newComment(t, db, p.ID, "missed 1", at(2))
	newComment(t, db, p.ID, "missed 2", at(3))
	if _, err := db.CommentFeed().Open(ctxFor(t), checkpoint(t, db, post.CommentsConsumer)); !errors.Is(err, changes.ErrHistoryLost) {
		t.Fatalf("the checkpoint is still in the oplog (%v); the test proves nothing", err)
	}

	s, stop := run()
	defer stop()
	waitFor(t, "the comments written while history was lost", func() bool {
		got, err := db.Posts().Get(ctxFor(t), p.ID)
		return err == nil && got.CommentCount == 3
	})
	if n := s.Stats().Resyncs; n != 1 {
		t.Errorf("consumer counted %d resyncs, want 1", n)
	}
}

// TestPostCascade checks the comments service's sink of the posts feed: a
// post's delete removes its comments, other events change nothing, and a
// replay is harmless.
func TestPostCascade(t *testing.T) {
	db := mongotest.Open(t, mongo.Options{})
	ctx := ctxFor(t)
	sink := db.PostCascade()
	h := head(t, db.PostFeed())
	doomed := newPost(t, db, "doomed", at(0))
	kept := newPost(t, db, "kept", at(0))
	for i := range 3 {
		newComment(t, db, doomed.ID, fmt.Sprint(i), at(i))
	}
	survivor := newComment(t, db, kept.ID, "survivor", at(5))
	if _, err := db.Posts().Update(ctx, kept.ID, post.Patch{}, at(6)); err != nil {
		t.Fatal(err)
	}
	if err := db.Posts().Delete(ctx, doomed.ID); err != nil {
		t.Fatal(err)
	}
	b := read(t, db.PostFeed(), h, 4) // 2 inserts, an update, a delete
	for range 2 {
		if err := sink.Apply(ctx, "cascade", b); err != nil {
			t.Fatalf("apply: %v", err)
		}
	}
	if left, err := db.Comments().ListByPost(ctx, doomed.ID, page.Query{Limit: 10}); err != nil || len(left) != 0 {
		t.Errorf("comments of the deleted post: %d, %v", len(left), err)
	}
	if _, err := db.Comments().Get(ctx, survivor.ID); err != nil {
		t.Errorf("comment of the kept post: %v", err)
	}
	if tok, err := sink.Checkpoint(ctx, "cascade"); err != nil || !bytes.Equal(tok, b.Token) {
		t.Errorf("checkpoint %x, %v; want %x", tok, err, b.Token)
	}
}

// TestPostCascadeRebuild checks the cascade's rebuild deletes exactly the
// comments whose post is gone.
func TestPostCascadeRebuild(t *testing.T) {
	db := mongotest.Open(t, mongo.Options{})
	ctx := ctxFor(t)
	doomed := newPost(t, db, "doomed", at(0))
	kept := newPost(t, db, "kept", at(0))
	orphan := newComment(t, db, doomed.ID, "orphan", at(1))
	survivor := newComment(t, db, kept.ID, "survivor", at(2))
	if err := db.Posts().Delete(ctx, doomed.ID); err != nil {
		t.Fatal(err)
	}
	at := head(t, db.PostFeed())
	if err := db.PostCascade().(changes.Rebuilder).Rebuild(ctx, "cascade", at, 0); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	if _, err := db.Comments().Get(ctx, orphan.ID); !errors.Is(err, comment.ErrNotFound) {
		t.Errorf("orphan after rebuild: %v", err)
	}
	if _, err := db.Comments().Get(ctx, survivor.ID); err != nil {
		t.Errorf("survivor after rebuild: %v", err)
	}
	if tok, err := db.PostCascade().Checkpoint(ctx, "cascade"); err != nil || !bytes.Equal(tok, at) {
		t.Errorf("checkpoint %x, %v; want %x", tok, err, at)
	}
}

// TestDeletePostEndToEnd runs both services' consumers: deleting a post
// deletes its comments (cascade), whose delete events clear the posts
// service's copies of them.
func TestDeletePostEndToEnd(t *testing.T) {
	db, b := mongotest.OpenEnv(t, mongowire.Options{}, mongo.Options{})
	commentSync := post.NewCommentSync(db.Posts(), db.CommentFeed(), nil)
	cascade := &changes.Consumer[post.Post]{Name: "comments.posts", Feed: db.PostFeed(), Sink: db.PostCascade()}
	start(t, commentSync)
	start(t, cascade)
	waitFor(t, "consumers running", func() bool { return commentSync.Running() && cascade.Running() })
	p := newPost(t, db, "p", at(0))
	for i := range 3 {
		newComment(t, db, p.ID, fmt.Sprint(i), at(i))
	}
	waitFor(t, "comments embedded", func() bool {
		got, err := db.Posts().Get(ctxFor(t), p.ID)
		return err == nil && got.CommentCount == 3
	})
	if err := db.Posts().Delete(ctxFor(t), p.ID); err != nil {
		t.Fatal(err)
	}
	copies := b.Database().Collection("post_comments")
	waitFor(t, "comments and their copies gone", func() bool {
		left, err := db.Comments().ListByPost(ctxFor(t), p.ID, page.Query{Limit: 10})
		n, cerr := copies.CountDocuments(ctxFor(t), bson.M{})
		return err == nil && cerr == nil && len(left) == 0 && n == 0
	})
}
