package mongo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"blog/internal/changes"
	"blog/internal/comment"
	"blog/internal/page"
	"blog/internal/post"
)

var (
	_ changes.Rebuilder                     = (*postStore)(nil)
	_ changes.DeadLetterer[comment.Comment] = (*postStore)(nil)
	_ post.Repairer                         = (*postStore)(nil)
)

// rebuildChunk is how many documents one rebuild transaction handles:
// small enough for a transaction, large enough not to crawl.
const rebuildChunk = 500

// repairChunk is rebuildChunk for RebuildPost; tests lower it to reach
// several chunks with few comments.
var repairChunk = rebuildChunk

// Rebuild phases, in order.
const (
	phaseCopy  = "copy"  // comments → post_comments, overwriting
	phasePrune = "prune" // drop copies whose comment is gone
	phasePosts = "posts" // recompute each post's window and count
	phaseDone  = ""
)

// rebuildProgress is saved in the consumer's checkpoint document after every
// chunk, in the chunk's transaction.
type rebuildProgress struct {
	At    bson.Binary   `bson:"at"`
	Phase string        `bson:"phase"`
	After bson.ObjectID `bson:"after"` // last _id done in this phase
}

// Rebuild recomputes the read model from the comments collection after the
// feed lost the consumer's position, then saves at as its checkpoint.
//
// It works in three resumable phases of small transactions: copy every
// comment into post_comments; delete copies whose comment no longer exists;
// recompute every post's embedded window and commentCount from the copies.
// Changes made meanwhile are delivered again from at and applied after it,
// which is safe because Apply decides everything by the presence of a copy
// in post_comments, whichever of the rebuild and the event made it.
//
// A rebuild interrupted by a crash resumes from its saved progress when it
// is run again towards the same at. Towards a different at it starts over:
// chunks done earlier could miss changes made between their time and the
// new at, which the stream from the new at does not deliver again.
func (s *postStore) Rebuild(ctx context.Context, consumer string, at changes.Token, fence int64) error {
	return s.db.rebuild(ctx, consumer, at, fence, phaseCopy, func(ctx context.Context, prog rebuildProgress) (rebuildProgress, error) {
		switch prog.Phase {
		case phaseCopy:
			return s.copyChunk(ctx, prog)
		case phasePrune:
			return s.pruneChunk(ctx, prog)
		case phasePosts:
			return s.postsChunk(ctx, prog)
		}
		return prog, fmt.Errorf("unknown phase %q", prog.Phase)
	})
}

// rebuild drives a resumable rebuild: it runs step, one chunk of the
// current phase at a time, each in its own transaction together with the
// saved progress (and the fence check), until step reports phaseDone; then
// it saves at as the checkpoint. Saved progress towards the same at is
// resumed; towards another at, the rebuild starts over at phase first.
func (db *DB) rebuild(ctx context.Context, consumer string, at changes.Token, fence int64, first string,
	step func(ctx context.Context, prog rebuildProgress) (rebuildProgress, error)) error {
	prog, err := db.progress(ctx, consumer)
	if err != nil {
		return fmt.Errorf("mongo: rebuild %q: %w", consumer, err)
	}
	if prog == nil || !bytes.Equal(prog.At.Data, at) {
		prog = &rebuildProgress{At: bson.Binary{Data: at}, Phase: first}
	}
	for prog.Phase != phaseDone {
		var next rebuildProgress
		err := db.b.WithTransaction(ctx, func(ctx context.Context) error {
			if err := db.checkFence(ctx, consumer, fence); err != nil {
				return err
			}
			var err error
			if next, err = step(ctx, *prog); err != nil {
				return err
			}
			if next.Phase == phaseDone {
				return db.saveCheckpoint(ctx, consumer, changes.Token(prog.At.Data), true)
			}
			set := bson.D{{Key: "$set", Value: bson.D{{Key: "rebuild", Value: next}}}}
			_, err = db.checkpoints.updateOne(ctx, bson.D{{Key: "_id", Value: consumer}}, set, true)
			return err
		})
		if err != nil {
			return fmt.Errorf("mongo: rebuild %q, %s phase: %w", consumer, prog.Phase, err)
		}
		prog = &next
	}
	return nil
}

// RebuildTarget returns the position an interrupted rebuild aims at, so the
// consumer resumes it towards the same one; nil when none is under way.
func (s *postStore) RebuildTarget(ctx context.Context, consumer string) (changes.Token, error) {
	return s.db.rebuildTarget(ctx, consumer)
}

func (db *DB) rebuildTarget(ctx context.Context, consumer string) (changes.Token, error) {
	prog, err := db.progress(ctx, consumer)
	if err != nil || prog == nil || prog.Phase == phaseDone {
		return nil, err
	}
	return changes.Token(prog.At.Data), nil
}

func (db *DB) progress(ctx context.Context, consumer string) (*rebuildProgress, error) {
	var d struct {
		Rebuild *rebuildProgress `bson:"rebuild"`
	}
	err := db.checkpoints.findOne(ctx, bson.D{{Key: "_id", Value: consumer}}, &d)
	if errors.Is(err, ErrNoDocuments) {
		return nil, nil
	}
	return d.Rebuild, err
}

// scan reads one chunk of a rebuild: like find, but a document that does
// not decode into T (written by hand, say) is logged and skipped instead of
// failing the rebuild on every retry. It also returns how many documents
// the chunk held and the last ObjectID _id among them, so the scan moves
// past undecodable documents too.
func scan[T any](ctx context.Context, db *DB, c coll, filter bson.D, limit int64) ([]T, int, bson.ObjectID, error) {
	var last bson.ObjectID
	f, s, err := encode2(filter, byID)
	if err != nil {
		return nil, 0, last, err
	}
	raws, err := c.c.Find(ctx, f, s, limit)
	if err != nil {
		return nil, 0, last, fmt.Errorf("find in %s: %w", c.name, err)
	}
	out := make([]T, 0, len(raws))
	for _, raw := range raws {
		id, ok := bson.Raw(raw).Lookup("_id").ObjectIDOK()
		if ok {
			last = id
		}
		var v T
		if err := bson.Unmarshal(raw, &v); err != nil {
			db.log.Warn("rebuild skips a document it cannot read", "collection", c.name,
				"id", bson.Raw(raw).Lookup("_id").String(), "err", err)
			continue
		}
		out = append(out, v)
	}
	return out, len(raws), last, nil
}

// chunkAfter returns the filter for the next chunk of a phase, in _id order.
func chunkAfter(after bson.ObjectID, extra ...bson.E) bson.D {
	f := bson.D(extra)
	if !after.IsZero() {
		f = append(f, bson.E{Key: "_id", Value: bson.D{{Key: "$gt", Value: after}}})
	}
	if f == nil {
		f = bson.D{}
	}
	return f
}

var byID = bson.D{{Key: "_id", Value: 1}}

// advance returns the progress after a chunk whose last _id is last: the
// same phase from there, or the next phase from the start when the chunk
// was not full (the phase is done).
func advance(prog rebuildProgress, n, size int, last bson.ObjectID, nextPhase string) rebuildProgress {
	// A full chunk with no ObjectID to continue from (only hand-made _ids)
	// cannot be paged past; the phase ends rather than loop forever.
	if n < size || last.IsZero() {
		return rebuildProgress{At: prog.At, Phase: nextPhase}
	}
	return rebuildProgress{At: prog.At, Phase: prog.Phase, After: last}
}

func (s *postStore) copyChunk(ctx context.Context, prog rebuildProgress) (rebuildProgress, error) {
	docs, n, last, err := scan[commentDoc](ctx, s.db, s.db.comments, chunkAfter(prog.After), rebuildChunk)
	if err != nil {
		return prog, err
	}
	for _, d := range docs {
		if _, err := s.db.postComments.updateOne(ctx, idFilter(d.ID), copyUpdate(d), true); err != nil {
			return prog, err
		}
	}
	return advance(prog, n, rebuildChunk, last, phasePrune), nil
}

type idDoc struct {
	ID bson.ObjectID `bson:"_id"`
}

func (s *postStore) pruneChunk(ctx context.Context, prog rebuildProgress) (rebuildProgress, error) {
	copies, n, last, err := scan[idDoc](ctx, s.db, s.db.postComments, chunkAfter(prog.After), rebuildChunk)
	if err != nil || len(copies) == 0 {
		return advance(prog, n, rebuildChunk, last, phasePosts), err
	}
	ids := make(bson.A, len(copies))
	for i, c := range copies {
		ids[i] = c.ID
	}
	in := bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}
	live, err := find[idDoc](ctx, s.db.comments, in, nil, 0)
	if err != nil {
		return prog, err
	}
	var gone bson.A
	for _, c := range copies {
		if !slices.ContainsFunc(live, func(l idDoc) bool { return l.ID == c.ID }) {
			gone = append(gone, c.ID)
		}
	}
	if len(gone) > 0 {
		if _, err := s.db.postComments.deleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: gone}}}}); err != nil {
			return prog, err
		}
	}
	return advance(prog, n, rebuildChunk, last, phasePosts), nil
}

// postsChunk recomputes fewer posts per transaction than the other phases
// handle documents, since each post costs a count and a window query.
func (s *postStore) postsChunk(ctx context.Context, prog rebuildProgress) (rebuildProgress, error) {
	const size = rebuildChunk / 10
	posts, n, last, err := scan[idDoc](ctx, s.db, s.db.posts, chunkAfter(prog.After), size)
	if err != nil {
		return prog, err
	}
	for _, p := range posts {
		if err := s.recompute(ctx, p.ID); err != nil {
			return prog, fmt.Errorf("post %s: %w", p.ID.Hex(), err)
		}
	}
	return advance(prog, n, size, last, phaseDone), nil
}

// RebuildPost recomputes one post's part of the read model from the
// comments collection: its post_comments copies (every comment of the post
// copied over, copies of comments that no longer exist deleted), then its
// embedded window and commentCount from those copies. `blog verify
// --repair` mends drift with it (it is post.Repairer). It returns
// post.ErrNotFound for an unknown post, and writes nothing then.
//
// The copies are made and pruned in transactions of at most rebuildChunk
// comments each, paged by (createdAt, _id) along the posts' comment index,
// so the largest posts repair too: one transaction with a write per comment
// would outlast MongoDB's transaction time limit (60 s) on exactly those.
// The window and count are then set in one small transaction. A repair cut
// short leaves copies in step or not yet, and the post as it was; running
// it again finishes it.
//
// It needs no lease: the consumer's events meanwhile apply on top of it
// idempotently, because post.ApplyComments decides everything by the
// presence of a copy, whoever made it; and the last step recomputes the
// window and count from the copies as they are then.
func (s *postStore) RebuildPost(ctx context.Context, postID string) error {
	pid, ok := oid(postID)
	if !ok {
		return post.ErrNotFound
	}
	var exists idDoc
	if err := s.db.posts.findOne(ctx, idFilter(pid), &exists); err != nil {
		if errors.Is(err, ErrNoDocuments) {
			return post.ErrNotFound
		}
		return fmt.Errorf("mongo: rebuild post %s: %w", postID, err)
	}
	if err := s.copyPost(ctx, pid); err != nil {
		return fmt.Errorf("mongo: rebuild post %s: copy: %w", postID, err)
	}
	if err := s.prunePost(ctx, pid); err != nil {
		return fmt.Errorf("mongo: rebuild post %s: prune: %w", postID, err)
	}
	err := s.db.b.WithTransaction(ctx, func(ctx context.Context) error {
		return s.recompute(ctx, pid)
	})
	if err != nil {
		return fmt.Errorf("mongo: rebuild post %s: %w", postID, err)
	}
	return nil
}

// postChunks walks the documents of c whose postId is pid, in (createdAt,
// _id) order along the collection's postId index, a chunk of at most
// repairChunk per transaction, calling fn with each chunk inside it. A
// document whose createdAt is not a date cannot be paged past by the
// keyset and is seen only if it sorts first (it is left out of the copies
// anyway, as Rebuild leaves it out).
func (s *postStore) postChunks(ctx context.Context, c coll, pid bson.ObjectID, fn func(ctx context.Context, raws []bson.Raw) error) error {
	var cur *page.Cursor
	sort := bson.D{{Key: "createdAt", Value: 1}, {Key: "_id", Value: 1}}
	for {
		var n int
		var next *page.Cursor
		err := s.db.b.WithTransaction(ctx, func(ctx context.Context) error {
			filter := bson.D{{Key: "postId", Value: pid}}
			if cur != nil {
				older, _ := after(cur, true) // built from an ObjectID
				filter = append(filter, older...)
			}
			raws, err := find[bson.Raw](ctx, c, filter, sort, int64(repairChunk))
			if err != nil {
				return err
			}
			n, next = len(raws), nil
			for i := len(raws) - 1; i >= 0 && next == nil; i-- {
				id, ok1 := raws[i].Lookup("_id").ObjectIDOK()
				at, ok2 := raws[i].Lookup("createdAt").DateTimeOK()
				if ok1 && ok2 {
					next = &page.Cursor{At: time.UnixMilli(at).UTC(), ID: id.Hex()}
				}
			}
			return fn(ctx, raws)
		})
		if err != nil {
			return err
		}
		if n < repairChunk || next == nil {
			return nil
		}
		cur = next
	}
}

// copyPost makes post pid's copies in post_comments equal to its comments,
// a chunk per transaction. A comment that does not decode (written by
// hand, say) is logged and left out, as Rebuild does.
func (s *postStore) copyPost(ctx context.Context, pid bson.ObjectID) error {
	return s.postChunks(ctx, s.db.comments, pid, func(ctx context.Context, raws []bson.Raw) error {
		for _, raw := range raws {
			var d commentDoc
			if err := bson.Unmarshal(raw, &d); err != nil {
				s.db.log.Warn("post repair skips a comment it cannot read", "post", pid.Hex(),
					"id", raw.Lookup("_id").String(), "err", err)
				continue
			}
			if _, err := s.db.postComments.updateOne(ctx, idFilter(d.ID), copyUpdate(d), true); err != nil {
				return err
			}
		}
		return nil
	})
}

// prunePost deletes post pid's copies whose comment no longer exists, a
// chunk per transaction. A comment that exists but does not decode keeps
// the copy it may have, as Rebuild's prune phase keeps it.
func (s *postStore) prunePost(ctx context.Context, pid bson.ObjectID) error {
	return s.postChunks(ctx, s.db.postComments, pid, func(ctx context.Context, raws []bson.Raw) error {
		ids := make(bson.A, 0, len(raws))
		for _, raw := range raws {
			if id, ok := raw.Lookup("_id").ObjectIDOK(); ok {
				ids = append(ids, id)
			}
		}
		if len(ids) == 0 {
			return nil
		}
		in := bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}
		live, err := find[idDoc](ctx, s.db.comments, in, nil, 0)
		if err != nil {
			return err
		}
		alive := make(map[bson.ObjectID]bool, len(live))
		for _, l := range live {
			alive[l.ID] = true
		}
		var gone bson.A
		for _, id := range ids {
			if !alive[id.(bson.ObjectID)] {
				gone = append(gone, id)
			}
		}
		if len(gone) == 0 {
			return nil
		}
		_, err = s.db.postComments.deleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: gone}}}})
		return err
	})
}

// recompute sets a post's window and count from its copies in post_comments.
func (s *postStore) recompute(ctx context.Context, pid bson.ObjectID) error {
	byPost := bson.D{{Key: "postId", Value: pid}}
	f, err := encode(byPost)
	if err != nil {
		return err
	}
	n, err := s.db.postComments.c.CountDocuments(ctx, f)
	if err != nil {
		return fmt.Errorf("count post_comments: %w", err)
	}
	newest := bson.D{{Key: "createdAt", Value: -1}, {Key: "_id", Value: -1}}
	docs, err := find[commentDoc](ctx, s.db.postComments, byPost, newest, int64(s.db.opt.EmbedLimit))
	if err != nil {
		return err
	}
	window := make([]embedDoc, len(docs))
	for i, d := range docs {
		window[len(docs)-1-i] = d.embed()
	}
	set := bson.D{{Key: "$set", Value: bson.D{
		{Key: "comments", Value: window},
		{Key: "commentCount", Value: n},
	}}}
	_, err = s.db.posts.updateOne(ctx, idFilter(pid), set, false)
	return err
}

// copyUpdate is the update that makes a post_comments copy equal to d.
func copyUpdate(d commentDoc) bson.D {
	set := bson.D{
		{Key: "postId", Value: d.PostID},
		{Key: "text", Value: d.Text},
		{Key: "createdAt", Value: ms(d.CreatedAt)},
	}
	update := bson.D{{Key: "$set", Value: set}}
	if d.UpdatedAt != nil {
		update[0].Value = append(set, bson.E{Key: "updatedAt", Value: ms(*d.UpdatedAt)})
	} else {
		update = append(update, bson.E{Key: "$unset", Value: bson.D{{Key: "updatedAt", Value: ""}}})
	}
	return update
}
