package mongo_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"blog/internal/changes"
	"blog/internal/mongowire"
	"blog/internal/post"
	"blog/internal/store/mongo"
	"blog/internal/store/mongo/mongotest"
)

// These tests pin down defects a real replica set showed and the old
// lungo seam could not: each failed on the adapter before its fix, and each runs through
// the v2 driver over TCP, with MongoDB's failCommand fail point where a
// fault is needed, so it also runs unchanged against TEST_MONGO_URI.

// TestCommitBounded (defect 3): a commit the server holds for 2s fails
// when its time is up, the caller's 300ms deadline or, without one, the
// 300ms CommitTimeout, instead of returning success 2s later.
func TestCommitBounded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		deadline time.Duration
		commit   time.Duration
	}{
		{"context-deadline", 300 * time.Millisecond, 0},
		{"commit-timeout-no-deadline", 0, 300 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var commitMaxTimeMS []int64 // what each commitTransaction carried
			observe := func(_, name string, cmd, _ bson.Raw) {
				if name == "commitTransaction" {
					mu.Lock()
					defer mu.Unlock()
					n, _ := cmd.Lookup("maxTimeMS").AsInt64OK()
					commitMaxTimeMS = append(commitMaxTimeMS, n)
				}
			}
			db, env := mongotest.OpenEnv(t, mongowire.Options{Observe: observe}, mongo.Options{CommitTimeout: tc.commit})
			env.FailPoint(t, bson.D{{Key: "times", Value: 1}}, bson.D{
				{Key: "failCommands", Value: bson.A{"commitTransaction"}},
				{Key: "blockConnection", Value: true}, {Key: "blockTimeMS", Value: 2000}})
			ctx := context.Background()
			if tc.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.deadline)
				defer cancel()
			}
			start := time.Now()
			_, _, err := db.Leases().Acquire(ctx, "c", "a", time.Minute)
			took := time.Since(start)
			if err == nil || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("acquire with a commit held for 2s: %v, want context.DeadlineExceeded", err)
			}
			if took > 1500*time.Millisecond {
				t.Fatalf("acquire returned after %s, want about 300ms, not the 2s the commit was held", took)
			}
			if env.Real() {
				return
			}
			// The server is told the bound too: the commit carries maxTimeMS
			// (maxCommitTimeMS), so a server stops waiting for a majority.
			waitFor(t, "the held commit", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(commitMaxTimeMS) > 0
			})
			mu.Lock()
			defer mu.Unlock()
			if n := commitMaxTimeMS[0]; n <= 0 || n > 300 {
				t.Fatalf("commitTransaction carried maxTimeMS %d, want 1..300", n)
			}
		})
	}
}

// TestTransactionsReadPrimary (defect 4): a MONGO_URI with
// readPreference=secondaryPreferred does not break transactional reads.
func TestTransactionsReadPrimary(t *testing.T) {
	t.Parallel()
	_, env := mongotest.OpenEnv(t, mongowire.Options{}, mongo.Options{})
	sep := "?"
	if strings.Contains(env.URI, "?") {
		sep = "&"
	}
	db, err := mongo.Open(ctxFor(t), env.URI+sep+"readPreference=secondaryPreferred", mongo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	for range 2 { // take, then renew: a read inside the transaction each time
		if _, held, err := db.Leases().Acquire(ctxFor(t), "c", "a", time.Minute); err != nil || !held {
			t.Fatalf("acquire under readPreference=secondaryPreferred: %v, %v", held, err)
		}
	}
	p := newPost(t, db, "p", at(0))
	newComment(t, db, p.ID, "c", at(1))
	if n, err := db.Comments().DeleteByPost(ctxFor(t), p.ID); err != nil || n != 1 {
		t.Fatalf("delete by post = %d, %v; want 1", n, err)
	}
}

// TestStartupNamesTheDeployment (defect 5): Open asks each seed itself and
// says what it found, quickly, for the seed's URI shape (?replicaSet=rs0).
func TestStartupNamesTheDeployment(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	for _, tc := range []struct {
		name string
		uri  func(t *testing.T) string
		want error
		text string
	}{
		{"standalone", func(t *testing.T) string {
			return mongowire.StartServer(t, mongowire.Options{Mode: mongowire.Standalone}).URI()
		}, mongo.ErrStandalone, "--replSet"},
		{"uninitiated", func(t *testing.T) string {
			return mongowire.StartServer(t, mongowire.Options{Mode: mongowire.Uninitiated}).URI()
		}, mongo.ErrNotInitiated, "rs.initiate()"},
		{"unreachable", func(t *testing.T) string {
			return "mongodb://" + closed + "/?replicaSet=rs0"
		}, mongo.ErrUnreachable, closed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			_, err := mongo.Open(context.Background(), tc.uri(t), mongo.Options{ConnectTimeout: 10 * time.Second})
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("open: %v; want %v naming %q", err, tc.want, tc.text)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("open failed after %s, want the seed's short hello timeout, not the 10s connect timeout", took)
			}
		})
	}
}

// TestCappedPositionLostIsHistoryLost (defect 6): a running stream whose
// getMore fails with CappedPositionLost (136) reports lost history, so the
// consumer rebuilds instead of backing off and reopening.
func TestCappedPositionLostIsHistoryLost(t *testing.T) {
	t.Parallel()
	db, env := mongotest.OpenEnv(t, mongowire.Options{}, mongo.Options{})
	st, err := db.CommentFeed().Open(ctxFor(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(context.Background())
	env.FailPoint(t, bson.D{{Key: "times", Value: 1}}, bson.D{
		{Key: "failCommands", Value: bson.A{"getMore"}}, {Key: "errorCode", Value: 136}})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err = st.Next(ctxFor(t)); err != nil {
			break
		}
	}
	if !errors.Is(err, changes.ErrHistoryLost) {
		t.Fatalf("next after CappedPositionLost: %v, want changes.ErrHistoryLost", err)
	}
}

// TestFeedAsksOnlyForItsEvents (the $match cost): a feed's change stream
// carries a $match on the operation types it delivers, so the server does
// not ship (and look up) events the consumer would discard.
func TestFeedAsksOnlyForItsEvents(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var pipelines []string
	db, env := mongotest.OpenEnv(t, mongowire.Options{Observe: func(_, name string, cmd, _ bson.Raw) {
		if name == "aggregate" {
			mu.Lock()
			defer mu.Unlock()
			pipelines = append(pipelines, cmd.Lookup("pipeline").String())
		}
	}}, mongo.Options{})
	if env.Real() {
		t.Skip("reads the commands the wire server saw")
	}
	if _, err := db.PostFeed().Head(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(pipelines) != 1 || !strings.Contains(pipelines[0], `"$match"`) || !strings.Contains(pipelines[0], `"operationType"`) {
		t.Fatalf("change stream pipelines %v, want a $match on operationType after $changeStream", pipelines)
	}
}

// TestPostEventsShipNoDocuments (the cascade's cost): the posts feed the
// live hub and the cascade consume asks for no updateLookup, so a post
// update arrives without the post; the looked-up feed still carries it.
func TestPostEventsShipNoDocuments(t *testing.T) {
	t.Parallel()
	db := mongotest.Open(t, mongo.Options{})
	for _, tc := range []struct {
		name      string
		feed      changes.Feed[post.Post]
		wantFound bool
	}{
		{"post-events-no-document", db.PostEvents(), false},
		{"post-feed-looked-up", db.PostFeed(), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := head(t, tc.feed)
			p := newPost(t, db, "p "+tc.name, at(0))
			title := "edited"
			if _, err := db.Posts().Update(ctxFor(t), p.ID, post.Patch{Title: &title}, at(1)); err != nil {
				t.Fatal(err)
			}
			b := read(t, tc.feed, h, 2)
			ev := b.Events[1]
			if ev.Op != changes.Update || ev.Key != p.ID || ev.Found != tc.wantFound {
				t.Fatalf("update event %+v, want an update of %s with Found %v", ev, p.ID, tc.wantFound)
			}
			if tc.wantFound && ev.Doc.Title != "edited" {
				t.Fatalf("looked-up post title %q, want edited", ev.Doc.Title)
			}
		})
	}
}

// TestSyncSurvivesFailPoints: a getMore failing with CappedPositionLost, or
// a commit the server holds past the apply's deadline, delays the comment
// sync but does not stop it: the comment reaches its post.
func TestSyncSurvivesFailPoints(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		data bson.D
	}{
		{"getmore-capped-position-lost", bson.D{{Key: "failCommands", Value: bson.A{"getMore"}}, {Key: "errorCode", Value: 136}}},
		{"commit-blocked", bson.D{{Key: "failCommands", Value: bson.A{"commitTransaction"}},
			{Key: "blockConnection", Value: true}, {Key: "blockTimeMS", Value: 1500}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, env := mongotest.OpenEnv(t, mongowire.Options{}, mongo.Options{CommitTimeout: 500 * time.Millisecond})
			p := newPost(t, db, "p", at(0))
			s := post.NewCommentSync(db.Posts(), db.CommentFeed(), nil)
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan struct{})
			go func() {
				defer close(done)
				_ = s.Run(ctx)
			}()
			defer func() { cancel(); <-done }()
			waitFor(t, "consumer running", s.Running)
			env.FailPoint(t, bson.D{{Key: "times", Value: 1}}, tc.data)
			newComment(t, db, p.ID, "c", at(1))
			deadline := time.Now().Add(10 * time.Second)
			for {
				got, err := db.Posts().Get(ctxFor(t), p.ID)
				if err == nil && got.CommentCount == 1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("comment not embedded within 10 s of the fault: %+v, %v", got, err)
				}
				time.Sleep(20 * time.Millisecond) // polling interval, bounded by the deadline
			}
			if n := env.FailPointOff(t); n != 1 {
				t.Fatalf("the fail point fired %d times, want 1: the test proves nothing", n)
			}
		})
	}
}

// TestStalledSyncIsUnhealthy: while every commit fails (a fail point on
// commitTransaction, as when no majority can acknowledge it), the comment
// sync keeps retrying but stops being Healthy past its StallAfter, which
// is what /readyz and blog_consumer_failing_seconds report; once commits
// succeed again the comment is embedded and the sync is healthy again.
func TestStalledSyncIsUnhealthy(t *testing.T) {
	t.Parallel()
	db, env := mongotest.OpenEnv(t, mongowire.Options{}, mongo.Options{CommitTimeout: 500 * time.Millisecond})
	p := newPost(t, db, "p", at(0))
	s := post.NewCommentSync(db.Posts(), db.CommentFeed(), nil)
	s.StallAfter = 300 * time.Millisecond
	s.MaxBackoff = 100 * time.Millisecond // recover quickly once the fail point is off
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Run(ctx)
	}()
	defer func() { cancel(); <-done }()
	waitFor(t, "consumer healthy", s.Healthy)
	env.FailPoint(t, "alwaysOn", bson.D{
		{Key: "failCommands", Value: bson.A{"commitTransaction"}},
		{Key: "errorCode", Value: 91}, // ShutdownInProgress: a retryable commit error
	})
	newComment(t, db, p.ID, "c", at(1))
	waitFor(t, "stalled sync reported unhealthy", func() bool {
		return !s.Healthy() && s.Stats().Failing >= s.StallAfter
	})
	if n := env.FailPointOff(t); n < 1 {
		t.Fatalf("the fail point fired %d times: the test proves nothing", n)
	}
	waitFor(t, "comment embedded and sync healthy again", func() bool {
		got, err := db.Posts().Get(ctxFor(t), p.ID)
		return err == nil && got.CommentCount == 1 && s.Healthy()
	})
}
