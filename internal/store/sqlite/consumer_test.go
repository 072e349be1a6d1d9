package sqlite_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"blog/internal/changes"
	"blog/internal/comment"
	"blog/internal/page"
	"blog/internal/post"
	"blog/internal/store/sqlite"
)

// End-to-end tests of the posts service's consumer (changes.Consumer, for
// real) over the embedded store: lost history, poison events, and replicas
// taking turns under a lease. Every wait polls with a deadline.

const (
	embedLimit = 3
	// converge bounds every wait for the consumer to catch up.
	converge = 15 * time.Second
)

func openDB(t *testing.T, dir string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), dir, sqlite.Options{
		EmbedLimit: embedLimit, PollInterval: 5 * time.Millisecond, QuietInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// logBuffer collects a consumer's log, for assertions and for failures.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newConsumer(t *testing.T, db *sqlite.DB, sink changes.Sink[comment.Comment], log *logBuffer) *changes.Consumer[comment.Comment] {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("consumer log:\n%s", log)
		}
	})
	return &changes.Consumer[comment.Comment]{
		Name: post.CommentsConsumer, Feed: db.CommentFeed(), Sink: sink,
		Log:        slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelInfo})),
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Attempts: 2,
	}
}

// start runs c until the returned stop is called, which waits for it.
func start(t *testing.T, c *changes.Consumer[comment.Comment]) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := c.Run(ctx); err != nil {
			t.Errorf("consumer: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func waitFor(t *testing.T, what string, ok func() bool) time.Duration {
	t.Helper()
	begin := time.Now()
	deadline := begin.Add(converge)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", converge, what)
		}
		time.Sleep(5 * time.Millisecond) // a polling interval, not a synchronisation
	}
	return time.Since(begin)
}

func newID() string { return bson.NewObjectID().Hex() }

var clock atomic.Int64

// at returns distinct, increasing createdAt values, so each post's latest
// comments are well defined.
func at() time.Time {
	return time.UnixMilli(1_700_000_000_000 + clock.Add(1)).UTC()
}

func createPost(t *testing.T, db *sqlite.DB) string {
	t.Helper()
	p := post.Post{ID: newID(), Title: "t", Content: "c", CreatedAt: at()}
	if err := db.Posts().Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	return p.ID
}

func createComment(t *testing.T, db *sqlite.DB, postID string) string {
	t.Helper()
	c := comment.Comment{ID: newID(), PostID: postID, Text: "hello", CreatedAt: at()}
	if err := db.Comments().Create(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return c.ID
}

// drift compares every post's embedded comments (ids, texts, order) and
// commentCount with the comments store, and describes each difference.
func drift(t *testing.T, db *sqlite.DB) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	q := page.Query{Limit: page.MaxLimit}
	for {
		ps, err := db.Posts().List(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			var cs []comment.Comment
			cq := page.Query{Limit: page.MaxLimit}
			for {
				more, err := db.Comments().ListByPost(ctx, p.ID, cq)
				if err != nil {
					t.Fatal(err)
				}
				cs = append(cs, more...)
				if len(more) < cq.Limit {
					break
				}
				cur := more[len(more)-1].Cursor()
				cq.After = &cur
			}
			var got, want []string
			for _, c := range p.Comments {
				got = append(got, c.ID+"="+c.Text)
			}
			for _, c := range cs[max(0, len(cs)-embedLimit):] {
				want = append(want, c.ID+"="+c.Text)
			}
			if p.CommentCount != len(cs) || !slices.Equal(got, want) {
				out = append(out, fmt.Sprintf("post %s: count %d embeds %v; want %d %v", p.ID, p.CommentCount, got, len(cs), want))
			}
		}
		if len(ps) < q.Limit {
			return out
		}
		c := ps[len(ps)-1].Cursor()
		q.After = &c
	}
}

func waitConverged(t *testing.T, db *sqlite.DB) time.Duration {
	t.Helper()
	begin := time.Now()
	for {
		d := drift(t, db)
		if len(d) == 0 {
			return time.Since(begin)
		}
		if time.Since(begin) > converge {
			t.Fatalf("not converged after %v:\n%s", converge, strings.Join(d, "\n"))
		}
		time.Sleep(5 * time.Millisecond) // a polling interval, not a synchronisation
	}
}

func waitCheckpoint(t *testing.T, db *sqlite.DB) changes.Token {
	t.Helper()
	var tok changes.Token
	waitFor(t, "the consumer's first checkpoint", func() bool {
		var err error
		if tok, err = db.Posts().Checkpoint(context.Background(), post.CommentsConsumer); err != nil {
			t.Fatal(err)
		}
		return tok != nil
	})
	return tok
}

// TestConsumerRebuildsAfterLostHistory: a consumer stopped while comments
// are written, edited and deleted, whose checkpoint the change log's pruning
// then passes, rebuilds the read model on restart (logged and counted,
// once), converges exactly, and keeps consuming.
func TestConsumerRebuildsAfterLostHistory(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, t.TempDir())
	var log1 logBuffer
	stop := start(t, newConsumer(t, db, db.Posts(), &log1))
	waitCheckpoint(t, db)
	posts := []string{createPost(t, db), createPost(t, db), createPost(t, db)}
	var cs []string
	for i := range 12 {
		cs = append(cs, createComment(t, db, posts[i%3]))
	}
	waitConverged(t, db)
	stop()

	// While it is down: edits, deletes (some embedded), new comments, a
	// new post, a deleted post.
	for _, id := range cs[9:] {
		if _, err := db.Comments().Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range cs[:4] {
		if _, err := db.Comments().Update(ctx, id, "edited while down", at()); err != nil {
			t.Fatal(err)
		}
	}
	fresh := createPost(t, db)
	for i := range 5 {
		createComment(t, db, []string{posts[0], fresh}[i%2])
	}
	if err := db.Posts().Delete(ctx, posts[2]); err != nil {
		t.Fatal(err)
	}

	// Prune past the checkpoint: everything logged before now.
	tok, err := db.Posts().Checkpoint(ctx, post.CommentsConsumer)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the checkpoint to be pruned away", func() bool {
		if _, err := db.PruneBefore(ctx, 0); err != nil {
			t.Fatal(err)
		}
		st, err := db.CommentFeed().Open(ctx, tok)
		if err == nil {
			st.Close(ctx)
		}
		return errors.Is(err, changes.ErrHistoryLost)
	})
	if len(drift(t, db)) == 0 {
		t.Fatal("the read model did not drift while the consumer was down")
	}

	var log2 logBuffer
	c := newConsumer(t, db, db.Posts(), &log2)
	start(t, c)
	took := waitConverged(t, db)
	// The rebuild's writes can show before the consumer counts it.
	waitFor(t, "the resync to be counted", func() bool { return c.Stats().Resyncs >= 1 })
	if n := c.Stats().Resyncs; n != 1 {
		t.Errorf("resyncs %d, want 1", n)
	}
	if !strings.Contains(log2.String(), "history lost") {
		t.Errorf("the resync was not logged:\n%s", log2.String())
	}
	t.Logf("converged %v after restart", took)

	// And it keeps consuming from where the rebuild left it.
	createComment(t, db, posts[1])
	if _, err := db.Comments().Update(ctx, cs[1], "edited after", at()); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, db)
	if n := c.Stats().Resyncs; n != 1 {
		t.Errorf("resyncs %d after catching up, want still 1", n)
	}
}

// TestConsumersTakeTurns: two replicas of the consumer, each on its own *DB
// over one file (as two processes), share it through the lease: only the
// holder applies; when it dies without releasing the lease (a SIGKILL), the
// other takes over within 10 s, and the posts converge.
func TestConsumersTakeTurns(t *testing.T) {
	dir := t.TempDir()
	writer := openDB(t, dir)
	w := &watch{}
	replicas := map[string]*replica{}
	for _, name := range []string{"a", "b"} {
		db := openDB(t, dir)
		var log logBuffer
		c := newConsumer(t, db, &watched{Sink: db.Posts(), holder: name, w: w}, &log)
		c.Lease, c.Holder, c.LeaseTTL = killable{db.Leases()}, name, time.Second
		replicas[name] = &replica{c: c, stop: start(t, c)}
	}
	var leader, standby string
	waitFor(t, "a leader", func() bool {
		for name, r := range replicas {
			if r.c.Stats().Leader {
				leader = name
			}
		}
		return leader != ""
	})
	standby = map[string]string{"a": "b", "b": "a"}[leader]

	// Concurrent writes; the leader dies in the middle of them.
	posts := []string{createPost(t, writer), createPost(t, writer)}
	killed := make(chan time.Time, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		ctx := context.Background()
		for i := range 60 {
			c := comment.Comment{ID: newID(), PostID: posts[i%2], Text: "hello", CreatedAt: at()}
			err := writer.Comments().Create(ctx, c)
			if err == nil && i%7 == 0 {
				_, err = writer.Comments().Update(ctx, c.ID, "edited", at())
			}
			if err == nil && i%11 == 0 {
				_, err = writer.Comments().Delete(ctx, c.ID)
			}
			if err != nil {
				t.Error(err)
				break
			}
			if i == 30 {
				// Once the leader has applied something, kill it.
				for deadline := time.Now().Add(converge); w.count(leader) == 0 && time.Now().Before(deadline); {
					time.Sleep(5 * time.Millisecond) // polling
				}
				replicas[leader].stop()
				killed <- time.Now()
			}
		}
	})
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	deadAt := <-killed
	before := w.count(leader)
	if n := w.count(standby); n != 0 {
		t.Errorf("the standby applied %d batches while the leader held the lease", n)
	}

	waitFor(t, "the standby to take over", func() bool { return replicas[standby].c.Stats().Leader })
	takeover := time.Since(deadAt)
	if takeover > 10*time.Second {
		t.Errorf("takeover took %v, want within 10s", takeover)
	}
	took := waitConverged(t, writer)
	if n := w.count(leader); n != before {
		t.Errorf("the dead leader applied %d more batches", n-before)
	}
	if w.count(standby) == 0 {
		t.Error("the new leader applied nothing")
	}
	if w.overlaps.Load() != 0 {
		t.Errorf("%d applies overlapped another replica's", w.overlaps.Load())
	}
	t.Logf("takeover after %v; converged %v later", takeover, took)
}

type replica struct {
	c    *changes.Consumer[comment.Comment]
	stop func()
}

// killable is a lease keeper whose holder never releases: the consumer's
// release on the way out is what a SIGKILL skips.
type killable struct{ changes.Leaser }

func (killable) Release(context.Context, string, string) error { return nil }

// watch records which replica applied each batch with events, and whether
// two applies ever ran at once.
type watch struct {
	mu       sync.Mutex
	applied  map[string]int
	active   atomic.Int32
	overlaps atomic.Int32
}

func (w *watch) count(holder string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.applied[holder]
}

// watched is a replica's sink, recording into a watch; it keeps the posts
// store's Rebuilder and DeadLetterer, which the consumer looks for.
type watched struct {
	changes.Sink[comment.Comment]
	holder string
	w      *watch
}

func (s *watched) Apply(ctx context.Context, name string, b changes.Batch[comment.Comment]) error {
	if s.w.active.Add(1) > 1 {
		s.w.overlaps.Add(1)
	}
	defer s.w.active.Add(-1)
	err := s.Sink.Apply(ctx, name, b)
	if err == nil && len(b.Events) > 0 {
		s.w.mu.Lock()
		if s.w.applied == nil {
			s.w.applied = map[string]int{}
		}
		s.w.applied[s.holder]++
		s.w.mu.Unlock()
	}
	return err
}

func (s *watched) Rebuild(ctx context.Context, name string, at changes.Token, fence int64) error {
	return s.Sink.(changes.Rebuilder).Rebuild(ctx, name, at, fence)
}

func (s *watched) RebuildTarget(ctx context.Context, name string) (changes.Token, error) {
	return s.Sink.(changes.Rebuilder).RebuildTarget(ctx, name)
}

func (s *watched) DeadLetter(ctx context.Context, name string, ev changes.Event[comment.Comment], reason string, fence int64) error {
	return s.Sink.(changes.DeadLetterer[comment.Comment]).DeadLetter(ctx, name, ev, reason, fence)
}
