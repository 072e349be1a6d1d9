// Package storetest is the contract test suite every store adapter runs. The
// adapters (embedded SQLite, MongoDB) are interchangeable because this suite
// says so, not because we hope so: a behaviour the services rely on belongs
// here, asserted once, and each adapter's own tests only cover what is
// specific to it (files, servers, processes).
//
// An adapter's test calls Run with a function that opens fresh, empty stores:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) storetest.Stores {
//			db := openTestDB(t) // registers db.Close with t.Cleanup
//			return storetest.Stores{Posts: db.Posts(), ..., EmbedLimit: 3}
//		})
//	}
//
// Fields of Stores past EmbedLimit are optional hooks (leases, the cascade
// sink, a malformed-document injector, a dead-letter lister); a subtest that
// needs one the adapter leaves unset skips, so wiring them is how an adapter
// opts into the sync suites (RunLeases, RunSync, RunCascade).
//
// Times in the suite are real times truncated to milliseconds in UTC, because
// MongoDB stores milliseconds, and ids are ObjectID hex strings, because that
// is what the services generate. Waiting is done by polling with deadlines,
// never by sleeping, so the suite is as fast as the adapter lets it be.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"blog/internal/changes"
	"blog/internal/comment"
	"blog/internal/post"
)

// Stores is what an adapter under test provides: both services' stores and
// both feeds, over one fresh, empty database.
type Stores struct {
	Posts       post.Store
	Comments    comment.Store
	CommentFeed changes.Feed[comment.Comment]
	PostFeed    changes.Feed[post.Post]
	// EmbedLimit is the embed limit the adapter was opened with. Open with a
	// small one (e.g. 3) so the bounding tests stay fast; zero means
	// post.DefaultEmbedLimit.
	EmbedLimit int

	// The fields below are optional; a subtest that needs one the adapter
	// leaves unset skips. (What every adapter must offer is not optional:
	// the posts store must be a changes.Rebuilder, a
	// changes.DeadLetterer[comment.Comment] and a post.Repairer, and the
	// suite fails where it is not.)

	// Leases is the adapter's lease keeper, over the same database; the
	// sinks must check fences against it.
	Leases changes.Leaser
	// Cascade is the comments service's sink of the posts feed, which
	// deletes a deleted post's comments. It must also be a
	// changes.Rebuilder and a changes.DeadLetterer[post.Post].
	Cascade changes.Sink[post.Post]
	// InjectMalformedComment writes a comment straight into the database
	// whose document the comments feed cannot decode (so its event has Err
	// set), meant for the post postID, and returns its _id, the event's
	// Key. It must not make any listing of postID's comments fail.
	InjectMalformedComment func(t *testing.T, postID string) string
	// InjectMalformedCommentOnPost is InjectMalformedComment's variant
	// that belongs to post postID: it writes a comment straight into the
	// database whose postId is postID's, valid, and whose createdAt is
	// about now, but with another field of a type the store cannot decode
	// (so its event has Err set too), and returns its _id. Every listing of
	// postID's comments reads it and must skip it, neither failing nor
	// coming back short before its end; rebuilds must leave it out; and the
	// post's deletion must delete it with the rest.
	InjectMalformedCommentOnPost func(t *testing.T, postID string) string
	// DeadLetters lists what a consumer has parked, oldest first.
	DeadLetters func(ctx context.Context, consumer string) ([]Parked, error)
	// SetCommentCount writes a post's commentCount straight into the
	// database, as drift would, for the count rules.
	SetCommentCount func(t *testing.T, postID string, n int)
	// SetDeleteChunk sets how many comments one transaction of the cascade
	// and of DeleteByPost deletes, so the suite can make a post span many
	// chunks with few comments.
	SetDeleteChunk func(n int)
}

// Parked is a dead letter as the suite inspects it.
type Parked struct {
	Op     changes.Op
	Key    string
	Reason string
}

// limit returns the effective embed limit.
func (s Stores) limit() int {
	if s.EmbedLimit <= 0 {
		return post.DefaultEmbedLimit
	}
	return s.EmbedLimit
}

// Wait is how long the suite waits for a change to show up on a feed before
// it fails. It is generous because a slow CI machine under -race must not
// make the suite flaky; a passing run never waits for it.
const Wait = 15 * time.Second

// Run runs every contract suite. open returns fresh, empty stores for one
// subtest and registers their cleanup with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) Stores) {
	t.Run("posts", func(t *testing.T) { RunPosts(t, open) })
	t.Run("comments", func(t *testing.T) { RunComments(t, open) })
	t.Run("feed", func(t *testing.T) { RunFeed(t, open) })
	t.Run("projection", func(t *testing.T) { RunProjection(t, open) })
	t.Run("leases", func(t *testing.T) { RunLeases(t, open) })
	t.Run("sync", func(t *testing.T) { RunSync(t, open) })
	t.Run("cascade", func(t *testing.T) { RunCascade(t, open) })
	t.Run("rules", func(t *testing.T) { RunRules(t, open) })
}

// ---- fixtures ----

// newID returns a fresh ObjectID hex string, the id format of both services.
func newID() string { return bson.NewObjectID().Hex() }

// base returns a time a little in the past, truncated to what MongoDB keeps,
// from which each test derives its createdAt values.
func base() time.Time {
	return time.Now().UTC().Truncate(time.Millisecond).Add(-time.Hour)
}

func ctxFor(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), Wait)
	t.Cleanup(cancel)
	return ctx
}

// newPost returns a post as the posts service would create it.
func newPost(title string, at time.Time) post.Post {
	return post.Post{
		ID:        newID(),
		Title:     title,
		Content:   "content of " + title,
		Comments:  []post.Comment{},
		CreatedAt: at,
	}
}

func createPost(t *testing.T, s Stores, title string, at time.Time) post.Post {
	t.Helper()
	p := newPost(title, at)
	if err := s.Posts.Create(ctxFor(t), p); err != nil {
		t.Fatalf("create post %q: %v", title, err)
	}
	return p
}

func newComment(postID, text string, at time.Time) comment.Comment {
	return comment.Comment{ID: newID(), PostID: postID, Text: text, CreatedAt: at}
}

func createComment(t *testing.T, s Stores, postID, text string, at time.Time) comment.Comment {
	t.Helper()
	c := newComment(postID, text, at)
	if err := s.Comments.Create(ctxFor(t), c); err != nil {
		t.Fatalf("create comment %q: %v", text, err)
	}
	return c
}

// ---- feed helpers ----

// openStream opens f after tok and closes the stream when the test ends.
func openStream[T any](t *testing.T, f changes.Feed[T], tok changes.Token) changes.Stream[T] {
	t.Helper()
	st, err := f.Open(ctxFor(t), tok)
	if err != nil {
		t.Fatalf("open feed after %q: %v", tok, err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return st
}

// collect reads st until it has at least n events, and returns them with the
// token of the last batch read. It fails the test if they do not all arrive
// within Wait.
func collect[T any](t *testing.T, st changes.Stream[T], n int) ([]changes.Event[T], changes.Token) {
	t.Helper()
	ctx := ctxFor(t)
	var evs []changes.Event[T]
	var tok changes.Token
	for len(evs) < n {
		b, err := st.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for %d events, got %d: %v", n, len(evs), err)
		}
		evs = append(evs, b.Events...)
		tok = b.Token
	}
	return evs, tok
}

// collectUntil reads st until an event satisfies ok, and returns every
// event read up to and including it.
func collectUntil[T any](t *testing.T, st changes.Stream[T], what string, ok func(changes.Event[T]) bool) []changes.Event[T] {
	t.Helper()
	ctx := ctxFor(t)
	var evs []changes.Event[T]
	for {
		b, err := st.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for %s after %d events: %v", what, len(evs), err)
		}
		for _, e := range b.Events {
			evs = append(evs, e)
			if ok(e) {
				return evs
			}
		}
	}
}

// batchSince returns the next n comment events after tok as one batch, the
// way the consumer would hand them to a sink.
func batchSince(t *testing.T, s Stores, tok changes.Token, n int) changes.Batch[comment.Comment] {
	t.Helper()
	evs, _ := collect(t, openStream(t, s.CommentFeed, tok), n)
	if len(evs) != n {
		t.Fatalf("got %d comment events, want %d: %v", len(evs), n, eventKeys(evs))
	}
	return changes.Batch[comment.Comment]{Events: evs, Token: evs[n-1].Token}
}

func head[T any](t *testing.T, f changes.Feed[T]) changes.Token {
	t.Helper()
	tok, err := f.Head(ctxFor(t))
	if err != nil {
		t.Fatalf("head: %v", err)
	}
	if len(tok) == 0 {
		t.Fatalf("head returned an empty token")
	}
	return tok
}

func eventKeys[T any](evs []changes.Event[T]) []string {
	keys := make([]string, len(evs))
	for i, e := range evs {
		keys[i] = string(e.Op) + ":" + e.Key
	}
	return keys
}

// checkTokens asserts that every event carries a position and that no two
// consecutive events share one (tokens are opaque, so "increasing" is checked
// by resuming from them, in the feed suite).
func checkTokens[T any](t *testing.T, evs []changes.Event[T]) {
	t.Helper()
	for i, e := range evs {
		if len(e.Token) == 0 {
			t.Errorf("event %d (%s %s) has no token", i, e.Op, e.Key)
		}
		if i > 0 && bytes.Equal(e.Token, evs[i-1].Token) {
			t.Errorf("events %d and %d share token %q", i-1, i, e.Token)
		}
		if e.At.IsZero() {
			t.Errorf("event %d (%s %s) has no commit time", i, e.Op, e.Key)
		}
	}
}

// ---- comparisons ----

// timeDiff describes how got differs from want, or returns "" when they are
// the same instant in UTC (the services render times as RFC 3339 with Z).
func timeDiff(got, want time.Time) string {
	if !got.Equal(want) {
		return fmt.Sprintf("%s, want %s", got.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
	}
	if got.Location() != time.UTC {
		return fmt.Sprintf("%s is not in UTC", got)
	}
	return ""
}

func optTimeDiff(got, want *time.Time) string {
	switch {
	case got == nil && want == nil:
		return ""
	case got == nil:
		return fmt.Sprintf("nil, want %s", want.Format(time.RFC3339Nano))
	case want == nil:
		return fmt.Sprintf("%s, want nil", got.Format(time.RFC3339Nano))
	}
	return timeDiff(*got, *want)
}

func diffComment(got, want comment.Comment) []string {
	var d []string
	if got.ID != want.ID {
		d = append(d, fmt.Sprintf("ID %q, want %q", got.ID, want.ID))
	}
	if got.PostID != want.PostID {
		d = append(d, fmt.Sprintf("PostID %q, want %q", got.PostID, want.PostID))
	}
	if got.Text != want.Text {
		d = append(d, fmt.Sprintf("Text %q, want %q", got.Text, want.Text))
	}
	if s := timeDiff(got.CreatedAt, want.CreatedAt); s != "" {
		d = append(d, "CreatedAt "+s)
	}
	if s := optTimeDiff(got.UpdatedAt, want.UpdatedAt); s != "" {
		d = append(d, "UpdatedAt "+s)
	}
	return d
}

func sameComment(t *testing.T, what string, got, want comment.Comment) {
	t.Helper()
	for _, d := range diffComment(got, want) {
		t.Errorf("%s: %s", what, d)
	}
}

func diffEmbedded(got, want []post.Comment) []string {
	var d []string
	if len(got) != len(want) {
		return []string{fmt.Sprintf("embedded comments %v, want %v", embeddedIDs(got), embeddedIDs(want))}
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.ID != w.ID {
			d = append(d, fmt.Sprintf("embedded comments %v, want %v", embeddedIDs(got), embeddedIDs(want)))
			break
		}
		if g.Text != w.Text {
			d = append(d, fmt.Sprintf("comment %d (%s) Text %q, want %q", i, g.ID, g.Text, w.Text))
		}
		if s := timeDiff(g.CreatedAt, w.CreatedAt); s != "" {
			d = append(d, fmt.Sprintf("comment %d (%s) CreatedAt %s", i, g.ID, s))
		}
		if s := optTimeDiff(g.UpdatedAt, w.UpdatedAt); s != "" {
			d = append(d, fmt.Sprintf("comment %d (%s) UpdatedAt %s", i, g.ID, s))
		}
	}
	return d
}

func diffPost(got, want post.Post) []string {
	var d []string
	if got.ID != want.ID {
		d = append(d, fmt.Sprintf("ID %q, want %q", got.ID, want.ID))
	}
	if got.Title != want.Title {
		d = append(d, fmt.Sprintf("Title %q, want %q", got.Title, want.Title))
	}
	if got.Content != want.Content {
		d = append(d, fmt.Sprintf("Content %q, want %q", got.Content, want.Content))
	}
	if got.CommentCount != want.CommentCount {
		d = append(d, fmt.Sprintf("CommentCount %d, want %d", got.CommentCount, want.CommentCount))
	}
	if s := timeDiff(got.CreatedAt, want.CreatedAt); s != "" {
		d = append(d, "CreatedAt "+s)
	}
	if s := optTimeDiff(got.UpdatedAt, want.UpdatedAt); s != "" {
		d = append(d, "UpdatedAt "+s)
	}
	return append(d, diffEmbedded(got.Comments, want.Comments)...)
}

func samePost(t *testing.T, what string, got, want post.Post) {
	t.Helper()
	for _, d := range diffPost(got, want) {
		t.Errorf("%s: %s", what, d)
	}
}

func embeddedIDs(cs []post.Comment) []string {
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	return ids
}

func postIDs(ps []post.Post) []string {
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	return ids
}

func commentIDs(cs []comment.Comment) []string {
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	return ids
}

func sameIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: ids %v, want %v", what, got, want)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: err = %v, want %v", what, err, want)
	}
}

func ptr[T any](v T) *T { return &v }
