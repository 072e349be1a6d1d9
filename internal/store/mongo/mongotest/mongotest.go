// Package mongotest runs the mongo adapter on lungo, an embedded
// MongoDB-compatible engine with an oplog, change streams and transactions,
// so the adapter's queries and stream handling are tested on machines with
// no MongoDB server. It lives apart from package mongo so the production
// binary never links lungo.
//
// lungo speaks the deprecated v1 driver's types; Backend translates the mongo
// package's raw-BSON seam to them. Where lungo differs from a real server the
// difference is absorbed here and documented on Backend.
package mongotest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/256dpi/lungo"
	"github.com/256dpi/lungo/bsonkit"
	v1bson "go.mongodb.org/mongo-driver/bson"
	v1mongo "go.mongodb.org/mongo-driver/mongo"
	v1options "go.mongodb.org/mongo-driver/mongo/options"
	v2bson "go.mongodb.org/mongo-driver/v2/bson"

	"blog/internal/changes"
	"blog/internal/store/mongo"
)

// Timing of the emulated getMore: TryNext polls lungo this often, for at
// most await, before reporting "nothing yet". lungo's own blocking Next
// cannot be used with a deadline: a timed-out context ends its stream.
const (
	await = 100 * time.Millisecond
	poll  = 5 * time.Millisecond
)

// Open returns a mongo.DB over a fresh in-memory lungo engine, closed when
// the test ends. Unless opt sets it, QuietInterval is shortened to 100ms so
// tests of quiet streams stay fast.
func Open(t testing.TB, opt mongo.Options) *mongo.DB {
	t.Helper()
	db, _ := OpenBackend(t, lungo.Options{}, opt)
	return db
}

// OpenBackend is Open with engine options (e.g. a tiny oplog, to provoke
// changes.ErrHistoryLost) that also returns the Backend, whose Database
// lets a test write what the adapter never would.
func OpenBackend(t testing.TB, engine lungo.Options, opt mongo.Options) (*mongo.DB, *Backend) {
	t.Helper()
	b, err := NewBackend(engine)
	if err != nil {
		t.Fatalf("mongotest: %v", err)
	}
	if opt.QuietInterval == 0 {
		opt.QuietInterval = 100 * time.Millisecond
	}
	db, err := mongo.New(context.Background(), b, opt)
	if err != nil {
		_ = b.Close(context.Background())
		t.Fatalf("mongotest: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(context.Background()); err != nil {
			t.Errorf("mongotest: close: %v", err)
		}
	})
	return db, b
}

// Backend is a mongo.Backend over a lungo engine. Its differences from a
// real server, and how they are bridged:
//
//   - lungo has no post-batch resume token: a fresh stream's ResumeToken is
//     nil and it only moves on events of the watched collection. Backend
//     emulates it with the oplog's newest entry, read before a TryNext that
//     found nothing (so every entry up to it has been scanned).
//   - An empty oplog has no position at all, so NewBackend writes a marker
//     document (collection mongotest_origin) to start the oplog.
//   - lungo ignores fullDocument: updateLookup. Its update events carry the
//     document as of that change, not as of the lookup; both satisfy the
//     changes.Event contract.
//   - lungo panics on change-stream pipelines; none is ever passed.
//   - A token no longer in the oplog fails Watch with a plain error ("unable
//     to resume change stream") and a running stream with
//     lungo.ErrLostOplogPosition; both become changes.ErrHistoryLost.
//   - lungo runs one write transaction at a time, engine-wide, and never
//     retries; a real server runs them concurrently and retries conflicts.
//   - Cluster times have one-second resolution and there is no wallTime.
type Backend struct {
	client lungo.IClient
	engine *lungo.Engine
	db     lungo.IDatabase
	closed atomic.Bool
}

var _ mongo.Backend = (*Backend)(nil)

// NewBackend opens a lungo engine with the given options (an in-memory
// store unless opt.Store is set) over database mongo.DefaultDatabase.
func NewBackend(opt lungo.Options) (*Backend, error) {
	if opt.Store == nil {
		opt.Store = lungo.NewMemoryStore()
	}
	client, engine, err := lungo.Open(context.Background(), opt)
	if err != nil {
		return nil, fmt.Errorf("open lungo: %w", err)
	}
	b := &Backend{client: client, engine: engine, db: client.Database(mongo.DefaultDatabase)}
	// An upsert, so reopening a file store's engine works too.
	origin := b.db.Collection("mongotest_origin")
	opts := v1options.Update().SetUpsert(true)
	if _, err := origin.UpdateOne(context.Background(), v1bson.M{"_id": "origin"}, v1bson.M{"$set": v1bson.M{"at": time.Now()}}, opts); err != nil {
		engine.Close()
		return nil, fmt.Errorf("start lungo oplog: %w", err)
	}
	return b, nil
}

// Database returns the lungo database behind the backend, for tests that
// need to reach past the adapter (drop a collection, store a malformed
// document, inspect indexes).
func (b *Backend) Database() lungo.IDatabase { return b.db }

// Collection implements mongo.Backend.
func (b *Backend) Collection(name string) mongo.Collection {
	return &collection{b: b, c: b.db.Collection(name)}
}

// CreateCollection implements mongo.Backend; lungo's is a no-op for an
// existing collection.
func (b *Backend) CreateCollection(ctx context.Context, name string) error {
	return mapErr(b.db.CreateCollection(ctx, name))
}

// WithTransaction implements mongo.Backend with a lungo session; every
// operation made with the context fn gets joins the transaction.
func (b *Backend) WithTransaction(ctx context.Context, fn func(ctx context.Context) error) error {
	sess, err := b.client.StartSession()
	if err != nil {
		return mapErr(err)
	}
	defer sess.EndSession(ctx)
	_, err = sess.WithTransaction(ctx, func(sc lungo.ISessionContext) (any, error) {
		return nil, fn(sc)
	})
	return mapErr(err)
}

// Ping implements mongo.Backend; an embedded engine is always there.
func (b *Backend) Ping(ctx context.Context) error { return mapErr(b.client.Ping(ctx, nil)) }

// Close implements mongo.Backend by closing the engine, which also ends its
// streams.
func (b *Backend) Close(context.Context) error {
	b.closed.Store(true)
	b.engine.Close()
	return nil
}

// tail returns the resume token of the newest oplog entry, or nil. lungo's
// committed catalogs are never modified in place, so reading one is safe.
func (b *Backend) tail() []byte {
	ns := b.engine.Catalog().Namespaces[lungo.Oplog]
	if ns == nil || len(ns.Documents.List) == 0 {
		return nil
	}
	id := bsonkit.Get(ns.Documents.List[len(ns.Documents.List)-1], "_id")
	raw, err := v1bson.Marshal(id)
	if err != nil {
		return nil
	}
	return raw
}

// mapErr maps lungo's errors to the seam's.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, lungo.ErrNoDocuments):
		return fmt.Errorf("%w: %w", mongo.ErrNoDocuments, err)
	case lungo.IsUniquenessError(err):
		return fmt.Errorf("%w: %w", mongo.ErrDuplicateKey, err)
	case errors.Is(err, lungo.ErrLostOplogPosition),
		strings.Contains(err.Error(), "unable to resume change stream"):
		return fmt.Errorf("%w: %w", changes.ErrHistoryLost, err)
	}
	return err
}

type collection struct {
	b *Backend
	c lungo.ICollection
}

func (c *collection) InsertOne(ctx context.Context, doc []byte) error {
	_, err := c.c.InsertOne(ctx, v1bson.Raw(doc))
	return mapErr(err)
}

func (c *collection) FindOne(ctx context.Context, filter []byte) ([]byte, error) {
	raw, err := c.c.FindOne(ctx, v1bson.Raw(filter)).Raw()
	return raw, mapErr(err)
}

func (c *collection) Find(ctx context.Context, filter, sort []byte, limit int64) ([][]byte, error) {
	opts := v1options.Find()
	if sort != nil {
		opts.SetSort(v1bson.Raw(sort))
	}
	if limit > 0 {
		opts.SetLimit(limit)
	}
	cur, err := c.c.Find(ctx, v1bson.Raw(filter), opts)
	if err != nil {
		return nil, mapErr(err)
	}
	defer cur.Close(ctx)
	var out [][]byte
	for cur.Next(ctx) {
		var raw v1bson.Raw
		if err := cur.Decode(&raw); err != nil {
			return nil, fmt.Errorf("decode lungo document: %w", err)
		}
		out = append(out, raw)
	}
	return out, mapErr(cur.Err())
}

func (c *collection) UpdateOne(ctx context.Context, filter, update []byte, upsert bool) (mongo.UpdateResult, error) {
	r, err := c.c.UpdateOne(ctx, v1bson.Raw(filter), v1bson.Raw(update), v1options.Update().SetUpsert(upsert))
	if err != nil {
		return mongo.UpdateResult{}, mapErr(err)
	}
	return mongo.UpdateResult{Matched: r.MatchedCount, Modified: r.ModifiedCount, Upserted: r.UpsertedCount > 0}, nil
}

func (c *collection) FindOneAndUpdate(ctx context.Context, filter, update []byte) ([]byte, error) {
	opts := v1options.FindOneAndUpdate().SetReturnDocument(v1options.After)
	raw, err := c.c.FindOneAndUpdate(ctx, v1bson.Raw(filter), v1bson.Raw(update), opts).Raw()
	return raw, mapErr(err)
}

func (c *collection) FindOneAndDelete(ctx context.Context, filter []byte) ([]byte, error) {
	raw, err := c.c.FindOneAndDelete(ctx, v1bson.Raw(filter)).Raw()
	return raw, mapErr(err)
}

func (c *collection) DeleteMany(ctx context.Context, filter []byte) (int64, error) {
	r, err := c.c.DeleteMany(ctx, v1bson.Raw(filter))
	if err != nil {
		return 0, mapErr(err)
	}
	return r.DeletedCount, nil
}

func (c *collection) CountDocuments(ctx context.Context, filter []byte) (int64, error) {
	n, err := c.c.CountDocuments(ctx, v1bson.Raw(filter))
	return n, mapErr(err)
}

func (c *collection) CreateIndex(ctx context.Context, keys []byte, name string) error {
	_, err := c.c.Indexes().CreateOne(ctx, v1mongo.IndexModel{
		Keys:    v1bson.Raw(keys),
		Options: v1options.Index().SetName(name),
	})
	return mapErr(err)
}

func (c *collection) Watch(ctx context.Context, startAfter []byte) (mongo.ChangeStream, error) {
	// FullDocument is accepted and ignored by lungo; it is set so the two
	// backends ask for the same thing.
	opts := v1options.ChangeStream().SetFullDocument(v1options.UpdateLookup)
	tok := startAfter
	if startAfter != nil {
		opts.SetStartAfter(v1bson.Raw(startAfter))
	} else {
		// Read before the stream positions itself at the end, so the
		// token can only be at or before the stream's real position.
		tok = c.b.tail()
	}
	cs, err := c.c.Watch(ctx, v1mongo.Pipeline{}, opts)
	if err != nil {
		return nil, mapErr(err)
	}
	return &stream{b: c.b, cs: cs, tok: tok}, nil
}

// stream adapts a lungo change stream and emulates what lungo lacks: a
// short server-side wait and the post-batch resume token.
type stream struct {
	b   *Backend
	cs  lungo.IChangeStream
	cur []byte
	tok []byte
	err error
}

func (s *stream) TryNext(ctx context.Context, wait bool) bool {
	if s.err != nil {
		return false
	}
	deadline := time.Now().Add(await)
	for {
		if s.b.closed.Load() {
			// lungo reports a stream closed by its engine as merely empty.
			s.err = lungo.ErrEngineClosed
			return false
		}
		tail := s.b.tail()
		if s.cs.TryNext(ctx) {
			var raw v1bson.Raw
			if err := s.cs.Decode(&raw); err != nil {
				s.err = fmt.Errorf("decode lungo change event: %w", err)
				return false
			}
			s.cur, s.tok = raw, s.cs.ResumeToken()
			return true
		}
		if s.cs.Err() != nil {
			return false
		}
		if tail != nil {
			s.tok = tail
		}
		if !wait || !time.Now().Before(deadline) {
			return false
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			s.err = ctx.Err()
			return false
		case <-t.C:
		}
	}
}

func (s *stream) Current() []byte     { return s.cur }
func (s *stream) ResumeToken() []byte { return s.tok }

func (s *stream) Err() error {
	if s.err != nil {
		return s.err
	}
	return mapErr(s.cs.Err())
}

func (s *stream) Close(ctx context.Context) error { return mapErr(s.cs.Close(ctx)) }

// InjectMalformedComment writes a comment straight into db's comments
// collection, as a careless script or a future version might, whose
// postId is the number 123 instead of a post's ObjectID; it returns the
// comment's _id, the Key of its change event. The comments feed cannot
// decode it, so the event arrives with Err set: the posts consumer retries
// it, then parks it as a dead letter and moves on. Since its postId names
// no post, no listing of comments shows it (listing postID's comments
// stays fine) and rebuilds skip it. postID, the post it was meant for, is
// accepted for symmetry with the other adapters' injectors and recorded in
// the document's note field only.
//
// It writes through db.Backend, so it works on lungo and on a real server
// alike. It exists for fault-injection tests; the services never call it.
func InjectMalformedComment(t testing.TB, db *mongo.DB, postID string) string {
	t.Helper()
	id := v2bson.NewObjectID()
	doc, err := v2bson.Marshal(v2bson.D{
		{Key: "_id", Value: id},
		{Key: "postId", Value: int32(123)},
		{Key: "text", Value: "malformed"},
		{Key: "createdAt", Value: time.Now().UTC().Truncate(time.Millisecond)},
		{Key: "note", Value: "injected by a test; meant for post " + postID},
	})
	if err != nil {
		t.Fatalf("mongotest: encode malformed comment: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.Backend().Collection("comments").InsertOne(ctx, doc); err != nil {
		t.Fatalf("mongotest: inject malformed comment: %v", err)
	}
	return id.Hex()
}

// InjectMalformedCommentOnPost is InjectMalformedComment's variant that
// does belong to post postID: its postId is the post's ObjectID, its
// createdAt is now, and its text is the number 42, which the service
// cannot decode. So, unlike InjectMalformedComment's, it is among the
// documents a listing of postID's comments reads (which must skip it rather
// than fail), its change event arrives with Err set, rebuilds skip it, and
// the post's deletion deletes it with the rest. It returns the comment's
// _id.
func InjectMalformedCommentOnPost(t testing.TB, db *mongo.DB, postID string) string {
	t.Helper()
	pid, err := v2bson.ObjectIDFromHex(postID)
	if err != nil {
		t.Fatalf("mongotest: post id %q: %v", postID, err)
	}
	id := v2bson.NewObjectID()
	doc, err := v2bson.Marshal(v2bson.D{
		{Key: "_id", Value: id},
		{Key: "postId", Value: pid},
		{Key: "text", Value: int32(42)},
		{Key: "createdAt", Value: time.Now().UTC().Truncate(time.Millisecond)},
	})
	if err != nil {
		t.Fatalf("mongotest: encode malformed comment: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.Backend().Collection("comments").InsertOne(ctx, doc); err != nil {
		t.Fatalf("mongotest: inject malformed comment: %v", err)
	}
	return id.Hex()
}
