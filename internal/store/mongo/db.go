// Package mongo is the production adapter: the post and comment stores, the
// posts service's read model of comments, and the change feeds, over MongoDB.
//
// It reaches MongoDB only through the official v2 driver. Tests run it
// against mongowire, a wire-protocol test server (package mongotest sets it
// up), or against a real replica set named by TEST_MONGO_URI.
//
// Documents keep the seed's shape: posts {_id, title, content, comments:
// [{_id, text, createdAt}], commentCount, createdAt, updatedAt} and comments
// {_id, postId, text, createdAt, updatedAt}. The posts service also keeps
// post_comments (its own copy of every comment, for exact counts and for
// refilling a post's embedded window after a delete); its consumer keeps
// checkpoints, leases and dead_letters.
//
// Beyond the ports: PostCascade is the comments service's sink of the posts
// feed; it and the posts store are changes.Rebuilders and DeadLetterers, and
// Leases is a changes.Leaser, so each consumer recovers from lost history,
// parks poison events (listed by DeadLetters), and lets replicas take turns.
// The posts store is also a post.Repairer, which mends one post's drift.
package mongo

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	driver "go.mongodb.org/mongo-driver/v2/mongo"

	"blog/internal/changes"
	"blog/internal/comment"
	"blog/internal/post"
)

// Options tunes the adapter; the zero value is the production default.
type Options struct {
	// EmbedLimit is how many of its latest comments a post embeds; default
	// post.DefaultEmbedLimit.
	EmbedLimit int
	// Logger receives what an operator should see (skipped or undecodable
	// change events); default: discard.
	Logger *slog.Logger
	// ConnectTimeout bounds Open's connect, ping and deployment check, so a
	// wrong MONGO_URI fails start-up in seconds rather than hanging; default
	// 5s.
	ConnectTimeout time.Duration
	// CommitTimeout bounds each commit whose caller's context has no
	// earlier deadline (the driver sends it to the server as maxTimeMS),
	// and the abort of a failed transaction; default 10s.
	CommitTimeout time.Duration
	// QuietInterval is how long a feed's Stream.Next waits for events before
	// it returns an empty batch carrying the advanced resume token; default
	// 1s. Tests shorten it.
	QuietInterval time.Duration
}

// Batch and timing defaults.
const (
	defaultConnectTimeout = 5 * time.Second
	defaultQuietInterval  = time.Second
	defaultCommitTimeout  = 10 * time.Second
	// maxBatch caps a feed batch, and so the size of the transaction that
	// applies it.
	maxBatch = 500
)

// DB is an open MongoDB database holding both services' collections. It is
// safe for concurrent use.
type DB struct {
	b     *backend
	opt   Options
	log   *slog.Logger
	posts coll
	// The other collections; see their names' constants.
	comments, postComments, checkpoints, leases, deadLetters coll
	// deleteChunk is how many comments one deleteComments transaction
	// removes: defaultDeleteChunk, smaller in tests.
	deleteChunk int
}

// newDB returns a DB over b and makes sure the collections and indexes the
// queries rely on exist.
func newDB(ctx context.Context, b *backend, opt Options) (*DB, error) {
	if opt.EmbedLimit <= 0 {
		opt.EmbedLimit = post.DefaultEmbedLimit
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.ConnectTimeout <= 0 {
		opt.ConnectTimeout = defaultConnectTimeout
	}
	if opt.QuietInterval <= 0 {
		opt.QuietInterval = defaultQuietInterval
	}
	db := &DB{
		b:            b,
		opt:          opt,
		log:          opt.Logger,
		posts:        coll{b.collection(postsColl), postsColl},
		comments:     coll{b.collection(commentsColl), commentsColl},
		postComments: coll{b.collection(postCommentsColl), postCommentsColl},
		checkpoints:  coll{b.collection(checkpointsColl), checkpointsColl},
		leases:       coll{b.collection(leasesColl), leasesColl},
		deadLetters:  coll{b.collection(deadLettersColl), deadLettersColl},
		deleteChunk:  defaultDeleteChunk,
	}
	if err := db.ensureSchema(ctx); err != nil {
		return nil, err
	}
	return db, nil
}

// ensureSchema creates the collections, and the compound indexes behind
// every list and keyset page: posts newest first, a post's comments oldest
// first (also the read model's window queries), a consumer's dead letters
// oldest first. All are no-ops when they exist, so every start-up runs it.
func (db *DB) ensureSchema(ctx context.Context) error {
	for _, name := range []string{postsColl, commentsColl, postCommentsColl, checkpointsColl, leasesColl, deadLettersColl} {
		if err := db.b.CreateCollection(ctx, name); err != nil {
			return fmt.Errorf("mongo: create collection %s: %w", name, err)
		}
	}
	byPost := bson.D{{Key: "postId", Value: 1}, {Key: "createdAt", Value: 1}, {Key: "_id", Value: 1}}
	indexes := []struct {
		c    coll
		keys bson.D
		name string
	}{
		{db.posts, bson.D{{Key: "createdAt", Value: -1}, {Key: "_id", Value: -1}}, "createdAt_-1__id_-1"},
		{db.comments, byPost, "postId_1_createdAt_1__id_1"},
		{db.postComments, byPost, "postId_1_createdAt_1__id_1"},
		{db.deadLetters, deadLettersIndex, "consumer_1_parkedAt_1_seq_1"},
	}
	for _, ix := range indexes {
		keys, err := encode(ix.keys)
		if err != nil {
			return err
		}
		if err := ix.c.c.CreateIndex(ctx, keys, ix.name); err != nil {
			return fmt.Errorf("mongo: create index %s on %s: %w", ix.name, ix.c.name, err)
		}
	}
	return nil
}

// Posts returns the posts service's store, which is also the sink of the
// comments feed.
func (db *DB) Posts() post.Store { return &postStore{db: db} }

// Comments returns the comments service's store.
func (db *DB) Comments() comment.Store { return &commentStore{db: db} }

// CommentFeed returns the change feed of the comments collection, which the
// posts service consumes to keep embedded comments in step.
func (db *DB) CommentFeed() changes.Feed[comment.Comment] {
	return &feed[comment.Comment]{db: db, c: db.comments, decode: decodeComment, lookup: true}
}

// PostFeed returns the change feed of the posts collection, which the
// comments service consumes to delete the comments of deleted posts.
func (db *DB) PostFeed() changes.Feed[post.Post] {
	return &feed[post.Post]{db: db, c: db.posts, decode: decodePost, lookup: true}
}

// PostEvents returns the posts feed for consumers that act on which post
// changed rather than on its contents (the live-updates hub, which reads
// the post itself; the comments service's cascade, which acts on deletes):
// its stream asks for no updateLookup, so the server does not look up and
// ship a whole post for every update only for it to be thrown away. An
// update event comes without a document (Found false).
func (db *DB) PostEvents() changes.Feed[post.Post] {
	return &feed[post.Post]{db: db, c: db.posts, decode: decodePost}
}

// Leases returns the lease keeper that lets several replicas of a consumer
// take turns (changes.Consumer.Lease): MongoDB is how users run more than
// one machine, so it is where two replicas could both be consuming.
func (db *DB) Leases() changes.Leaser { return &leaser{db: db} }

// Database returns the driver's handle on the DB's database, for tools and
// tests that must reach past the stores: fault injection
// (mongotest.InjectMalformedComment) and inspection. What is written
// through it bypasses every rule the stores keep, and reaches the feeds
// like any other write.
func (db *DB) Database() *driver.Database { return db.b.db }

// Close disconnects from the deployment. Streams should be closed first.
func (db *DB) Close(ctx context.Context) error {
	if err := db.b.Close(ctx); err != nil {
		return fmt.Errorf("mongo: close: %w", err)
	}
	return nil
}

func decodeComment(raw []byte) (comment.Comment, error) {
	var d commentDoc
	if err := bson.Unmarshal(raw, &d); err != nil {
		return comment.Comment{}, err
	}
	return d.comment(), nil
}

func decodePost(raw []byte) (post.Post, error) {
	var d postDoc
	if err := bson.Unmarshal(raw, &d); err != nil {
		return post.Post{}, err
	}
	return d.post(), nil
}
