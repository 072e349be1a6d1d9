package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations are the schema's versions, applied in order; PRAGMA
// user_version records how many a file has. Append, never edit: a released
// migration is history that existing files have already run.
//
// Every list query and every event apply is an index seek (the index comments
// name which), so none scans a table however large it grows; plan_test.go
// checks the planner agrees.
var migrations = []string{
	// 1: the two services' collections, the posts service's read model of
	// comments, the change log and the consumers' checkpoints.
	`
-- posts: the posts service's collection. comment_count is maintained by the
-- projection; the embedded comments are read from post_comments.
CREATE TABLE posts (
	id            TEXT PRIMARY KEY,
	title         TEXT NOT NULL,
	content       TEXT NOT NULL,
	comment_count INTEGER NOT NULL DEFAULT 0,
	created_at    INTEGER NOT NULL, -- unix ms
	updated_at    INTEGER           -- unix ms; NULL until edited
);
-- List: newest first, keyset paging on (created_at, id).
CREATE INDEX posts_created ON posts (created_at, id);

-- comments: the comments service's collection, the source of truth. No
-- foreign key to posts: the services own their data apart, and a post's
-- comments are deleted through the feed (so each deletion is an event).
CREATE TABLE comments (
	id         TEXT PRIMARY KEY,
	post_id    TEXT NOT NULL,
	text       TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER
);
-- ListByPost and DeleteByPost.
CREATE INDEX comments_post_created ON comments (post_id, created_at, id);

-- post_comments: the posts service's full copy of every comment of its
-- posts, kept by the projection. It makes the embedded latest-N a bounded
-- index read, a delete's back-fill free, and commentCount exact under
-- replays (a copy exists or it does not). Copies go with their post.
CREATE TABLE post_comments (
	comment_id TEXT PRIMARY KEY,
	post_id    TEXT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
	text       TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER
);
-- The embedded comments: the latest N of a post; also serves the cascade.
CREATE INDEX post_comments_post_created ON post_comments (post_id, created_at, comment_id);

-- changelog: the transactional outbox behind both feeds. seq is the resume
-- token; AUTOINCREMENT never reuses a seq, even after the newest rows are
-- pruned, so a token can never come to mean a different change.
CREATE TABLE changelog (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	collection TEXT NOT NULL,
	op         TEXT NOT NULL CHECK (op IN ('insert', 'update', 'delete')),
	doc_id     TEXT NOT NULL,
	doc        TEXT,             -- JSON of the document after the change; NULL for delete
	at         INTEGER NOT NULL  -- commit time, unix ms
);
-- A stream reads its collection's entries after its position.
CREATE INDEX changelog_collection_seq ON changelog (collection, seq);

-- changelog_state: one row. pruned_through is the last seq Prune removed, so
-- a position before it is known lost even when the log is empty.
CREATE TABLE changelog_state (
	id             INTEGER PRIMARY KEY CHECK (id = 1),
	pruned_through INTEGER NOT NULL
);
INSERT INTO changelog_state (id, pruned_through) VALUES (1, 0);

-- checkpoints: each consumer's last applied position, saved in the same
-- transaction as the changes it applied.
CREATE TABLE checkpoints (
	consumer   TEXT PRIMARY KEY,
	token      BLOB NOT NULL,
	updated_at INTEGER NOT NULL
);
`,

	// 2: what reliable sync needs (issue 3): leases with fencing tokens, so
	// replicas take turns at a consumer; parked dead letters; and the
	// progress of resumable rebuilds after lost history.
	`
-- leases: one row per lease, named after the consumer it guards. fence grows
-- by one every time the lease changes hands; a sink refuses a batch whose
-- fence is not the current one. expires_at is unix ms (0 once released).
CREATE TABLE leases (
	name       TEXT PRIMARY KEY,
	holder     TEXT NOT NULL,
	fence      INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
);

-- dead_letters: events a consumer could not apply, parked with the reason
-- for an operator, in the transaction that moved its checkpoint past them.
-- doc is the change's document as logged (raw JSON), NULL when it had none;
-- token is the event's position, which makes parking it twice a no-op.
CREATE TABLE dead_letters (
	id       INTEGER PRIMARY KEY,
	consumer TEXT NOT NULL,
	op       TEXT NOT NULL,
	doc_id   TEXT NOT NULL,
	doc      TEXT,
	reason   TEXT NOT NULL,
	token    BLOB NOT NULL,
	at       INTEGER NOT NULL  -- when it was parked, unix ms
);
CREATE UNIQUE INDEX dead_letters_consumer_token ON dead_letters (consumer, token);
CREATE INDEX dead_letters_consumer_id ON dead_letters (consumer, id);

-- rebuilds: the progress of a consumer's rebuild of its read model, so a
-- crash mid-way resumes it. after is the last key (a post id) done; target
-- is the change-log position (decimal seq) every chunk done so far was
-- computed after, from which a resumed rebuild replays the log.
CREATE TABLE rebuilds (
	consumer   TEXT PRIMARY KEY,
	target     TEXT NOT NULL,
	after      TEXT NOT NULL,
	started_at INTEGER NOT NULL
);
`,

	// 3: the list reads' indexes cover the columns they return (issue 6), so
	// a post's embedded comments and a page of its comments are read from
	// a few adjacent index pages instead of one table page per comment
	// (comments of a post arrive interleaved with others', so their rows
	// lie far apart). Same names and key order: every query plan stays.
	`
DROP INDEX post_comments_post_created;
CREATE INDEX post_comments_post_created ON post_comments (post_id, created_at, comment_id, text, updated_at);
DROP INDEX comments_post_created;
CREATE INDEX comments_post_created ON comments (post_id, created_at, id, text, updated_at);
`,

	// 4: lean storage (issue 12). Migration 3's covering indexes stored
	// every comment's text twice more; a list page now seeks the index and
	// reads its rows by key, the text kept once per table. post_comments
	// becomes a WITHOUT ROWID table keyed by comment_id, which drops its
	// rowid and the separate index on comment_id. Same names, same key
	// orders: every query plan keeps its seek (plan_test.go).
	`
DROP INDEX comments_post_created;
CREATE INDEX comments_post_created ON comments (post_id, created_at, id);
CREATE TABLE post_comments_lean (
	comment_id TEXT PRIMARY KEY,
	post_id    TEXT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
	text       TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER
) WITHOUT ROWID;
INSERT INTO post_comments_lean (comment_id, post_id, text, created_at, updated_at)
	SELECT comment_id, post_id, text, created_at, updated_at FROM post_comments ORDER BY comment_id;
DROP TABLE post_comments;
ALTER TABLE post_comments_lean RENAME TO post_comments;
-- The embedded comments: the latest N of a post; also serves the cascade.
CREATE INDEX post_comments_post_created ON post_comments (post_id, created_at, comment_id);
`,

	// 5: both comment tables are clustered by post (issue 12): a WITHOUT
	// ROWID table keyed by (post_id, created_at, id) keeps a post's
	// comments, text and all, in a few adjacent pages, in the order the
	// embedded window and the list pages read them. That is what migration
	// 3's covering indexes gave the reads, without their second copy of
	// every text; a unique index on the id serves the writes by id and the
	// uniqueness of ids.
	`
CREATE TABLE comments_by_post (
	id         TEXT NOT NULL,
	post_id    TEXT NOT NULL,
	text       TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER,
	PRIMARY KEY (post_id, created_at, id)
) WITHOUT ROWID;
INSERT INTO comments_by_post (id, post_id, text, created_at, updated_at)
	SELECT id, post_id, text, created_at, updated_at FROM comments ORDER BY post_id, created_at, id;
DROP TABLE comments;
ALTER TABLE comments_by_post RENAME TO comments;
-- Get, Update and Delete by id; and no two comments share an id.
CREATE UNIQUE INDEX comments_id ON comments (id);

CREATE TABLE post_comments_by_post (
	comment_id TEXT NOT NULL,
	post_id    TEXT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
	text       TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER,
	PRIMARY KEY (post_id, created_at, comment_id)
) WITHOUT ROWID;
INSERT INTO post_comments_by_post (comment_id, post_id, text, created_at, updated_at)
	SELECT comment_id, post_id, text, created_at, updated_at FROM post_comments ORDER BY post_id, created_at, comment_id;
DROP TABLE post_comments;
ALTER TABLE post_comments_by_post RENAME TO post_comments;
-- The read model's apply finds a copy by its comment's id (a replay
-- finds it there: ON CONFLICT (comment_id)).
CREATE UNIQUE INDEX post_comments_id ON post_comments (comment_id);
`,
}

// migrate brings the file's schema up to date in one write transaction, so
// processes starting together on a new directory migrate it exactly once:
// the second waits for the first's lock and then finds nothing to do.
func migrate(ctx context.Context, w *sql.DB) error {
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this program's %d: upgrade the program", version, len(migrations))
	}
	for i := version; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	if version < len(migrations) {
		// PRAGMA takes no parameters; the value is a constant of ours.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
			return fmt.Errorf("set schema version: %w", err)
		}
	}
	return tx.Commit()
}
