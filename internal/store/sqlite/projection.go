package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"blog/internal/changes"
	"blog/internal/comment"
)

// Checkpoint returns the consumer's saved position, or nil before its first
// Apply.
func (s *postStore) Checkpoint(ctx context.Context, consumer string) (changes.Token, error) {
	return s.db.checkpoint(ctx, consumer)
}

// checkpoint reads a consumer's saved position (nil for none); both sinks
// keep theirs in the checkpoints table.
func (db *DB) checkpoint(ctx context.Context, consumer string) (changes.Token, error) {
	var tok []byte
	err := db.r.QueryRowContext(ctx,
		`SELECT token FROM checkpoints WHERE consumer = ?`, consumer).Scan(&tok)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: read checkpoint %q: %w", consumer, err)
	}
	return tok, nil
}

// saveCheckpoint records a consumer's position in tx, the transaction of
// the changes it covers.
func saveCheckpoint(ctx context.Context, tx *sql.Tx, consumer string, tok changes.Token) error {
	_, err := tx.ExecContext(ctx, `
		INSERT INTO checkpoints (consumer, token, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (consumer) DO UPDATE SET token = excluded.token, updated_at = excluded.updated_at`,
		consumer, []byte(tok), ms(time.Now()))
	if err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	return nil
}

// checkBatch refuses, before anything is written, a batch that neither
// sink may apply: one with no token (saving no position would restart the
// consumer at "now" and lose everything in between), or one with an
// undecodable event (see undecodable).
func checkBatch[T any](b changes.Batch[T]) error {
	if len(b.Token) == 0 {
		return errors.New("batch has no token")
	}
	return undecodable(b.Events)
}

// undecodable returns an error naming the first event that carries no
// usable document because it could not be decoded. A batch holding one is
// refused whole: applying the rest and checkpointing past it would lose it
// silently. The consumer never sends one (it isolates and parks such events
// with DeadLetter); this is defence in depth.
func undecodable[T any](evs []changes.Event[T]) error {
	for _, e := range evs {
		if e.Err != nil {
			return fmt.Errorf("%s %s cannot be decoded: %w", e.Op, e.Key, e.Err)
		}
	}
	return nil
}

// Apply folds a batch of comment events into the posts' read model and saves
// the consumer's checkpoint, all in one transaction: a crash leaves either
// the whole batch applied and checkpointed or none of it.
//
// The transaction first checks the fence (see checkFence), so a replica that
// lost its lease writes nothing. A batch with no token, or with an
// undecodable event (Err set), is refused whole (see checkBatch).
//
// Each event is idempotent on its own: a copy is inserted only if absent
// (and only then counted), updated only if different, and deleted (and
// uncounted) only if present. So replaying a batch, or any suffix of the log
// from a checkpoint, gives the same read model. Each post the batch changed
// is logged once, as it is after the batch, on the posts feed.
func (s *postStore) Apply(ctx context.Context, consumer string, b changes.Batch[comment.Comment]) error {
	if err := checkBatch(b); err != nil {
		return fmt.Errorf("sqlite: apply %d comment events for %q: %w", len(b.Events), consumer, err)
	}
	err := s.db.write(ctx, func(tx *sql.Tx) error {
		if err := checkFence(ctx, tx, consumer, b.Fence); err != nil {
			return err
		}
		if err := s.db.applyComments(ctx, tx, b.Events); err != nil {
			return err
		}
		return saveCheckpoint(ctx, tx, consumer, b.Token)
	})
	if err != nil {
		return fmt.Errorf("sqlite: apply %d comment events for %q: %w", len(b.Events), consumer, err)
	}
	return nil
}

// applyComments applies comment events in tx and logs each post they
// changed, once, on the posts feed. It refuses events that could not be
// decoded: with no document to apply, skipping one here would lose it.
func (db *DB) applyComments(ctx context.Context, tx *sql.Tx, evs []changes.Event[comment.Comment]) error {
	if err := undecodable(evs); err != nil {
		return err
	}
	a := applier{ctx: ctx, tx: tx}
	for _, e := range evs {
		if err := a.apply(e); err != nil {
			return fmt.Errorf("%s comment %s: %w", e.Op, e.Key, err)
		}
	}
	return db.logPosts(ctx, tx, a.touched)
}

// logPosts appends each post the batch changed to the posts feed, as an
// update without its document: the feed looks the post up when it is read
// (MongoDB's updateLookup), and only for consumers that want it. So the
// apply neither reads nor encodes the post while it holds the write lock,
// nor writes the post with its embedded comments (kilobytes) to the log for
// every comment.
func (db *DB) logPosts(ctx context.Context, tx *sql.Tx, ids []string) error {
	for _, id := range ids {
		if err := appendChange(ctx, tx, collPosts, changes.Update, id, nil); err != nil {
			return err
		}
	}
	return nil
}

// The projection's statements, named so plan_test.go can check that each
// is an index seek: an event costs the same at a million comments as at ten.
const (
	qInsertCopy = `INSERT INTO post_comments (comment_id, post_id, text, created_at, updated_at)
		SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM posts WHERE id = ?)
		ON CONFLICT (comment_id) DO NOTHING`
	qUpdateCopy = `UPDATE post_comments SET text = ?, updated_at = ?
		WHERE comment_id = ? AND (text IS NOT ? OR updated_at IS NOT ?)
		RETURNING post_id`
	qDeleteCopy = `DELETE FROM post_comments WHERE comment_id = ? RETURNING post_id`
	qCountCopy  = `UPDATE posts SET comment_count = comment_count + ? WHERE id = ?`
)

// applier applies one batch's events within its transaction and remembers
// which posts changed, in first-change order.
type applier struct {
	ctx     context.Context
	tx      *sql.Tx
	touched []string
	seen    map[string]bool
}

func (a *applier) touch(postID string) {
	if a.seen == nil {
		a.seen = map[string]bool{}
	}
	if !a.seen[postID] {
		a.seen[postID] = true
		a.touched = append(a.touched, postID)
	}
}

func (a *applier) apply(e changes.Event[comment.Comment]) error {
	switch e.Op {
	case changes.Insert:
		if !e.Found {
			return nil // nothing to copy; its delete event follows
		}
		return a.insert(e.Key, e.Doc)
	case changes.Update:
		if !e.Found {
			return nil // deleted since; its delete event follows
		}
		return a.update(e.Key, e.Doc)
	case changes.Delete:
		return a.delete(e.Key)
	}
	return fmt.Errorf("unknown operation %q", e.Op)
}

// insert copies a comment into its post's read model, unless the copy is
// already there or the post is gone, and counts it when it copied it.
func (a *applier) insert(id string, c comment.Comment) error {
	res, err := a.tx.ExecContext(a.ctx, qInsertCopy,
		id, c.PostID, c.Text, ms(c.CreatedAt), optMS(c.UpdatedAt), c.PostID)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil || n == 0 {
		return err
	}
	if _, err := a.tx.ExecContext(a.ctx, qCountCopy, 1, c.PostID); err != nil {
		return err
	}
	a.touch(c.PostID)
	return nil
}

// update refreshes a copy's text, or inserts the copy when it is missing
// (its insert came before the consumer's first checkpoint), so an edit
// always shows, embedded now or back-filled later. Inserting cannot bring
// back a comment deleted earlier: in commit order a comment's delete comes
// after its updates and undoes such a copy when it is applied in turn.
func (a *applier) update(id string, c comment.Comment) error {
	var postID string
	err := a.tx.QueryRowContext(a.ctx, qUpdateCopy,
		c.Text, optMS(c.UpdatedAt), id, c.Text, optMS(c.UpdatedAt)).Scan(&postID)
	if errors.Is(err, sql.ErrNoRows) {
		// Unchanged (a replay) or absent: insert is a no-op for the first.
		return a.insert(id, c)
	}
	if err != nil {
		return err
	}
	a.touch(postID)
	return nil
}

// delete removes a copy and uncounts it; the post's next older copy is
// embedded in its place by the next read, with no work here.
func (a *applier) delete(id string) error {
	var postID string
	err := a.tx.QueryRowContext(a.ctx, qDeleteCopy, id).Scan(&postID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // never copied, or already deleted
	}
	if err != nil {
		return err
	}
	if _, err := a.tx.ExecContext(a.ctx, qCountCopy, -1, postID); err != nil {
		return err
	}
	a.touch(postID)
	return nil
}
