package sqlite_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"blog/internal/changes"
	"blog/internal/comment"
	"blog/internal/page"
	"blog/internal/post"
	"blog/internal/store/sqlite"
)

// TestSeedLeavesStoreInSync seeds a store, checks that the read model agrees
// with the comments (what `blog verify` checks), and that the posts
// service's consumer then starts without replaying or rebuilding anything and
// syncs the next real comment on top of the seeded ones.
func TestSeedLeavesStoreInSync(t *testing.T) {
	ctx := context.Background()
	const embed = 5
	db, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{EmbedLimit: embed, PollInterval: 5 * time.Millisecond, QuietInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })

	seeded, err := db.Seed(ctx, sqlite.SeedSpec{Posts: 2100, CommentsPerPost: 7})
	if err != nil {
		t.Fatal(err)
	}
	if len(seeded) != 2100 {
		t.Fatalf("seeded %d posts, want 2100", len(seeded))
	}
	for i := 1; i < len(seeded); i++ {
		if !seeded[i].CreatedAt.After(seeded[i-1].CreatedAt) {
			t.Fatalf("seeded posts are not oldest first at %d", i)
		}
	}
	// A second seed adds to the first (two chunks and a partial statement
	// each time: 2100 is not a multiple of either batch size).
	more, err := db.Seed(ctx, sqlite.SeedSpec{Posts: 3, CommentsPerPost: 1, Before: seeded[0].CreatedAt})
	if err != nil {
		t.Fatal(err)
	}

	posts, comments := db.Posts(), db.Comments()
	checked, err := post.Verify(ctx, posts, comments, embed, func(d post.Drift) error {
		t.Errorf("drift after seeding: %v", d)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked != 2103 {
		t.Errorf("verify checked %d posts, want 2103", checked)
	}

	p, err := posts.Get(ctx, seeded[1234].ID)
	if err != nil {
		t.Fatal(err)
	}
	if p.CommentCount != 7 || len(p.Comments) != embed || !p.CreatedAt.Equal(seeded[1234].CreatedAt) {
		t.Fatalf("seeded post: count %d, %d embedded, created %v; want 7, %d, %v", p.CommentCount, len(p.Comments), p.CreatedAt, embed, seeded[1234].CreatedAt)
	}
	cs, err := comments.ListByPost(ctx, more[2].ID, page.Query{Limit: 10})
	if err != nil || len(cs) != 1 || cs[0].Text == "" {
		t.Fatalf("comments of a second-seed post: %v, %v", cs, err)
	}
	// The newest page of posts starts with the first seed's newest post.
	page1, err := posts.List(ctx, page.Query{Limit: 2})
	if err != nil || len(page1) != 2 || page1[0].ID != seeded[len(seeded)-1].ID {
		t.Fatalf("first page: %v, %v", page1, err)
	}

	// The consumer starts at the head and has nothing to do for the seed.
	c := &changes.Consumer[comment.Comment]{
		Name: post.CommentsConsumer, Feed: db.CommentFeed(), Sink: posts,
		Log:        slog.New(slog.DiscardHandler),
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(cctx) }()
	t.Cleanup(func() { cancel(); <-done })

	deadline := time.Now().Add(10 * time.Second)
	for !c.Running() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	nc := comment.Comment{ID: bson.NewObjectID().Hex(), PostID: seeded[0].ID, Text: "after the seed", CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if err := comments.Create(ctx, nc); err != nil {
		t.Fatal(err)
	}
	for {
		p, err := posts.Get(ctx, seeded[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if p.CommentCount == 8 && p.Comments[len(p.Comments)-1].ID == nc.ID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new comment did not sync: count %d, embedded %v", p.CommentCount, p.Comments)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if s := c.Stats(); s.Applied != 1 || s.Resyncs != 0 {
		t.Errorf("consumer stats %+v: want exactly the one new event applied and no rebuild", s)
	}
}

// TestInsertBaseline checks the write ceiling's insert lands in comments.
func TestInsertBaseline(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c := comment.Comment{ID: bson.NewObjectID().Hex(), PostID: bson.NewObjectID().Hex(), Text: "raw", CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if err := db.InsertBaseline(ctx, c); err != nil {
		t.Fatal(err)
	}
	got, err := db.Comments().Get(ctx, c.ID)
	if err != nil || got.Text != "raw" {
		t.Fatalf("got %v, %v", got, err)
	}
	if err := db.InsertBaseline(ctx, c); err == nil {
		t.Fatal("a duplicate id was inserted twice")
	}
}
