// Package changes is the change-feed port shared by every consumer: the shape
// of a change event, the feed a store offers, the sink a read model offers, and
// the resumable consumer loop that connects them (see consumer.go).
//
// The contract is at-least-once delivery with an idempotent, checkpointed
// apply: a feed may deliver an event again after a restart, and a sink must
// give the same result either way. Positions are opaque tokens: a sequence
// number for the embedded store, a resume token for MongoDB.
package changes

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Token is an opaque position in a feed. A consumer saves the token of the last
// batch it applied and hands it back to Feed.Open to resume after it. A nil
// Token means "no saved position".
type Token []byte

// Op is the kind of change an event records.
type Op string

// The operations a feed reports; they mirror MongoDB's operationType values.
const (
	Insert Op = "insert"
	Update Op = "update"
	Delete Op = "delete"
)

// Event is one change to one document of a watched collection.
type Event[T any] struct {
	Op Op
	// Key is the changed document's _id (24-hex ObjectID string). It is set
	// for every op, including deletes, which carry no document.
	Key string
	// Doc is the full document after the change for inserts and updates
	// (MongoDB's fullDocument: updateLookup); the zero value for deletes.
	// With updateLookup the document may be newer than the change itself, or
	// missing (Found false) when it has been deleted since.
	Doc   T
	Found bool
	// At is when the change was committed, for lag metrics.
	At time.Time
	// Token is the position just after this event.
	Token Token
	// Err is set when the change could not be decoded into a T, such as a
	// malformed document written straight into the database. The consumer
	// retries such an event, then parks it as a dead letter and moves on.
	Err error
}

// Batch is what a stream yields at a time: zero or more events and the
// position after them. Token advances even when Events is empty (MongoDB's
// post-batch resume token; the change-log head for the embedded store), so a
// quiet stream still moves its checkpoint forward.
type Batch[T any] struct {
	Events []Event[T]
	Token  Token
	// Fence is the fencing token of the lease under which the consumer
	// applies the batch (0: no lease). A sink that keeps leases refuses a
	// batch whose fence is not the lease's current one, so a consumer that
	// lost its lease without noticing cannot write.
	Fence int64
}

// Validate returns an error when no sink may apply b, before anything is
// written: when it has no token (saving no position would replay the batch
// forever, or, before a first checkpoint, restart at the feed's "now" and
// lose everything in between), or when an event could not be decoded
// (Err set: applying the rest and checkpointing past it would lose that
// event silently). Every Sink's Apply calls it; the consumer then isolates
// the undecodable event and parks it as a dead letter. It is the one
// validation of a batch; the rules of what an event may say are the
// domain's (post.CheckEvent).
func (b Batch[T]) Validate() error {
	if len(b.Token) == 0 {
		return errors.New("batch has no token")
	}
	for _, ev := range b.Events {
		if ev.Err != nil {
			return fmt.Errorf("%s of %s cannot be decoded: %w", ev.Op, ev.Key, ev.Err)
		}
	}
	return nil
}

// ErrPoison marks an event that no retry can apply, such as an unknown op
// or an id that is not an ObjectID (see post.CheckEvent and
// comment.CheckPostEvent). A sink refuses the batch holding one before
// writing anything; the consumer isolates the event and parks it as a dead
// letter rather than skip it silently.
var ErrPoison = errors.New("changes: event cannot be applied")

// ErrHistoryLost is returned by Feed.Open (or Stream.Next) when the requested
// position is no longer retained: the oplog rolled over, or the change log was
// pruned. The consumer must rebuild its read model; it must never skip ahead.
var ErrHistoryLost = errors.New("changes: history lost")

// Feed is a source of change events for one collection.
type Feed[T any] interface {
	// Open starts a stream just after the position after. With a nil token
	// the stream starts at the feed's current head ("from now").
	// It returns ErrHistoryLost (possibly wrapped) when after is gone.
	Open(ctx context.Context, after Token) (Stream[T], error)
	// Head returns the feed's current position without opening a stream.
	Head(ctx context.Context) (Token, error)
}

// Stream yields batches of events in commit order.
type Stream[T any] interface {
	// Next blocks until there are events, or a quiet interval has passed
	// (then it returns an empty batch whose Token may have advanced), or ctx
	// ends. Any error other than ctx's ends the stream; the consumer reopens
	// it from its checkpoint, except after an error wrapping ErrHistoryLost
	// (a dropped, renamed or invalidated collection, a pruned log), which
	// the checkpoint would only meet again: then it rebuilds its read model
	// and continues from the feed's head, as when Open fails.
	Next(ctx context.Context) (Batch[T], error)
	// Close releases the stream's resources.
	Close(ctx context.Context) error
}

// Sink is a read model that consumes a feed.
type Sink[T any] interface {
	// Checkpoint returns the position saved for the named consumer, or nil
	// when it has none yet.
	Checkpoint(ctx context.Context, consumer string) (Token, error)
	// Apply applies the batch's events and saves b.Token as the consumer's
	// checkpoint: atomically where the store allows, otherwise the events
	// first and the checkpoint after. Applying an event twice must give the
	// same result as applying it once.
	Apply(ctx context.Context, consumer string, b Batch[T]) error
}

// Stager is a Sink some of whose events need more work than one bounded
// Apply may do: the comments service's cascade deletes a deleted post's
// comments, possibly a million of them. The consumer calls Stage for each
// batch before it applies it, under its own context, which is not bounded
// as an Apply is. Stage must bound each of its own transactions by step (the
// bound of one Apply), commit its work step by step so that calling it again
// after a crash or an error resumes rather than restarts, and be idempotent.
// It must skip the events it cannot handle (Err set, or poison): Apply
// refuses those, and the consumer parks them.
//
// A failing Stage ends the consumer's session like a failing read: the
// consumer backs off, reopens the feed at its checkpoint (still before the
// batch) and stages the batch again. It never parks an event whose staged
// work failed, and it saves the checkpoint past the batch only with Apply,
// after Stage has finished: a big cascade is never dead-lettered half done.
type Stager[T any] interface {
	Stage(ctx context.Context, consumer string, b Batch[T], step time.Duration) error
}

// Rebuilder is a Sink that can rebuild its read model from the source
// collection. The consumer calls it when the feed no longer holds the
// checkpoint (ErrHistoryLost): skipping ahead would silently lose changes.
type Rebuilder interface {
	// Rebuild recomputes the consumer's whole read model from the source,
	// in chunks whose progress it saves, so a crash mid-way resumes rather
	// than restarts; then it saves at as the consumer's checkpoint. at was
	// taken before the rebuild began, so the changes made during it are
	// delivered again afterwards and applied idempotently. fence is as in
	// Batch.Fence.
	Rebuild(ctx context.Context, consumer string, at Token, fence int64) error
	// RebuildTarget returns the at of a rebuild that was interrupted (a
	// crash mid-way), or nil. The consumer resumes towards that same
	// position while the feed still holds it, because chunks done before
	// the crash are only complete together with the changes the feed
	// delivers after it; Rebuild then continues after the chunks done.
	// When the feed has lost that position too, the consumer rebuilds
	// towards its head instead, and a Rebuild called with an at other than
	// the interrupted one's starts over.
	RebuildTarget(ctx context.Context, consumer string) (Token, error)
}

// DeadLetterer is a Sink that can park an event it cannot apply, so one bad
// document does not stop the stream.
type DeadLetterer[T any] interface {
	// DeadLetter records ev and why it failed where an operator can see it,
	// and saves ev.Token as the consumer's checkpoint, in one transaction.
	DeadLetter(ctx context.Context, consumer string, ev Event[T], reason string, fence int64) error
}

// DeadLetter is an event a consumer parked, as an operator sees it
// (`blog deadletters`). Every adapter lists its parked events in this one
// shape.
type DeadLetter struct {
	// ID names the record for RetryDeadLetter: opaque, unique per store.
	ID       string
	Consumer string
	Op       Op
	// Key is the changed document's _id (the event's Key).
	Key string
	// Doc is the event's document as the store holds it (JSON in the
	// embedded store, BSON in MongoDB), so a malformed one shows as it was
	// written; nil for a delete, or when it was gone when parked.
	Doc []byte
	// Reason is why it could not be applied: the last error.
	Reason string
	// Token is the event's position in its feed.
	Token Token
	// At is when it was parked.
	At time.Time
}

// DeadLetterStore is a DeadLetterer whose parked events an operator can
// list and apply again once the cause is mended.
type DeadLetterStore interface {
	// DeadLetters returns the events the named consumer has parked,
	// oldest first.
	DeadLetters(ctx context.Context, consumer string) ([]DeadLetter, error)
	// RetryDeadLetter applies the named consumer's parked event id again,
	// from the source document as it is now (the operator may have mended
	// it: a document that exists is applied as an update, one that is gone
	// as a delete), and removes the record once that succeeds. It leaves
	// the consumer's checkpoint alone. It returns ErrNoDeadLetter for an
	// unknown id, and the rule's error (the record kept) when the event
	// still cannot be applied.
	RetryDeadLetter(ctx context.Context, consumer, id string) error
}

// ErrNoDeadLetter: no parked event has the given id for that consumer.
var ErrNoDeadLetter = errors.New("changes: no such dead letter")

// Leaser keeps leases with fencing tokens in the database, so that of
// several replicas exactly one consumes a feed at a time.
type Leaser interface {
	// Acquire takes the named lease for holder, or renews it if holder has
	// it, until ttl from now; it fails (held false) while another holder's
	// lease is unexpired. fence is the lease's fencing token, which grows
	// every time a new term starts: when the lease changes hands, and when
	// its holder takes it again after releasing it. A renewal, or taking
	// back a lease that expired with nobody taking it meanwhile, keeps the
	// fence. It refuses what CheckLease refuses.
	Acquire(ctx context.Context, name, holder string, ttl time.Duration) (fence int64, held bool, err error)
	// Release gives the lease up if holder has it, so a successor need not
	// wait for it to expire. It ends the holder's term: a write still in
	// flight under the old fence is refused even if the same holder takes
	// the lease again, since a replica's holder name (a host name, say) may
	// be shared by a restarted process that knows nothing of that write.
	Release(ctx context.Context, name, holder string) error
}

// CheckLease returns an error unless holder and ttl can name a lease
// term: an empty holder could never be told apart from a released lease,
// and a ttl that is not positive would grant a lease already expired. Every
// Leaser refuses them with it, before touching the database.
func CheckLease(name, holder string, ttl time.Duration) error {
	if holder == "" {
		return fmt.Errorf("lease %q: empty holder", name)
	}
	if ttl <= 0 {
		return fmt.Errorf("lease %q: ttl %v is not positive", name, ttl)
	}
	return nil
}

// ErrFenced is returned by a Sink asked to apply a batch under a fence that
// is no longer the lease's: another replica has taken over.
var ErrFenced = errors.New("changes: lease lost to another holder")
