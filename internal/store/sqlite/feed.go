package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"blog/internal/changes"
)

// errClosed ends the streams of a closed DB.
var errClosed = errors.New("store closed")

// feed is the change feed of one collection, read from the change log.
type feed[T any] struct {
	db         *DB
	collection string
	decode     func([]byte) (T, error)
	// lookup, when set, reads the current state of a document whose update
	// was logged without one, as MongoDB's fullDocument: updateLookup does
	// (found false: deleted since). Without it such an update comes with no
	// document, for consumers that only need to know what changed.
	lookup func(ctx context.Context, q querier, id string) (doc T, found bool, err error)
}

// Open starts a stream after the given position (nil: the current head).
// A position that pruning has passed fails with changes.ErrHistoryLost.
func (f *feed[T]) Open(ctx context.Context, after changes.Token) (changes.Stream[T], error) {
	var pos int64
	err := f.db.read(ctx, func(tx *sql.Tx) error {
		head, err := logHead(ctx, tx)
		if err != nil {
			return err
		}
		if after == nil {
			pos = head
			return nil
		}
		if pos, err = decodeToken(after); err != nil {
			return err
		}
		pruned, err := prunedThrough(ctx, tx)
		if err != nil {
			return err
		}
		return checkRetained(pos, pruned, head)
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s feed: %w", f.collection, err)
	}
	return &stream[T]{feed: f, pos: pos, closed: make(chan struct{})}, nil
}

// Head returns the change log's head: a valid position for every
// collection, since all of them share one sequence.
func (f *feed[T]) Head(ctx context.Context) (changes.Token, error) {
	head, err := logHead(ctx, f.db.r)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s feed head: %w", f.collection, err)
	}
	return encodeToken(head), nil
}

// qReadLog reads a collection's entries in a seq range by seeking
// changelog_collection_seq.
const qReadLog = `SELECT seq, op, doc_id, doc, at FROM changelog
	WHERE collection = ? AND seq > ? AND seq <= ?
	ORDER BY seq LIMIT ?`

// stream reads one collection's entries after pos. It is used by one
// goroutine at a time, like every changes.Stream.
type stream[T any] struct {
	feed *feed[T]
	pos  int64 // the seq after which the next batch starts
	// started is set after the first read; seen is the DB's commit count
	// taken before the last read, so an unchanged count means nothing
	// was committed since; full is set when the last read stopped at the
	// batch cap, so more entries wait regardless.
	started, full bool
	seen          uint64
	closed        chan struct{}
	once          sync.Once
}

// Next returns the next entries after the stream's position, waiting for
// some if there are none. It wakes at once on a commit made through this DB
// that appended to its collection's log, and on any commit of another
// process that the DB's watcher sees (wake.go); nothing else wakes it, and
// it reads nothing when nothing at all was committed since its last read.
// After QuietInterval without events it returns a batch at its position,
// which it first moves to the log's head if other collections changed.
func (s *stream[T]) Next(ctx context.Context) (changes.Batch[T], error) {
	db := s.feed.db
	sig := db.wakes.signal(s.feed.collection)
	quiet := time.NewTimer(db.quiet)
	defer quiet.Stop()
	var waiting func()
	defer func() {
		if waiting != nil {
			waiting()
		}
	}()
	for {
		// The channel before the count, and both before reading: a commit
		// after the channel was taken closes it; one before is counted.
		wake := sig.wait()
		gen := db.wakes.commits.Load()
		if !s.started || s.full || gen != s.seen {
			b, err := s.read(ctx)
			if err != nil {
				return changes.Batch[T]{}, err
			}
			s.started, s.seen, s.full = true, gen, len(b.Events) >= db.batch
			if len(b.Events) > 0 {
				return b, nil
			}
		}
		if waiting == nil {
			waiting = db.wakes.wait()
		}
		select {
		case <-wake:
		case <-quiet.C:
			if gen := db.wakes.commits.Load(); gen != s.seen {
				// Other collections moved the head: follow it, so the
				// consumer's checkpoint does not fall behind pruning.
				b, err := s.read(ctx)
				if err == nil {
					s.seen, s.full = gen, len(b.Events) >= db.batch
				}
				return b, err
			}
			return changes.Batch[T]{Token: encodeToken(s.pos)}, nil
		case <-ctx.Done():
			return changes.Batch[T]{}, ctx.Err()
		case <-s.closed:
			return changes.Batch[T]{}, fmt.Errorf("sqlite: %s stream: %w", s.feed.collection, errStreamClosed)
		case <-db.done:
			return changes.Batch[T]{}, fmt.Errorf("sqlite: %s stream: %w", s.feed.collection, errClosed)
		}
	}
}

var errStreamClosed = errors.New("stream closed")

// read returns the collection's entries after pos (at most a batch) and
// advances pos past them. It reads in one snapshot: the head first, then
// entries up to it, so when fewer than a batch come back, every entry of this
// collection up to the head has been seen and pos may jump to the head,
// past other collections' entries.
func (s *stream[T]) read(ctx context.Context) (changes.Batch[T], error) {
	var b changes.Batch[T]
	f := s.feed
	err := f.db.read(ctx, func(tx *sql.Tx) error {
		head, err := logHead(ctx, tx)
		if err != nil {
			return err
		}
		if head <= s.pos {
			return nil
		}
		// The pruned mark is read in the same snapshot as the entries, so
		// a prune is either wholly visible here or not at all.
		pruned, err := prunedThrough(ctx, tx)
		if err != nil {
			return err
		}
		if err := checkRetained(s.pos, pruned, head); err != nil {
			return err
		}
		evs, last, err := f.readLog(ctx, tx, s.pos, head)
		if err != nil {
			return err
		}
		b.Events = evs
		s.pos = last
		return nil
	})
	if err != nil {
		return changes.Batch[T]{}, fmt.Errorf("sqlite: %s stream: %w", f.collection, err)
	}
	b.Token = encodeToken(s.pos)
	return b, nil
}

// Close ends the stream; a Next waiting in another goroutine returns.
func (s *stream[T]) Close(context.Context) error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

// readLog reads the collection's entries in (after, upto], at most a batch,
// in tx's snapshot. It returns them as events and the position they reach:
// upto when fewer than a batch came back (every entry of the collection up
// to it has been seen), else the last entry's seq.
func (f *feed[T]) readLog(ctx context.Context, tx *sql.Tx, after, upto int64) ([]changes.Event[T], int64, error) {
	rows, err := tx.QueryContext(ctx, qReadLog, f.collection, after, upto, f.db.batch)
	if err != nil {
		return nil, 0, fmt.Errorf("read change log: %w", err)
	}
	defer rows.Close()
	var evs []changes.Event[T]
	last := upto
	for rows.Next() {
		var (
			seq, at int64
			op, key string
			doc     sql.NullString
		)
		if err := rows.Scan(&seq, &op, &key, &doc, &at); err != nil {
			return nil, 0, fmt.Errorf("read change log: %w", err)
		}
		e := changes.Event[T]{Op: changes.Op(op), Key: key, At: fromMS(at), Token: encodeToken(seq)}
		if !doc.Valid && e.Op == changes.Update && f.lookup != nil {
			// Logged without its document (the projection's updates of
			// posts): look it up now, in this snapshot.
			if e.Doc, e.Found, err = f.lookup(ctx, tx, key); err != nil {
				return nil, 0, fmt.Errorf("look up %s %s: %w", f.collection, key, err)
			}
		}
		if doc.Valid {
			// A document that does not decode (written by hand, or by a
			// future version) is reported on its event, not as the
			// stream's error: that would end the stream at this entry on
			// every reopen, and the consumer could never move on.
			if e.Doc, err = f.decode([]byte(doc.String)); err != nil {
				var zero T
				e.Doc, e.Err = zero, fmt.Errorf("sqlite: decode %s change %d: %w", f.collection, seq, err)
			} else {
				e.Found = true
			}
		}
		evs = append(evs, e)
		last = seq
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("read change log: %w", err)
	}
	if len(evs) < f.db.batch {
		last = upto
	}
	return evs, last, nil
}
