package post_test

import (
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"blog/internal/comment"
	"blog/internal/post"
	"blog/internal/store/sqlite"
)

// TestVerifyFindsAndRepairsDrift: comments written while no sync runs leave
// their posts behind; Verify names exactly those posts, and RebuildPost
// mends them.
func TestVerifyFindsAndRepairsDrift(t *testing.T) {
	const limit = 3
	db, err := sqlite.Open(t.Context(), t.TempDir(), sqlite.Options{EmbedLimit: limit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	var ids []string
	for i := range 3 {
		id := bson.NewObjectID().Hex()
		if err := db.Posts().Create(ctx, post.Post{ID: id, Title: fmt.Sprint("p", i), Content: "c", CreatedAt: now.Add(time.Duration(i) * time.Millisecond)}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	// Five comments on the first post, none on the others: only the first
	// drifts.
	for i := range 5 {
		c := comment.Comment{ID: bson.NewObjectID().Hex(), PostID: ids[0], Text: fmt.Sprint("c", i), CreatedAt: now.Add(time.Duration(i) * time.Millisecond)}
		if err := db.Comments().Create(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	var drift []post.Drift
	checked, err := post.Verify(ctx, db.Posts(), db.Comments(), limit, func(d post.Drift) error {
		drift = append(drift, d)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked != 3 || len(drift) != 1 || drift[0].PostID != ids[0] || drift[0].WantCount != 5 || len(drift[0].WantEmbedded) != limit {
		t.Fatalf("checked %d, drift %+v", checked, drift)
	}
	if drift[0].WantEmbedded[0].Text != "c2" || drift[0].WantEmbedded[2].Text != "c4" {
		t.Fatalf("want the latest %d oldest first, got %+v", limit, drift[0].WantEmbedded)
	}
	if err := db.Posts().(post.Repairer).RebuildPost(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := post.Verify(ctx, db.Posts(), db.Comments(), limit, func(d post.Drift) error {
		return fmt.Errorf("still drifted after repair: %v", d)
	}); err != nil {
		t.Fatal(err)
	}
}
