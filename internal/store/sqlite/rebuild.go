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
	// replay re-applies the source's logged changes in (from, to], under
	// fence, after a rebuild that resumed the chunks of an earlier attempt.
	replay func(ctx context.Context, consumer string, fence int64, from, to int64) error
}

// rebuild runs a resumable rebuild for consumer and then saves at as its
// checkpoint, every transaction under the fence.
//
// Progress is kept in the rebuilds table: the last key done, and a target,
// the log position every chunk done so far was computed after. A fresh
// rebuild's target is at. The consumer continues from at afterwards, so a
// chunk computed at any time after at converges once the changes after at are
// applied again (the projections are idempotent under replay).
//
// A rebuild that crashed is resumed by the consumer's next session, which
// asks RebuildTarget for the interrupted rebuild's at and, while the feed
// still holds that position, rebuilds towards it again: the chunks then
// continue where they stopped. If it is called with a newer at instead, the
// earlier chunks were computed after their target, not after the new at, so
// the changes in between would never reach them: after finishing the chunks,
// the rebuild replays the log from the old target to at. If that stretch of
// the log has been pruned meanwhile (which is why the consumer moved on to a
// newer at), the earlier progress is discarded and the rebuild starts over.
func (db *DB) rebuild(ctx context.Context, consumer string, at changes.Token, fence int64, plan rebuildPlan) error {
	target, err := decodeToken(at)
	if err != nil {
		return fmt.Errorf("sqlite: rebuild %s for %q: %w", plan.what, consumer, err)
	}
	after, replayFrom, err := db.startRebuild(ctx, consumer, target, fence)
	if err != nil {
		return fmt.Errorf("sqlite: rebuild %s for %q: %w", plan.what, consumer, err)
	}
	if replayFrom >= 0 {
		db.log.Info("resuming a rebuild", "consumer", consumer, "readModel", plan.what, "after", after, "replayFrom", replayFrom)
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
	if replayFrom >= 0 && replayFrom < target {
		if err := plan.replay(ctx, consumer, fence, replayFrom, target); err != nil {
			return fmt.Errorf("sqlite: rebuild %s for %q: replay %d..%d: %w", plan.what, consumer, replayFrom, target, err)
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

// startRebuild records a new rebuild or picks up an unfinished one. It
// returns the key to continue after, and the log position to replay from
// once the chunks are done (-1: no replay).
func (db *DB) startRebuild(ctx context.Context, consumer string, target, fence int64) (after string, replayFrom int64, err error) {
	replayFrom = -1
	err = db.write(ctx, func(tx *sql.Tx) error {
		if err := checkFence(ctx, tx, consumer, fence); err != nil {
			return err
		}
		var old string
		err := tx.QueryRowContext(ctx, `SELECT target, after FROM rebuilds WHERE consumer = ?`, consumer).Scan(&old, &after)
		if errors.Is(err, sql.ErrNoRows) {
			after = ""
			_, err = tx.ExecContext(ctx, `INSERT INTO rebuilds (consumer, target, after, started_at) VALUES (?, ?, ?, ?)`,
				consumer, string(encodeToken(target)), "", ms(time.Now()))
			return err
		}
		if err != nil {
			return fmt.Errorf("read progress: %w", err)
		}
		prev, err := decodeToken(changes.Token(old))
		if err == nil && prev < target {
			pruned, perr := prunedThrough(ctx, tx)
			if perr != nil {
				return perr
			}
			head, herr := logHead(ctx, tx)
			if herr != nil {
				return herr
			}
			err = checkRetained(prev, pruned, head)
		}
		if err != nil {
			// The changes since the earlier attempt's target are gone, or
			// its progress is unreadable: start over.
			db.log.Warn("discarding an unfinished rebuild", "consumer", consumer, "reason", err)
			after = ""
			_, err = tx.ExecContext(ctx, `UPDATE rebuilds SET target = ?, after = '', started_at = ? WHERE consumer = ?`,
				string(encodeToken(target)), ms(time.Now()), consumer)
			return err
		}
		if prev < target {
			replayFrom = prev
			return nil
		}
		// An earlier attempt started at or after target: its chunks need
		// nothing the consumer will not replay from target anyway. Chunks
		// done from now on are computed after target, which becomes the
		// earliest start of any.
		_, err = tx.ExecContext(ctx, `UPDATE rebuilds SET target = ? WHERE consumer = ?`,
			string(encodeToken(target)), consumer)
		return err
	})
	return after, replayFrom, err
}

// ---- the posts read model ----

// Rebuild recomputes every post's copies of its comments (and so its
// embedded comments) and commentCount from the comments table, in chunks
// of rebuildChunk posts whose progress survives a crash, then saves at as
// the consumer's checkpoint. Only posts that differ are written, and each is
// logged on the posts feed like any change the projection makes.
func (s *postStore) Rebuild(ctx context.Context, consumer string, at changes.Token, fence int64) error {
	return s.db.rebuild(ctx, consumer, at, fence, rebuildPlan{
		what:   "posts",
		chunk:  s.db.rebuildPostsChunk,
		replay: s.db.replayComments,
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

// replayComments applies the comment changes logged in (from, to] to the
// posts read model again, a batch per transaction. An entry that does not
// decode is skipped (it was, or will be, the live consumer's dead letter;
// the comments table the rebuild reads is what counts).
func (db *DB) replayComments(ctx context.Context, consumer string, fence int64, from, to int64) error {
	f := &feed[comment.Comment]{db: db, collection: collComments, decode: decodeComment}
	for pos := from; pos < to; {
		evs, next, err := f.readRange(ctx, pos, to)
		if err != nil {
			return err
		}
		if next <= pos {
			return fmt.Errorf("change log ends at %d, before %d", next, to)
		}
		good := evs[:0]
		for _, e := range evs {
			if e.Err != nil {
				db.log.Warn("rebuild replay skips an undecodable change", "consumer", consumer, "key", e.Key, "err", e.Err)
				continue
			}
			good = append(good, e)
		}
		err = db.write(ctx, func(tx *sql.Tx) error {
			if err := checkFence(ctx, tx, consumer, fence); err != nil {
				return err
			}
			return db.applyComments(ctx, tx, good)
		})
		if err != nil {
			return err
		}
		pos = next
	}
	return nil
}
