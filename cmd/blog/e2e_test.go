package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The end-to-end tests build the real binary once and drive it over HTTP,
// as a user would: the seed's walkthrough, both ways of running, restarts.

// proc is one running blog process.
type proc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs the binary with args and env (added to a clean environment) in
// dir, and stops it (SIGKILL) when the test ends if it is still running.
func start(t *testing.T, dir string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	p := &proc{cmd: cmd, out: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("output of blog %v:\n%s", args, p.out)
		}
	})
	return p
}

// stop sends SIGTERM and requires a clean exit within 10 s.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	begin := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup's receive
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p.out)
		}
		t.Logf("graceful stop took %v", time.Since(begin).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10 s after SIGTERM\n%s", p.out)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitReady polls url's /readyz until it answers 200.
func waitReady(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		res, err := http.Get(base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond) // polling interval, bounded by the deadline
	}
	t.Fatalf("%s not ready within 20 s", base)
}

func call(t *testing.T, method, url, body string, wantStatus int, out any) http.Header {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != wantStatus {
		t.Fatalf("%s %s: status %d, want %d: %s", method, url, res.StatusCode, wantStatus, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, url, b, err)
		}
	}
	return res.Header
}

type embedded struct {
	ID        string `json:"_id"`
	Text      string `json:"text"`
	CreatedAt string `json:"createdAt"`
}

type postJSON struct {
	ID           string     `json:"_id"`
	Title        string     `json:"title"`
	Content      string     `json:"content"`
	Comments     []embedded `json:"comments"`
	CommentCount int        `json:"commentCount"`
	CreatedAt    string     `json:"createdAt"`
}

type commentJSON struct {
	ID        string `json:"_id"`
	PostID    string `json:"postId"`
	Text      string `json:"text"`
	CreatedAt string `json:"createdAt"`
}

var hex24 = regexp.MustCompile(`^[0-9a-f]{24}$`)

// walkthrough replays the seed's commands and returns the post's id and how
// long the comment took to appear inside its post.
func walkthrough(t *testing.T, posts, comments string) (string, time.Duration) {
	t.Helper()
	var p postJSON
	call(t, "POST", posts+"/posts", `{
  "title": "My First Post",
  "content": "This is the content of my first post."
}`, 201, &p)
	if !hex24.MatchString(p.ID) || p.Title != "My First Post" || p.Comments == nil || len(p.Comments) != 0 {
		t.Fatalf("created post %+v", p)
	}
	if _, err := time.Parse(time.RFC3339, p.CreatedAt); err != nil {
		t.Fatalf("createdAt %q is not RFC 3339", p.CreatedAt)
	}
	var list []postJSON
	call(t, "GET", posts+"/posts", "", 200, &list)
	if !containsPost(list, p.ID) {
		t.Fatalf("GET /posts does not list %s", p.ID)
	}
	var c commentJSON
	call(t, "POST", comments+"/comments", `{
  "postId": "`+p.ID+`",
  "text": "This is a comment on the post."
}`, 201, &c)
	created := time.Now()
	if !hex24.MatchString(c.ID) {
		t.Fatalf("created comment's _id %q is not 24 hex digits", c.ID)
	}
	want := commentJSON{ID: c.ID, PostID: p.ID, Text: "This is a comment on the post.", CreatedAt: c.CreatedAt}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Fatalf("created comment (-want +got):\n%s", diff)
	}
	var cs []commentJSON
	call(t, "GET", comments+"/comments/"+p.ID, "", 200, &cs)
	if diff := cmp.Diff([]commentJSON{c}, cs); diff != "" {
		t.Fatalf("GET /comments/%s (-want +got):\n%s", p.ID, diff)
	}
	deadline := created.Add(5 * time.Second)
	for {
		call(t, "GET", posts+"/posts", "", 200, &list)
		for _, q := range list {
			if q.ID == p.ID && len(q.Comments) == 1 && q.Comments[0].Text == c.Text && q.Comments[0].ID == c.ID {
				return p.ID, time.Since(created)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("comment did not appear in its post within 5 s: %+v", list)
		}
		time.Sleep(2 * time.Millisecond) // polling interval, bounded by the deadline
	}
}

func containsPost(list []postJSON, id string) bool {
	for _, p := range list {
		if p.ID == id {
			return true
		}
	}
	return false
}

// requireSurvived checks that post id still holds exactly its one comment.
func requireSurvived(t *testing.T, posts, comments, id string) {
	t.Helper()
	var p postJSON
	call(t, "GET", posts+"/posts/"+id, "", 200, &p)
	got := struct {
		Count int
		Texts []string
	}{p.CommentCount, nil}
	for _, c := range p.Comments {
		got.Texts = append(got.Texts, c.Text)
	}
	want := struct {
		Count int
		Texts []string
	}{1, []string{"This is a comment on the post."}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("after restart the post's comments (-want +got):\n%s", diff)
	}
	var cs []commentJSON
	call(t, "GET", comments+"/comments/"+id, "", 200, &cs)
	if len(cs) != 1 {
		t.Fatalf("after restart the post's comments are %+v", cs)
	}
}

// TestServeWalkthroughAndRestart runs `blog serve` on each store.
func TestServeWalkthroughAndRestart(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { serveWalkthroughAndRestart(t, b.env(t)) })
	}
}

func serveWalkthroughAndRestart(t *testing.T, extra []string) {
	dir := t.TempDir()
	pp, cp := freePort(t), freePort(t)
	env := []string{fmt.Sprintf("PORT=%d", pp), fmt.Sprintf("COMMENTS_PORT=%d", cp), fmt.Sprintf("WEB_PORT=%d", freePort(t)), "BLOG_DATA_DIR=" + filepath.Join(dir, "data")}
	env = append(env, extra...)
	posts, comments := fmt.Sprintf("http://127.0.0.1:%d", pp), fmt.Sprintf("http://127.0.0.1:%d", cp)

	p := start(t, dir, env) // no subcommand: serve, as `go run ./cmd/blog` does
	waitReady(t, posts)
	waitReady(t, comments)
	id, lag := walkthrough(t, posts, comments)
	t.Logf("walkthrough comment reached its post in %v", lag)
	p.stop(t)

	p = start(t, dir, env, "serve")
	waitReady(t, posts)
	requireSurvived(t, posts, comments, id)
	// A comment written after the restart syncs too: the consumer resumed.
	var c commentJSON
	call(t, "POST", comments+"/comments", `{"postId":"`+id+`","text":"second"}`, 201, &c)
	waitComments(t, posts, id, 2)
	p.stop(t)
}

// TestSeparateProcessesWalkthroughAndRestart runs `blog posts` and `blog
// comments` as separate processes on each store.
func TestSeparateProcessesWalkthroughAndRestart(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { separateProcessesWalkthroughAndRestart(t, b.env(t)) })
	}
}

func separateProcessesWalkthroughAndRestart(t *testing.T, extra []string) {
	dir := t.TempDir()
	pp, cp := freePort(t), freePort(t)
	env := []string{fmt.Sprintf("PORT=%d", pp), fmt.Sprintf("COMMENTS_PORT=%d", cp), "BLOG_DATA_DIR=" + filepath.Join(dir, "data")}
	env = append(env, extra...)
	posts, comments := fmt.Sprintf("http://127.0.0.1:%d", pp), fmt.Sprintf("http://127.0.0.1:%d", cp)

	cproc := start(t, dir, env, "comments")
	pproc := start(t, dir, env, "posts")
	waitReady(t, posts)
	waitReady(t, comments)
	id, lag := walkthrough(t, posts, comments)
	t.Logf("walkthrough comment reached its post across processes in %v", lag)

	// Comments written while the posts service is down are applied when it
	// comes back: nothing is lost.
	pproc.stop(t)
	var c commentJSON
	call(t, "POST", comments+"/comments", `{"postId":"`+id+`","text":"while posts was down"}`, 201, &c)
	cproc.stop(t)

	start(t, dir, env, "comments")
	start(t, dir, env, "posts")
	waitReady(t, posts)
	waitReady(t, comments)
	waitComments(t, posts, id, 2)
}

// waitComments polls until post id embeds n comments and counts n.
func waitComments(t *testing.T, posts, id string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var p postJSON
		call(t, "GET", posts+"/posts/"+id, "", 200, &p)
		if len(p.Comments) == n && p.CommentCount == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("post %s did not reach %d comments within 5 s: %+v", id, n, p)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, bounded by the deadline
	}
}

func TestSeedDotEnvAndBadInput(t *testing.T) {
	dir := t.TempDir()
	pp, cp := freePort(t), freePort(t)
	// The seed keeps its settings in .env; the binary reads it from its
	// working directory.
	dotenv := fmt.Sprintf("PORT=%d\nCOMMENTS_PORT=%d\nWEB_PORT=%d\nBLOG_DATA_DIR=%s\n", pp, cp, freePort(t), filepath.Join(dir, "data"))
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte(dotenv), 0o600); err != nil {
		t.Fatal(err)
	}
	posts, comments := fmt.Sprintf("http://127.0.0.1:%d", pp), fmt.Sprintf("http://127.0.0.1:%d", cp)
	start(t, dir, nil)
	waitReady(t, posts)
	waitReady(t, comments)
	// An orphan comment is refused, so the stream never carries one.
	call(t, "POST", comments+"/comments", `{"postId":"672a2b5ab2c87aa17bd7b49b","text":"hi"}`, 404, nil)
	call(t, "POST", posts+"/posts", `{"title":""}`, 400, nil)
	call(t, "GET", posts+"/nowhere", "", 404, nil)
}

func TestMongoUnreachableFailsClearly(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t) // nothing listens there
	p := start(t, dir, []string{fmt.Sprintf("MONGO_URI=mongodb://127.0.0.1:%d/test?replicaSet=rs0", port)})
	select {
	case err := <-p.done:
		p.done <- err
		if err == nil {
			t.Fatal("exited 0 without a MongoDB")
		}
		if out := p.out.String(); !strings.Contains(out, "MongoDB") {
			t.Fatalf("the message does not name MongoDB:\n%s", out)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("still running 20 s after start with an unreachable MongoDB")
	}
}
