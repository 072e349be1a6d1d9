package commentapi_test

import (
	"context"
	"encoding/json"
	"errors"
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
	"go.mongodb.org/mongo-driver/v2/bson"

	"blog/internal/api"
	"blog/internal/comment"
	"blog/internal/comment/commentapi"
	"blog/internal/post"
	"blog/internal/store/sqlite"
)

// newServer serves the comments API over a real embedded store and returns
// the id of one existing post to comment on.
func newServer(t testing.TB) (*httptest.Server, string) {
	t.Helper()
	srv, postID, _ := newServerDB(t)
	return srv, postID
}

// newServerDB is newServer that also returns the store, to set up posts.
func newServerDB(t testing.TB) (*httptest.Server, string, *sqlite.DB) {
	t.Helper()
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
	(&commentapi.Handler{Store: db.Comments(), Log: log, PostExists: postExists(db.Posts()), Idempotency: (&api.IdempotencyKeys{}).Middleware()}).Register(rt)
	srv := httptest.NewServer(rt)
	t.Cleanup(srv.Close)
	return srv, postID, db
}

// postExists is how cmd/blog wires Handler.PostExists to the posts store.
func postExists(ps post.Store) func(context.Context, string) error {
	return func(ctx context.Context, id string) error {
		if _, err := ps.Get(ctx, id); err != nil {
			if errors.Is(err, post.ErrNotFound) {
				return comment.ErrPostNotFound
			}
			return err
		}
		return nil
	}
}

// TestListUnknownPost: listing the comments of a post that does not exist
// answers 404 like creating one on it does, while a post that exists but
// has no comments lists as an empty array.
func TestListUnknownPost(t *testing.T) {
	srv, _, db := newServerDB(t)
	empty := bson.NewObjectID().Hex()
	if err := db.Posts().Create(t.Context(), post.Post{ID: empty, Title: "t", Content: "c", CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		status     int
		body       string
	}{
		{name: "list-404-unknown-post", path: "/comments/672a2b5ab2c87aa17bd7b49b", status: 404},
		{name: "list-200-post-without-comments", path: "/comments/" + empty, status: 200, body: "[]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, srv, "GET", tt.path, "")
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.body != "" && strings.TrimSpace(string(r.body)) != tt.body {
				t.Fatalf("body %s, want %s", r.body, tt.body)
			}
			if tt.status == 404 && r.header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("404 is not a problem: %s", r.header.Get("Content-Type"))
			}
		})
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t testing.TB, srv *httptest.Server, method, path, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{res.StatusCode, res.Header, b}
}

func create(t *testing.T, srv *httptest.Server, postID, text string) comment.Comment {
	t.Helper()
	r := do(t, srv, "POST", "/comments", fmt.Sprintf(`{"postId":%q,"text":%q}`, postID, text))
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var c comment.Comment
	if err := json.Unmarshal(r.body, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCreate(t *testing.T) {
	srv, postID := newServer(t)
	tests := []struct {
		name, body string
		status     int
		pointer    string
	}{
		{name: "create-201", body: `{"postId":"` + postID + `","text":"hello"}`, status: 201},
		{name: "create-404-unknown-post", body: `{"postId":"672a2b5ab2c87aa17bd7b49b","text":"hello"}`, status: 404},
		{name: "create-400-missing-text", body: `{"postId":"` + postID + `"}`, status: 400, pointer: "#/text"},
		{name: "create-400-blank-text", body: `{"postId":"` + postID + `","text":"\n "}`, status: 400, pointer: "#/text"},
		{name: "create-400-text-too-long", body: `{"postId":"` + postID + `","text":"` + strings.Repeat("字", comment.MaxTextChars+1) + `"}`, status: 400, pointer: "#/text"},
		{name: "create-400-missing-postId", body: `{"text":"hi"}`, status: 400, pointer: "#/postId"},
		{name: "create-400-bad-postId", body: `{"postId":"123","text":"hi"}`, status: 400, pointer: "#/postId"},
		{name: "create-400-uppercase-postId", body: `{"postId":"` + strings.ToUpper(postID) + `","text":"hi"}`, status: 400, pointer: "#/postId"},
		{name: "create-400-operator-postId", body: `{"postId":{"$ne":null},"text":"hi"}`, status: 400, pointer: "#/postId"},
		{name: "create-400-server-owned-createdAt", body: `{"postId":"` + postID + `","text":"hi","createdAt":"2020-01-01T00:00:00Z"}`, status: 400, pointer: "#/createdAt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, srv, "POST", "/comments", tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.status == 201 {
				var got map[string]any
				_ = json.Unmarshal(r.body, &got)
				if got["postId"] != postID || got["text"] != "hello" || !regexp.MustCompile(`^[0-9a-f]{24}$`).MatchString(fmt.Sprint(got["_id"])) {
					t.Errorf("created %v", got)
				}
				return
			}
			var p api.Problem
			if err := json.Unmarshal(r.body, &p); err != nil || p.Status != tt.status {
				t.Fatalf("not a problem: %s", r.body)
			}
			if tt.pointer != "" && (len(p.Errors) == 0 || p.Errors[0].Pointer != tt.pointer) {
				t.Fatalf("errors %+v, want %s", p.Errors, tt.pointer)
			}
		})
	}
	// Nothing refused was stored.
	var cs []comment.Comment
	r := do(t, srv, "GET", "/comments/"+postID, "")
	_ = json.Unmarshal(r.body, &cs)
	if len(cs) != 1 {
		t.Fatalf("stored %d comments, want the 1 valid one: %s", len(cs), r.body)
	}
}

func TestListUpdateDelete(t *testing.T) {
	srv, postID := newServer(t)
	var ids []string
	for i := range 5 {
		ids = append(ids, create(t, srv, postID, fmt.Sprint("c", i)).ID)
	}
	// Oldest first, in pages linked by rel="next".
	var got []string
	path := "/comments/" + postID + "?limit=2"
	for path != "" {
		r := do(t, srv, "GET", path, "")
		if r.status != 200 {
			t.Fatalf("%s: %d %s", path, r.status, r.body)
		}
		var cs []comment.Comment
		_ = json.Unmarshal(r.body, &cs)
		for _, c := range cs {
			got = append(got, c.ID)
		}
		path = ""
		if m := regexp.MustCompile(`^<([^>]+)>; rel="next"$`).FindStringSubmatch(r.header.Get("Link")); m != nil {
			path = m[1]
		}
	}
	if diff := cmp.Diff(ids, got); diff != "" {
		t.Fatalf("paged ids, oldest first (-want +got):\n%s", diff)
	}

	tests := []struct {
		name, method, path, body string
		status                   int
	}{
		{name: "list-400-bad-id", method: "GET", path: "/comments/xyz", status: 400},
		{name: "patch-200", method: "PATCH", path: "/comments/" + ids[0], body: `{"text":"edited"}`, status: 200},
		{name: "patch-400-blank", method: "PATCH", path: "/comments/" + ids[0], body: `{"text":""}`, status: 400},
		{name: "patch-400-missing", method: "PATCH", path: "/comments/" + ids[0], body: `{}`, status: 400},
		{name: "patch-400-postId", method: "PATCH", path: "/comments/" + ids[0], body: `{"text":"x","postId":"` + postID + `"}`, status: 400},
		{name: "patch-404", method: "PATCH", path: "/comments/672a2b5ab2c87aa17bd7b49b", body: `{"text":"x"}`, status: 404},
		{name: "delete-204", method: "DELETE", path: "/comments/" + ids[1], status: 204},
		{name: "delete-404", method: "DELETE", path: "/comments/" + ids[1], status: 404},
		{name: "delete-400-bad-id", method: "DELETE", path: "/comments/nope", status: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, srv, tt.method, tt.path, tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
		})
	}
	var cs []comment.Comment
	_ = json.Unmarshal(do(t, srv, "GET", "/comments/"+postID, "").body, &cs)
	var texts []string
	for _, c := range cs {
		texts = append(texts, c.Text)
	}
	if diff := cmp.Diff([]string{"edited", "c2", "c3", "c4"}, texts); diff != "" || cs[0].UpdatedAt == nil {
		t.Fatalf("after edit and delete (-want +got texts):\n%s\nfirst: %+v", diff, cs[0])
	}
}

// TestCreateIdempotencyKey: a client retrying POST /comments with the same
// Idempotency-Key after a lost response gets the first comment back and
// stores no second one; the key with another body is refused.
func TestCreateIdempotencyKey(t *testing.T) {
	srv, postID := newServer(t)
	body := fmt.Sprintf(`{"postId":%q,"text":"once"}`, postID)
	send := func(body string) response {
		req, _ := http.NewRequest("POST", srv.URL+"/comments", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", `"retry-1"`)
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return response{res.StatusCode, res.Header, b}
	}
	first, second := send(body), send(body)
	if first.status != 201 || second.status != 201 || string(first.body) != string(second.body) {
		t.Fatalf("first %d %s, retry %d %s: want the same 201", first.status, first.body, second.status, second.body)
	}
	if other := send(fmt.Sprintf(`{"postId":%q,"text":"another"}`, postID)); other.status != 422 {
		t.Fatalf("same key, other body: %d %s, want 422", other.status, other.body)
	}
	var cs []comment.Comment
	_ = json.Unmarshal(do(t, srv, "GET", "/comments/"+postID, "").body, &cs)
	if len(cs) != 1 {
		t.Fatalf("stored %d comments, want 1", len(cs))
	}
}
