package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"blog/internal/changes"
	"blog/internal/comment"
	"blog/internal/page"
	"blog/internal/post"
)

// RunSync checks what the posts read model offers the consumer beyond
// Sink: fencing (every write under a stale fence is refused with
// changes.ErrFenced and writes nothing), rebuilding from the comments after
// lost history (changes.Rebuilder), repairing one post (post.Repairer), and
// parking events it cannot apply (changes.DeadLetterer), including a
// malformed document written straight into the database.
func RunSync(t *testing.T, open func(t *testing.T) Stores) {
	t.Run("fence-stale-apply-refused", func(t *testing.T) { testSyncFenceStaleApplyRefused(t, open) })
	t.Run("fence-without-lease-refused", func(t *testing.T) { testSyncFenceWithoutLeaseRefused(t, open) })
	t.Run("fence-stale-dead-letter-refused", func(t *testing.T) { testSyncFenceStaleDeadLetterRefused(t, open) })
	t.Run("fence-stale-rebuild-refused", func(t *testing.T) { testSyncFenceStaleRebuildRefused(t, open) })
	t.Run("rebuild-repairs-drift", func(t *testing.T) { testSyncRebuildRepairsDrift(t, open) })
	t.Run("rebuild-empty-read-model", func(t *testing.T) { testSyncRebuildEmptyReadModel(t, open) })
	t.Run("rebuild-then-replay-converges", func(t *testing.T) { testSyncRebuildThenReplayConverges(t, open) })
	t.Run("repair-post", func(t *testing.T) { testSyncRepairPost(t, open) })
	t.Run("rebuild-skips-malformed-comment", func(t *testing.T) { testSyncRebuildSkipsMalformedComment(t, open) })
	t.Run("dead-letter-parks-and-advances", func(t *testing.T) { testSyncDeadLetterParksAndAdvances(t, open) })
	t.Run("poison-batch-refused", func(t *testing.T) { testSyncPoisonBatchRefused(t, open) })
	t.Run("consumer-parks-poison", func(t *testing.T) { testSyncConsumerParksPoison(t, open) })
}

// testSyncFenceStaleApplyRefused is the contract subtest "fence-stale-apply-refused".
func testSyncFenceStaleApplyRefused(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	l := needLeases(t, s)
	stale, current := handOver(t, l, consumer)
	h := head(t, s.CommentFeed)
	p := createPost(t, s, "p", base())
	c := createComment(t, s, p.ID, "c", base())
	b := batchSince(t, s, h, 1)

	b.Fence = stale
	err := s.Posts.Apply(ctxFor(t), consumer, b)
	wantErr(t, "apply under a stale fence", err, changes.ErrFenced)
	checkPost(t, s, "after the refused apply", p)
	checkCheckpoint(t, s, consumer, nil)

	b.Fence = current
	apply(t, s, b)
	want := p
	want.Comments, want.CommentCount = []post.Comment{post.Embed(c)}, 1
	checkPost(t, s, "after the apply under the current fence", want)
	checkCheckpoint(t, s, consumer, b.Token)
}

// testSyncFenceWithoutLeaseRefused is the contract subtest "fence-without-lease-refused".
func testSyncFenceWithoutLeaseRefused(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	needLeases(t, s)
	h := head(t, s.CommentFeed)
	err := s.Posts.Apply(ctxFor(t), consumer, changes.Batch[comment.Comment]{Token: h, Fence: 7})
	wantErr(t, "apply under a fence of a lease nobody took", err, changes.ErrFenced)
	checkCheckpoint(t, s, consumer, nil)
}

// testSyncFenceStaleDeadLetterRefused is the contract subtest "fence-stale-dead-letter-refused".
func testSyncFenceStaleDeadLetterRefused(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	l := needLeases(t, s)
	dl := deadLetterer[comment.Comment](t, s.Posts)
	stale, _ := handOver(t, l, consumer)
	h := head(t, s.CommentFeed)
	p := createPost(t, s, "p", base())
	createComment(t, s, p.ID, "c", base())
	ev := batchSince(t, s, h, 1).Events[0]
	err := dl.DeadLetter(ctxFor(t), consumer, ev, "test: cannot apply", stale)
	wantErr(t, "park under a stale fence", err, changes.ErrFenced)
	checkCheckpoint(t, s, consumer, nil)
	checkParked(t, s, consumer)
}

// testSyncFenceStaleRebuildRefused is the contract subtest "fence-stale-rebuild-refused".
func testSyncFenceStaleRebuildRefused(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	l := needLeases(t, s)
	rb := rebuilder(t, s.Posts)
	stale, _ := handOver(t, l, consumer)
	p := createPost(t, s, "p", base())
	createComment(t, s, p.ID, "c", base())
	err := rb.Rebuild(ctxFor(t), consumer, head(t, s.CommentFeed), stale)
	wantErr(t, "rebuild under a stale fence", err, changes.ErrFenced)
	checkPost(t, s, "after the refused rebuild", p)
	checkCheckpoint(t, s, consumer, nil)
}

// testSyncRebuildRepairsDrift is the contract subtest "rebuild-repairs-drift".
func testSyncRebuildRepairsDrift(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	rb := rebuilder(t, s.Posts)
	h := head(t, s.CommentFeed)
	p1 := createPost(t, s, "p1", base())
	p2 := createPost(t, s, "p2", base())
	p3 := createPost(t, s, "p3", base())
	gone := createPost(t, s, "gone", base())
	cs := createComments(t, s, p1.ID, s.limit()+3)
	createComments(t, s, gone.ID, 2)
	b := batchSince(t, s, h, len(cs)+2)
	apply(t, s, b)

	// Drift, as lost history leaves it: changes the read model never
	// saw, and a copy of a comment that does not exist.
	deleteComment(t, s, cs[len(cs)-1].ID)
	updateComment(t, s, cs[len(cs)-2].ID, "edited, unseen", base().Add(time.Hour))
	createComment(t, s, p1.ID, "new, unseen", base().Add(time.Minute))
	createComments(t, s, p3.ID, 2)
	ghost(t, s, p2.ID, head(t, s.CommentFeed))
	if err := s.Posts.Delete(ctxFor(t), gone.ID); err != nil {
		t.Fatalf("delete post: %v", err)
	}
	if d := drift(t, s, p1.ID, p2.ID, p3.ID); len(d) == 0 {
		t.Fatal("the setup left no drift to repair")
	}

	at := head(t, s.CommentFeed)
	for i := range 2 { // a second rebuild changes nothing
		if err := rb.Rebuild(ctxFor(t), consumer, at, 0); err != nil {
			t.Fatalf("rebuild %d: %v", i+1, err)
		}
		checkConverged(t, s, fmt.Sprint("after rebuild ", i+1), p1.ID, p2.ID, p3.ID)
		checkCheckpoint(t, s, consumer, at)
		_, err := s.Posts.Get(ctxFor(t), gone.ID)
		wantErr(t, "deleted post after rebuild", err, post.ErrNotFound)
	}
}

// testSyncRebuildEmptyReadModel is the contract subtest "rebuild-empty-read-model".
func testSyncRebuildEmptyReadModel(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	rb := rebuilder(t, s.Posts)
	var ids []string
	for i := range 7 {
		p := createPost(t, s, fmt.Sprint("p", i), base().Add(time.Duration(i)*time.Second))
		createComments(t, s, p.ID, i%(s.limit()+3))
		ids = append(ids, p.ID)
	}
	at := head(t, s.CommentFeed)
	checkRebuildTarget(t, rb, consumer, nil)
	if err := rb.Rebuild(ctxFor(t), consumer, at, 0); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	checkConverged(t, s, "after rebuild", ids...)
	checkCheckpoint(t, s, consumer, at)
	// A finished rebuild leaves nothing to resume.
	checkRebuildTarget(t, rb, consumer, nil)
}

// testSyncRebuildThenReplayConverges: The consumer's protocol: take the position first, rebuild from
// the source (which already holds later changes), then apply what
// came after the position again.
func testSyncRebuildThenReplayConverges(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	rb := rebuilder(t, s.Posts)
	p := createPost(t, s, "p", base())
	cs := createComments(t, s, p.ID, s.limit()+2)
	at := head(t, s.CommentFeed)
	deleteComment(t, s, cs[len(cs)-1].ID)
	updateComment(t, s, cs[len(cs)-2].ID, "edited", base().Add(time.Hour))
	gone := createComment(t, s, p.ID, "created and deleted", base().Add(time.Minute))
	deleteComment(t, s, gone.ID)
	createComment(t, s, p.ID, "new", base().Add(2*time.Minute))
	if err := rb.Rebuild(ctxFor(t), consumer, at, 0); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	checkConverged(t, s, "after rebuild", p.ID)
	apply(t, s, batchSince(t, s, at, 5))
	checkConverged(t, s, "after replaying the changes since the position", p.ID)
}

// testSyncRepairPost is the contract subtest "repair-post".
func testSyncRepairPost(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	rp, ok := s.Posts.(post.Repairer)
	if !ok {
		t.Fatal("the posts store is not a post.Repairer")
	}
	h := head(t, s.CommentFeed)
	p1 := createPost(t, s, "p1", base())
	p2 := createPost(t, s, "p2", base())
	cs := createComments(t, s, p1.ID, s.limit()+1)
	b := batchSince(t, s, h, len(cs))
	apply(t, s, changes.Batch[comment.Comment]{Events: b.Events[:1], Token: b.Events[0].Token})
	createComments(t, s, p2.ID, 2)
	ghost(t, s, p1.ID, head(t, s.CommentFeed))
	if err := rp.RebuildPost(ctxFor(t), p1.ID); err != nil {
		t.Fatalf("rebuild post: %v", err)
	}
	want := p1
	want.Comments, want.CommentCount = latest(cs, s.limit()), len(cs)
	checkPost(t, s, "repaired post", want)
	// Only the post asked for.
	checkPost(t, s, "other post", p2)
	unknown := newID()
	if err := rp.RebuildPost(ctxFor(t), unknown); err != nil && !errors.Is(err, post.ErrNotFound) {
		t.Errorf("rebuild unknown post: %v, want nil or post.ErrNotFound", err)
	}
	_, err := s.Posts.Get(ctxFor(t), unknown)
	wantErr(t, "unknown post after rebuilding it", err, post.ErrNotFound)
}

// testSyncRebuildSkipsMalformedComment: What the listings skip, the read model leaves out, so a post's
// commentCount and embedded comments agree with its listing (and
// `blog verify` finds no drift in it).
func testSyncRebuildSkipsMalformedComment(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	inject := needInjectOnPost(t, s)
	rb := rebuilder(t, s.Posts)
	p := createPost(t, s, "p", base())
	cs := createComments(t, s, p.ID, s.limit()+1)
	inject(t, p.ID) // the newest, were it readable
	want := p
	want.Comments, want.CommentCount = latest(cs, s.limit()), len(cs)
	if err := rb.Rebuild(ctxFor(t), consumer, head(t, s.CommentFeed), 0); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	checkPost(t, s, "after rebuild", want)
	checkConverged(t, s, "after rebuild", p.ID)
	rp, ok := s.Posts.(post.Repairer)
	if !ok {
		t.Fatal("the posts store is not a post.Repairer")
	}
	if err := rp.RebuildPost(ctxFor(t), p.ID); err != nil {
		t.Fatalf("rebuild post: %v", err)
	}
	checkPost(t, s, "after rebuilding the post", want)
}

// testSyncDeadLetterParksAndAdvances is the contract subtest "dead-letter-parks-and-advances".
func testSyncDeadLetterParksAndAdvances(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	dl := deadLetterer[comment.Comment](t, s.Posts)
	h := head(t, s.CommentFeed)
	p := createPost(t, s, "p", base())
	c := createComment(t, s, p.ID, "c", base())
	ev := batchSince(t, s, h, 1).Events[0]
	if err := dl.DeadLetter(ctxFor(t), consumer, ev, "test: cannot apply", 0); err != nil {
		t.Fatalf("park: %v", err)
	}
	checkCheckpoint(t, s, consumer, ev.Token)
	checkPost(t, s, "post of the parked comment", p)
	checkParked(t, s, consumer, Parked{Op: changes.Insert, Key: c.ID, Reason: "test: cannot apply"})
	checkParked(t, s, consumer+"-other")
}

// testSyncPoisonBatchRefused is the contract subtest "poison-batch-refused".
func testSyncPoisonBatchRefused(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	inject := needInject(t, s)
	dl := deadLetterer[comment.Comment](t, s.Posts)
	p := createPost(t, s, "p", base())
	h := head(t, s.CommentFeed)
	good1 := createComment(t, s, p.ID, "good 1", base())
	bad := inject(t, p.ID)
	good2 := createComment(t, s, p.ID, "good 2", base().Add(time.Second))
	evs, _ := collect(t, openStream(t, s.CommentFeed, h), 3)
	if len(evs) != 3 {
		t.Fatalf("events %v, want 3", eventKeys(evs))
	}
	if e := evs[1]; e.Key != bad || e.Err == nil || e.Found {
		t.Fatalf("malformed comment's event: key %s (want %s), err %v, found %v; want an error and no document", e.Key, bad, e.Err, e.Found)
	}
	for _, i := range []int{0, 2} {
		if evs[i].Err != nil {
			t.Fatalf("event %d: %v", i, evs[i].Err)
		}
	}

	// A batch with the undecodable event is refused whole: applying
	// the rest and checkpointing past it would lose it silently.
	err := s.Posts.Apply(ctxFor(t), consumer, changes.Batch[comment.Comment]{Events: evs, Token: evs[2].Token})
	if err == nil {
		t.Fatal("applied a batch with an undecodable event")
	}
	checkPost(t, s, "after the refused batch", p)
	checkCheckpoint(t, s, consumer, nil)

	// What the consumer does instead: event by event, parking it.
	apply(t, s, changes.Batch[comment.Comment]{Events: evs[:1], Token: evs[0].Token})
	if err := dl.DeadLetter(ctxFor(t), consumer, evs[1], evs[1].Err.Error(), 0); err != nil {
		t.Fatalf("park: %v", err)
	}
	checkCheckpoint(t, s, consumer, evs[1].Token)
	apply(t, s, changes.Batch[comment.Comment]{Events: evs[2:], Token: evs[2].Token})
	want := p
	want.Comments, want.CommentCount = latest([]comment.Comment{good1, good2}, s.limit()), 2
	checkPost(t, s, "after parking the malformed comment", want)
	checkParked(t, s, consumer, Parked{Op: changes.Insert, Key: bad})
}

// testSyncConsumerParksPoison is the contract subtest "consumer-parks-poison".
func testSyncConsumerParksPoison(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	inject := needInject(t, s)
	deadLetterer[comment.Comment](t, s.Posts)
	p := createPost(t, s, "p", base())
	c := &changes.Consumer[comment.Comment]{
		Name: consumer, Feed: s.CommentFeed, Sink: s.Posts,
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, Attempts: 2,
	}
	stop := runConsumer(t, c)
	waitCheckpoint(t, s.Posts, consumer)

	good := []comment.Comment{createComment(t, s, p.ID, "good 1", base())}
	bad := inject(t, p.ID)
	good = append(good, createComment(t, s, p.ID, "good 2", base().Add(time.Second)))
	waitFor(t, "the good comments embedded and the bad one parked", func() bool {
		return c.Stats().DeadLetters == 1 && embeds(t, s, p, good)
	})
	// The stream moves on.
	good = append(good, createComment(t, s, p.ID, "good 3", base().Add(2*time.Second)))
	waitFor(t, "the comment after the parked one embedded", func() bool {
		return embeds(t, s, p, good)
	})
	stop()
	want := p
	want.Comments, want.CommentCount = latest(good, s.limit()), len(good)
	checkPost(t, s, "after the consumer", want)
	checkParked(t, s, consumer, Parked{Op: changes.Insert, Key: bad})
	if st := c.Stats(); st.DeadLetters != 1 || st.Applied < int64(len(good)) {
		t.Errorf("stats %+v, want 1 dead letter and at least %d applied", st, len(good))
	}
}

func checkRebuildTarget(t *testing.T, rb changes.Rebuilder, name string, want changes.Token) {
	t.Helper()
	got, err := rb.RebuildTarget(ctxFor(t), name)
	if err != nil {
		t.Fatalf("rebuild target: %v", err)
	}
	if string(got) != string(want) {
		t.Errorf("rebuild target of %s %q, want %q", name, got, want)
	}
}

func needInjectOnPost(t *testing.T, s Stores) func(t *testing.T, postID string) string {
	t.Helper()
	if s.InjectMalformedCommentOnPost == nil {
		t.Skip("the adapter provides no Stores.InjectMalformedCommentOnPost")
	}
	return s.InjectMalformedCommentOnPost
}

func needInject(t *testing.T, s Stores) func(t *testing.T, postID string) string {
	t.Helper()
	if s.InjectMalformedComment == nil {
		t.Skip("the adapter provides no Stores.InjectMalformedComment")
	}
	return s.InjectMalformedComment
}

func rebuilder(t *testing.T, sink any) changes.Rebuilder {
	t.Helper()
	rb, ok := sink.(changes.Rebuilder)
	if !ok {
		t.Fatalf("%T is not a changes.Rebuilder", sink)
	}
	return rb
}

func deadLetterer[T any](t *testing.T, sink any) changes.DeadLetterer[T] {
	t.Helper()
	dl, ok := sink.(changes.DeadLetterer[T])
	if !ok {
		t.Fatalf("%T is not a changes.DeadLetterer", sink)
	}
	return dl
}

// checkParked compares what the consumer has parked with want, by op and
// key, and checks each reason contains the wanted one. It does nothing when
// the adapter cannot list dead letters.
func checkParked(t *testing.T, s Stores, name string, want ...Parked) {
	t.Helper()
	if s.DeadLetters == nil {
		return
	}
	got, err := s.DeadLetters(ctxFor(t), name)
	if err != nil {
		t.Fatalf("dead letters of %s: %v", name, err)
	}
	if len(got) != len(want) {
		t.Fatalf("dead letters of %s: %+v, want %+v", name, got, want)
	}
	for i := range got {
		if got[i].Op != want[i].Op || got[i].Key != want[i].Key || !strings.Contains(got[i].Reason, want[i].Reason) {
			t.Errorf("dead letter %d of %s: %+v, want %+v", i, name, got[i], want[i])
		}
		if got[i].Reason == "" {
			t.Errorf("dead letter %d of %s has no reason", i, name)
		}
	}
}

// ghost applies, at position tok, the insert of a comment that does not
// exist, as a read model that drifted would hold it.
func ghost(t *testing.T, s Stores, postID string, tok changes.Token) {
	t.Helper()
	c := newComment(postID, "ghost", base().Add(24*time.Hour))
	apply(t, s, changes.Batch[comment.Comment]{
		Events: []changes.Event[comment.Comment]{{Op: changes.Insert, Key: c.ID, Doc: c, Found: true, At: time.Now(), Token: tok}},
		Token:  tok,
	})
}

// allComments lists every comment of a post, oldest first.
func allComments(t *testing.T, s Stores, postID string) []comment.Comment {
	t.Helper()
	var out []comment.Comment
	q := page.Query{Limit: 100}
	for {
		cs, err := s.Comments.ListByPost(ctxFor(t), postID, q)
		if err != nil {
			t.Fatalf("list comments of %s: %v", postID, err)
		}
		out = append(out, cs...)
		if len(cs) < q.Limit {
			return out
		}
		c := cs[len(cs)-1].Cursor()
		q.After = &c
	}
}

// drift compares each post's embedded comments and count with its stored
// comments and describes the differences.
func drift(t *testing.T, s Stores, ids ...string) []string {
	t.Helper()
	var d []string
	for _, id := range ids {
		p, err := s.Posts.Get(ctxFor(t), id)
		if err != nil {
			t.Fatalf("get post %s: %v", id, err)
		}
		cs := allComments(t, s, id)
		if p.CommentCount != len(cs) {
			d = append(d, fmt.Sprintf("post %s: commentCount %d, want %d", id, p.CommentCount, len(cs)))
		}
		for _, e := range diffEmbedded(p.Comments, latest(cs, s.limit())) {
			d = append(d, fmt.Sprintf("post %s: %s", id, e))
		}
	}
	return d
}

// embeds reports whether post p holds exactly cs (its latest, and count).
func embeds(t *testing.T, s Stores, p post.Post, cs []comment.Comment) bool {
	t.Helper()
	got, err := s.Posts.Get(ctxFor(t), p.ID)
	if err != nil {
		t.Fatalf("get post %s: %v", p.ID, err)
	}
	want := p
	want.Comments, want.CommentCount = latest(cs, s.limit()), len(cs)
	return len(diffPost(got, want)) == 0
}

// checkConverged fails unless every post embeds exactly its latest stored
// comments and counts them all.
func checkConverged(t *testing.T, s Stores, what string, ids ...string) {
	t.Helper()
	for _, d := range drift(t, s, ids...) {
		t.Errorf("%s: %s", what, d)
	}
}

// waitFor polls ok until it holds, or fails after Wait.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(Wait)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("test ended waiting for %s", what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// waitCheckpoint waits for the consumer's first checkpoint, which it saves
// before it reads: what is written after it is consumed.
func waitCheckpoint[T any](t *testing.T, sink changes.Sink[T], name string) {
	t.Helper()
	waitFor(t, name+"'s first checkpoint", func() bool {
		tok, err := sink.Checkpoint(ctxFor(t), name)
		if err != nil {
			t.Fatalf("checkpoint: %v", err)
		}
		return tok != nil
	})
}

// runConsumer runs c until the returned stop is called (or the test ends),
// and stop waits for it to return.
func runConsumer[T any](t *testing.T, c *changes.Consumer[T]) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := c.Run(ctx); err != nil {
			t.Errorf("consumer %s: %v", c.Name, err)
		}
	})
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}
