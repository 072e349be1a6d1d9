package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"blog/internal/changes"
	"blog/internal/comment"
	"blog/internal/post"
)

// The collections the change log records, named as in MongoDB.
const (
	collPosts    = "posts"
	collComments = "comments"
)

// appendChange records one change in the log. It must run in the
// transaction that made the change: that is the whole point of the outbox.
// doc is the document after the change (nil for a delete).
func appendChange(ctx context.Context, tx *sql.Tx, collection string, op changes.Op, id string, doc any) error {
	var body sql.NullString
	if doc != nil {
		b, err := json.Marshal(doc)
		if err != nil {
			return fmt.Errorf("encode %s change: %w", collection, err)
		}
		body = sql.NullString{String: string(b), Valid: true}
	}
	_, err := tx.ExecContext(ctx,
		`INSERT INTO changelog (collection, op, doc_id, doc, at) VALUES (?, ?, ?, ?, ?)`,
		collection, string(op), id, body, ms(time.Now()))
	if err != nil {
		return fmt.Errorf("append %s change: %w", collection, err)
	}
	noteAppend(tx, collection)
	return nil
}

// commentDoc and postDoc are the change log's JSON documents. They are the
// store's own format, apart from the API's JSON, so the log stays readable
// when the API's shape changes; times are unix ms like the tables'.
type commentDoc struct {
	ID        string `json:"_id"`
	PostID    string `json:"postId"`
	Text      string `json:"text"`
	CreatedAt int64  `json:"createdAt"`
	UpdatedAt *int64 `json:"updatedAt,omitempty"`
}

type embeddedDoc struct {
	ID        string `json:"_id"`
	Text      string `json:"text"`
	CreatedAt int64  `json:"createdAt"`
	UpdatedAt *int64 `json:"updatedAt,omitempty"`
}

type postDoc struct {
	ID           string        `json:"_id"`
	Title        string        `json:"title"`
	Content      string        `json:"content"`
	Comments     []embeddedDoc `json:"comments"`
	CommentCount int           `json:"commentCount"`
	CreatedAt    int64         `json:"createdAt"`
	UpdatedAt    *int64        `json:"updatedAt,omitempty"`
}

func msPtr(t *time.Time) *int64 {
	if t == nil {
		return nil
	}
	v := t.UnixMilli()
	return &v
}

func timePtr(v *int64) *time.Time {
	if v == nil {
		return nil
	}
	t := fromMS(*v)
	return &t
}

func toCommentDoc(c comment.Comment) commentDoc {
	return commentDoc{ID: c.ID, PostID: c.PostID, Text: c.Text, CreatedAt: ms(c.CreatedAt), UpdatedAt: msPtr(c.UpdatedAt)}
}

func decodeComment(b []byte) (comment.Comment, error) {
	var d commentDoc
	if err := json.Unmarshal(b, &d); err != nil {
		return comment.Comment{}, err
	}
	return comment.Comment{ID: d.ID, PostID: d.PostID, Text: d.Text, CreatedAt: fromMS(d.CreatedAt), UpdatedAt: timePtr(d.UpdatedAt)}, nil
}

func toPostDoc(p post.Post) postDoc {
	d := postDoc{
		ID: p.ID, Title: p.Title, Content: p.Content, CommentCount: p.CommentCount,
		CreatedAt: ms(p.CreatedAt), UpdatedAt: msPtr(p.UpdatedAt),
		Comments: make([]embeddedDoc, len(p.Comments)),
	}
	for i, c := range p.Comments {
		d.Comments[i] = embeddedDoc{ID: c.ID, Text: c.Text, CreatedAt: ms(c.CreatedAt), UpdatedAt: msPtr(c.UpdatedAt)}
	}
	return d
}

func decodePost(b []byte) (post.Post, error) {
	var d postDoc
	if err := json.Unmarshal(b, &d); err != nil {
		return post.Post{}, err
	}
	p := post.Post{
		ID: d.ID, Title: d.Title, Content: d.Content, CommentCount: d.CommentCount,
		CreatedAt: fromMS(d.CreatedAt), UpdatedAt: timePtr(d.UpdatedAt),
		Comments: make([]post.Comment, len(d.Comments)),
	}
	for i, c := range d.Comments {
		p.Comments[i] = post.Comment{ID: c.ID, Text: c.Text, CreatedAt: fromMS(c.CreatedAt), UpdatedAt: timePtr(c.UpdatedAt)}
	}
	return p, nil
}

// A token is the decimal text of a change-log seq: the position just after
// that entry. Decimal text keeps tokens readable in logs and checkpoints.
func encodeToken(seq int64) changes.Token { return changes.Token(strconv.FormatInt(seq, 10)) }

func decodeToken(t changes.Token) (int64, error) {
	seq, err := strconv.ParseInt(string(t), 10, 64)
	if err != nil || seq < 0 || string(t) != strconv.FormatInt(seq, 10) {
		return 0, fmt.Errorf("token %q is not a change-log position: %w", t, changes.ErrHistoryLost)
	}
	return seq, nil
}

// querier is what both *sql.DB and *sql.Tx offer.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// logHead returns the seq of the newest change ever logged (0 for none).
// It reads AUTOINCREMENT's counter, which pruning never lowers. Because
// SQLite admits one writer at a time across all processes, seqs are handed
// out in commit order: every seq at or below a head a reader sees belongs to
// an already committed change, so a stream may move its position to the head
// without skipping anything still to come.
func logHead(ctx context.Context, q querier) (int64, error) {
	var seq int64
	err := q.QueryRowContext(ctx, `SELECT seq FROM sqlite_sequence WHERE name = 'changelog'`).Scan(&seq)
	if err == sql.ErrNoRows {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read change-log head: %w", err)
	}
	return seq, nil
}

// prunedThrough returns the last seq Prune removed (0 for never).
func prunedThrough(ctx context.Context, q querier) (int64, error) {
	var seq int64
	if err := q.QueryRowContext(ctx, `SELECT pruned_through FROM changelog_state WHERE id = 1`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("read change-log retention: %w", err)
	}
	return seq, nil
}

// checkRetained returns ErrHistoryLost (wrapped) unless a stream positioned
// after seq can still see every later change: nothing after seq has been
// pruned, and seq is not beyond the head (a token from another file).
// This is the seam between feeds and pruning: whatever policy decides what
// to prune, a consumer behind it is told to rebuild, never skipped ahead.
func checkRetained(seq, pruned, head int64) error {
	if seq < pruned {
		return fmt.Errorf("position %d is before the retained change log (pruned through %d): %w", seq, pruned, changes.ErrHistoryLost)
	}
	if seq > head {
		return fmt.Errorf("position %d is beyond the change-log head %d: %w", seq, head, changes.ErrHistoryLost)
	}
	return nil
}

// Prune deletes the change-log entries at or before keepAfter (a seq; tokens
// are its decimal text), keeping every change after it. A feed opened, or a
// stream positioned, before keepAfter then fails with changes.ErrHistoryLost
// and its consumer rebuilds, rather than silently missing the pruned
// changes. Choosing keepAfter (say, the slowest checkpoint) is the caller's
// policy. It returns how many entries it deleted.
func (db *DB) Prune(ctx context.Context, keepAfter int64) (int64, error) {
	var n int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		var err error
		n, keepAfter, err = pruneThrough(ctx, tx, keepAfter)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: prune change log: %w", err)
	}
	if n > 0 {
		db.log.Info("change log pruned", "through", keepAfter, "entries", n)
	}
	return n, nil
}

// pruneThrough deletes the entries at or before seq (capped at the head)
// and moves the pruned mark there, never back. It returns how many entries
// it deleted and the seq it pruned through.
func pruneThrough(ctx context.Context, tx *sql.Tx, seq int64) (int64, int64, error) {
	head, err := logHead(ctx, tx)
	if err != nil {
		return 0, 0, err
	}
	seq = min(seq, head)
	res, err := tx.ExecContext(ctx, `DELETE FROM changelog WHERE seq <= ?`, seq)
	if err != nil {
		return 0, 0, fmt.Errorf("delete entries: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, 0, err
	}
	_, err = tx.ExecContext(ctx,
		`UPDATE changelog_state SET pruned_through = max(pruned_through, ?) WHERE id = 1`, seq)
	if err != nil {
		return 0, 0, fmt.Errorf("mark pruned: %w", err)
	}
	return n, seq, nil
}

// pruneChunk bounds how many entries one PruneBefore transaction deletes, so
// the first prune of a long log does not hold the write lock for long.
const pruneChunk = 5000

// appliedGrace is how old an entry every consumer has applied must be
// before PruneBefore deletes it: time for the feeds followed without a
// checkpoint (the live-updates hub, in every process) to read it too.
const appliedGrace = 10 * time.Second

// appliedByAll returns the seq through which every known consumer has
// applied the log: the least of the saved checkpoints and of the
// interrupted rebuilds' targets (from which they replay). It returns -1
// when no consumer is known, or when a position is not a seq (that consumer
// is then told its history is lost on its next Open, as any foreign token
// is, and nothing is pruned for it meanwhile).
func appliedByAll(ctx context.Context, tx *sql.Tx) (int64, error) {
	rows, err := tx.QueryContext(ctx, `SELECT token FROM checkpoints UNION ALL SELECT target FROM rebuilds`)
	if err != nil {
		return 0, fmt.Errorf("read consumers' positions: %w", err)
	}
	defer rows.Close()
	least, found := int64(-1), false
	for rows.Next() {
		var tok []byte
		if err := rows.Scan(&tok); err != nil {
			return 0, fmt.Errorf("read consumers' positions: %w", err)
		}
		seq, err := decodeToken(changes.Token(tok))
		if err != nil {
			return -1, nil
		}
		if !found || seq < least {
			least, found = seq, true
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read consumers' positions: %w", err)
	}
	return least, nil
}

// qOldestLog walks the oldest entries of the log, in seq order, by its
// primary key.
const qOldestLog = `SELECT seq, at FROM changelog ORDER BY seq LIMIT ?`

// PruneBefore deletes the change-log entries that are no longer needed:
// those every known consumer has applied (at or before the oldest
// checkpoint and the oldest interrupted rebuild's target, in the checkpoints
// and rebuilds tables) once they are appliedGrace old, and, whatever the
// consumers, those older than olderThan. The services run it periodically,
// so the log holds little more than what is in flight: a logged comment is
// a second copy of its text (issue 12). olderThan, the retention, then only
// bounds how long a consumer that is absent (stopped, or renamed and gone
// for good) is waited for.
//
// It deletes a prefix of the log (entries in seq order up to the first that
// may not go), never a gap, so every position after what it deleted stays
// complete. A consumer whose checkpoint falls in the pruned part gets
// changes.ErrHistoryLost on its next Open and rebuilds its read model from
// the source: the intended trade, bounded storage for an occasional rebuild
// of a consumer that was down longer than the retention. A consumer that is
// running keeps its checkpoint near the head (quiet batches move it there),
// so pruning never touches it; a feed followed without a checkpoint (the
// live-updates hub) is given appliedGrace to read what the consumers have
// applied, and if it falls further behind it reopens at the head (see
// live.Hub.Run).
//
// It works in transactions of at most pruneChunk entries and returns how
// many entries it deleted. olderThan 0 prunes everything logged before now.
func (db *DB) PruneBefore(ctx context.Context, olderThan time.Duration) (int64, error) {
	if olderThan < 0 {
		return 0, fmt.Errorf("sqlite: prune change log: negative age %v", olderThan)
	}
	now := time.Now()
	cutoff, graceCutoff := ms(now.Add(-olderThan)), ms(now.Add(-appliedGrace))
	var total, through int64
	for {
		var n int64
		full := false
		err := db.write(ctx, func(tx *sql.Tx) error {
			applied, err := appliedByAll(ctx, tx)
			if err != nil {
				return err
			}
			rows, err := tx.QueryContext(ctx, qOldestLog, pruneChunk)
			if err != nil {
				return fmt.Errorf("read oldest entries: %w", err)
			}
			last, seen, stopped := int64(-1), 0, false
			for rows.Next() {
				var seq, at int64
				if err := rows.Scan(&seq, &at); err != nil {
					rows.Close()
					return fmt.Errorf("read oldest entries: %w", err)
				}
				seen++
				if at >= cutoff && (seq > applied || at >= graceCutoff) {
					stopped = true
					break
				}
				last = seq
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("read oldest entries: %w", err)
			}
			full = !stopped && seen == pruneChunk
			if last < 0 {
				return nil
			}
			n, through, err = pruneThrough(ctx, tx, last)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("sqlite: prune change log: %w", err)
		}
		total += n
		if !full || n == 0 {
			break
		}
	}
	if total > 0 {
		db.log.Info("change log pruned", "through", through, "entries", total, "olderThan", olderThan)
	}
	return total, nil
}
