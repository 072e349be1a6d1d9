package comment_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"blog/internal/changes"
	"blog/internal/comment"
)

const postID = "65a000000000000000000001"

// chunks is a ChunkDeleter over a post with left comments, deleting at most
// limit per call, recording each call's limit and whether its context had a
// deadline.
type chunks struct {
	left      int
	calls     []int
	deadlines []bool
	vanish    bool // a full chunk found whose comments went meanwhile
	failAt    int  // the call (1-based) that fails; 0: none
}

func (c *chunks) del(ctx context.Context, id string, limit int) (int, bool, error) {
	_, dl := ctx.Deadline()
	c.calls = append(c.calls, limit)
	c.deadlines = append(c.deadlines, dl)
	if c.failAt == len(c.calls) {
		return 0, false, errors.New("chunk failed")
	}
	if c.vanish {
		return 0, true, nil
	}
	n := min(limit, c.left)
	c.left -= n
	return n, n == limit, nil
}

func TestDeleteChunked(t *testing.T) {
	for _, tc := range []struct {
		name      string
		c         chunks
		step      time.Duration
		wantN     int
		wantCalls int
		wantErr   bool
	}{
		{name: "none-one-call", c: chunks{left: 0}, wantN: 0, wantCalls: 1},
		{name: "short-chunk-ends", c: chunks{left: 7}, wantN: 7, wantCalls: 3},
		{name: "exact-chunks-end-on-empty-one", c: chunks{left: 9}, wantN: 9, wantCalls: 4},
		{name: "full-but-vanished-ends", c: chunks{vanish: true}, wantN: 0, wantCalls: 1},
		{name: "failure-midway-reports-progress", c: chunks{left: 9, failAt: 2}, wantN: 3, wantCalls: 2, wantErr: true},
		{name: "step-bounds-each-chunk", c: chunks{left: 5}, step: time.Minute, wantN: 5, wantCalls: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c
			n, err := comment.DeleteChunked(context.Background(), postID, 3, tc.step, c.del)
			if (err != nil) != tc.wantErr || n != tc.wantN || len(c.calls) != tc.wantCalls {
				t.Errorf("deleted %d in %d calls, err %v; want %d in %d, error %v", n, len(c.calls), err, tc.wantN, tc.wantCalls, tc.wantErr)
			}
			for i, dl := range c.deadlines {
				if dl != (tc.step > 0) {
					t.Errorf("call %d: deadline %v, want one exactly when step is set", i+1, dl)
				}
			}
		})
	}
}

func TestCascadeActsOnValidDeletesOnly(t *testing.T) {
	other := "65a000000000000000000002"
	evs := []changes.Event[string]{
		{Op: changes.Insert, Key: postID},
		{Op: changes.Delete, Key: postID},
		{Op: changes.Update, Key: other},
		{Op: changes.Delete, Key: "not-an-id"},
		{Op: "drop", Key: other},
		{Op: changes.Delete, Key: other, Err: errors.New("undecodable")},
		{Op: changes.Delete, Key: other},
	}
	var asked []string
	err := comment.Cascade(context.Background(), evs, 10, 0, func(_ context.Context, id string, _ int) (int, bool, error) {
		asked = append(asked, id)
		return 0, false, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{postID, other}, asked); d != "" {
		t.Errorf("posts cascaded (-want +got):\n%s", d)
	}
}

func TestCheckPostEvent(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ev     changes.Event[string]
		poison bool
	}{
		{"delete-ok", changes.Event[string]{Op: changes.Delete, Key: postID}, false},
		{"insert-ok", changes.Event[string]{Op: changes.Insert, Key: postID}, false},
		{"unknown-op-is-poison", changes.Event[string]{Op: "replace", Key: postID}, true},
		{"malformed-id-is-poison", changes.Event[string]{Op: changes.Delete, Key: "123"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := comment.CheckPostEvent(tc.ev)
			if errors.Is(err, changes.ErrPoison) != tc.poison {
				t.Errorf("CheckPostEvent: %v, want poison %v", err, tc.poison)
			}
		})
	}
}

func TestValidID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"65a000000000000000000001", true},
		{"65A000000000000000000001", false},
		{"65a00000000000000000001", false},
		{"65a0000000000000000000012", false},
		{"65a00000000000000000000g", false},
		{"", false},
	} {
		if got := comment.ValidID(tc.id); got != tc.ok {
			t.Errorf("ValidID(%q) = %v, want %v", tc.id, got, tc.ok)
		}
	}
}
