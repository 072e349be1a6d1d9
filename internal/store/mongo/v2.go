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
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"
)

// DefaultDatabase is used when the URI names no database (no path).
const DefaultDatabase = "blog"

// Open connects to the MongoDB deployment at uri with the official v2
// driver, checks that it can serve change streams, and returns the DB over
// the URI's database (DefaultDatabase when the URI has no path).
//
// It fails fast and says what to do. It first sends hello to each seed
// host itself, directly and within seconds, and names what it finds: a
// standalone mongod, which has no oplog and so no change streams
// (ErrStandalone: restart it with --replSet and run rs.initiate()); a member
// whose replica set was never initiated (ErrNotInitiated: run rs.initiate());
// or no answer (ErrUnreachable, naming the hosts). Errors carry the
// password-masked URI.
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
	// Before anything else, ask each seed what it is, directly and with a
	// short timeout: the driver's own server selection would wait out the
	// whole timeout on a standalone or an uninitiated member (it cannot
	// select either for ?replicaSet=) and then say nothing useful.
	if err := inspectSeeds(ctx, uri, timeout); err != nil {
		return nil, fmt.Errorf("%w (at %s)", err, masked)
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
		return fail(fmt.Errorf("mongo: cannot reach the primary of MongoDB at %s within %s; check that it is running and that the URI is right: %w", masked, timeout, err))
	}
	hello, err := helloReply(cctx, client)
	if err != nil {
		return fail(fmt.Errorf("mongo: ask MongoDB at %s what it is (hello): %w", masked, err))
	}
	if err := CheckDeployment(hello); err != nil {
		return fail(fmt.Errorf("%w (at %s)", err, masked))
	}
	commit := opt.CommitTimeout
	if commit <= 0 {
		commit = defaultCommitTimeout
	}
	b := &backend{client: client, db: client.Database(name), commitTimeout: commit}
	// Not bounded by the connect timeout: building an index on a large
	// existing collection (a seed database) may take a while.
	db, err := newDB(ctx, b, opt)
	if err != nil {
		return fail(err)
	}
	return db, nil
}

// seedTimeout bounds the hello sent to each seed at start-up.
const seedTimeout = 2 * time.Second

// inspectSeeds sends hello to every host of uri, each directly and in
// parallel, and fails with what it found when none can serve change
// streams: ErrStandalone, ErrNotInitiated, or the unreachable hosts. One
// seed that is a replica-set member or a mongos is enough. SRV URIs are
// left to the driver, which resolves them.
func inspectSeeds(ctx context.Context, uri string, timeout time.Duration) error {
	cs, err := connstring.ParseAndValidate(uri)
	if err != nil || cs.Scheme == connstring.SchemeMongoDBSRV || len(cs.Hosts) == 0 {
		return nil
	}
	wait := min(seedTimeout, timeout)
	type answer struct {
		host string
		err  error
	}
	answers := make(chan answer, len(cs.Hosts))
	for _, host := range cs.Hosts {
		go func() {
			answers <- answer{host, inspectSeed(ctx, uri, host, wait)}
		}()
	}
	var standalone, uninitiated error
	var unreachable []string
	var lastErr error
	for range cs.Hosts {
		a := <-answers
		switch {
		case a.err == nil:
			return nil
		case errors.Is(a.err, ErrStandalone):
			standalone = a.err
		case errors.Is(a.err, ErrNotInitiated):
			uninitiated = a.err
		default:
			unreachable = append(unreachable, a.host)
			lastErr = a.err
		}
	}
	switch {
	case uninitiated != nil:
		return uninitiated
	case standalone != nil:
		return standalone
	}
	return fmt.Errorf("%w: no answer to hello within %s from %s: %w", ErrUnreachable, wait, strings.Join(unreachable, ", "), lastErr)
}

// ErrUnreachable is returned (wrapped, naming the hosts) by Open when no
// seed of the URI answers.
var ErrUnreachable = errors.New("mongo: cannot reach MongoDB; check that it is running and that the URI's hosts and ports are right")

// inspectSeed asks one host what it is, over a direct connection that
// takes the URI's credentials and TLS settings.
func inspectSeed(ctx context.Context, uri, host string, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	opts := options.Client().ApplyURI(uri).SetHosts([]string{host}).SetDirect(true).
		SetServerSelectionTimeout(wait).SetConnectTimeout(wait)
	opts.ReplicaSet = nil
	client, err := driver.Connect(opts)
	if err != nil {
		return err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), wait)
		defer cancel()
		_ = client.Disconnect(dctx)
	}()
	hello, err := helloReply(ctx, client)
	if err != nil {
		return err
	}
	return CheckDeployment(hello)
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
