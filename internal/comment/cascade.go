package comment

import (
	"context"
	"fmt"
	"time"

	"blog/internal/changes"
)

// This file holds the comments service's side of the sync: deleting a
// post deletes its comments, when the comments service sees the post's
// delete on the posts feed (the cascade). The rules are here, once; each
// adapter supplies one chunk's delete in a transaction of its own.

// ValidID reports whether id has the form of the ids the services generate
// for comments and posts alike: a lowercase 24-hex ObjectID. An event that
// names anything else was written by hand, and no rule can apply it.
func ValidID(id string) bool {
	if len(id) != 24 {
		return false
	}
	for i := range len(id) {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ChunkDeleter deletes up to limit comments of post postID in one
// transaction of its own (each deletion on the comments feed, as any is),
// and returns how many it deleted and whether it found a full chunk, so
// that more may be left. The cascade's deleter deletes only while the post
// does not exist, checked in the same transaction, and checks the
// consumer's fence there too.
type ChunkDeleter func(ctx context.Context, postID string, limit int) (deleted int, full bool, err error)

// DeleteChunked deletes post postID's comments a chunk of at most chunk
// comments per transaction, until a chunk finds fewer (or deletes none:
// they went meanwhile), and returns how many it deleted. A post may have a
// million comments: one transaction deleting them all would hold SQLite's
// write lock for seconds and outlast MongoDB's transaction time limit.
//
// step, when positive, bounds each chunk on its own (not the whole loop),
// so the loop takes as long as the post needs while no single wait on the
// database is unbounded. Chunks commit one by one: a failure midway leaves
// some comments deleted and the rest in place, and calling it again
// finishes the job (that is its saved progress); with none left it deletes
// nothing.
func DeleteChunked(ctx context.Context, postID string, chunk int, step time.Duration, del ChunkDeleter) (int, error) {
	if chunk <= 0 {
		return 0, fmt.Errorf("delete comments of post %s: chunk %d, want > 0", postID, chunk)
	}
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("delete comments of post %s after %d: %w", postID, total, err)
		}
		cctx, cancel := ctx, context.CancelFunc(func() {})
		if step > 0 {
			cctx, cancel = context.WithTimeout(ctx, step)
		}
		n, full, err := del(cctx, postID, chunk)
		cancel()
		if err != nil {
			return total, fmt.Errorf("delete comments of post %s after %d: %w", postID, total, err)
		}
		total += n
		if !full || n == 0 {
			return total, nil
		}
	}
}

// CheckPostEvent returns an error wrapping changes.ErrPoison when the
// cascade can never apply ev: an op other than insert, update and delete,
// or a post id that is not an ObjectID. As for comment events
// (post.CheckEvent), such an event is parked as a dead letter, where an
// operator sees it, rather than skipped.
func CheckPostEvent[T any](ev changes.Event[T]) error {
	switch ev.Op {
	case changes.Insert, changes.Update, changes.Delete:
	default:
		return fmt.Errorf("%w: unknown op %q for post %q", changes.ErrPoison, ev.Op, ev.Key)
	}
	if !ValidID(ev.Key) {
		return fmt.Errorf("%w: %s of post with malformed id %q", changes.ErrPoison, ev.Op, ev.Key)
	}
	return nil
}

// Cascade deletes the comments of every post that evs (post events)
// delete, each with DeleteChunked, in event order; inserts and updates of
// posts need nothing, and events CheckPostEvent refuses are left for the
// caller to park. The chunks' deleter deletes only comments of posts that
// do not exist, so whichever event or retry asks, only orphans go.
func Cascade[T any](ctx context.Context, evs []changes.Event[T], chunk int, step time.Duration, del ChunkDeleter) error {
	for _, ev := range evs {
		if ev.Op != changes.Delete || ev.Err != nil || CheckPostEvent(ev) != nil {
			continue
		}
		if _, err := DeleteChunked(ctx, ev.Key, chunk, step, del); err != nil {
			return err
		}
	}
	return nil
}

// CheckPostEvents returns the first error CheckPostEvent finds in evs.
func CheckPostEvents[T any](evs []changes.Event[T]) error {
	for _, ev := range evs {
		if err := CheckPostEvent(ev); err != nil {
			return err
		}
	}
	return nil
}
