package mongo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	driver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"blog/internal/changes"
)

// backend is the adapter's one way to MongoDB: the official v2 driver. The
// stores call it through the small helpers below (and coll's, in docs.go),
// with every document encoded once, so the queries read as queries.
type backend struct {
	client *driver.Client
	db     *driver.Database
	// commitTimeout bounds each commit when the caller's context has no
	// earlier deadline, and the abort of a failed transaction, which runs
	// past its caller's context.
	commitTimeout time.Duration
}

// collection returns the named collection of the database.
func (b *backend) collection(name string) collection {
	return collection{c: b.db.Collection(name)}
}

// CreateCollection creates the named collection unless it exists
// (NamespaceExists is success: the point is only that it is there). The
// collections a transaction writes are created up front because a server
// cannot create one inside a cross-shard transaction.
func (b *backend) CreateCollection(ctx context.Context, name string) error {
	err := b.db.CreateCollection(ctx, name)
	var se driver.ServerError
	if errors.As(err, &se) && se.HasErrorCode(codeNamespaceExists) {
		return nil
	}
	return v2Err(err)
}

// WithTransaction runs fn in a multi-document transaction and commits it
// when fn returns nil; fn must do all its work through the context it is
// given (it carries the session) and may run more than once, because the
// driver retries transient transaction errors.
//
// The transaction reads from the primary whatever the URI's readPreference
// says (a transaction's reads must), takes snapshot reads and majority
// writes so a batch reads one consistent state and its commit survives a
// failover, and its commit is bounded by maxCommitTimeMS and wtimeout as
// well as by ctx's deadline: a commit that cannot reach a majority fails
// when its time is up instead of hanging the consumer and its lease. The
// bound holds on the server too: the v2 driver, which has no wtimeout or
// maxCommitTimeMS option, sends the time left of a command's context as its
// maxTimeMS, which for commitTransaction is the commit's time limit, write
// concern wait included. A commit gets ctx's deadline or commitTimeout,
// whichever is sooner.
func (b *backend) WithTransaction(ctx context.Context, fn func(ctx context.Context) error) error {
	sess, err := b.client.StartSession()
	if err != nil {
		return fmt.Errorf("start session: %w", err)
	}
	defer sess.EndSession(context.WithoutCancel(ctx))
	commit := b.commitTimeout
	opts := options.Transaction().
		SetReadPreference(readpref.Primary()).
		SetReadConcern(readconcern.Snapshot()).
		SetWriteConcern(writeconcern.Majority())
	// Not the driver's WithTransaction helper: it commits with a context
	// that drops ctx's deadline and retries the commit for two minutes.
	// This loop retries the same errors, but only while ctx lasts.
	limit := time.Now().Add(txnRetryLimit)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if err := backoff(ctx, attempt, limit); err != nil {
				return err
			}
		}
		if err := sess.StartTransaction(opts); err != nil {
			return fmt.Errorf("start transaction: %w", err)
		}
		if err := fn(driver.NewSessionContext(ctx, sess)); err != nil {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commit)
			_ = sess.AbortTransaction(actx)
			cancel()
			if hasLabel(err, "TransientTransactionError") && ctx.Err() == nil {
				continue
			}
			return v2Err(err)
		}
		for {
			cctx, cancel := context.WithTimeout(ctx, commit)
			err := sess.CommitTransaction(cctx)
			cancel()
			switch {
			case err == nil:
				return nil
			case ctx.Err() != nil:
				return fmt.Errorf("mongo: commit not acknowledged within the deadline (is a majority of the replica set reachable?): %w", errors.Join(ctx.Err(), err))
			case cctx.Err() != nil || isMaxTimeExpired(err):
				return fmt.Errorf("mongo: commit not acknowledged within %s (is a majority of the replica set reachable?): %w", commit, errors.Join(context.DeadlineExceeded, err))
			case hasLabel(err, "UnknownTransactionCommitResult") && time.Now().Before(limit):
				if err := backoff(ctx, 1, limit); err != nil {
					return err
				}
				continue
			case hasLabel(err, "TransientTransactionError"):
			default:
				return fmt.Errorf("mongo: commit: %w", v2Err(err))
			}
			break
		}
	}
}

// txnRetryLimit caps how long WithTransaction retries transient errors
// when ctx has no earlier deadline, as the driver's helper does.
const txnRetryLimit = 2 * time.Minute

// backoff waits before retry number attempt (1, 2, ...), or fails when ctx
// ends or the retry limit has passed.
func backoff(ctx context.Context, attempt int, limit time.Time) error {
	d := min(time.Duration(attempt)*10*time.Millisecond, 500*time.Millisecond)
	if time.Now().Add(d).After(limit) {
		return fmt.Errorf("mongo: transaction still failing transiently after %s", txnRetryLimit)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("mongo: transaction not done within the deadline: %w", ctx.Err())
	case <-t.C:
		return nil
	}
}

// isMaxTimeExpired reports the server's MaxTimeMSExpired (50), its answer
// to a command whose maxTimeMS ran out.
func isMaxTimeExpired(err error) bool {
	var se driver.ServerError
	return errors.As(err, &se) && se.HasErrorCode(50)
}

func hasLabel(err error, label string) bool {
	var le interface{ HasErrorLabel(string) bool }
	return errors.As(err, &le) && le.HasErrorLabel(label)
}

// Ping reports whether the primary answers.
func (b *backend) Ping(ctx context.Context) error {
	return v2Err(b.client.Ping(ctx, readpref.Primary()))
}

// Close disconnects the client; streams must be closed first.
func (b *backend) Close(ctx context.Context) error {
	return b.client.Disconnect(ctx)
}

// v2Err maps driver errors to the adapter's sentinels, keeping the
// original.
func v2Err(err error) error {
	var se driver.ServerError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, driver.ErrNoDocuments):
		return fmt.Errorf("%w: %w", ErrNoDocuments, err)
	case driver.IsDuplicateKeyError(err):
		return fmt.Errorf("%w: %w", ErrDuplicateKey, err)
	case errors.As(err, &se) && (se.HasErrorCode(codeHistoryLost) || se.HasErrorCode(codeFatal) || se.HasErrorCode(codeCappedPositionLost)):
		return fmt.Errorf("%w: %w", changes.ErrHistoryLost, err)
	}
	return err
}

// Server error codes that mean a change stream's position is no longer in
// the oplog: ChangeStreamHistoryLost (4.2+), ChangeStreamFatalError, which
// older servers return for a token they cannot find, and
// CappedPositionLost, which a running stream gets when the oplog was
// truncated past it.
const (
	codeHistoryLost        = 286
	codeFatal              = 280
	codeCappedPositionLost = 136
)

// codeNamespaceExists is the server's answer to creating an existing
// collection.
const codeNamespaceExists = 48

// Errors the driver's errors are mapped to, so the stores turn them into
// domain errors in one place.
var (
	// ErrNoDocuments: a single-document operation matched nothing.
	ErrNoDocuments = errors.New("mongo: no documents")
	// ErrDuplicateKey: a write violated a unique index (usually _id).
	ErrDuplicateKey = errors.New("mongo: duplicate key")
)

// UpdateResult reports what UpdateOne did. Upserted is what makes applying
// a change event idempotent without relying on duplicate-key errors, which
// abort a MongoDB transaction.
type UpdateResult struct {
	Matched  int64
	Modified int64
	Upserted bool
}

// collection is one collection as the stores use it: every []byte is one
// BSON document, encoded by coll's helpers.
type collection struct{ c *driver.Collection }

// InsertOne inserts doc, or fails with ErrDuplicateKey.
func (c collection) InsertOne(ctx context.Context, doc []byte) error {
	_, err := c.c.InsertOne(ctx, bson.Raw(doc))
	return v2Err(err)
}

// FindOne returns the first document matching filter, or ErrNoDocuments.
func (c collection) FindOne(ctx context.Context, filter []byte) ([]byte, error) {
	raw, err := c.c.FindOne(ctx, bson.Raw(filter)).Raw()
	return raw, v2Err(err)
}

// Find returns up to limit documents (0 = no limit) matching filter in
// sort order (nil = natural order).
func (c collection) Find(ctx context.Context, filter, sort []byte, limit int64) ([][]byte, error) {
	opts := options.Find()
	if sort != nil {
		opts.SetSort(bson.Raw(sort))
	}
	if limit > 0 {
		opts.SetLimit(limit)
	}
	cur, err := c.c.Find(ctx, bson.Raw(filter), opts)
	if err != nil {
		return nil, v2Err(err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	var out [][]byte
	for cur.Next(ctx) {
		out = append(out, append([]byte(nil), cur.Current...))
	}
	return out, v2Err(cur.Err())
}

// UpdateOne applies update to the first match, inserting one when upsert
// is set and nothing matches.
func (c collection) UpdateOne(ctx context.Context, filter, update []byte, upsert bool) (UpdateResult, error) {
	r, err := c.c.UpdateOne(ctx, bson.Raw(filter), bson.Raw(update), options.UpdateOne().SetUpsert(upsert))
	if err != nil {
		return UpdateResult{}, v2Err(err)
	}
	return UpdateResult{Matched: r.MatchedCount, Modified: r.ModifiedCount, Upserted: r.UpsertedCount > 0}, nil
}

// FindOneAndUpdate applies update to the first match and returns the
// document after it, or ErrNoDocuments.
func (c collection) FindOneAndUpdate(ctx context.Context, filter, update []byte) ([]byte, error) {
	opts := options.FindOneAndUpdate().SetReturnDocument(options.After)
	raw, err := c.c.FindOneAndUpdate(ctx, bson.Raw(filter), bson.Raw(update), opts).Raw()
	return raw, v2Err(err)
}

// FindOneAndDelete deletes the first match and returns it, or
// ErrNoDocuments.
func (c collection) FindOneAndDelete(ctx context.Context, filter []byte) ([]byte, error) {
	raw, err := c.c.FindOneAndDelete(ctx, bson.Raw(filter)).Raw()
	return raw, v2Err(err)
}

// DeleteMany deletes every match and returns how many there were.
func (c collection) DeleteMany(ctx context.Context, filter []byte) (int64, error) {
	r, err := c.c.DeleteMany(ctx, bson.Raw(filter))
	if err != nil {
		return 0, v2Err(err)
	}
	return r.DeletedCount, nil
}

// CountDocuments counts the documents matching filter.
func (c collection) CountDocuments(ctx context.Context, filter []byte) (int64, error) {
	n, err := c.c.CountDocuments(ctx, bson.Raw(filter))
	return n, v2Err(err)
}

// CreateIndex creates a non-unique index on keys under name; creating an
// identical index again is a no-op.
func (c collection) CreateIndex(ctx context.Context, keys []byte, name string) error {
	_, err := c.c.Indexes().CreateOne(ctx, driver.IndexModel{
		Keys:    bson.Raw(keys),
		Options: options.Index().SetName(name),
	})
	return v2Err(err)
}
