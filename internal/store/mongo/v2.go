package mongo

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	driver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"

	"blog/internal/changes"
)

// DefaultDatabase is used when the URI names no database (no path).
const DefaultDatabase = "blog"

// awaitTime is how long one getMore waits on the server for new events
// (maxAwaitTimeMS); it bounds how stale a quiet stream's resume token gets.
const awaitTime = 500 * time.Millisecond

// Open connects to the MongoDB deployment at uri with the official v2
// driver, checks that it can serve change streams, and returns the DB over
// the URI's database (DefaultDatabase when the URI has no path).
//
// It fails fast and says what to do: an unreachable server is reported with
// the (password-masked) URI, and a standalone mongod, which has no oplog and
// so no change streams, is refused at start-up rather than failing later in
// the consumer.
func Open(ctx context.Context, uri string, opt Options) (*DB, error) {
	timeout := opt.ConnectTimeout
	if timeout <= 0 {
		timeout = defaultConnectTimeout
	}
	masked := MaskURI(uri)
	name, err := DatabaseOf(uri)
	if err != nil {
		return nil, fmt.Errorf("mongo: invalid MongoDB URI %s: %w", masked, err)
	}
	// The start-up checks are bounded by a context deadline rather than by
	// client timeouts, so the URI's own options (serverSelectionTimeoutMS
	// and the like) keep governing the client afterwards.
	client, err := driver.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return nil, fmt.Errorf("mongo: connect to MongoDB at %s: %w", masked, err)
	}
	fail := func(err error) (*DB, error) {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		_ = client.Disconnect(dctx)
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := client.Ping(cctx, readpref.Primary()); err != nil {
		return fail(fmt.Errorf("mongo: cannot reach MongoDB at %s within %s; check that it is running, that the URI is right, and that the replica set it names has been initiated (rs.initiate()): %w", masked, timeout, err))
	}
	hello, err := helloReply(cctx, client)
	if err != nil {
		return fail(fmt.Errorf("mongo: ask MongoDB at %s what it is (hello): %w", masked, err))
	}
	if err := CheckDeployment(hello); err != nil {
		return fail(fmt.Errorf("%w (at %s)", err, masked))
	}
	b := &v2Backend{client: client, db: client.Database(name)}
	// Not bounded by the connect timeout: building an index on a large
	// existing collection (a seed database) may take a while.
	db, err := New(ctx, b, opt)
	if err != nil {
		return fail(err)
	}
	return db, nil
}

// DatabaseOf returns the database a MongoDB URI names in its path, the
// seed's convention (mongodb://host/test?replicaSet=rs0 is database test),
// or DefaultDatabase when it names none.
func DatabaseOf(uri string) (string, error) {
	cs, err := connstring.ParseAndValidate(uri)
	if err != nil {
		return "", err
	}
	if cs.Database == "" {
		return DefaultDatabase, nil
	}
	return cs.Database, nil
}

// helloReply runs hello, or isMaster on servers older than 4.4.2.
func helloReply(ctx context.Context, client *driver.Client) (bson.Raw, error) {
	admin := client.Database("admin")
	raw, err := admin.RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Raw()
	if err == nil {
		return raw, nil
	}
	var ce driver.CommandError
	if !errors.As(err, &ce) {
		return nil, err
	}
	return admin.RunCommand(ctx, bson.D{{Key: "isMaster", Value: 1}}).Raw()
}

// ErrStandalone is returned (wrapped) by Open for a standalone mongod.
var ErrStandalone = errors.New("mongo: this MongoDB server is a standalone mongod, " +
	"but change streams need a replica set (or a sharded cluster). " +
	"Start it as a one-node replica set with `mongod --replSet rs0 --dbpath <dir>`, " +
	"run `mongosh --eval 'rs.initiate()'` once, " +
	"and add ?replicaSet=rs0 to MONGO_URI; or leave MONGO_URI unset to use the embedded store")

// ErrNotInitiated is returned (wrapped) by Open for a mongod started with
// --replSet whose replica set has not been initiated yet.
var ErrNotInitiated = errors.New("mongo: this MongoDB server was started with --replSet, " +
	"but its replica set has not been initiated, so it cannot serve change streams yet: " +
	"run `mongosh --eval 'rs.initiate()'` once")

// CheckDeployment decides from a hello (or isMaster) reply whether the
// deployment can serve change streams: a replica set member reports its
// setName, a mongos answers msg "isdbgrid"; a member not yet initiated
// says isreplicaset and gets ErrNotInitiated; anything else is a standalone
// and gets ErrStandalone. It is a pure function so the decision is tested
// without a server.
func CheckDeployment(hello []byte) error {
	var h struct {
		SetName      string `bson:"setName"`
		Msg          string `bson:"msg"`
		IsReplicaSet bool   `bson:"isreplicaset"`
	}
	if err := bson.Unmarshal(hello, &h); err != nil {
		return fmt.Errorf("mongo: decode hello reply: %w", err)
	}
	switch {
	case h.SetName != "" || h.Msg == "isdbgrid":
		return nil
	case h.IsReplicaSet:
		return ErrNotInitiated
	}
	return ErrStandalone
}

// MaskURI returns uri fit for logs and error messages: the password in its
// user info and the values of query options that carry secrets are
// replaced. Text that is not a URI is masked whole, since it may be anything.
func MaskURI(uri string) string {
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return "<unparseable URI>"
	}
	hosts, path := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		hosts, path = rest[:i], rest[i:]
	}
	if at := strings.LastIndex(hosts, "@"); at >= 0 {
		user, _, hasPass := strings.Cut(hosts[:at], ":")
		if hasPass {
			user += ":xxxxx"
		}
		hosts = user + hosts[at:]
	}
	if base, query, ok := strings.Cut(path, "?"); ok {
		parts := strings.Split(query, "&")
		for i, p := range parts {
			k, _, hasValue := strings.Cut(p, "=")
			key, err := url.QueryUnescape(k)
			if err != nil {
				key = k
			}
			key = strings.ToLower(key)
			if hasValue && (strings.Contains(key, "password") || strings.Contains(key, "secret") ||
				strings.Contains(key, "token") || key == "authmechanismproperties") {
				parts[i] = k + "=xxxxx"
			}
		}
		path = base + "?" + strings.Join(parts, "&")
	}
	return scheme + "://" + hosts + path
}

// v2Backend is the production Backend, over the official v2 driver.
type v2Backend struct {
	client *driver.Client
	db     *driver.Database
}

var _ Backend = (*v2Backend)(nil)

func (b *v2Backend) Collection(name string) Collection {
	return &v2Collection{c: b.db.Collection(name)}
}

// CreateCollection treats NamespaceExists as success, since the point is
// only that the collection is there.
func (b *v2Backend) CreateCollection(ctx context.Context, name string) error {
	err := b.db.CreateCollection(ctx, name)
	var se driver.ServerError
	if errors.As(err, &se) && se.HasErrorCode(codeNamespaceExists) {
		return nil
	}
	return v2Err(err)
}

// WithTransaction runs fn with the driver's retrying transaction helper,
// with snapshot reads and majority writes, so a batch reads one consistent
// state and its commit survives a failover.
func (b *v2Backend) WithTransaction(ctx context.Context, fn func(ctx context.Context) error) error {
	sess, err := b.client.StartSession()
	if err != nil {
		return fmt.Errorf("start session: %w", err)
	}
	defer sess.EndSession(context.WithoutCancel(ctx))
	opts := options.Transaction().
		SetReadConcern(readconcern.Snapshot()).
		SetWriteConcern(writeconcern.Majority())
	_, err = sess.WithTransaction(ctx, func(ctx context.Context) (any, error) {
		return nil, fn(ctx)
	}, opts)
	return v2Err(err)
}

func (b *v2Backend) Ping(ctx context.Context) error {
	return v2Err(b.client.Ping(ctx, readpref.Primary()))
}

func (b *v2Backend) Close(ctx context.Context) error {
	return b.client.Disconnect(ctx)
}

// v2Err maps driver errors to the seam's sentinels, keeping the original.
func v2Err(err error) error {
	var se driver.ServerError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, driver.ErrNoDocuments):
		return fmt.Errorf("%w: %w", ErrNoDocuments, err)
	case driver.IsDuplicateKeyError(err):
		return fmt.Errorf("%w: %w", ErrDuplicateKey, err)
	case errors.As(err, &se) && (se.HasErrorCode(codeHistoryLost) || se.HasErrorCode(codeFatal)):
		return fmt.Errorf("%w: %w", changes.ErrHistoryLost, err)
	}
	return err
}

// Server error codes that mean a resume token is no longer in the oplog:
// ChangeStreamHistoryLost (4.2+) and ChangeStreamFatalError, which older
// servers return for a token they cannot find.
const (
	codeHistoryLost = 286
	codeFatal       = 280
)

// codeNamespaceExists is the server's answer to creating an existing
// collection.
const codeNamespaceExists = 48

type v2Collection struct{ c *driver.Collection }

func (c *v2Collection) InsertOne(ctx context.Context, doc []byte) error {
	_, err := c.c.InsertOne(ctx, bson.Raw(doc))
	return v2Err(err)
}

func (c *v2Collection) FindOne(ctx context.Context, filter []byte) ([]byte, error) {
	raw, err := c.c.FindOne(ctx, bson.Raw(filter)).Raw()
	return raw, v2Err(err)
}

func (c *v2Collection) Find(ctx context.Context, filter, sort []byte, limit int64) ([][]byte, error) {
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

func (c *v2Collection) UpdateOne(ctx context.Context, filter, update []byte, upsert bool) (UpdateResult, error) {
	r, err := c.c.UpdateOne(ctx, bson.Raw(filter), bson.Raw(update), options.UpdateOne().SetUpsert(upsert))
	if err != nil {
		return UpdateResult{}, v2Err(err)
	}
	return UpdateResult{Matched: r.MatchedCount, Modified: r.ModifiedCount, Upserted: r.UpsertedCount > 0}, nil
}

func (c *v2Collection) FindOneAndUpdate(ctx context.Context, filter, update []byte) ([]byte, error) {
	opts := options.FindOneAndUpdate().SetReturnDocument(options.After)
	raw, err := c.c.FindOneAndUpdate(ctx, bson.Raw(filter), bson.Raw(update), opts).Raw()
	return raw, v2Err(err)
}

func (c *v2Collection) FindOneAndDelete(ctx context.Context, filter []byte) ([]byte, error) {
	raw, err := c.c.FindOneAndDelete(ctx, bson.Raw(filter)).Raw()
	return raw, v2Err(err)
}

func (c *v2Collection) DeleteMany(ctx context.Context, filter []byte) (int64, error) {
	r, err := c.c.DeleteMany(ctx, bson.Raw(filter))
	if err != nil {
		return 0, v2Err(err)
	}
	return r.DeletedCount, nil
}

func (c *v2Collection) CountDocuments(ctx context.Context, filter []byte) (int64, error) {
	n, err := c.c.CountDocuments(ctx, bson.Raw(filter))
	return n, v2Err(err)
}

func (c *v2Collection) CreateIndex(ctx context.Context, keys []byte, name string) error {
	_, err := c.c.Indexes().CreateOne(ctx, driver.IndexModel{
		Keys:    bson.Raw(keys),
		Options: options.Index().SetName(name),
	})
	return v2Err(err)
}

func (c *v2Collection) Watch(ctx context.Context, startAfter []byte) (ChangeStream, error) {
	opts := options.ChangeStream().
		SetFullDocument(options.UpdateLookup).
		SetMaxAwaitTime(awaitTime)
	if startAfter != nil {
		opts.SetStartAfter(bson.Raw(startAfter))
	}
	cs, err := c.c.Watch(ctx, driver.Pipeline{}, opts)
	if err != nil {
		return nil, v2Err(err)
	}
	return &v2Stream{cs: cs}, nil
}

// v2Stream adapts the driver's change stream, which already implements
// post-batch resume tokens and resumes itself after transient errors.
type v2Stream struct{ cs *driver.ChangeStream }

// TryNext without wait only takes what the driver has buffered: a getMore
// on an idle stream would block for maxAwaitTimeMS.
func (s *v2Stream) TryNext(ctx context.Context, wait bool) bool {
	if !wait && s.cs.RemainingBatchLength() == 0 {
		return false
	}
	return s.cs.TryNext(ctx)
}

func (s *v2Stream) Current() []byte                 { return s.cs.Current }
func (s *v2Stream) ResumeToken() []byte             { return s.cs.ResumeToken() }
func (s *v2Stream) Err() error                      { return v2Err(s.cs.Err()) }
func (s *v2Stream) Close(ctx context.Context) error { return v2Err(s.cs.Close(ctx)) }
