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
// deleteChunk comments each, by comment.DeleteChunked, which the cascade
// shares. If it fails midway, calling it again finishes the job.
func (s *commentStore) DeleteByPost(ctx context.Context, postID string) (int, error) {
	n, err := comment.DeleteChunked(ctx, postID, s.db.deleteChunk, 0, s.db.commentsChunk(false, nil))
	if err != nil {
		return n, fmt.Errorf("mongo: delete comments of post: %w", err)
	}
	return n, nil
}

func (s *commentStore) Ping(ctx context.Context) error {
	if err := s.db.b.Ping(ctx); err != nil {
		return fmt.Errorf("mongo: ping: %w", err)
	}
	return nil
}
