package sqlite

import (
	"container/list"
	"context"
	"database/sql/driver"
	"errors"

	"modernc.org/sqlite"
)

// The driver prepares (parses and plans) every statement anew on each call
// that is not a prepared statement: on the hot paths that is the largest
// single cost after the work itself (pprof: sqlite3_prepare_v2 at 10-15% of
// the services' CPU under load). Rather than thread *sql.Stmt through every
// query, each connection keeps its own cache of prepared statements keyed
// by SQL text: the queries are constants, so a small cache holds them all.

// stmtCacheSize bounds each connection's cache; the store has a few dozen
// distinct statements.
const stmtCacheSize = 128

// connector opens the driver's connections with a statement cache each.
type connector struct {
	dsn string
	drv *sqlite.Driver
}

func (c connector) Connect(context.Context) (driver.Conn, error) {
	conn, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return newCachingConn(conn)
}

func (c connector) Driver() driver.Driver { return c.drv }

// inner is what the driver's connection offers and the cache forwards.
type inner interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// cachingConn is a driver connection whose ExecContext and QueryContext
// run cached prepared statements. It is used by one goroutine at a time,
// as every driver.Conn is.
type cachingConn struct {
	inner
	lru   *list.List // of *cached, most recently used first
	bySQL map[string]*list.Element
}

type cached struct {
	sql  string
	stmt driver.Stmt
	busy bool // rows of it are open; a nested use prepares afresh
}

func newCachingConn(c driver.Conn) (driver.Conn, error) {
	in, ok := c.(inner)
	if !ok {
		_ = c.Close()
		return nil, errors.New("sqlite: the driver's connection lacks a context method")
	}
	return &cachingConn{inner: in, lru: list.New(), bySQL: map[string]*list.Element{}}, nil
}

// stmt returns the cached statement for query, preparing it on a miss, or
// nil when the statement is busy (the caller then uses the connection
// directly, uncached).
func (c *cachingConn) stmt(ctx context.Context, query string) (*cached, error) {
	if e, ok := c.bySQL[query]; ok {
		s := e.Value.(*cached)
		if s.busy {
			return nil, nil
		}
		c.lru.MoveToFront(e)
		return s, nil
	}
	st, err := c.inner.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	s := &cached{sql: query, stmt: st}
	c.bySQL[query] = c.lru.PushFront(s)
	for c.lru.Len() > stmtCacheSize {
		old := c.lru.Back()
		o := old.Value.(*cached)
		if o.busy {
			break
		}
		c.lru.Remove(old)
		delete(c.bySQL, o.sql)
		_ = o.stmt.Close()
	}
	return s, nil
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	s, err := c.stmt(ctx, query)
	if err != nil || s == nil {
		return c.inner.ExecContext(ctx, query, args)
	}
	return s.stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	s, err := c.stmt(ctx, query)
	if err != nil || s == nil {
		return c.inner.QueryContext(ctx, query, args)
	}
	rows, err := s.stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	s.busy = true
	return &cachedRows{Rows: rows, s: s}, nil
}

// Close finalizes the cached statements, then closes the connection.
func (c *cachingConn) Close() error {
	for e := c.lru.Front(); e != nil; e = e.Next() {
		_ = e.Value.(*cached).stmt.Close()
	}
	c.lru.Init()
	clear(c.bySQL)
	return c.inner.Close()
}

// cachedRows frees its statement for reuse when closed.
type cachedRows struct {
	driver.Rows
	s *cached
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	r.s.busy = false
	return err
}

// The driver's rows also describe their columns' types; forward that.
func (r *cachedRows) ColumnTypeDatabaseTypeName(i int) string {
	if t, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return t.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}
