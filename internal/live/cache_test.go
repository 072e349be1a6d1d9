package live_test

import (
	"context"
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

	"blog/internal/api"
	"blog/internal/comment/commentapi"
	"blog/internal/live"
	"blog/internal/post"
	"blog/internal/post/postapi"
	"blog/internal/store/sqlite"
)

// process is one `blog serve`-like process over a shared data dir: its own
// *sqlite.DB, posts handler with a cache, the hub that invalidates it, and
// the comment sync.
type process struct {
	db       *sqlite.DB
	cache    *live.Cache
	posts    *httptest.Server
	comments *httptest.Server
}

func startProcess(t *testing.T, dir string, now func() time.Time) *process {
	t.Helper()
	db, err := sqlite.Open(t.Context(), dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	t.Cleanup(func() { cancel(); <-done; <-done })

	sync := post.NewCommentSync(db.Posts(), db.CommentFeed(), log)
	go func() { _ = sync.Run(ctx); done <- struct{}{} }()
	cache := live.NewCache(0)
	hub := live.NewHub(db.PostEvents(), db.Posts(), log)
	hub.Cache(cache)
	go func() { _ = hub.Run(ctx); done <- struct{}{} }()

	rt := api.NewRouter(log)
	(&postapi.Handler{Store: db.Posts(), Log: log, Cache: cache, Now: now}).Register(rt)
	ps := httptest.NewServer(rt)
	t.Cleanup(ps.Close)
	crt := api.NewRouter(log)
	(&commentapi.Handler{Store: db.Comments(), Log: log, Now: now}).Register(crt)
	cs := httptest.NewServer(crt)
	t.Cleanup(cs.Close)

	deadline := time.Now().Add(5 * time.Second)
	for !sync.Running() || hub.Ready(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("sync or hub not running after 5 s")
		}
		time.Sleep(5 * time.Millisecond) // start-up poll, bounded above
	}
	return &process{db: db, cache: cache, posts: ps, comments: cs}
}

// send sends a request and returns the status, ETag and body.
func send(t *testing.T, method, url, body string, header ...string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("ETag"), string(b)
}

// TestCacheAcrossProcesses: a post cached by one process is invalidated
// when another process (its own *sqlite.DB on the same file) edits the post
// or comments on it, and ETags answer If-None-Match with 304.
func TestCacheAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	a := startProcess(t, dir, nil)
	b := startProcess(t, dir, nil)

	code, _, body := send(t, "POST", a.posts.URL+"/posts", `{"title":"t1","content":"c"}`)
	if code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	var p post.Post
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatal(err)
	}
	url := a.posts.URL + "/posts/" + p.ID

	// The post's own insert event may reach the hub after the first read,
	// which then is not kept (it may predate a change); read until kept.
	var etag, first string
	for deadline := time.Now().Add(5 * time.Second); ; {
		code, etag, first = send(t, "GET", url, "")
		if code != 200 || etag == "" {
			t.Fatalf("get: %d etag %q", code, etag)
		}
		if a.cache.Len() == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cache holds %d posts after reads for 5 s, want 1", a.cache.Len())
		}
		time.Sleep(2 * time.Millisecond) // poll with a deadline
	}
	if code, etag2, again := send(t, "GET", url, ""); code != 200 || etag2 != etag || again != first {
		t.Fatalf("second get: %d etag %q (first %q), same body %v", code, etag2, etag, again == first)
	}
	if code, _, body := send(t, "GET", url, "", "If-None-Match", etag); code != 304 || body != "" {
		t.Fatalf("If-None-Match: %d %q, want 304 and no body", code, body)
	}
	if code, _, _ := send(t, "GET", url, "", "If-None-Match", `"other"`); code != 200 {
		t.Fatalf("If-None-Match other: %d, want 200", code)
	}

	// Changed by the other process: the first must serve the change.
	steps := []struct {
		name, method, path, body, want string
	}{
		{"edit-in-other-process", "PATCH", b.posts.URL + "/posts/" + p.ID, `{"title":"t2"}`, `"title":"t2"`},
		{"comment-in-other-process", "POST", b.comments.URL + "/comments", fmt.Sprintf(`{"postId":%q,"text":"hello"}`, p.ID), `"text":"hello"`},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if code, _, body := send(t, s.method, s.path, s.body); code/100 != 2 {
				t.Fatalf("%s: %d %s", s.name, code, body)
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				code, etag2, body := send(t, "GET", url, "", "If-None-Match", etag)
				if code == 200 && strings.Contains(body, s.want) {
					if etag2 == etag {
						t.Fatalf("new body under the old ETag %s", etag)
					}
					etag = etag2
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("after 5 s process a still serves %d %s", code, body)
				}
				time.Sleep(2 * time.Millisecond) // poll with a deadline
			}
		})
	}

	// An edit through the same process is seen by its next read at once.
	if code, _, _ := send(t, "PATCH", url, `{"title":"t3"}`); code != 200 {
		t.Fatalf("patch: %d", code)
	}
	if _, _, body := send(t, "GET", url, ""); !strings.Contains(body, `"title":"t3"`) {
		t.Fatalf("read after own edit: %s", body)
	}
}

// TestTimestampsSeedForm: every answer carries toISOString timestamps
// (three fraction digits, Z); a post and a comment created at a whole
// second encode .000Z, never ...:49Z.
func TestTimestampsSeedForm(t *testing.T) {
	at := time.Date(2024, 11, 5, 14, 3, 49, 0, time.UTC)
	p := startProcess(t, t.TempDir(), func() time.Time { return at })
	bare := regexp.MustCompile(`:\d\d(\.\d{1,2}|\.\d{4,})?Z"|[+-]\d\d:\d\d"`)
	check := func(name, body string) {
		t.Helper()
		if bare.MatchString(body) {
			t.Fatalf("%s: a timestamp not in toISOString form: %s", name, body)
		}
		if !strings.Contains(body, `"2024-11-05T14:03:49.000Z"`) {
			t.Fatalf("%s: no 2024-11-05T14:03:49.000Z in %s", name, body)
		}
	}
	_, _, body := send(t, "POST", p.posts.URL+"/posts", `{"title":"t","content":"c"}`)
	check("create-post", body)
	var created post.Post
	if err := json.Unmarshal([]byte(body), &created); err != nil {
		t.Fatal(err)
	}
	_, _, body = send(t, "POST", p.comments.URL+"/comments", fmt.Sprintf(`{"postId":%q,"text":"x"}`, created.ID))
	check("create-comment", body)
	_, _, body = send(t, "PATCH", p.posts.URL+"/posts/"+created.ID, `{"content":"d"}`)
	check("update-post", body)
	_, _, body = send(t, "GET", p.comments.URL+"/comments/"+created.ID, "")
	check("list-comments", body)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, _, body = send(t, "GET", p.posts.URL+"/posts", "")
		if strings.Contains(body, `"text":"x"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("comment not embedded after 5 s: %s", body)
		}
		time.Sleep(2 * time.Millisecond) // poll with a deadline
	}
	check("list-posts-embedded", body)
	_, _, body = send(t, "GET", p.posts.URL+"/posts/"+created.ID, "")
	check("get-post", body)
}
