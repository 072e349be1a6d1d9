// Package sqlite is the embedded store, the default: one SQLite file in the
// data directory, no server, zero setup, and a pure-Go driver
// (modernc.org/sqlite) so `go run` works without a C toolchain.
//
// It implements both services' stores and both change feeds. Every write to
// posts or comments appends to a change log in the same transaction (a
// transactional outbox); the log's sequence number is the feed's resume
// token. Several processes may open the same directory at once (`blog posts`
// and `blog comments` run apart): SQLite serialises their writers, so the
// log's order is the commit order across all of them, and each process's
// streams poll the log for the others' commits.
//
// For reliable sync it also keeps, in the same file: leases with fencing
// tokens (Leases), which every sink checks inside its write transaction;
// dead letters (DeadLetters); the progress of resumable rebuilds after lost
// history; and the comments service's cascade sink of the posts feed
// (PostCascade). The change log is pruned by age (PruneBefore); a consumer
// left behind the pruned part rebuilds its read model.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"blog/internal/changes"
	"blog/internal/comment"
	"blog/internal/post"
)

// FileName is the database file Open creates inside its directory; the -wal
// and -shm files SQLite keeps next to it belong to it.
const FileName = "blog.db"

// Options tunes the store; the zero value is ready for production.
type Options struct {
	// EmbedLimit is how many latest comments a post embeds; zero means
	// post.DefaultEmbedLimit. Every process sharing a file should agree.
	EmbedLimit int
	// PollInterval is how often an open stream looks for commits made by
	// other processes, which cannot wake it directly; zero means 20ms.
	// Commits made through this *DB wake streams at once regardless.
	PollInterval time.Duration
	// QuietInterval is how long Stream.Next waits without events before it
	// returns an empty batch, so a quiet consumer still advances its
	// checkpoint past other collections' changes; zero means 1s.
	QuietInterval time.Duration
	// Logger receives start-up and maintenance messages; nil discards them.
	Logger *slog.Logger
}

// Defaults for the zero Options.
const (
	defaultPollInterval  = 20 * time.Millisecond
	defaultQuietInterval = time.Second
	// busyTimeout is how long a connection waits for another process's
	// write lock before giving up with SQLITE_BUSY. Write transactions here
	// are short, so reaching it means something is stuck.
	busyTimeout = 10 * time.Second
	// maxBatch caps the events one Stream.Next returns, bounding the size
	// of the consumer's apply transaction.
	maxBatch = 500
)

// DB is an open embedded store. It is safe for concurrent use, and several
// DBs (in one process or many) may share a directory.
type DB struct {
	path string
	// w is the write pool: one connection, so this process's writers queue
	// in Go rather than spin on SQLite's lock, and every transaction starts
	// with BEGIN IMMEDIATE, taking the write lock up front. A deferred
	// transaction that reads and then writes would have to upgrade its lock
	// and can fail with SQLITE_BUSY no matter the busy timeout, when another
	// process wrote in between; IMMEDIATE waits for the lock instead.
	w *sql.DB
	// r is the read pool: several connections, which WAL lets read while a
	// writer commits, each reading one consistent snapshot per transaction.
	r *sql.DB

	embedLimit int
	poll       time.Duration
	quiet      time.Duration
	batch      int // maxBatch, smaller in tests
	log        *slog.Logger

	// Chunk sizes of the long jobs, smaller in tests: posts (or post ids)
	// per rebuild transaction, and comments deleted per transaction.
	rebuildPosts, deletesPerTx int
	// afterChunk, when set (by tests), runs after each committed rebuild
	// chunk; an error from it stops the rebuild there, as a crash would.
	afterChunk func() error

	wakes    *wakeup   // the streams' signals and the watcher's state (wake.go)
	group    grouper   // writes awaiting a group commit (group.go)
	presence *presence // tells whether another DB has the file open
	watcher  sync.WaitGroup
	done     chan struct{} // closed by Close, so waiting streams return
	once     sync.Once
}

// Open opens (creating if needed) the store in dir and brings its schema up
// to date. Another process may hold the same dir open.
func Open(ctx context.Context, dir string, opt Options) (*DB, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("sqlite: create data directory %s: %s", dir, reason(err))
	}
	path := filepath.Join(dir, FileName)
	if err := checkWritable(dir, path); err != nil {
		return nil, err
	}
	db := &DB{
		path:       path,
		embedLimit: opt.EmbedLimit,
		poll:       opt.PollInterval,
		quiet:      opt.QuietInterval,
		batch:      maxBatch,
		log:        opt.Logger,

		rebuildPosts: rebuildChunk,
		deletesPerTx: deleteChunk,
		wakes:        newWakeup(),
		done:         make(chan struct{}),
	}
	if db.embedLimit <= 0 {
		db.embedLimit = post.DefaultEmbedLimit
	}
	if db.poll <= 0 {
		db.poll = defaultPollInterval
	}
	if db.quiet <= 0 {
		db.quiet = defaultQuietInterval
	}
	if db.log == nil {
		db.log = slog.New(slog.DiscardHandler)
	}

	var err error
	if db.w, err = openWriter(ctx, path); err != nil {
		return nil, err
	}

	db.r = sql.OpenDB(connector{dsn: dsn(path, false), drv: &sqlite.Driver{}})
	n := max(4, runtime.GOMAXPROCS(0))
	db.r.SetMaxOpenConns(n)
	db.r.SetMaxIdleConns(n)
	if err := db.r.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := probeWrite(ctx, db); err != nil {
		_ = db.Close()
		return nil, err
	}
	db.presence = openPresence(path)
	db.watcher.Go(db.watch)
	db.log.Info("embedded store open", "path", path, "embedLimit", db.embedLimit, "pollInterval", db.poll)
	return db, nil
}

// openWriter opens the write pool and migrates the schema. Processes that
// start together on a new file can meet SQLITE_BUSY without the busy timeout
// applying (while one of them switches the file to WAL mode), so that case is
// retried, with a short pause, for as long as the busy timeout.
func openWriter(ctx context.Context, path string) (*sql.DB, error) {
	deadline := time.Now().Add(busyTimeout)
	for pause := 5 * time.Millisecond; ; pause = min(2*pause, 200*time.Millisecond) {
		w := sql.OpenDB(connector{dsn: dsn(path, true), drv: &sqlite.Driver{}})
		w.SetMaxOpenConns(1)
		w.SetMaxIdleConns(1)
		w.SetConnMaxLifetime(0)
		w.SetConnMaxIdleTime(0)
		err := migrate(ctx, w)
		if err == nil {
			return w, nil
		}
		_ = w.Close()
		if !isBusy(err) || time.Now().After(deadline) {
			return nil, fmt.Errorf("sqlite: migrate %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("sqlite: migrate %s: %w", path, ctx.Err())
		case <-time.After(pause):
		}
	}
}

// isBusy reports whether err is SQLite's "database is locked".
func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// dsn returns the driver's data source name for the file. Both pools wait
// out other processes' locks (busy_timeout). The writer also:
//
//   - puts the file in WAL mode (persistent), so readers never block the
//     writer nor it them, and readers in other processes keep working;
//   - sets synchronous=NORMAL: in WAL mode that is still safe against
//     corruption and against an application crash, and only a power loss or
//     OS crash can lose the last commits; a commit then costs no fsync (the
//     WAL is synced at checkpoints), which is most of a write's cost. The
//     change log commits with its data, so such a loss can never leave the
//     two out of step;
//   - enables foreign keys, so deleting a post cascades to the posts
//     service's copies of its comments;
//   - begins every transaction IMMEDIATE (see DB.w).
//
// Readers get query_only, so a write slipping into the read pool fails
// loudly rather than racing the single writer.
func dsn(path string, writer bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	if writer {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Set("_txlock", "immediate")
	} else {
		q.Set("_query_only", "1")
	}
	return path + "?" + q.Encode()
}

// Close closes both pools and ends every stream's wait. It is safe to call
// more than once.
func (db *DB) Close() error {
	var err error
	db.once.Do(func() {
		close(db.done)
		db.watcher.Wait()
		if db.presence != nil {
			db.presence.close()
		}
		if db.r != nil {
			err = db.r.Close()
		}
		err = errors.Join(err, db.w.Close())
		if err != nil {
			err = fmt.Errorf("sqlite: close: %w", err)
		}
	})
	return err
}

// Posts returns the posts service's store, which is also the read model that
// consumes the comments feed.
func (db *DB) Posts() post.Store { return &postStore{db: db} }

// Comments returns the comments service's store.
func (db *DB) Comments() comment.Store { return &commentStore{db: db} }

// CommentFeed returns the change feed of the comments collection, which the
// posts service consumes to keep its embedded copies current.
func (db *DB) CommentFeed() changes.Feed[comment.Comment] {
	return &feed[comment.Comment]{db: db, collection: collComments, decode: decodeComment}
}

// PostFeed returns the change feed of the posts collection, which the
// comments service consumes to delete the comments of deleted posts.
func (db *DB) PostFeed() changes.Feed[post.Post] {
	return &feed[post.Post]{db: db, collection: collPosts, decode: decodePost, lookup: db.lookupPost}
}

// PostEvents returns the posts feed for consumers that act on which post
// changed rather than on its contents (the live-updates hub, which reads
// the post itself; the comments service's cascade, which acts on deletes):
// an update the read model logged comes without a document (Found false)
// instead of with a look-up that such a consumer would throw away.
func (db *DB) PostEvents() changes.Feed[post.Post] {
	return &feed[post.Post]{db: db, collection: collPosts, decode: decodePost}
}

// lookupPost reads a post's current state for the posts feed.
func (db *DB) lookupPost(ctx context.Context, q querier, id string) (post.Post, bool, error) {
	p, err := db.loadPost(ctx, q, id)
	if errors.Is(err, post.ErrNotFound) {
		return post.Post{}, false, nil
	}
	return p, err == nil, err
}

// write runs fn in one write transaction (BEGIN IMMEDIATE) and, when it
// commits, wakes this process's streams of the collections it appended to
// the change log (none for a checkpoint-only commit).
func (db *DB) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	var l logged
	txLogged.Store(tx, &l)
	defer txLogged.Delete(tx)
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	db.wakes.wake(l.posts, l.comments)
	return nil
}

// read runs fn in one read transaction, so every query in it sees the same
// snapshot (a post's count and its embedded comments agree).
func (db *DB) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	return fn(tx)
}

// ping checks that a connection of the read pool can read the file (the
// schema version lives in its header, so this is a real read).
func (db *DB) ping(ctx context.Context) error {
	var version int
	return db.r.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version)
}

// isUnique reports whether err is a uniqueness violation, which the stores
// map to their ErrDuplicate.
func isUnique(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
		return true
	}
	return false
}

// signal is a broadcast that can be waited on repeatedly: wait returns a
// channel that broadcast closes. Taking the channel before looking for work
// means a broadcast in between is never missed.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func newSignal() *signal { return &signal{ch: make(chan struct{})} }

func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

func (s *signal) broadcast() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.ch)
	s.ch = make(chan struct{})
}

// ms and fromMS convert times to and from the stored form, integer unix
// milliseconds: MongoDB's precision, and ordered and indexed as integers.
func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func optMS(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

func fromOptMS(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMS(v.Int64)
	return &t
}
