package storetest

import (
	"errors"
	"testing"
	"time"

	"blog/internal/changes"
	"blog/internal/comment"
	"blog/internal/post"
)

// RunRules pins, for every adapter, the decisions the adapters used to make
// each their own way (issue 9): an unknown op and a malformed id are poison
// (refused with changes.ErrPoison before anything is written, so the
// consumer parks them), a commentCount never goes below zero, a lease taken
// again after its release starts a new term, and a lease needs a holder and
// a positive TTL. The rules themselves are table-tested without a database
// in internal/post; this suite checks that each adapter applies them.
func RunRules(t *testing.T, open func(t *testing.T) Stores) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, open func(t *testing.T) Stores)
	}{
		{"unknown-op-is-poison", testUnknownOpIsPoison},
		{"malformed-id-is-poison", testMalformedIDIsPoison},
		{"cascade-unknown-op-and-malformed-id-are-poison", testCascadePoison},
		{"count-never-negative", testCountNeverNegative},
		{"lease-reacquire-after-release-new-fence", testLeaseReacquireAfterRelease},
		{"lease-holder-and-ttl-validated", testLeaseValidation},
		{"retry-dead-letter", testRetryDeadLetter},
		{"cascade-retry-dead-letter", testCascadeRetryDeadLetter},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

// refused applies b to the posts sink and fails unless it is refused as
// poison, with the post and the checkpoint untouched.
func refused(t *testing.T, s Stores, what string, b changes.Batch[comment.Comment], p post.Post) {
	t.Helper()
	err := s.Posts.Apply(ctxFor(t), consumer, b)
	if !errors.Is(err, changes.ErrPoison) {
		t.Errorf("%s: %v, want changes.ErrPoison", what, err)
	}
	checkPost(t, s, what, p)
	checkCheckpoint(t, s, consumer, nil)
}

// testUnknownOpIsPoison: an op the rules do not know fails its batch as
// poison, whole, rather than being skipped.
func testUnknownOpIsPoison(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	h := head(t, s.CommentFeed)
	p := createPost(t, s, "p", base())
	createComment(t, s, p.ID, "c", base())
	b := batchSince(t, s, h, 1)
	b.Events[0].Op = "replace"
	refused(t, s, "unknown op", b, p)
}

// testMalformedIDIsPoison: a comment or post id that is not an ObjectID
// fails its batch as poison, whole.
func testMalformedIDIsPoison(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	h := head(t, s.CommentFeed)
	p := createPost(t, s, "p", base())
	createComment(t, s, p.ID, "c", base())
	good := batchSince(t, s, h, 1)
	for _, tc := range []struct {
		name string
		edit func(ev *changes.Event[comment.Comment])
	}{
		{"malformed-comment-id", func(ev *changes.Event[comment.Comment]) { ev.Key, ev.Doc.ID = "not-an-id", "not-an-id" }},
		{"malformed-post-id", func(ev *changes.Event[comment.Comment]) { ev.Doc.PostID = "123" }},
		{"uppercase-post-id", func(ev *changes.Event[comment.Comment]) { ev.Doc.PostID = upper(p.ID) }},
		{"delete-malformed-comment-id", func(ev *changes.Event[comment.Comment]) {
			*ev = changes.Event[comment.Comment]{Op: changes.Delete, Key: "nope", Token: ev.Token}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := good
			b.Events = []changes.Event[comment.Comment]{good.Events[0]}
			tc.edit(&b.Events[0])
			// The good event first: the batch is refused whole.
			b.Events = append([]changes.Event[comment.Comment]{good.Events[0]}, b.Events...)
			refused(t, s, tc.name, b, p)
		})
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'f' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// testCascadePoison: the cascade refuses an unknown op or a malformed post
// id as poison too, deleting nothing.
func testCascadePoison(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	sink := needCascade(t, s)
	hp := head(t, s.PostFeed)
	p := createPost(t, s, "p", base())
	cs := createComments(t, s, p.ID, 2)
	b := deleteBatch(t, s, hp, p.ID)
	last := len(b.Events) - 1
	for _, tc := range []struct {
		name string
		edit func(ev *changes.Event[post.Post])
	}{
		{"unknown-op", func(ev *changes.Event[post.Post]) { ev.Op = "drop" }},
		{"malformed-id", func(ev *changes.Event[post.Post]) { ev.Key = "123" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := b
			bad.Events = append([]changes.Event[post.Post](nil), b.Events...)
			ev := bad.Events[last]
			tc.edit(&ev)
			bad.Events = append(bad.Events, ev)
			err := sink.Apply(ctxFor(t), cascadeConsumer, bad)
			if !errors.Is(err, changes.ErrPoison) {
				t.Errorf("cascade: %v, want changes.ErrPoison", err)
			}
			checkComments(t, s, p.ID, cs...)
			checkSinkCheckpoint(t, sink, cascadeConsumer, nil)
		})
	}
}

// testCountNeverNegative: deleting a copy from a post whose stored count is
// already short (a hand edit, drift) leaves the count at zero, never below.
func testCountNeverNegative(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	if s.SetCommentCount == nil {
		t.Skip("the adapter provides no Stores.SetCommentCount")
	}
	h := head(t, s.CommentFeed)
	p := createPost(t, s, "p", base())
	cs := createComments(t, s, p.ID, 2)
	b := batchSince(t, s, h, 2)
	apply(t, s, b)
	s.SetCommentCount(t, p.ID, 1) // drifted: two copies, counted once
	deleteComment(t, s, cs[0].ID)
	deleteComment(t, s, cs[1].ID)
	apply(t, s, batchSince(t, s, b.Token, 2))
	got, err := s.Posts.Get(ctxFor(t), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.CommentCount != 0 || len(got.Comments) != 0 {
		t.Errorf("commentCount %d with %d embedded, want 0 and none", got.CommentCount, len(got.Comments))
	}
}

// testLeaseReacquireAfterRelease: a release ends the holder's term, so the
// same holder taking the lease again gets a new, greater fence, and a write
// under the old fence is refused. The safer choice: a replica's holder name
// may be reused by a restarted process, which must not inherit writes still
// in flight from the term that ended.
func testLeaseReacquireAfterRelease(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	l := needLeases(t, s)
	fa := mustAcquire(t, l, consumer, "a", time.Hour)
	mustRelease(t, l, consumer, "a")
	fa2 := mustAcquire(t, l, consumer, "a", time.Hour)
	if fa2 <= fa {
		t.Errorf("fence after release and re-acquire %d, want > %d", fa2, fa)
	}
	err := s.Posts.Apply(ctxFor(t), consumer, changes.Batch[comment.Comment]{Token: head(t, s.CommentFeed), Fence: fa})
	if !errors.Is(err, changes.ErrFenced) {
		t.Errorf("apply under the released term's fence: %v, want changes.ErrFenced", err)
	}
	if err := s.Posts.Apply(ctxFor(t), consumer, changes.Batch[comment.Comment]{Token: head(t, s.CommentFeed), Fence: fa2}); err != nil {
		t.Errorf("apply under the new term's fence: %v", err)
	}
}

// testLeaseValidation: every adapter refuses an empty holder and a TTL that
// is not positive, taking nothing.
func testLeaseValidation(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	l := needLeases(t, s)
	for _, tc := range []struct {
		name   string
		holder string
		ttl    time.Duration
	}{
		{"empty-holder", "", time.Hour},
		{"zero-ttl", "a", 0},
		{"negative-ttl", "a", -time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, held, err := l.Acquire(ctxFor(t), "v", tc.holder, tc.ttl); err == nil || held {
				t.Errorf("Acquire(holder %q, ttl %v): held %v, err %v; want an error", tc.holder, tc.ttl, held, err)
			}
		})
	}
	// Nothing was taken: a valid holder gets the lease at once.
	mustAcquire(t, l, "v", "b", time.Hour)
}

// testRetryDeadLetter: an operator's retry applies a parked comment event
// again from the comment as it is now, removes the record and leaves the
// checkpoint alone; one that still cannot be applied keeps its record; an
// unknown id is changes.ErrNoDeadLetter.
func testRetryDeadLetter(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	dl := deadLetterer[comment.Comment](t, s.Posts)
	ds, ok := s.Posts.(changes.DeadLetterStore)
	if !ok {
		t.Fatal("the posts store is not a changes.DeadLetterStore")
	}
	h := head(t, s.CommentFeed)
	p := createPost(t, s, "p", base())
	c := createComment(t, s, p.ID, "parked", base())
	ev := batchSince(t, s, h, 1).Events[0]
	if err := dl.DeadLetter(ctxFor(t), consumer, ev, "test: cannot apply", 0); err != nil {
		t.Fatalf("park: %v", err)
	}
	checkPost(t, s, "before the retry", p)
	parked, err := ds.DeadLetters(ctxFor(t), consumer)
	if err != nil || len(parked) != 1 || parked[0].Key != c.ID || parked[0].ID == "" || parked[0].At.IsZero() {
		t.Fatalf("dead letters %+v, %v; want the parked comment %s with an id and a time", parked, err, c.ID)
	}
	// Edited since it was parked: the retry applies it as it is now.
	c = updateComment(t, s, c.ID, "edited", base().Add(time.Minute))
	if err := ds.RetryDeadLetter(ctxFor(t), consumer, parked[0].ID); err != nil {
		t.Fatalf("retry: %v", err)
	}
	want := p
	want.Comments, want.CommentCount = []post.Comment{post.Embed(c)}, 1
	checkPost(t, s, "after the retry", want)
	checkParked(t, s, consumer)
	checkCheckpoint(t, s, consumer, ev.Token)
	err = ds.RetryDeadLetter(ctxFor(t), consumer, parked[0].ID)
	if !errors.Is(err, changes.ErrNoDeadLetter) {
		t.Errorf("retry of a removed record: %v, want changes.ErrNoDeadLetter", err)
	}

	if s.InjectMalformedComment == nil {
		return
	}
	h = head(t, s.CommentFeed)
	bad := s.InjectMalformedComment(t, p.ID)
	badEv := collectUntil(t, openStream(t, s.CommentFeed, h), "the malformed comment", func(e changes.Event[comment.Comment]) bool {
		return e.Key == bad
	})
	last := badEv[len(badEv)-1]
	if err := dl.DeadLetter(ctxFor(t), consumer, last, "undecodable", 0); err != nil {
		t.Fatalf("park: %v", err)
	}
	parked, err = ds.DeadLetters(ctxFor(t), consumer)
	if err != nil || len(parked) != 1 {
		t.Fatalf("dead letters %+v, %v; want the malformed comment", parked, err)
	}
	if err := ds.RetryDeadLetter(ctxFor(t), consumer, parked[0].ID); err == nil {
		t.Error("retry of a comment still malformed succeeded")
	}
	checkParked(t, s, consumer, Parked{Op: changes.Insert, Key: bad})
	checkPost(t, s, "after the failed retry", want)
}

// testCascadeRetryDeadLetter: retrying a parked post delete deletes the
// comments of that post, which no longer exists, and removes the record.
func testCascadeRetryDeadLetter(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	sink := needCascade(t, s)
	dl := deadLetterer[post.Post](t, sink)
	ds, ok := sink.(changes.DeadLetterStore)
	if !ok {
		t.Fatal("the cascade is not a changes.DeadLetterStore")
	}
	hp := head(t, s.PostFeed)
	p := createPost(t, s, "p", base())
	doomed := createComments(t, s, p.ID, 3)
	b := deleteBatch(t, s, hp, p.ID)
	ev := b.Events[len(b.Events)-1]
	if err := dl.DeadLetter(ctxFor(t), cascadeConsumer, ev, "test: cannot apply", 0); err != nil {
		t.Fatalf("park: %v", err)
	}
	checkComments(t, s, p.ID, doomed...)
	parked, err := ds.DeadLetters(ctxFor(t), cascadeConsumer)
	if err != nil || len(parked) != 1 || parked[0].Key != p.ID {
		t.Fatalf("dead letters %+v, %v; want the parked delete of %s", parked, err, p.ID)
	}
	if err := ds.RetryDeadLetter(ctxFor(t), cascadeConsumer, parked[0].ID); err != nil {
		t.Fatalf("retry: %v", err)
	}
	checkCommentsGone(t, s, p.ID, doomed)
	checkParked(t, s, cascadeConsumer)
}
