package web

import (
	"context"
	"fmt"
	"strings"
	"time"

	"blog/internal/comment"
	"blog/internal/page"
	"blog/internal/post"
)

// The APIs page forward only (after a cursor), but a reader pages both
// ways: a busy post opens on its latest comments, and from any page there
// are older and newer ones. nearest finds the page on the other side of a
// cursor with forward reads alone: it reads forward from a probe time
// before the cursor (in the list's order), and moves the probe, doubling
// then bisecting, until one read holds the whole stretch up to the cursor
// and at least n items. A handful of reads of the APIs' largest page
// answer it, whatever the list's length.

// lister reads one page of a list after a cursor ("" from the start),
// returning the next page's cursor ("" when none follows).
type lister[T any] func(ctx context.Context, after string, limit int) ([]T, string, error)

// maxProbes bounds the reads of one search.
const maxProbes = 48

// nearest returns the (up to) n items just before bound in the list's
// order, in that order, and whether more lie beyond them. asc is the
// list's order by time: ascending (comments: before means older, probes go
// back in time) or descending (posts: before means newer, probes go
// forward). now bounds the forward probes: beyond it lies nothing.
func nearest[T any](ctx context.Context, list lister[T], key func(T) page.Cursor, bound page.Cursor, n int, asc bool, now time.Time) ([]T, bool, error) {
	// precedes reports whether k comes before bound in the list's order.
	precedes := func(k page.Cursor) bool {
		if !k.At.Equal(bound.At) {
			return k.At.Before(bound.At) == asc
		}
		return k.ID != bound.ID && (k.ID < bound.ID) == asc
	}
	probe := func(span time.Duration) (after string, extreme bool) {
		if asc {
			at := bound.At.Add(-span)
			if at.UnixMilli() <= 0 {
				return "", true
			}
			return page.Cursor{At: at, ID: strings.Repeat("0", 24)}.Encode(), false
		}
		at := bound.At.Add(span)
		if at.After(now) {
			return "", true
		}
		return page.Cursor{At: at, ID: strings.Repeat("f", 24)}.Encode(), false
	}
	var (
		few  time.Duration = 0  // a span known to hold too few items
		many time.Duration = -1 // a span known to hold too many (-1: none yet)
		span               = time.Hour
	)
	for range maxProbes {
		after, extreme := probe(span)
		raw, next, err := list(ctx, after, page.MaxLimit)
		if err != nil {
			return nil, false, err
		}
		kept := raw
		for i, it := range raw {
			if !precedes(key(it)) {
				kept = raw[:i]
				break
			}
		}
		complete := next == "" || len(kept) < len(raw)
		switch {
		case complete && len(kept) >= n:
			return kept[len(kept)-n:], len(kept) > n || !extreme, nil
		case complete && extreme:
			return kept, false, nil
		case complete: // too few: look further
			few = span
			if many < 0 {
				span *= 4
			} else {
				span = few + (many-few)/2
			}
		default: // too many for one read: look closer
			many = span
			span = few + (many-few)/2
		}
		if many >= 0 && many-few <= time.Millisecond {
			// More than a page within a millisecond: show the first page's worth.
			if len(kept) > n {
				kept = kept[len(kept)-n:]
			}
			return kept, true, nil
		}
	}
	return nil, false, fmt.Errorf("web: no page before %s after %d reads", bound.Encode(), maxProbes)
}

// commentsBefore returns the n comments of a post just before bound (nil:
// the latest), oldest first, and whether older ones exist.
func (s *Server) commentsBefore(ctx context.Context, postID string, bound *page.Cursor, n int) ([]comment.Comment, bool, error) {
	now := time.Now()
	b := page.Cursor{At: now.Add(24 * time.Hour), ID: strings.Repeat("f", 24)}
	if bound != nil {
		b = *bound
	}
	list := func(ctx context.Context, after string, limit int) ([]comment.Comment, string, error) {
		return s.api.listComments(ctx, postID, after, limit)
	}
	return nearest(ctx, list, comment.Comment.Cursor, b, n, true, now.Add(24*time.Hour))
}

// postsBefore returns the n posts just newer than bound, newest first, and
// whether newer ones exist.
func (s *Server) postsBefore(ctx context.Context, bound page.Cursor, n int) ([]post.Post, bool, error) {
	// A minute of slack for clocks that differ between the services.
	return nearest(ctx, s.api.listPosts, post.Post.Cursor, bound, n, false, time.Now().Add(time.Minute))
}
