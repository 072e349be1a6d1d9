package postapi_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"blog/internal/api"
	"blog/internal/post"
	"blog/internal/post/postapi"
	"blog/internal/store/sqlite"
)

var nextLink = regexp.MustCompile(`<([^>]+)>; rel="next"`)

// TestListByteBudget is finding 2's attack: large posts listed with
// limit=100 gave a body of every post at once. Under a byte budget a page
// holds fewer items than limit, stays a JSON array within the budget, and
// its next link continues exactly where it stopped: paging through sees
// every post once, in order.
func TestListByteBudget(t *testing.T) {
	const budget = 32 << 10
	db, err := sqlite.Open(t.Context(), t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	log := slog.New(slog.DiscardHandler)
	rt := api.NewRouter(log)
	(&postapi.Handler{Store: db.Posts(), Log: log, ListBytes: budget}).Register(rt)
	srv := httptest.NewServer(rt)
	t.Cleanup(srv.Close)

	var want []string
	for i := range 40 {
		size := 3000 + 500*(i%5) // uneven sizes, so pages end at different counts
		r := do(t, srv, "POST", "/posts", "application/json",
			fmt.Sprintf(`{"title":"post %d","content":%q}`, i, strings.Repeat("x", size)))
		if r.status != 201 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		var p post.Post
		_ = json.Unmarshal(r.body, &p)
		want = append([]string{p.ID}, want...) // newest first
	}
	var got []string
	path, pages := "/posts?limit=100", 0
	for path != "" && pages < 50 {
		pages++
		r := do(t, srv, "GET", path, "", "")
		if r.status != 200 {
			t.Fatalf("GET %s: %d %s", path, r.status, r.body)
		}
		if len(r.body) > budget {
			t.Fatalf("page %d is %d bytes, over the budget of %d", pages, len(r.body), budget)
		}
		var ps []post.Post
		if err := json.Unmarshal(r.body, &ps); err != nil {
			t.Fatalf("page %d is not a JSON array: %v", pages, err)
		}
		if len(ps) == 0 || len(ps) >= 100 {
			t.Fatalf("page %d holds %d posts", pages, len(ps))
		}
		for _, p := range ps {
			got = append(got, p.ID)
		}
		path = ""
		if m := nextLink.FindStringSubmatch(r.header.Get("Link")); m != nil {
			path = m[1]
			if !strings.Contains(path, "limit=100") {
				t.Fatalf("next link %q does not keep the limit", path)
			}
		}
	}
	if pages < 3 {
		t.Fatalf("%d pages: the budget did not split the list", pages)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("paging saw %d posts, want each of the %d once in order", len(got), len(want))
	}
}
