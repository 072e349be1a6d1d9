package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"blog/internal/changes"
	"blog/internal/comment"
	"blog/internal/post"
)

// cascadeConsumer is the checkpoint name the cascade tests apply under.
const cascadeConsumer = "storetest-cascade"

// RunCascade checks the comments service's sink of the posts feed
// (Stores.Cascade): a post's delete event deletes its comments, each
// deletion on the comments feed, idempotently; it rebuilds after lost
// history by deleting the comments of posts that no longer exist; it parks
// what it cannot apply; and it refuses a stale fence.
func RunCascade(t *testing.T, open func(t *testing.T) Stores) {
	t.Run("cascade-big-post-through-consumer", func(t *testing.T) { testCascadeBigPostThroughConsumer(t, open) })
	t.Run("cascade-deletes-comments-of-deleted-post", func(t *testing.T) { testCascadeDeletesCommentsOfDeletedPost(t, open) })
	t.Run("cascade-spares-live-post", func(t *testing.T) { testCascadeSparesLivePost(t, open) })
	t.Run("cascade-deletes-malformed-comment", func(t *testing.T) { testCascadeDeletesMalformedComment(t, open) })
	t.Run("cascade-stale-fence-refused", func(t *testing.T) { testCascadeStaleFenceRefused(t, open) })
	t.Run("cascade-rebuild-deletes-orphans", func(t *testing.T) { testCascadeRebuildDeletesOrphans(t, open) })
	t.Run("cascade-stale-fence-rebuild-refused", func(t *testing.T) { testCascadeStaleFenceRebuildRefused(t, open) })
	t.Run("cascade-dead-letter-parks-and-advances", func(t *testing.T) { testCascadeDeadLetterParksAndAdvances(t, open) })
}

// testCascadeDeletesCommentsOfDeletedPost is the contract subtest "cascade-deletes-comments-of-deleted-post".
func testCascadeDeletesCommentsOfDeletedPost(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	sink := needCascade(t, s)
	hp := head(t, s.PostFeed)
	p1 := createPost(t, s, "p1", base())
	p2 := createPost(t, s, "p2", base())
	doomed := createComments(t, s, p1.ID, 3)
	kept := createComment(t, s, p2.ID, "kept", base())
	b := deleteBatch(t, s, hp, p1.ID)
	commentStream := openStream(t, s.CommentFeed, head(t, s.CommentFeed))

	for i := range 2 { // the replay deletes nothing more and fails nothing
		if err := sink.Apply(ctxFor(t), cascadeConsumer, b); err != nil {
			t.Fatalf("apply %d: %v", i+1, err)
		}
		checkCommentsGone(t, s, p1.ID, doomed)
		checkComments(t, s, p2.ID, kept)
		checkSinkCheckpoint(t, sink, cascadeConsumer, b.Token)
	}
	// Each deletion is an event, as if the comments service deleted it.
	evs, _ := collect(t, commentStream, len(doomed))
	got := eventKeys(evs)
	var want []string
	for _, c := range doomed {
		want = append(want, "delete:"+c.ID)
	}
	slices.Sort(got)
	slices.Sort(want)
	sameIDs(t, "comment events of the cascade", got, want)
}

// testCascadeSparesLivePost: The cascade deletes a post's comments only while the post does
// not exist, whatever event asks: here the post was created again
// with its id (restored from a backup, say) before the cascade saw
// its delete.
func testCascadeSparesLivePost(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	sink := needCascade(t, s)
	hp := head(t, s.PostFeed)
	p := createPost(t, s, "p", base())
	cs := createComments(t, s, p.ID, 3)
	b := deleteBatch(t, s, hp, p.ID)
	if err := s.Posts.Create(ctxFor(t), p); err != nil {
		t.Fatalf("create the post again: %v", err)
	}
	if err := sink.Apply(ctxFor(t), cascadeConsumer, b); err != nil {
		t.Fatalf("apply: %v", err)
	}
	checkComments(t, s, p.ID, cs...)
	checkSinkCheckpoint(t, sink, cascadeConsumer, b.Token)
}

// testCascadeDeletesMalformedComment: A comment the store cannot decode goes with its post all the
// same: the cascade must not leave it behind.
func testCascadeDeletesMalformedComment(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	sink := needCascade(t, s)
	inject := needInjectOnPost(t, s)
	hp := head(t, s.PostFeed)
	p := createPost(t, s, "p", base())
	cs := createComments(t, s, p.ID, 2)
	bad := inject(t, p.ID)
	b := deleteBatch(t, s, hp, p.ID)
	if err := sink.Apply(ctxFor(t), cascadeConsumer, b); err != nil {
		t.Fatalf("apply: %v", err)
	}
	checkCommentsGone(t, s, p.ID, cs)
	_, err := s.Comments.Get(ctxFor(t), bad)
	wantErr(t, "get the malformed comment of the deleted post", err, comment.ErrNotFound)
}

// testCascadeStaleFenceRefused is the contract subtest "cascade-stale-fence-refused".
func testCascadeStaleFenceRefused(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	sink := needCascade(t, s)
	l := needLeases(t, s)
	stale, current := handOver(t, l, cascadeConsumer)
	hp := head(t, s.PostFeed)
	p := createPost(t, s, "p", base())
	cs := createComments(t, s, p.ID, 2)
	b := deleteBatch(t, s, hp, p.ID)
	b.Fence = stale
	err := sink.Apply(ctxFor(t), cascadeConsumer, b)
	wantErr(t, "cascade under a stale fence", err, changes.ErrFenced)
	checkComments(t, s, p.ID, cs...)
	checkSinkCheckpoint(t, sink, cascadeConsumer, nil)

	b.Fence = current
	if err := sink.Apply(ctxFor(t), cascadeConsumer, b); err != nil {
		t.Fatalf("apply under the current fence: %v", err)
	}
	checkCommentsGone(t, s, p.ID, cs)
}

// testCascadeRebuildDeletesOrphans is the contract subtest "cascade-rebuild-deletes-orphans".
func testCascadeRebuildDeletesOrphans(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	sink := needCascade(t, s)
	rb := rebuilder(t, sink)
	p1 := createPost(t, s, "p1", base())
	p2 := createPost(t, s, "p2", base())
	p3 := createPost(t, s, "p3", base())
	orphans := createComments(t, s, p1.ID, 3)
	orphans3 := createComments(t, s, p3.ID, 1)
	kept := createComments(t, s, p2.ID, 2)
	// Deleted while no cascade ran: their delete events are lost.
	for _, id := range []string{p1.ID, p3.ID} {
		if err := s.Posts.Delete(ctxFor(t), id); err != nil {
			t.Fatalf("delete post: %v", err)
		}
	}
	at := head(t, s.PostFeed)
	for i := range 2 {
		if err := rb.Rebuild(ctxFor(t), cascadeConsumer, at, 0); err != nil {
			t.Fatalf("rebuild %d: %v", i+1, err)
		}
		checkCommentsGone(t, s, p1.ID, orphans)
		checkCommentsGone(t, s, p3.ID, orphans3)
		checkComments(t, s, p2.ID, kept...)
		checkSinkCheckpoint(t, sink, cascadeConsumer, at)
		checkRebuildTarget(t, rb, cascadeConsumer, nil)
	}
}

// testCascadeStaleFenceRebuildRefused is the contract subtest "cascade-stale-fence-rebuild-refused".
func testCascadeStaleFenceRebuildRefused(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	sink := needCascade(t, s)
	l := needLeases(t, s)
	rb := rebuilder(t, sink)
	stale, _ := handOver(t, l, cascadeConsumer)
	p := createPost(t, s, "p", base())
	cs := createComments(t, s, p.ID, 2)
	if err := s.Posts.Delete(ctxFor(t), p.ID); err != nil {
		t.Fatalf("delete post: %v", err)
	}
	err := rb.Rebuild(ctxFor(t), cascadeConsumer, head(t, s.PostFeed), stale)
	wantErr(t, "cascade rebuild under a stale fence", err, changes.ErrFenced)
	checkComments(t, s, p.ID, cs...)
	checkSinkCheckpoint(t, sink, cascadeConsumer, nil)
}

// testCascadeDeadLetterParksAndAdvances is the contract subtest "cascade-dead-letter-parks-and-advances".
func testCascadeDeadLetterParksAndAdvances(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	sink := needCascade(t, s)
	dl := deadLetterer[post.Post](t, sink)
	hp := head(t, s.PostFeed)
	p := createPost(t, s, "p", base())
	cs := createComments(t, s, p.ID, 1)
	b := deleteBatch(t, s, hp, p.ID)
	ev := b.Events[len(b.Events)-1]
	if err := dl.DeadLetter(ctxFor(t), cascadeConsumer, ev, "test: cannot apply", 0); err != nil {
		t.Fatalf("park: %v", err)
	}
	checkSinkCheckpoint(t, sink, cascadeConsumer, ev.Token)
	checkComments(t, s, p.ID, cs...) // parked, not applied
	checkParked(t, s, cascadeConsumer, Parked{Op: changes.Delete, Key: p.ID, Reason: "test: cannot apply"})
}

func needCascade(t *testing.T, s Stores) changes.Sink[post.Post] {
	t.Helper()
	if s.Cascade == nil {
		t.Skip("the adapter provides no Stores.Cascade")
	}
	return s.Cascade
}

// deleteBatch deletes post postID and returns the posts feed's events after
// tok up to and including its delete, as one batch.
func deleteBatch(t *testing.T, s Stores, tok changes.Token, postID string) changes.Batch[post.Post] {
	t.Helper()
	st := openStream(t, s.PostFeed, tok)
	if err := s.Posts.Delete(ctxFor(t), postID); err != nil {
		t.Fatalf("delete post: %v", err)
	}
	evs := collectUntil(t, st, "the post's delete event", func(e changes.Event[post.Post]) bool {
		return e.Op == changes.Delete && e.Key == postID
	})
	return changes.Batch[post.Post]{Events: evs, Token: evs[len(evs)-1].Token}
}

// checkComments fails unless the post's stored comments are exactly want.
func checkComments(t *testing.T, s Stores, postID string, want ...comment.Comment) {
	t.Helper()
	got := commentIDs(allComments(t, s, postID))
	w := commentIDs(want)
	slices.Sort(got)
	slices.Sort(w)
	sameIDs(t, "comments of post "+postID, got, w)
}

// checkCommentsGone fails unless none of cs is stored any more.
func checkCommentsGone(t *testing.T, s Stores, postID string, cs []comment.Comment) {
	t.Helper()
	checkComments(t, s, postID)
	for _, c := range cs {
		_, err := s.Comments.Get(ctxFor(t), c.ID)
		wantErr(t, "get a deleted post's comment", err, comment.ErrNotFound)
	}
}

func checkSinkCheckpoint[T any](t *testing.T, sink changes.Sink[T], name string, want changes.Token) {
	t.Helper()
	got, err := sink.Checkpoint(ctxFor(t), name)
	if err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if string(got) != string(want) {
		t.Errorf("checkpoint of %s %q, want %q", name, got, want)
	}
}

// testCascadeBigPostThroughConsumer (issue 10, defect 2): a post whose
// comments span many chunks is deleted whole by the cascade's consumer even
// though its ApplyTimeout is shorter than the whole cascade: each chunk is
// bounded on its own, outside the bounded Apply, and the delete event is
// checkpointed only once every comment is gone; nothing is parked.
func testCascadeBigPostThroughConsumer(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	sink := needCascade(t, s)
	if s.SetDeleteChunk == nil {
		t.Skip("the adapter provides no Stores.SetDeleteChunk")
	}
	const chunk, n = 3, 450 // a hundred and fifty chunks
	s.SetDeleteChunk(chunk)
	// What one chunk costs on this adapter, on this machine, now (-race,
	// load): the best of a few deletions of one chunk (plus the empty
	// chunk that ends the loop). The ApplyTimeout is thirty times that, so
	// each chunk fits it with room to spare even when a loaded machine
	// deschedules it, while the whole cascade, a hundred and fifty times
	// that, cannot fit in one Apply.
	var probe time.Duration
	for i := range 3 {
		pp := createPost(t, s, fmt.Sprint("probe ", i), base())
		createComments(t, s, pp.ID, chunk)
		begin := time.Now()
		if _, err := s.Comments.DeleteByPost(ctxFor(t), pp.ID); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(begin); i == 0 || d < probe {
			probe = d
		}
	}
	p := createPost(t, s, "big", base())
	kept := createPost(t, s, "kept", base())
	doomed := createComments(t, s, p.ID, n)
	keep := createComment(t, s, kept.ID, "kept", base())
	c := &changes.Consumer[post.Post]{
		Name: cascadeConsumer, Feed: s.PostFeed, Sink: sink,
		// One attempt: a cascade run inside the bounded Apply would time
		// out, fail again alone, and be parked half done.
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, Attempts: 1,
		ApplyTimeout: max(5*time.Millisecond, 30*probe),
	}
	runConsumer(t, c)
	waitCheckpoint(t, sink, cascadeConsumer)
	before, err := sink.Checkpoint(ctxFor(t), cascadeConsumer)
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	if err := s.Posts.Delete(ctxFor(t), p.ID); err != nil {
		t.Fatalf("delete post: %v", err)
	}
	waitFor(t, "the cascade to delete every comment and checkpoint the delete", func() bool {
		tok, err := sink.Checkpoint(ctxFor(t), cascadeConsumer)
		return err == nil && string(tok) != string(before) && len(allComments(t, s, p.ID)) == 0
	})
	t.Logf("cascade of %d comments in chunks of %d took %v under an ApplyTimeout of %v (one chunk: %v)", n, chunk, time.Since(begin), c.ApplyTimeout, probe)
	checkCommentsGone(t, s, p.ID, doomed)
	checkComments(t, s, kept.ID, keep)
	if st := c.Stats(); st.DeadLetters != 0 {
		t.Errorf("%d dead letters, want none: a cascade must never be parked half done", st.DeadLetters)
	}
	checkParked(t, s, cascadeConsumer)
}
