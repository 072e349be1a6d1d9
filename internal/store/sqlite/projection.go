package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"blog/internal/changes"
	"blog/internal/comment"
	"blog/internal/post"
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

// Apply folds a batch of comment events into the posts' read model and saves
// the consumer's checkpoint, all in one transaction: a crash leaves either
// the whole batch applied and checkpointed or none of it.
//
// The transaction first checks the fence (see checkFence), so a replica that
// lost its lease writes nothing. A batch changes.Batch.Validate refuses is
// refused whole, before anything is written.
//
// The rules are post.ApplyComments'; this store gives them the read model
// as the post_comments table of copies and the posts' comment_count, and
// computes the embedded window from the copies when a post is read. Each
// post the batch changed is logged once, as it is after the batch, on the
// posts feed.
func (s *postStore) Apply(ctx context.Context, consumer string, b changes.Batch[comment.Comment]) error {
	if err := b.Validate(); err != nil {
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

// applyComments applies comment events in tx by the rules of
// post.ApplyComments and logs each post they changed, once, on the posts
// feed.
func (db *DB) applyComments(ctx context.Context, tx *sql.Tx, evs []changes.Event[comment.Comment]) error {
	touched, err := post.ApplyComments(ctx, readModel{tx: tx}, evs, db.embedLimit)
	if err != nil {
		return err
	}
	return db.logPosts(ctx, tx, touched)
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

// The read model's statements, named so plan_test.go can check that each
// is an index seek: an event costs the same at a million comments as at ten.
const (
	qInsertCopy = `INSERT INTO post_comments (comment_id, post_id, text, created_at, updated_at)
		SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM posts WHERE id = ?)
		ON CONFLICT (comment_id) DO NOTHING`
	qUpdateCopy = `UPDATE post_comments SET text = ?, updated_at = ?
		WHERE comment_id = ? AND (text IS NOT ? OR updated_at IS NOT ?)
		RETURNING post_id`
	qCopyExists = `SELECT 1 FROM post_comments WHERE comment_id = ?`
	qDeleteCopy = `DELETE FROM post_comments WHERE comment_id = ? RETURNING post_id, created_at`
	qPostCount  = `SELECT comment_count FROM posts WHERE id = ?`
	qCountCopy  = `UPDATE posts SET comment_count = ? WHERE id = ?`
)

// readModel is post.ReadModel over one write transaction: copies in
// post_comments, counts in posts. It keeps no window (Windowed false): a
// post's embedded comments are its latest copies, read with the post.
type readModel struct{ tx *sql.Tx }

var _ post.ReadModel = readModel{}

func (r readModel) LoadPost(ctx context.Context, id string) (post.PostState, bool, error) {
	var n int
	err := r.tx.QueryRowContext(ctx, qPostCount, id).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return post.PostState{}, false, nil
	}
	if err != nil {
		return post.PostState{}, false, err
	}
	return post.PostState{Count: n}, true, nil
}

func (r readModel) InsertCopy(ctx context.Context, c comment.Comment) (bool, error) {
	res, err := r.tx.ExecContext(ctx, qInsertCopy,
		c.ID, c.PostID, c.Text, ms(c.CreatedAt), optMS(c.UpdatedAt), c.PostID)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

func (r readModel) UpdateCopy(ctx context.Context, c comment.Comment) (found, changed bool, err error) {
	var postID string
	err = r.tx.QueryRowContext(ctx, qUpdateCopy,
		c.Text, optMS(c.UpdatedAt), c.ID, c.Text, optMS(c.UpdatedAt)).Scan(&postID)
	if err == nil {
		return true, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return false, false, err
	}
	// Unchanged (a replay) or absent.
	var one int
	err = r.tx.QueryRowContext(ctx, qCopyExists, c.ID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, false, nil
	}
	return err == nil, false, err
}

func (r readModel) DeleteCopy(ctx context.Context, id string) (comment.Comment, bool, error) {
	c := comment.Comment{ID: id}
	var at int64
	err := r.tx.QueryRowContext(ctx, qDeleteCopy, id).Scan(&c.PostID, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return c, false, nil
	}
	if err != nil {
		return c, false, err
	}
	c.CreatedAt = fromMS(at)
	return c, true, nil
}

// Older is never called: this store keeps no window (the next older copy
// shows on the next read with no work here).
func (r readModel) Older(context.Context, string, post.Comment, int) ([]post.Comment, error) {
	return nil, errors.New("sqlite: the read model keeps no window to back-fill")
}

func (r readModel) SavePost(ctx context.Context, id string, st post.PostState) error {
	_, err := r.tx.ExecContext(ctx, qCountCopy, st.Count, id)
	return err
}
