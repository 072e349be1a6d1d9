package mongo

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"

	"blog/internal/changes"
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
)

func (c *cascade) Checkpoint(ctx context.Context, consumer string) (changes.Token, error) {
	return c.db.checkpoint(ctx, consumer)
}

// Apply deletes the comments of every post the batch deletes, then saves
// the checkpoint; inserts and updates of posts concern the comments service
// not at all. The comments go in transactions of at most deleteChunk each
// (see DB.deleteComments, which DeleteByPost shares), not in one: a post
// may have a million comments, and one transaction deleting them all would
// outlast MongoDB's transaction time limit and be retried, and fail, until
// the consumer parked the post's delete with its comments still there.
//
// A comment is deleted only while its post does not exist, checked in each
// chunk's transaction, so an event cannot delete the comments of a live
// post. The checkpoint is saved last, in a small transaction of its own
// under the fence: a crash or a timeout midway leaves the checkpoint before
// the batch and the comments deleted so far deleted, and the replay deletes
// the rest (deleting the comments of a post that is gone again deletes
// nothing more). Every chunk's transaction checks the fence too, so a
// consumer that lost its lease stops at the next chunk.
func (c *cascade) Apply(ctx context.Context, consumer string, b changes.Batch[post.Post]) error {
	if err := b.Validate(); err != nil {
		return fmt.Errorf("mongo: apply %d post events for %q: %w", len(b.Events), consumer, err)
	}
	fenced := func(ctx context.Context) error { return c.db.checkFence(ctx, consumer, b.Fence) }
	for _, ev := range b.Events {
		if ev.Op != changes.Delete {
			continue
		}
		pid, ok := oid(ev.Key)
		if !ok {
			continue // no comment can name a post by an id that is no ObjectID
		}
		if _, err := c.db.deleteComments(ctx, pid, true, fenced); err != nil {
			return fmt.Errorf("mongo: apply %d post events for %q: %w", len(b.Events), consumer, err)
		}
	}
	err := c.db.b.WithTransaction(ctx, func(ctx context.Context) error {
		if err := fenced(ctx); err != nil {
			return err
		}
		return c.db.saveCheckpoint(ctx, consumer, b.Token, false)
	})
	if err != nil {
		return fmt.Errorf("mongo: apply %d post events for %q: %w", len(b.Events), consumer, err)
	}
	return nil
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
