package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"blog/internal/changes"
	"blog/internal/comment"
	"blog/internal/post"
)

// DeadLetter is an event a consumer could not apply and parked, as an
// operator sees it.
type DeadLetter struct {
	ID       int64
	Consumer string
	Op       changes.Op
	// DocID is the changed document's _id (the event's Key).
	DocID string
	// Doc is the change's document as the change log holds it (so a
	// malformed one shows as it was written), or nil when it had none.
	Doc    json.RawMessage
	Reason string
	// Token is the event's position in its feed.
	Token changes.Token
	// At is when it was parked.
	At time.Time
}

// DeadLetters returns the events the named consumer has parked, oldest
// first.
func (db *DB) DeadLetters(ctx context.Context, consumer string) ([]DeadLetter, error) {
	rows, err := db.r.QueryContext(ctx, `
		SELECT id, consumer, op, doc_id, doc, reason, token, at FROM dead_letters
		WHERE consumer = ? ORDER BY id`, consumer)
	if err != nil {
		return nil, fmt.Errorf("sqlite: read dead letters of %q: %w", consumer, err)
	}
	defer rows.Close()
	var out []DeadLetter
	for rows.Next() {
		var (
			d   DeadLetter
			op  string
			doc sql.NullString
			tok []byte
			at  int64
		)
		if err := rows.Scan(&d.ID, &d.Consumer, &op, &d.DocID, &doc, &d.Reason, &tok, &at); err != nil {
			return nil, fmt.Errorf("sqlite: read dead letters of %q: %w", consumer, err)
		}
		d.Op, d.Token, d.At = changes.Op(op), tok, fromMS(at)
		if doc.Valid {
			d.Doc = json.RawMessage(doc.String)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: read dead letters of %q: %w", consumer, err)
	}
	return out, nil
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

// InjectMalformedComment writes a malformed comment straight into the
// database, as a careless script or a future version might: a comments row
// and its insert on the change log, whose document has postId as the number
// 123 instead of a post's id string. The comments feed reports it as an
// event with Err set; the posts consumer retries it, then parks it as a dead
// letter and moves on. The row itself belongs to no post (its post_id is
// "123"), so no listing shows it. postID is accepted for symmetry with other
// adapters' injections (it names the post the comment was meant for) and is
// not used. It returns the comment's id, the event's Key.
//
// It exists for fault-injection tests; the services never call it.
func (db *DB) InjectMalformedComment(ctx context.Context, postID string) (string, error) {
	_ = postID
	var b [12]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	now := ms(time.Now())
	doc := fmt.Sprintf(`{"_id":%q,"postId":123,"text":"malformed","createdAt":%d}`, id, now)
	err := db.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO comments (id, post_id, text, created_at) VALUES (?, 123, 'malformed', ?)`, id, now); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx,
			`INSERT INTO changelog (collection, op, doc_id, doc, at) VALUES (?, 'insert', ?, ?, ?)`,
			collComments, id, doc, now)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("sqlite: inject malformed comment: %w", err)
	}
	return id, nil
}

// InjectMalformedCommentOnPost is InjectMalformedComment's variant that
// does belong to post postID: a comments row of that post, and its insert
// on the change log, whose createdAt is now plus half a millisecond, a
// fraction (as a script computing it in floating point might write it),
// which SQLite keeps as a REAL in the INTEGER column. So, unlike
// InjectMalformedComment's, it sorts among the post's comments created
// around now, and every listing of them reads it (and must skip it rather
// than fail); its change event arrives with Err set; rebuilds leave it out;
// and the post's deletion deletes it with the rest. It returns the
// comment's id.
//
// It exists for fault-injection tests; the services never call it.
func (db *DB) InjectMalformedCommentOnPost(ctx context.Context, postID string) (string, error) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	created := float64(ms(time.Now())) + 0.5
	doc := fmt.Sprintf(`{"_id":%q,"postId":%q,"text":"malformed","createdAt":%.1f}`, id, postID, created)
	err := db.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO comments (id, post_id, text, created_at) VALUES (?, ?, 'malformed', ?)`, id, postID, created); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx,
			`INSERT INTO changelog (collection, op, doc_id, doc, at) VALUES (?, 'insert', ?, ?, ?)`,
			collComments, id, doc, ms(time.Now()))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("sqlite: inject malformed comment: %w", err)
	}
	return id, nil
}
