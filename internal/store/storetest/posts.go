package storetest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"blog/internal/page"
	"blog/internal/post"
)

// RunPosts checks post.Store's CRUD and paging, without the projection.
func RunPosts(t *testing.T, open func(t *testing.T) Stores) {
	t.Run("create-get", func(t *testing.T) { testPostsCreateGet(t, open) })
	t.Run("create-duplicate", func(t *testing.T) { testPostsCreateDuplicate(t, open) })
	t.Run("get-not-found", func(t *testing.T) { testPostsGetNotFound(t, open) })

	for _, tc := range []struct {
		name  string
		patch post.Patch
		title string
		body  string
	}{
		{"update-title-only", post.Patch{Title: ptr("new title")}, "new title", ""},
		{"update-content-only", post.Patch{Content: ptr("new content")}, "", "new content"},
		{"update-both", post.Patch{Title: ptr("t2"), Content: ptr("c2")}, "t2", "c2"},
		{"update-empty-patch", post.Patch{}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			p := createPost(t, s, "old title", base())
			at := base().Add(time.Minute)
			want := p
			if tc.title != "" {
				want.Title = tc.title
			}
			if tc.body != "" {
				want.Content = tc.body
			}
			want.UpdatedAt = &at
			got, err := s.Posts.Update(ctxFor(t), p.ID, tc.patch, at)
			if err != nil {
				t.Fatalf("update: %v", err)
			}
			samePost(t, "update result", got, want)
			stored, err := s.Posts.Get(ctxFor(t), p.ID)
			if err != nil {
				t.Fatalf("get: %v", err)
			}
			samePost(t, "get after update", stored, want)
		})
	}

	t.Run("update-not-found", func(t *testing.T) { testPostsUpdateNotFound(t, open) })
	t.Run("delete", func(t *testing.T) { testPostsDelete(t, open) })
	t.Run("delete-not-found", func(t *testing.T) { testPostsDeleteNotFound(t, open) })
	t.Run("list-empty", func(t *testing.T) { testPostsListEmpty(t, open) })
	t.Run("list-newest-first-paged", func(t *testing.T) { testPostsListNewestFirstPaged(t, open) })
	t.Run("list-tie-broken-by-id", func(t *testing.T) { testPostsListTieBrokenById(t, open) })
	t.Run("ping", func(t *testing.T) { testPostsPing(t, open) })
}

// testPostsCreateGet is the contract subtest "create-get".
func testPostsCreateGet(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	p := createPost(t, s, "hello", base())
	got, err := s.Posts.Get(ctxFor(t), p.ID)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	samePost(t, "get", got, p)
	if len(got.Comments) != 0 || got.CommentCount != 0 {
		t.Errorf("new post has comments %v, count %d", embeddedIDs(got.Comments), got.CommentCount)
	}
}

// testPostsCreateDuplicate is the contract subtest "create-duplicate".
func testPostsCreateDuplicate(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	p := createPost(t, s, "first", base())
	again := p
	again.Title = "second"
	err := s.Posts.Create(ctxFor(t), again)
	wantErr(t, "create twice", err, post.ErrDuplicate)
	got, err := s.Posts.Get(ctxFor(t), p.ID)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	samePost(t, "after refused duplicate", got, p)
}

// testPostsGetNotFound is the contract subtest "get-not-found".
func testPostsGetNotFound(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	createPost(t, s, "other", base())
	_, err := s.Posts.Get(ctxFor(t), newID())
	wantErr(t, "get unknown", err, post.ErrNotFound)
}

// testPostsUpdateNotFound is the contract subtest "update-not-found".
func testPostsUpdateNotFound(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	_, err := s.Posts.Update(ctxFor(t), newID(), post.Patch{Title: ptr("x")}, base())
	wantErr(t, "update unknown", err, post.ErrNotFound)
}

// testPostsDelete is the contract subtest "delete".
func testPostsDelete(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	p := createPost(t, s, "doomed", base())
	kept := createPost(t, s, "kept", base())
	if err := s.Posts.Delete(ctxFor(t), p.ID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	_, err := s.Posts.Get(ctxFor(t), p.ID)
	wantErr(t, "get deleted", err, post.ErrNotFound)
	if _, err := s.Posts.Get(ctxFor(t), kept.ID); err != nil {
		t.Errorf("get other post: %v", err)
	}
}

// testPostsDeleteNotFound is the contract subtest "delete-not-found".
func testPostsDeleteNotFound(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	p := createPost(t, s, "doomed", base())
	if err := s.Posts.Delete(ctxFor(t), p.ID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	wantErr(t, "delete twice", s.Posts.Delete(ctxFor(t), p.ID), post.ErrNotFound)
	wantErr(t, "delete unknown", s.Posts.Delete(ctxFor(t), newID()), post.ErrNotFound)
}

// testPostsListEmpty is the contract subtest "list-empty".
func testPostsListEmpty(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	got, err := s.Posts.List(ctxFor(t), page.Query{Limit: 10})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(got) != 0 {
		t.Errorf("empty store lists %v", postIDs(got))
	}
}

// testPostsListNewestFirstPaged is the contract subtest "list-newest-first-paged".
func testPostsListNewestFirstPaged(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	t0 := base()
	// Created out of order, so the order must come from createdAt.
	ps := make([]post.Post, 5)
	for _, i := range []int{2, 0, 4, 1, 3} {
		ps[i] = createPost(t, s, "p"+string(rune('0'+i)), t0.Add(time.Duration(i)*time.Second))
	}
	want := [][]string{{ps[4].ID, ps[3].ID}, {ps[2].ID, ps[1].ID}, {ps[0].ID}, {}}
	got := listPages(t, s, 2, len(want))
	for i := range want {
		sameIDs(t, "page "+string(rune('1'+i)), got[i], want[i])
	}
	all, err := s.Posts.List(ctxFor(t), page.Query{Limit: 10})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(all) != 5 {
		t.Fatalf("list of 10 returned %d posts", len(all))
	}
	samePost(t, "listed post", all[0], ps[4])
}

// testPostsListTieBrokenById is the contract subtest "list-tie-broken-by-id".
func testPostsListTieBrokenById(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	t0 := base()
	older := createPost(t, s, "older", t0)
	var tied []post.Post
	for i := range 4 {
		tied = append(tied, createPost(t, s, "tied"+string(rune('a'+i)), t0.Add(time.Second)))
	}
	newer := createPost(t, s, "newer", t0.Add(2*time.Second))
	slices.SortFunc(tied, func(a, b post.Post) int { return strings.Compare(b.ID, a.ID) })
	want := []string{newer.ID}
	want = append(want, postIDs(tied)...)
	want = append(want, older.ID)
	// Pages of 2 put cursors in the middle of the tie.
	pages := listPages(t, s, 2, 4)
	var got []string
	for _, p := range pages {
		got = append(got, p...)
	}
	sameIDs(t, "pages of 2 across a createdAt tie", got, want)
	if len(pages[3]) != 0 {
		t.Errorf("page after the last post: %v, want none", pages[3])
	}
}

// testPostsPing is the contract subtest "ping".
func testPostsPing(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	if err := s.Posts.Ping(ctxFor(t)); err != nil {
		t.Errorf("ping: %v", err)
	}
}

// listPages walks n pages of posts of the given size, each after the last
// post of the previous page, and returns their ids.
func listPages(t *testing.T, s Stores, size, n int) [][]string {
	t.Helper()
	var pages [][]string
	q := page.Query{Limit: size}
	for range n {
		ps, err := s.Posts.List(ctxFor(t), q)
		if err != nil {
			t.Fatalf("list page %d: %v", len(pages)+1, err)
		}
		if len(ps) > size {
			t.Fatalf("list page %d: %d posts for limit %d", len(pages)+1, len(ps), size)
		}
		pages = append(pages, postIDs(ps))
		if len(ps) > 0 {
			c := ps[len(ps)-1].Cursor()
			q.After = &c
		}
	}
	return pages
}
