package changes_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"blog/internal/changes"
)

// The consumer's unit tests run it over an in-memory feed and sink, so
// retries, backoff, dead-lettering, resync and fencing are checked without
// a database; the contract suite (internal/store/storetest) runs the same
// loop over the real adapters.

// wait is the longest a test polls for a condition; a passing run never
// waits for it.
const wait = 10 * time.Second

// eventually polls cond until it holds, or fails the test after wait.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", wait, what)
		}
		time.Sleep(2 * time.Millisecond) // poll interval, bounded by the deadline
	}
}

// tok is the position after the n-th event of memFeed's log.
func tok(n int) changes.Token { return changes.Token(strconv.Itoa(n)) }

func pos(t changes.Token) int {
	n, _ := strconv.Atoi(string(t))
	return n
}

// memFeed is a change log in memory: the event with Key "k<n>" is at
// position n (1-based), and a stream reads it after position n-1.
type memFeed struct {
	mu     sync.Mutex
	log    []string // keys, in order
	lost   int      // positions below lost are no longer retained
	opens  []changes.Token
	quiet  time.Duration
	quiets int // empty batches served
	// breakAt, when positive, makes the next stream's Next fail with
	// ErrHistoryLost (wrapped) once it has delivered position breakAt.
	breakAt int
}

func newFeed(n int) *memFeed {
	f := &memFeed{quiet: 2 * time.Millisecond}
	f.add(n)
	return f
}

func (f *memFeed) add(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.log = append(f.log, fmt.Sprintf("k%d", len(f.log)+1))
	}
}

func (f *memFeed) Head(context.Context) (changes.Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return tok(len(f.log)), nil
}

func (f *memFeed) Open(_ context.Context, after changes.Token) (changes.Stream[string], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opens = append(f.opens, after)
	p := len(f.log)
	if after != nil {
		p = pos(after)
	}
	if p < f.lost {
		return nil, fmt.Errorf("position %d pruned: %w", p, changes.ErrHistoryLost)
	}
	s := &memStream{f: f, at: p, breakAt: f.breakAt}
	f.breakAt = 0
	return s, nil
}

func (f *memFeed) openTokens() []changes.Token {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.opens)
}

type memStream struct {
	f       *memFeed
	at      int
	breakAt int
}

func (s *memStream) Next(ctx context.Context) (changes.Batch[string], error) {
	s.f.mu.Lock()
	if s.breakAt > 0 && s.at >= s.breakAt {
		s.f.mu.Unlock()
		return changes.Batch[string]{}, fmt.Errorf("collection dropped: %w", changes.ErrHistoryLost)
	}
	var b changes.Batch[string]
	for s.at < len(s.f.log) && len(b.Events) < 3 {
		s.at++
		b.Events = append(b.Events, changes.Event[string]{Op: changes.Insert, Key: s.f.log[s.at-1], Doc: s.f.log[s.at-1], Found: true, Token: tok(s.at), At: time.Now()})
	}
	b.Token = tok(s.at)
	if len(b.Events) == 0 {
		s.f.quiets++
	}
	s.f.mu.Unlock()
	if len(b.Events) == 0 {
		select {
		case <-ctx.Done():
			return changes.Batch[string]{}, ctx.Err()
		case <-time.After(s.f.quiet):
		}
	}
	return b, nil
}

func (s *memStream) Close(context.Context) error { return nil }

// memSink is a read model in memory: the keys it applied, in order, its
// checkpoint, its dead letters, and the fence it accepts.
type memSink struct {
	mu          sync.Mutex
	applied     []string
	checkpoint  changes.Token
	saves       int  // checkpoint writes
	fails       int  // the next fails Applies fail
	down        bool // every write fails, dead letters included
	poison      map[string]bool
	deadLetters []string
	fence       int64 // 0: any fence
	fenced      int   // batches refused for their fence
	rebuilds    []changes.Token
}

func (s *memSink) Checkpoint(context.Context, string) (changes.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.checkpoint, nil
}

func (s *memSink) Apply(_ context.Context, _ string, b changes.Batch[string]) error {
	if err := b.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fence != 0 && b.Fence != s.fence {
		s.fenced++
		return changes.ErrFenced
	}
	if s.down {
		return errors.New("store down")
	}
	if s.fails > 0 {
		s.fails--
		return errors.New("transient failure")
	}
	for _, ev := range b.Events {
		if s.poison[ev.Key] {
			return fmt.Errorf("%w: %s", changes.ErrPoison, ev.Key)
		}
	}
	for _, ev := range b.Events {
		if !slices.Contains(s.applied, ev.Key) { // idempotent
			s.applied = append(s.applied, ev.Key)
		}
	}
	s.checkpoint = b.Token
	s.saves++
	return nil
}

func (s *memSink) DeadLetter(_ context.Context, _ string, ev changes.Event[string], _ string, _ int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return errors.New("store down")
	}
	s.deadLetters = append(s.deadLetters, ev.Key)
	s.checkpoint = ev.Token
	return nil
}

// Rebuild "recomputes" the read model: every key up to at.
func (s *memSink) Rebuild(_ context.Context, _ string, at changes.Token, _ int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rebuilds = append(s.rebuilds, at)
	s.applied = nil
	for i := 1; i <= pos(at); i++ {
		s.applied = append(s.applied, fmt.Sprintf("k%d", i))
	}
	s.checkpoint = at
	return nil
}

func (s *memSink) RebuildTarget(context.Context, string) (changes.Token, error) { return nil, nil }

func (s *memSink) snapshot() (applied []string, checkpoint changes.Token, dead []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.applied), s.checkpoint, slices.Clone(s.deadLetters)
}

func keys(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("k%d", i))
	}
	return out
}

// run starts c and stops it when the test ends.
func run[T any](t *testing.T, c *changes.Consumer[T]) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func consumer(f *memFeed, s changes.Sink[string]) *changes.Consumer[string] {
	return &changes.Consumer[string]{
		Name: "test", Feed: f, Sink: s,
		MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond,
		IdleCheckpoint: time.Hour,
	}
}

func applied(s *memSink, n int) func() bool {
	return func() bool { a, _, _ := s.snapshot(); return len(a) >= n }
}

func TestConsumerAppliesInOrderAndCheckpoints(t *testing.T) {
	f, s := newFeed(0), &memSink{}
	c := consumer(f, s)
	run(t, c)
	eventually(t, "first checkpoint", func() bool { _, cp, _ := s.snapshot(); return cp != nil })
	f.add(7)
	eventually(t, "7 events applied", func() bool { _, cp, _ := s.snapshot(); return pos(cp) == 7 })
	got, _, _ := s.snapshot()
	if d := cmp.Diff(keys(1, 7), got); d != "" {
		t.Errorf("applied (-want +got):\n%s", d)
	}
	if st := c.Stats(); st.Applied != 7 || st.Retries != 0 || st.DeadLetters != 0 {
		t.Errorf("stats %+v, want 7 applied, no retries, no dead letters", st)
	}
}

func TestConsumerResumesAfterCheckpoint(t *testing.T) {
	f, s := newFeed(5), &memSink{checkpoint: tok(3)}
	run(t, consumer(f, s))
	eventually(t, "events after the checkpoint applied", func() bool { _, cp, _ := s.snapshot(); return pos(cp) == 5 })
	got, _, _ := s.snapshot()
	if d := cmp.Diff(keys(4, 5), got); d != "" {
		t.Errorf("applied (-want +got):\n%s", d)
	}
	if opens := f.openTokens(); string(opens[0]) != "3" {
		t.Errorf("opened at %q, want just after the checkpoint 3", opens[0])
	}
}

// TestConsumerRetriesTransientFailures: a batch that fails fewer times than
// Attempts is retried with backoff and applied once; nothing is parked.
func TestConsumerRetriesTransientFailures(t *testing.T) {
	f, s := newFeed(0), &memSink{}
	c := consumer(f, s)
	c.Attempts = 3
	run(t, c)
	eventually(t, "first checkpoint", func() bool { _, cp, _ := s.snapshot(); return cp != nil })
	s.mu.Lock()
	s.fails = 2
	s.mu.Unlock()
	f.add(2)
	eventually(t, "events applied", applied(s, 2))
	got, _, dead := s.snapshot()
	if d := cmp.Diff(keys(1, 2), got); d != "" || len(dead) != 0 {
		t.Errorf("applied (-want +got):\n%s dead letters %v", d, dead)
	}
	if st := c.Stats(); st.Retries != 2 || st.DeadLetters != 0 {
		t.Errorf("stats %+v, want 2 retries and no dead letters", st)
	}
}

// TestConsumerBacksOffWhenTheSinkIsDown: while every write fails (dead
// letters too), the session fails again and again with backoff, the
// retries are counted, nothing is parked, and once the sink recovers the
// batch is applied.
func TestConsumerBacksOffWhenTheSinkIsDown(t *testing.T) {
	f, s := newFeed(0), &memSink{}
	c := consumer(f, s)
	c.Attempts = 2
	c.MinBackoff, c.MaxBackoff = time.Millisecond, 8*time.Millisecond
	run(t, c)
	eventually(t, "first checkpoint", func() bool { _, cp, _ := s.snapshot(); return cp != nil })
	s.mu.Lock()
	s.down = true
	s.mu.Unlock()
	f.add(1)
	eventually(t, "several sessions failed", func() bool { return len(f.openTokens()) >= 4 })
	s.mu.Lock()
	s.down = false
	s.mu.Unlock()
	eventually(t, "applied once the sink is back", applied(s, 1))
	if st := c.Stats(); st.Retries < 3 || st.DeadLetters != 0 {
		t.Errorf("stats %+v, want retries counted and nothing parked for a failing sink", st)
	}
}

// TestConsumerParksPoisonEvent: an event that fails every attempt is
// isolated and parked, the events around it are applied, and the
// checkpoint moves past it. (The real adapters' parking is tested once, in
// storetest.)
func TestConsumerParksPoisonEvent(t *testing.T) {
	f, s := newFeed(0), &memSink{poison: map[string]bool{"k2": true}}
	c := consumer(f, s)
	run(t, c)
	eventually(t, "first checkpoint", func() bool { _, cp, _ := s.snapshot(); return cp != nil })
	f.add(3)
	eventually(t, "batch done", func() bool { _, cp, _ := s.snapshot(); return pos(cp) == 3 })
	got, _, dead := s.snapshot()
	if d := cmp.Diff([]string{"k1", "k3"}, got); d != "" {
		t.Errorf("applied (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"k2"}, dead); d != "" {
		t.Errorf("dead letters (-want +got):\n%s", d)
	}
	if st := c.Stats(); st.DeadLetters != 1 || st.Applied != 3 {
		t.Errorf("stats %+v, want 1 dead letter, 3 applied", st)
	}
}

// TestConsumerParksUndecodableEvent: an event with Err set is refused by
// the batch validation and parked like any poison event.
func TestConsumerParksUndecodableEvent(t *testing.T) {
	f := newFeed(0)
	s := &memSink{}
	bad := &badFeed{memFeed: f, bad: "k1"}
	c := consumer(f, s)
	c.Feed = bad
	run(t, c)
	eventually(t, "first checkpoint", func() bool { _, cp, _ := s.snapshot(); return cp != nil })
	f.add(2)
	eventually(t, "batch done", func() bool { _, cp, _ := s.snapshot(); return pos(cp) == 2 })
	got, _, dead := s.snapshot()
	if d := cmp.Diff([]string{"k2"}, got); d != "" || !slices.Equal(dead, []string{"k1"}) {
		t.Errorf("applied (-want +got):\n%s dead letters %v, want [k1]", d, dead)
	}
}

// badFeed marks one key's events as undecodable.
type badFeed struct {
	*memFeed
	bad string
}

func (f *badFeed) Open(ctx context.Context, after changes.Token) (changes.Stream[string], error) {
	s, err := f.memFeed.Open(ctx, after)
	if err != nil {
		return nil, err
	}
	return &badStream{Stream: s, bad: f.bad}, nil
}

type badStream struct {
	changes.Stream[string]
	bad string
}

func (s *badStream) Next(ctx context.Context) (changes.Batch[string], error) {
	b, err := s.Stream.Next(ctx)
	for i := range b.Events {
		if b.Events[i].Key == s.bad {
			b.Events[i].Err, b.Events[i].Found = errors.New("cannot decode"), false
		}
	}
	return b, err
}

// TestConsumerResyncsWhenOpenLosesHistory: a checkpoint the feed no longer
// holds leads to one rebuild towards the head, never a silent skip, and
// the sync continues from there.
func TestConsumerResyncsWhenOpenLosesHistory(t *testing.T) {
	f, s := newFeed(6), &memSink{checkpoint: tok(2)}
	f.lost = 4
	c := consumer(f, s)
	run(t, c)
	eventually(t, "rebuilt", func() bool { return c.Stats().Resyncs == 1 })
	f.add(2)
	eventually(t, "new events applied", func() bool { _, cp, _ := s.snapshot(); return pos(cp) == 8 })
	got, _, _ := s.snapshot()
	if d := cmp.Diff(keys(1, 8), got); d != "" {
		t.Errorf("read model (-want +got):\n%s", d)
	}
	s.mu.Lock()
	rebuilds := slices.Clone(s.rebuilds)
	s.mu.Unlock()
	if d := cmp.Diff([]changes.Token{tok(6)}, rebuilds); d != "" {
		t.Errorf("rebuilds (-want +got):\n%s", d)
	}
}

// TestConsumerResyncsWhenStreamLosesHistory (issue 10, defect 1): a
// running stream whose Next fails with ErrHistoryLost (a dropped, renamed
// or invalidated collection) leads to exactly one rebuild and a new stream
// at the head, as when Open fails, and the sync continues; reopening at the
// checkpoint would meet the same loss forever.
func TestConsumerResyncsWhenStreamLosesHistory(t *testing.T) {
	f, s := newFeed(0), &memSink{}
	c := consumer(f, s)
	f.breakAt = 2 // the first stream breaks once it has delivered k2
	run(t, c)
	eventually(t, "first checkpoint", func() bool { _, cp, _ := s.snapshot(); return cp != nil })
	f.add(2)
	eventually(t, "rebuilt once", func() bool { return c.Stats().Resyncs == 1 })
	f.add(3)
	eventually(t, "sync continues after the resync", func() bool { _, cp, _ := s.snapshot(); return pos(cp) == 5 })
	got, _, dead := s.snapshot()
	if d := cmp.Diff(keys(1, 5), got); d != "" || len(dead) != 0 {
		t.Errorf("read model (-want +got):\n%s dead letters %v", d, dead)
	}
	if st := c.Stats(); st.Resyncs != 1 {
		t.Errorf("%d resyncs, want 1", st.Resyncs)
	}
	// Opened at the checkpoint first, then at the head for the resync.
	if d := cmp.Diff([]changes.Token{tok(0), tok(2)}, f.openTokens()); d != "" {
		t.Errorf("streams opened at (-want +got):\n%s", d)
	}
}

// TestConsumerIdleCheckpoint (issue 10): a quiet stream whose position
// moves is checkpointed at most once per IdleCheckpoint, and one whose
// position does not move is never checkpointed.
func TestConsumerIdleCheckpoint(t *testing.T) {
	t.Run("position-unchanged-not-written", func(t *testing.T) {
		f, s := newFeed(3), &memSink{checkpoint: tok(3)}
		c := consumer(f, s)
		c.IdleCheckpoint = time.Millisecond
		run(t, c)
		eventually(t, "20 quiet batches", func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.quiets >= 20 })
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.saves != 0 {
			t.Errorf("%d checkpoint writes for a position that never moved, want 0", s.saves)
		}
	})
	t.Run("moving-position-written-at-most-once-per-interval", func(t *testing.T) {
		f := newFeed(0)
		s := &memSink{checkpoint: tok(0)}
		c := consumer(f, s)
		c.IdleCheckpoint = 150 * time.Millisecond
		// A feed whose quiet batches carry a new position each time, as
		// MongoDB's post-batch resume token moves with other collections'
		// writes.
		moving := &movingFeed{memFeed: f}
		c.Feed = moving
		begin := time.Now()
		run(t, c)
		eventually(t, "the position moved and was saved", func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.saves >= 1 })
		eventually(t, "50 quiet batches", func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.quiets >= 50 })
		s.mu.Lock()
		saves := s.saves
		s.mu.Unlock()
		limit := int(time.Since(begin)/c.IdleCheckpoint) + 1
		if saves > limit {
			t.Errorf("%d checkpoint writes in %v, want at most %d (one per %v)", saves, time.Since(begin), limit, c.IdleCheckpoint)
		}
	})
}

// movingFeed's quiet batches carry a position past the log's head.
type movingFeed struct {
	*memFeed
	n int
}

func (f *movingFeed) Open(ctx context.Context, after changes.Token) (changes.Stream[string], error) {
	s, err := f.memFeed.Open(ctx, after)
	if err != nil {
		return nil, err
	}
	return &movingStream{Stream: s, f: f}, nil
}

type movingStream struct {
	changes.Stream[string]
	f *movingFeed
}

func (s *movingStream) Next(ctx context.Context) (changes.Batch[string], error) {
	b, err := s.Stream.Next(ctx)
	if err == nil && len(b.Events) == 0 {
		s.f.mu.Lock()
		s.f.n++
		b.Token = changes.Token(fmt.Sprintf("%d.%d", pos(b.Token), s.f.n))
		s.f.mu.Unlock()
	}
	return b, err
}

// memLeaser is a lease table in memory.
type memLeaser struct {
	mu       sync.Mutex
	holder   string
	fence    int64
	acquires int
	sink     *memSink
}

func (l *memLeaser) calls() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acquires
}

func (l *memLeaser) Acquire(_ context.Context, _, holder string, _ time.Duration) (int64, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.acquires++
	if l.holder != "" && l.holder != holder {
		return 0, false, nil
	}
	if l.holder != holder {
		l.holder = holder
		l.fence++
		l.sink.mu.Lock()
		l.sink.fence = l.fence
		l.sink.mu.Unlock()
	}
	return l.fence, true, nil
}

func (l *memLeaser) Release(_ context.Context, _, holder string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.holder == holder {
		l.holder = ""
	}
	return nil
}

// steal hands the lease to another holder, as an expiry and a successor
// would.
func (l *memLeaser) steal(holder string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.holder = holder
	l.fence++
	l.sink.mu.Lock()
	l.sink.fence = l.fence
	l.sink.mu.Unlock()
}

// TestConsumerFencing: every batch carries the lease's fence; once another
// holder takes the lease, the consumer stops leading and its batches are
// refused, so nothing more is applied by it.
func TestConsumerFencing(t *testing.T) {
	f, s := newFeed(0), &memSink{}
	l := &memLeaser{sink: s}
	c := consumer(f, s)
	c.Lease, c.Holder, c.LeaseTTL = l, "a", 30*time.Millisecond
	run(t, c)
	eventually(t, "leading", func() bool { return c.Stats().Leader })
	f.add(2)
	eventually(t, "applied under the lease", applied(s, 2))
	l.steal("b")
	eventually(t, "no longer leading", func() bool { return !c.Stats().Leader })
	f.add(2)
	// The consumer keeps trying to take the lease, which b holds: it must
	// apply nothing more.
	n := l.calls()
	eventually(t, "standby retried the lease", func() bool { return l.calls() >= n+3 })
	got, _, _ := s.snapshot()
	if d := cmp.Diff(keys(1, 2), got); d != "" {
		t.Errorf("applied (-want +got):\n%s", d)
	}
	if c.Stats().Leader {
		t.Error("still leading after the lease changed hands")
	}
	// A stale batch is refused by the sink's fence check.
	if err := s.Apply(context.Background(), "test", changes.Batch[string]{Token: tok(9), Fence: 1}); !errors.Is(err, changes.ErrFenced) {
		t.Errorf("stale fence: %v, want ErrFenced", err)
	}
}

// stager is a sink whose batches need staged work in steps, like the
// comments service's cascade.
type stager struct {
	*memSink
	mu        sync.Mutex
	steps     int // steps per staged event
	stepTime  time.Duration
	failFirst int // Stage calls that fail midway
	stageErrs int
	done      map[string]int // steps done per key: the saved progress
	deadlines []bool
}

func (s *stager) Stage(ctx context.Context, _ string, b changes.Batch[string], step time.Duration) error {
	_, hasDeadline := ctx.Deadline()
	s.mu.Lock()
	s.deadlines = append(s.deadlines, hasDeadline)
	s.mu.Unlock()
	for _, ev := range b.Events {
		for {
			s.mu.Lock()
			n := s.done[ev.Key]
			fail := s.failFirst > 0 && n == 1
			if fail {
				s.failFirst--
				s.stageErrs++
			}
			s.mu.Unlock()
			if n >= s.steps {
				break
			}
			if fail {
				return errors.New("chunk failed")
			}
			sctx, cancel := context.WithTimeout(ctx, step)
			select {
			case <-sctx.Done():
			case <-time.After(s.stepTime):
			}
			err := sctx.Err()
			cancel()
			if err != nil {
				return fmt.Errorf("step of %s: %w", ev.Key, err)
			}
			s.mu.Lock()
			s.done[ev.Key]++
			s.mu.Unlock()
		}
	}
	return nil
}

// TestConsumerStagesOutsideApplyBound (issue 10, defect 2): staged work
// that takes far longer than one ApplyTimeout completes, because only each
// step is bounded; a step that fails ends the session and is resumed, and
// the event is never parked half done.
func TestConsumerStagesOutsideApplyBound(t *testing.T) {
	f := newFeed(0)
	s := &stager{memSink: &memSink{}, steps: 8, stepTime: 10 * time.Millisecond, failFirst: 1, done: map[string]int{}}
	c := consumer(f, s)
	c.ApplyTimeout = 30 * time.Millisecond // 8 steps take 80 ms: more than one bound
	c.Attempts = 1
	run(t, c)
	eventually(t, "first checkpoint", func() bool { _, cp, _ := s.snapshot(); return cp != nil })
	f.add(1)
	eventually(t, "applied after staging", applied(s.memSink, 1))
	_, cp, dead := s.snapshot()
	if len(dead) != 0 || pos(cp) != 1 {
		t.Errorf("dead letters %v, checkpoint %s; want none parked and the event checkpointed", dead, cp)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done["k1"] != s.steps || s.stageErrs != 1 {
		t.Errorf("%d steps done, %d failed stages; want %d and 1", s.done["k1"], s.stageErrs, s.steps)
	}
	if slices.Contains(s.deadlines, true) {
		t.Error("Stage ran under a deadline: the whole of it is bounded like one Apply")
	}
}

// TestConsumerStallShowsInHealth: a sink that fails every write (a store
// that cannot commit) leaves the loop retrying, but past StallAfter the
// consumer is no longer Healthy and Stats says for how long it has been
// failing; the first applied batch makes it healthy again.
func TestConsumerStallShowsInHealth(t *testing.T) {
	f, s := newFeed(0), &memSink{}
	c := consumer(f, s)
	c.StallAfter = 50 * time.Millisecond
	run(t, c)
	eventually(t, "first checkpoint", func() bool { _, cp, _ := s.snapshot(); return cp != nil })
	eventually(t, "healthy while idle", c.Healthy)
	s.mu.Lock()
	s.down = true
	s.mu.Unlock()
	f.add(1)
	eventually(t, "stalled past StallAfter", func() bool { return !c.Healthy() && c.Stats().Failing >= c.StallAfter })
	s.mu.Lock()
	s.down = false
	s.mu.Unlock()
	eventually(t, "applied once the sink is back", applied(s, 1))
	eventually(t, "healthy again", func() bool { return c.Healthy() && c.Stats().Failing == 0 })
}
