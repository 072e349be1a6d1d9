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

// rebuildChunk is how many posts one rebuild transaction covers, bounding
// how long a rebuild holds the write lock at a time (the services keep
// writing in between).
const rebuildChunk = 500

// rebuildPlan is one read model's rebuild, run by DB.rebuild.
type rebuildPlan struct {
	// what names the read model in errors and logs.
	what string
	// chunk does the next chunk of the rebuild in tx, starting after the
	// key after ("" first), and returns the last key it finished and
	// whether the whole key space is done.
	chunk func(ctx context.Context, tx *sql.Tx, after string) (last string, done bool, err error)
}

// rebuild runs a resumable rebuild for consumer and then saves at as its
// checkpoint, every transaction under the fence.
//
// Progress is kept in the rebuilds table: the target (at) and the last key
// done. The consumer continues from at afterwards, so a chunk computed at
// any time after at converges once the changes after at are applied again
// (the projections are idempotent under replay).
//
// A rebuild that crashed is resumed by the consumer's next session, which
// asks RebuildTarget for the interrupted rebuild's at and, while the feed
// still holds that position, rebuilds towards it again: the chunks then
// continue where they stopped. Called with any other at (the feed lost the
// old target too), the rebuild starts over, as MongoDB's does: chunks done
// towards the old target could miss changes made between it and the new
// at, which the stream from the new at does not deliver again.
func (db *DB) rebuild(ctx context.Context, consumer string, at changes.Token, fence int64, plan rebuildPlan) error {
	target, err := decodeToken(at)
	if err != nil {
		return fmt.Errorf("sqlite: rebuild %s for %q: %w", plan.what, consumer, err)
	}
	after, resumed, err := db.startRebuild(ctx, consumer, target, fence)
	if err != nil {
		return fmt.Errorf("sqlite: rebuild %s for %q: %w", plan.what, consumer, err)
	}
	if resumed {
		db.log.Info("resuming a rebuild", "consumer", consumer, "readModel", plan.what, "after", after)
	}
	begin, chunks := time.Now(), 0
	for done := false; !done; {
		err := db.write(ctx, func(tx *sql.Tx) error {
			if err := checkFence(ctx, tx, consumer, fence); err != nil {
				return err
			}
			var err error
			if after, done, err = plan.chunk(ctx, tx, after); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `UPDATE rebuilds SET after = ? WHERE consumer = ?`, after, consumer)
			return err
		})
		if err != nil {
			return fmt.Errorf("sqlite: rebuild %s for %q, after %q: %w", plan.what, consumer, after, err)
		}
		chunks++
		if db.afterChunk != nil {
			if err := db.afterChunk(); err != nil {
				return fmt.Errorf("sqlite: rebuild %s for %q: %w", plan.what, consumer, err)
			}
		}
	}
	err = db.write(ctx, func(tx *sql.Tx) error {
		if err := checkFence(ctx, tx, consumer, fence); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM rebuilds WHERE consumer = ?`, consumer); err != nil {
			return err
		}
		return saveCheckpoint(ctx, tx, consumer, at)
	})
	if err != nil {
		return fmt.Errorf("sqlite: rebuild %s for %q: finish: %w", plan.what, consumer, err)
	}
	db.log.Info("read model rebuilt", "consumer", consumer, "readModel", plan.what, "chunks", chunks, "took", time.Since(begin), "at", string(at))
	return nil
}

// rebuildTarget returns the at of the consumer's unfinished rebuild, or nil.
func (db *DB) rebuildTarget(ctx context.Context, consumer string) (changes.Token, error) {
	var target string
	err := db.r.QueryRowContext(ctx, `SELECT target FROM rebuilds WHERE consumer = ?`, consumer).Scan(&target)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: read rebuild progress of %q: %w", consumer, err)
	}
	return changes.Token(target), nil
}

// startRebuild records a new rebuild or picks up an unfinished one towards
// the same target. It returns the key to continue after and whether it
// resumed.
func (db *DB) startRebuild(ctx context.Context, consumer string, target, fence int64) (after string, resumed bool, err error) {
	tok := string(encodeToken(target))
	err = db.write(ctx, func(tx *sql.Tx) error {
		if err := checkFence(ctx, tx, consumer, fence); err != nil {
			return err
		}
		var old string
		err := tx.QueryRowContext(ctx, `SELECT target, after FROM rebuilds WHERE consumer = ?`, consumer).Scan(&old, &after)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("read progress: %w", err)
		}
		if err == nil && old == tok {
			resumed = true
			return nil
		}
		if err == nil {
			db.log.Warn("discarding an unfinished rebuild towards another position", "consumer", consumer, "was", old, "now", tok)
		}
		after = ""
		_, err = tx.ExecContext(ctx, `
			INSERT INTO rebuilds (consumer, target, after, started_at) VALUES (?, ?, '', ?)
			ON CONFLICT (consumer) DO UPDATE SET target = excluded.target, after = '', started_at = excluded.started_at`,
			consumer, tok, ms(time.Now()))
		return err
	})
	return after, resumed, err
}

// ---- the posts read model ----

// Rebuild recomputes every post's copies of its comments (and so its
// embedded comments) and commentCount from the comments table, in chunks
// of rebuildChunk posts whose progress survives a crash, then saves at as
// the consumer's checkpoint. Only posts that differ are written, and each is
// logged on the posts feed like any change the projection makes.
func (s *postStore) Rebuild(ctx context.Context, consumer string, at changes.Token, fence int64) error {
	return s.db.rebuild(ctx, consumer, at, fence, rebuildPlan{
		what:  "posts",
		chunk: s.db.rebuildPostsChunk,
	})
}

// RebuildTarget returns the at of the consumer's interrupted rebuild, or nil.
func (s *postStore) RebuildTarget(ctx context.Context, consumer string) (changes.Token, error) {
	return s.db.rebuildTarget(ctx, consumer)
}

// RebuildPost recomputes one post's copies of its comments and its
// commentCount from the comments table, in one transaction, and logs the
// post if it changed; `blog verify --repair` mends drift with it (it is
// post.Repairer). It returns post.ErrNotFound for an unknown post. It needs
// no lease: like any write here it holds the write lock, and the consumer's
// later events apply on top of it idempotently.
func (s *postStore) RebuildPost(ctx context.Context, postID string) error {
	err := s.db.write(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM posts WHERE id = ?`, postID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return post.ErrNotFound
		}
		if err != nil {
			return err
		}
		touched, err := syncPosts(ctx, tx, postID, postID)
		if err != nil {
			return err
		}
		return s.db.logPosts(ctx, tx, touched)
	})
	if err != nil {
		return fmt.Errorf("sqlite: rebuild post %s: %w", postID, err)
	}
	return nil
}

var (
	_ post.Repairer                         = (*postStore)(nil)
	_ changes.Rebuilder                     = (*postStore)(nil)
	_ changes.DeadLetterer[comment.Comment] = (*postStore)(nil)
)

// rebuildPostsChunk rebuilds the next chunk of posts by id after after.
func (db *DB) rebuildPostsChunk(ctx context.Context, tx *sql.Tx, after string) (string, bool, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id FROM posts WHERE id > ? ORDER BY id LIMIT ?`, after, db.rebuildPosts)
	if err != nil {
		return after, false, fmt.Errorf("read posts: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return after, false, fmt.Errorf("read posts: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return after, false, fmt.Errorf("read posts: %w", err)
	}
	if len(ids) == 0 {
		return after, true, nil
	}
	last := ids[len(ids)-1]
	touched, err := syncPosts(ctx, tx, ids[0], last)
	if err != nil {
		return after, false, err
	}
	if err := db.logPosts(ctx, tx, touched); err != nil {
		return after, false, err
	}
	return last, len(ids) < db.rebuildPosts, nil
}

// readable is the condition, on a comments row c, that ListByPost can read
// it: SQLite keeps a value of the wrong type as it was given (a created_at
// written by hand as text, or as a fraction), and the rebuild leaves out
// what the listings skip (see readList), as the MongoDB adapter's rebuild
// does, so a post's commentCount and embedded comments agree with its
// listed comments.
const readable = `typeof(c.created_at) = 'integer' AND typeof(c.updated_at) IN ('integer', 'null')`

// The rebuild's statements over the posts with ids in [?1, ?2]: each walks
// a range of an index on post id, probing the other table by primary key.
const (
	// qSyncDeleteStale drops copies whose comment is gone (or unreadable).
	qSyncDeleteStale = `DELETE FROM post_comments
		WHERE post_id BETWEEN ?1 AND ?2 AND NOT EXISTS (
			SELECT 1 FROM comments c WHERE c.id = post_comments.comment_id AND c.post_id = post_comments.post_id
				AND ` + readable + `)
		RETURNING post_id`
	// qSyncUpdateChanged refreshes copies that differ from their comment.
	qSyncUpdateChanged = `UPDATE post_comments
		SET text = c.text, created_at = c.created_at, updated_at = c.updated_at
		FROM comments c
		WHERE c.id = post_comments.comment_id AND post_comments.post_id BETWEEN ?1 AND ?2 AND ` + readable + `
			AND (post_comments.text IS NOT c.text OR post_comments.created_at IS NOT c.created_at
				OR post_comments.updated_at IS NOT c.updated_at)
		RETURNING post_comments.post_id`
	// qSyncInsertMissing copies the comments of existing posts that have no
	// copy.
	qSyncInsertMissing = `INSERT INTO post_comments (comment_id, post_id, text, created_at, updated_at)
		SELECT c.id, c.post_id, c.text, c.created_at, c.updated_at FROM comments c
		WHERE c.post_id BETWEEN ?1 AND ?2 AND ` + readable + `
			AND EXISTS (SELECT 1 FROM posts p WHERE p.id = c.post_id)
			AND NOT EXISTS (SELECT 1 FROM post_comments pc WHERE pc.comment_id = c.id)
		ON CONFLICT (comment_id) DO NOTHING
		RETURNING post_id`
	// qSyncCounts sets commentCount to the number of copies where it differs.
	qSyncCounts = `UPDATE posts
		SET comment_count = (SELECT count(*) FROM post_comments pc WHERE pc.post_id = posts.id)
		WHERE id BETWEEN ?1 AND ?2
			AND comment_count IS NOT (SELECT count(*) FROM post_comments pc WHERE pc.post_id = posts.id)
		RETURNING id`
)

// syncPosts makes the read model of the posts with ids in [lo, hi] equal to
// what the comments table says, writing only what differs, and returns the
// posts it changed, in first-change order.
func syncPosts(ctx context.Context, tx *sql.Tx, lo, hi string) ([]string, error) {
	var touched []string
	seen := map[string]bool{}
	for _, q := range []string{qSyncDeleteStale, qSyncUpdateChanged, qSyncInsertMissing, qSyncCounts} {
		rows, err := tx.QueryContext(ctx, q, lo, hi)
		if err != nil {
			return nil, fmt.Errorf("rebuild posts %s..%s: %w", lo, hi, err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, fmt.Errorf("rebuild posts %s..%s: %w", lo, hi, err)
			}
			if !seen[id] {
				seen[id] = true
				touched = append(touched, id)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("rebuild posts %s..%s: %w", lo, hi, err)
		}
	}
	return touched, nil
}
