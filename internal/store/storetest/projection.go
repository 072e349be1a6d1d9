package storetest

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"blog/internal/changes"
	"blog/internal/comment"
	"blog/internal/page"
	"blog/internal/post"
)

// consumer is the checkpoint name the projection tests apply under.
const consumer = "storetest-posts"

// RunProjection checks post.Store as the sink of the comments feed (the read
// model): events read from the real CommentFeed are applied and the posts
// must embed what post.Store's rules say, however often a batch is applied.
func RunProjection(t *testing.T, open func(t *testing.T) Stores) {
	t.Run("projection-insert-embeds", func(t *testing.T) { testProjectionInsertEmbeds(t, open) })
	t.Run("projection-insert-idempotent", func(t *testing.T) { testProjectionInsertIdempotent(t, open) })
	t.Run("projection-checkpoint", func(t *testing.T) { testProjectionCheckpoint(t, open) })
	t.Run("projection-empty-batch-advances-checkpoint", func(t *testing.T) { testProjectionEmptyBatchAdvancesCheckpoint(t, open) })
	t.Run("projection-bounded-latest-oldest-first", func(t *testing.T) { testProjectionBoundedLatestOldestFirst(t, open) })
	t.Run("projection-delete-backfills", func(t *testing.T) { testProjectionDeleteBackfills(t, open) })
	t.Run("projection-update-embedded-text", func(t *testing.T) { testProjectionUpdateEmbeddedText(t, open) })
	t.Run("projection-insert-delete-replayed", func(t *testing.T) { testProjectionInsertDeleteReplayed(t, open) })
	t.Run("projection-missing-post-is-noop", func(t *testing.T) { testProjectionMissingPostIsNoop(t, open) })
	t.Run("projection-update-of-unseen-comment", func(t *testing.T) { testProjectionUpdateOfUnseenComment(t, open) })
	t.Run("apply-without-token", func(t *testing.T) { testProjectionApplyWithoutToken(t, open) })
	t.Run("projection-several-posts-one-batch", func(t *testing.T) { testProjectionSeveralPostsOneBatch(t, open) })
	t.Run("projection-post-update-keeps-comments", func(t *testing.T) { testProjectionPostUpdateKeepsComments(t, open) })
	t.Run("projection-emits-post-update", func(t *testing.T) { testProjectionEmitsPostUpdate(t, open) })
}

// testProjectionInsertEmbeds is the contract subtest "projection-insert-embeds".
func testProjectionInsertEmbeds(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	h := head(t, s.CommentFeed)
	p := createPost(t, s, "p", base())
	c := createComment(t, s, p.ID, "hello", base().Add(time.Second))
	apply(t, s, batchSince(t, s, h, 1))
	want := p
	want.Comments, want.CommentCount = []post.Comment{post.Embed(c)}, 1
	checkPost(t, s, "after insert", want)
	listed, err := s.Posts.List(ctxFor(t), page.Query{Limit: 10})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(listed) != 1 {
		t.Fatalf("list returned %v", postIDs(listed))
	}
	samePost(t, "listed", listed[0], want)
}

// testProjectionInsertIdempotent is the contract subtest "projection-insert-idempotent".
func testProjectionInsertIdempotent(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	h := head(t, s.CommentFeed)
	p := createPost(t, s, "p", base())
	cs := createComments(t, s, p.ID, s.limit()+2)
	b := batchSince(t, s, h, len(cs))
	apply(t, s, b)
	want := p
	want.Comments, want.CommentCount = latest(cs, s.limit()), len(cs)
	checkPost(t, s, "applied once", want)
	apply(t, s, b)
	checkPost(t, s, "applied twice", want)
	// Event by event again, as after a crash mid-batch.
	for i := range b.Events {
		apply(t, s, changes.Batch[comment.Comment]{Events: b.Events[i : i+1], Token: b.Events[i].Token})
	}
	checkPost(t, s, "replayed one by one", want)
}

// testProjectionCheckpoint is the contract subtest "projection-checkpoint".
func testProjectionCheckpoint(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	tok, err := s.Posts.Checkpoint(ctxFor(t), consumer)
	if err != nil || tok != nil {
		t.Fatalf("checkpoint before any apply = %q, %v; want nil, nil", tok, err)
	}
	h := head(t, s.CommentFeed)
	p := createPost(t, s, "p", base())
	createComment(t, s, p.ID, "c", base())
	b := batchSince(t, s, h, 1)
	apply(t, s, b)
	checkCheckpoint(t, s, consumer, b.Token)
	other, err := s.Posts.Checkpoint(ctxFor(t), consumer+"-other")
	if err != nil || other != nil {
		t.Errorf("another consumer's checkpoint = %q, %v; want nil, nil", other, err)
	}
}

// testProjectionEmptyBatchAdvancesCheckpoint is the contract subtest "projection-empty-batch-advances-checkpoint".
func testProjectionEmptyBatchAdvancesCheckpoint(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	h0 := head(t, s.CommentFeed)
	apply(t, s, changes.Batch[comment.Comment]{Token: h0})
	checkCheckpoint(t, s, consumer, h0)
	p := createPost(t, s, "p", base())
	createComment(t, s, p.ID, "c", base())
	h1 := head(t, s.CommentFeed)
	apply(t, s, changes.Batch[comment.Comment]{Token: h1})
	checkCheckpoint(t, s, consumer, h1)
	// An empty batch applies no event: the comment stays unprojected.
	checkPost(t, s, "after empty batches", p)
}

// testProjectionBoundedLatestOldestFirst is the contract subtest "projection-bounded-latest-oldest-first".
func testProjectionBoundedLatestOldestFirst(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	h := head(t, s.CommentFeed)
	p := createPost(t, s, "p", base())
	n := s.limit() + 3
	// Inserted in an order unrelated to createdAt, with ties, so the
	// embedded set must come from (createdAt, _id), not arrival.
	t0 := base()
	var cs []comment.Comment
	for i := range n {
		off := time.Duration((i*5)%n/2) * time.Second
		cs = append(cs, createComment(t, s, p.ID, fmt.Sprint("c", i), t0.Add(off)))
	}
	apply(t, s, batchSince(t, s, h, n))
	want := p
	want.Comments, want.CommentCount = latest(cs, s.limit()), n
	checkPost(t, s, "bounded", want)
}

// testProjectionDeleteBackfills is the contract subtest "projection-delete-backfills".
func testProjectionDeleteBackfills(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	h := head(t, s.CommentFeed)
	p := createPost(t, s, "p", base())
	cs := createComments(t, s, p.ID, s.limit()+2)
	b := batchSince(t, s, h, len(cs))
	apply(t, s, b)

	// Delete the newest: the next older one takes its place.
	newest := cs[len(cs)-1]
	deleteComment(t, s, newest.ID)
	b = batchSince(t, s, b.Token, 1)
	apply(t, s, b)
	left := cs[:len(cs)-1]
	want := p
	want.Comments, want.CommentCount = latest(left, s.limit()), len(left)
	checkPost(t, s, "after deleting the newest", want)

	// Delete the oldest, which is not embedded: only the count moves.
	deleteComment(t, s, cs[0].ID)
	b = batchSince(t, s, b.Token, 1)
	apply(t, s, b)
	left = left[1:]
	want.Comments, want.CommentCount = latest(left, s.limit()), len(left)
	checkPost(t, s, "after deleting the oldest", want)

	// Replaying the delete changes nothing.
	apply(t, s, b)
	checkPost(t, s, "after replaying the delete", want)
}

// testProjectionUpdateEmbeddedText is the contract subtest "projection-update-embedded-text".
func testProjectionUpdateEmbeddedText(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	h := head(t, s.CommentFeed)
	p := createPost(t, s, "p", base())
	cs := createComments(t, s, p.ID, s.limit()+1)
	b := batchSince(t, s, h, len(cs))
	apply(t, s, b)

	at := base().Add(time.Hour)
	cs[len(cs)-1] = updateComment(t, s, cs[len(cs)-1].ID, "newest, edited", at)
	// The oldest is not embedded, but its copy must be kept current so
	// it shows the new text when it is back-filled.
	cs[0] = updateComment(t, s, cs[0].ID, "oldest, edited", at)
	b = batchSince(t, s, b.Token, 2)
	apply(t, s, b)
	want := p
	want.Comments, want.CommentCount = latest(cs, s.limit()), len(cs)
	checkPost(t, s, "after updates", want)

	// Delete all but the oldest: it surfaces with its edited text.
	for _, c := range cs[1:] {
		deleteComment(t, s, c.ID)
	}
	b = batchSince(t, s, b.Token, len(cs)-1)
	apply(t, s, b)
	want.Comments, want.CommentCount = []post.Comment{post.Embed(cs[0])}, 1
	checkPost(t, s, "after back-filling the edited oldest", want)
}

// testProjectionInsertDeleteReplayed is the contract subtest "projection-insert-delete-replayed".
func testProjectionInsertDeleteReplayed(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	h := head(t, s.CommentFeed)
	p := createPost(t, s, "p", base())
	kept := createComment(t, s, p.ID, "kept", base())
	gone := createComment(t, s, p.ID, "gone", base().Add(time.Second))
	deleteComment(t, s, gone.ID)
	b := batchSince(t, s, h, 3)
	want := p
	want.Comments, want.CommentCount = []post.Comment{post.Embed(kept)}, 1
	apply(t, s, b)
	checkPost(t, s, "applied once", want)
	apply(t, s, b)
	checkPost(t, s, "applied twice", want)
}

// testProjectionMissingPostIsNoop is the contract subtest "projection-missing-post-is-noop".
func testProjectionMissingPostIsNoop(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	h := head(t, s.CommentFeed)
	p := createPost(t, s, "p", base())
	kept := createPost(t, s, "kept", base())
	c := createComment(t, s, p.ID, "late", base())
	c2 := createComment(t, s, kept.ID, "on time", base())
	b := batchSince(t, s, h, 2)
	if err := s.Posts.Delete(ctxFor(t), p.ID); err != nil {
		t.Fatalf("delete post: %v", err)
	}
	updateComment(t, s, c.ID, "late, edited", base())
	deleteComment(t, s, c.ID)
	b2 := batchSince(t, s, b.Token, 2)
	b.Events, b.Token = append(b.Events, b2.Events...), b2.Token
	apply(t, s, b)
	if _, err := s.Posts.Get(ctxFor(t), p.ID); err == nil {
		t.Errorf("comment events brought a deleted post back")
	}
	want := kept
	want.Comments, want.CommentCount = []post.Comment{post.Embed(c2)}, 1
	checkPost(t, s, "the other post in the batch", want)
	checkCheckpoint(t, s, consumer, b.Token)
}

// testProjectionUpdateOfUnseenComment: An update event carries the whole comment, so one for a comment
// whose insert the read model never saw (it came before the
// consumer's first checkpoint, or before a rebuild's position)
// copies, counts and embeds it, once however often it is applied;
// as long as its post exists, and not when the comment's delete
// follows. An update whose comment was gone when the feed looked
// it up (Found false) changes nothing.
func testProjectionUpdateOfUnseenComment(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	p := createPost(t, s, "p", base())
	gonePost := createPost(t, s, "gone", base())
	c := createComment(t, s, p.ID, "unseen", base())
	gone := createComment(t, s, p.ID, "unseen, then deleted", base().Add(time.Second))
	orphan := createComment(t, s, gonePost.ID, "unseen, of a deleted post", base())
	if err := s.Posts.Delete(ctxFor(t), gonePost.ID); err != nil {
		t.Fatalf("delete post: %v", err)
	}
	h := head(t, s.CommentFeed)
	at := base().Add(time.Hour)
	c = updateComment(t, s, c.ID, "unseen, edited", at)
	updateComment(t, s, gone.ID, "edited, then deleted", at)
	deleteComment(t, s, gone.ID)
	updateComment(t, s, orphan.ID, "edited, post gone", at)
	b := batchSince(t, s, h, 4)
	want := p
	want.Comments, want.CommentCount = []post.Comment{post.Embed(c)}, 1
	for i := range 2 {
		apply(t, s, b)
		checkPost(t, s, fmt.Sprint("applied ", i+1, " times"), want)
	}
	for i := range b.Events {
		apply(t, s, changes.Batch[comment.Comment]{Events: b.Events[i : i+1], Token: b.Events[i].Token})
	}
	checkPost(t, s, "replayed one by one", want)
	_, err := s.Posts.Get(ctxFor(t), gonePost.ID)
	wantErr(t, "deleted post after an update of its comment", err, post.ErrNotFound)

	lost := createComment(t, s, p.ID, "unseen, looked up too late", base().Add(2*time.Second))
	ev := changes.Event[comment.Comment]{Op: changes.Update, Key: lost.ID, At: time.Now(), Token: b.Token}
	apply(t, s, changes.Batch[comment.Comment]{Events: []changes.Event[comment.Comment]{ev}, Token: b.Token})
	checkPost(t, s, "after an update without its document", want)
}

// testProjectionApplyWithoutToken: A batch with no position is refused whole, by both sinks, before
// it changes anything: there would be no checkpoint to save, and a
// consumer without one restarts at the feed's "now", losing what
// came in between.
func testProjectionApplyWithoutToken(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	h := head(t, s.CommentFeed)
	p := createPost(t, s, "p", base())
	cs := []comment.Comment{createComment(t, s, p.ID, "c", base())}
	b := batchSince(t, s, h, 1)
	for _, tok := range []changes.Token{nil, {}} {
		for _, evs := range [][]changes.Event[comment.Comment]{b.Events, nil} {
			err := s.Posts.Apply(ctxFor(t), consumer, changes.Batch[comment.Comment]{Events: evs, Token: tok})
			if err == nil {
				t.Errorf("posts sink applied %d events with token %q", len(evs), tok)
			}
		}
	}
	checkPost(t, s, "after the refused batches", p)
	checkCheckpoint(t, s, consumer, nil)

	if s.Cascade == nil {
		return
	}
	hp := head(t, s.PostFeed)
	cs = append(cs, createComments(t, s, p.ID, 2)...)
	pb := deleteBatch(t, s, hp, p.ID)
	for _, tok := range []changes.Token{nil, {}} {
		err := s.Cascade.Apply(ctxFor(t), cascadeConsumer, changes.Batch[post.Post]{Events: pb.Events, Token: tok})
		if err == nil {
			t.Errorf("cascade applied a batch with token %q", tok)
		}
	}
	checkComments(t, s, p.ID, cs...)
	checkSinkCheckpoint(t, s.Cascade, cascadeConsumer, nil)
}

// testProjectionSeveralPostsOneBatch is the contract subtest "projection-several-posts-one-batch".
func testProjectionSeveralPostsOneBatch(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	h := head(t, s.CommentFeed)
	p1 := createPost(t, s, "p1", base())
	p2 := createPost(t, s, "p2", base())
	c1 := createComment(t, s, p1.ID, "on p1", base())
	c2 := createComment(t, s, p2.ID, "on p2", base())
	c3 := createComment(t, s, p1.ID, "on p1 again", base().Add(time.Second))
	apply(t, s, batchSince(t, s, h, 3))
	w1, w2 := p1, p2
	w1.Comments, w1.CommentCount = []post.Comment{post.Embed(c1), post.Embed(c3)}, 2
	w2.Comments, w2.CommentCount = []post.Comment{post.Embed(c2)}, 1
	checkPost(t, s, "p1", w1)
	checkPost(t, s, "p2", w2)
}

// testProjectionPostUpdateKeepsComments is the contract subtest "projection-post-update-keeps-comments".
func testProjectionPostUpdateKeepsComments(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	h := head(t, s.CommentFeed)
	p := createPost(t, s, "p", base())
	c := createComment(t, s, p.ID, "c", base())
	apply(t, s, batchSince(t, s, h, 1))
	at := base().Add(time.Minute)
	got, err := s.Posts.Update(ctxFor(t), p.ID, post.Patch{Title: ptr("edited")}, at)
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	want := p
	want.Title, want.UpdatedAt = "edited", &at
	want.Comments, want.CommentCount = []post.Comment{post.Embed(c)}, 1
	samePost(t, "update result", got, want)
	checkPost(t, s, "after update", want)
}

// testProjectionEmitsPostUpdate is the contract subtest "projection-emits-post-update".
func testProjectionEmitsPostUpdate(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	h := head(t, s.CommentFeed)
	p := createPost(t, s, "p", base())
	c := createComment(t, s, p.ID, "c", base())
	b := batchSince(t, s, h, 1)
	st := openStream(t, s.PostFeed, nil)
	apply(t, s, b)
	// The posts feed carries the projection's change like any other
	// write to a post, so its own consumers see embedded comments.
	evs := collectUntil(t, st, "a post update with the comment", func(e changes.Event[post.Post]) bool {
		return e.Op == changes.Update && e.Found && e.Doc.CommentCount == 1
	})
	got := evs[len(evs)-1]
	if got.Key != p.ID {
		t.Errorf("post event key %q, want %q", got.Key, p.ID)
	}
	sameIDs(t, "embedded in the event doc", embeddedIDs(got.Doc.Comments), []string{c.ID})
}

// apply applies b under the suite's consumer name.
func apply(t *testing.T, s Stores, b changes.Batch[comment.Comment]) {
	t.Helper()
	if err := s.Posts.Apply(ctxFor(t), consumer, b); err != nil {
		t.Fatalf("apply %v: %v", eventKeys(b.Events), err)
	}
}

func checkPost(t *testing.T, s Stores, what string, want post.Post) {
	t.Helper()
	got, err := s.Posts.Get(ctxFor(t), want.ID)
	if err != nil {
		t.Fatalf("%s: get post: %v", what, err)
	}
	samePost(t, what, got, want)
}

func checkCheckpoint(t *testing.T, s Stores, name string, want changes.Token) {
	t.Helper()
	got, err := s.Posts.Checkpoint(ctxFor(t), name)
	if err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("checkpoint %q, want %q", got, want)
	}
}

// createComments creates n comments on a post, one second apart, oldest first.
func createComments(t *testing.T, s Stores, postID string, n int) []comment.Comment {
	t.Helper()
	t0 := base()
	cs := make([]comment.Comment, n)
	for i := range cs {
		cs[i] = createComment(t, s, postID, fmt.Sprint("c", i), t0.Add(time.Duration(i)*time.Second))
	}
	return cs
}

func updateComment(t *testing.T, s Stores, id, text string, at time.Time) comment.Comment {
	t.Helper()
	c, err := s.Comments.Update(ctxFor(t), id, text, at)
	if err != nil {
		t.Fatalf("update comment: %v", err)
	}
	return c
}

func deleteComment(t *testing.T, s Stores, id string) {
	t.Helper()
	if _, err := s.Comments.Delete(ctxFor(t), id); err != nil {
		t.Fatalf("delete comment: %v", err)
	}
}

// latest returns what a post must embed of cs: the limit latest by
// post.Less, oldest first (post.Latest, the rule's own order).
func latest(cs []comment.Comment, limit int) []post.Comment {
	out := make([]post.Comment, len(cs))
	for i, c := range cs {
		out[i] = post.Embed(c)
	}
	return post.Latest(out, limit)
}
