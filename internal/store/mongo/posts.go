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

// Apply folds a batch of comment events into the posts and saves the
// checkpoint, all in one transaction: a crash leaves either the whole batch
// and its checkpoint or neither. Each event is also idempotent on its own
// (post_comments is keyed by the comment's _id, and an insert only counts
// when it creates that entry), because a batch is redelivered after a crash
// between reading it and committing it, and because a real server may run
// the transaction body more than once. Under a lease (b.Fence set) a batch
// from a replica that has lost the lease is refused with changes.ErrFenced.
func (s *postStore) Apply(ctx context.Context, consumer string, b changes.Batch[comment.Comment]) error {
	if err := checkBatch(b); err != nil {
		return fmt.Errorf("mongo: apply %d comment events for %q: %w", len(b.Events), consumer, err)
	}
	err := s.db.b.WithTransaction(ctx, func(ctx context.Context) error {
		if err := s.db.checkFence(ctx, consumer, b.Fence); err != nil {
			return err
		}
		pr := projection{db: s.db, posts: map[bson.ObjectID]*postState{}}
		for _, ev := range b.Events {
			if err := pr.apply(ctx, ev); err != nil {
				return fmt.Errorf("apply %s of comment %s: %w", ev.Op, ev.Key, err)
			}
		}
		if err := pr.flush(ctx); err != nil {
			return err
		}
		return s.db.saveCheckpoint(ctx, consumer, b.Token, false)
	})
	if err != nil {
		return fmt.Errorf("mongo: apply %d comment events for %q: %w", len(b.Events), consumer, err)
	}
	return nil
}

// checkBatch refuses, before anything is written, a batch that neither
// sink may apply:
//
//   - one with no token: there would be no position to save, and a consumer
//     whose checkpoint does not move replays the batch forever, or, with
//     no checkpoint yet, restarts at the feed's "now" and loses everything
//     in between;
//   - one with an undecodable event (Err set): applying the rest and
//     checkpointing past it would lose that event silently. The consumer
//     isolates and parks such events (DeadLetter) instead; one that gets
//     here anyway fails loudly rather than vanishing.
func checkBatch[T any](b changes.Batch[T]) error {
	if len(b.Token) == 0 {
		return errors.New("batch has no token")
	}
	for _, ev := range b.Events {
		if ev.Err != nil {
			return fmt.Errorf("%s of %s: undecodable event: %w", ev.Op, ev.Key, ev.Err)
		}
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

// projection applies one batch inside its transaction. Posts touched by the
// batch are loaded once, changed in memory, and written once at the end;
// post_comments is written as each event is applied, so the refill queries
// of later events in the batch see earlier ones.
type projection struct {
	db    *DB
	posts map[bson.ObjectID]*postState
	order []bson.ObjectID // touched posts in first-touch order, for flush
}

// postState is the part of a post the projection maintains.
type postState struct {
	exists   bool
	comments []embedDoc // oldest first, at most EmbedLimit
	count    int64
	dirty    bool
}

func (pr *projection) post(ctx context.Context, id bson.ObjectID) (*postState, error) {
	if st, ok := pr.posts[id]; ok {
		return st, nil
	}
	var d struct {
		Comments     []embedDoc `bson:"comments"`
		CommentCount int64      `bson:"commentCount"`
	}
	st := &postState{}
	err := pr.db.posts.findOne(ctx, idFilter(id), &d)
	switch {
	case errors.Is(err, ErrNoDocuments):
	case err != nil:
		return nil, err
	default:
		st.exists, st.comments, st.count = true, d.Comments, d.CommentCount
	}
	pr.posts[id] = st
	pr.order = append(pr.order, id)
	return st, nil
}

func (pr *projection) apply(ctx context.Context, ev changes.Event[comment.Comment]) error {
	switch ev.Op {
	case changes.Insert:
		return pr.insert(ctx, ev)
	case changes.Update:
		return pr.update(ctx, ev)
	case changes.Delete:
		return pr.delete(ctx, ev)
	}
	pr.db.log.Warn("skipping comment event of unknown kind", "op", ev.Op, "comment", ev.Key)
	return nil
}

func (pr *projection) insert(ctx context.Context, ev changes.Event[comment.Comment]) error {
	if !ev.Found {
		return nil // nothing to embed; the feed has logged why
	}
	id, ok1 := oid(ev.Key)
	pid, ok2 := oid(ev.Doc.PostID)
	if !ok1 || !ok2 {
		pr.db.log.Warn("skipping comment event with a malformed id", "comment", ev.Key, "post", ev.Doc.PostID)
		return nil
	}
	st, err := pr.post(ctx, pid)
	if err != nil || !st.exists {
		return err // a comment of a deleted post is a no-op
	}
	c := ev.Doc
	d := commentDoc{ID: id, PostID: pid, Text: c.Text, CreatedAt: ms(c.CreatedAt), UpdatedAt: msPtr(c.UpdatedAt)}
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
	r, err := pr.db.postComments.updateOne(ctx, idFilter(id), bson.D{{Key: "$setOnInsert", Value: fields}}, true)
	if err != nil {
		return err
	}
	if !r.Upserted {
		return nil // replayed event: already counted and embedded
	}
	st.count++
	st.dirty = true
	st.embed(d.embed(), pr.db.opt.EmbedLimit)
	return nil
}

// update refreshes the comment's copy and its embedded copy, if embedded.
// With no copy yet (the comment's insert came before this consumer's first
// checkpoint, or before the position a rebuild started from) the update,
// which carries the whole comment, copies, counts and embeds it as its
// insert would have, provided its post exists.
//
// It cannot bring back a comment deleted earlier: in commit order a
// comment's delete event comes after its updates, and undoes such a copy
// when it is applied in turn; and an update event whose comment was gone
// when the feed looked it up (fullDocument: updateLookup) carries no
// document (Found false) and changes nothing here.
func (pr *projection) update(ctx context.Context, ev changes.Event[comment.Comment]) error {
	if !ev.Found {
		// Deleted since (updateLookup found nothing): its delete event
		// follows and does the work.
		return nil
	}
	id, ok1 := oid(ev.Key)
	pid, ok2 := oid(ev.Doc.PostID)
	if !ok1 || !ok2 {
		pr.db.log.Warn("skipping comment event with a malformed id", "comment", ev.Key, "post", ev.Doc.PostID)
		return nil
	}
	text, at := ev.Doc.Text, msPtr(ev.Doc.UpdatedAt)
	// The copy is kept current even when the comment is not embedded, so
	// it shows the new text if a delete later brings it into the window.
	d := commentDoc{ID: id, PostID: pid, Text: text, CreatedAt: ev.Doc.CreatedAt, UpdatedAt: at}
	r, err := pr.db.postComments.updateOne(ctx, idFilter(id), copyUpdate(d), false)
	if err != nil {
		return err
	}
	if r.Matched == 0 {
		return pr.insert(ctx, ev)
	}
	st, err := pr.post(ctx, pid)
	if err != nil || !st.exists {
		return err
	}
	for i := range st.comments {
		if st.comments[i].ID == id {
			st.comments[i].Text, st.comments[i].UpdatedAt = text, at
			st.dirty = true
		}
	}
	return nil
}

func (pr *projection) delete(ctx context.Context, ev changes.Event[comment.Comment]) error {
	id, ok := oid(ev.Key)
	if !ok {
		pr.db.log.Warn("skipping comment event with a malformed id", "comment", ev.Key)
		return nil
	}
	// A delete event names only the comment, so its post comes from the
	// read model's own copy. No copy: the comment was never applied here
	// (or this is a replay), and there is nothing to undo.
	var d commentDoc
	err := pr.db.postComments.findOneAndDelete(ctx, idFilter(id), &d)
	if errors.Is(err, ErrNoDocuments) {
		return nil
	}
	if err != nil {
		return err
	}
	st, err := pr.post(ctx, d.PostID)
	if err != nil || !st.exists {
		return err
	}
	st.count = max(st.count-1, 0)
	st.dirty = true
	i := st.index(id)
	if i < 0 {
		return nil
	}
	st.comments = append(st.comments[:i], st.comments[i+1:]...)
	return pr.refill(ctx, d.PostID, st, d)
}

// refill tops a post's embedded window back up after a delete with the next
// older comments from post_comments. Everything older than the oldest
// embedded comment (or than the deleted one, if none is left) is by
// construction not embedded, so nothing is embedded twice.
func (pr *projection) refill(ctx context.Context, pid bson.ObjectID, st *postState, deleted commentDoc) error {
	n := pr.db.opt.EmbedLimit - len(st.comments)
	if n <= 0 {
		return nil
	}
	bound := &page.Cursor{At: deleted.CreatedAt, ID: deleted.ID.Hex()}
	if len(st.comments) > 0 {
		bound = &page.Cursor{At: st.comments[0].CreatedAt, ID: st.comments[0].ID.Hex()}
	}
	older, _ := after(bound, false) // the cursor is built from valid ids
	filter := append(bson.D{{Key: "postId", Value: pid}}, older...)
	sort := bson.D{{Key: "createdAt", Value: -1}, {Key: "_id", Value: -1}}
	docs, err := find[commentDoc](ctx, pr.db.postComments, filter, sort, int64(n))
	if err != nil {
		return fmt.Errorf("refill embedded comments: %w", err)
	}
	fill := make([]embedDoc, 0, len(docs)+len(st.comments))
	for i := len(docs) - 1; i >= 0; i-- {
		fill = append(fill, docs[i].embed())
	}
	st.comments = append(fill, st.comments...)
	return nil
}

// flush writes every post the batch changed.
func (pr *projection) flush(ctx context.Context) error {
	for _, id := range pr.order {
		st := pr.posts[id]
		if !st.dirty {
			continue
		}
		comments := st.comments
		if comments == nil {
			comments = []embedDoc{}
		}
		set := bson.D{{Key: "$set", Value: bson.D{
			{Key: "comments", Value: comments},
			{Key: "commentCount", Value: st.count},
		}}}
		if _, err := pr.db.posts.updateOne(ctx, idFilter(id), set, false); err != nil {
			return fmt.Errorf("write post %s: %w", id.Hex(), err)
		}
	}
	return nil
}

func (st *postState) index(id bson.ObjectID) int {
	for i := range st.comments {
		if st.comments[i].ID == id {
			return i
		}
	}
	return -1
}

// embed inserts e in order and drops the oldest beyond limit. Because the
// window always holds the latest comments, a comment older than all of a
// full window falls straight out again, which is the rule.
func (st *postState) embed(e embedDoc, limit int) {
	if st.index(e.ID) >= 0 {
		return
	}
	i := len(st.comments)
	for i > 0 && before(e.CreatedAt, e.ID, st.comments[i-1].CreatedAt, st.comments[i-1].ID) {
		i--
	}
	st.comments = append(st.comments, embedDoc{})
	copy(st.comments[i+1:], st.comments[i:])
	st.comments[i] = e
	if over := len(st.comments) - limit; over > 0 {
		st.comments = st.comments[over:]
	}
}
