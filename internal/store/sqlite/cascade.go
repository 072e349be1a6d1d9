package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"blog/internal/changes"
	"blog/internal/post"
)

// PostCascade returns the comments service's sink of the posts feed: on a
// post's delete event it deletes the post's comments, so that deleting a
// post is event-driven rather than a call between the services. Each comment
// it deletes is logged on the comments feed like any deletion (the posts
// read model sees them as deletes of copies already gone with their post: no-ops).
//
// It is also a changes.Rebuilder (after lost history it deletes every
// comment whose post no longer exists) and a changes.DeadLetterer, and like
// the posts read model it refuses a batch under a stale fence.
func (db *DB) PostCascade() changes.Sink[post.Post] { return &cascadeStore{db: db} }

type cascadeStore struct{ db *DB }

var (
	_ changes.Rebuilder               = (*cascadeStore)(nil)
	_ changes.DeadLetterer[post.Post] = (*cascadeStore)(nil)
)

// qNextCommentedPost seeks the next post id, after ?, that has comments.
const qNextCommentedPost = `SELECT post_id FROM comments WHERE post_id > ? ORDER BY post_id LIMIT 1`

// Checkpoint returns the consumer's saved position, or nil before its first
// Apply.
func (s *cascadeStore) Checkpoint(ctx context.Context, consumer string) (changes.Token, error) {
	return s.db.checkpoint(ctx, consumer)
}

// Apply deletes the comments of every post the batch deletes, in
// transactions of at most a chunk of comments each (a post may have a
// million; see DB.deleteByPost, which DeleteByPost shares), deleting only
// while the post does not exist; then it saves the checkpoint. A crash in
// between leaves the checkpoint before the batch, and the replay finishes
// the job: deleting the comments of a post that does not exist is
// idempotent. Every transaction checks the fence. Inserts and updates of
// posts need nothing.
func (s *cascadeStore) Apply(ctx context.Context, consumer string, b changes.Batch[post.Post]) error {
	if err := b.Validate(); err != nil {
		return fmt.Errorf("sqlite: apply %d post events for %q: %w", len(b.Events), consumer, err)
	}
	for _, e := range b.Events {
		if e.Op != changes.Delete {
			continue
		}
		if _, err := s.db.deleteOrphans(ctx, consumer, b.Fence, e.Key); err != nil {
			return fmt.Errorf("sqlite: apply %d post events for %q: %w", len(b.Events), consumer, err)
		}
	}
	err := s.db.write(ctx, func(tx *sql.Tx) error {
		if err := checkFence(ctx, tx, consumer, b.Fence); err != nil {
			return err
		}
		return saveCheckpoint(ctx, tx, consumer, b.Token)
	})
	if err != nil {
		return fmt.Errorf("sqlite: apply %d post events for %q: %w", len(b.Events), consumer, err)
	}
	return nil
}

// deleteOrphans deletes the comments of a post that does not exist, a chunk
// per transaction under the consumer's fence, and returns how many it
// deleted.
func (db *DB) deleteOrphans(ctx context.Context, consumer string, fence int64, postID string) (int, error) {
	return db.deleteByPost(ctx, postID, true, func(tx *sql.Tx) error {
		return checkFence(ctx, tx, consumer, fence)
	})
}

// Rebuild deletes every comment whose post no longer exists (the deletes
// the lost history held, and any older leftovers), sweeping the comments'
// post ids in order in resumable chunks, then saves at as the checkpoint.
func (s *cascadeStore) Rebuild(ctx context.Context, consumer string, at changes.Token, fence int64) error {
	return s.db.rebuild(ctx, consumer, at, fence, rebuildPlan{
		what:   "comments of deleted posts",
		chunk:  s.db.sweepOrphansChunk,
		replay: s.db.replayPostDeletes,
	})
}

// RebuildTarget returns the at of the consumer's interrupted rebuild, or nil.
func (s *cascadeStore) RebuildTarget(ctx context.Context, consumer string) (changes.Token, error) {
	return s.db.rebuildTarget(ctx, consumer)
}

// sweepOrphansChunk visits the post ids that have comments after after, up
// to rebuildPosts of them, deleting the comments of those whose post does
// not exist, at most deletesPerTx comments in all. A post whose comments do
// not all fit is visited again by the next chunk.
func (db *DB) sweepOrphansChunk(ctx context.Context, tx *sql.Tx, after string) (string, bool, error) {
	budget := db.deletesPerTx
	for range db.rebuildPosts {
		var postID string
		err := tx.QueryRowContext(ctx, qNextCommentedPost, after).Scan(&postID)
		if errors.Is(err, sql.ErrNoRows) {
			return after, true, nil
		}
		if err != nil {
			return after, false, fmt.Errorf("seek comments after post %q: %w", after, err)
		}
		n, err := deleteCommentsChunk(ctx, tx, postID, budget, true)
		if err != nil {
			return after, false, fmt.Errorf("delete comments of post %s: %w", postID, err)
		}
		if budget -= n; budget == 0 {
			return after, false, nil
		}
		after = postID
	}
	return after, false, nil
}

// replayPostDeletes deletes again the comments of the posts whose deletes
// are logged in (from, to].
func (db *DB) replayPostDeletes(ctx context.Context, consumer string, fence int64, from, to int64) error {
	f := &feed[post.Post]{db: db, collection: collPosts, decode: decodePost}
	for pos := from; pos < to; {
		evs, next, err := f.readRange(ctx, pos, to)
		if err != nil {
			return err
		}
		if next <= pos {
			return fmt.Errorf("change log ends at %d, before %d", next, to)
		}
		for _, e := range evs {
			if e.Op != changes.Delete {
				continue
			}
			if _, err := db.deleteOrphans(ctx, consumer, fence, e.Key); err != nil {
				return err
			}
		}
		pos = next
	}
	return nil
}
