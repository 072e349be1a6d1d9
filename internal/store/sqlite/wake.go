package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
)

// Waking streams, cheaply.
//
// A commit made through this *DB wakes only the streams of the collections
// it appended to the change log (a checkpoint-only commit wakes none): the
// write transaction notes them as it appends (noteAppend), and write wakes
// their signals after the commit.
//
// Commits of other processes (or other *DBs on the same file) cannot wake
// a stream directly, so one watcher per DB looks for them, and only while
// some stream is waiting: every PollInterval it reads PRAGMA data_version
// on a connection of its own, which changes whenever another connection
// commits, and wakes every stream when it did. It does so only while
// another DB has the file open, which it learns from open file description
// locks on a presence file next to the database (presence_linux.go); alone,
// it only looks again for company every aloneRecheck, so an idle
// single-process blog makes no query at all.

// aloneRecheck is how often the watcher of a DB that is alone on its file
// looks for another one. A newcomer's first commits may wait this long to
// wake this DB's streams (the newcomer's own streams poll at once).
const aloneRecheck = 250 * time.Millisecond

// wakeup holds a DB's signals and its watcher's state.
type wakeup struct {
	posts, comments *signal
	// commits counts the wake-ups of any collection, so a stream can tell
	// whether anything at all was committed since it last read.
	commits atomic.Uint64

	mu      sync.Mutex
	waiting int           // streams waiting in Next
	kick    chan struct{} // wakes the watcher when waiting becomes non-zero
}

func newWakeup() *wakeup {
	return &wakeup{posts: newSignal(), comments: newSignal(), kick: make(chan struct{}, 1)}
}

// signal returns the signal of a collection's streams.
func (w *wakeup) signal(collection string) *signal {
	if collection == collPosts {
		return w.posts
	}
	return w.comments
}

// wake broadcasts to the streams of the collections named.
func (w *wakeup) wake(posts, comments bool) {
	if !posts && !comments {
		return
	}
	w.commits.Add(1)
	if posts {
		w.posts.broadcast()
	}
	if comments {
		w.comments.broadcast()
	}
}

// wait registers a waiting stream until the returned func is called; the
// watcher runs while any is registered.
func (w *wakeup) wait() (done func()) {
	w.mu.Lock()
	w.waiting++
	if w.waiting == 1 {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
	w.mu.Unlock()
	return func() {
		w.mu.Lock()
		w.waiting--
		w.mu.Unlock()
	}
}

func (w *wakeup) anyWaiting() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.waiting > 0
}

// logged is what a write transaction appended to the change log.
type logged struct{ posts, comments bool }

// txLogged maps each running write transaction (*sql.Tx) to its *logged,
// for noteAppend, which gets only the transaction.
var txLogged sync.Map

// noteAppend records that tx appended to the collection's log.
func noteAppend(tx *sql.Tx, collection string) {
	v, ok := txLogged.Load(tx)
	if !ok {
		return
	}
	l := v.(*logged)
	if collection == collPosts {
		l.posts = true
	} else {
		l.comments = true
	}
}

// watch is the DB's watcher of other processes' commits (see above); it
// returns when the DB is closed.
func (db *DB) watch() {
	var (
		conn    *sql.Conn
		pool    *sql.DB
		version int64 = -1
	)
	defer func() {
		if conn != nil {
			_ = conn.Close()
			_ = pool.Close()
		}
	}()
	alone := true
	for {
		if !db.wakes.anyWaiting() {
			select {
			case <-db.wakes.kick:
			case <-db.done:
				return
			}
		}
		others := db.presence.others()
		if others && alone {
			// Company arrived: whatever it committed before this look
			// is not in any data_version baseline, so wake everyone once.
			db.wakes.wake(true, true)
			version = -1
		}
		alone = !others
		if others {
			if conn == nil {
				var err error
				if pool, conn, err = db.versionConn(); err != nil {
					db.log.Warn("embedded store: cannot watch for other processes' commits; streams see them within the quiet interval", "err", err)
				}
			}
			if conn != nil {
				var v int64
				if err := conn.QueryRowContext(context.Background(), "PRAGMA data_version").Scan(&v); err != nil {
					// Unsure: wake everyone, who will read and see.
					db.log.Warn("embedded store: read data_version", "err", err)
					db.wakes.wake(true, true)
				} else {
					if version >= 0 && v != version {
						db.wakes.wake(true, true)
					}
					version = v
				}
			}
		}
		interval := db.poll
		if alone {
			interval = max(aloneRecheck, db.poll)
		}
		t := time.NewTimer(interval)
		select {
		case <-t.C:
		case <-db.done:
			t.Stop()
			return
		}
	}
}

// versionConn opens the watcher's own connection: PRAGMA data_version
// tells one connection about the commits of all the others.
func (db *DB) versionConn() (*sql.DB, *sql.Conn, error) {
	pool := sql.OpenDB(connector{dsn: dsn(db.path, false), drv: &sqlite.Driver{}})
	pool.SetMaxOpenConns(1)
	conn, err := pool.Conn(context.Background())
	if err != nil {
		_ = pool.Close()
		return nil, nil, fmt.Errorf("sqlite: watcher connection: %w", err)
	}
	return pool, conn, nil
}

// presenceFile is the file next to the database on which every open DB
// holds a lock, so each can tell whether it is alone.
func presenceFile(path string) (*os.File, error) {
	return os.OpenFile(path+"-procs", os.O_RDWR|os.O_CREATE, 0o644)
}
