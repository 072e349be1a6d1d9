package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// Group commit: concurrent small writes (creating a comment) share one write
// transaction, so N requests cost one BEGIN IMMEDIATE, one COMMIT and one
// WAL append of the pages they touched, instead of N of each. Writes queue
// for the single write connection anyway (DB.w); grouping makes the queue
// drain in batches.
//
// Each write runs inside its own SAVEPOINT, so one that fails (a duplicate
// id, a missing post) is rolled back alone and its caller told why, while
// the others commit. If the COMMIT itself fails, nothing of the group is
// stored, and each write that had succeeded is run again alone (db.write),
// so a failure it did not cause cannot fail it.
//
// There is no background goroutine: the first caller to find the
// connection free leads, running the queued writes (its own among them) as
// one group; if more queued meanwhile, it hands the lead to the first of
// them and returns, so no caller waits for more than the group before its
// own and its own.

// maxGroup bounds the writes one group commits, so the write lock is never
// held for long and a leader's own answer is never delayed by much.
const maxGroup = 64

// groupWrite is one queued write: its function and where its result goes.
type groupWrite struct {
	ctx  context.Context
	fn   func(ctx context.Context, tx *sql.Tx) error
	done chan groupResult // buffered: the leader never blocks on it
}

// groupResult tells a queued writer its own outcome, or that it leads now.
type groupResult struct {
	err  error
	lead bool
}

// grouper is a DB's queue of writes awaiting a group.
type grouper struct {
	mu      sync.Mutex
	queue   []*groupWrite
	leading bool // a caller is running a group
}

// writeGrouped runs fn in a write transaction shared with other concurrent
// writeGrouped calls, under its own savepoint, and returns fn's error or the
// commit's. fn gets ctx's values without its cancellation (see runGroup). fn must confine its effects to tx (it may be run again alone if
// the group's commit fails) and must not begin or end savepoints of its own.
// A caller whose ctx ends while queued gets ctx's error and its write is not
// run; once its write has run, it waits for the commit that decides it.
func (db *DB) writeGrouped(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	w := &groupWrite{ctx: ctx, fn: fn, done: make(chan groupResult, 1)}
	g := &db.group
	g.mu.Lock()
	g.queue = append(g.queue, w)
	if g.leading {
		g.mu.Unlock()
		r := <-w.done
		if !r.lead {
			return r.err
		}
		// The previous leader handed over: w is still queued, at the front.
	} else {
		g.leading = true
		g.mu.Unlock()
	}
	return db.lead(w)
}

// lead runs groups until own's result is known, then hands the lead to the
// first write still queued, or gives it up when none is.
func (db *DB) lead(own *groupWrite) error {
	g := &db.group
	for {
		g.mu.Lock()
		n := min(len(g.queue), maxGroup)
		batch := make([]*groupWrite, n)
		copy(batch, g.queue)
		g.queue = g.queue[n:]
		g.mu.Unlock()

		db.runGroup(batch)

		select {
		case r := <-own.done:
			g.mu.Lock()
			if len(g.queue) == 0 {
				g.leading = false
			} else {
				g.queue[0].done <- groupResult{lead: true}
			}
			g.mu.Unlock()
			return r.err
		default:
			// own was not in this group (the queue held more than
			// maxGroup before it): run the next.
		}
	}
}

// runGroup runs the writes in one transaction, each under a savepoint, and
// sends each its result. A write runs with its caller's values but not its
// cancellation: interrupting a statement would roll back the whole group
// (SQLite's sqlite3_interrupt), so a caller gone by then has its write
// stored, like a request whose client hung up just after sending it.
func (db *DB) runGroup(batch []*groupWrite) {
	if len(batch) == 1 {
		// Alone: its transaction is its savepoint, and three statements
		// fewer is most of what grouping costs when there is no group.
		w := batch[0]
		if err := w.ctx.Err(); err != nil {
			w.done <- groupResult{err: err}
			return
		}
		ctx := context.WithoutCancel(w.ctx)
		w.done <- groupResult{err: db.write(ctx, func(tx *sql.Tx) error { return w.fn(ctx, tx) })}
		return
	}
	var ran []*groupWrite                              // fn succeeded: decided by the commit
	answered := make(map[*groupWrite]bool, len(batch)) // told their own error already
	answer := func(w *groupWrite, err error) {
		answered[w] = true
		w.done <- groupResult{err: err}
	}
	err := db.write(context.Background(), func(tx *sql.Tx) error {
		bg := context.Background()
		for _, w := range batch {
			if err := w.ctx.Err(); err != nil {
				answer(w, err)
				continue
			}
			if _, err := tx.ExecContext(bg, "SAVEPOINT grouped"); err != nil {
				return fmt.Errorf("savepoint: %w", err)
			}
			if err := w.fn(context.WithoutCancel(w.ctx), tx); err != nil {
				if _, rerr := tx.ExecContext(bg, "ROLLBACK TO grouped"); rerr != nil {
					return fmt.Errorf("roll back a failed write: %w", rerr)
				}
				if _, rerr := tx.ExecContext(bg, "RELEASE grouped"); rerr != nil {
					return fmt.Errorf("release a failed write: %w", rerr)
				}
				answer(w, err)
				continue
			}
			if _, err := tx.ExecContext(bg, "RELEASE grouped"); err != nil {
				return fmt.Errorf("release: %w", err)
			}
			ran = append(ran, w)
		}
		return nil
	})
	if err == nil {
		for _, w := range ran {
			w.done <- groupResult{}
		}
		return
	}
	// The group failed as a whole (BEGIN, a savepoint or the COMMIT): none
	// of it is stored. Run each write not yet answered alone, so each gets
	// its own outcome and none fails for another's fault.
	for _, w := range batch {
		if !answered[w] {
			ctx := context.WithoutCancel(w.ctx)
			w.done <- groupResult{err: db.write(ctx, func(tx *sql.Tx) error { return w.fn(ctx, tx) })}
		}
	}
}
