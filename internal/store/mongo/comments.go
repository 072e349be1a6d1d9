package mongo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"blog/internal/comment"
	"blog/internal/page"
)

// commentStore implements comment.Store over the comments collection. Every
// write here lands in the oplog, which is the comments feed.
type commentStore struct{ db *DB }

var _ comment.Store = (*commentStore)(nil)

func (s *commentStore) Create(ctx context.Context, c comment.Comment) error {
	id, ok := oid(c.ID)
	if !ok {
		return fmt.Errorf("mongo: create comment: invalid id %q", c.ID)
	}
	pid, ok := oid(c.PostID)
	if !ok {
		return comment.ErrPostNotFound
	}
	// The post check and the insert are not one atomic step: a post deleted
	// in between leaves an orphan comment. A transaction would not close the
	// gap (MongoDB transactions do not lock what they only read), so it is
	// accepted: the comments service deletes a post's comments when it sees
	// the post's delete event, so only a comment inserted after that sweep
	// survives, and the posts read model ignores it because its post is gone.
	var exists struct {
		ID bson.ObjectID `bson:"_id"`
	}
	if err := s.db.posts.findOne(ctx, idFilter(pid), &exists); err != nil {
		if errors.Is(err, ErrNoDocuments) {
			return comment.ErrPostNotFound
		}
		return fmt.Errorf("mongo: create comment: %w", err)
	}
	d := commentDoc{ID: id, PostID: pid, Text: c.Text, CreatedAt: ms(c.CreatedAt), UpdatedAt: msPtr(c.UpdatedAt)}
	if err := s.db.comments.insert(ctx, d); err != nil {
		if errors.Is(err, ErrDuplicateKey) {
			return comment.ErrDuplicate
		}
		return fmt.Errorf("mongo: create comment: %w", err)
	}
	return nil
}

func (s *commentStore) Get(ctx context.Context, id string) (comment.Comment, error) {
	oid, ok := oid(id)
	if !ok {
		return comment.Comment{}, comment.ErrNotFound
	}
	var d commentDoc
	if err := s.db.comments.findOne(ctx, idFilter(oid), &d); err != nil {
		if errors.Is(err, ErrNoDocuments) {
			return comment.Comment{}, comment.ErrNotFound
		}
		return comment.Comment{}, fmt.Errorf("mongo: get comment: %w", err)
	}
	return d.comment(), nil
}

func (s *commentStore) ListByPost(ctx context.Context, postID string, q page.Query) ([]comment.Comment, error) {
	pid, ok := oid(postID)
	if !ok {
		return []comment.Comment{}, nil
	}
	filter := bson.D{{Key: "postId", Value: pid}}
	keyset, ok := after(q.After, true)
	if !ok {
		return nil, page.ErrBadCursor
	}
	filter = append(filter, keyset...)
	sort := bson.D{{Key: "createdAt", Value: 1}, {Key: "_id", Value: 1}}
	// A comment written by hand with a badly typed field is skipped (and
	// logged), so it cannot make its post's listing fail.
	docs, err := list[commentDoc](ctx, s.db, s.db.comments, filter, sort, limit(q))
	if err != nil {
		return nil, fmt.Errorf("mongo: list comments: %w", err)
	}
	out := make([]comment.Comment, len(docs))
	for i, d := range docs {
		out[i] = d.comment()
	}
	return out, nil
}

func (s *commentStore) Update(ctx context.Context, id, text string, at time.Time) (comment.Comment, error) {
	oid, ok := oid(id)
	if !ok {
		return comment.Comment{}, comment.ErrNotFound
	}
	update := bson.D{{Key: "$set", Value: bson.D{{Key: "text", Value: text}, {Key: "updatedAt", Value: ms(at)}}}}
	var d commentDoc
	if err := s.db.comments.findOneAndUpdate(ctx, idFilter(oid), update, &d); err != nil {
		if errors.Is(err, ErrNoDocuments) {
			return comment.Comment{}, comment.ErrNotFound
		}
		return comment.Comment{}, fmt.Errorf("mongo: update comment: %w", err)
	}
	return d.comment(), nil
}

func (s *commentStore) Delete(ctx context.Context, id string) (comment.Comment, error) {
	oid, ok := oid(id)
	if !ok {
		return comment.Comment{}, comment.ErrNotFound
	}
	var d commentDoc
	if err := s.db.comments.findOneAndDelete(ctx, idFilter(oid), &d); err != nil {
		if errors.Is(err, ErrNoDocuments) {
			return comment.Comment{}, comment.ErrNotFound
		}
		return comment.Comment{}, fmt.Errorf("mongo: delete comment: %w", err)
	}
	return d.comment(), nil
}

// DeleteByPost removes a post's comments in transactions of at most
// deleteChunk comments each; see DB.deleteComments, which the cascade
// shares. If it fails midway, calling it again finishes the job.
func (s *commentStore) DeleteByPost(ctx context.Context, postID string) (int, error) {
	pid, ok := oid(postID)
	if !ok {
		return 0, nil
	}
	n, err := s.db.deleteComments(ctx, pid, false, nil)
	if err != nil {
		return n, fmt.Errorf("mongo: delete comments of post: %w", err)
	}
	return n, nil
}

// defaultDeleteChunk bounds how many comments one deleteComments
// transaction removes: a post may have a million comments, and one
// transaction deleting them all would outlast MongoDB's 60-second
// transaction limit (transactionLifetimeLimitSeconds) and strain its cache,
// whereas MongoDB advises modifying at most about a thousand documents per
// transaction.
const defaultDeleteChunk = 1000

// deleteComments deletes the comments of post pid, at most db.deleteChunk
// per transaction, and returns how many it deleted. Each deletion is a
// delete event on the comments feed, as any deleteMany's is. With
// orphansOnly it deletes only while the post does not exist, checked in
// each chunk's transaction: the cascade's rule, which makes deleting right
// whatever event asked for it. guard, when set, runs first in each
// transaction; the cascade checks its fence there, so a consumer that lost
// its lease stops at the next chunk.
//
// Chunks are committed one by one, so a failure (or a timeout) midway
// leaves some comments deleted and the rest in place; calling it again
// finishes the job, and calling it when nothing is left deletes nothing.
func (db *DB) deleteComments(ctx context.Context, pid bson.ObjectID, orphansOnly bool, guard func(ctx context.Context) error) (int, error) {
	byPost, err := encode(bson.D{{Key: "postId", Value: pid}})
	if err != nil {
		return 0, err
	}
	total := 0
	for {
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
			raws, err := db.comments.c.Find(ctx, byPost, nil, int64(db.deleteChunk))
			if err != nil {
				return fmt.Errorf("find in %s: %w", db.comments.name, err)
			}
			// The _ids as stored, whatever their type, so a comment written
			// by hand (a string _id, a field this service cannot decode) is
			// deleted with the rest.
			ids := make(bson.A, 0, len(raws))
			for _, raw := range raws {
				ids = append(ids, bson.Raw(raw).Lookup("_id"))
			}
			if found = len(ids); found == 0 {
				return nil
			}
			filter := bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}, {Key: "postId", Value: pid}}
			n, err := db.comments.deleteMany(ctx, filter)
			deleted = int(n)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("delete comments of post %s after %d: %w", pid.Hex(), total, err)
		}
		total += deleted
		// A short chunk was the last; an empty delete of a full one (the
		// comments went meanwhile) ends the loop too rather than spin.
		if found < db.deleteChunk || deleted == 0 {
			return total, nil
		}
	}
}
func (s *commentStore) Ping(ctx context.Context) error {
	if err := s.db.b.Ping(ctx); err != nil {
		return fmt.Errorf("mongo: ping: %w", err)
	}
	return nil
}
