package mongo

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"blog/internal/comment"
	"blog/internal/page"
	"blog/internal/post"
)

// Collection names. posts and comments are the seed's; the others belong to
// the consumers (the posts service's read model and its bookkeeping).
const (
	postsColl    = "posts"
	commentsColl = "comments"
	// postCommentsColl is the posts service's full copy of every comment it
	// has applied, keyed by the comment's _id. A delete event carries only
	// the comment's _id, so this is where Apply learns which post to fix; it
	// also makes commentCount exact and refills a post's embedded window.
	postCommentsColl = "post_comments"
	// checkpointsColl holds one document per consumer: {_id: name, token},
	// plus the progress of a rebuild under way.
	checkpointsColl = "checkpoints"
	// leasesColl holds one lease per consumer, so that of several replicas
	// one consumes at a time: {_id: name, holder, fence, expires}.
	leasesColl = "leases"
	// deadLettersColl holds the events a consumer could not apply, for an
	// operator to inspect (DB.DeadLetters): {_id: consumer/token, consumer,
	// op, key, doc, token, reason, committedAt, parkedAt, seq}.
	deadLettersColl = "dead_letters"
)

// postDoc is a post as stored, shaped like the seed's documents (mongoose's
// extra fields such as __v are ignored when decoding).
type postDoc struct {
	ID           bson.ObjectID `bson:"_id"`
	Title        string        `bson:"title"`
	Content      string        `bson:"content"`
	Comments     []embedDoc    `bson:"comments"`
	CommentCount int64         `bson:"commentCount"`
	CreatedAt    time.Time     `bson:"createdAt"`
	UpdatedAt    *time.Time    `bson:"updatedAt,omitempty"`
}

// embedDoc is a comment embedded in its post.
type embedDoc struct {
	ID        bson.ObjectID `bson:"_id"`
	Text      string        `bson:"text"`
	CreatedAt time.Time     `bson:"createdAt"`
	UpdatedAt *time.Time    `bson:"updatedAt,omitempty"`
}

// commentDoc is a comment as stored in comments, and the posts service's
// copy of it in post_comments.
type commentDoc struct {
	ID        bson.ObjectID `bson:"_id"`
	PostID    bson.ObjectID `bson:"postId"`
	Text      string        `bson:"text"`
	CreatedAt time.Time     `bson:"createdAt"`
	UpdatedAt *time.Time    `bson:"updatedAt,omitempty"`
}

// ms returns t as BSON stores it: UTC, millisecond precision. Every time is
// normalised on the way in, so what a caller reads back equals what it
// wrote, whatever the backend.
func ms(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

func msPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := ms(*t)
	return &v
}

func (d postDoc) post() post.Post {
	p := post.Post{
		ID:           d.ID.Hex(),
		Title:        d.Title,
		Content:      d.Content,
		Comments:     make([]post.Comment, 0, len(d.Comments)),
		CommentCount: int(d.CommentCount),
		CreatedAt:    ms(d.CreatedAt),
		UpdatedAt:    msPtr(d.UpdatedAt),
	}
	for _, e := range d.Comments {
		p.Comments = append(p.Comments, post.Comment{
			ID:        e.ID.Hex(),
			Text:      e.Text,
			CreatedAt: ms(e.CreatedAt),
			UpdatedAt: msPtr(e.UpdatedAt),
		})
	}
	return p
}

func (d commentDoc) comment() comment.Comment {
	return comment.Comment{
		ID:        d.ID.Hex(),
		PostID:    d.PostID.Hex(),
		Text:      d.Text,
		CreatedAt: ms(d.CreatedAt),
		UpdatedAt: msPtr(d.UpdatedAt),
	}
}

func (d commentDoc) embed() embedDoc {
	return embedDoc{ID: d.ID, Text: d.Text, CreatedAt: ms(d.CreatedAt), UpdatedAt: msPtr(d.UpdatedAt)}
}

// oid parses a 24-hex id. ok is false for anything else, which the stores
// treat as "no such document" rather than as an error: an id that cannot
// exist is simply not found.
func oid(id string) (bson.ObjectID, bool) {
	v, err := bson.ObjectIDFromHex(id)
	return v, err == nil
}

// limit returns a page's size, with the package default for an unset one.
func limit(q page.Query) int64 {
	if q.Limit <= 0 {
		return page.DefaultLimit
	}
	return int64(q.Limit)
}

// after returns the keyset filter for the items strictly after cursor c in a
// list ordered by (createdAt, _id), ascending when asc, else descending. It
// uses only $or/$lt/$gt so every backend evaluates it the same way, and the
// compound indexes on (createdAt, _id) serve it.
func after(c *page.Cursor, asc bool) (bson.D, bool) {
	if c == nil {
		return nil, true
	}
	id, ok := oid(c.ID)
	if !ok {
		return nil, false
	}
	op := "$lt"
	if asc {
		op = "$gt"
	}
	at := ms(c.At)
	return bson.D{{Key: "$or", Value: bson.A{
		bson.D{{Key: "createdAt", Value: bson.D{{Key: op, Value: at}}}},
		bson.D{{Key: "createdAt", Value: at}, {Key: "_id", Value: bson.D{{Key: op, Value: id}}}},
	}}}, true
}

// coll is a Collection with the BSON encoding and decoding done once, here,
// so the stores read as queries rather than as byte plumbing.
type coll struct {
	c    collection
	name string
}

func encode(v any) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	b, err := bson.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode bson: %w", err)
	}
	return b, nil
}

// encode2 encodes two documents, for the many calls that take a filter and
// an update.
func encode2(a, b any) ([]byte, []byte, error) {
	x, err := encode(a)
	if err != nil {
		return nil, nil, err
	}
	y, err := encode(b)
	return x, y, err
}

func (c coll) insert(ctx context.Context, doc any) error {
	b, err := encode(doc)
	if err != nil {
		return err
	}
	if err := c.c.InsertOne(ctx, b); err != nil {
		return fmt.Errorf("insert into %s: %w", c.name, err)
	}
	return nil
}

// findOne decodes the first match into out; ErrNoDocuments when none.
func (c coll) findOne(ctx context.Context, filter, out any) error {
	f, err := encode(filter)
	if err != nil {
		return err
	}
	raw, err := c.c.FindOne(ctx, f)
	if err != nil {
		return fmt.Errorf("find in %s: %w", c.name, err)
	}
	return decodeInto(c.name, raw, out)
}

// find decodes every match into a slice of T.
func find[T any](ctx context.Context, c coll, filter, sort any, limit int64) ([]T, error) {
	f, s, err := encode2(filter, sort)
	if err != nil {
		return nil, err
	}
	raws, err := c.c.Find(ctx, f, s, limit)
	if err != nil {
		return nil, fmt.Errorf("find in %s: %w", c.name, err)
	}
	out := make([]T, len(raws))
	for i, raw := range raws {
		if err := decodeInto(c.name, raw, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// list is find for the paths that serve a list to a client (a post's
// comments, a page of posts): a document that does not decode into T, such
// as one written by hand with a field of the wrong type, is logged and
// skipped, as scan skips it in a rebuild, instead of failing every page
// that holds it. The page is then topped up from the documents after it, so
// that only the last page of a list can come back short: the HTTP API and
// `blog verify` read a short page as the end of the list.
func list[T any](ctx context.Context, db *DB, c coll, filter, sort bson.D, n int64) ([]T, error) {
	if n <= 0 {
		return nil, fmt.Errorf("list %s: limit %d, want > 0", c.name, n)
	}
	f, s, err := encode2(filter, sort)
	if err != nil {
		return nil, err
	}
	// Each round reads the same list from its start with a larger limit,
	// rather than continuing after the last document read: that document may
	// be the unreadable one, and a keyset filter built from its values would
	// compare, by MongoDB's type bracketing, only with values of its types.
	// read is how many documents the previous round saw, so each skipped
	// document is logged once.
	read := 0
	for lim := n; ; lim *= 2 {
		raws, err := c.c.Find(ctx, f, s, lim)
		if err != nil {
			return nil, fmt.Errorf("find in %s: %w", c.name, err)
		}
		out := make([]T, 0, n)
		for i, raw := range raws {
			var v T
			if err := bson.Unmarshal(raw, &v); err != nil {
				if i >= read {
					db.log.Warn("list skips a document it cannot read", "collection", c.name,
						"id", bson.Raw(raw).Lookup("_id").String(), "err", err)
				}
				continue
			}
			if out = append(out, v); int64(len(out)) == n {
				return out, nil
			}
		}
		if int64(len(raws)) < lim {
			return out, nil // the list ends within this round
		}
		read = len(raws)
	}
}

func (c coll) updateOne(ctx context.Context, filter, update any, upsert bool) (UpdateResult, error) {
	f, u, err := encode2(filter, update)
	if err != nil {
		return UpdateResult{}, err
	}
	r, err := c.c.UpdateOne(ctx, f, u, upsert)
	if err != nil {
		return r, fmt.Errorf("update %s: %w", c.name, err)
	}
	return r, nil
}

func (c coll) findOneAndUpdate(ctx context.Context, filter, update, out any) error {
	f, u, err := encode2(filter, update)
	if err != nil {
		return err
	}
	raw, err := c.c.FindOneAndUpdate(ctx, f, u)
	if err != nil {
		return fmt.Errorf("update %s: %w", c.name, err)
	}
	return decodeInto(c.name, raw, out)
}

func (c coll) findOneAndDelete(ctx context.Context, filter, out any) error {
	f, err := encode(filter)
	if err != nil {
		return err
	}
	raw, err := c.c.FindOneAndDelete(ctx, f)
	if err != nil {
		return fmt.Errorf("delete from %s: %w", c.name, err)
	}
	return decodeInto(c.name, raw, out)
}

func (c coll) deleteMany(ctx context.Context, filter any) (int64, error) {
	f, err := encode(filter)
	if err != nil {
		return 0, err
	}
	n, err := c.c.DeleteMany(ctx, f)
	if err != nil {
		return 0, fmt.Errorf("delete from %s: %w", c.name, err)
	}
	return n, nil
}

func decodeInto(name string, raw []byte, out any) error {
	if err := bson.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode %s document: %w", name, err)
	}
	return nil
}

// idFilter matches one document by _id.
func idFilter(id bson.ObjectID) bson.D { return bson.D{{Key: "_id", Value: id}} }
