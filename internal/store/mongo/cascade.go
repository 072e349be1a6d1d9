package mongo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"blog/internal/changes"
	"blog/internal/comment"
	"blog/internal/post"
)

// PostCascade returns the comments service's sink of the posts feed: when a
// post is deleted, its comments are deleted too (which in turn reaches the
// posts service as comment delete events). Like the posts store, it can
// rebuild after lost history and park poison events.
func (db *DB) PostCascade() changes.Sink[post.Post] { return &cascade{db: db} }

// cascade implements changes.Sink[post.Post] and its optional extras.
type cascade struct{ db *DB }

var (
	_ changes.Sink[post.Post]         = (*cascade)(nil)
	_ changes.Rebuilder               = (*cascade)(nil)
	_ changes.DeadLetterer[post.Post] = (*cascade)(nil)
	_ changes.Stager[post.Post]       = (*cascade)(nil)
)

func (c *cascade) Checkpoint(ctx context.Context, consumer string) (changes.Token, error) {
	return c.db.checkpoint(ctx, consumer)
}

// Stage deletes the comments of every post the batch deletes, by the rules
// of comment.Cascade: a chunk of at most deleteChunk comments per
// transaction, each bounded by step and under the consumer's fence,
// deleting only while the post does not exist. The consumer calls it before
// Apply, outside Apply's bound: a post may have a million comments, and one
// bounded Apply (or one transaction, past MongoDB's transaction time limit)
// deleting them all would fail until the consumer parked the post's delete
// with its comments still there.
func (c *cascade) Stage(ctx context.Context, consumer string, b changes.Batch[post.Post], step time.Duration) error {
	if err := comment.Cascade(ctx, b.Events, c.db.deleteChunk, step, c.orphans(consumer, b.Fence)); err != nil {
		return fmt.Errorf("mongo: stage %d post events for %q: %w", len(b.Events), consumer, err)
	}
	return nil
}

// Apply refuses a batch that changes.Batch.Validate or
// comment.CheckPostEvent refuses (so the consumer parks the poison event),
// deletes what Stage left of the comments of the posts the batch deletes
// (nothing, when the consumer staged it; all of them for a caller that did
// not), then saves the checkpoint in a small transaction of its own under
// the fence. A crash or a timeout midway leaves the checkpoint before the
// batch and the comments deleted so far deleted, and the replay deletes the
// rest.
func (c *cascade) Apply(ctx context.Context, consumer string, b changes.Batch[post.Post]) error {
	if err := b.Validate(); err != nil {
		return fmt.Errorf("mongo: apply %d post events for %q: %w", len(b.Events), consumer, err)
	}
	if err := comment.CheckPostEvents(b.Events); err != nil {
		return fmt.Errorf("mongo: apply %d post events for %q: %w", len(b.Events), consumer, err)
	}
	if err := comment.Cascade(ctx, b.Events, c.db.deleteChunk, 0, c.orphans(consumer, b.Fence)); err != nil {
		return fmt.Errorf("mongo: apply %d post events for %q: %w", len(b.Events), consumer, err)
	}
	err := c.db.b.WithTransaction(ctx, func(ctx context.Context) error {
		if err := c.db.checkFence(ctx, consumer, b.Fence); err != nil {
			return err
		}
		return c.db.saveCheckpoint(ctx, consumer, b.Token, false)
	})
	if err != nil {
		return fmt.Errorf("mongo: apply %d post events for %q: %w", len(b.Events), consumer, err)
	}
	return nil
}

// orphans returns the cascade's comment.ChunkDeleter, under the consumer's
// fence.
func (c *cascade) orphans(consumer string, fence int64) comment.ChunkDeleter {
	return c.db.commentsChunk(true, func(ctx context.Context) error { return c.db.checkFence(ctx, consumer, fence) })
}

// defaultDeleteChunk bounds how many comments one chunk's transaction
// removes: a post may have a million comments, and one transaction deleting
// them all would outlast MongoDB's 60-second transaction limit
// (transactionLifetimeLimitSeconds) and strain its cache, whereas MongoDB
// advises modifying at most about a thousand documents per transaction.
const defaultDeleteChunk = 1000

// commentsChunk returns the comment.ChunkDeleter of DeleteByPost (and,
// with orphansOnly, of the cascade): one transaction deleting up to limit
// comments of a post, each deletion a delete event on the comments feed, as
// any deleteMany's is. With orphansOnly it deletes only while the post does
// not exist, checked in the same transaction: the cascade's rule, which
// makes deleting right whatever event asked for it. guard, when set, runs
// first in the transaction; the cascade checks its fence there, so a
// consumer that lost its lease stops at the next chunk.
func (db *DB) commentsChunk(orphansOnly bool, guard func(ctx context.Context) error) comment.ChunkDeleter {
	return func(ctx context.Context, postID string, limit int) (int, bool, error) {
		pid, ok := oid(postID)
		if !ok {
			return 0, false, nil // no comment can name a post by such an id
		}
		var found, deleted int
		err := db.b.WithTransaction(ctx, func(ctx context.Context) error {
			found, deleted = 0, 0 // the body may run more than once
			if guard != nil {
				if err := guard(ctx); err != nil {
					return err
				}
			}
			if orphansOnly {
				var live idDoc
				err := db.posts.findOne(ctx, idFilter(pid), &live)
				if err == nil {
					return nil // the post exists: its comments stay
				}
				if !errors.Is(err, ErrNoDocuments) {
					return err
				}
			}
			// The _ids as stored, whatever their type, so a comment written
			// by hand (a string _id, a field this service cannot decode) is
			// deleted with the rest.
			refs, err := find[struct {
				ID bson.RawValue `bson:"_id"`
			}](ctx, db.comments, bson.D{{Key: "postId", Value: pid}}, nil, int64(limit))
			if err != nil {
				return err
			}
			if found = len(refs); found == 0 {
				return nil
			}
			ids := make(bson.A, len(refs))
			for i, r := range refs {
				ids[i] = r.ID
			}
			filter := bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}, {Key: "postId", Value: pid}}
			n, err := db.comments.deleteMany(ctx, filter)
			deleted = int(n)
			return err
		})
		if err != nil {
			return 0, false, err
		}
		// An empty delete of a full chunk (the comments went meanwhile)
		// ends the loop too rather than spin.
		return deleted, found == limit, nil
	}
}

// phaseOrphans is the cascade rebuild's one phase.
const phaseOrphans = "orphans"

// Rebuild deletes every comment whose post no longer exists, in resumable
// chunks of comments, then saves at as the checkpoint: after lost history
// that is all the post delete events could have done.
func (c *cascade) Rebuild(ctx context.Context, consumer string, at changes.Token, fence int64) error {
	return c.db.rebuild(ctx, consumer, at, fence, phaseOrphans, c.orphansChunk)
}

// RebuildTarget returns the position an interrupted rebuild aims at.
func (c *cascade) RebuildTarget(ctx context.Context, consumer string) (changes.Token, error) {
	return c.db.rebuildTarget(ctx, consumer)
}

func (c *cascade) orphansChunk(ctx context.Context, prog rebuildProgress) (rebuildProgress, error) {
	type ref struct {
		ID     bson.ObjectID `bson:"_id"`
		PostID bson.ObjectID `bson:"postId"`
	}
	refs, n, last, err := scan[ref](ctx, c.db, c.db.comments, chunkAfter(prog.After), rebuildChunk)
	if err != nil || len(refs) == 0 {
		return advance(prog, n, rebuildChunk, last, phaseDone), err
	}
	var pids bson.A
	seen := map[bson.ObjectID]bool{}
	for _, r := range refs {
		if !seen[r.PostID] {
			seen[r.PostID] = true
			pids = append(pids, r.PostID)
		}
	}
	live, err := find[idDoc](ctx, c.db.posts, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: pids}}}}, nil, 0)
	if err != nil {
		return prog, err
	}
	exists := map[bson.ObjectID]bool{}
	for _, p := range live {
		exists[p.ID] = true
	}
	var orphans bson.A
	for _, r := range refs {
		if !exists[r.PostID] {
			orphans = append(orphans, r.ID)
		}
	}
	if len(orphans) > 0 {
		if _, err := c.db.comments.deleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: orphans}}}}); err != nil {
			return prog, err
		}
	}
	return advance(prog, n, rebuildChunk, last, phaseDone), nil
}

// DeadLetter parks a post event the cascade could not apply; see park.
func (c *cascade) DeadLetter(ctx context.Context, consumer string, ev changes.Event[post.Post], reason string, fence int64) error {
	var doc bson.D
	if ev.Found {
		// The post without its embedded comments, which the cascade never
		// reads: a record of what it was asked to do, kept small.
		doc = bson.D{
			{Key: "_id", Value: idValue(ev.Key)},
			{Key: "title", Value: ev.Doc.Title},
			{Key: "content", Value: ev.Doc.Content},
			{Key: "createdAt", Value: ms(ev.Doc.CreatedAt)},
		}
		if ev.Doc.UpdatedAt != nil {
			doc = append(doc, bson.E{Key: "updatedAt", Value: ms(*ev.Doc.UpdatedAt)})
		}
	}
	return c.db.park(ctx, consumer, c.db.posts, parked{op: ev.Op, key: ev.Key, token: ev.Token, at: ev.At, doc: doc}, reason, fence)
}
