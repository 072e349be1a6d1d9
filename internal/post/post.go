// Package post is the posts service's domain: the post type with its
// embedded comments, its rules (input validation, what each comment event
// does to a post's read model), the store port it depends on, the consumer
// that keeps embedded comments in step with the comments service's feed, and
// verify. Its HTTP API is package postapi; its live updates, package live.
package post

import (
	"context"
	"time"

	"blog/internal/changes"
	"blog/internal/comment"
	"blog/internal/fault"
	"blog/internal/page"
)

// DefaultEmbedLimit is how many of its latest comments a post embeds. The rest
// are paged from the comments service; commentCount counts them all. The bound
// keeps a MongoDB post document far below the 16 MB document limit.
const DefaultEmbedLimit = 50

// Post is a blog post as stored and served, with a bounded copy of its
// latest comments maintained from the comments feed.
type Post struct {
	ID           string     `json:"_id"`
	Title        string     `json:"title"`
	Content      string     `json:"content"`
	Comments     []Comment  `json:"comments"`
	CommentCount int        `json:"commentCount"`
	CreatedAt    time.Time  `json:"createdAt"`
	UpdatedAt    *time.Time `json:"updatedAt,omitempty"`
}

// Comment is the embedded copy of a comment inside its post: the seed's
// {text, createdAt} plus the comment's _id, which makes applying a change
// event idempotent.
type Comment struct {
	ID        string     `json:"_id"`
	Text      string     `json:"text"`
	CreatedAt time.Time  `json:"createdAt"`
	UpdatedAt *time.Time `json:"updatedAt,omitempty"`
}

// Embed returns the embedded copy of a stored comment.
func Embed(c comment.Comment) Comment {
	return Comment{ID: c.ID, Text: c.Text, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
}

// Cursor returns the page cursor naming p in the post list.
func (p Post) Cursor() page.Cursor { return page.Cursor{At: p.CreatedAt, ID: p.ID} }

// Patch is a partial update of a post; nil fields are left as they are.
type Patch struct {
	Title   *string
	Content *string
}

// Domain errors; the HTTP layer maps them to status codes in one place.
var (
	// ErrNotFound: no post has the given id.
	ErrNotFound = fault.New(fault.NotFound, "post not found")
	// ErrDuplicate: a post with this id already exists.
	ErrDuplicate = fault.New(fault.Conflict, "post already exists")
)

// Store is the port the posts service needs from a database.
//
// It is also the sink of the comments feed (the read model): Apply folds
// comment events into the posts by the rules of ApplyComments (apply.go),
// which it applies through a ReadModel over its own transaction. The rules,
// which every adapter's contract suite checks:
//
//   - insert: the comment is embedded in its post unless it already is (a
//     replayed event changes nothing), and commentCount counts it once. The
//     post keeps only its embedLimit latest comments by (createdAt, _id)
//     (Less), stored oldest first as the seed shows them.
//   - update: the comment's copy takes the new text and updatedAt; an
//     update whose copy does not exist yet (its insert was never seen)
//     creates and counts it, if the event carries the document and the
//     post exists; an update without a document changes nothing.
//   - delete: the comment is removed and no longer counted (commentCount
//     never below zero); when it was embedded, the next older comment of
//     the post takes its place.
//   - an event for a post that does not exist (deleted meanwhile) is a no-op.
//   - an unknown op or a malformed id is poison (CheckEvent): the batch is
//     refused with changes.ErrPoison and the consumer parks the event.
//
// Apply saves the checkpoint in the same transaction as the changes.
type Store interface {
	// Create stores a new post (with no comments), or returns ErrDuplicate.
	Create(ctx context.Context, p Post) error
	// Get returns the post with the given id, or ErrNotFound.
	Get(ctx context.Context, id string) (Post, error)
	// List returns a page of posts, newest first by (CreatedAt, ID)
	// descending; a cursor's next page holds strictly older posts.
	List(ctx context.Context, q page.Query) ([]Post, error)
	// Update applies a patch, sets UpdatedAt to at, and returns the result,
	// or ErrNotFound.
	Update(ctx context.Context, id string, p Patch, at time.Time) (Post, error)
	// Delete removes a post, or returns ErrNotFound. Its comments are deleted
	// by the comments service when it sees the post's delete event.
	Delete(ctx context.Context, id string) error
	// Ping reports whether the store is reachable, for readiness.
	Ping(ctx context.Context) error

	changes.Sink[comment.Comment]
}

// Repairer is a Store that can recompute one post's embedded comments and
// commentCount from the comments collection; `blog verify --repair` uses it
// to mend the drift it finds.
type Repairer interface {
	RebuildPost(ctx context.Context, postID string) error
}
