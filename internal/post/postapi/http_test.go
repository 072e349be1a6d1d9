package postapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"blog/internal/api"
	"blog/internal/post"
	"blog/internal/post/postapi"
	"blog/internal/store/sqlite"
)

// newServer serves the posts API over a real embedded store in a temp dir.
func newServer(t testing.TB) (*httptest.Server, post.Store) {
	t.Helper()
	db, err := sqlite.Open(t.Context(), t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	log := slog.New(slog.DiscardHandler)
	rt := api.NewRouter(log)
	(&postapi.Handler{Store: db.Posts(), Log: log}).Register(rt)
	srv := httptest.NewServer(rt)
	t.Cleanup(srv.Close)
	return srv, db.Posts()
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t testing.TB, srv *httptest.Server, method, path, contentType, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{res.StatusCode, res.Header, b}
}

func createPost(t *testing.T, srv *httptest.Server, title string) post.Post {
	t.Helper()
	r := do(t, srv, "POST", "/posts", "application/json", fmt.Sprintf(`{"title":%q,"content":"body"}`, title))
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var p post.Post
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

var hex24 = regexp.MustCompile(`^[0-9a-f]{24}$`)

func TestCreate(t *testing.T) {
	srv, _ := newServer(t)
	long := strings.Repeat("é", post.MaxTitleChars+1)
	tests := []struct {
		name        string
		contentType string
		body        string
		status      int
		pointer     string
	}{
		{name: "create-201", body: `{"title":"T","content":"C"}`, status: 201},
		{name: "create-201-title-at-limit", body: `{"title":"` + strings.Repeat("é", post.MaxTitleChars) + `","content":"C"}`, status: 201},
		{name: "create-400-missing-title", body: `{"content":"C"}`, status: 400, pointer: "#/title"},
		{name: "create-400-blank-title", body: `{"title":"  \t","content":"C"}`, status: 400, pointer: "#/title"},
		{name: "create-400-missing-content", body: `{"title":"T"}`, status: 400, pointer: "#/content"},
		{name: "create-400-title-too-long", body: `{"title":"` + long + `","content":"C"}`, status: 400, pointer: "#/title"},
		{name: "create-400-content-too-long", body: `{"title":"T","content":"` + strings.Repeat("é", post.MaxContentChars+1) + `"}`, status: 400, pointer: "#/content"},
		{name: "create-400-control-char", body: `{"title":"T\u0000","content":"C"}`, status: 400, pointer: "#/title"},
		{name: "create-400-unknown-field", body: `{"title":"T","content":"C","tags":[]}`, status: 400, pointer: "#/tags"},
		{name: "create-400-server-owned-id", body: `{"_id":"672a2b5ab2c87aa17bd7b49b","title":"T","content":"C"}`, status: 400, pointer: "#/_id"},
		{name: "create-400-server-owned-comments", body: `{"title":"T","content":"C","comments":[]}`, status: 400, pointer: "#/comments"},
		{name: "create-400-title-object", body: `{"title":{"$gt":""},"content":"C"}`, status: 400, pointer: "#/title"},
		{name: "create-400-array", body: `[]`, status: 400},
		{name: "create-400-invalid-json", body: `{"title":`, status: 400},
		{name: "create-415-form", contentType: "application/x-www-form-urlencoded", body: `title=T`, status: 415},
		{name: "create-413-huge", body: `{"title":"T","content":"` + strings.Repeat("x", api.MaxBody) + `"}`, status: 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct := tt.contentType
			if ct == "" {
				ct = "application/json"
			}
			r := do(t, srv, "POST", "/posts", ct, tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.status != 201 {
				var p api.Problem
				if err := json.Unmarshal(r.body, &p); err != nil || p.Status != tt.status || r.header.Get("Content-Type") != "application/problem+json" {
					t.Fatalf("not a problem response: %s", r.body)
				}
				if tt.pointer != "" && (len(p.Errors) == 0 || p.Errors[0].Pointer != tt.pointer) {
					t.Fatalf("errors %+v, want one for %s", p.Errors, tt.pointer)
				}
				return
			}
			var got map[string]any
			if err := json.Unmarshal(r.body, &got); err != nil {
				t.Fatal(err)
			}
			id, _ := got["_id"].(string)
			if !hex24.MatchString(id) {
				t.Errorf("_id %v", got["_id"])
			}
			if cs, ok := got["comments"].([]any); !ok || len(cs) != 0 {
				t.Errorf("comments %v, want []", got["comments"])
			}
			if _, err := time.Parse(time.RFC3339, fmt.Sprint(got["createdAt"])); err != nil {
				t.Errorf("createdAt %v", got["createdAt"])
			}
			if r.header.Get("Location") != "/posts/"+id {
				t.Errorf("Location %q", r.header.Get("Location"))
			}
		})
	}
}

func TestGetUpdateDelete(t *testing.T) {
	srv, _ := newServer(t)
	p := createPost(t, srv, "first")
	tests := []struct {
		name, method, path, body string
		status                   int
		check                    func(t *testing.T, body []byte)
	}{
		{name: "get-200", method: "GET", path: "/posts/" + p.ID, status: 200, check: func(t *testing.T, b []byte) {
			var got post.Post
			_ = json.Unmarshal(b, &got)
			// The post as created, its empty comments an array, not null.
			if diff := cmp.Diff(p, got); diff != "" || got.Comments == nil {
				t.Errorf("GET (-created +got):\n%s", diff)
			}
		}},
		{name: "get-404", method: "GET", path: "/posts/672a2b5ab2c87aa17bd7b49b", status: 404},
		{name: "get-400-bad-id", method: "GET", path: "/posts/not-an-id", status: 400},
		{name: "patch-400-empty", method: "PATCH", path: "/posts/" + p.ID, body: `{}`, status: 400},
		{name: "patch-400-blank-title", method: "PATCH", path: "/posts/" + p.ID, body: `{"title":" "}`, status: 400},
		{name: "patch-400-server-owned", method: "PATCH", path: "/posts/" + p.ID, body: `{"commentCount":5}`, status: 400},
		{name: "patch-404", method: "PATCH", path: "/posts/672a2b5ab2c87aa17bd7b49b", body: `{"title":"x"}`, status: 404},
		{name: "patch-200", method: "PATCH", path: "/posts/" + p.ID, body: `{"title":"renamed"}`, status: 200, check: func(t *testing.T, b []byte) {
			var got post.Post
			_ = json.Unmarshal(b, &got)
			if got.Title != "renamed" || got.Content != "body" || got.UpdatedAt == nil {
				t.Errorf("got %+v", got)
			}
		}},
		{name: "put-405", method: "PUT", path: "/posts/" + p.ID, body: `{}`, status: 405},
		{name: "delete-204", method: "DELETE", path: "/posts/" + p.ID, status: 204},
		{name: "delete-404", method: "DELETE", path: "/posts/" + p.ID, status: 404},
		{name: "get-404-after-delete", method: "GET", path: "/posts/" + p.ID, status: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct := ""
			if tt.body != "" {
				ct = "application/json"
			}
			r := do(t, srv, tt.method, tt.path, ct, tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.check != nil {
				tt.check(t, r.body)
			}
		})
	}
}

func TestListPages(t *testing.T) {
	srv, _ := newServer(t)
	want := map[string]bool{}
	for i := range 7 {
		want[createPost(t, srv, fmt.Sprint("post ", i)).ID] = true
	}
	linkRE := regexp.MustCompile(`^<([^>]+)>; rel="next"$`)
	seen := map[string]bool{}
	var last time.Time
	path := "/posts?limit=3"
	pages := 0
	for path != "" {
		r := do(t, srv, "GET", path, "", "")
		if r.status != 200 {
			t.Fatalf("GET %s: %d %s", path, r.status, r.body)
		}
		var ps []post.Post
		if err := json.Unmarshal(r.body, &ps); err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if seen[p.ID] {
				t.Fatalf("post %s repeated across pages", p.ID)
			}
			if !last.IsZero() && p.CreatedAt.After(last) {
				t.Fatalf("not newest first: %v after %v", p.CreatedAt, last)
			}
			seen[p.ID], last = true, p.CreatedAt
		}
		pages++
		path = ""
		if m := linkRE.FindStringSubmatch(r.header.Get("Link")); m != nil {
			path = m[1]
		}
	}
	if len(seen) != len(want) || pages != 3 {
		t.Fatalf("saw %d posts in %d pages, want %d in 3", len(seen), pages, len(want))
	}

	for _, tt := range []struct{ name, query string }{
		{"list-400-limit-zero", "?limit=0"},
		{"list-400-limit-huge", "?limit=1000"},
		{"list-400-bad-cursor", "?after=abc"},
		{"list-400-unknown-param", "?page=2"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if r := do(t, srv, "GET", "/posts"+tt.query, "", ""); r.status != 400 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
		})
	}
	t.Run("list-200-empty-is-array", func(t *testing.T) {
		srv, _ := newServer(t)
		r := do(t, srv, "GET", "/posts", "", "")
		if r.status != 200 || strings.TrimSpace(string(r.body)) != "[]" {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
}
