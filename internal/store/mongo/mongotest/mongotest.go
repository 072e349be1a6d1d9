// Package mongotest runs the mongo adapter for tests: against mongowire, a
// MongoDB wire-protocol test server started in-process for each DB, or
// against the real replica set TEST_MONGO_URI names, in a fresh database
// dropped when the test ends. Either way the adapter talks to it through the
// v2 driver over TCP, the product's one MongoDB code path.
package mongotest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	v2bson "go.mongodb.org/mongo-driver/v2/bson"
	driver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"blog/internal/mongowire"
	"blog/internal/store/mongo"
)

// Env is where a test's DB runs.
type Env struct {
	// URI is the connection string the DB was opened with.
	URI string
	// Server is the in-process wire server, or nil on a real deployment.
	Server *mongowire.Server
	// Client is a driver client of the test's own, for writes that bypass
	// the stores and for fail points.
	Client *driver.Client
	// Name is the database's name.
	Name string
}

// Database returns the test's database through the test's own client.
func (e *Env) Database() *driver.Database { return e.Client.Database(e.Name) }

// Real reports whether the test runs against a real deployment
// (TEST_MONGO_URI), where the wire server's knobs do not exist.
func (e *Env) Real() bool { return e.Server == nil }

// Open returns a mongo.DB for the test, closed when the test ends. Unless
// opt sets it, QuietInterval is shortened to 100ms so tests of quiet
// streams stay fast.
func Open(t testing.TB, opt mongo.Options) *mongo.DB {
	t.Helper()
	db, _ := OpenEnv(t, mongowire.Options{}, opt)
	return db
}

// OpenEnv is Open with the wire server's options (e.g. a tiny oplog, to
// provoke changes.ErrHistoryLost; ignored on a real deployment), returning
// the Env too.
func OpenEnv(t testing.TB, wire mongowire.Options, opt mongo.Options) (*mongo.DB, *Env) {
	t.Helper()
	env := &Env{Name: "blogtest_" + v2bson.NewObjectID().Hex()}
	if uri := os.Getenv("TEST_MONGO_URI"); uri != "" {
		env.URI = WithDatabase(uri, env.Name)
	} else {
		env.Server = mongowire.StartServer(t, wire)
		env.URI = WithDatabase(env.Server.URI(), env.Name)
	}
	if opt.QuietInterval == 0 {
		opt.QuietInterval = 100 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := mongo.Open(ctx, env.URI, opt)
	if err != nil {
		t.Fatalf("mongotest: open %s: %v", mongo.MaskURI(env.URI), err)
	}
	client, err := driver.Connect(options.Client().ApplyURI(env.URI))
	if err != nil {
		t.Fatalf("mongotest: connect: %v", err)
	}
	env.Client = client
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := db.Close(ctx); err != nil {
			t.Errorf("mongotest: close: %v", err)
		}
		if env.Real() {
			if err := client.Database(env.Name).Drop(ctx); err != nil {
				t.Errorf("mongotest: drop %s: %v", env.Name, err)
			}
		}
		_ = client.Disconnect(ctx)
	})
	return db, env
}

// FailPoint configures MongoDB's failCommand fail point, as documented for
// a server started with --setParameter enableTestCommands=1, and turns it
// off when the test ends. mode is "alwaysOn", "off" or a document such as
// {times: 1}; data holds failCommands, errorCode, blockConnection and the
// rest.
func (e *Env) FailPoint(t testing.TB, mode any, data v2bson.D) {
	t.Helper()
	admin := e.Client.Database("admin")
	cmd := v2bson.D{{Key: "configureFailPoint", Value: "failCommand"}, {Key: "mode", Value: mode}, {Key: "data", Value: data}}
	if err := admin.RunCommand(context.Background(), cmd).Err(); err != nil {
		t.Fatalf("mongotest: configureFailPoint: %v", err)
	}
	t.Cleanup(func() {
		off := v2bson.D{{Key: "configureFailPoint", Value: "failCommand"}, {Key: "mode", Value: "off"}}
		_ = admin.RunCommand(context.Background(), off).Err()
	})
}

// FailPointOff turns the failCommand fail point off and returns how many
// times it fired since it was configured (the count configureFailPoint
// answers with), so a test can check its fault happened.
func (e *Env) FailPointOff(t testing.TB) int {
	t.Helper()
	off := v2bson.D{{Key: "configureFailPoint", Value: "failCommand"}, {Key: "mode", Value: "off"}}
	raw, err := e.Client.Database("admin").RunCommand(context.Background(), off).Raw()
	if err != nil {
		t.Fatalf("mongotest: configureFailPoint off: %v", err)
	}
	n, ok := raw.Lookup("count").AsInt64OK()
	if !ok {
		t.Fatalf("mongotest: configureFailPoint answered %v, with no count", raw)
	}
	return int(n)
}

// WithDatabase returns uri with its path (the database) set to name. The
// path is also where a user authenticates unless authSource says otherwise,
// so an authSource naming the original database (admin by default) is
// added for a URI with credentials.
func WithDatabase(uri, name string) string {
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return uri
	}
	hosts, db, query := rest, "", ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		hosts = rest[:i]
		path, q, _ := strings.Cut(rest[i:], "?")
		db, query = strings.TrimPrefix(path, "/"), q
	}
	if strings.Contains(hosts, "@") && !strings.Contains(strings.ToLower(query), "authsource=") {
		if db == "" {
			db = "admin"
		}
		if query != "" {
			query += "&"
		}
		query += "authSource=" + db
	}
	if query != "" {
		query = "?" + query
	}
	return fmt.Sprintf("%s://%s/%s%s", scheme, hosts, name, query)
}

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
// It writes through the driver, so it works on the wire server and on a
// real server alike. It exists for fault-injection tests; the services never call it.
func InjectMalformedComment(t testing.TB, db *mongo.DB, postID string) string {
	t.Helper()
	id := v2bson.NewObjectID()
	doc := v2bson.D{
		{Key: "_id", Value: id},
		{Key: "postId", Value: int32(123)},
		{Key: "text", Value: "malformed"},
		{Key: "createdAt", Value: time.Now().UTC().Truncate(time.Millisecond)},
		{Key: "note", Value: "injected by a test; meant for post " + postID},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := db.Database().Collection("comments").InsertOne(ctx, doc); err != nil {
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
	doc := v2bson.D{
		{Key: "_id", Value: id},
		{Key: "postId", Value: pid},
		{Key: "text", Value: int32(42)},
		{Key: "createdAt", Value: time.Now().UTC().Truncate(time.Millisecond)},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := db.Database().Collection("comments").InsertOne(ctx, doc); err != nil {
		t.Fatalf("mongotest: inject malformed comment: %v", err)
	}
	return id.Hex()
}
