package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"blog/internal/changes"
	"blog/internal/comment"
	"blog/internal/page"
)

// commentStore is the comments service's store: the comments table, every
// write of which appends to the change log in its transaction.
type commentStore struct{ db *DB }

const commentCols = `id, post_id, text, created_at, updated_at`

// The comments service's hot queries, named so plan_test.go can check that
// each is an index seek.
const (
	// qCreateComment inserts only if the post exists (a primary-key probe).
	qCreateComment = `INSERT INTO comments (id, post_id, text, created_at, updated_at)
		SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM posts WHERE id = ?)`
	// qListComments and qListCommentsAfter seek the comments table's
	// primary key, (post_id, created_at, id): it is clustered by post.
	qListComments = `SELECT ` + commentCols + ` FROM comments WHERE post_id = ?
		ORDER BY created_at, id LIMIT ?`
	qListCommentsAfter = `SELECT ` + commentCols + ` FROM comments
		WHERE post_id = ? AND (created_at, id) > (?, ?)
		ORDER BY created_at, id LIMIT ?`
	// qDeleteCommentsChunk deletes up to a chunk of a post's comments.
	qDeleteCommentsChunk = `DELETE FROM comments WHERE id IN (
		SELECT id FROM comments WHERE post_id = ?1 LIMIT ?2) RETURNING id`
	// qDeleteOrphansChunk deletes up to a chunk of a post's comments, only
	// if the post does not exist: the cascade's deletes.
	qDeleteOrphansChunk = `DELETE FROM comments WHERE id IN (
		SELECT id FROM comments WHERE post_id = ?1 LIMIT ?2)
	AND NOT EXISTS (SELECT 1 FROM posts WHERE id = ?1)
	RETURNING id`
)

// deleteChunk bounds how many comments one deleteByPost transaction removes,
// so deleting a post with a million comments neither holds the write lock
// for long nor loads every id at once.
const deleteChunk = 1000

type scanner interface{ Scan(dest ...any) error }

func scanComment(sc scanner) (comment.Comment, error) {
	var (
		c       comment.Comment
		created int64
		updated sql.NullInt64
	)
	if err := sc.Scan(&c.ID, &c.PostID, &c.Text, &created, &updated); err != nil {
		return comment.Comment{}, err
	}
	c.CreatedAt, c.UpdatedAt = fromMS(created), fromOptMS(updated)
	return c, nil
}

// Create stores c after checking, in the same transaction, that its post
// exists: the write lock is held throughout, so no process can delete the
// post in between and leave an orphan on the feed.
//
// Concurrent creates share a transaction (group commit, see writeGrouped):
// each is decided on its own, under its own savepoint.
func (s *commentStore) Create(ctx context.Context, c comment.Comment) error {
	err := s.db.writeGrouped(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, qCreateComment,
			c.ID, c.PostID, c.Text, ms(c.CreatedAt), optMS(c.UpdatedAt), c.PostID)
		if isUnique(err) {
			return comment.ErrDuplicate
		}
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return comment.ErrPostNotFound
		}
		return appendChange(ctx, tx, collComments, changes.Insert, c.ID, toCommentDoc(c))
	})
	if err != nil {
		return fmt.Errorf("sqlite: create comment: %w", err)
	}
	return nil
}

// Get reads one comment.
func (s *commentStore) Get(ctx context.Context, id string) (comment.Comment, error) {
	c, err := scanComment(s.db.r.QueryRowContext(ctx,
		`SELECT `+commentCols+` FROM comments WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = comment.ErrNotFound
	}
	if err != nil {
		return comment.Comment{}, fmt.Errorf("sqlite: get comment: %w", err)
	}
	return c, nil
}

// ListByPost reads a page of a post's comments, oldest first, seeking the
// primary key (post_id, created_at, id) to the cursor. A row it cannot read is
// skipped and logged, and the page topped up (see readList), so one
// comment written by hand with a badly typed value cannot make its post's
// listing fail.
func (s *commentStore) ListByPost(ctx context.Context, postID string, q page.Query) ([]comment.Comment, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = page.DefaultLimit
	}
	var after *sortKey
	if q.After != nil {
		after = &sortKey{at: ms(q.After.At), id: q.After.ID}
	}
	out, err := readList(s.db.log, listing[comment.Comment]{
		what: "comments of post " + postID,
		query: func(after *sortKey, limit int) (*sql.Rows, error) {
			if after == nil {
				return s.db.r.QueryContext(ctx, qListComments, postID, limit)
			}
			return s.db.r.QueryContext(ctx, qListCommentsAfter, postID, after.at, after.id, limit)
		},
		scan:  scanComment,
		key:   func(c comment.Comment) sortKey { return sortKey{at: ms(c.CreatedAt), id: c.ID} },
		atCol: 3, idCol: 0, // in commentCols
	}, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list comments: %w", err)
	}
	return out, nil
}

// Update sets a comment's text and logs the comment as it now is.
func (s *commentStore) Update(ctx context.Context, id, text string, at time.Time) (comment.Comment, error) {
	var c comment.Comment
	err := s.db.write(ctx, func(tx *sql.Tx) error {
		var err error
		c, err = scanComment(tx.QueryRowContext(ctx, `
			UPDATE comments SET text = ?, updated_at = ? WHERE id = ?
			RETURNING `+commentCols, text, ms(at), id))
		if errors.Is(err, sql.ErrNoRows) {
			return comment.ErrNotFound
		}
		if err != nil {
			return err
		}
		return appendChange(ctx, tx, collComments, changes.Update, id, toCommentDoc(c))
	})
	if err != nil {
		return comment.Comment{}, fmt.Errorf("sqlite: update comment: %w", err)
	}
	return c, nil
}

// Delete removes a comment and logs its deletion.
func (s *commentStore) Delete(ctx context.Context, id string) (comment.Comment, error) {
	var c comment.Comment
	err := s.db.write(ctx, func(tx *sql.Tx) error {
		var err error
		c, err = scanComment(tx.QueryRowContext(ctx,
			`DELETE FROM comments WHERE id = ? RETURNING `+commentCols, id))
		if errors.Is(err, sql.ErrNoRows) {
			return comment.ErrNotFound
		}
		if err != nil {
			return err
		}
		return appendChange(ctx, tx, collComments, changes.Delete, id, nil)
	})
	if err != nil {
		return comment.Comment{}, fmt.Errorf("sqlite: delete comment: %w", err)
	}
	return c, nil
}

// DeleteByPost removes a post's comments in transactions of at most
// deletesPerTx comments each, by comment.DeleteChunked, which the cascade
// shares. If it fails midway, calling it again finishes the job.
func (s *commentStore) DeleteByPost(ctx context.Context, postID string) (int, error) {
	n, err := comment.DeleteChunked(ctx, postID, s.db.deletesPerTx, 0, func(ctx context.Context, postID string, limit int) (int, bool, error) {
		n := 0
		err := s.db.write(ctx, func(tx *sql.Tx) error {
			var err error
			n, err = deleteCommentsChunk(ctx, tx, postID, limit, false)
			return err
		})
		return n, n == limit, err
	})
	if err != nil {
		return n, fmt.Errorf("sqlite: delete comments of post: %w", err)
	}
	return n, nil
}

// deleteCommentsChunk deletes up to limit comments of post postID in tx (if
// orphansOnly, only if that post does not exist), logging each deletion,
// and returns how many it deleted.
func deleteCommentsChunk(ctx context.Context, tx *sql.Tx, postID string, limit int, orphansOnly bool) (int, error) {
	q := qDeleteCommentsChunk
	if orphansOnly {
		q = qDeleteOrphansChunk
	}
	rows, err := tx.QueryContext(ctx, q, postID, limit)
	if err != nil {
		return 0, err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for _, id := range ids {
		if err := appendChange(ctx, tx, collComments, changes.Delete, id, nil); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}

// Ping checks that the file is readable.
func (s *commentStore) Ping(ctx context.Context) error {
	if err := s.db.ping(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}
