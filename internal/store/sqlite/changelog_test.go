package sqlite

import (
	"context"
	"testing"
	"time"
)

// TestPruneApplied: entries every known consumer has applied go once they
// are appliedGrace old, long before the retention; an entry a consumer has
// not applied, or one too young, stays; with no consumer known, only the
// retention prunes.
func TestPruneApplied(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, t.TempDir(), testOptions)
	p := mustPost(t, db) // seq 1
	for range 5 {        // seqs 2..6
		mustComment(t, db, p.ID)
	}
	age := func(at time.Time) {
		t.Helper()
		if _, err := db.w.Exec(`UPDATE changelog SET at = ?`, ms(at)); err != nil {
			t.Fatal(err)
		}
	}
	checkpoint := func(consumer, tok string) {
		t.Helper()
		if _, err := db.w.Exec(`INSERT INTO checkpoints (consumer, token, updated_at) VALUES (?, ?, 0)
			ON CONFLICT (consumer) DO UPDATE SET token = excluded.token`, consumer, []byte(tok)); err != nil {
			t.Fatal(err)
		}
	}
	prune := func(name string, want int64) {
		t.Helper()
		if n, err := db.PruneBefore(ctx, time.Hour); err != nil || n != want {
			t.Fatalf("%s: pruned %d (%v), want %d", name, n, err, want)
		}
	}

	age(time.Now().Add(-time.Minute))
	prune("no consumer known", 0)
	checkpoint("posts.comments", "4")
	checkpoint("comments.posts", "2")
	prune("applied by both through 2", 2)
	checkpoint("comments.posts", "6")
	if _, err := db.w.Exec(`INSERT INTO rebuilds (consumer, target, after, started_at) VALUES ('x', '3', '', 0)`); err != nil {
		t.Fatal(err)
	}
	prune("a rebuild replays from 3", 1)
	if _, err := db.w.Exec(`DELETE FROM rebuilds`); err != nil {
		t.Fatal(err)
	}
	prune("applied by both through 4", 1)
	checkpoint("posts.comments", "6")
	age(time.Now())
	prune("applied by all but younger than the grace", 0)
	age(time.Now().Add(-appliedGrace - time.Second))
	prune("applied by all", 2)
}
