package post

import (
	"context"
	"fmt"
	"slices"

	"blog/internal/comment"
	"blog/internal/page"
)

// Drift is one post whose read model disagrees with the comments service:
// what the post holds, and what the comments say it should hold.
type Drift struct {
	PostID                 string
	Count, WantCount       int
	Embedded, WantEmbedded []Comment
}

// String describes the drift for an operator.
func (d Drift) String() string {
	return fmt.Sprintf("post %s: commentCount %d, want %d; embeds %d comments %v, want %d %v",
		d.PostID, d.Count, d.WantCount, len(d.Embedded), ids(d.Embedded), len(d.WantEmbedded), ids(d.WantEmbedded))
}

func ids(cs []Comment) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

// Verify walks every post and compares its embedded comments (ids, texts and
// order) and commentCount with what the comments store holds, calling found
// for each post that differs. It returns how many posts it checked. It reads
// through the ports only, so it checks any pair of adapters, and it pages
// through everything, so it is an operator's tool, not a request path.
func Verify(ctx context.Context, posts Store, comments comment.Store, embedLimit int, found func(Drift) error) (int, error) {
	if embedLimit <= 0 {
		embedLimit = DefaultEmbedLimit
	}
	checked := 0
	q := page.Query{Limit: 500}
	for {
		ps, err := posts.List(ctx, q)
		if err != nil {
			return checked, fmt.Errorf("verify: list posts: %w", err)
		}
		for _, p := range ps {
			want, count, err := latest(ctx, comments, p.ID, embedLimit)
			if err != nil {
				return checked, err
			}
			checked++
			if count != p.CommentCount || !sameComments(p.Comments, want) {
				d := Drift{PostID: p.ID, Count: p.CommentCount, WantCount: count, Embedded: p.Comments, WantEmbedded: want}
				if err := found(d); err != nil {
					return checked, err
				}
			}
		}
		if len(ps) < q.Limit {
			return checked, nil
		}
		c := ps[len(ps)-1].Cursor()
		q.After = &c
	}
}

// latest returns the embedded copies a post should hold (its n latest
// comments by Less, oldest first: the Window rule) and how many comments it
// has.
func latest(ctx context.Context, comments comment.Store, postID string, n int) ([]Comment, int, error) {
	w := Window{Limit: n}
	count := 0
	q := page.Query{Limit: 1000}
	for {
		cs, err := comments.ListByPost(ctx, postID, q)
		if err != nil {
			return nil, 0, fmt.Errorf("verify: list comments of %s: %w", postID, err)
		}
		for _, c := range cs {
			w.Add(Embed(c))
		}
		count += len(cs)
		if len(cs) < q.Limit {
			return slices.Clip(w.Comments), count, nil
		}
		cur := cs[len(cs)-1].Cursor()
		q.After = &cur
	}
}

// sameComments compares embedded copies by id, text and order.
func sameComments(got, want []Comment) bool {
	return slices.EqualFunc(got, want, func(a, b Comment) bool { return a.ID == b.ID && a.Text == b.Text })
}
