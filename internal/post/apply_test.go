package post_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"blog/internal/changes"
	"blog/internal/comment"
	"blog/internal/post"
)

// memModel is an in-memory post.ReadModel: the rules' tests need no
// database. It stores the window in the post (like MongoDB) when windowed,
// and computes it from the copies at read time (like SQLite) otherwise, so
// every case runs against both storage strategies.
type memModel struct {
	windowed bool
	limit    int
	posts    map[string]*post.PostState
	copies   map[string]comment.Comment
	saves    int
}

func newMem(windowed bool, limit int, postIDs ...string) *memModel {
	m := &memModel{windowed: windowed, limit: limit, posts: map[string]*post.PostState{}, copies: map[string]comment.Comment{}}
	for _, id := range postIDs {
		m.posts[id] = &post.PostState{Windowed: windowed}
	}
	return m
}

func (m *memModel) LoadPost(_ context.Context, id string) (post.PostState, bool, error) {
	p, ok := m.posts[id]
	if !ok {
		return post.PostState{}, false, nil
	}
	st := *p
	st.Window = slices.Clone(p.Window)
	return st, true, nil
}

func (m *memModel) InsertCopy(_ context.Context, c comment.Comment) (bool, error) {
	if _, ok := m.copies[c.ID]; ok {
		return false, nil
	}
	m.copies[c.ID] = c
	return true, nil
}

func (m *memModel) UpdateCopy(_ context.Context, c comment.Comment) (bool, bool, error) {
	old, ok := m.copies[c.ID]
	if !ok {
		return false, false, nil
	}
	changed := old.Text != c.Text || !cmp.Equal(old.UpdatedAt, c.UpdatedAt)
	old.Text, old.UpdatedAt = c.Text, c.UpdatedAt
	m.copies[c.ID] = old
	return true, changed, nil
}

func (m *memModel) DeleteCopy(_ context.Context, id string) (comment.Comment, bool, error) {
	c, ok := m.copies[id]
	delete(m.copies, id)
	return c, ok, nil
}

func (m *memModel) of(postID string) []post.Comment {
	var out []post.Comment
	for _, c := range m.copies {
		if c.PostID == postID {
			out = append(out, post.Embed(c))
		}
	}
	return post.Latest(out, len(out)+1)
}

func (m *memModel) Older(_ context.Context, postID string, bound post.Comment, n int) ([]post.Comment, error) {
	if !m.windowed {
		return nil, errors.New("Older called on a store that keeps no window")
	}
	var older []post.Comment
	for _, c := range m.of(postID) {
		if post.Less(c, bound) {
			older = append(older, c)
		}
	}
	return older[max(0, len(older)-n):], nil
}

func (m *memModel) SavePost(_ context.Context, id string, st post.PostState) error {
	if st.Windowed != m.windowed {
		return fmt.Errorf("saved Windowed %v, store keeps %v", st.Windowed, m.windowed)
	}
	m.saves++
	m.posts[id] = &st
	return nil
}

// embedded is the post's embedded comments as a reader sees them.
func (m *memModel) embedded(id string) []post.Comment {
	if m.windowed {
		return m.posts[id].Window
	}
	return post.Latest(m.of(id), m.limit)
}

// Ids are ObjectID hex strings; comments sort by createdAt = t0 + n s.
var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

const (
	p1   = "65a000000000000000000001"
	p2   = "65a000000000000000000002"
	gone = "65a0000000000000000000ff"
)

func cid(n int) string { return fmt.Sprintf("65b0000000000000000000%02x", n) }

func com(n int, postID string) comment.Comment {
	return comment.Comment{ID: cid(n), PostID: postID, Text: fmt.Sprintf("c%d", n), CreatedAt: t0.Add(time.Duration(n) * time.Second)}
}

func ins(c comment.Comment) changes.Event[comment.Comment] {
	return changes.Event[comment.Comment]{Op: changes.Insert, Key: c.ID, Doc: c, Found: true}
}

func upd(c comment.Comment, text string) changes.Event[comment.Comment] {
	at := c.CreatedAt.Add(time.Hour)
	c.Text, c.UpdatedAt = text, &at
	return changes.Event[comment.Comment]{Op: changes.Update, Key: c.ID, Doc: c, Found: true}
}

func del(n int) changes.Event[comment.Comment] {
	return changes.Event[comment.Comment]{Op: changes.Delete, Key: cid(n)}
}

func inserts(postID string, ns ...int) []changes.Event[comment.Comment] {
	var evs []changes.Event[comment.Comment]
	for _, n := range ns {
		evs = append(evs, ins(com(n, postID)))
	}
	return evs
}

// want is a post's read model after the batch: its count and the ids and
// texts of its embedded comments, oldest first.
type want struct {
	count    int
	embedded []string
}

func TestApplyComments(t *testing.T) {
	const limit = 3
	cases := []struct {
		name    string
		before  []changes.Event[comment.Comment] // applied first, as their own batch
		events  []changes.Event[comment.Comment]
		want    map[string]want
		wantErr error
	}{
		{
			name:   "insert-embeds-and-counts",
			events: inserts(p1, 1, 2),
			want:   map[string]want{p1: {2, []string{"c1", "c2"}}},
		},
		{
			name:   "insert-keeps-latest-n-oldest-first",
			events: inserts(p1, 4, 1, 5, 2, 3),
			want:   map[string]want{p1: {5, []string{"c3", "c4", "c5"}}},
		},
		{
			name:   "insert-older-than-full-window-counted-not-embedded",
			before: inserts(p1, 5, 6, 7),
			events: inserts(p1, 1),
			want:   map[string]want{p1: {4, []string{"c5", "c6", "c7"}}},
		},
		{
			name: "insert-same-time-ordered-by-id",
			events: func() []changes.Event[comment.Comment] {
				var evs []changes.Event[comment.Comment]
				for _, n := range []int{9, 7, 8, 6} {
					c := com(n, p1)
					c.CreatedAt = t0
					evs = append(evs, ins(c))
				}
				return evs
			}(),
			want: map[string]want{p1: {4, []string{"c7", "c8", "c9"}}},
		},
		{
			name:   "insert-replayed-is-noop",
			before: inserts(p1, 1, 2),
			events: inserts(p1, 1, 2),
			want:   map[string]want{p1: {2, []string{"c1", "c2"}}},
		},
		{
			name:   "insert-replayed-in-one-batch-is-noop",
			events: append(inserts(p1, 1), inserts(p1, 1)...),
			want:   map[string]want{p1: {1, []string{"c1"}}},
		},
		{
			name:   "insert-without-document-is-noop",
			events: []changes.Event[comment.Comment]{{Op: changes.Insert, Key: cid(1)}},
			want:   map[string]want{p1: {0, nil}},
		},
		{
			name:   "event-for-missing-post-is-noop",
			events: append(inserts(gone, 1), upd(com(2, gone), "edited"), del(1)),
			want:   map[string]want{p1: {0, nil}},
		},
		{
			name:   "update-embedded-text",
			before: inserts(p1, 1, 2),
			events: []changes.Event[comment.Comment]{upd(com(1, p1), "edited")},
			want:   map[string]want{p1: {2, []string{"edited", "c2"}}},
		},
		{
			name:   "update-not-embedded-shows-after-backfill",
			before: inserts(p1, 1, 2, 3, 4),
			events: []changes.Event[comment.Comment]{upd(com(1, p1), "edited"), del(4)},
			want:   map[string]want{p1: {3, []string{"edited", "c2", "c3"}}},
		},
		{
			name:   "update-without-copy-inserts",
			events: []changes.Event[comment.Comment]{upd(com(1, p1), "edited")},
			want:   map[string]want{p1: {1, []string{"edited"}}},
		},
		{
			name:   "update-without-copy-for-missing-post-is-noop",
			events: []changes.Event[comment.Comment]{upd(com(1, gone), "edited")},
			want:   map[string]want{p1: {0, nil}},
		},
		{
			name:   "update-without-document-is-noop",
			before: inserts(p1, 1),
			events: []changes.Event[comment.Comment]{{Op: changes.Update, Key: cid(1)}},
			want:   map[string]want{p1: {1, []string{"c1"}}},
		},
		{
			name:   "update-replayed-is-noop",
			before: append(inserts(p1, 1), upd(com(1, p1), "edited")),
			events: []changes.Event[comment.Comment]{upd(com(1, p1), "edited")},
			want:   map[string]want{p1: {1, []string{"edited"}}},
		},
		{
			name:   "delete-uncounts",
			before: inserts(p1, 1, 2),
			events: []changes.Event[comment.Comment]{del(1)},
			want:   map[string]want{p1: {1, []string{"c2"}}},
		},
		{
			name:   "delete-embedded-backfills-next-older",
			before: inserts(p1, 1, 2, 3, 4, 5),
			events: []changes.Event[comment.Comment]{del(4)},
			want:   map[string]want{p1: {4, []string{"c2", "c3", "c5"}}},
		},
		{
			name:   "delete-all-embedded-backfills-from-deleted",
			before: inserts(p1, 1, 2, 3, 4, 5, 6),
			events: []changes.Event[comment.Comment]{del(6), del(5), del(4)},
			want:   map[string]want{p1: {3, []string{"c1", "c2", "c3"}}},
		},
		{
			name:   "delete-not-embedded-keeps-window",
			before: inserts(p1, 1, 2, 3, 4),
			events: []changes.Event[comment.Comment]{del(1)},
			want:   map[string]want{p1: {3, []string{"c2", "c3", "c4"}}},
		},
		{
			name:   "delete-replayed-is-noop",
			before: append(inserts(p1, 1, 2), del(1)),
			events: []changes.Event[comment.Comment]{del(1)},
			want:   map[string]want{p1: {1, []string{"c2"}}},
		},
		{
			name:   "delete-never-copied-is-noop",
			before: inserts(p1, 2),
			events: []changes.Event[comment.Comment]{del(1)},
			want:   map[string]want{p1: {1, []string{"c2"}}},
		},
		{
			name:   "insert-update-delete-in-one-batch",
			events: append(inserts(p1, 1, 2), upd(com(1, p1), "edited"), del(2)),
			want:   map[string]want{p1: {1, []string{"edited"}}},
		},
		{
			name:   "several-posts-one-batch",
			events: append(inserts(p1, 1, 3), inserts(p2, 2)...),
			want:   map[string]want{p1: {2, []string{"c1", "c3"}}, p2: {1, []string{"c2"}}},
		},
		{
			name:    "unknown-op-is-poison",
			events:  append(inserts(p1, 1), changes.Event[comment.Comment]{Op: "replace", Key: cid(2), Doc: com(2, p1), Found: true}),
			wantErr: changes.ErrPoison,
			want:    map[string]want{p1: {0, nil}},
		},
		{
			name:    "malformed-id-comment-is-poison",
			events:  append(inserts(p1, 1), changes.Event[comment.Comment]{Op: changes.Delete, Key: "not-an-id"}),
			wantErr: changes.ErrPoison,
			want:    map[string]want{p1: {0, nil}},
		},
		{
			name: "malformed-id-post-is-poison",
			events: func() []changes.Event[comment.Comment] {
				c := com(1, "123")
				return []changes.Event[comment.Comment]{ins(c)}
			}(),
			wantErr: changes.ErrPoison,
			want:    map[string]want{p1: {0, nil}},
		},
		{
			name: "malformed-id-uppercase-is-poison",
			events: func() []changes.Event[comment.Comment] {
				c := com(1, "65A000000000000000000001")
				return []changes.Event[comment.Comment]{ins(c)}
			}(),
			wantErr: changes.ErrPoison,
			want:    map[string]want{p1: {0, nil}},
		},
		{
			name: "document-of-another-comment-is-poison",
			events: func() []changes.Event[comment.Comment] {
				ev := ins(com(1, p1))
				ev.Key = cid(2)
				return []changes.Event[comment.Comment]{ev}
			}(),
			wantErr: changes.ErrPoison,
			want:    map[string]want{p1: {0, nil}},
		},
	}
	for _, windowed := range []bool{true, false} {
		strategy := map[bool]string{true: "window-in-post", false: "window-at-read"}[windowed]
		for _, tc := range cases {
			t.Run(strategy+"/"+tc.name, func(t *testing.T) {
				ctx := context.Background()
				m := newMem(windowed, limit, p1, p2)
				if _, err := post.ApplyComments(ctx, m, tc.before, limit); err != nil {
					t.Fatalf("before: %v", err)
				}
				_, err := post.ApplyComments(ctx, m, tc.events, limit)
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("ApplyComments: %v, want %v", err, tc.wantErr)
				}
				for id, w := range tc.want {
					var texts []string
					for _, c := range m.embedded(id) {
						texts = append(texts, c.Text)
					}
					got := want{m.posts[id].Count, texts}
					if d := cmp.Diff(w, got, cmp.AllowUnexported(want{})); d != "" {
						t.Errorf("post %s (-want +got):\n%s", id, d)
					}
				}
			})
		}
	}
}

// TestCountNeverNegative: a post whose stored count is already short (a
// hand edit, or a store that drifted) is never counted below zero.
func TestCountNeverNegative(t *testing.T) {
	for _, windowed := range []bool{true, false} {
		t.Run(fmt.Sprint("windowed-", windowed, "/count-never-negative"), func(t *testing.T) {
			ctx := context.Background()
			m := newMem(windowed, 3, p1)
			if _, err := post.ApplyComments(ctx, m, inserts(p1, 1, 2), 3); err != nil {
				t.Fatal(err)
			}
			m.posts[p1].Count = 1 // drifted below the copies
			if _, err := post.ApplyComments(ctx, m, []changes.Event[comment.Comment]{del(1), del(2)}, 3); err != nil {
				t.Fatal(err)
			}
			if got := m.posts[p1].Count; got != 0 {
				t.Errorf("count %d, want 0", got)
			}
		})
	}
}

// TestApplyCommentsSavesOncePerPost: a batch loads and saves each post it
// changes once, and reports the changed posts in first-change order; a
// replay changes (and saves) nothing.
func TestApplyCommentsSavesOncePerPost(t *testing.T) {
	ctx := context.Background()
	m := newMem(true, 3, p1, p2)
	evs := append(inserts(p2, 1, 2, 3), inserts(p1, 4, 5)...)
	changed, err := post.ApplyComments(ctx, m, evs, 3)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{p2, p1}, changed); d != "" {
		t.Errorf("changed posts (-want +got):\n%s", d)
	}
	if m.saves != 2 {
		t.Errorf("%d saves, want 2", m.saves)
	}
	changed, err = post.ApplyComments(ctx, m, evs, 3)
	if err != nil || len(changed) != 0 || m.saves != 2 {
		t.Errorf("replay: changed %v, saves %d, err %v; want none", changed, m.saves, err)
	}
}

func TestWindowAdd(t *testing.T) {
	c := func(n int) post.Comment { return post.Embed(com(n, p1)) }
	cases := []struct {
		name    string
		have    []int
		add     int
		want    []int
		changed bool
	}{
		{"add-to-empty", nil, 1, []int{1}, true},
		{"add-newest", []int{1, 2}, 3, []int{1, 2, 3}, true},
		{"add-middle", []int{1, 3}, 2, []int{1, 2, 3}, true},
		{"add-to-full-drops-oldest", []int{1, 2, 3}, 4, []int{2, 3, 4}, true},
		{"add-older-than-full-falls-out", []int{2, 3, 4}, 1, []int{2, 3, 4}, false},
		{"add-present-is-noop", []int{1, 2}, 2, []int{1, 2}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := post.Window{Limit: 3}
			for _, n := range tc.have {
				w.Comments = append(w.Comments, c(n))
			}
			if got := w.Add(c(tc.add)); got != tc.changed {
				t.Errorf("Add reported %v, want %v", got, tc.changed)
			}
			var got []int
			for _, e := range w.Comments {
				var n int
				fmt.Sscanf(e.Text, "c%d", &n)
				got = append(got, n)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("window (-want +got):\n%s", d)
			}
		})
	}
}
