package mongotest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/256dpi/lungo"
	"go.mongodb.org/mongo-driver/v2/bson"

	"blog/internal/changes"
	"blog/internal/store/mongo"
)

// These tests pin down the emulations Backend adds to lungo, which the
// mongo package's feeds rely on behaving like a real server's.

func newBackend(t *testing.T) *Backend {
	t.Helper()
	b, err := NewBackend(lungo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b
}

func insert(t *testing.T, b *Backend, coll string) {
	t.Helper()
	doc, err := bson.Marshal(bson.D{{Key: "_id", Value: bson.NewObjectID()}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Collection(coll).InsertOne(context.Background(), doc); err != nil {
		t.Fatalf("insert into %s: %v", coll, err)
	}
}

func watch(t *testing.T, b *Backend, coll string, after []byte) mongo.ChangeStream {
	t.Helper()
	cs, err := b.Collection(coll).Watch(context.Background(), after)
	if err != nil {
		t.Fatalf("watch %s: %v", coll, err)
	}
	t.Cleanup(func() { _ = cs.Close(context.Background()) })
	return cs
}

func TestFreshStreamHasToken(t *testing.T) {
	b := newBackend(t)
	if tok := watch(t, b, "comments", nil).ResumeToken(); tok == nil {
		t.Fatal("a stream on a fresh engine has no resume token")
	}
}

func TestTryNextWaits(t *testing.T) {
	b := newBackend(t)
	cs := watch(t, b, "comments", nil)
	ctx := context.Background()

	start := time.Now()
	if cs.TryNext(ctx, false) {
		t.Fatal("event on an empty stream")
	}
	if d := time.Since(start); d > await/2 {
		t.Errorf("TryNext without wait took %s", d)
	}

	start = time.Now()
	if cs.TryNext(ctx, true) || cs.Err() != nil {
		t.Fatalf("TryNext on an idle stream: event or error %v", cs.Err())
	}
	if d := time.Since(start); d < await-poll {
		t.Errorf("TryNext with wait returned after %s, want about %s", d, await)
	}

	// An insert made while TryNext waits is returned by that call. On a
	// loaded machine the insert may only land after the wait is over, which
	// proves nothing either way: then the event must still arrive, and the
	// attempt is repeated. A TryNext that did not wait fails every attempt.
	for attempt := 1; ; attempt++ {
		doc, err := bson.Marshal(bson.D{{Key: "_id", Value: bson.NewObjectID()}})
		if err != nil {
			t.Fatal(err)
		}
		type result struct {
			at  time.Time
			err error
		}
		inserted := make(chan result, 1)
		go func() {
			time.Sleep(20 * time.Millisecond)
			err := b.Collection("comments").InsertOne(ctx, doc)
			inserted <- result{time.Now(), err}
		}()
		start := time.Now()
		got := cs.TryNext(ctx, true)
		returned := time.Now()
		r := <-inserted
		if r.err != nil {
			t.Fatalf("insert: %v", r.err)
		}
		if got {
			return // the insert's event, returned by the call that waited for it
		}
		if err := cs.Err(); err != nil {
			t.Fatalf("TryNext while waiting for an insert: %v", err)
		}
		t.Logf("attempt %d: the wait ended after %s, the insert landed %s after that",
			attempt, returned.Sub(start), r.at.Sub(returned))
		drained := false
		for deadline := time.Now().Add(5 * time.Second); !drained && time.Now().Before(deadline); {
			drained = cs.TryNext(ctx, true)
		}
		if !drained {
			t.Fatalf("the insert's event never arrived: %v", cs.Err())
		}
		if attempt == 10 {
			t.Fatal("TryNext with wait never returned an insert made while it waited")
		}
	}
}

// TestPostBatchToken checks the emulated post-batch resume token: writes
// to another collection move a quiet stream's token, and resuming there
// loses nothing written afterwards.
func TestPostBatchToken(t *testing.T) {
	b := newBackend(t)
	cs := watch(t, b, "comments", nil)
	ctx := context.Background()
	before := bytes.Clone(cs.ResumeToken())
	insert(t, b, "posts")
	if cs.TryNext(ctx, false) {
		t.Fatal("comment stream returned a posts event")
	}
	moved := bytes.Clone(cs.ResumeToken())
	if bytes.Equal(before, moved) {
		t.Fatal("token did not move past the posts write")
	}
	insert(t, b, "comments")
	resumed := watch(t, b, "comments", moved)
	if !resumed.TryNext(ctx, true) {
		t.Fatalf("resuming at the moved token missed the next comment: %v", resumed.Err())
	}
}

func TestClosedEngineEndsStream(t *testing.T) {
	b := newBackend(t)
	cs := watch(t, b, "comments", nil)
	_ = b.Close(context.Background())
	if cs.TryNext(context.Background(), true) {
		t.Fatal("event after close")
	}
	if !errors.Is(cs.Err(), lungo.ErrEngineClosed) {
		t.Errorf("Err after close = %v, want lungo.ErrEngineClosed", cs.Err())
	}
}

func TestErrorMapping(t *testing.T) {
	b := newBackend(t)
	ctx := context.Background()
	doc, _ := bson.Marshal(bson.D{{Key: "_id", Value: "x"}})
	if err := b.Collection("c").InsertOne(ctx, doc); err != nil {
		t.Fatal(err)
	}
	if err := b.Collection("c").InsertOne(ctx, doc); !errors.Is(err, mongo.ErrDuplicateKey) {
		t.Errorf("second insert: %v, want ErrDuplicateKey", err)
	}
	missing, _ := bson.Marshal(bson.D{{Key: "_id", Value: "y"}})
	if _, err := b.Collection("c").FindOne(ctx, missing); !errors.Is(err, mongo.ErrNoDocuments) {
		t.Errorf("find missing: %v, want ErrNoDocuments", err)
	}
	bogus, _ := bson.Marshal(bson.D{{Key: "ts", Value: bson.Timestamp{T: 1, I: 1}}})
	if _, err := b.Collection("c").Watch(ctx, bogus); !errors.Is(err, changes.ErrHistoryLost) {
		t.Errorf("watch after an unknown token: %v, want ErrHistoryLost", err)
	}
}
