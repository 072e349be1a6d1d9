package mongo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"blog/internal/changes"
	"blog/internal/comment"
	"blog/internal/page"
	"blog/internal/post"
)

// postStore implements post.Store over the posts collection, and its
// changes.Sink side over posts, post_comments and checkpoints.
type postStore struct{ db *DB }

var _ post.Store = (*postStore)(nil)

func (s *postStore) Create(ctx context.Context, p post.Post) error {
	id, ok := oid(p.ID)
	if !ok {
		return fmt.Errorf("mongo: create post: invalid id %q", p.ID)
	}
	d := postDoc{
		ID:        id,
		Title:     p.Title,
		Content:   p.Content,
		Comments:  []embedDoc{}, // the seed's `comments: []`, never null
		CreatedAt: ms(p.CreatedAt),
		UpdatedAt: msPtr(p.UpdatedAt),
	}
	if err := s.db.posts.insert(ctx, d); err != nil {
		if errors.Is(err, ErrDuplicateKey) {
			return post.ErrDuplicate
		}
		return fmt.Errorf("mongo: create post: %w", err)
	}
	return nil
}

func (s *postStore) Get(ctx context.Context, id string) (post.Post, error) {
	oid, ok := oid(id)
	if !ok {
		return post.Post{}, post.ErrNotFound
	}
	var d postDoc
	if err := s.db.posts.findOne(ctx, idFilter(oid), &d); err != nil {
		if errors.Is(err, ErrNoDocuments) {
			return post.Post{}, post.ErrNotFound
		}
		return post.Post{}, fmt.Errorf("mongo: get post: %w", err)
	}
	return d.post(), nil
}

func (s *postStore) List(ctx context.Context, q page.Query) ([]post.Post, error) {
	filter, ok := after(q.After, false)
	if !ok {
		return nil, page.ErrBadCursor
	}
	if filter == nil {
		filter = bson.D{}
	}
	sort := bson.D{{Key: "createdAt", Value: -1}, {Key: "_id", Value: -1}}
	// A post written by hand with a badly typed field is skipped (and
	// logged), so it cannot make every page that holds it fail.
	docs, err := list[postDoc](ctx, s.db, s.db.posts, filter, sort, limit(q))
	if err != nil {
		return nil, fmt.Errorf("mongo: list posts: %w", err)
	}
	out := make([]post.Post, len(docs))
	for i, d := range docs {
		out[i] = d.post()
	}
	return out, nil
}

func (s *postStore) Update(ctx context.Context, id string, p post.Patch, at time.Time) (post.Post, error) {
	oid, ok := oid(id)
	if !ok {
		return post.Post{}, post.ErrNotFound
	}
	set := bson.D{{Key: "updatedAt", Value: ms(at)}}
	if p.Title != nil {
		set = append(set, bson.E{Key: "title", Value: *p.Title})
	}
	if p.Content != nil {
		set = append(set, bson.E{Key: "content", Value: *p.Content})
	}
	var d postDoc
	if err := s.db.posts.findOneAndUpdate(ctx, idFilter(oid), bson.D{{Key: "$set", Value: set}}, &d); err != nil {
		if errors.Is(err, ErrNoDocuments) {
			return post.Post{}, post.ErrNotFound
		}
		return post.Post{}, fmt.Errorf("mongo: update post: %w", err)
	}
	return d.post(), nil
}

// Delete removes the post only. Its comments are deleted by the comments
// service when it sees this delete on the posts feed, and each of those
// deletes, applied here, also removes the comment's post_comments entry, so
// the read model cleans itself up without a second, unbounded delete here.
func (s *postStore) Delete(ctx context.Context, id string) error {
	oid, ok := oid(id)
	if !ok {
		return post.ErrNotFound
	}
	var d struct {
		ID bson.ObjectID `bson:"_id"`
	}
	if err := s.db.posts.findOneAndDelete(ctx, idFilter(oid), &d); err != nil {
		if errors.Is(err, ErrNoDocuments) {
			return post.ErrNotFound
		}
		return fmt.Errorf("mongo: delete post: %w", err)
	}
	return nil
}

func (s *postStore) Ping(ctx context.Context) error {
	if err := s.db.b.Ping(ctx); err != nil {
		return fmt.Errorf("mongo: ping: %w", err)
	}
	return nil
}

// checkpointDoc is one consumer's saved position. The token is the feed's
// opaque resume token, stored as binary so no backend reinterprets it.
type checkpointDoc struct {
	ID        string      `bson:"_id"`
	Token     bson.Binary `bson:"token"`
	UpdatedAt time.Time   `bson:"updatedAt"`
}

func (s *postStore) Checkpoint(ctx context.Context, consumer string) (changes.Token, error) {
	return s.db.checkpoint(ctx, consumer)
}

// checkpoint reads a consumer's saved position, nil when it has none.
func (db *DB) checkpoint(ctx context.Context, consumer string) (changes.Token, error) {
	var d checkpointDoc
	err := db.checkpoints.findOne(ctx, bson.D{{Key: "_id", Value: consumer}}, &d)
	if errors.Is(err, ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mongo: read checkpoint %q: %w", consumer, err)
	}
	if len(d.Token.Data) == 0 {
		return nil, nil
	}
	return changes.Token(d.Token.Data), nil
}

// Apply folds a batch of comment events into the posts by the rules of
// post.ApplyComments and saves the checkpoint, all in one transaction: a
// crash leaves either the whole batch and its checkpoint or neither. Each
// event is also idempotent on its own (post_comments is keyed by the
// comment's _id, and an insert only counts when it creates that entry),
// because a batch is redelivered after a crash between reading it and
// committing it, and because a real server may run the transaction body
// more than once. Under a lease (b.Fence set) a batch
// from a replica that has lost the lease is refused with changes.ErrFenced.
func (s *postStore) Apply(ctx context.Context, consumer string, b changes.Batch[comment.Comment]) error {
	if err := b.Validate(); err != nil {
		return fmt.Errorf("mongo: apply %d comment events for %q: %w", len(b.Events), consumer, err)
	}
	err := s.db.b.WithTransaction(ctx, func(ctx context.Context) error {
		if err := s.db.checkFence(ctx, consumer, b.Fence); err != nil {
			return err
		}
		// The body may run more than once: the rules start afresh each time.
		if _, err := post.ApplyComments(ctx, readModel{db: s.db}, b.Events, s.db.opt.EmbedLimit); err != nil {
			return err
		}
		return s.db.saveCheckpoint(ctx, consumer, b.Token, false)
	})
	if err != nil {
		return fmt.Errorf("mongo: apply %d comment events for %q: %w", len(b.Events), consumer, err)
	}
	return nil
}

// saveCheckpoint records tok as consumer's position; endRebuild also drops
// the progress of a rebuild, which tok completes.
func (db *DB) saveCheckpoint(ctx context.Context, consumer string, tok changes.Token, endRebuild bool) error {
	update := bson.D{{Key: "$set", Value: bson.D{
		{Key: "token", Value: bson.Binary{Data: tok}},
		{Key: "updatedAt", Value: ms(time.Now())},
	}}}
	if endRebuild {
		update = append(update, bson.E{Key: "$unset", Value: bson.D{{Key: "rebuild", Value: ""}}})
	}
	if _, err := db.checkpoints.updateOne(ctx, bson.D{{Key: "_id", Value: consumer}}, update, true); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	return nil
}

// readModel is post.ReadModel over one transaction: a copy of every
// comment in post_comments (for exact counts and for back-filling the
// window after a delete), and each post's embedded window and commentCount
// in the post document itself, so a read of a post is one document.
type readModel struct{ db *DB }

var _ post.ReadModel = readModel{}

func (r readModel) LoadPost(ctx context.Context, id string) (post.PostState, bool, error) {
	pid, ok := oid(id)
	if !ok {
		return post.PostState{}, false, nil
	}
	var d struct {
		Comments     []embedDoc `bson:"comments"`
		CommentCount int64      `bson:"commentCount"`
	}
	err := r.db.posts.findOne(ctx, idFilter(pid), &d)
	if errors.Is(err, ErrNoDocuments) {
		return post.PostState{}, false, nil
	}
	if err != nil {
		return post.PostState{}, false, err
	}
	st := post.PostState{Count: int(d.CommentCount), Windowed: true, Window: make([]post.Comment, len(d.Comments))}
	for i, e := range d.Comments {
		st.Window[i] = e.comment()
	}
	return st, true, nil
}

// copyDoc returns c as its post_comments copy; the rules have checked its
// ids (post.CheckEvent).
func copyDoc(c comment.Comment) (commentDoc, error) {
	id, ok1 := oid(c.ID)
	pid, ok2 := oid(c.PostID)
	if !ok1 || !ok2 {
		return commentDoc{}, fmt.Errorf("comment %q of post %q: malformed id", c.ID, c.PostID)
	}
	return commentDoc{ID: id, PostID: pid, Text: c.Text, CreatedAt: ms(c.CreatedAt), UpdatedAt: msPtr(c.UpdatedAt)}, nil
}

func (r readModel) InsertCopy(ctx context.Context, c comment.Comment) (bool, error) {
	d, err := copyDoc(c)
	if err != nil {
		return false, err
	}
	// An upsert, not an insert: a duplicate-key error would abort the whole
	// transaction on a real server, whereas Upserted says just as well
	// whether this event was applied before.
	fields := bson.D{
		{Key: "postId", Value: d.PostID},
		{Key: "text", Value: d.Text},
		{Key: "createdAt", Value: d.CreatedAt},
	}
	if d.UpdatedAt != nil {
		fields = append(fields, bson.E{Key: "updatedAt", Value: *d.UpdatedAt})
	}
	res, err := r.db.postComments.updateOne(ctx, idFilter(d.ID), bson.D{{Key: "$setOnInsert", Value: fields}}, true)
	if err != nil {
		return false, err
	}
	return res.Upserted, nil
}

func (r readModel) UpdateCopy(ctx context.Context, c comment.Comment) (found, changed bool, err error) {
	d, err := copyDoc(c)
	if err != nil {
		return false, false, err
	}
	res, err := r.db.postComments.updateOne(ctx, idFilter(d.ID), copyUpdate(d), false)
	if err != nil {
		return false, false, err
	}
	return res.Matched > 0, res.Modified > 0, nil
}

func (r readModel) DeleteCopy(ctx context.Context, id string) (comment.Comment, bool, error) {
	cid, ok := oid(id)
	if !ok {
		return comment.Comment{}, false, fmt.Errorf("comment %q: malformed id", id)
	}
	var d commentDoc
	err := r.db.postComments.findOneAndDelete(ctx, idFilter(cid), &d)
	if errors.Is(err, ErrNoDocuments) {
		return comment.Comment{}, false, nil
	}
	if err != nil {
		return comment.Comment{}, false, err
	}
	return d.comment(), true, nil
}

func (r readModel) Older(ctx context.Context, postID string, bound post.Comment, n int) ([]post.Comment, error) {
	pid, ok := oid(postID)
	if !ok {
		return nil, fmt.Errorf("post %q: malformed id", postID)
	}
	older, ok := after(&page.Cursor{At: bound.CreatedAt, ID: bound.ID}, false)
	if !ok {
		return nil, fmt.Errorf("comment %q: malformed id", bound.ID)
	}
	filter := append(bson.D{{Key: "postId", Value: pid}}, older...)
	sort := bson.D{{Key: "createdAt", Value: -1}, {Key: "_id", Value: -1}}
	docs, err := find[commentDoc](ctx, r.db.postComments, filter, sort, int64(n))
	if err != nil {
		return nil, err
	}
	out := make([]post.Comment, len(docs))
	for i, d := range docs {
		out[len(docs)-1-i] = d.embed().comment()
	}
	return out, nil
}

func (r readModel) SavePost(ctx context.Context, id string, st post.PostState) error {
	pid, ok := oid(id)
	if !ok {
		return fmt.Errorf("post %q: malformed id", id)
	}
	comments := make([]embedDoc, 0, len(st.Window)) // the seed's `comments: []`, never null
	for _, c := range st.Window {
		e, err := embedOf(c)
		if err != nil {
			return err
		}
		comments = append(comments, e)
	}
	set := bson.D{{Key: "$set", Value: bson.D{
		{Key: "comments", Value: comments},
		{Key: "commentCount", Value: int64(st.Count)},
	}}}
	_, err := r.db.posts.updateOne(ctx, idFilter(pid), set, false)
	return err
}

// comment returns the embedded copy as the rules see it.
func (e embedDoc) comment() post.Comment {
	return post.Comment{ID: e.ID.Hex(), Text: e.Text, CreatedAt: ms(e.CreatedAt), UpdatedAt: msPtr(e.UpdatedAt)}
}

func embedOf(c post.Comment) (embedDoc, error) {
	id, ok := oid(c.ID)
	if !ok {
		return embedDoc{}, fmt.Errorf("embedded comment %q: malformed id", c.ID)
	}
	return embedDoc{ID: id, Text: c.Text, CreatedAt: ms(c.CreatedAt), UpdatedAt: msPtr(c.UpdatedAt)}, nil
}
