package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"time"

	"blog/internal/changes"
	"blog/internal/page"
	"blog/internal/post"
)

// postStore is the posts service's store: the posts table, and the read
// model (post_comments, comment_count) that Apply keeps from the comments
// feed (see projection.go).
type postStore struct{ db *DB }

const postCols = `id, title, content, comment_count, created_at, updated_at`

// The posts service's hot queries, named so plan_test.go can check that each
// is an index seek.
const (
	// qListPosts is the first page: an ordered walk of posts_created from
	// the newest end that stops at the limit.
	qListPosts = `SELECT ` + postCols + ` FROM posts
		ORDER BY created_at DESC, id DESC LIMIT ?`
	// qListPostsAfter seeks posts_created to the cursor.
	qListPostsAfter = `SELECT ` + postCols + ` FROM posts WHERE (created_at, id) < (?, ?)
		ORDER BY created_at DESC, id DESC LIMIT ?`
	// qEmbedded seeks the newest end of a post's range in
	// post_comments' primary key (the table is clustered by post) and reads
	// back limit entries.
	qEmbedded = `SELECT comment_id, text, created_at, updated_at FROM post_comments
		WHERE post_id = ? ORDER BY created_at DESC, comment_id DESC LIMIT ?`
	// qEmbeddedBefore reads on from a copy qEmbedded skipped (see
	// embedded), seeking the same index.
	qEmbeddedBefore = `SELECT comment_id, text, created_at, updated_at FROM post_comments
		WHERE post_id = ? AND (created_at, comment_id) < (?, ?)
		ORDER BY created_at DESC, comment_id DESC LIMIT ?`
)

// embeddedManyMax is the most posts one qEmbeddedMany statement reads:
// a page is at most page.MaxLimit posts, plus the one that tells whether
// the list goes on.
const embeddedManyMax = 128

// qEmbeddedMany holds, at index b, the statement that reads the embedded
// comments of up to 1<<b posts at once: a UNION ALL of qEmbedded's seek,
// one per post (?2 onwards, NULL for none), each reading back ?1 entries
// of post_comments' primary key newest first. Each row leads with its
// post's position among the arguments. There is one statement per power
// of two, so a connection's statement cache holds a few texts, not one per
// page size.
var qEmbeddedMany = func() []string {
	var qs []string
	for n := 1; n <= embeddedManyMax; n *= 2 {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteString("\nUNION ALL ")
			}
			fmt.Fprintf(&b, "SELECT * FROM (SELECT %d, comment_id, text, created_at, updated_at FROM post_comments"+
				" WHERE post_id = ?%d ORDER BY created_at DESC, comment_id DESC LIMIT ?1)", i, i+2)
		}
		qs = append(qs, b.String())
	}
	return qs
}()

func scanPost(sc scanner) (post.Post, error) {
	var (
		p       post.Post
		created int64
		updated sql.NullInt64
	)
	if err := sc.Scan(&p.ID, &p.Title, &p.Content, &p.CommentCount, &created, &updated); err != nil {
		return post.Post{}, err
	}
	p.CreatedAt, p.UpdatedAt = fromMS(created), fromOptMS(updated)
	return p, nil
}

// embedded reads the comments post id embeds: its limit latest by
// (created_at, comment_id), oldest first. It seeks the end of the post's
// range in post_comments' primary key and reads back limit entries, so its
// cost does not grow with the post's comment count. A copy it cannot read
// is skipped and logged, and the next older one embedded in its place (see
// readList), so one bad row cannot make the post, or a page of posts, fail.
func (db *DB) embedded(ctx context.Context, q querier, id string) ([]post.Comment, error) {
	out, err := readList(db.log, listing[post.Comment]{
		what: "embedded comments of post " + id,
		query: func(after *sortKey, limit int) (*sql.Rows, error) {
			if after == nil {
				return q.QueryContext(ctx, qEmbedded, id, limit)
			}
			return q.QueryContext(ctx, qEmbeddedBefore, id, after.at, after.id, limit)
		},
		scan:  scanEmbedded,
		key:   func(c post.Comment) sortKey { return sortKey{at: ms(c.CreatedAt), id: c.ID} },
		atCol: 2, idCol: 0,
	}, nil, db.embedLimit)
	if err != nil {
		return nil, fmt.Errorf("read embedded comments: %w", err)
	}
	slices.Reverse(out)
	return out, nil
}

// embeddedMany sets the embedded comments of every post of ps, as
// embedded reads them, in one statement (qEmbeddedMany) rather than one per
// post: per post it is the same bounded index read, so its cost does not
// grow with a post's comment count, but a page of 20 posts makes one round
// trip through the driver instead of 20, which was about half of a page's
// CPU time. A post with a copy that cannot be read is read again by
// embedded, which skips that copy and tops the window up, so the answer is
// the same as embedded's for every post.
func (db *DB) embeddedMany(ctx context.Context, q querier, ps []post.Post) error {
	for len(ps) > embeddedManyMax {
		if err := db.embeddedMany(ctx, q, ps[:embeddedManyMax]); err != nil {
			return err
		}
		ps = ps[embeddedManyMax:]
	}
	if len(ps) == 0 {
		return nil
	}
	bucket := bits.Len(uint(len(ps) - 1)) // 1<<bucket >= len(ps)
	args := make([]any, 1+1<<bucket)
	args[0] = db.embedLimit
	for i := range ps {
		args[1+i] = ps[i].ID
		ps[i].Comments = make([]post.Comment, 0, min(db.embedLimit, max(0, ps[i].CommentCount)))
	}
	rows, err := q.QueryContext(ctx, qEmbeddedMany[bucket], args...)
	if err != nil {
		return fmt.Errorf("read embedded comments: %w", err)
	}
	var reread []int // positions in ps of posts with a copy scan cannot read
	for rows.Next() {
		var (
			i       int
			c       post.Comment
			created int64
			updated sql.NullInt64
		)
		err := rows.Scan(&i, &c.ID, &c.Text, &created, &updated)
		if err != nil {
			// The position is always an integer: only the copy can be
			// unreadable.
			var raw any
			if kerr := rows.Scan(&i, &raw, &raw, &raw, &raw); kerr != nil || i < 0 || i >= len(ps) {
				rows.Close()
				return fmt.Errorf("read embedded comments: %w (and then: %v)", err, kerr)
			}
			if !slices.Contains(reread, i) {
				reread = append(reread, i)
			}
			continue
		}
		if i < 0 || i >= len(ps) {
			rows.Close()
			return fmt.Errorf("read embedded comments: post position %d of %d", i, len(ps))
		}
		c.CreatedAt, c.UpdatedAt = fromMS(created), fromOptMS(updated)
		ps[i].Comments = append(ps[i].Comments, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read embedded comments: %w", err)
	}
	for i := range ps {
		// Oldest first by (created_at, comment_id), as SQLite orders them
		// (integers by value, text byte by byte: the BINARY collation).
		// Each post's rows come newest first, so once reversed the sort
		// only confirms the order.
		cs := ps[i].Comments
		slices.Reverse(cs)
		slices.SortFunc(cs, func(a, b post.Comment) int {
			if c := cmp.Compare(ms(a.CreatedAt), ms(b.CreatedAt)); c != 0 {
				return c
			}
			return strings.Compare(a.ID, b.ID)
		})
	}
	for _, i := range reread {
		if ps[i].Comments, err = db.embedded(ctx, q, ps[i].ID); err != nil {
			return err
		}
	}
	return nil
}

func scanEmbedded(sc scanner) (post.Comment, error) {
	var (
		c       post.Comment
		created int64
		updated sql.NullInt64
	)
	if err := sc.Scan(&c.ID, &c.Text, &created, &updated); err != nil {
		return post.Comment{}, err
	}
	c.CreatedAt, c.UpdatedAt = fromMS(created), fromOptMS(updated)
	return c, nil
}

// loadPost reads a post with its embedded comments, in q's snapshot.
func (db *DB) loadPost(ctx context.Context, q querier, id string) (post.Post, error) {
	p, err := scanPost(q.QueryRowContext(ctx, `SELECT `+postCols+` FROM posts WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return post.Post{}, post.ErrNotFound
	}
	if err != nil {
		return post.Post{}, err
	}
	if p.Comments, err = db.embedded(ctx, q, id); err != nil {
		return post.Post{}, err
	}
	return p, nil
}

// Create stores a new post with no comments and logs it.
func (s *postStore) Create(ctx context.Context, p post.Post) error {
	p.Comments, p.CommentCount = []post.Comment{}, 0
	err := s.db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `
			INSERT INTO posts (id, title, content, comment_count, created_at, updated_at)
			VALUES (?, ?, ?, 0, ?, ?)`,
			p.ID, p.Title, p.Content, ms(p.CreatedAt), optMS(p.UpdatedAt))
		if isUnique(err) {
			return post.ErrDuplicate
		}
		if err != nil {
			return err
		}
		return appendChange(ctx, tx, collPosts, changes.Insert, p.ID, toPostDoc(p))
	})
	if err != nil {
		return fmt.Errorf("sqlite: create post: %w", err)
	}
	return nil
}

// Get reads a post and its embedded comments in one snapshot, so the count
// and the comments agree.
func (s *postStore) Get(ctx context.Context, id string) (post.Post, error) {
	var p post.Post
	err := s.db.read(ctx, func(tx *sql.Tx) error {
		var err error
		p, err = s.db.loadPost(ctx, tx, id)
		return err
	})
	if err != nil {
		return post.Post{}, fmt.Errorf("sqlite: get post: %w", err)
	}
	return p, nil
}

// List reads a page of posts, newest first, seeking posts_created to the
// cursor, then each post's embedded comments, all in one snapshot. A post
// row it cannot read is skipped and logged, and the page topped up (see
// readList).
func (s *postStore) List(ctx context.Context, q page.Query) ([]post.Post, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = page.DefaultLimit
	}
	var after *sortKey
	if q.After != nil {
		after = &sortKey{at: ms(q.After.At), id: q.After.ID}
	}
	var out []post.Post
	err := s.db.read(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = readList(s.db.log, listing[post.Post]{
			what: "posts",
			query: func(after *sortKey, limit int) (*sql.Rows, error) {
				if after == nil {
					return tx.QueryContext(ctx, qListPosts, limit)
				}
				return tx.QueryContext(ctx, qListPostsAfter, after.at, after.id, limit)
			},
			scan:  scanPost,
			key:   func(p post.Post) sortKey { return sortKey{at: ms(p.CreatedAt), id: p.ID} },
			atCol: 4, idCol: 0, // in postCols
		}, after, limit)
		if err != nil {
			return err
		}
		return s.db.embeddedMany(ctx, tx, out)
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: list posts: %w", err)
	}
	return out, nil
}

// Update patches a post and logs the whole post as it now is.
func (s *postStore) Update(ctx context.Context, id string, patch post.Patch, at time.Time) (post.Post, error) {
	var p post.Post
	err := s.db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
			UPDATE posts SET title = coalesce(?, title), content = coalesce(?, content), updated_at = ?
			WHERE id = ?`, patch.Title, patch.Content, ms(at), id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return post.ErrNotFound
		}
		if p, err = s.db.loadPost(ctx, tx, id); err != nil {
			return err
		}
		return appendChange(ctx, tx, collPosts, changes.Update, id, toPostDoc(p))
	})
	if err != nil {
		return post.Post{}, fmt.Errorf("sqlite: update post: %w", err)
	}
	return p, nil
}

// Delete removes a post (its comment copies cascade) and logs the deletion,
// on which the comments service deletes the comments themselves.
func (s *postStore) Delete(ctx context.Context, id string) error {
	err := s.db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM posts WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return post.ErrNotFound
		}
		return appendChange(ctx, tx, collPosts, changes.Delete, id, nil)
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete post: %w", err)
	}
	return nil
}

// Ping checks that the file is readable.
func (s *postStore) Ping(ctx context.Context) error {
	if err := s.db.ping(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}
