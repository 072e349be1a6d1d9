package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"modernc.org/sqlite"

	"blog/internal/changes"
	"blog/internal/comment"
	"blog/internal/page"
	"blog/internal/post"
)

// TestMigrateFromVersion3 builds a file as the previous release left it
// (schema version 3: covering indexes, post_comments with a rowid), with a
// post, its comments and their copies, then opens it with this program and
// checks that it migrates, reads the same, and keeps working.
func TestMigrateFromVersion3(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	old := sql.OpenDB(connector{dsn: dsn(filepath.Join(dir, FileName), true), drv: &sqlite.Driver{}})
	old.SetMaxOpenConns(1)
	for i, m := range migrations[:3] {
		if _, err := old.ExecContext(ctx, m); err != nil {
			t.Fatalf("migration %d: %v", i+1, err)
		}
	}
	at := time.Now().UTC().Truncate(time.Millisecond)
	p := post.Post{ID: id(), Title: "old", Content: "from version 3", CreatedAt: at}
	if _, err := old.ExecContext(ctx, `INSERT INTO posts (id, title, content, comment_count, created_at) VALUES (?, ?, ?, 5, ?)`,
		p.ID, p.Title, p.Content, ms(at)); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 5 {
		c := id()
		ids = append(ids, c)
		text := fmt.Sprintf("comment %d", i)
		when := ms(at) + int64(i)
		if _, err := old.ExecContext(ctx, `INSERT INTO comments (id, post_id, text, created_at) VALUES (?, ?, ?, ?)`, c, p.ID, text, when); err != nil {
			t.Fatal(err)
		}
		if _, err := old.ExecContext(ctx, `INSERT INTO post_comments (comment_id, post_id, text, created_at) VALUES (?, ?, ?, ?)`, c, p.ID, text, when); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := old.ExecContext(ctx, `PRAGMA user_version = 3`); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	db := openTest(t, dir, testOptions) // embed limit 3
	var version int
	if err := db.r.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil || version != len(migrations) {
		t.Fatalf("schema version %d (%v), want %d", version, err, len(migrations))
	}
	rows, err := db.r.QueryContext(ctx, `SELECT name, sql FROM sqlite_schema
		WHERE type = 'index' AND tbl_name IN ('comments', 'post_comments') AND sql IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	indexes := map[string]string{}
	for rows.Next() {
		var name, ddl string
		if err := rows.Scan(&name, &ddl); err != nil {
			t.Fatal(err)
		}
		indexes[name] = ddl
	}
	rows.Close()
	for _, name := range []string{"comments_id", "post_comments_id"} {
		if _, ok := indexes[name]; !ok {
			t.Errorf("no index %s after the migration: %v", name, indexes)
		}
	}
	for name, ddl := range indexes {
		if strings.Contains(ddl, "text") {
			t.Errorf("index %s carries the text: %s", name, ddl)
		}
	}

	got, err := db.Posts().Get(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.CommentCount != 5 || len(got.Comments) != 3 || got.Comments[0].ID != ids[2] || got.Comments[2].Text != "comment 4" {
		t.Fatalf("migrated post reads %+v, want count 5 and the latest 3 of %v", got, ids)
	}
	list, err := db.Comments().ListByPost(ctx, p.ID, page.Query{Limit: 10})
	if err != nil || len(list) != 5 || list[0].ID != ids[0] {
		t.Fatalf("migrated comments list %v, %v", list, err)
	}

	// It keeps working: a new comment is stored, synced, and the post's
	// delete still takes its copies with it (the foreign key survived).
	st, err := db.CommentFeed().Open(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	c := comment.Comment{ID: id(), PostID: p.ID, Text: "after the upgrade", CreatedAt: at.Add(time.Second)}
	if err := db.Comments().Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	evs := readUntil(t, st, 1)
	b := changes.Batch[comment.Comment]{Events: evs, Token: evs[len(evs)-1].Token}
	if err := db.Posts().Apply(ctx, "posts", b); err != nil {
		t.Fatal(err)
	}
	if got, err = db.Posts().Get(ctx, p.ID); err != nil || got.CommentCount != 6 || got.Comments[2].ID != c.ID {
		t.Fatalf("after a new comment the post reads %+v, %v", got, err)
	}
	if err := db.Posts().Delete(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	var copies int
	if err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM post_comments`).Scan(&copies); err != nil || copies != 0 {
		t.Fatalf("%d copies left after the post's delete (%v)", copies, err)
	}
}
