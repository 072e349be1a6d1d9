package sqlite

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"blog/internal/changes"
	"blog/internal/comment"
	"blog/internal/page"
	"blog/internal/post"
	"blog/internal/store/sqlite/sqlitetest"
)

// Adapter-specific tests of issue 3's machinery: what the contract suite
// cannot reach portably (chunk sizes, a crash between chunks, the change
// log's retention).

var errCrash = errors.New("simulated crash")

// crashAfter makes db's rebuilds stop, as a crash would, after n more
// committed chunks; it returns a counter of the chunks committed since.
func crashAfter(db *DB, n int) *int {
	count := new(int)
	db.afterChunk = func() error {
		*count++
		if n >= 0 && *count >= n {
			return errCrash
		}
		return nil
	}
	return count
}

// drifted returns the differences between each post's read model and its
// stored comments (empty when converged).
func drifted(t *testing.T, db *DB, ids ...string) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	for _, id := range ids {
		p, err := db.Posts().Get(ctx, id)
		if err != nil {
			t.Fatalf("get post %s: %v", id, err)
		}
		cs, err := db.Comments().ListByPost(ctx, id, page.Query{Limit: page.MaxLimit})
		if err != nil {
			t.Fatal(err)
		}
		want := cs[max(0, len(cs)-db.embedLimit):]
		var got, exp []string
		for _, c := range p.Comments {
			got = append(got, c.ID+":"+c.Text)
		}
		for _, c := range want {
			exp = append(exp, c.ID+":"+c.Text)
		}
		if p.CommentCount != len(cs) || !slices.Equal(got, exp) {
			out = append(out, fmt.Sprintf("post %s: count %d, embeds %v; want %d, %v", id, p.CommentCount, got, len(cs), exp))
		}
	}
	return out
}

// commentAt creates a comment with a distinct createdAt, so the order of a
// post's comments is fixed.
func commentAt(t *testing.T, db *DB, postID string, i int) comment.Comment {
	t.Helper()
	c := comment.Comment{ID: id(), PostID: postID, Text: fmt.Sprint("c", i), CreatedAt: now().Add(time.Duration(i) * time.Millisecond)}
	if err := db.Comments().Create(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return c
}

// sortedPosts creates n posts with a few comments each and returns their
// ids in id order, the order a rebuild walks them in.
func sortedPosts(t *testing.T, db *DB, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		p := mustPost(t, db)
		for j := range i%4 + 1 {
			commentAt(t, db, p.ID, j)
		}
		ids = append(ids, p.ID)
	}
	slices.Sort(ids)
	return ids
}

// TestRebuildResumes: a rebuild that crashes between chunks continues, on
// the next call towards the same target, from the chunk after the last one
// it committed (RebuildTarget names that target), and the changes made
// meanwhile, delivered again from the target, converge.
func TestRebuildResumes(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, t.TempDir(), testOptions)
	db.rebuildPosts = 2
	rb := db.Posts().(changes.Rebuilder)
	const name = "rebuild-test"
	ids := sortedPosts(t, db, 7) // 4 chunks: 2+2+2+1
	at, _ := db.CommentFeed().Head(ctx)

	if tok, err := rb.RebuildTarget(ctx, name); err != nil || tok != nil {
		t.Fatalf("target before any rebuild = %q, %v; want nil", tok, err)
	}
	crashAfter(db, 2)
	if err := rb.Rebuild(ctx, name, at, 0); !errors.Is(err, errCrash) {
		t.Fatalf("rebuild: %v, want the simulated crash", err)
	}
	if tok, err := rb.RebuildTarget(ctx, name); err != nil || string(tok) != string(at) {
		t.Fatalf("target after the crash = %q, %v; want %q", tok, err, at)
	}
	if d := drifted(t, db, ids[:4]...); len(d) != 0 {
		t.Errorf("posts of the committed chunks: %v", d)
	}
	if d := drifted(t, db, ids[4:]...); len(d) != 3 {
		t.Errorf("posts after the crash point should not be rebuilt yet; drift %v", d)
	}
	if tok, _ := rb.(changes.Sink[comment.Comment]).Checkpoint(ctx, name); tok != nil {
		t.Errorf("checkpoint %q saved by an unfinished rebuild", tok)
	}

	// Changes while the consumer is down, to done and to pending posts.
	done, pending := ids[0], ids[6]
	cs, _ := db.Comments().ListByPost(ctx, done, page.Query{Limit: 10})
	if _, err := db.Comments().Delete(ctx, cs[0].ID); err != nil {
		t.Fatal(err)
	}
	commentAt(t, db, done, 10)
	commentAt(t, db, pending, 10)

	chunks := crashAfter(db, -1)
	if err := rb.Rebuild(ctx, name, at, 0); err != nil {
		t.Fatalf("resumed rebuild: %v", err)
	}
	if *chunks != 2 {
		t.Errorf("resumed rebuild ran %d chunks, want the 2 left", *chunks)
	}
	if tok, _ := db.Posts().Checkpoint(ctx, name); string(tok) != string(at) {
		t.Errorf("checkpoint %q, want %q", tok, at)
	}
	if tok, _ := rb.RebuildTarget(ctx, name); tok != nil {
		t.Errorf("target after a finished rebuild %q, want nil", tok)
	}
	// The consumer goes on from at: the changes since reach every post.
	evs := readUntil(t, openStreamT(t, db.CommentFeed(), at), 3)
	if err := db.Posts().Apply(ctx, name, changes.Batch[comment.Comment]{Events: evs, Token: evs[2].Token}); err != nil {
		t.Fatal(err)
	}
	if d := drifted(t, db, ids...); len(d) != 0 {
		t.Errorf("after the resumed rebuild and the replay: %v", d)
	}
}

// TestRebuildTowardsAnotherTargetStartsOver: called with a newer target
// than the interrupted one (the consumer does so only when the feed lost the
// old target too), the rebuild starts over, whether or not the changes in
// between are still logged, and converges.
func TestRebuildTowardsAnotherTargetStartsOver(t *testing.T) {
	for _, pruned := range []bool{false, true} {
		t.Run(fmt.Sprint("pruned=", pruned), func(t *testing.T) {
			ctx := context.Background()
			db := openTest(t, t.TempDir(), testOptions)
			db.rebuildPosts = 2
			rb := db.Posts().(changes.Rebuilder)
			const name = "rebuild-test"
			ids := sortedPosts(t, db, 5)
			at, _ := db.CommentFeed().Head(ctx)
			crashAfter(db, 1)
			if err := rb.Rebuild(ctx, name, at, 0); !errors.Is(err, errCrash) {
				t.Fatalf("rebuild: %v, want the simulated crash", err)
			}
			// Changes to a post the first chunk already rebuilt.
			cs, _ := db.Comments().ListByPost(ctx, ids[0], page.Query{Limit: 10})
			if _, err := db.Comments().Update(ctx, cs[0].ID, "edited", now()); err != nil {
				t.Fatal(err)
			}
			commentAt(t, db, ids[0], 10)
			if pruned {
				h, _ := db.CommentFeed().Head(ctx)
				if _, err := db.Prune(ctx, seqOf(t, h)); err != nil {
					t.Fatal(err)
				}
			}
			newer, _ := db.CommentFeed().Head(ctx)
			chunks := crashAfter(db, -1)
			if err := rb.Rebuild(ctx, name, newer, 0); err != nil {
				t.Fatalf("rebuild towards the newer target: %v", err)
			}
			if want := 3; *chunks != want { // all of them again
				t.Errorf("ran %d chunks, want %d", *chunks, want)
			}
			if d := drifted(t, db, ids...); len(d) != 0 {
				t.Errorf("after the rebuild: %v", d)
			}
			if tok, _ := db.Posts().Checkpoint(ctx, name); string(tok) != string(newer) {
				t.Errorf("checkpoint %q, want %q", tok, newer)
			}
		})
	}
}

// TestRebuildLogsChangedPostsOnly: the rebuild logs a post on the posts feed
// only when it changed it, so rebuilding a converged read model is quiet.
func TestRebuildLogsChangedPostsOnly(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, t.TempDir(), testOptions)
	rb := db.Posts().(changes.Rebuilder)
	ids := sortedPosts(t, db, 3)
	at, _ := db.CommentFeed().Head(ctx)
	if err := rb.Rebuild(ctx, "r", at, 0); err != nil {
		t.Fatal(err)
	}
	evs := readUntil(t, openStreamT(t, db.PostFeed(), at), 3)
	var got []string
	for _, e := range evs {
		got = append(got, e.Key)
	}
	slices.Sort(got)
	if !slices.Equal(got, ids) {
		t.Errorf("rebuild logged posts %v, want %v", got, ids)
	}
	before, _ := db.PostFeed().Head(ctx)
	if err := rb.Rebuild(ctx, "r", at, 0); err != nil {
		t.Fatal(err)
	}
	if after, _ := db.PostFeed().Head(ctx); string(after) != string(before) {
		t.Errorf("rebuilding a converged read model logged changes: head %s -> %s", before, after)
	}
}

// TestCascadeChunks: deleting a post's many comments takes several
// transactions of at most deletesPerTx, each logged, and the sweep after lost
// history does the same across posts.
func TestCascadeChunks(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, t.TempDir(), testOptions)
	db.deletesPerTx, db.rebuildPosts = 2, 2
	cascade := db.PostCascade()
	kept := mustPost(t, db)
	commentAt(t, db, kept.ID, 0)
	p := mustPost(t, db)
	for i := range 5 {
		commentAt(t, db, p.ID, i)
	}
	h, _ := db.PostFeed().Head(ctx)
	ch, _ := db.CommentFeed().Head(ctx)
	if err := db.Posts().Delete(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	evs := readUntil(t, openStreamT(t, db.PostFeed(), h), 1)
	if err := cascade.Apply(ctx, "cascade", changes.Batch[post.Post]{Events: evs, Token: evs[0].Token}); err != nil {
		t.Fatal(err)
	}
	if left, _ := db.Comments().ListByPost(ctx, p.ID, page.Query{Limit: 10}); len(left) != 0 {
		t.Errorf("%d comments left of the deleted post", len(left))
	}
	if dels := readUntil(t, openStreamT(t, db.CommentFeed(), ch), 5); len(dels) != 5 {
		t.Errorf("%d delete events, want 5", len(dels))
	}

	// The sweep: orphans of three posts, 3 comments each, no events.
	var gone []string
	for range 3 {
		o := mustPost(t, db)
		for i := range 3 {
			commentAt(t, db, o.ID, i)
		}
		gone = append(gone, o.ID)
	}
	for _, id := range gone {
		if _, err := db.w.Exec(`DELETE FROM posts WHERE id = ?`, id); err != nil {
			t.Fatal(err)
		}
	}
	chunks := crashAfter(db, -1)
	at, _ := db.PostFeed().Head(ctx)
	if err := cascade.(changes.Rebuilder).Rebuild(ctx, "cascade", at, 0); err != nil {
		t.Fatal(err)
	}
	for _, id := range gone {
		if left, _ := db.Comments().ListByPost(ctx, id, page.Query{Limit: 10}); len(left) != 0 {
			t.Errorf("%d comments left of deleted post %s", len(left), id)
		}
	}
	if left, _ := db.Comments().ListByPost(ctx, kept.ID, page.Query{Limit: 10}); len(left) != 1 {
		t.Errorf("%d comments left of the kept post, want 1", len(left))
	}
	if *chunks < 5 {
		t.Errorf("sweep of 9 comments in %d chunks, want at least 5 of at most 2 deletions each", *chunks)
	}
}

// TestPruneBefore: pruning by age deletes the old prefix of the log, stops
// at the first entry young enough, and a consumer behind it is told its
// history is lost.
func TestPruneBefore(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, t.TempDir(), testOptions)
	p := mustPost(t, db) // seq 1
	for range 4 {        // seqs 2..5
		mustComment(t, db, p.ID)
	}
	if n, err := db.PruneBefore(ctx, time.Hour); err != nil || n != 0 {
		t.Fatalf("prune entries older than an hour = %d, %v; want 0", n, err)
	}
	// Age the entries: 1, 2 and 4 are old, 3 is not, so only 1..2 go.
	old := ms(time.Now().Add(-2 * time.Hour))
	if _, err := db.w.Exec(`UPDATE changelog SET at = ? WHERE seq IN (1, 2, 4)`, old); err != nil {
		t.Fatal(err)
	}
	if n, err := db.PruneBefore(ctx, time.Hour); err != nil || n != 2 {
		t.Fatalf("prune = %d, %v; want the 2 entries before the first young one", n, err)
	}
	for tok, lost := range map[string]bool{"0": true, "1": true, "2": false, "4": false} {
		st, err := db.CommentFeed().Open(ctx, changes.Token(tok))
		if st != nil {
			st.Close(ctx)
		}
		if got := errors.Is(err, changes.ErrHistoryLost); got != lost || (!lost && err != nil) {
			t.Errorf("open %s after prune: %v, want lost %v", tok, err, lost)
		}
	}
	if _, err := db.PruneBefore(ctx, -time.Second); err == nil {
		t.Error("pruned with a negative age")
	}

	// A long log is pruned in several transactions.
	if _, err := db.w.Exec(`UPDATE changelog SET at = ?`, old); err != nil {
		t.Fatal(err)
	}
	const many = 2*pruneChunk + 17
	if _, err := db.w.Exec(`
		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
		INSERT INTO changelog (collection, op, doc_id, doc, at) SELECT 'posts', 'delete', 'x', NULL, ? FROM n`,
		many, old); err != nil {
		t.Fatal(err)
	}
	young := mustComment(t, db, p.ID)
	n, err := db.PruneBefore(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if n != many+3 { // 3, 4, 5 and the many; not the young comment
		t.Errorf("pruned %d entries, want %d", n, many+3)
	}
	var left int
	if err := db.r.QueryRow(`SELECT count(*) FROM changelog`).Scan(&left); err != nil || left != 1 {
		t.Errorf("%d entries left, %v; want 1", left, err)
	}
	evs := readUntil(t, openStreamT(t, db.CommentFeed(), changes.Token(fmt.Sprint(5+many))), 1)
	if evs[0].Key != young.ID {
		t.Errorf("entry after the pruned ones %s, want %s", evs[0].Key, young.ID)
	}
}

// TestDeadLetterKeepsRawDoc: a parked malformed change keeps its document as
// it was written, and parking it twice records it once.
func TestDeadLetterKeepsRawDoc(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, t.TempDir(), testOptions)
	p := mustPost(t, db)
	h, _ := db.CommentFeed().Head(ctx)
	bad, err := sqlitetest.InjectMalformedComment(ctx, db.path, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	ev := readUntil(t, openStreamT(t, db.CommentFeed(), h), 1)[0]
	if ev.Err == nil || ev.Key != bad {
		t.Fatalf("event %+v, want the malformed comment %s with an error", ev, bad)
	}
	dl := db.Posts().(changes.DeadLetterer[comment.Comment])
	for range 2 {
		if err := dl.DeadLetter(ctx, "posts", ev, ev.Err.Error(), 0); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := db.DeadLetters(ctx, "posts")
	if err != nil || len(ds) != 1 {
		t.Fatalf("dead letters %+v, %v; want 1", ds, err)
	}
	d := ds[0]
	if d.Key != bad || d.Op != changes.Insert || !strings.Contains(string(d.Doc), `"postId":123`) ||
		!strings.Contains(d.Reason, "cannot unmarshal") || string(d.Token) != string(ev.Token) || d.At.IsZero() {
		t.Errorf("dead letter %+v", d)
	}
	// The malformed row belongs to no post: the post's listing is intact.
	if cs, err := db.Comments().ListByPost(ctx, p.ID, page.Query{}); err != nil || len(cs) != 0 {
		t.Errorf("post's comments %v, %v; want none", cs, err)
	}
}
