package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"testing"
	"time"

	"blog/internal/comment"
	"blog/internal/post"
)

// TestGroupCommitEachOwnResult creates comments concurrently, some of them
// doomed (a missing post, a duplicate id), and checks that each caller gets
// its own outcome: the doomed ones their error, every other one stored and
// logged on the comments feed exactly once.
func TestGroupCommitEachOwnResult(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, t.TempDir(), testOptions)
	p := post.Post{ID: id(), Title: "t", Content: "c", CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if err := db.Posts().Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	dup := comment.Comment{ID: id(), PostID: p.ID, Text: "first", CreatedAt: p.CreatedAt}
	if err := db.Comments().Create(ctx, dup); err != nil {
		t.Fatal(err)
	}

	type want struct {
		c   comment.Comment
		err error
	}
	var cases []want
	for i := range 200 {
		c := comment.Comment{ID: id(), PostID: p.ID, Text: "ok", CreatedAt: p.CreatedAt.Add(time.Duration(i) * time.Millisecond)}
		switch i % 10 {
		case 3:
			c.PostID = id() // no such post
			cases = append(cases, want{c, comment.ErrPostNotFound})
		case 7:
			c.ID = dup.ID
			cases = append(cases, want{c, comment.ErrDuplicate})
		default:
			cases = append(cases, want{c, nil})
		}
	}
	errs := make([]error, len(cases))
	var wg sync.WaitGroup
	for i, tc := range cases {
		wg.Go(func() { errs[i] = db.Comments().Create(ctx, tc.c) })
	}
	wg.Wait()

	stored := 1 // dup
	for i, tc := range cases {
		if !errors.Is(errs[i], tc.err) || (tc.err == nil) != (errs[i] == nil) {
			t.Errorf("create %d: got %v, want %v", i, errs[i], tc.err)
		}
		if tc.err != nil {
			continue
		}
		stored++
		if got, err := db.Comments().Get(ctx, tc.c.ID); err != nil || got.Text != "ok" {
			t.Errorf("create %d answered success but reads %v, %v", i, got, err)
		}
	}
	var rows, logged int
	if err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM comments`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM changelog WHERE collection = 'comments'`).Scan(&logged); err != nil {
		t.Fatal(err)
	}
	if rows != stored || logged != stored {
		t.Errorf("%d comments and %d log entries, want %d of each", rows, logged, stored)
	}
}

// TestGroupCommitCancelledWhileQueued checks that a caller whose context
// has ended before its write runs gets the context's error and has nothing
// stored, while the group around it commits.
func TestGroupCommitCancelledWhileQueued(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, t.TempDir(), testOptions)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	ran := false
	err := db.writeGrouped(cancelled, func(ctx context.Context, tx *sql.Tx) error {
		ran = true
		return nil
	})
	if !errors.Is(err, context.Canceled) || ran {
		t.Fatalf("got %v (ran %v), want context.Canceled and nothing run", err, ran)
	}
	if err := db.writeGrouped(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO checkpoints (consumer, token, updated_at) VALUES ('x', 'y', 0)`)
		return err
	}); err != nil {
		t.Fatalf("the next write: %v", err)
	}
}
