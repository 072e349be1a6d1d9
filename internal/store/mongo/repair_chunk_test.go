package mongo_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"blog/internal/comment"
	"blog/internal/post"
	"blog/internal/store/mongo"
	"blog/internal/store/mongo/mongotest"
)

// TestRebuildPostInChunks (issue 10, defect 7): a post whose comments span
// many repair chunks is repaired whole, chunk by chunk: its copies made and
// pruned, its window and count recomputed.
func TestRebuildPostInChunks(t *testing.T) {
	defer mongo.SetRepairChunk(4)()
	db := mongotest.Open(t, mongo.Options{EmbedLimit: 3})
	p := newPost(t, db, "big", at(0))
	var cs []comment.Comment
	for i := range 23 { // six chunks
		cs = append(cs, newComment(t, db, p.ID, "c", at(i+1)))
	}
	rp := repairer(t, db)
	check := func(what string, live []comment.Comment) {
		t.Helper()
		if err := rp.RebuildPost(ctxFor(t), p.ID); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		got, err := db.Posts().Get(ctxFor(t), p.ID)
		if err != nil {
			t.Fatal(err)
		}
		var want []post.Comment
		for _, c := range live {
			want = append(want, post.Embed(c))
		}
		want = post.Latest(want, 3)
		if got.CommentCount != len(live) {
			t.Errorf("%s: commentCount %d, want %d", what, got.CommentCount, len(live))
		}
		if d := cmp.Diff(want, got.Comments); d != "" {
			t.Errorf("%s: embedded (-want +got):\n%s", what, d)
		}
	}
	check("first repair: every copy made", cs)
	// Delete comments behind the read model's back (no consumer runs):
	// the repair prunes their copies, across chunks.
	for _, c := range []comment.Comment{cs[0], cs[9], cs[21], cs[22]} {
		if _, err := db.Comments().Delete(ctxFor(t), c.ID); err != nil {
			t.Fatal(err)
		}
	}
	live := append([]comment.Comment{}, cs[1:9]...)
	live = append(live, cs[10:21]...)
	check("second repair: gone copies pruned", live)
}
