package storetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"blog/internal/comment"
	"blog/internal/page"
)

// RunComments checks comment.Store.
func RunComments(t *testing.T, open func(t *testing.T) Stores) {
	t.Run("create-get", func(t *testing.T) { testCommentsCreateGet(t, open) })
	t.Run("create-unknown-post", func(t *testing.T) { testCommentsCreateUnknownPost(t, open) })
	t.Run("create-on-deleted-post", func(t *testing.T) { testCommentsCreateOnDeletedPost(t, open) })
	t.Run("create-duplicate", func(t *testing.T) { testCommentsCreateDuplicate(t, open) })
	t.Run("get-not-found", func(t *testing.T) { testCommentsGetNotFound(t, open) })
	t.Run("list-by-post-oldest-first-paged", func(t *testing.T) { testCommentsListByPostOldestFirstPaged(t, open) })
	t.Run("list-by-post-skips-malformed-comment", func(t *testing.T) { testCommentsListByPostSkipsMalformedComment(t, open) })
	t.Run("list-by-post-unknown-post", func(t *testing.T) { testCommentsListByPostUnknownPost(t, open) })
	t.Run("update", func(t *testing.T) { testCommentsUpdate(t, open) })
	t.Run("update-not-found", func(t *testing.T) { testCommentsUpdateNotFound(t, open) })
	t.Run("delete", func(t *testing.T) { testCommentsDelete(t, open) })
	t.Run("delete-not-found", func(t *testing.T) { testCommentsDeleteNotFound(t, open) })
	t.Run("delete-by-post", func(t *testing.T) { testCommentsDeleteByPost(t, open) })
	t.Run("ping", func(t *testing.T) { testCommentsPing(t, open) })
}

// testCommentsCreateGet is the contract subtest "create-get".
func testCommentsCreateGet(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	p := createPost(t, s, "p", base())
	c := createComment(t, s, p.ID, "first!", base().Add(time.Second))
	got, err := s.Comments.Get(ctxFor(t), c.ID)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	sameComment(t, "get", got, c)
}

// testCommentsCreateUnknownPost is the contract subtest "create-unknown-post".
func testCommentsCreateUnknownPost(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	createPost(t, s, "some other post", base())
	c := newComment(newID(), "orphan", base())
	err := s.Comments.Create(ctxFor(t), c)
	wantErr(t, "create on unknown post", err, comment.ErrPostNotFound)
	_, err = s.Comments.Get(ctxFor(t), c.ID)
	wantErr(t, "get refused comment", err, comment.ErrNotFound)
}

// testCommentsCreateOnDeletedPost is the contract subtest "create-on-deleted-post".
func testCommentsCreateOnDeletedPost(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	p := createPost(t, s, "p", base())
	if err := s.Posts.Delete(ctxFor(t), p.ID); err != nil {
		t.Fatalf("delete post: %v", err)
	}
	err := s.Comments.Create(ctxFor(t), newComment(p.ID, "too late", base()))
	wantErr(t, "create on deleted post", err, comment.ErrPostNotFound)
}

// testCommentsCreateDuplicate is the contract subtest "create-duplicate".
func testCommentsCreateDuplicate(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	p := createPost(t, s, "p", base())
	c := createComment(t, s, p.ID, "once", base())
	again := c
	again.Text = "twice"
	err := s.Comments.Create(ctxFor(t), again)
	wantErr(t, "create twice", err, comment.ErrDuplicate)
	got, err := s.Comments.Get(ctxFor(t), c.ID)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	sameComment(t, "after refused duplicate", got, c)
}

// testCommentsGetNotFound is the contract subtest "get-not-found".
func testCommentsGetNotFound(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	_, err := s.Comments.Get(ctxFor(t), newID())
	wantErr(t, "get unknown", err, comment.ErrNotFound)
}

// testCommentsListByPostOldestFirstPaged is the contract subtest "list-by-post-oldest-first-paged".
func testCommentsListByPostOldestFirstPaged(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	t0 := base()
	p := createPost(t, s, "p", t0)
	other := createPost(t, s, "other", t0)
	// Created out of order, with a createdAt tie broken by id.
	var cs []comment.Comment
	for i, off := range []int{3, 1, 2, 2, 0, 2} {
		cs = append(cs, createComment(t, s, p.ID, fmt.Sprint("c", i), t0.Add(time.Duration(off)*time.Second)))
		createComment(t, s, other.ID, fmt.Sprint("noise", i), t0.Add(time.Duration(off)*time.Second))
	}
	slices.SortFunc(cs, func(a, b comment.Comment) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	var got []comment.Comment
	q := page.Query{Limit: 2}
	for n := 0; ; n++ {
		if n > len(cs) {
			t.Fatalf("paging did not end after %d pages", n)
		}
		pg, err := s.Comments.ListByPost(ctxFor(t), p.ID, q)
		if err != nil {
			t.Fatalf("list page %d: %v", n+1, err)
		}
		if len(pg) > 2 {
			t.Fatalf("page %d has %d comments for limit 2", n+1, len(pg))
		}
		if len(pg) == 0 {
			break
		}
		got = append(got, pg...)
		c := pg[len(pg)-1].Cursor()
		q.After = &c
	}
	sameIDs(t, "pages of 2", commentIDs(got), commentIDs(cs))
	if len(got) == len(cs) {
		for i := range got {
			sameComment(t, "listed", got[i], cs[i])
		}
	}
}

// testCommentsListByPostSkipsMalformedComment: A comment written by hand with a badly typed field must not make
// its post's listing fail (GET /comments/{postId} would answer 500
// for good), nor end it early: clients and `blog verify` read a
// short page as the last one, so the page it would have been on is
// topped up from the comments after it.
func testCommentsListByPostSkipsMalformedComment(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	inject := needInjectOnPost(t, s)
	p := createPost(t, s, "p", base())
	now := time.Now().UTC().Truncate(time.Millisecond)
	var cs []comment.Comment
	for i := range 3 {
		cs = append(cs, createComment(t, s, p.ID, fmt.Sprint("before ", i), now.Add(time.Duration(i-3)*time.Minute)))
	}
	inject(t, p.ID) // created about now: among the others
	for i := range 3 {
		cs = append(cs, createComment(t, s, p.ID, fmt.Sprint("after ", i), now.Add(time.Duration(i+1)*time.Minute)))
	}
	for _, size := range []int{1, 2, 3, 4, 100} {
		var got []comment.Comment
		q := page.Query{Limit: size}
		for n := 0; ; n++ {
			if n > len(cs) {
				t.Fatalf("pages of %d: paging did not end after %d pages", size, n)
			}
			pg, err := s.Comments.ListByPost(ctxFor(t), p.ID, q)
			if err != nil {
				t.Fatalf("pages of %d: list page %d: %v", size, n+1, err)
			}
			got = append(got, pg...)
			if len(pg) < size {
				break // a short page is the last, as the API reads it
			}
			c := pg[len(pg)-1].Cursor()
			q.After = &c
		}
		sameIDs(t, fmt.Sprint("pages of ", size), commentIDs(got), commentIDs(cs))
	}
	// Nor does it break reading the post, or the posts.
	if _, err := s.Posts.Get(ctxFor(t), p.ID); err != nil {
		t.Errorf("get its post: %v", err)
	}
	if ps, err := s.Posts.List(ctxFor(t), page.Query{Limit: 10}); err != nil || len(ps) != 1 {
		t.Errorf("list posts: %v, %v; want the post", postIDs(ps), err)
	}
}

// testCommentsListByPostUnknownPost is the contract subtest "list-by-post-unknown-post".
func testCommentsListByPostUnknownPost(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	p := createPost(t, s, "p", base())
	createComment(t, s, p.ID, "elsewhere", base())
	got, err := s.Comments.ListByPost(ctxFor(t), newID(), page.Query{Limit: 10})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(got) != 0 {
		t.Errorf("unknown post lists %v", commentIDs(got))
	}
}

// testCommentsUpdate is the contract subtest "update".
func testCommentsUpdate(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	p := createPost(t, s, "p", base())
	c := createComment(t, s, p.ID, "tpyo", base())
	at := base().Add(time.Minute)
	got, err := s.Comments.Update(ctxFor(t), c.ID, "typo", at)
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	want := c
	want.Text, want.UpdatedAt = "typo", &at
	sameComment(t, "update result", got, want)
	stored, err := s.Comments.Get(ctxFor(t), c.ID)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	sameComment(t, "get after update", stored, want)
}

// testCommentsUpdateNotFound is the contract subtest "update-not-found".
func testCommentsUpdateNotFound(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	_, err := s.Comments.Update(ctxFor(t), newID(), "x", base())
	wantErr(t, "update unknown", err, comment.ErrNotFound)
}

// testCommentsDelete is the contract subtest "delete".
func testCommentsDelete(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	p := createPost(t, s, "p", base())
	c := createComment(t, s, p.ID, "regret", base())
	kept := createComment(t, s, p.ID, "kept", base())
	got, err := s.Comments.Delete(ctxFor(t), c.ID)
	if err != nil {
		t.Fatalf("delete: %v", err)
	}
	sameComment(t, "deleted comment", got, c)
	_, err = s.Comments.Get(ctxFor(t), c.ID)
	wantErr(t, "get deleted", err, comment.ErrNotFound)
	if _, err := s.Comments.Get(ctxFor(t), kept.ID); err != nil {
		t.Errorf("get other comment: %v", err)
	}
	_, err = s.Comments.Delete(ctxFor(t), c.ID)
	wantErr(t, "delete twice", err, comment.ErrNotFound)
}

// testCommentsDeleteNotFound is the contract subtest "delete-not-found".
func testCommentsDeleteNotFound(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	_, err := s.Comments.Delete(ctxFor(t), newID())
	wantErr(t, "delete unknown", err, comment.ErrNotFound)
}

// testCommentsDeleteByPost is the contract subtest "delete-by-post".
func testCommentsDeleteByPost(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	p := createPost(t, s, "doomed", base())
	other := createPost(t, s, "other", base())
	var gone []comment.Comment
	for i := range 3 {
		gone = append(gone, createComment(t, s, p.ID, fmt.Sprint("c", i), base()))
	}
	kept := createComment(t, s, other.ID, "kept", base())
	// The real order: the post goes first, its comments follow when the
	// comments service sees the post's delete event.
	if err := s.Posts.Delete(ctxFor(t), p.ID); err != nil {
		t.Fatalf("delete post: %v", err)
	}
	n, err := s.Comments.DeleteByPost(ctxFor(t), p.ID)
	if err != nil {
		t.Fatalf("delete by post: %v", err)
	}
	if n != len(gone) {
		t.Errorf("delete by post removed %d, want %d", n, len(gone))
	}
	for _, c := range gone {
		_, err := s.Comments.Get(ctxFor(t), c.ID)
		wantErr(t, "get comment of deleted post", err, comment.ErrNotFound)
	}
	left, err := s.Comments.ListByPost(ctxFor(t), other.ID, page.Query{Limit: 10})
	if err != nil {
		t.Fatalf("list other: %v", err)
	}
	sameIDs(t, "other post's comments", commentIDs(left), []string{kept.ID})
	n, err = s.Comments.DeleteByPost(ctxFor(t), p.ID)
	if err != nil || n != 0 {
		t.Errorf("delete by post again = %d, %v; want 0, nil", n, err)
	}
}

// testCommentsPing is the contract subtest "ping".
func testCommentsPing(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	if err := s.Comments.Ping(ctxFor(t)); err != nil {
		t.Errorf("ping: %v", err)
	}
}
