package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"blog/internal/changes"
	"blog/internal/comment"
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
func (db *DB) PostCascade() changes.Sink[post.Post] {
	return &cascadeStore{db: db, saved: map[string]time.Time{}}
}

type cascadeStore struct {
	db *DB

	mu    sync.Mutex
	saved map[string]time.Time // consumer -> when Apply last wrote its checkpoint
}

// cascadeSaveEvery is how long the cascade may leave its saved checkpoint
// behind its position over batches it had nothing to do for. The posts
// feed logs an update of a post for every comment synced into it, none of
// which concerns the cascade: saving the position after each would be a
// write transaction per comment for nothing. A restart or a takeover within
// that time reopens a little earlier and replays such no-op events, which
// is harmless; it also delays change-log pruning (which waits for every
// consumer's checkpoint) by as much.
const cascadeSaveEvery = 2 * time.Second

var (
	_ changes.Rebuilder               = (*cascadeStore)(nil)
	_ changes.DeadLetterer[post.Post] = (*cascadeStore)(nil)
	_ changes.Stager[post.Post]       = (*cascadeStore)(nil)
)

// qNextCommentedPost seeks the next post id, after ?, that has comments.
const qNextCommentedPost = `SELECT post_id FROM comments WHERE post_id > ? ORDER BY post_id LIMIT 1`

// Checkpoint returns the consumer's saved position, or nil before its first
// Apply.
func (s *cascadeStore) Checkpoint(ctx context.Context, consumer string) (changes.Token, error) {
	return s.db.checkpoint(ctx, consumer)
}

// Stage deletes the comments of every post the batch deletes, by the rules
// of comment.Cascade: a chunk per transaction, each bounded by step and
// under the consumer's fence, deleting only while the post does not exist.
// The consumer calls it before Apply, outside Apply's bound, so a post with
// a million comments is deleted whole before its event is checkpointed.
func (s *cascadeStore) Stage(ctx context.Context, consumer string, b changes.Batch[post.Post], step time.Duration) error {
	if err := comment.Cascade(ctx, b.Events, s.db.deletesPerTx, step, s.db.orphans(consumer, b.Fence)); err != nil {
		return fmt.Errorf("sqlite: stage %d post events for %q: %w", len(b.Events), consumer, err)
	}
	return nil
}

// Apply refuses a batch that changes.Batch.Validate or
// comment.CheckPostEvent refuses (so the consumer parks the poison event),
// deletes what Stage left of the comments of the posts the batch deletes
// (nothing, when the consumer staged it; all of them for a caller that did
// not), then saves the checkpoint under the fence. A crash in between
// leaves the checkpoint before the batch, and the replay finishes the job:
// deleting the comments of a post that does not exist is idempotent.
func (s *cascadeStore) Apply(ctx context.Context, consumer string, b changes.Batch[post.Post]) error {
	if err := b.Validate(); err != nil {
		return fmt.Errorf("sqlite: apply %d post events for %q: %w", len(b.Events), consumer, err)
	}
	if err := comment.CheckPostEvents(b.Events); err != nil {
		return fmt.Errorf("sqlite: apply %d post events for %q: %w", len(b.Events), consumer, err)
	}
	if err := comment.Cascade(ctx, b.Events, s.db.deletesPerTx, 0, s.db.orphans(consumer, b.Fence)); err != nil {
		return fmt.Errorf("sqlite: apply %d post events for %q: %w", len(b.Events), consumer, err)
	}
	if s.skipSave(consumer, b.Events) {
		return nil
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
	s.mu.Lock()
	s.saved[consumer] = time.Now()
	s.mu.Unlock()
	return nil
}

// skipSave reports whether Apply may leave the consumer's checkpoint where
// it is: the batch deletes no post (so the cascade did nothing) and the
// checkpoint was saved less than cascadeSaveEvery ago (see there).
func (s *cascadeStore) skipSave(consumer string, evs []changes.Event[post.Post]) bool {
	for _, ev := range evs {
		if ev.Op == changes.Delete {
			return false
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.saved[consumer]
	return ok && time.Since(at) < cascadeSaveEvery
}

// orphans returns the cascade's comment.ChunkDeleter: one transaction under
// the consumer's fence deleting up to limit comments of a post that does
// not exist.
func (db *DB) orphans(consumer string, fence int64) comment.ChunkDeleter {
	return func(ctx context.Context, postID string, limit int) (int, bool, error) {
		n := 0
		err := db.write(ctx, func(tx *sql.Tx) error {
			if err := checkFence(ctx, tx, consumer, fence); err != nil {
				return err
			}
			var err error
			n, err = deleteCommentsChunk(ctx, tx, postID, limit, true)
			return err
		})
		return n, n == limit, err
	}
}

// Rebuild deletes every comment whose post no longer exists (the deletes
// the lost history held, and any older leftovers), sweeping the comments'
// post ids in order in resumable chunks, then saves at as the checkpoint.
func (s *cascadeStore) Rebuild(ctx context.Context, consumer string, at changes.Token, fence int64) error {
	return s.db.rebuild(ctx, consumer, at, fence, rebuildPlan{
		what:  "comments of deleted posts",
		chunk: s.db.sweepOrphansChunk,
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
