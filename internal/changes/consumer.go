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
type Consumer[T any] struct {
	// Name identifies the consumer's checkpoint in the sink.
	Name string
	Feed Feed[T]
	Sink Sink[T]
	Log  *slog.Logger
	// MinBackoff and MaxBackoff bound the delay between retries after an
	// error; the delay doubles per consecutive failure.
	MinBackoff, MaxBackoff time.Duration

	running atomic.Bool
	applied atomic.Int64
	lastAt  atomic.Int64 // unix ms of the last applied event's commit time
}

// Running reports whether the consumer has an open stream and is applying
// it; readiness probes use it.
func (c *Consumer[T]) Running() bool { return c.running.Load() }

// Applied returns how many events the consumer has applied since start.
func (c *Consumer[T]) Applied() int64 { return c.applied.Load() }

// LastEventTime returns the commit time of the last applied event (zero if
// none yet), from which lag is measured.
func (c *Consumer[T]) LastEventTime() time.Time {
	ms := c.lastAt.Load()
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// Run consumes until ctx ends, then returns nil. Errors are logged and
// retried with backoff; they never end the loop, because a consumer that
// gives up silently is worse than one that keeps trying loudly.
func (c *Consumer[T]) Run(ctx context.Context) error {
	log := c.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("consumer", c.Name)
	minB, maxB := c.MinBackoff, c.MaxBackoff
	if minB <= 0 {
		minB = 50 * time.Millisecond
	}
	if maxB < minB {
		maxB = 5 * time.Second
	}
	backoff := minB
	for ctx.Err() == nil {
		err := c.session(ctx, log)
		c.running.Store(false)
		if ctx.Err() != nil {
			break
		}
		log.Error("change consumer failed; retrying", "err", err, "backoff", backoff)
		if !sleep(ctx, backoff) {
			break
		}
		backoff = min(backoff*2, maxB)
		if errors.Is(err, errHealthy) {
			backoff = minB
		}
	}
	log.Info("change consumer stopped")
	return nil
}

// errHealthy marks a session that applied at least one batch before failing,
// so the next retry starts again from the shortest backoff.
var errHealthy = errors.New("after progress")

// session opens the feed at the checkpoint and applies batches until an error.
func (c *Consumer[T]) session(ctx context.Context, log *slog.Logger) error {
	tok, err := c.Sink.Checkpoint(ctx, c.Name)
	if err != nil {
		return fmt.Errorf("read checkpoint: %w", err)
	}
	if tok == nil {
		// A first start: record where we begin before reading, so a restart
		// resumes here rather than at a later "now" and misses what came in
		// between.
		head, err := c.Feed.Head(ctx)
		if err != nil {
			return fmt.Errorf("read feed head: %w", err)
		}
		if err := c.Sink.Apply(ctx, c.Name, Batch[T]{Token: head}); err != nil {
			return fmt.Errorf("save first checkpoint: %w", err)
		}
		tok = head
	}
	stream, err := c.Feed.Open(ctx, tok)
	if err != nil {
		return fmt.Errorf("open feed: %w", err)
	}
	defer func() {
		// The stream is closed on the way out even when ctx has ended.
		_ = stream.Close(context.WithoutCancel(ctx))
	}()
	log.Info("change consumer started", "from", string(printable(tok)))
	c.running.Store(true)
	progressed := false
	for {
		b, err := stream.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if progressed {
				err = fmt.Errorf("%w: %w", errHealthy, err)
			}
			return fmt.Errorf("read feed: %w", err)
		}
		if len(b.Events) == 0 && (b.Token == nil || bytes.Equal(b.Token, tok)) {
			continue
		}
		// The batch is applied even if ctx ends meanwhile: the apply is one
		// short transaction, and finishing it is what "stop after saving the
		// checkpoint" means.
		if err := c.Sink.Apply(context.WithoutCancel(ctx), c.Name, b); err != nil {
			if progressed {
				err = fmt.Errorf("%w: %w", errHealthy, err)
			}
			return fmt.Errorf("apply batch of %d events: %w", len(b.Events), err)
		}
		progressed = true
		tok = b.Token
		if n := len(b.Events); n > 0 {
			c.applied.Add(int64(n))
			c.lastAt.Store(b.Events[n-1].At.UnixMilli())
		}
	}
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
