package sqlite

import (
	"context"
	"strings"
	"testing"
)

// TestQueryPlans asks SQLite's planner how it runs each hot statement and
// fails on a table scan or a sort, either of which would make a request or
// an event apply cost O(rows) at a million comments.
func TestQueryPlans(t *testing.T) {
	db := openTest(t, t.TempDir(), testOptions)
	for _, tc := range []struct {
		name string
		sql  string
		args []any
		// walk allows an ordered index walk ("SCAN t USING INDEX i"),
		// which stops at the LIMIT: the first page of a list.
		walk string
	}{
		{"list-posts", qListPosts, []any{20}, "SCAN posts USING INDEX posts_created"},
		{"list-posts-after", qListPostsAfter, []any{1, "a", 20}, ""},
		{"embedded", qEmbedded, []any{"a", 50}, ""},
		{"embedded-many-1", qEmbeddedMany[0], []any{50, "a"}, ""},
		{"embedded-many-4", qEmbeddedMany[2], []any{50, "a", "b", nil, nil}, ""},
		{"embedded-many-128", qEmbeddedMany[7], append([]any{50}, make([]any, 128)...), ""},
		{"embedded-before", qEmbeddedBefore, []any{"a", 1, "a", 50}, ""},
		{"create-comment", qCreateComment, []any{"a", "p", "t", 1, nil, "p"}, ""},
		{"list-comments", qListComments, []any{"a", 20}, ""},
		{"list-comments-after", qListCommentsAfter, []any{"a", 1, "a", 20}, ""},
		{"delete-comments-chunk", qDeleteCommentsChunk, []any{"a", 1000}, ""},
		{"delete-post-cascades", `DELETE FROM posts WHERE id = ?`, []any{"a"}, ""},
		{"insert-copy", qInsertCopy, []any{"a", "p", "t", 1, nil, "p"}, ""},
		{"update-copy", qUpdateCopy, []any{"t", 1, "a", "t", 1}, ""},
		{"delete-copy", qDeleteCopy, []any{"a"}, ""},
		{"count-copy", qCountCopy, []any{1, "p"}, ""},
		{"read-log", qReadLog, []any{collComments, 1, 2, 500}, ""},
		{"check-fence", `SELECT fence FROM leases WHERE name = ?`, []any{"n"}, ""},
		{"sync-delete-stale", qSyncDeleteStale, []any{"a", "b"}, ""},
		{"sync-update-changed", qSyncUpdateChanged, []any{"a", "b"}, ""},
		{"sync-insert-missing", qSyncInsertMissing, []any{"a", "b"}, ""},
		{"sync-counts", qSyncCounts, []any{"a", "b"}, ""},
		{"delete-orphans-chunk", qDeleteOrphansChunk, []any{"a", 1000}, ""},
		{"next-commented-post", qNextCommentedPost, []any{"a"}, ""},
		{"oldest-log", qOldestLog, []any{5000}, "SCAN changelog"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := db.w.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+tc.sql, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if len(plan) == 0 {
				t.Fatal("no plan")
			}
			for _, step := range plan {
				// Reading a subquery's co-routine (a UNION ALL of
				// seeks) is not a table scan.
				scan := strings.HasPrefix(step, "SCAN ") && step != tc.walk &&
					!strings.HasPrefix(step, "SCAN (subquery-")
				if scan || strings.Contains(step, "TEMP B-TREE") {
					t.Errorf("plan step %q\nfull plan: %q", step, plan)
				}
			}
		})
	}
}
