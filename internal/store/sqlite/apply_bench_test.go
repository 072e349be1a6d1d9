package sqlite

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"blog/internal/changes"
	"blog/internal/comment"
	"blog/internal/post"
)

// Micro-benchmarks of the embedded store's hot paths, for regression
// tracking with benchstat:
//
//	go test -run '^$' -bench . -count 10 ./internal/store/sqlite/ > new.txt
//	benchstat old.txt new.txt
//
// Each runs on a store seeded with benchPosts posts of benchPerPost comments,
// so index depths are those of a small live blog rather than an empty file.

const (
	benchPosts   = 1000
	benchPerPost = 20
)

// benchStore opens a seeded store in a temp dir.
func benchStore(b *testing.B) (*DB, []SeededPost) {
	b.Helper()
	db, err := Open(context.Background(), b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	posts, err := db.Seed(context.Background(), SeedSpec{Posts: benchPosts, CommentsPerPost: benchPerPost})
	if err != nil {
		b.Fatal(err)
	}
	return db, posts
}

func benchComment(postID string) comment.Comment {
	return comment.Comment{
		ID: bson.NewObjectID().Hex(), PostID: postID,
		Text:      "A comment of about the length people write, give or take a few words.",
		CreatedAt: time.Now().UTC().Truncate(time.Millisecond),
	}
}

// BenchmarkCreateCommentSeeded is the comments service's insert: the post check,
// the row and its change-log entry, one transaction.
func BenchmarkCreateCommentSeeded(b *testing.B) {
	db, posts := benchStore(b)
	s := db.Comments()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Create(ctx, benchComment(posts[rand.IntN(len(posts))].ID)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInsertBaseline is the bare insert the create path is held
// against: the same table and transaction discipline, nothing else.
func BenchmarkInsertBaseline(b *testing.B) {
	db, posts := benchStore(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := db.InsertBaseline(ctx, benchComment(posts[rand.IntN(len(posts))].ID)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplySeeded folds insert events into the posts' read model with the
// checkpoint, as the posts service's consumer does: batch=1 is the paced
// steady state (one event per wake-up), batch=100 a backlog. ns/op is per
// event.
func BenchmarkApplySeeded(b *testing.B) {
	for _, size := range []int{1, 100} {
		b.Run("batch="+strconv.Itoa(size), func(b *testing.B) {
			db, posts := benchStore(b)
			s := db.Posts()
			ctx := context.Background()
			seq := 0
			b.ReportAllocs()
			for b.Loop() {
				evs := make([]changes.Event[comment.Comment], size)
				for i := range evs {
					c := benchComment(posts[rand.IntN(len(posts))].ID)
					evs[i] = changes.Event[comment.Comment]{Op: changes.Insert, Key: c.ID, Doc: c, Found: true}
				}
				seq++
				if err := s.Apply(ctx, "bench", changes.Batch[comment.Comment]{Events: evs, Token: encodeToken(int64(seq))}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/event")
		})
	}
}

// BenchmarkGetPostSeeded reads a post with its embedded comments in one snapshot.
func BenchmarkGetPostSeeded(b *testing.B) {
	db, posts := benchStore(b)
	s := db.Posts()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Get(ctx, posts[rand.IntN(len(posts))].ID); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLogPostDoc is the JSON of a post the projection appends to the
// posts feed for every post a batch changed (with a full embed of 50).
func BenchmarkLogPostDoc(b *testing.B) {
	p := post.Post{
		ID: bson.NewObjectID().Hex(), Title: "A post", Content: filler(defaultSeedContent),
		CommentCount: 120, CreatedAt: time.Now().UTC(),
	}
	for range post.DefaultEmbedLimit {
		c := benchComment(p.ID)
		p.Comments = append(p.Comments, post.Embed(c))
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(toPostDoc(p)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSeed is the bulk loader `blog bench` prepares its datasets with;
// ns/op is per comment (with its read-model copy).
func BenchmarkSeed(b *testing.B) {
	db, err := Open(context.Background(), b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	b.ReportAllocs()
	b.ResetTimer()
	posts := max(1, b.N/benchPerPost)
	if _, err := db.Seed(context.Background(), SeedSpec{Posts: posts, CommentsPerPost: benchPerPost}); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(posts*benchPerPost), "ns/comment")
}
