package changes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// Consumer is the resumable loop that feeds one Feed into one Sink: it reads
// the sink's checkpoint, opens the feed just after it, applies each batch
// (events and checkpoint together), and on any failure backs off and starts
// again from the checkpoint. Because the checkpoint only ever names applied
// batches, a crash at any instant loses nothing; because the sink's apply is
// idempotent, the batch replayed after such a crash duplicates nothing.
//
// Beyond that loop it handles what long-running consumers meet:
//   - lost history (the checkpoint was pruned): the sink, if a Rebuilder,
//     rebuilds its read model from the source, never skipping silently;
//   - poison events: a batch that keeps failing is applied event by event,
//     and an event that still fails is parked with the sink's DeadLetterer;
//   - several replicas: with a Leaser, only the lease holder consumes, and
//     every batch carries the lease's fence.
type Consumer[T any] struct {
	// Name identifies the consumer's checkpoint and lease.
	Name string
	Feed Feed[T]
	Sink Sink[T]
	Log  *slog.Logger
	// MinBackoff and MaxBackoff bound the delay between retries after an
	// error; the delay doubles per consecutive failure.
	MinBackoff, MaxBackoff time.Duration
	// Attempts is how often a failing batch or event is tried before it is
	// split up or parked; zero means 3.
	Attempts int
	// Lease, when set, makes replicas take turns: only the holder of the
	// lease named Name consumes. Holder names this replica.
	Lease    Leaser
	Holder   string
	LeaseTTL time.Duration // zero means 5s; renewed every third of it
	// IdleCheckpoint is the least time between two checkpoint writes while
	// the feed is quiet (batches with no events that only move the
	// position); zero means 5s. Without it an idle consumer would write its
	// checkpoint every quiet interval forever (on MongoDB, a majority
	// transaction a second per consumer).
	IdleCheckpoint time.Duration
	// ApplyTimeout bounds one write to the sink (an Apply, a dead letter,
	// one step of a Stage); zero means 10s. A stuck store must not hold a
	// shutdown, nor a session forever.
	ApplyTimeout time.Duration
	// StallAfter is how long the consumer may keep failing (every apply or
	// stream read since the first failure has failed) before Healthy
	// reports it stalled; zero means 15s. It is what makes a sync stuck
	// behind a store that cannot commit (no majority, a full disk, a lock
	// held by another process) visible on /readyz and in metrics, where a
	// consumer that merely retries would otherwise look alive.
	StallAfter time.Duration

	running     atomic.Bool
	failingFrom atomic.Int64 // unix ms of the first failure since the last success; 0: none
	leader      atomic.Bool
	caughtUp    atomic.Bool
	applied     atomic.Int64
	retries     atomic.Int64
	deadLetters atomic.Int64
	resyncs     atomic.Int64
	lastAt      atomic.Int64 // unix ms of the last applied event's commit time
}

// Stats is a snapshot of a consumer's counters, for metrics.
type Stats struct {
	Running, Leader                        bool
	Applied, Retries, DeadLetters, Resyncs int64
	// Lag is now minus the commit time of the last applied event, or zero
	// when the consumer has drained its feed.
	Lag time.Duration
	// Failing is how long every attempt has failed since the last success
	// (zero while healthy); Healthy reports a stall past StallAfter.
	Failing time.Duration
}

// Stats returns the consumer's counters now.
func (c *Consumer[T]) Stats() Stats {
	s := Stats{
		Running: c.running.Load(), Leader: c.leader.Load(),
		Applied: c.applied.Load(), Retries: c.retries.Load(),
		DeadLetters: c.deadLetters.Load(), Resyncs: c.resyncs.Load(),
	}
	if ms := c.lastAt.Load(); ms != 0 && !c.caughtUp.Load() {
		s.Lag = max(0, time.Since(time.UnixMilli(ms)))
	}
	if ms := c.failingFrom.Load(); ms != 0 {
		s.Failing = max(0, time.Since(time.UnixMilli(ms)))
	}
	return s
}

// Healthy reports whether the consumer is running and not stalled: it is
// false while no session runs (between retries), and once every attempt
// for longer than StallAfter has failed, even though the loop goes on
// retrying. Readiness probes use it.
func (c *Consumer[T]) Healthy() bool {
	if !c.running.Load() {
		return false
	}
	ms := c.failingFrom.Load()
	return ms == 0 || time.Since(time.UnixMilli(ms)) < c.stallAfter()
}

func (c *Consumer[T]) stallAfter() time.Duration {
	if c.StallAfter > 0 {
		return c.StallAfter
	}
	return 15 * time.Second
}

// failed records a failure; the first since the last success starts the
// stall clock.
func (c *Consumer[T]) failed() { c.failedSince(time.Now()) }

// failedSince records a failure of an operation that began at begin; the
// first since the last success starts the stall clock there, so a write
// that hung for ApplyTimeout before failing counts from when it started.
func (c *Consumer[T]) failedSince(begin time.Time) {
	c.failingFrom.CompareAndSwap(0, begin.UnixMilli())
}

// succeeded records progress (an applied batch, or a read that found the
// feed drained), which stops the stall clock.
func (c *Consumer[T]) succeeded() { c.failingFrom.Store(0) }

// Running reports whether the consumer has an open stream and is applying
// it, or is a healthy standby waiting for the lease; readiness probes use it.
func (c *Consumer[T]) Running() bool { return c.running.Load() }

// Run consumes until ctx ends, then returns nil. Errors are logged and
// retried with backoff; they never end the loop, because a consumer that
// gives up silently is worse than one that keeps trying loudly.
func (c *Consumer[T]) Run(ctx context.Context) error {
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	c.Log = c.Log.With("consumer", c.Name)
	if c.MinBackoff <= 0 {
		c.MinBackoff = 50 * time.Millisecond
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = 5 * time.Second
	}
	if c.Attempts <= 0 {
		c.Attempts = 3
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = 5 * time.Second
	}
	if c.ApplyTimeout <= 0 {
		c.ApplyTimeout = defaultApplyTimeout
	}
	backoff := c.MinBackoff
	for ctx.Err() == nil {
		err := c.lead(ctx)
		c.running.Store(false)
		if ctx.Err() != nil {
			break
		}
		if errors.Is(err, errProgress) {
			backoff = c.MinBackoff
		}
		c.failed()
		c.Log.Error("change consumer failed; retrying", "err", err, "backoff", backoff)
		if !sleep(ctx, backoff) {
			break
		}
		backoff = min(backoff*2, c.MaxBackoff)
	}
	c.Log.Info("change consumer stopped")
	return nil
}

// errProgress marks a session that applied at least one batch before it
// failed, so the next retry starts again from the shortest backoff.
var errProgress = errors.New("after progress")

// lead runs one session, first taking the lease if there is one, and keeps
// renewing the lease while the session runs; losing it ends the session.
func (c *Consumer[T]) lead(ctx context.Context) error {
	if c.Lease == nil {
		return c.session(ctx, 0)
	}
	c.running.Store(true) // a standby is healthy
	var fence int64
	for {
		f, held, err := c.Lease.Acquire(ctx, c.Name, c.Holder, c.LeaseTTL)
		if err != nil {
			return fmt.Errorf("acquire lease: %w", err)
		}
		if held {
			fence = f
			break
		}
		if !sleep(ctx, c.LeaseTTL/5) {
			return nil
		}
	}
	c.leader.Store(true)
	c.Log.Info("took the lease; consuming", "holder", c.Holder, "fence", fence)
	defer func() {
		c.leader.Store(false)
		// Hand over at once rather than make the successor wait the TTL.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		if err := c.Lease.Release(rctx, c.Name, c.Holder); err != nil {
			c.Log.Warn("release lease", "err", err)
		}
	}()

	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		t := time.NewTicker(c.LeaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
			f, held, err := c.Lease.Acquire(sctx, c.Name, c.Holder, c.LeaseTTL)
			switch {
			case err != nil && sctx.Err() == nil:
				cancel(fmt.Errorf("renew lease: %w", err))
				return
			case err == nil && (!held || f != fence):
				cancel(ErrFenced)
				return
			}
		}
	}()
	err := c.session(sctx, fence)
	if cause := context.Cause(sctx); ctx.Err() == nil && cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}

// session opens the feed at the checkpoint and applies batches until an
// error or until ctx ends. A stream that loses its position while it runs
// (its Next fails with ErrHistoryLost: a dropped, renamed or invalidated
// collection, a pruned change log) is handled as when Open fails: the read
// model is rebuilt and a new stream continues from the feed's head.
// Reopening at the checkpoint instead would meet the same loss again,
// forever.
func (c *Consumer[T]) session(ctx context.Context, fence int64) error {
	stream, tok, err := c.open(ctx, fence)
	if err != nil {
		return err
	}
	defer func() {
		// The stream is closed on the way out even when ctx has ended.
		_ = stream.Close(context.WithoutCancel(ctx))
	}()
	c.Log.Info("change consumer started", "from", string(printable(tok)))
	c.running.Store(true)
	progressed := false
	fail := func(err error) error {
		if progressed {
			return fmt.Errorf("%w: %w", errProgress, err)
		}
		return err
	}
	saved := time.Now() // when the checkpoint was last written
	for {
		b, err := stream.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !errors.Is(err, ErrHistoryLost) {
				return fail(fmt.Errorf("read feed: %w", err))
			}
			c.Log.Warn("change stream lost its position", "err", err)
			_ = stream.Close(context.WithoutCancel(ctx))
			if stream, tok, err = c.resync(ctx, tok, fence); err != nil {
				stream = closed[T]{}
				return fail(fmt.Errorf("resync after the stream lost its position: %w", err))
			}
			progressed, saved = true, time.Now()
			continue
		}
		c.caughtUp.Store(len(b.Events) == 0)
		if len(b.Events) == 0 {
			c.succeeded() // the feed is drained: nothing is waiting to be applied
		}
		if len(b.Events) == 0 && (b.Token == nil || bytes.Equal(b.Token, tok) || time.Since(saved) < c.idleCheckpoint()) {
			// Quiet: the position is saved when it moved, at most once per
			// IdleCheckpoint; a restart meanwhile reopens a little earlier
			// and finds nothing to apply there.
			continue
		}
		b.Fence = fence
		if st, ok := c.Sink.(Stager[T]); ok && len(b.Events) > 0 {
			if err := st.Stage(ctx, c.Name, b, c.ApplyTimeout); err != nil {
				return fail(fmt.Errorf("stage batch of %d events: %w", len(b.Events), err))
			}
		}
		if err := c.apply(ctx, b); err != nil {
			return fail(fmt.Errorf("apply batch of %d events: %w", len(b.Events), err))
		}
		progressed, saved = true, time.Now()
		c.succeeded()
		tok = b.Token
		if n := len(b.Events); n > 0 {
			c.applied.Add(int64(n))
			c.lastAt.Store(b.Events[n-1].At.UnixMilli())
		}
	}
}

// open opens the feed at the checkpoint and returns the stream and its
// position. On a first start it saves the feed's head as the checkpoint
// before reading, so a restart resumes there rather than at a later "now"
// and misses what came in between; when the checkpoint's history is lost it
// rebuilds the read model (resync).
func (c *Consumer[T]) open(ctx context.Context, fence int64) (Stream[T], Token, error) {
	tok, err := c.Sink.Checkpoint(ctx, c.Name)
	if err != nil {
		return nil, nil, fmt.Errorf("read checkpoint: %w", err)
	}
	if tok == nil {
		if tok, err = c.Feed.Head(ctx); err != nil {
			return nil, nil, fmt.Errorf("read feed head: %w", err)
		}
		if err := c.Sink.Apply(ctx, c.Name, Batch[T]{Token: tok, Fence: fence}); err != nil {
			return nil, nil, fmt.Errorf("save first checkpoint: %w", err)
		}
	}
	stream, err := c.Feed.Open(ctx, tok)
	if errors.Is(err, ErrHistoryLost) {
		stream, tok, err = c.resync(ctx, tok, fence)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("open feed: %w", err)
	}
	return stream, tok, nil
}

// idleCheckpoint returns IdleCheckpoint or its default.
func (c *Consumer[T]) idleCheckpoint() time.Duration {
	if c.IdleCheckpoint > 0 {
		return c.IdleCheckpoint
	}
	return defaultIdleCheckpoint
}

// closed is the stream a session holds after its stream failed and no new
// one could be opened: closing it again does nothing.
type closed[T any] struct{}

func (closed[T]) Next(context.Context) (Batch[T], error) {
	return Batch[T]{}, errors.New("stream closed")
}
func (closed[T]) Close(context.Context) error { return nil }

// resync handles lost history: it opens a stream at the feed's head first,
// so nothing written during the rebuild is missed, then has the sink rebuild
// its read model from the source up to that point, and returns the stream to
// continue with.
func (c *Consumer[T]) resync(ctx context.Context, lost Token, fence int64) (Stream[T], Token, error) {
	rb, ok := c.Sink.(Rebuilder)
	if !ok {
		return nil, nil, fmt.Errorf("%w, and the sink cannot rebuild", ErrHistoryLost)
	}
	c.Log.Warn("change history lost; rebuilding the read model from the source", "checkpoint", string(printable(lost)))
	// Resume an interrupted rebuild towards its own target while the feed
	// still holds it; otherwise start one towards the head. Either way the
	// stream is opened before the rebuild reads anything, so no change made
	// during the rebuild is missed.
	var stream Stream[T]
	head, err := rb.RebuildTarget(ctx, c.Name)
	if err != nil {
		return nil, nil, fmt.Errorf("read rebuild target: %w", err)
	}
	if head != nil {
		if stream, err = c.Feed.Open(ctx, head); errors.Is(err, ErrHistoryLost) {
			c.Log.Warn("the interrupted rebuild's target is lost too; starting over")
			head, stream = nil, nil
		} else if err != nil {
			return nil, nil, fmt.Errorf("open feed at rebuild target: %w", err)
		}
	}
	if head == nil {
		if head, err = c.Feed.Head(ctx); err != nil {
			return nil, nil, fmt.Errorf("read feed head: %w", err)
		}
		if stream, err = c.Feed.Open(ctx, head); err != nil {
			return nil, nil, fmt.Errorf("open feed at head: %w", err)
		}
	}
	begin := time.Now()
	if err := rb.Rebuild(ctx, c.Name, head, fence); err != nil {
		_ = stream.Close(context.WithoutCancel(ctx))
		return nil, nil, fmt.Errorf("rebuild: %w", err)
	}
	c.resyncs.Add(1)
	c.Log.Warn("read model rebuilt", "took", time.Since(begin), "from", string(printable(head)))
	return stream, head, nil
}

// apply applies a batch, retrying with backoff. A batch that keeps failing
// is applied event by event, and an event that still fails is parked as a
// dead letter (if the sink can park it), so the stream keeps moving.
func (c *Consumer[T]) apply(ctx context.Context, b Batch[T]) error {
	err := c.attempt(ctx, b)
	if err == nil || errors.Is(err, ErrFenced) {
		return err
	}
	dl, ok := c.Sink.(DeadLetterer[T])
	if !ok {
		return err
	}
	c.Log.Warn("batch keeps failing; isolating the bad event", "events", len(b.Events), "err", err)
	for _, ev := range b.Events {
		if ctx.Err() != nil {
			return fmt.Errorf("stopped isolating: %w", ctx.Err())
		}
		single := Batch[T]{Events: []Event[T]{ev}, Token: ev.Token, Fence: b.Fence}
		if single.Token == nil {
			return fmt.Errorf("event %s has no token to isolate it by: %w", ev.Key, err)
		}
		evErr := c.attempt(ctx, single)
		if evErr == nil {
			continue
		}
		if errors.Is(evErr, ErrFenced) {
			return evErr
		}
		dctx, cancel := c.detached(ctx)
		err := dl.DeadLetter(dctx, c.Name, ev, evErr.Error(), b.Fence)
		cancel()
		if err != nil {
			return fmt.Errorf("park event %s: %w", ev.Key, err)
		}
		c.deadLetters.Add(1)
		c.Log.Error("event parked as a dead letter", "op", ev.Op, "key", ev.Key, "reason", evErr)
	}
	// Save the post-batch position, which may lie past the last event.
	return c.attempt(ctx, Batch[T]{Token: b.Token, Fence: b.Fence})
}

// Defaults of the Consumer's tunables.
const (
	defaultApplyTimeout   = 10 * time.Second
	defaultIdleCheckpoint = 5 * time.Second
)

// detached returns the context for one write to the sink: it survives ctx's
// cancellation, because a started apply is one short transaction and
// finishing it is what "stop after saving the checkpoint" means, but it is
// bounded by ApplyTimeout.
func (c *Consumer[T]) detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), c.ApplyTimeout)
}

// attempt tries a batch up to Attempts times with backoff, retrying only
// while ctx lasts. The sink refuses a batch holding an event that could not
// be decoded (Batch.Validate) before writing anything. Each failed try that
// will be retried is logged: a commit that times out once and then succeeds
// delays the sync by ApplyTimeout, and the log must say why.
func (c *Consumer[T]) attempt(ctx context.Context, b Batch[T]) error {
	var err error
	backoff := c.MinBackoff
	for i := range c.Attempts {
		if i > 0 {
			c.retries.Add(1)
			if !sleep(ctx, backoff) {
				return fmt.Errorf("stopped retrying: %w", err)
			}
			backoff = min(backoff*2, c.MaxBackoff)
		}
		begin := time.Now()
		actx, cancel := c.detached(ctx)
		err = c.Sink.Apply(actx, c.Name, b)
		cancel()
		if err == nil || errors.Is(err, ErrFenced) {
			return err
		}
		// The stall clock starts at the first failed try, not when the
		// session gives up: with 3 tries of a 10 s commit timeout that
		// would be 30 s late, and /readyz would stay green meanwhile.
		c.failedSince(begin)
		if i+1 < c.Attempts {
			c.Log.Warn("apply failed; retrying", "attempt", i+1, "of", c.Attempts, "events", len(b.Events), "backoff", backoff, "err", err)
		}
	}
	return err
}

// printable returns a token as text for logs: the embedded store's tokens are
// decimal text already; MongoDB's are BSON, shown as hex.
func printable(t Token) []byte {
	for _, b := range t {
		if b < 0x20 || b > 0x7e {
			return fmt.Appendf(nil, "%x", []byte(t))
		}
	}
	return t
}

// sleep waits for d or until ctx ends, and reports whether it waited fully.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
