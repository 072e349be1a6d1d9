package postapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"blog/internal/api"
	"blog/internal/live"
	"blog/internal/page"
	"blog/internal/post"
)

// Micro-benchmarks of the posts service's response encoding, for
// regression tracking with benchstat:
//
//	go test -run '^$' -bench Encode -count 10 ./internal/post/ > new.txt
//	benchstat old.txt new.txt

// benchPost returns a post shaped like the bench's seeded ones: 480 bytes of
// content and n embedded comments of about 100 bytes.
func benchPost(n int) post.Post {
	at := time.Date(2026, 11, 23, 19, 50, 21, 42e6, time.UTC)
	p := post.Post{
		ID: "672a2b5ab2c87aa17bd7b49b", Title: "Seeded post 1234",
		Content:      strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit. ", 9)[:480],
		CommentCount: n, CreatedAt: at, Comments: make([]post.Comment, n),
	}
	for i := range p.Comments {
		p.Comments[i] = post.Comment{
			ID:        fmt.Sprintf("672a2b6cb2c87aa17bd7%04x", i),
			Text:      fmt.Sprintf("Comment %d on post 1234: ", i) + strings.Repeat("sed do eiusmod tempor ", 4)[:72],
			CreatedAt: at.Add(time.Duration(i) * time.Millisecond),
		}
	}
	return p
}

// discardWriter is a ResponseWriter that keeps nothing, so the benchmark
// measures the encoding rather than a recorder's buffer growth.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

// BenchmarkEncodePost is GET /posts/{id}'s encoding of one post with its
// embedded comments (20: the bench's datasets; 50: a full default embed).
func BenchmarkEncodePost(b *testing.B) {
	for _, n := range []int{20, post.DefaultEmbedLimit} {
		b.Run(fmt.Sprintf("comments=%d", n), func(b *testing.B) {
			p := benchPost(n)
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				api.WriteJSON(w, http.StatusOK, normalize(p))
			}
		})
	}
}

// BenchmarkEncodePostPage is GET /posts's encoding of a full page (20 posts
// of 20 embedded comments), with its Link header.
func BenchmarkEncodePostPage(b *testing.B) {
	posts := make([]post.Post, page.DefaultLimit+1)
	for i := range posts {
		posts[i] = benchPost(20)
	}
	r := httptest.NewRequest(http.MethodGet, "/posts", nil)
	q := page.Query{Limit: page.DefaultLimit}
	b.ReportAllocs()
	for b.Loop() {
		w := &discardWriter{h: http.Header{}}
		api.WritePage(w, r, q, posts, post.Post.Cursor)
	}
}

// BenchmarkEncodePostCached is what GET /posts/{id} does with a post it
// did not have cached: AppendJSON and the ETag's hash (live.Encode), for
// comparison with BenchmarkEncodePost, the encoding/json path.
func BenchmarkEncodePostCached(b *testing.B) {
	for _, n := range []int{20, post.DefaultEmbedLimit} {
		b.Run(fmt.Sprintf("comments=%d", n), func(b *testing.B) {
			p := benchPost(n)
			b.ReportAllocs()
			for b.Loop() {
				_ = live.Encode(p)
			}
		})
	}
}
