package mongo

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	driver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"blog/internal/changes"
)

// feed is a changes.Feed over one collection's change stream.
type feed[T any] struct {
	db     *DB
	c      coll
	decode func([]byte) (T, error)
	// lookup asks for fullDocument: updateLookup, the document as it is
	// now on every update event.
	lookup bool
}

// Open watches the collection just after the resume token after, or from
// now, with a $match that asks the server only for the events the port
// delivers (and fullDocument: updateLookup when the feed looks up).
func (f *feed[T]) Open(ctx context.Context, after changes.Token) (changes.Stream[T], error) {
	cs, err := watch(ctx, f.c, after, f.lookup)
	if err != nil {
		return nil, fmt.Errorf("mongo: watch %s: %w", f.c.name, err)
	}
	return &stream[T]{f: f, cs: cs}, nil
}

// Head opens a stream from now and returns its resume token: the position a
// first-time consumer records before it starts reading.
func (f *feed[T]) Head(ctx context.Context) (changes.Token, error) {
	cs, err := watch(ctx, f.c, nil, f.lookup)
	if err != nil {
		return nil, fmt.Errorf("mongo: watch %s: %w", f.c.name, err)
	}
	tok := cs.ResumeToken()
	if err := cs.Close(ctx); err != nil {
		return nil, fmt.Errorf("mongo: close stream on %s: %w", f.c.name, err)
	}
	if tok == nil {
		return nil, fmt.Errorf("mongo: watch %s: the server returned no resume token", f.c.name)
	}
	return bytes.Clone(tok), nil
}

// stream is a changes.Stream over a backend change stream.
type stream[T any] struct {
	f  *feed[T]
	cs *v2Stream
	// err ends the stream after a batch that preceded it was delivered.
	err error
}

// errEnded is returned by a stream whose collection was dropped or renamed
// (MongoDB invalidates the stream). It wraps changes.ErrHistoryLost: the
// events that removed the documents are not in the stream, so the only
// correct continuation is to rebuild the read model from the collection.
var errEnded = fmt.Errorf("the watched collection was dropped or renamed: %w", changes.ErrHistoryLost)

// Next drains what the stream has at hand, up to maxBatch events, into one
// batch, and returns as soon as that is used up rather than waiting for
// more. With nothing available it keeps waiting until QuietInterval has
// passed and then returns an empty batch whose token is the post-batch
// resume token, so the consumer's checkpoint follows the oplog even when
// this collection is quiet and the token never ages out of it.
func (s *stream[T]) Next(ctx context.Context) (changes.Batch[T], error) {
	if s.err != nil {
		return changes.Batch[T]{}, s.err
	}
	quiet := time.Now().Add(s.f.db.opt.QuietInterval)
	var events []changes.Event[T]
	for len(events) < maxBatch {
		if s.cs.TryNext(ctx, len(events) == 0) {
			ev, ok, err := s.event(s.cs.Current())
			if err != nil {
				return s.fail(events, err)
			}
			if ok {
				events = append(events, ev)
			} else if len(events) == 0 && !time.Now().Before(quiet) {
				break // a long run of skipped events still yields a token
			}
			continue
		}
		if err := s.cs.Err(); err != nil {
			if ctx.Err() != nil && len(events) == 0 {
				return changes.Batch[T]{}, ctx.Err()
			}
			return s.fail(events, fmt.Errorf("mongo: read change stream on %s: %w", s.f.c.name, err))
		}
		if len(events) > 0 || !time.Now().Before(quiet) {
			break
		}
		if err := ctx.Err(); err != nil {
			return changes.Batch[T]{}, err
		}
	}
	tok := s.cs.ResumeToken()
	if tok == nil && len(events) > 0 {
		tok = events[len(events)-1].Token
	}
	return changes.Batch[T]{Events: events, Token: bytes.Clone(tok)}, nil
}

// fail ends the stream with err, after first delivering the events read
// before it (their batch token is the last event's own).
func (s *stream[T]) fail(events []changes.Event[T], err error) (changes.Batch[T], error) {
	if len(events) == 0 {
		return changes.Batch[T]{}, err
	}
	s.err = err
	return changes.Batch[T]{Events: events, Token: events[len(events)-1].Token}, nil
}

// Close closes the backend stream.
func (s *stream[T]) Close(ctx context.Context) error {
	if err := s.cs.Close(ctx); err != nil {
		return fmt.Errorf("mongo: close change stream on %s: %w", s.f.c.name, err)
	}
	return nil
}

// changeEvent is the part of a MongoDB change event the feed reads.
type changeEvent struct {
	ID            bson.Raw `bson:"_id"`
	OperationType string   `bson:"operationType"`
	DocumentKey   struct {
		ID bson.RawValue `bson:"_id"`
	} `bson:"documentKey"`
	FullDocument bson.RawValue  `bson:"fullDocument"`
	ClusterTime  bson.Timestamp `bson:"clusterTime"`
	WallTime     time.Time      `bson:"wallTime"`
}

// event turns one raw change event into a changes.Event. ok is false for an
// event the port has no use for; err ends the stream (errEnded for a drop,
// rename or invalidate).
func (s *stream[T]) event(raw []byte) (changes.Event[T], bool, error) {
	var ce changeEvent
	if err := bson.Unmarshal(raw, &ce); err != nil {
		return changes.Event[T]{}, false, fmt.Errorf("mongo: decode change event on %s: %w", s.f.c.name, err)
	}
	if len(ce.ID) == 0 {
		return changes.Event[T]{}, false, fmt.Errorf("mongo: change event on %s has no resume token", s.f.c.name)
	}
	ev := changes.Event[T]{Token: changes.Token(bytes.Clone(ce.ID)), At: eventTime(ce)}
	switch ce.OperationType {
	case "insert":
		ev.Op = changes.Insert
	case "update", "replace":
		ev.Op = changes.Update
	case "delete":
		ev.Op = changes.Delete
	case "drop", "rename", "dropDatabase", "invalidate":
		return ev, false, fmt.Errorf("mongo: %s event on %s: %w", ce.OperationType, s.f.c.name, errEnded)
	default:
		// Other kinds (index builds and the like, when a server reports
		// them) change no document; the batch token still moves past them.
		return ev, false, nil
	}
	id, ok := ce.DocumentKey.ID.ObjectIDOK()
	if !ok {
		// Not one of this service's documents (written by hand, say): like
		// an undecodable one, it is handed over to be parked, not dropped.
		ev.Key = ce.DocumentKey.ID.String()
		ev.Err = fmt.Errorf("mongo: %s document has _id %s, not an ObjectID", s.f.c.name, ev.Key)
		return ev, true, nil
	}
	ev.Key = id.Hex()
	if ev.Op == changes.Delete {
		return ev, true, nil
	}
	doc, ok := ce.FullDocument.DocumentOK()
	if !ok {
		return ev, true, nil // no document: not looked up, or deleted since
	}
	v, err := s.f.decode(doc)
	if err != nil {
		// A document this service cannot read (written by hand, say) is
		// still delivered, with Err set: the consumer retries it and then
		// parks it as a dead letter, so the stream keeps moving.
		ev.Err = fmt.Errorf("mongo: decode %s document %s: %w", s.f.c.name, ev.Key, err)
		return ev, true, nil
	}
	ev.Doc, ev.Found = v, true
	return ev, true, nil
}

// eventTime is when the change was committed: the server's wallTime (6.0+,
// millisecond precision), else the cluster time (seconds), else now.
func eventTime(ce changeEvent) time.Time {
	switch {
	case !ce.WallTime.IsZero():
		return ce.WallTime.UTC()
	case ce.ClusterTime.T != 0:
		return time.Unix(int64(ce.ClusterTime.T), 0).UTC()
	}
	return time.Now().UTC()
}

// awaitTime is how long one getMore waits on the server for new events
// (maxAwaitTimeMS); it bounds how stale a quiet stream's resume token gets.
const awaitTime = 500 * time.Millisecond

// feedOps are the operation types a feed asks the server for: the
// document changes it delivers, and the events that end a stream (drop,
// rename, dropDatabase; invalidate cannot be filtered out). Anything else
// would only be skipped here.
var feedOps = bson.A{"insert", "update", "replace", "delete", "drop", "rename", "dropDatabase"}

// watch opens a change stream on c just after the resume token startAfter,
// or at the current end of history when it is nil, with update events
// carrying the current document when lookup is set. It fails with
// changes.ErrHistoryLost when the token is no longer in the oplog.
func watch(ctx context.Context, c coll, startAfter []byte, lookup bool) (*v2Stream, error) {
	opts := options.ChangeStream().SetMaxAwaitTime(awaitTime)
	if lookup {
		opts.SetFullDocument(options.UpdateLookup)
	}
	if startAfter != nil {
		opts.SetStartAfter(bson.Raw(startAfter))
	}
	pipeline := driver.Pipeline{{{Key: "$match", Value: bson.D{
		{Key: "operationType", Value: bson.D{{Key: "$in", Value: feedOps}}}}}}}
	cs, err := c.c.c.Watch(ctx, pipeline, opts)
	if err != nil {
		return nil, v2Err(err)
	}
	return &v2Stream{cs: cs}, nil
}

// v2Stream adapts the driver's change stream, which already implements
// post-batch resume tokens and resumes itself after transient errors.
type v2Stream struct{ cs *driver.ChangeStream }

// TryNext advances to the next change event. Without wait it only takes
// what the driver has buffered (a getMore on an idle stream would block
// for maxAwaitTimeMS); with it, it waits up to awaitTime for one. False
// with Err() nil means "nothing yet".
func (s *v2Stream) TryNext(ctx context.Context, wait bool) bool {
	if !wait && s.cs.RemainingBatchLength() == 0 {
		return false
	}
	return s.cs.TryNext(ctx)
}

// Current returns the change event TryNext advanced to.
func (s *v2Stream) Current() []byte { return s.cs.Current }

// ResumeToken returns the position just after the last event returned, or
// the post-batch resume token when none is left.
func (s *v2Stream) ResumeToken() []byte { return s.cs.ResumeToken() }

// Err returns the error that ended the stream, changes.ErrHistoryLost for
// a lost position (286, 280, or 136 on a running stream).
func (s *v2Stream) Err() error { return v2Err(s.cs.Err()) }

// Close releases the stream.
func (s *v2Stream) Close(ctx context.Context) error { return v2Err(s.cs.Close(ctx)) }
