package mongo_test

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	driver "go.mongodb.org/mongo-driver/v2/mongo"

	"blog/internal/changes"
	"blog/internal/mongowire"
	"blog/internal/store/mongo"
	"blog/internal/store/mongo/mongotest"
)

// counter records what each delete command on the comments collection
// deleted, as the wire server saw it, and fails one of them through the
// failCommand fail point, as a server timing out a transaction would.
type counter struct {
	env     *mongotest.Env
	mu      sync.Mutex
	deletes []int64 // what each successful delete on comments deleted
}

// codeInjected is the errorCode the fail point answers with.
const codeInjected = 8000

func isInjected(err error) bool {
	var se driver.ServerError
	return errors.As(err, &se) && se.HasErrorCode(codeInjected)
}

func (b *counter) observe(db, name string, cmd, reply bson.Raw) {
	if name != "delete" || cmd.Lookup("delete").StringValue() != "comments" {
		return
	}
	if ok, _ := reply.Lookup("ok").AsFloat64OK(); ok != 1 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.deletes = append(b.deletes, int64(reply.Lookup("n").AsInt64()))
}

// failAt makes the n-th delete command from now fail (1-based), until off.
func (b *counter) failAt(t *testing.T, n int) {
	b.env.FailPoint(t, bson.D{{Key: "skip", Value: n - 1}}, bson.D{
		{Key: "failCommands", Value: bson.A{"delete"}}, {Key: "errorCode", Value: codeInjected}, {Key: "errorLabels", Value: bson.A{}}})
}

func (b *counter) off(t *testing.T) {
	b.env.FailPoint(t, "off", nil)
}

func (b *counter) record() (deletes []int64, calls int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int64(nil), b.deletes...), len(b.deletes)
}

func (b *counter) Database() *driver.Database { return b.env.Database() }

// openCounting opens a DB on a wire server that counts deletes, deleting
// chunk comments per transaction. It needs the wire server's observer.
func openCounting(t *testing.T, chunk int) (*mongo.DB, *counter) {
	t.Helper()
	b := &counter{}
	db, env := mongotest.OpenEnv(t, mongowire.Options{Observe: b.observe}, mongo.Options{})
	if env.Real() {
		t.Skip("counts commands with the wire server's observer")
	}
	b.env = env
	mongo.SetDeleteChunk(db, chunk)
	return db, b
}

// manyComments stores n comments of post postID with one insert, far
// faster than n Creates.
func manyComments(t *testing.T, b *counter, postID string, n int) {
	t.Helper()
	pid, err := bson.ObjectIDFromHex(postID)
	if err != nil {
		t.Fatal(err)
	}
	docs := make([]any, n)
	for i := range docs {
		docs[i] = bson.M{"_id": bson.NewObjectID(), "postId": pid, "text": fmt.Sprint("c", i),
			"createdAt": bson.NewDateTimeFromTime(at(i % 60))}
	}
	if _, err := b.Database().Collection("comments").InsertMany(ctxFor(t), docs); err != nil {
		t.Fatal(err)
	}
}

func countComments(t *testing.T, b *counter, postID string) int64 {
	t.Helper()
	pid, _ := bson.ObjectIDFromHex(postID)
	n, err := b.Database().Collection("comments").CountDocuments(ctxFor(t), bson.M{"postId": pid})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPostCascadeChunks deletes a post with 2,500 comments: the cascade
// deletes them in transactions of at most a chunk each (one transaction for
// all of them outlasts a real server's transaction limit on a big post), a
// failure midway keeps the chunks done and the checkpoint where it was, and
// the replay finishes the job and saves it.
func TestPostCascadeChunks(t *testing.T) {
	const n, chunk = 2500, 300
	db, b := openCounting(t, chunk)
	ctx := ctxFor(t)
	sink := db.PostCascade()
	h := head(t, db.PostFeed())
	doomed := newPost(t, db, "doomed", at(0))
	kept := newPost(t, db, "kept", at(0))
	manyComments(t, b, doomed.ID, n)
	survivor := newComment(t, db, kept.ID, "survivor", at(1))
	if err := db.Posts().Delete(ctx, doomed.ID); err != nil {
		t.Fatal(err)
	}
	batch := read(t, db.PostFeed(), h, 3) // 2 inserts, a delete
	ch := head(t, db.CommentFeed())

	// The third chunk fails: two chunks' worth are gone, the rest stay, and
	// the checkpoint has not moved.
	b.failAt(t, 3)
	if err := sink.Apply(ctx, "cascade", batch); !isInjected(err) {
		t.Fatalf("apply with a failing chunk: %v, want the injected failure", err)
	}
	if left := countComments(t, b, doomed.ID); left != n-2*chunk {
		t.Errorf("%d comments left after a failure at the third chunk, want %d", left, n-2*chunk)
	}
	if tok, err := sink.Checkpoint(ctx, "cascade"); err != nil || tok != nil {
		t.Errorf("checkpoint after a failed apply %x, %v; want none", tok, err)
	}

	b.off(t)
	// The replay deletes the rest, a chunk at a time, and saves it.
	if err := sink.Apply(ctx, "cascade", batch); err != nil {
		t.Fatalf("replay: %v", err)
	}
	if left := countComments(t, b, doomed.ID); left != 0 {
		t.Errorf("%d comments left after the replay", left)
	}
	if _, err := db.Comments().Get(ctx, survivor.ID); err != nil {
		t.Errorf("comment of the kept post: %v", err)
	}
	if tok, err := sink.Checkpoint(ctx, "cascade"); err != nil || !bytes.Equal(tok, batch.Token) {
		t.Errorf("checkpoint %x, %v; want %x", tok, err, batch.Token)
	}
	deletes, _ := b.record()
	var total int64
	for i, d := range deletes {
		if d > chunk {
			t.Errorf("transaction %d deleted %d comments, more than a chunk of %d", i+1, d, chunk)
		}
		total += d
	}
	if total != n || len(deletes) < n/chunk {
		t.Errorf("%d comments deleted in %d transactions, want %d in at least %d", total, len(deletes), n, n/chunk)
	}

	// Each deletion is on the comments feed, as if the service deleted it.
	evs := read(t, db.CommentFeed(), ch, n).Events
	deleted := map[string]bool{}
	for _, e := range evs {
		if e.Op == changes.Delete {
			deleted[e.Key] = true
		}
	}
	if len(evs) != n || len(deleted) != n {
		t.Errorf("%d comment events, %d of them deletes of distinct comments; want %d deletes", len(evs), len(deleted), n)
	}
}

// TestDeleteByPostChunks checks DeleteByPost, which shares the cascade's
// deletion, works in the same bounded chunks and counts them all.
func TestDeleteByPostChunks(t *testing.T) {
	const n, chunk = 2500, 1000
	db, b := openCounting(t, chunk)
	p := newPost(t, db, "p", at(0))
	manyComments(t, b, p.ID, n)
	got, err := db.Comments().DeleteByPost(ctxFor(t), p.ID)
	if err != nil || got != n {
		t.Fatalf("delete by post = %d, %v; want %d", got, err, n)
	}
	deletes, _ := b.record()
	if fmt.Sprint(deletes) != "[1000 1000 500]" {
		t.Errorf("deleted per transaction %v, want [1000 1000 500]", deletes)
	}
	if got, err := db.Comments().DeleteByPost(ctxFor(t), p.ID); err != nil || got != 0 {
		t.Errorf("delete by post again = %d, %v; want 0", got, err)
	}
}

// TestPostCascadeStaleFenceMidway checks a cascade that loses its lease
// while deleting a big post's comments stops at the next chunk.
func TestPostCascadeStaleFenceMidway(t *testing.T) {
	const n, chunk = 1000, 100
	db, b := openCounting(t, chunk)
	ctx := ctxFor(t)
	l := db.Leases()
	fence, held, err := l.Acquire(ctx, "cascade", "a", time.Hour)
	if err != nil || !held {
		t.Fatalf("acquire: %v, %v", held, err)
	}
	h := head(t, db.PostFeed())
	p := newPost(t, db, "p", at(0))
	manyComments(t, b, p.ID, n)
	if err := db.Posts().Delete(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	batch := read(t, db.PostFeed(), h, 2)
	batch.Fence = fence
	// The second chunk fails; meanwhile another replica takes the lease.
	b.failAt(t, 2)
	if err := db.PostCascade().Apply(ctx, "cascade", batch); !isInjected(err) {
		t.Fatalf("apply: %v, want the injected failure", err)
	}
	b.off(t)
	if err := l.Release(ctx, "cascade", "a"); err != nil {
		t.Fatal(err)
	}
	if _, held, err := l.Acquire(ctx, "cascade", "b", time.Hour); err != nil || !held {
		t.Fatalf("acquire for b: %v, %v", held, err)
	}
	if err := db.PostCascade().Apply(ctx, "cascade", batch); !errors.Is(err, changes.ErrFenced) {
		t.Fatalf("apply under the stale fence: %v, want changes.ErrFenced", err)
	}
	if left := countComments(t, b, p.ID); left != n-chunk {
		t.Errorf("%d comments left, want %d: nothing deleted under the stale fence", left, n-chunk)
	}
}
