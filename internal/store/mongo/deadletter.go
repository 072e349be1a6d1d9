package mongo

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"blog/internal/changes"
	"blog/internal/comment"
	"blog/internal/post"
)

// deadLetterDoc is a dead_letters record as stored.
type deadLetterDoc struct {
	ID          string        `bson:"_id"`
	Consumer    string        `bson:"consumer"`
	Op          string        `bson:"op"`
	Key         string        `bson:"key"`
	Doc         bson.Raw      `bson:"doc,omitempty"`
	Reason      string        `bson:"reason"`
	Token       bson.Binary   `bson:"token"`
	CommittedAt time.Time     `bson:"committedAt"`
	ParkedAt    time.Time     `bson:"parkedAt"`
	Seq         bson.ObjectID `bson:"seq"`
}

// deadLettersIndex serves DeadLetters: one consumer's records, oldest first.
var deadLettersIndex = bson.D{{Key: "consumer", Value: 1}, {Key: "parkedAt", Value: 1}, {Key: "seq", Value: 1}}

// DeadLetters returns the events the named consumer has parked, oldest
// first; what an operator reads (`blog deadletters`) to decide what to mend
// by hand. IDs are the records' _ids: the consumer's name and the event's
// token.
func (db *DB) DeadLetters(ctx context.Context, consumer string) ([]changes.DeadLetter, error) {
	docs, err := find[deadLetterDoc](ctx, db.deadLetters, bson.D{{Key: "consumer", Value: consumer}}, deadLettersIndex, 0)
	if err != nil {
		return nil, fmt.Errorf("mongo: read dead letters of %q: %w", consumer, err)
	}
	out := make([]changes.DeadLetter, len(docs))
	for i, d := range docs {
		out[i] = changes.DeadLetter{
			ID:       d.ID,
			Consumer: d.Consumer,
			Op:       changes.Op(d.Op),
			Key:      d.Key,
			Doc:      d.Doc,
			Reason:   d.Reason,
			Token:    changes.Token(d.Token.Data),
			At:       ms(d.ParkedAt),
		}
	}
	return out, nil
}

// DeadLetters returns the comment events the consumer has parked.
func (s *postStore) DeadLetters(ctx context.Context, consumer string) ([]changes.DeadLetter, error) {
	return s.db.DeadLetters(ctx, consumer)
}

// DeadLetters returns the post events the consumer has parked.
func (c *cascade) DeadLetters(ctx context.Context, consumer string) ([]changes.DeadLetter, error) {
	return c.db.DeadLetters(ctx, consumer)
}

var (
	_ changes.DeadLetterStore = (*postStore)(nil)
	_ changes.DeadLetterStore = (*cascade)(nil)
)

// parkedKey returns the key of the consumer's dead letter id.
func (db *DB) parkedKey(ctx context.Context, consumer, id string) (string, error) {
	var d deadLetterDoc
	err := db.deadLetters.findOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "consumer", Value: consumer}}, &d)
	if errors.Is(err, ErrNoDocuments) {
		return "", fmt.Errorf("dead letter %s of %q: %w", id, consumer, changes.ErrNoDeadLetter)
	}
	return d.Key, err
}

// RetryDeadLetter applies the parked comment event id again, from the
// comment as the comments collection holds it now (an update when it
// exists, which copies it if need be; a delete when it is gone), by the
// rules of post.ApplyComments, and removes the record, in one transaction.
// A comment that still cannot be read or applied keeps its record and
// returns why.
func (s *postStore) RetryDeadLetter(ctx context.Context, consumer, id string) error {
	err := s.db.b.WithTransaction(ctx, func(ctx context.Context) error {
		key, err := s.db.parkedKey(ctx, consumer, id)
		if err != nil {
			return err
		}
		ev := changes.Event[comment.Comment]{Op: changes.Delete, Key: key}
		if cid, ok := oid(key); ok {
			var d commentDoc
			switch err := s.db.comments.findOne(ctx, idFilter(cid), &d); {
			case err == nil:
				ev = changes.Event[comment.Comment]{Op: changes.Update, Key: key, Doc: d.comment(), Found: true}
			case !errors.Is(err, ErrNoDocuments):
				return fmt.Errorf("comment %s is still unreadable: %w", key, err)
			}
		}
		if _, err := post.ApplyComments(ctx, readModel{db: s.db}, []changes.Event[comment.Comment]{ev}, s.db.opt.EmbedLimit); err != nil {
			return err
		}
		_, err = s.db.deadLetters.deleteMany(ctx, bson.D{{Key: "_id", Value: id}})
		return err
	})
	if err != nil {
		return fmt.Errorf("mongo: retry dead letter %s of %q: %w", id, consumer, err)
	}
	return nil
}

// RetryDeadLetter applies the parked post event id again: if that post does
// not exist (now), its comments are deleted by comment.DeleteChunked, a
// chunk per transaction; then the record is removed. A live post's
// comments stay, whatever the event was.
func (c *cascade) RetryDeadLetter(ctx context.Context, consumer, id string) error {
	key, err := c.db.parkedKey(ctx, consumer, id)
	if err == nil {
		err = comment.CheckPostEvent(changes.Event[post.Post]{Op: changes.Delete, Key: key})
	}
	if err == nil {
		_, err = comment.DeleteChunked(ctx, key, c.db.deleteChunk, 0, c.orphans(consumer, 0))
	}
	if err == nil {
		_, err = c.db.deadLetters.deleteMany(ctx, bson.D{{Key: "_id", Value: id}, {Key: "consumer", Value: consumer}})
	}
	if err != nil {
		return fmt.Errorf("mongo: retry dead letter %s of %q: %w", id, consumer, err)
	}
	return nil
}

// DeadLetter parks a comment event the posts read model could not apply;
// see park.
func (s *postStore) DeadLetter(ctx context.Context, consumer string, ev changes.Event[comment.Comment], reason string, fence int64) error {
	var doc bson.D
	if ev.Found {
		doc = bson.D{
			{Key: "_id", Value: idValue(ev.Key)},
			{Key: "postId", Value: idValue(ev.Doc.PostID)},
			{Key: "text", Value: ev.Doc.Text},
			{Key: "createdAt", Value: ms(ev.Doc.CreatedAt)},
		}
		if ev.Doc.UpdatedAt != nil {
			doc = append(doc, bson.E{Key: "updatedAt", Value: ms(*ev.Doc.UpdatedAt)})
		}
	}
	return s.db.park(ctx, consumer, s.db.comments, parked{op: ev.Op, key: ev.Key, token: ev.Token, at: ev.At, doc: doc}, reason, fence)
}

// idValue returns id as it is stored: an ObjectID, or the string itself
// when it is not one.
func idValue(id string) any {
	if v, ok := oid(id); ok {
		return v
	}
	return id
}

// parked is what dead_letters records of an event, whatever its type.
type parked struct {
	op    changes.Op
	key   string
	token changes.Token
	at    time.Time
	doc   bson.D // the event's decoded document, when it has one
}

// park records an event a consumer could not apply in dead_letters, where
// an operator can find it by consumer and key, and moves the consumer's
// checkpoint past it, in one transaction under the fence. An event with no
// decoded document (one that could not be decoded) is recorded with the
// source collection's document of that _id, raw, if it is still there.
// Parking the same event twice (after a crash) updates the first record
// instead of adding another, and keeps its place in the order.
func (db *DB) park(ctx context.Context, consumer string, source coll, ev parked, reason string, fence int64) error {
	if len(ev.token) == 0 {
		return fmt.Errorf("mongo: park %s of %s for %q: event has no token", ev.op, ev.key, consumer)
	}
	id := consumer + "/" + hex.EncodeToString(ev.token)
	err := db.b.WithTransaction(ctx, func(ctx context.Context) error {
		if err := db.checkFence(ctx, consumer, fence); err != nil {
			return err
		}
		rec := bson.D{
			{Key: "consumer", Value: consumer},
			{Key: "op", Value: string(ev.op)},
			{Key: "key", Value: ev.key},
			{Key: "token", Value: bson.Binary{Data: ev.token}},
			{Key: "reason", Value: reason},
			{Key: "committedAt", Value: ms(ev.at)},
		}
		switch doc, err := db.parkedDoc(ctx, source, ev); {
		case err != nil:
			return err
		case doc != nil:
			rec = append(rec, bson.E{Key: "doc", Value: doc})
		}
		update := bson.D{
			{Key: "$set", Value: rec},
			{Key: "$setOnInsert", Value: bson.D{
				{Key: "parkedAt", Value: ms(time.Now())},
				{Key: "seq", Value: bson.NewObjectID()},
			}},
		}
		if _, err := db.deadLetters.updateOne(ctx, bson.D{{Key: "_id", Value: id}}, update, true); err != nil {
			return err
		}
		return db.saveCheckpoint(ctx, consumer, ev.token, false)
	})
	if err != nil {
		return fmt.Errorf("mongo: park %s of %s for %q: %w", ev.op, ev.key, consumer, err)
	}
	return nil
}

// parkedDoc returns the document to record with a parked event: the
// decoded one it carries, else (an insert or update that could not be
// decoded) the source's raw document, else nil.
func (db *DB) parkedDoc(ctx context.Context, source coll, ev parked) (any, error) {
	if ev.doc != nil {
		return ev.doc, nil
	}
	id, ok := oid(ev.key)
	if ev.op == changes.Delete || !ok {
		return nil, nil
	}
	f, err := encode(idFilter(id))
	if err != nil {
		return nil, err
	}
	raw, err := source.c.FindOne(ctx, f)
	if errors.Is(err, ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find in %s: %w", source.name, err)
	}
	return bson.Raw(raw), nil
}
