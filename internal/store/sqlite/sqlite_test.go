package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"blog/internal/changes"
	"blog/internal/comment"
	"blog/internal/page"
	"blog/internal/post"
	"blog/internal/store/sqlite/sqlitetest"
	"blog/internal/store/storetest"
)

// testOptions keep the suite fast: a small embed limit exercises bounding
// with few comments, and a short quiet interval ends quiet waits quickly.
var testOptions = Options{EmbedLimit: 3, QuietInterval: 50 * time.Millisecond}

func openTest(t testing.TB, dir string, opt Options) *DB {
	t.Helper()
	db, err := Open(context.Background(), dir, opt)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return db
}

func stores(db *DB) storetest.Stores {
	return storetest.Stores{
		Posts:                        db.Posts(),
		Comments:                     db.Comments(),
		CommentFeed:                  db.CommentFeed(),
		PostFeed:                     db.PostFeed(),
		EmbedLimit:                   db.embedLimit,
		Leases:                       db.Leases(),
		Cascade:                      db.PostCascade(),
		InjectMalformedComment:       injector(db.path, sqlitetest.InjectMalformedComment),
		InjectMalformedCommentOnPost: injector(db.path, sqlitetest.InjectMalformedCommentOnPost),
		DeadLetters:                  deadLetters(db),
		SetCommentCount:              commentCounter(db),
		SetDeleteChunk:               func(n int) { db.deletesPerTx = n },
	}
}

// commentCounter writes a post's comment_count straight into the table, as
// drift would.
func commentCounter(db *DB) func(t *testing.T, postID string, n int) {
	return func(t *testing.T, postID string, n int) {
		t.Helper()
		if _, err := db.w.ExecContext(t.Context(), `UPDATE posts SET comment_count = ? WHERE id = ?`, n, postID); err != nil {
			t.Fatal(err)
		}
	}
}

// injector and deadLetters adapt the store's test and operator helpers to
// the contract suite's hooks.
func injector(path string, inject func(ctx context.Context, path, postID string) (string, error)) func(t *testing.T, postID string) string {
	return func(t *testing.T, postID string) string {
		t.Helper()
		id, err := inject(context.Background(), path, postID)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
}

func deadLetters(db *DB) func(ctx context.Context, consumer string) ([]storetest.Parked, error) {
	return func(ctx context.Context, consumer string) ([]storetest.Parked, error) {
		ds, err := db.DeadLetters(ctx, consumer)
		var out []storetest.Parked
		for _, d := range ds {
			out = append(out, storetest.Parked{Op: d.Op, Key: d.Key, Reason: d.Reason})
		}
		return out, err
	}
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Stores {
		return stores(openTest(t, t.TempDir(), testOptions))
	})
}

// TestContractTwoProcesses runs the suite with every store and feed on its
// own *DB over one file, as when `blog posts` and `blog comments` run as
// separate processes: nothing may depend on in-process wake-ups.
func TestContractTwoProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole contract suite again")
	}
	storetest.Run(t, func(t *testing.T) storetest.Stores {
		dir := t.TempDir()
		a, b := openTest(t, dir, testOptions), openTest(t, dir, testOptions)
		return storetest.Stores{
			Posts:                        a.Posts(),
			Comments:                     b.Comments(),
			CommentFeed:                  b.CommentFeed(),
			PostFeed:                     a.PostFeed(),
			EmbedLimit:                   testOptions.EmbedLimit,
			Leases:                       a.Leases(),
			Cascade:                      b.PostCascade(),
			InjectMalformedComment:       injector(b.path, sqlitetest.InjectMalformedComment),
			InjectMalformedCommentOnPost: injector(b.path, sqlitetest.InjectMalformedCommentOnPost),
			DeadLetters:                  deadLetters(a),
			SetCommentCount:              commentCounter(a),
			SetDeleteChunk:               func(n int) { b.deletesPerTx = n },
		}
	})
}

// ---- fixtures ----

func id() string { return bson.NewObjectID().Hex() }

func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

func mustPost(t testing.TB, db *DB) post.Post {
	t.Helper()
	p := post.Post{ID: id(), Title: "t", Content: "c", CreatedAt: now()}
	if err := db.Posts().Create(context.Background(), p); err != nil {
		t.Fatalf("create post: %v", err)
	}
	return p
}

func mustComment(t testing.TB, db *DB, postID string) comment.Comment {
	t.Helper()
	c := comment.Comment{ID: id(), PostID: postID, Text: "hi", CreatedAt: now()}
	if err := db.Comments().Create(context.Background(), c); err != nil {
		t.Fatalf("create comment: %v", err)
	}
	return c
}

func ctxTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), storetest.Wait)
	t.Cleanup(cancel)
	return ctx
}

// readUntil reads st until it has n events.
func readUntil[T any](t *testing.T, st changes.Stream[T], n int) []changes.Event[T] {
	t.Helper()
	ctx := ctxTimeout(t)
	var evs []changes.Event[T]
	for len(evs) < n {
		b, err := st.Next(ctx)
		if err != nil {
			t.Fatalf("after %d of %d events: %v", len(evs), n, err)
		}
		evs = append(evs, b.Events...)
	}
	return evs
}

func seqOf(t *testing.T, tok changes.Token) int64 {
	t.Helper()
	n, err := strconv.ParseInt(string(tok), 10, 64)
	if err != nil {
		t.Fatalf("token %q is not a decimal seq: %v", tok, err)
	}
	return n
}

// ---- adapter-specific tests ----

func TestOpenCreatesDirAndWAL(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "data")
	db := openTest(t, dir, Options{})
	if _, err := os.Stat(filepath.Join(dir, FileName)); err != nil {
		t.Fatalf("database file: %v", err)
	}
	var mode string
	if err := db.r.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode %q, want wal", mode)
	}
	if db.embedLimit != post.DefaultEmbedLimit || db.poll != defaultPollInterval || db.quiet != defaultQuietInterval {
		t.Errorf("zero Options gave limit %d, poll %v, quiet %v", db.embedLimit, db.poll, db.quiet)
	}
	// The read pool refuses writes: they belong to the single writer.
	if _, err := db.r.Exec(`DELETE FROM posts`); err == nil {
		t.Errorf("read pool accepted a write")
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(context.Background(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.w.Exec(fmt.Sprintf("PRAGMA user_version = %d", len(migrations)+1)); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(context.Background(), dir, Options{})
	if err == nil {
		db.Close()
		t.Fatal("opened a file with a newer schema")
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := Open(ctx, dir, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	p := mustPost(t, db)
	c := mustComment(t, db, p.ID)
	evs := readUntil(t, openStreamT(t, db.CommentFeed(), changes.Token("0")), 1)
	if err := db.Posts().Apply(ctx, "posts", changes.Batch[comment.Comment]{Events: evs, Token: evs[0].Token}); err != nil {
		t.Fatal(err)
	}
	headBefore, _ := db.CommentFeed().Head(ctx)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openTest(t, dir, testOptions)
	got, err := db.Posts().Get(ctx, p.ID)
	if err != nil {
		t.Fatalf("post after reopen: %v", err)
	}
	if got.CommentCount != 1 || len(got.Comments) != 1 || got.Comments[0].ID != c.ID {
		t.Errorf("post after reopen: count %d, comments %+v", got.CommentCount, got.Comments)
	}
	if _, err := db.Comments().Get(ctx, c.ID); err != nil {
		t.Errorf("comment after reopen: %v", err)
	}
	tok, err := db.Posts().Checkpoint(ctx, "posts")
	if err != nil || string(tok) != string(evs[0].Token) {
		t.Errorf("checkpoint after reopen = %q, %v; want %q", tok, err, evs[0].Token)
	}
	headAfter, _ := db.CommentFeed().Head(ctx)
	if string(headAfter) != string(headBefore) {
		t.Errorf("head after reopen %q, before %q", headAfter, headBefore)
	}
	// The log survives too: a consumer resumes where it left off.
	again := readUntil(t, openStreamT(t, db.CommentFeed(), changes.Token("0")), 1)
	if again[0].Key != c.ID {
		t.Errorf("replayed event %s, want %s", again[0].Key, c.ID)
	}
}

func openStreamT[T any](t *testing.T, f changes.Feed[T], tok changes.Token) changes.Stream[T] {
	t.Helper()
	st, err := f.Open(context.Background(), tok)
	if err != nil {
		t.Fatalf("open %q: %v", tok, err)
	}
	t.Cleanup(func() { st.Close(context.Background()) })
	return st
}

// TestTwoProcessesSeeEachOther: a stream of one DB wakes for commits made
// through another DB on the same file (which cannot signal it) by polling.
func TestTwoProcessesSeeEachOther(t *testing.T) {
	dir := t.TempDir()
	opt := Options{PollInterval: 10 * time.Millisecond, QuietInterval: time.Minute}
	a, b := openTest(t, dir, opt), openTest(t, dir, opt)
	st := openStreamT(t, b.CommentFeed(), nil)

	p := mustPost(t, a)
	c := mustComment(t, a, p.ID)
	// b was not told of a's commit, and its quiet interval outlasts the
	// wait: only polling can deliver this in time.
	evs := readUntil(t, st, 1)
	if len(evs) != 1 || evs[0].Key != c.ID || evs[0].Op != changes.Insert {
		t.Fatalf("events %+v, want the insert of %s", evs, c.ID)
	}
	if _, err := b.Posts().Get(context.Background(), p.ID); err != nil {
		t.Errorf("post written by the other DB: %v", err)
	}
}

// TestConcurrentWriters: writers in two "processes" never see SQLITE_BUSY,
// and the log's seqs stay gap-free and in commit order.
func TestConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	dbs := []*DB{openTest(t, dir, testOptions), openTest(t, dir, testOptions)}
	p := mustPost(t, dbs[0])
	const workers, each = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, len(dbs)*workers*each)
	for _, db := range dbs {
		for range workers {
			wg.Go(func() {
				for range each {
					c := comment.Comment{ID: id(), PostID: p.ID, Text: "x", CreatedAt: now()}
					if err := db.Comments().Create(context.Background(), c); err != nil {
						errs <- err
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent create: %v", err)
	}
	const total = 2 * workers * each
	got, err := dbs[1].Comments().ListByPost(context.Background(), p.ID, page.Query{Limit: total + 1})
	if err != nil || len(got) != total {
		t.Fatalf("listed %d comments, %v; want %d", len(got), err, total)
	}
	evs := readUntil(t, openStreamT(t, dbs[1].CommentFeed(), changes.Token("1")), total)
	for i, e := range evs {
		if want := int64(i + 2); seqOf(t, e.Token) != want {
			t.Fatalf("event %d has seq %s, want %d (a gap or reorder)", i, e.Token, want)
		}
	}
}

// TestQuietTokensNeverSkip: a consumer that reopens its stream after every
// batch, empty or not, while posts and comments are written concurrently,
// sees every comment exactly once, in order.
func TestQuietTokensNeverSkip(t *testing.T) {
	db := openTest(t, t.TempDir(), Options{QuietInterval: 2 * time.Millisecond, PollInterval: time.Millisecond})
	feed := db.CommentFeed()
	tok, err := feed.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p := mustPost(t, db)
	const n = 40
	var want []string
	var wg sync.WaitGroup
	wg.Go(func() {
		ctx := context.Background()
		for range n {
			other := post.Post{ID: id(), Title: "t", CreatedAt: now()}
			c := comment.Comment{ID: id(), PostID: p.ID, Text: "hi", CreatedAt: now()}
			if err := db.Posts().Create(ctx, other); err != nil {
				t.Errorf("create post: %v", err)
				return
			}
			if err := db.Comments().Create(ctx, c); err != nil {
				t.Errorf("create comment: %v", err)
				return
			}
			want = append(want, c.ID)
		}
	})
	ctx := ctxTimeout(t)
	var got []string
	empty := 0
	for len(got) < n {
		st, err := feed.Open(ctx, tok)
		if err != nil {
			t.Fatalf("open %q: %v", tok, err)
		}
		b, err := st.Next(ctx)
		st.Close(ctx)
		if err != nil {
			t.Fatalf("after %d events: %v", len(got), err)
		}
		if len(b.Events) == 0 {
			empty++
		}
		for _, e := range b.Events {
			got = append(got, e.Key)
		}
		tok = b.Token
	}
	wg.Wait()
	if !slices.Equal(got, want) {
		t.Errorf("comment events\n got %v\nwant %v", got, want)
	}
	t.Logf("%d empty batches", empty)
}

func TestBatchIsCapped(t *testing.T) {
	db := openTest(t, t.TempDir(), testOptions)
	db.batch = 2
	st := openStreamT(t, db.CommentFeed(), nil)
	p := mustPost(t, db)
	var ids []string
	for range 5 {
		ids = append(ids, mustComment(t, db, p.ID).ID)
	}
	b, err := st.Next(ctxTimeout(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Events) != 2 {
		t.Fatalf("first batch has %d events, want the cap of 2", len(b.Events))
	}
	// A full batch stops at its last event, not at the head: more follow.
	if string(b.Token) != string(b.Events[1].Token) {
		t.Errorf("full batch token %q, want its last event's %q", b.Token, b.Events[1].Token)
	}
	rest := readUntil(t, st, 3)
	var got []string
	for _, e := range append(b.Events, rest...) {
		got = append(got, e.Key)
	}
	if !slices.Equal(got, ids) {
		t.Errorf("events %v, want %v", got, ids)
	}
}

func TestTokensAreSeqs(t *testing.T) {
	db := openTest(t, t.TempDir(), testOptions)
	ctx := context.Background()
	h, err := db.PostFeed().Head(ctx)
	if err != nil || string(h) != "0" {
		t.Fatalf("head of an empty log = %q, %v; want \"0\"", h, err)
	}
	st := openStreamT(t, db.PostFeed(), h)
	mustPost(t, db)
	mustPost(t, db)
	evs := readUntil(t, st, 2)
	if a, b := seqOf(t, evs[0].Token), seqOf(t, evs[1].Token); a != 1 || b != 2 {
		t.Errorf("seqs %d, %d; want 1, 2", a, b)
	}
}

func TestHistoryLost(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, t.TempDir(), testOptions)
	feed := db.CommentFeed()
	behind := openStreamT(t, feed, changes.Token("0"))
	p := mustPost(t, db) // seq 1
	var cs []comment.Comment
	for range 5 { // seqs 2..6
		cs = append(cs, mustComment(t, db, p.ID))
	}
	n, err := db.Prune(ctx, 3)
	if err != nil || n != 3 {
		t.Fatalf("prune through 3 = %d, %v; want 3 deleted", n, err)
	}

	for _, tc := range []struct {
		name string
		tok  changes.Token
		lost bool
	}{
		{"before-pruned", changes.Token("0"), true},
		{"inside-pruned", changes.Token("2"), true},
		{"at-prune-point", changes.Token("3"), false},
		{"after-prune-point", changes.Token("5"), false},
		{"head", nil, false},
		{"beyond-head", changes.Token("99"), true},
		{"malformed", changes.Token("x1"), true},
		{"not-canonical", changes.Token("03"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := feed.Open(ctx, tc.tok)
			if st != nil {
				defer st.Close(ctx)
			}
			if lost := errors.Is(err, changes.ErrHistoryLost); lost != tc.lost {
				t.Fatalf("open %q: err = %v, want lost %v", tc.tok, err, tc.lost)
			}
			if !tc.lost && err != nil {
				t.Fatalf("open %q: %v", tc.tok, err)
			}
		})
	}

	// Resuming right at the prune point loses nothing.
	evs := readUntil(t, openStreamT(t, feed, changes.Token("3")), 3)
	if evs[0].Key != cs[2].ID {
		t.Errorf("first event after prune point %s, want %s", evs[0].Key, cs[2].ID)
	}
	// A stream already open behind the prune point fails rather than skip.
	_, err = behind.Next(ctxTimeout(t))
	if !errors.Is(err, changes.ErrHistoryLost) {
		t.Errorf("stream behind prune point: err = %v, want ErrHistoryLost", err)
	}
	// Pruning never goes past the head, and never back.
	if _, err := db.Prune(ctx, 1000); err != nil {
		t.Fatal(err)
	}
	if _, err := feed.Open(ctx, changes.Token("6")); err != nil {
		t.Errorf("open at head after pruning everything: %v", err)
	}
	if _, err := db.Prune(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := feed.Open(ctx, changes.Token("5")); !errors.Is(err, changes.ErrHistoryLost) {
		t.Errorf("prune to an earlier point moved the mark back: %v", err)
	}
}

func TestStreamEnds(t *testing.T) {
	db := openTest(t, t.TempDir(), Options{QuietInterval: time.Minute})
	st := openStreamT(t, db.CommentFeed(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := st.Next(ctx); errc <- err }()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("next after cancel: %v", err)
	}
	go func() { _, err := st.Next(context.Background()); errc <- err }()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err == nil {
		t.Errorf("next after close returned no error")
	}
}

func TestApplyRefusesNoToken(t *testing.T) {
	db := openTest(t, t.TempDir(), testOptions)
	err := db.Posts().Apply(context.Background(), "posts", changes.Batch[comment.Comment]{})
	if err == nil {
		t.Fatal("applied a batch with no token")
	}
	tok, _ := db.Posts().Checkpoint(context.Background(), "posts")
	if tok != nil {
		t.Errorf("checkpoint %q saved from a tokenless batch", tok)
	}
}

// TestCreateDuplicateIsWrapped: domain errors keep their context and their
// identity.
func TestCreateDuplicateIsWrapped(t *testing.T) {
	db := openTest(t, t.TempDir(), testOptions)
	p := mustPost(t, db)
	err := db.Posts().Create(context.Background(), p)
	if !errors.Is(err, post.ErrDuplicate) || err.Error() == post.ErrDuplicate.Error() {
		t.Errorf("duplicate create: %v", err)
	}
}

// ---- benchmarks ----

func BenchmarkCreateComment(b *testing.B) {
	db := openTest(b, b.TempDir(), Options{})
	p := mustPost(b, db)
	ctx := context.Background()
	t0 := now()
	for i := 0; b.Loop(); i++ {
		c := comment.Comment{ID: id(), PostID: p.ID, Text: "benchmark", CreatedAt: t0.Add(time.Duration(i) * time.Millisecond)}
		if err := db.Comments().Create(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkApplyInsert(b *testing.B) {
	for _, size := range []int{1, 100} {
		b.Run(fmt.Sprint("batch-", size), func(b *testing.B) {
			db := openTest(b, b.TempDir(), Options{})
			p := mustPost(b, db)
			ctx := context.Background()
			t0 := now()
			seq := 0
			for b.Loop() {
				batch := changes.Batch[comment.Comment]{Events: make([]changes.Event[comment.Comment], size)}
				for j := range batch.Events {
					seq++
					c := comment.Comment{ID: id(), PostID: p.ID, Text: "benchmark", CreatedAt: t0.Add(time.Duration(seq) * time.Millisecond)}
					batch.Events[j] = changes.Event[comment.Comment]{Op: changes.Insert, Key: c.ID, Doc: c, Found: true, At: t0, Token: encodeToken(int64(seq))}
				}
				batch.Token = encodeToken(int64(seq))
				if err := db.Posts().Apply(ctx, "bench", batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(seq), "ns/event")
		})
	}
}

// TestUpdateCopiesMissingComment: an update event for a comment the read
// model never saw (its insert predates the consumer's first checkpoint)
// copies it, so the edit shows and the count includes it; replaying the
// update changes nothing more.
func TestUpdateCopiesMissingComment(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, t.TempDir(), testOptions)
	p := mustPost(t, db)
	c := mustComment(t, db, p.ID)
	st := openStreamT(t, db.CommentFeed(), nil)
	if _, err := db.Comments().Update(ctx, c.ID, "edited", now()); err != nil {
		t.Fatal(err)
	}
	evs := readUntil(t, st, 1)
	b := changes.Batch[comment.Comment]{Events: evs, Token: evs[0].Token}
	for range 2 {
		if err := db.Posts().Apply(ctx, "posts", b); err != nil {
			t.Fatal(err)
		}
		got, err := db.Posts().Get(ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.CommentCount != 1 || len(got.Comments) != 1 || got.Comments[0].Text != "edited" {
			t.Errorf("post after update of an unseen comment: count %d, comments %+v", got.CommentCount, got.Comments)
		}
	}
}

// TestReplayLogsNoPostChange: a replayed batch changes no post, so it adds
// nothing to the posts feed (its consumers are not woken for nothing).
func TestReplayLogsNoPostChange(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, t.TempDir(), testOptions)
	p := mustPost(t, db)
	h, _ := db.CommentFeed().Head(ctx)
	mustComment(t, db, p.ID)
	evs := readUntil(t, openStreamT(t, db.CommentFeed(), h), 1)
	b := changes.Batch[comment.Comment]{Events: evs, Token: evs[0].Token}
	if err := db.Posts().Apply(ctx, "posts", b); err != nil {
		t.Fatal(err)
	}
	before, _ := db.PostFeed().Head(ctx)
	if err := db.Posts().Apply(ctx, "posts", b); err != nil {
		t.Fatal(err)
	}
	after, _ := db.PostFeed().Head(ctx)
	if string(before) != string(after) {
		t.Errorf("replay moved the log head from %s to %s", before, after)
	}
}

// TestUndecodableChangeIsReported: a log entry whose document does not
// decode reaches the consumer as an event with Err set, and the stream
// goes on past it instead of failing at it on every reopen.
func TestUndecodableChangeIsReported(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, t.TempDir(), testOptions)
	p := mustPost(t, db)
	st := openStreamT(t, db.CommentFeed(), nil)
	if _, err := db.w.Exec(`INSERT INTO changelog (collection, op, doc_id, doc, at) VALUES (?, 'insert', ?, '{"createdAt": "yesterday"}', 0)`, collComments, id()); err != nil {
		t.Fatal(err)
	}
	c := mustComment(t, db, p.ID)
	evs := readUntil(t, st, 2)
	if evs[0].Err == nil || evs[0].Found {
		t.Errorf("undecodable event: Err %v, Found %v; want an error and no document", evs[0].Err, evs[0].Found)
	}
	if evs[1].Err != nil || evs[1].Key != c.ID {
		t.Errorf("next event %s (err %v), want %s", evs[1].Key, evs[1].Err, c.ID)
	}
	// Applying it is refused whole, rather than silently skipping it: the
	// consumer parks it as a dead letter instead.
	if err := db.Posts().Apply(ctx, "posts", changes.Batch[comment.Comment]{Events: evs, Token: evs[1].Token}); err == nil {
		t.Fatal("applied a batch with an undecodable event")
	}
	got, err := db.Posts().Get(ctx, p.ID)
	if err != nil || got.CommentCount != 0 {
		t.Errorf("post after refused apply: count %d, %v; want 0", got.CommentCount, err)
	}
	if tok, _ := db.Posts().Checkpoint(ctx, "posts"); tok != nil {
		t.Errorf("refused apply saved checkpoint %q", tok)
	}
}

// TestConcurrentFirstOpen: processes that start together on a new directory
// (`blog posts` and `blog comments` launched at once) all open it; one
// migrates, the others wait for it.
func TestConcurrentFirstOpen(t *testing.T) {
	dir := t.TempDir()
	const n = 6
	errs := make(chan error, n)
	for range n {
		go func() {
			db, err := Open(t.Context(), dir, Options{})
			if err == nil {
				err = db.Close()
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent first open: %v", err)
		}
	}
}

// TestListsSkipUnreadableRows: rows written by hand with a value SQLite
// keeps in the wrong type (a created_at with a fraction of a millisecond,
// stored as REAL) are skipped by the posts list and by a post's embedded
// comments instead of failing them, and what they would have taken a
// place of is topped up from the rows after them.
func TestListsSkipUnreadableRows(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, t.TempDir(), testOptions) // embeds 3
	t0 := now().Add(-time.Hour)
	var want []string // newest first
	for i := 5; i >= 0; i-- {
		at := t0.Add(time.Duration(i) * time.Second)
		if i == 3 {
			if _, err := db.w.Exec(`INSERT INTO posts (id, title, content, created_at) VALUES (?, 'bad', 'x', ?)`,
				id(), float64(ms(at))+0.5); err != nil {
				t.Fatal(err)
			}
			continue
		}
		p := post.Post{ID: id(), Title: fmt.Sprint("p", i), Content: "c", CreatedAt: at}
		if err := db.Posts().Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		want = append(want, p.ID)
	}
	for _, size := range []int{1, 2, 3, 10} {
		var got []string
		q := page.Query{Limit: size}
		for range 10 {
			ps, err := db.Posts().List(ctx, q)
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

	// A post's embedded comments: four applied copies, then a bad one
	// that is the newest.
	p := want[0]
	h, _ := db.CommentFeed().Head(ctx)
	var cs []comment.Comment
	for i := range 4 {
		c := comment.Comment{ID: id(), PostID: p, Text: fmt.Sprint("c", i), CreatedAt: t0.Add(time.Duration(i) * time.Second)}
		if err := db.Comments().Create(ctx, c); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	evs := readUntil(t, openStreamT(t, db.CommentFeed(), h), 4)
	if err := db.Posts().Apply(ctx, "posts", changes.Batch[comment.Comment]{Events: evs, Token: evs[3].Token}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.w.Exec(`INSERT INTO post_comments (comment_id, post_id, text, created_at) VALUES (?, ?, 'bad', ?)`,
		id(), p, float64(ms(t0.Add(time.Minute)))+0.5); err != nil {
		t.Fatal(err)
	}
	got, err := db.Posts().Get(ctx, p)
	if err != nil {
		t.Fatalf("get the post: %v", err)
	}
	var ids []string
	for _, c := range got.Comments {
		ids = append(ids, c.ID)
	}
	if exp := []string{cs[1].ID, cs[2].ID, cs[3].ID}; !slices.Equal(ids, exp) {
		t.Errorf("embedded %v, want the 3 latest readable %v", ids, exp)
	}
	if ps, err := db.Posts().List(ctx, page.Query{Limit: 1}); err != nil || len(ps) != 1 || len(ps[0].Comments) != 3 {
		t.Errorf("list: %v, %v; want the post with 3 embedded comments", ps, err)
	}
}

// TestListEmbedsAsGet checks that a page's embedded comments, read for all
// its posts in one statement (embeddedMany), are those Get reads post by
// post (embedded): the latest EmbedLimit, oldest first, with ties on
// created_at ordered by id, for pages that need one statement, several
// sizes of it, and more than one (past embeddedManyMax).
func TestListEmbedsAsGet(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, t.TempDir(), testOptions) // embeds 3
	t0 := now().Add(-time.Hour)
	const posts = embeddedManyMax + 5
	for i := range posts {
		p := post.Post{ID: id(), Title: fmt.Sprint("p", i), Content: "c", CreatedAt: t0.Add(time.Duration(i) * time.Second)}
		if err := db.Posts().Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		for j := range i % 6 { // 0 to 5 copies; pairs share a created_at
			var updated any
			if j == 1 {
				updated = ms(t0) + 7
			}
			if _, err := db.w.Exec(`INSERT INTO post_comments (comment_id, post_id, text, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?)`, fmt.Sprintf("c%d-%d", i, 5-j), p.ID, fmt.Sprint("t", j), ms(t0)+int64(j/2), updated); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, size := range []int{1, 3, 20, posts} {
		t.Run(fmt.Sprint("pages-of-", size), func(t *testing.T) {
			q := page.Query{Limit: size}
			seen := 0
			for seen < posts {
				ps, err := db.Posts().List(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				if len(ps) == 0 {
					t.Fatalf("empty page after %d posts", seen)
				}
				for _, p := range ps {
					want, err := db.Posts().Get(ctx, p.ID)
					if err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(p.Comments, want.Comments) {
						t.Fatalf("post %s: listed comments %+v, Get reads %+v", p.Title, p.Comments, want.Comments)
					}
				}
				seen += len(ps)
				c := ps[len(ps)-1].Cursor()
				q.After = &c
			}
			if seen != posts {
				t.Errorf("listed %d posts, want %d", seen, posts)
			}
		})
	}
}
