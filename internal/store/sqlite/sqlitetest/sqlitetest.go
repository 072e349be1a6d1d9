// Package sqlitetest writes what the embedded store's own code never
// writes: malformed comments, as a careless script or a future version
// might put straight into the database file. Fault-injection tests use it,
// in this module's packages and against the real binary; the services never
// import it.
//
// It opens the file with its own connection, as another process would, so
// the store that has the file open sees the writes through its change log
// like any other process's.
package sqlitetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"time"

	_ "modernc.org/sqlite" // the driver the store uses
)

// write runs fn in one transaction on the database file at path.
func write(ctx context.Context, path string, fn func(tx *sql.Tx) error) error {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return err
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// InjectMalformedComment writes into the store at path (its database file)
// a comments row and its insert on the change log whose document has
// postId as the number 123 instead of a post's id string. The comments feed
// reports it as an event with Err set; the posts consumer retries it, then
// parks it as a dead letter and moves on. The row belongs to no post (its
// post_id is "123"), so no listing shows it. postID names the post the
// comment was meant for and is not used. It returns the comment's id, the
// event's Key.
func InjectMalformedComment(ctx context.Context, path, postID string) (string, error) {
	_ = postID
	id := newID()
	now := time.Now().UnixMilli()
	doc := fmt.Sprintf(`{"_id":%q,"postId":123,"text":"malformed","createdAt":%d}`, id, now)
	err := write(ctx, path, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO comments (id, post_id, text, created_at) VALUES (?, 123, 'malformed', ?)`, id, now); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx,
			`INSERT INTO changelog (collection, op, doc_id, doc, at) VALUES ('comments', 'insert', ?, ?, ?)`, id, doc, now)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("sqlitetest: inject malformed comment: %w", err)
	}
	return id, nil
}

// InjectMalformedCommentOnPost is InjectMalformedComment's variant that
// does belong to post postID: a comments row of that post, and its insert
// on the change log, whose createdAt is now plus half a millisecond, a
// fraction (as a script computing it in floating point might write it),
// which SQLite keeps as a REAL in the INTEGER column. So it sorts among the
// post's comments created around now, and every listing of them reads it
// (and must skip it rather than fail); its change event arrives with Err
// set; rebuilds leave it out; and the post's deletion deletes it with the
// rest. It returns the comment's id.
func InjectMalformedCommentOnPost(ctx context.Context, path, postID string) (string, error) {
	id := newID()
	created := float64(time.Now().UnixMilli()) + 0.5
	doc := fmt.Sprintf(`{"_id":%q,"postId":%q,"text":"malformed","createdAt":%.1f}`, id, postID, created)
	err := write(ctx, path, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO comments (id, post_id, text, created_at) VALUES (?, ?, 'malformed', ?)`, id, postID, created); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx,
			`INSERT INTO changelog (collection, op, doc_id, doc, at) VALUES ('comments', 'insert', ?, ?, ?)`,
			id, doc, time.Now().UnixMilli())
		return err
	})
	if err != nil {
		return "", fmt.Errorf("sqlitetest: inject malformed comment: %w", err)
	}
	return id, nil
}

// Exec runs one statement on the store at path, for tests that mend (or
// damage) a document by hand, as an operator would.
func Exec(ctx context.Context, path, query string, args ...any) error {
	return write(ctx, path, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, query, args...)
		return err
	})
}
