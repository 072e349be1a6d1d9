package mongo

import (
	"context"
	"errors"
)

// Backend is the seam between this adapter and a MongoDB implementation.
//
// The product talks to a real deployment through the official v2 driver
// (Open); the test suite talks to lungo, an embedded engine that only speaks
// the deprecated v1 driver's types (package mongotest). The two drivers share
// no Go types, but they share BSON, so every filter, update, sort, index key,
// document and resume token crosses this seam as raw BSON bytes. The seam is
// deliberately narrow: only what the stores and feeds use, so that a second
// implementation stays small and its behaviour easy to compare.
//
// Implementations translate their own errors into the sentinels below
// (ErrNoDocuments, ErrDuplicateKey) and into changes.ErrHistoryLost, wrapping
// the original error so its text survives in logs.
type Backend interface {
	// Collection returns the named collection of the backend's database.
	Collection(name string) Collection
	// CreateCollection creates the named collection unless it exists. The
	// collections Apply writes are created up front because a server cannot
	// create one inside a cross-shard transaction (nor inside any
	// transaction before MongoDB 4.4).
	CreateCollection(ctx context.Context, name string) error
	// WithTransaction runs fn in a multi-document transaction and commits it
	// when fn returns nil. fn must do all its work through the context it is
	// given (it carries the session) and may be run more than once, because
	// a real server retries transient transaction errors.
	WithTransaction(ctx context.Context, fn func(ctx context.Context) error) error
	// Ping reports whether the deployment answers.
	Ping(ctx context.Context) error
	// Close releases the backend's connections; streams must be closed first.
	Close(ctx context.Context) error
}

// Collection is one collection as the adapter uses it. Every []byte is one
// BSON document; nil is allowed where noted.
type Collection interface {
	// InsertOne inserts doc, or fails with ErrDuplicateKey.
	InsertOne(ctx context.Context, doc []byte) error
	// FindOne returns the first document matching filter, or ErrNoDocuments.
	FindOne(ctx context.Context, filter []byte) ([]byte, error)
	// Find returns up to limit documents (0 = no limit) matching filter in
	// sort order (nil = natural order).
	Find(ctx context.Context, filter, sort []byte, limit int64) ([][]byte, error)
	// UpdateOne applies update to the first document matching filter,
	// inserting one when upsert is set and nothing matches.
	UpdateOne(ctx context.Context, filter, update []byte, upsert bool) (UpdateResult, error)
	// FindOneAndUpdate applies update to the first match and returns the
	// document after the update, or ErrNoDocuments.
	FindOneAndUpdate(ctx context.Context, filter, update []byte) ([]byte, error)
	// FindOneAndDelete deletes the first match and returns it, or
	// ErrNoDocuments.
	FindOneAndDelete(ctx context.Context, filter []byte) ([]byte, error)
	// DeleteMany deletes every match and returns how many there were.
	DeleteMany(ctx context.Context, filter []byte) (int64, error)
	// CountDocuments counts the documents matching filter.
	CountDocuments(ctx context.Context, filter []byte) (int64, error)
	// CreateIndex creates a non-unique index on keys under name; creating an
	// identical index again is a no-op.
	CreateIndex(ctx context.Context, keys []byte, name string) error
	// Watch opens a change stream on the collection just after the resume
	// token startAfter, or at the current end of history when it is nil. It
	// fails with changes.ErrHistoryLost when the token is no longer retained.
	// Update events must carry the current full document where the backend
	// can look it up (fullDocument: updateLookup).
	Watch(ctx context.Context, startAfter []byte) (ChangeStream, error)
}

// UpdateResult reports what UpdateOne did. Upserted is what makes applying a
// change event idempotent without relying on duplicate-key errors, which
// abort a MongoDB transaction.
type UpdateResult struct {
	Matched  int64
	Modified int64
	Upserted bool
}

// ChangeStream is an open change stream, shaped after the driver's.
type ChangeStream interface {
	// TryNext advances to the next change event. With wait set and no event
	// at hand, it waits up to the backend's await time (well under a second)
	// for one; without it, it returns false as soon as no event is at hand
	// (the driver's current batch is used up), which is how a batch ends
	// without adding latency. False with Err() nil means "nothing yet": the
	// caller may keep polling.
	TryNext(ctx context.Context, wait bool) bool
	// Current returns the change event TryNext advanced to, as BSON.
	Current() []byte
	// ResumeToken returns the position just after the last event returned,
	// or after the events known to be skipped when none is left (MongoDB's
	// post-batch resume token). It is never nil for an open stream.
	ResumeToken() []byte
	// Err returns the error that ended the stream, mapped like every other
	// error of the seam (changes.ErrHistoryLost for a lost position).
	Err() error
	// Close releases the stream.
	Close(ctx context.Context) error
}

// Errors every Backend maps its own errors to, so the stores can turn them
// into domain errors without knowing which driver they came from.
var (
	// ErrNoDocuments: a single-document operation matched nothing.
	ErrNoDocuments = errors.New("mongo: no documents")
	// ErrDuplicateKey: a write violated a unique index (usually _id).
	ErrDuplicateKey = errors.New("mongo: duplicate key")
)
