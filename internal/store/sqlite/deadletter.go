package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"blog/internal/changes"
	"blog/internal/comment"
	"blog/internal/post"
)

// DeadLetters returns the events the named consumer has parked, oldest
// first; what an operator reads (`blog deadletters`) to decide what to mend.
// IDs are the records' decimal row ids.
func (db *DB) DeadLetters(ctx context.Context, consumer string) ([]changes.DeadLetter, error) {
	rows, err := db.r.QueryContext(ctx, `
		SELECT id, consumer, op, doc_id, doc, reason, token, at FROM dead_letters
		WHERE consumer = ? ORDER BY id`, consumer)
	if err != nil {
		return nil, fmt.Errorf("sqlite: read dead letters of %q: %w", consumer, err)
	}
	defer rows.Close()
	var out []changes.DeadLetter
	for rows.Next() {
		var (
			d   changes.DeadLetter
			id  int64
			op  string
			doc sql.NullString
			tok []byte
			at  int64
		)
		if err := rows.Scan(&id, &d.Consumer, &op, &d.Key, &doc, &d.Reason, &tok, &at); err != nil {
			return nil, fmt.Errorf("sqlite: read dead letters of %q: %w", consumer, err)
		}
		d.ID, d.Op, d.Token, d.At = strconv.FormatInt(id, 10), changes.Op(op), tok, fromMS(at)
		if doc.Valid {
			d.Doc = []byte(doc.String)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: read dead letters of %q: %w", consumer, err)
	}
	return out, nil
}

// DeadLetters returns the comment events the consumer has parked.
func (s *postStore) DeadLetters(ctx context.Context, consumer string) ([]changes.DeadLetter, error) {
	return s.db.DeadLetters(ctx, consumer)
}

// DeadLetters returns the post events the consumer has parked.
func (s *cascadeStore) DeadLetters(ctx context.Context, consumer string) ([]changes.DeadLetter, error) {
	return s.db.DeadLetters(ctx, consumer)
}

var (
	_ changes.DeadLetterStore = (*postStore)(nil)
	_ changes.DeadLetterStore = (*cascadeStore)(nil)
)

// parkedKey returns the key of the consumer's dead letter id, in tx.
func parkedKey(ctx context.Context, tx *sql.Tx, consumer, id string) (string, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return "", fmt.Errorf("dead letter %q: %w", id, changes.ErrNoDeadLetter)
	}
	var key string
	err = tx.QueryRowContext(ctx, `SELECT doc_id FROM dead_letters WHERE id = ? AND consumer = ?`, n, consumer).Scan(&key)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("dead letter %s of %q: %w", id, consumer, changes.ErrNoDeadLetter)
	}
	return key, err
}

// RetryDeadLetter applies the parked comment event id again, from the
// comment as the comments table holds it now (an update when it exists,
// which copies it if need be; a delete when it is gone), by the rules of
// post.ApplyComments, and removes the record, in one transaction. A comment
// that still cannot be read or applied keeps its record and returns why.
func (s *postStore) RetryDeadLetter(ctx context.Context, consumer, id string) error {
	err := s.db.write(ctx, func(tx *sql.Tx) error {
		key, err := parkedKey(ctx, tx, consumer, id)
		if err != nil {
			return err
		}
		ev := changes.Event[comment.Comment]{Op: changes.Delete, Key: key}
		c, err := scanComment(tx.QueryRowContext(ctx, `SELECT `+commentCols+` FROM comments WHERE id = ?`, key))
		switch {
		case err == nil:
			ev = changes.Event[comment.Comment]{Op: changes.Update, Key: key, Doc: c, Found: true}
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("comment %s is still unreadable: %w", key, err)
		}
		if err := s.db.applyComments(ctx, tx, []changes.Event[comment.Comment]{ev}); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM dead_letters WHERE id = ?`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: retry dead letter %s of %q: %w", id, consumer, err)
	}
	return nil
}

// RetryDeadLetter applies the parked post event id again: if that post does
// not exist (now), its comments are deleted by comment.DeleteChunked, a
// chunk per transaction; then the record is removed. A live post's
// comments stay, whatever the event was.
func (s *cascadeStore) RetryDeadLetter(ctx context.Context, consumer, id string) error {
	var key string
	err := s.db.write(ctx, func(tx *sql.Tx) error {
		var err error
		key, err = parkedKey(ctx, tx, consumer, id)
		return err
	})
	if err == nil {
		err = comment.CheckPostEvent(changes.Event[post.Post]{Op: changes.Delete, Key: key})
	}
	if err == nil {
		_, err = comment.DeleteChunked(ctx, key, s.db.deletesPerTx, 0, s.db.orphans(consumer, 0))
	}
	if err == nil {
		err = s.db.write(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `DELETE FROM dead_letters WHERE id = ? AND consumer = ?`, id, consumer)
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("sqlite: retry dead letter %s of %q: %w", id, consumer, err)
	}
	return nil
}

// DeadLetter parks a comment event the posts read model cannot apply, and
// moves the consumer's checkpoint past it, in one transaction under the
// fence.
func (s *postStore) DeadLetter(ctx context.Context, consumer string, ev changes.Event[comment.Comment], reason string, fence int64) error {
	var doc any
	if ev.Found {
		doc = toCommentDoc(ev.Doc)
	}
	return s.db.deadLetter(ctx, consumer, collComments, ev.Op, ev.Key, ev.Token, doc, reason, fence)
}

// DeadLetter parks a post event the cascade cannot apply, and moves the
// consumer's checkpoint past it, in one transaction under the fence.
func (s *cascadeStore) DeadLetter(ctx context.Context, consumer string, ev changes.Event[post.Post], reason string, fence int64) error {
	var doc any
	if ev.Found {
		doc = toPostDoc(ev.Doc)
	}
	return s.db.deadLetter(ctx, consumer, collPosts, ev.Op, ev.Key, ev.Token, doc, reason, fence)
}

// deadLetter records an event of collection in dead_letters and saves its
// token as the consumer's checkpoint. The document stored is the log's own
// entry for the event when it is still there (the raw text, decodable or
// not), else doc encoded. Parking the same event twice records it once.
func (db *DB) deadLetter(ctx context.Context, consumer, collection string, op changes.Op, key string, tok changes.Token, doc any, reason string, fence int64) error {
	if len(tok) == 0 {
		return fmt.Errorf("sqlite: park %s %s for %q: event has no token", op, key, consumer)
	}
	var body sql.NullString
	if doc != nil {
		b, err := json.Marshal(doc)
		if err != nil {
			return fmt.Errorf("sqlite: park %s %s for %q: encode: %w", op, key, consumer, err)
		}
		body = sql.NullString{String: string(b), Valid: true}
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		if err := checkFence(ctx, tx, consumer, fence); err != nil {
			return err
		}
		if seq, err := decodeToken(tok); err == nil {
			var raw sql.NullString
			err := tx.QueryRowContext(ctx, `SELECT doc FROM changelog WHERE seq = ? AND collection = ?`,
				seq, collection).Scan(&raw)
			switch {
			case err == nil:
				body = raw
			case !errors.Is(err, sql.ErrNoRows):
				return fmt.Errorf("read logged document: %w", err)
			}
		}
		_, err := tx.ExecContext(ctx, `
			INSERT INTO dead_letters (consumer, op, doc_id, doc, reason, token, at) VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (consumer, token) DO NOTHING`,
			consumer, string(op), key, body, reason, []byte(tok), ms(time.Now()))
		if err != nil {
			return fmt.Errorf("insert dead letter: %w", err)
		}
		return saveCheckpoint(ctx, tx, consumer, tok)
	})
	if err != nil {
		return fmt.Errorf("sqlite: park %s %s for %q: %w", op, key, consumer, err)
	}
	db.log.Warn("change parked as a dead letter", "consumer", consumer, "op", op, "key", key, "reason", reason)
	return nil
}
