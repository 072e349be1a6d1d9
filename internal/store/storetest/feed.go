package storetest

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"blog/internal/changes"
	"blog/internal/post"
)

// RunFeed checks both change feeds: what events carry, their order, and
// where Open and Head position a stream.
func RunFeed(t *testing.T, open func(t *testing.T) Stores) {
	t.Run("comment-insert-update-delete", func(t *testing.T) { testFeedCommentInsertUpdateDelete(t, open) })
	t.Run("comment-events-in-commit-order", func(t *testing.T) { testFeedCommentEventsInCommitOrder(t, open) })
	t.Run("comment-feed-ignores-posts", func(t *testing.T) { testFeedCommentFeedIgnoresPosts(t, open) })
	t.Run("open-nil-starts-at-head", func(t *testing.T) { testFeedOpenNilStartsAtHead(t, open) })
	t.Run("open-token-resumes-strictly-after", func(t *testing.T) { testFeedOpenTokenResumesStrictlyAfter(t, open) })
	t.Run("head", func(t *testing.T) { testFeedHead(t, open) })
	t.Run("quiet-stream-advances", func(t *testing.T) { testFeedQuietStreamAdvances(t, open) })
	t.Run("delete-by-post-emits-deletes", func(t *testing.T) { testFeedDeleteByPostEmitsDeletes(t, open) })
	t.Run("post-insert-update-delete", func(t *testing.T) { testFeedPostInsertUpdateDelete(t, open) })
	t.Run("post-feed-ignores-comments", func(t *testing.T) { testFeedPostFeedIgnoresComments(t, open) })
}

// testFeedCommentInsertUpdateDelete is the contract subtest "comment-insert-update-delete".
func testFeedCommentInsertUpdateDelete(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	st := openStream(t, s.CommentFeed, nil)
	p := createPost(t, s, "p", base())
	c := createComment(t, s, p.ID, "hello", base())
	// Each change is read before the next one is made, so an adapter
	// that looks the document up (updateLookup) still finds it.
	evs, _ := collect(t, st, 1)
	at := base().Add(time.Minute)
	if _, err := s.Comments.Update(ctxFor(t), c.ID, "hello, edited", at); err != nil {
		t.Fatalf("update: %v", err)
	}
	more, _ := collect(t, st, 1)
	evs = append(evs, more...)
	if _, err := s.Comments.Delete(ctxFor(t), c.ID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	more, _ = collect(t, st, 1)
	evs = append(evs, more...)

	want := []string{"insert:" + c.ID, "update:" + c.ID, "delete:" + c.ID}
	if got := eventKeys(evs); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	checkTokens(t, evs)
	if !evs[0].Found {
		t.Errorf("insert event has no document")
	}
	sameComment(t, "insert event doc", evs[0].Doc, c)
	edited := c
	edited.Text, edited.UpdatedAt = "hello, edited", &at
	if !evs[1].Found {
		t.Errorf("update event has no document")
	}
	sameComment(t, "update event doc", evs[1].Doc, edited)
	if evs[2].Found || evs[2].Doc.ID != "" {
		t.Errorf("delete event carries a document: %+v", evs[2].Doc)
	}
}

// testFeedCommentEventsInCommitOrder is the contract subtest "comment-events-in-commit-order".
func testFeedCommentEventsInCommitOrder(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	st := openStream(t, s.CommentFeed, nil)
	p := createPost(t, s, "p", base())
	var want []string
	for i := range 8 {
		// createdAt runs backwards: the feed orders by commit, not by field.
		c := createComment(t, s, p.ID, fmt.Sprint("c", i), base().Add(-time.Duration(i)*time.Second))
		want = append(want, "insert:"+c.ID)
	}
	evs, _ := collect(t, st, len(want))
	if got := eventKeys(evs); !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	checkTokens(t, evs)
}

// testFeedCommentFeedIgnoresPosts is the contract subtest "comment-feed-ignores-posts".
func testFeedCommentFeedIgnoresPosts(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	st := openStream(t, s.CommentFeed, nil)
	p := createPost(t, s, "p", base())
	if _, err := s.Posts.Update(ctxFor(t), p.ID, post.Patch{Title: ptr("t")}, base()); err != nil {
		t.Fatalf("update post: %v", err)
	}
	c := createComment(t, s, p.ID, "sentinel", base())
	evs, _ := collect(t, st, 1)
	sameIDs(t, "comment feed after post writes", eventKeys(evs), []string{"insert:" + c.ID})
}

// testFeedOpenNilStartsAtHead is the contract subtest "open-nil-starts-at-head".
func testFeedOpenNilStartsAtHead(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	p := createPost(t, s, "p", base())
	createComment(t, s, p.ID, "before", base())
	st := openStream(t, s.CommentFeed, nil)
	after := createComment(t, s, p.ID, "after", base())
	evs, _ := collect(t, st, 1)
	sameIDs(t, "stream opened at head", eventKeys(evs), []string{"insert:" + after.ID})
}

// testFeedOpenTokenResumesStrictlyAfter is the contract subtest "open-token-resumes-strictly-after".
func testFeedOpenTokenResumesStrictlyAfter(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	h := head(t, s.CommentFeed)
	p := createPost(t, s, "p", base())
	for i := range 3 {
		createComment(t, s, p.ID, fmt.Sprint("c", i), base())
	}
	evs, last := collect(t, openStream(t, s.CommentFeed, h), 3)
	if len(evs) != 3 {
		t.Fatalf("got events %v, want 3", eventKeys(evs))
	}

	// From the first event's token: the second and third, nothing again.
	resumed, _ := collect(t, openStream(t, s.CommentFeed, evs[0].Token), 2)
	sameIDs(t, "resumed after first event", eventKeys(resumed), eventKeys(evs[1:]))
	if len(resumed) == 2 && !bytes.Equal(resumed[1].Token, evs[2].Token) {
		t.Errorf("resumed event token %q, first delivery had %q", resumed[1].Token, evs[2].Token)
	}

	// From the last event's token and from the batch token: only what
	// comes next.
	byEvent := openStream(t, s.CommentFeed, evs[2].Token)
	byBatch := openStream(t, s.CommentFeed, last)
	next := createComment(t, s, p.ID, "next", base())
	got, _ := collect(t, byEvent, 1)
	sameIDs(t, "resumed after last event token", eventKeys(got), []string{"insert:" + next.ID})
	got, _ = collect(t, byBatch, 1)
	sameIDs(t, "resumed after batch token", eventKeys(got), []string{"insert:" + next.ID})
}

// testFeedHead is the contract subtest "head".
func testFeedHead(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	h0 := head(t, s.CommentFeed)
	p := createPost(t, s, "p", base())
	c1 := createComment(t, s, p.ID, "c1", base())
	h1 := head(t, s.CommentFeed)
	if bytes.Equal(h0, h1) {
		t.Errorf("head did not move after a write: %q", h1)
	}
	c2 := createComment(t, s, p.ID, "c2", base())
	evs, _ := collect(t, openStream(t, s.CommentFeed, h0), 2)
	sameIDs(t, "after first head", eventKeys(evs), []string{"insert:" + c1.ID, "insert:" + c2.ID})
	evs, _ = collect(t, openStream(t, s.CommentFeed, h1), 1)
	sameIDs(t, "after second head", eventKeys(evs), []string{"insert:" + c2.ID})
}

// testFeedQuietStreamAdvances is the contract subtest "quiet-stream-advances".
func testFeedQuietStreamAdvances(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	h := head(t, s.CommentFeed)
	st := openStream(t, s.CommentFeed, h)
	// Writes to posts only: the comment stream has nothing to say,
	// but must still hand out a position to checkpoint, past them.
	createPost(t, s, "p", base())
	ctx := ctxFor(t)
	var quiet changes.Token
	for quiet == nil {
		b, err := st.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for a quiet batch: %v", err)
		}
		if len(b.Events) > 0 {
			t.Fatalf("comment stream delivered %v with no comment written", eventKeys(b.Events))
		}
		quiet = b.Token
	}
	if bytes.Equal(quiet, h) {
		// Tolerated once: the stream may have gone quiet before the
		// post's write reached it. The next quiet batch must move.
		b, err := st.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for a second quiet batch: %v", err)
		}
		if len(b.Events) > 0 {
			t.Fatalf("comment stream delivered %v with no comment written", eventKeys(b.Events))
		}
		if bytes.Equal(b.Token, h) {
			t.Errorf("quiet stream's token stays at %q after other writes", h)
		}
		quiet = b.Token
	}
	// Nothing written after that position may be lost by resuming there.
	p := createPost(t, s, "p2", base())
	c := createComment(t, s, p.ID, "after the quiet batch", base())
	evs, _ := collect(t, openStream(t, s.CommentFeed, quiet), 1)
	sameIDs(t, "resumed after quiet token", eventKeys(evs), []string{"insert:" + c.ID})
}

// testFeedDeleteByPostEmitsDeletes is the contract subtest "delete-by-post-emits-deletes".
func testFeedDeleteByPostEmitsDeletes(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	p := createPost(t, s, "p", base())
	c1 := createComment(t, s, p.ID, "c1", base())
	c2 := createComment(t, s, p.ID, "c2", base())
	st := openStream(t, s.CommentFeed, nil)
	if err := s.Posts.Delete(ctxFor(t), p.ID); err != nil {
		t.Fatalf("delete post: %v", err)
	}
	if _, err := s.Comments.DeleteByPost(ctxFor(t), p.ID); err != nil {
		t.Fatalf("delete by post: %v", err)
	}
	evs, _ := collect(t, st, 2)
	got := eventKeys(evs)
	slices.Sort(got)
	want := []string{"delete:" + c1.ID, "delete:" + c2.ID}
	slices.Sort(want)
	sameIDs(t, "delete events", got, want)
}

// testFeedPostInsertUpdateDelete is the contract subtest "post-insert-update-delete".
func testFeedPostInsertUpdateDelete(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	st := openStream(t, s.PostFeed, nil)
	p := createPost(t, s, "p", base())
	evs, _ := collect(t, st, 1)
	at := base().Add(time.Minute)
	if _, err := s.Posts.Update(ctxFor(t), p.ID, post.Patch{Title: ptr("p, edited")}, at); err != nil {
		t.Fatalf("update: %v", err)
	}
	more, _ := collect(t, st, 1)
	evs = append(evs, more...)
	if err := s.Posts.Delete(ctxFor(t), p.ID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	more, _ = collect(t, st, 1)
	evs = append(evs, more...)

	want := []string{"insert:" + p.ID, "update:" + p.ID, "delete:" + p.ID}
	if got := eventKeys(evs); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	checkTokens(t, evs)
	if !evs[0].Found {
		t.Errorf("insert event has no document")
	}
	samePost(t, "insert event doc", evs[0].Doc, p)
	edited := p
	edited.Title, edited.UpdatedAt = "p, edited", &at
	if !evs[1].Found {
		t.Errorf("update event has no document")
	}
	samePost(t, "update event doc", evs[1].Doc, edited)
	if evs[2].Found || evs[2].Doc.ID != "" {
		t.Errorf("delete event carries a document: %+v", evs[2].Doc)
	}
}

// testFeedPostFeedIgnoresComments is the contract subtest "post-feed-ignores-comments".
func testFeedPostFeedIgnoresComments(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	p := createPost(t, s, "p", base())
	st := openStream(t, s.PostFeed, nil)
	createComment(t, s, p.ID, "c", base())
	next := createPost(t, s, "sentinel", base())
	evs, _ := collect(t, st, 1)
	sameIDs(t, "post feed after a comment write", eventKeys(evs), []string{"insert:" + next.ID})
}
