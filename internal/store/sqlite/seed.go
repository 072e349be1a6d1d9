package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"blog/internal/comment"
)

// SeedSpec says how much data Seed writes: Posts posts of CommentsPerPost
// comments each. The zero sizes of the text fields get the defaults below.
type SeedSpec struct {
	Posts           int
	CommentsPerPost int
	// ContentBytes is each post's content length; TextBytes each comment's.
	ContentBytes, TextBytes int
	// Before is the instant the seeded history ends at: the newest seeded
	// post is a second older than it. Zero means now. Posts are a second
	// apart, and a post's comments a millisecond apart after it.
	Before time.Time
}

// Seed defaults.
const (
	defaultSeedContent = 480
	defaultSeedText    = 96
	// seedPostsPerTx bounds one seed transaction, so seeding a million
	// comments neither holds the write lock for long nor grows the WAL
	// without bound.
	seedPostsPerTx = 2000
	// seedRowsPerStmt is how many rows one multi-row INSERT carries: far
	// fewer statements, well under SQLite's limit of bound parameters.
	seedRowsPerStmt = 100
)

// SeededPost names a post Seed wrote, with what a client needs to page to
// it (its cursor is {CreatedAt, ID}).
type SeededPost struct {
	ID        string
	CreatedAt time.Time
}

// Seed bulk-loads posts with their comments for benchmarks and load tests,
// orders of magnitude faster than the API: multi-row inserts in large
// transactions. It returns the posts it wrote, oldest first.
//
// It writes both services' data and the posts service's read model of it
// (post_comments and comment_count) in the same transactions, so the two
// agree at every commit, exactly as if the comments feed had been applied
// (`blog verify` finds nothing to repair). It writes nothing to the change
// log and moves no checkpoint: the seeded data is as if it had been written
// and synced before the retained log began (the steady state of a store whose
// retention has pruned its history), so every consumer's position, or its
// absence on a new file, stays valid, and no consumer replays or rebuilds
// anything when the services start. For the same reason it is safe while
// services run on the same file: they see the seeded rows appear, consistent,
// and nothing on their feeds.
func (db *DB) Seed(ctx context.Context, spec SeedSpec) ([]SeededPost, error) {
	if spec.Posts < 0 || spec.CommentsPerPost < 0 {
		return nil, fmt.Errorf("sqlite: seed: negative size %d posts x %d comments", spec.Posts, spec.CommentsPerPost)
	}
	if spec.ContentBytes <= 0 {
		spec.ContentBytes = defaultSeedContent
	}
	if spec.TextBytes <= 0 {
		spec.TextBytes = defaultSeedText
	}
	end := spec.Before
	if end.IsZero() {
		end = time.Now()
	}
	// Post i (oldest first) is Posts-i seconds before end; its comments
	// follow it a millisecond apart, so a post's comments never reach the
	// next post's time unless there are more than a thousand of them, which
	// is harmless (times only order, they need not be apart).
	first := end.Add(-time.Duration(spec.Posts) * time.Second).UTC().Truncate(time.Millisecond)
	out := make([]SeededPost, 0, spec.Posts)
	for lo := 0; lo < spec.Posts; lo += seedPostsPerTx {
		hi := min(lo+seedPostsPerTx, spec.Posts)
		err := db.write(ctx, func(tx *sql.Tx) error {
			return seedChunk(ctx, tx, spec, first, lo, hi, &out)
		})
		if err != nil {
			return out, fmt.Errorf("sqlite: seed posts %d..%d: %w", lo, hi, err)
		}
	}
	return out, nil
}

// seedChunk writes posts [lo, hi) and their comments in tx.
func seedChunk(ctx context.Context, tx *sql.Tx, spec SeedSpec, first time.Time, lo, hi int, out *[]SeededPost) error {
	posts := newBulk(ctx, tx, `INSERT INTO posts (id, title, content, comment_count, created_at, updated_at) VALUES `, 6)
	comments := newBulk(ctx, tx, `INSERT INTO comments (id, post_id, text, created_at, updated_at) VALUES `, 5)
	copies := newBulk(ctx, tx, `INSERT INTO post_comments (comment_id, post_id, text, created_at, updated_at) VALUES `, 5)
	defer posts.close()
	defer comments.close()
	defer copies.close()

	// Posts first: the copies' foreign key needs them.
	content := filler(spec.ContentBytes)
	chunk := make([]SeededPost, 0, hi-lo)
	for i := lo; i < hi; i++ {
		p := SeededPost{ID: bson.NewObjectID().Hex(), CreatedAt: first.Add(time.Duration(i) * time.Second)}
		chunk = append(chunk, p)
		title := "Seeded post " + strconv.Itoa(i)
		if err := posts.add(p.ID, title, content, spec.CommentsPerPost, ms(p.CreatedAt), nil); err != nil {
			return fmt.Errorf("posts: %w", err)
		}
	}
	if err := posts.flush(); err != nil {
		return fmt.Errorf("posts: %w", err)
	}
	// Comments round-robin over the chunk's posts, as they arrive on a live
	// blog (interleaved, not post by post): a post's comments end up on as
	// many pages as they would in use, so reads pay the page misses they
	// would in use rather than find each post's comments side by side.
	for j := range spec.CommentsPerPost {
		for k, p := range chunk {
			cid := bson.NewObjectID().Hex()
			text := commentText(lo+k, j, spec.TextBytes)
			at := ms(p.CreatedAt) + int64(j) + 1
			if err := comments.add(cid, p.ID, text, at, nil); err != nil {
				return fmt.Errorf("comments: %w", err)
			}
			if err := copies.add(cid, p.ID, text, at, nil); err != nil {
				return fmt.Errorf("post comments: %w", err)
			}
		}
	}
	if err := comments.flush(); err != nil {
		return fmt.Errorf("comments: %w", err)
	}
	if err := copies.flush(); err != nil {
		return fmt.Errorf("post comments: %w", err)
	}
	*out = append(*out, chunk...)
	return nil
}

// lorem is the text seeded fields are cut from.
const lorem = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. "

// filler returns n bytes of lorem ipsum.
func filler(n int) string {
	return strings.Repeat(lorem, n/len(lorem)+1)[:n]
}

// commentText returns comment j of post i, n bytes long (at least its
// prefix), varied so that no two comments read the same.
func commentText(i, j, n int) string {
	prefix := "Comment " + strconv.Itoa(j) + " on post " + strconv.Itoa(i) + ": "
	if len(prefix) >= n {
		return prefix
	}
	off := (i*31 + j*7) % len(lorem)
	body := (lorem[off:] + lorem + lorem)
	for len(body) < n {
		body += lorem
	}
	return prefix + body[:n-len(prefix)]
}

// bulk batches rows into multi-row INSERT statements of seedRowsPerStmt
// rows, prepared once per transaction.
type bulk struct {
	ctx  context.Context
	tx   *sql.Tx
	head string
	cols int
	args []any
	full *sql.Stmt
}

func newBulk(ctx context.Context, tx *sql.Tx, head string, cols int) *bulk {
	return &bulk{ctx: ctx, tx: tx, head: head, cols: cols, args: make([]any, 0, cols*seedRowsPerStmt)}
}

// statement returns the INSERT for rows rows.
func (b *bulk) statement(rows int) string {
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", b.cols), ", ") + ")"
	return b.head + strings.TrimSuffix(strings.Repeat(one+", ", rows), ", ")
}

func (b *bulk) add(vals ...any) error {
	b.args = append(b.args, vals...)
	if len(b.args) < b.cols*seedRowsPerStmt {
		return nil
	}
	if b.full == nil {
		st, err := b.tx.PrepareContext(b.ctx, b.statement(seedRowsPerStmt))
		if err != nil {
			return err
		}
		b.full = st
	}
	_, err := b.full.ExecContext(b.ctx, b.args...)
	b.args = b.args[:0]
	return err
}

// flush writes the rows that did not fill a statement.
func (b *bulk) flush() error {
	if len(b.args) == 0 {
		return nil
	}
	_, err := b.tx.ExecContext(b.ctx, b.statement(len(b.args)/b.cols), b.args...)
	b.args = b.args[:0]
	return err
}

func (b *bulk) close() {
	if b.full != nil {
		_ = b.full.Close()
	}
}

// InsertBaseline inserts c into the comments table and nothing else, in a
// transaction of its own: no check that its post exists, no change log, no
// read model. It goes through the store's own write pool, so it has the same
// driver, pragmas, locking and durability as Create (WAL, synchronous=NORMAL,
// BEGIN IMMEDIATE, one writer). It is the write ceiling that `blog bench`
// holds the create-comment API against; the services never call it.
func (db *DB) InsertBaseline(ctx context.Context, c comment.Comment) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO comments (id, post_id, text, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
			c.ID, c.PostID, c.Text, ms(c.CreatedAt), optMS(c.UpdatedAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: baseline insert: %w", err)
	}
	return nil
}
