package post

import (
	"context"
	"fmt"
	"slices"

	"blog/internal/changes"
	"blog/internal/comment"
)

// This file holds the sync's rules: what a comment event does to the posts'
// read model. They are decided here, once, and every adapter applies them
// through ReadModel inside its own transaction (the watermill / wild-workouts
// shape: the adapter owns the transaction, the domain owns the rule).

// Less reports whether a sorts before b in a post's comment order: by
// createdAt, then by _id. It is the order of the comments service's
// listings and of the embedded window (oldest first), so the window, `blog
// verify`, the live-updates hub and the tests agree on which comments are
// "the latest". Ids compare as strings, which for the lowercase 24-hex
// ObjectIDs the services generate is the order of their bytes, MongoDB's
// order.
func Less(a, b Comment) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.Before(b.CreatedAt)
	}
	return a.ID < b.ID
}

// Window is a post's embedded comments: at most Limit of its latest
// comments by Less, oldest first, as the seed shows them. The zero Limit
// means DefaultEmbedLimit.
type Window struct {
	Limit    int
	Comments []Comment
}

func (w *Window) limit() int {
	if w.Limit <= 0 {
		return DefaultEmbedLimit
	}
	return w.Limit
}

// Add embeds c in order unless a comment with its id is embedded already,
// and drops the oldest beyond the limit. Because the window always holds the
// latest comments, a comment older than all of a full window falls straight
// out again, which is the rule. It reports whether the window changed.
func (w *Window) Add(c Comment) bool {
	if w.Index(c.ID) >= 0 {
		return false
	}
	i, _ := slices.BinarySearchFunc(w.Comments, c, func(e, t Comment) int {
		if Less(e, t) {
			return -1
		}
		return 1
	})
	if i == 0 && len(w.Comments) >= w.limit() {
		return false
	}
	w.Comments = slices.Insert(w.Comments, i, c)
	if over := len(w.Comments) - w.limit(); over > 0 {
		w.Comments = slices.Delete(w.Comments, 0, over)
	}
	return true
}

// Index returns the position of the comment with the given id, or -1.
func (w *Window) Index(id string) int {
	return slices.IndexFunc(w.Comments, func(c Comment) bool { return c.ID == id })
}

// Missing returns how many comments the window lacks to be full.
func (w *Window) Missing() int { return max(0, w.limit()-len(w.Comments)) }

// ReadModel is the port the rules apply a batch through: the posts' read
// model as one adapter stores it, inside the transaction in which it applies
// the batch and saves the consumer's checkpoint. An adapter implements it
// with its own storage strategy; the rules decide everything else.
//
// Everything a ReadModel does must happen inside that transaction: a
// MongoDB transaction may be run again after a transient error, and then
// ApplyComments runs again from the start on a fresh ReadModel.
type ReadModel interface {
	// LoadPost returns the read-model state of post id; found is false when
	// no such post exists. ApplyComments loads each post at most once per
	// batch.
	LoadPost(ctx context.Context, id string) (st PostState, found bool, err error)
	// InsertCopy stores the read model's copy of comment c (c.PostID names
	// its post) unless a copy with c.ID exists; inserted reports whether it
	// stored one.
	InsertCopy(ctx context.Context, c comment.Comment) (inserted bool, err error)
	// UpdateCopy gives the copy of comment c.ID c's text and updatedAt.
	// found reports whether such a copy exists; changed whether it differed.
	UpdateCopy(ctx context.Context, c comment.Comment) (found, changed bool, err error)
	// DeleteCopy removes the copy of comment id and returns what it was,
	// PostID and CreatedAt included; found is false when there was none.
	DeleteCopy(ctx context.Context, id string) (c comment.Comment, found bool, err error)
	// Older returns up to n copies of post postID's comments that sort
	// before bound (by Less), the latest of them, oldest first. It is
	// called only for posts whose state is Windowed, to back-fill the
	// window after a delete.
	Older(ctx context.Context, postID string, bound Comment, n int) ([]Comment, error)
	// SavePost stores a post's new state, once per post the batch changed,
	// after the last event: its count, and its window when Windowed.
	SavePost(ctx context.Context, id string, st PostState) error
}

// PostState is what the rules maintain of one post.
type PostState struct {
	// Count is the post's commentCount: its copies, counted exactly.
	Count int
	// Windowed is set by a store that keeps the embedded window in the
	// post (MongoDB); Window then holds it, oldest first. A store that
	// computes the window at read time from the copies (SQLite) leaves both
	// unset, and the rules leave the window alone.
	Windowed bool
	Window   []Comment
}

// CheckEvent returns an error wrapping changes.ErrPoison when ev can never be
// applied: an op other than insert, update and delete (a newer feed, or a
// bug), or a comment or post id that is not an ObjectID (comment.ValidID:
// written by hand; no post could embed it). The comment's post is checked
// only where the event carries the document.
//
// Such an event fails its batch before anything is written; the consumer
// retries it, isolates it and parks it as a dead letter, where an operator
// sees it and can retry it once the cause is mended. It is never skipped
// silently: that is what one adapter used to do while the other failed,
// and a parked event costs nothing while the stream keeps moving.
func CheckEvent(ev changes.Event[comment.Comment]) error {
	switch ev.Op {
	case changes.Insert, changes.Update, changes.Delete:
	default:
		return fmt.Errorf("%w: unknown op %q for comment %q", changes.ErrPoison, ev.Op, ev.Key)
	}
	if !comment.ValidID(ev.Key) {
		return fmt.Errorf("%w: %s of comment with malformed id %q", changes.ErrPoison, ev.Op, ev.Key)
	}
	if ev.Op != changes.Delete && ev.Found {
		if ev.Doc.ID != ev.Key {
			return fmt.Errorf("%w: %s of comment %s carries the document of %q", changes.ErrPoison, ev.Op, ev.Key, ev.Doc.ID)
		}
		if !comment.ValidID(ev.Doc.PostID) {
			return fmt.Errorf("%w: %s of comment %s with malformed post id %q", changes.ErrPoison, ev.Op, ev.Key, ev.Doc.PostID)
		}
	}
	return nil
}

// ApplyComments folds a batch of comment events into the posts' read model
// through rm, with the rules the Store doc comment lists:
//
//   - insert: the comment is copied and counted once (a replay finds the
//     copy and changes nothing), and embedded if it is among the post's
//     limit latest;
//   - update: the copy (and its embedded copy) take the new text and
//     updatedAt; an update whose copy does not exist (its insert came before
//     the consumer's first checkpoint, or before a rebuild's start) is
//     applied as that insert, if the post exists; an update without its
//     document (deleted since; its delete follows) changes nothing;
//   - delete: the copy is removed and uncounted, the count never going
//     below zero; when it was embedded, the next older copy takes its place;
//   - an event for a post that does not exist is a no-op;
//   - a poison event (see CheckEvent) fails the whole batch with changes.ErrPoison
//     before anything is written, so the consumer parks it.
//
// Each event is idempotent on its own, decided by whether a copy exists, so
// replaying a batch, or any suffix of the feed after a checkpoint, gives the
// same read model. It returns the ids of the posts it changed, in
// first-change order (the posts feed logs them). It has no effect outside
// rm. limit is the embed limit (zero: DefaultEmbedLimit).
func ApplyComments(ctx context.Context, rm ReadModel, evs []changes.Event[comment.Comment], limit int) ([]string, error) {
	for _, ev := range evs {
		if err := CheckEvent(ev); err != nil {
			return nil, err
		}
	}
	a := applier{rm: rm, limit: limit, posts: map[string]*loaded{}}
	for _, ev := range evs {
		if err := a.apply(ctx, ev); err != nil {
			return nil, fmt.Errorf("%s of comment %s: %w", ev.Op, ev.Key, err)
		}
	}
	for _, id := range a.order {
		if p := a.posts[id]; p.dirty {
			if err := rm.SavePost(ctx, id, p.st); err != nil {
				return nil, fmt.Errorf("save post %s: %w", id, err)
			}
			a.changed = append(a.changed, id)
		}
	}
	return a.changed, nil
}

// applier is one ApplyComments call's state: each post loaded once and
// saved once.
type applier struct {
	rm      ReadModel
	limit   int
	posts   map[string]*loaded
	order   []string
	changed []string
}

type loaded struct {
	found bool
	st    PostState
	dirty bool
}

func (a *applier) post(ctx context.Context, id string) (*loaded, error) {
	if p, ok := a.posts[id]; ok {
		return p, nil
	}
	st, found, err := a.rm.LoadPost(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("load post %s: %w", id, err)
	}
	p := &loaded{found: found, st: st}
	a.posts[id] = p
	a.order = append(a.order, id)
	return p, nil
}

func (a *applier) apply(ctx context.Context, ev changes.Event[comment.Comment]) error {
	switch ev.Op {
	case changes.Insert:
		if !ev.Found {
			return nil // nothing to copy; its delete event follows
		}
		return a.insert(ctx, ev.Doc)
	case changes.Update:
		if !ev.Found {
			return nil // deleted since; its delete event follows
		}
		return a.update(ctx, ev.Doc)
	default: // changes.Delete; CheckEvent refused every other op
		return a.delete(ctx, ev.Key)
	}
}

func (a *applier) insert(ctx context.Context, c comment.Comment) error {
	p, err := a.post(ctx, c.PostID)
	if err != nil || !p.found {
		return err // a comment of a deleted post is a no-op
	}
	inserted, err := a.rm.InsertCopy(ctx, c)
	if err != nil || !inserted {
		return err // a replay: already counted and embedded
	}
	p.st.Count++
	p.dirty = true
	if p.st.Windowed {
		w := a.window(p)
		w.Add(Embed(c))
		p.st.Window = w.Comments
	}
	return nil
}

// update keeps the copy current even when it is not embedded, so it shows
// the new text if a delete later brings it into the window. It cannot bring
// back a comment deleted earlier: in commit order a comment's delete comes
// after its updates and undoes such a copy when it is applied in turn.
func (a *applier) update(ctx context.Context, c comment.Comment) error {
	found, changed, err := a.rm.UpdateCopy(ctx, c)
	if err != nil {
		return err
	}
	if !found {
		return a.insert(ctx, c)
	}
	if !changed {
		return nil // a replay
	}
	p, err := a.post(ctx, c.PostID)
	if err != nil || !p.found {
		return err
	}
	p.dirty = true
	if i := slices.IndexFunc(p.st.Window, func(e Comment) bool { return e.ID == c.ID }); i >= 0 {
		p.st.Window = slices.Clone(p.st.Window)
		p.st.Window[i].Text, p.st.Window[i].UpdatedAt = c.Text, c.UpdatedAt
	}
	return nil
}

func (a *applier) delete(ctx context.Context, id string) error {
	// A delete event names only the comment, so its post comes from the
	// read model's own copy. No copy: never applied here, or a replay.
	c, found, err := a.rm.DeleteCopy(ctx, id)
	if err != nil || !found {
		return err
	}
	p, err := a.post(ctx, c.PostID)
	if err != nil || !p.found {
		return err
	}
	p.st.Count = max(p.st.Count-1, 0) // exact, and never negative
	p.dirty = true
	if !p.st.Windowed {
		return nil
	}
	w := a.window(p)
	i := w.Index(id)
	if i < 0 {
		return nil
	}
	w.Comments = slices.Delete(slices.Clone(w.Comments), i, i+1)
	// Everything older than the oldest embedded comment (or than the
	// deleted one, if none is left) is by construction not embedded, so
	// the back-fill embeds nothing twice.
	bound := Embed(c)
	if len(w.Comments) > 0 {
		bound = w.Comments[0]
	}
	if n := w.Missing(); n > 0 {
		older, err := a.rm.Older(ctx, c.PostID, bound, n)
		if err != nil {
			return fmt.Errorf("back-fill the window: %w", err)
		}
		w.Comments = append(slices.Clip(older), w.Comments...)
	}
	p.st.Window = w.Comments
	return nil
}

func (a *applier) window(p *loaded) *Window {
	return &Window{Limit: a.limit, Comments: p.st.Window}
}

// Latest returns the limit latest of cs (in any order) by Less, oldest
// first, as a post embeds them (zero limit: DefaultEmbedLimit).
func Latest(cs []Comment, limit int) []Comment {
	s := slices.Clone(cs)
	slices.SortFunc(s, func(a, b Comment) int {
		switch {
		case Less(a, b):
			return -1
		case Less(b, a):
			return 1
		}
		return 0
	})
	w := Window{Limit: limit}
	return slices.Clip(s[max(0, len(s)-w.limit()):])
}
