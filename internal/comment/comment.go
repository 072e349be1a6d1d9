// Package comment is the comments service's domain: the comment type, its
// rules (input validation, the post-delete cascade), and the store port it
// depends on. Its HTTP API is package commentapi.
//
// Comments are the source of truth for the posts service's embedded copies:
// every write here becomes a change event that the posts service consumes.
package comment

import (
	"context"
	"time"

	"blog/internal/fault"
	"blog/internal/page"
)

// Comment is one comment on one post, as stored and as served.
type Comment struct {
	ID        string     `json:"_id"`
	PostID    string     `json:"postId"`
	Text      string     `json:"text"`
	CreatedAt time.Time  `json:"createdAt"`
	UpdatedAt *time.Time `json:"updatedAt,omitempty"`
}

// Cursor returns the page cursor naming c in a post's comment list.
func (c Comment) Cursor() page.Cursor { return page.Cursor{At: c.CreatedAt, ID: c.ID} }

// Domain errors; the HTTP layer maps them to status codes in one place.
var (
	// ErrNotFound: no comment has the given id.
	ErrNotFound = fault.New(fault.NotFound, "comment not found")
	// ErrPostNotFound: the comment names a post that does not exist, so it
	// is refused and the change stream never carries an orphan.
	ErrPostNotFound = fault.New(fault.NotFound, "post not found")
	// ErrDuplicate: a comment with this id already exists.
	ErrDuplicate = fault.New(fault.Conflict, "comment already exists")
)

// Store is the port the comments service needs from a database. Each write
// must also produce a change event on the comments feed, in the same
// transaction where the store has them (the embedded store's outbox), or by
// nature (MongoDB's oplog).
type Store interface {
	// Create stores c. It returns ErrPostNotFound when c.PostID names no
	// post and ErrDuplicate when c.ID is taken.
	Create(ctx context.Context, c Comment) error
	// Get returns the comment with the given id, or ErrNotFound.
	Get(ctx context.Context, id string) (Comment, error)
	// ListByPost returns a page of a post's comments, oldest first, ordered
	// by (CreatedAt, ID). An unknown post has no comments.
	ListByPost(ctx context.Context, postID string, q page.Query) ([]Comment, error)
	// Update sets a comment's text and UpdatedAt and returns the result, or
	// ErrNotFound.
	Update(ctx context.Context, id, text string, at time.Time) (Comment, error)
	// Delete removes a comment and returns what it was, or ErrNotFound.
	Delete(ctx context.Context, id string) (Comment, error)
	// DeleteByPost removes every comment of a post (its post was deleted)
	// and returns how many there were.
	DeleteByPost(ctx context.Context, postID string) (int, error)
	// Ping reports whether the store is reachable, for readiness.
	Ping(ctx context.Context) error
}
