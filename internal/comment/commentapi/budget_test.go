package commentapi_test

import (
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"blog/internal/api"
	"blog/internal/comment"
	"blog/internal/comment/commentapi"
	"blog/internal/post"
	"blog/internal/store/sqlite"
)

var nextLink = regexp.MustCompile(`<([^>]+)>; rel="next"`)

// TestListByteBudget: a post's comments listed with limit=100 come in pages
// within the byte budget, JSON arrays, whose next links continue exactly
// where each stopped.
func TestListByteBudget(t *testing.T) {
	const budget = 32 << 10
	db, err := sqlite.Open(t.Context(), t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	postID := bson.NewObjectID().Hex()
	if err := db.Posts().Create(t.Context(), post.Post{ID: postID, Title: "t", Content: "c", CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	rt := api.NewRouter(log)
	(&commentapi.Handler{Store: db.Comments(), Log: log, ListBytes: budget}).Register(rt)
	srv := httptest.NewServer(rt)
	t.Cleanup(srv.Close)

	want := map[string]bool{}
	for range 30 {
		c := create(t, srv, postID, strings.Repeat("y", 5000))
		want[c.ID] = true
	}
	seen := map[string]bool{}
	path, pages := "/comments/"+postID+"?limit=100", 0
	for path != "" && pages < 50 {
		pages++
		r := do(t, srv, "GET", path, "")
		if r.status != 200 || len(r.body) > budget {
			t.Fatalf("GET %s: %d, %d bytes (budget %d)", path, r.status, len(r.body), budget)
		}
		var cs []comment.Comment
		if err := json.Unmarshal(r.body, &cs); err != nil || len(cs) == 0 {
			t.Fatalf("page %d: %d comments, %v", pages, len(cs), err)
		}
		for _, c := range cs {
			if seen[c.ID] {
				t.Fatalf("comment %s on two pages", c.ID)
			}
			seen[c.ID] = true
		}
		path = ""
		if m := nextLink.FindStringSubmatch(r.header.Get("Link")); m != nil {
			path = m[1]
		}
	}
	if pages < 3 || len(seen) != len(want) {
		t.Fatalf("%d pages saw %d comments, want %d over several pages", pages, len(seen), len(want))
	}
}
