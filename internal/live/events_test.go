package live_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"blog/internal/api"
	"blog/internal/comment"
	"blog/internal/comment/commentapi"
	"blog/internal/live"
	"blog/internal/post"
	"blog/internal/post/postapi"
	"blog/internal/store/sqlite"
)

// system is a posts service with live updates and a comments service over one
// real embedded store, with the comment sync running, as `blog serve` has.
type system struct {
	db       *sqlite.DB
	hub      *live.Hub
	posts    *httptest.Server
	comments *httptest.Server
	stopHub  context.CancelFunc
	hubDone  chan struct{}
}

type liveOptions struct {
	buffer       int
	keepalive    time.Duration
	writeTimeout time.Duration // the server's read and write timeouts, which streams must outlive
	embedLimit   int
	gate         *api.StreamGate // stream caps (nil: none)
}

func newLive(t testing.TB, o liveOptions) *system {
	t.Helper()
	db, err := sqlite.Open(t.Context(), t.TempDir(), sqlite.Options{EmbedLimit: o.embedLimit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	log := slog.New(slog.DiscardHandler)

	ctx, cancel := context.WithCancel(context.Background())
	sync := post.NewCommentSync(db.Posts(), db.CommentFeed(), log)
	syncDone := make(chan struct{})
	go func() { defer close(syncDone); _ = sync.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-syncDone })

	hub := live.NewHub(db.PostFeed(), db.Posts(), log)
	if o.buffer > 0 {
		hub.Buffer = o.buffer
	}
	hubCtx, stopHub := context.WithCancel(context.Background())
	hubDone := make(chan struct{})
	go func() { defer close(hubDone); _ = hub.Run(hubCtx) }()
	t.Cleanup(func() { stopHub(); <-hubDone })

	rt := api.NewRouter(log)
	(&postapi.Handler{Store: db.Posts(), Log: log}).Register(rt)
	(&live.Events{Hub: hub, Log: log, Keepalive: o.keepalive, Gate: o.gate}).Register(rt)
	ps := httptest.NewUnstartedServer(rt)
	ps.Config.WriteTimeout = o.writeTimeout
	ps.Config.ReadTimeout = o.writeTimeout
	ps.Start()
	t.Cleanup(ps.Close)

	crt := api.NewRouter(log)
	(&commentapi.Handler{Store: db.Comments(), Log: log}).Register(crt)
	cs := httptest.NewServer(crt)
	t.Cleanup(cs.Close)

	deadline := time.Now().Add(5 * time.Second)
	for !sync.Running() || hub.Ready(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("sync or hub not running after 5 s")
		}
		time.Sleep(5 * time.Millisecond) // start-up poll, bounded above
	}
	return &system{db: db, hub: hub, posts: ps, comments: cs, stopHub: stopHub, hubDone: hubDone}
}

func (l *system) createPost(t testing.TB, title string) post.Post {
	t.Helper()
	var p post.Post
	l.call(t, l.posts, "POST", "/posts", fmt.Sprintf(`{"title":%q,"content":"body"}`, title), 201, &p)
	return p
}

func (l *system) comment(t testing.TB, postID, text string) comment.Comment {
	t.Helper()
	var c comment.Comment
	body, _ := json.Marshal(map[string]string{"postId": postID, "text": text})
	l.call(t, l.comments, "POST", "/comments", string(body), 201, &c)
	return c
}

func (l *system) call(t testing.TB, srv *httptest.Server, method, path, body string, want int, out any) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, res.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatal(err)
		}
	}
}

// sse is a test client of one event stream.
type sse struct {
	res    *http.Response
	events chan event
}

type event struct {
	id, name, data string
}

func (e event) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(e.data), v); err != nil {
		t.Fatalf("event %s: %v: %s", e.name, err, e.data)
	}
}

// open connects to a post's stream and returns once the response headers
// have arrived, or the response itself when the status is not 200.
func open(t testing.TB, base, postID, lastID string) (*sse, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/posts/"+postID+"/events", nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		return nil, res
	}
	s := &sse{res: res, events: make(chan event, 64)}
	go func() {
		defer close(s.events)
		readEvents(res.Body, func(e event) { s.events <- e })
	}()
	t.Cleanup(func() { res.Body.Close() })
	return s, res
}

// readEvents parses an SSE body, calling fn for each event (not comments,
// not the retry-only preamble), until the body ends.
func readEvents(r io.Reader, fn func(event)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 2048), 1<<20)
	var e event
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if e.name != "" || e.data != "" {
				fn(e)
			}
			e = event{}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			e.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			e.name = line[7:]
		case strings.HasPrefix(line, "data: "):
			e.data = line[6:]
		}
	}
}

func (s *sse) next(t testing.TB) event {
	t.Helper()
	select {
	case e, ok := <-s.events:
		if !ok {
			t.Fatal("stream ended")
		}
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5 s")
	}
	return event{}
}

// quiet requires that no event arrives for d.
func (s *sse) quiet(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case e, ok := <-s.events:
		if ok {
			t.Fatalf("unexpected event %s %s", e.name, e.data)
		}
	case <-time.After(d):
	}
}

// ended requires the stream to end within 5 s.
func (s *sse) ended(t testing.TB) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-s.events:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("stream still open after 5 s")
		}
	}
}

type snapshot struct {
	ID           string         `json:"_id"`
	Title        string         `json:"title"`
	CommentCount int            `json:"commentCount"`
	Comments     []post.Comment `json:"comments"`
}

type delta struct {
	Title        string         `json:"title"`
	CommentCount int            `json:"commentCount"`
	Upserts      []post.Comment `json:"upserts"`
	Deletes      []string       `json:"deletes"`
}

func TestEventsLifecycle(t *testing.T) {
	l := newLive(t, liveOptions{})
	p := l.createPost(t, "live")
	first := l.comment(t, p.ID, "first")
	waitCount(t, l, p.ID, 1)

	s, _ := open(t, l.posts.URL, p.ID, "")
	if ct := s.res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("content type %q", ct)
	}
	e := s.next(t)
	var snap snapshot
	e.decode(t, &snap)
	if e.name != "snapshot" || e.id == "" || snap.ID != p.ID || snap.CommentCount != 1 || len(snap.Comments) != 1 || snap.Comments[0].ID != first.ID {
		t.Fatalf("first event %s id=%q %+v, want a snapshot with the first comment", e.name, e.id, snap)
	}

	// added
	c := l.comment(t, p.ID, "<img src=x onerror=alert(1)>")
	e = s.next(t)
	var d delta
	e.decode(t, &d)
	if e.name != "delta" || d.CommentCount != 2 || len(d.Upserts) != 1 || d.Upserts[0].ID != c.ID ||
		d.Upserts[0].Text != "<img src=x onerror=alert(1)>" || len(d.Deletes) != 0 {
		t.Fatalf("after a comment: %s %+v", e.name, d)
	}
	added := e.id

	// edited
	l.call(t, l.comments, "PATCH", "/comments/"+c.ID, `{"text":"edited"}`, 200, nil)
	e = s.next(t)
	d = delta{}
	e.decode(t, &d)
	if len(d.Upserts) != 1 || d.Upserts[0].Text != "edited" || d.Upserts[0].UpdatedAt == nil || e.id == added {
		t.Fatalf("after an edit: id %s %+v", e.id, d)
	}

	// deleted
	l.call(t, l.comments, "DELETE", "/comments/"+first.ID, "", 204, nil)
	e = s.next(t)
	d = delta{}
	e.decode(t, &d)
	if d.CommentCount != 1 || len(d.Upserts) != 0 || len(d.Deletes) != 1 || d.Deletes[0] != first.ID {
		t.Fatalf("after a delete: %+v", d)
	}
	current := e.id

	t.Run("resume-with-current-id-sends-no-snapshot", func(t *testing.T) {
		s2, _ := open(t, l.posts.URL, p.ID, current)
		s2.quiet(t, 300*time.Millisecond)
		c3 := l.comment(t, p.ID, "third")
		e := s2.next(t)
		var d delta
		e.decode(t, &d)
		if e.name != "delta" || len(d.Upserts) != 1 || d.Upserts[0].ID != c3.ID {
			t.Fatalf("got %s %s, want the delta of the new comment only", e.name, e.data)
		}
		// The first stream saw the same step with the same id.
		if e0 := s.next(t); e0.id != e.id || e0.data != e.data {
			t.Errorf("two subscribers got different frames: %q vs %q", e0.data, e.data)
		}
		current = e.id
	})

	t.Run("resume-with-old-id-gets-snapshot", func(t *testing.T) {
		s3, _ := open(t, l.posts.URL, p.ID, added)
		e := s3.next(t)
		var snap snapshot
		e.decode(t, &snap)
		if e.name != "snapshot" || e.id != current || snap.CommentCount != 2 {
			t.Fatalf("got %s id %s %+v, want the current snapshot", e.name, e.id, snap)
		}
	})

	t.Run("title-edit", func(t *testing.T) {
		l.call(t, l.posts, "PATCH", "/posts/"+p.ID, `{"title":"renamed"}`, 200, nil)
		e := s.next(t)
		var d delta
		e.decode(t, &d)
		if d.Title != "renamed" || len(d.Upserts)+len(d.Deletes) != 0 {
			t.Fatalf("after a title edit: %+v", d)
		}
	})

	t.Run("post-deleted-ends-stream", func(t *testing.T) {
		l.call(t, l.posts, "DELETE", "/posts/"+p.ID, "", 204, nil)
		e := s.next(t)
		if e.name != "gone" {
			t.Fatalf("got %s, want gone", e.name)
		}
		s.ended(t)
		if _, res := open(t, l.posts.URL, p.ID, ""); res.StatusCode != 404 {
			t.Errorf("reconnect to a deleted post: %d, want 404", res.StatusCode)
		}
	})
}

func TestEventsErrors(t *testing.T) {
	l := newLive(t, liveOptions{})
	tests := []struct {
		name, id string
		status   int
	}{
		{name: "unknown-post-404", id: "0123456789abcdef01234567", status: 404},
		{name: "bad-id-400", id: "nope", status: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, res := open(t, l.posts.URL, tt.id, "")
			defer res.Body.Close()
			if res.StatusCode != tt.status || res.Header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("%d %s, want %d problem", res.StatusCode, res.Header.Get("Content-Type"), tt.status)
			}
		})
	}
	if subs, _ := l.hub.Stats(); subs != 0 {
		t.Errorf("%d subscribers left after refused streams", subs)
	}
}

// TestEventsOutliveWriteTimeout: the server's WriteTimeout and ReadTimeout
// are lifted per stream, and keepalives flow.
func TestEventsOutliveWriteTimeout(t *testing.T) {
	l := newLive(t, liveOptions{writeTimeout: 300 * time.Millisecond, keepalive: 100 * time.Millisecond})
	p := l.createPost(t, "long")
	s, _ := open(t, l.posts.URL, p.ID, "")
	s.next(t) // snapshot
	time.Sleep(700 * time.Millisecond)
	c := l.comment(t, p.ID, "still here")
	var d delta
	s.next(t).decode(t, &d)
	if len(d.Upserts) != 1 || d.Upserts[0].ID != c.ID {
		t.Fatalf("after the write timeout: %+v", d)
	}
}

// TestEventsEndOnShutdown: when the hub stops, every stream ends, so the
// server's Shutdown need not wait for them.
func TestEventsEndOnShutdown(t *testing.T) {
	l := newLive(t, liveOptions{})
	p := l.createPost(t, "bye")
	s, _ := open(t, l.posts.URL, p.ID, "")
	s.next(t)
	l.stopHub()
	<-l.hubDone
	s.ended(t)
	_, res := open(t, l.posts.URL, p.ID, "")
	if res.StatusCode != 503 || res.Header.Get("Retry-After") == "" {
		t.Errorf("subscribe after stop: %d, want 503 with Retry-After", res.StatusCode)
	}
}

// TestSlowSubscriberDropped: a subscriber that does not read is dropped
// once its queue is full, while others keep receiving; memory stays bounded.
func TestSlowSubscriberDropped(t *testing.T) {
	l := newLive(t, liveOptions{buffer: 2})
	p := l.createPost(t, "busy")
	slow, err := l.hub.Subscribe(t.Context(), p.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fast, _ := open(t, l.posts.URL, p.ID, "")
	fast.next(t)
	for i := range 5 {
		c := l.comment(t, p.ID, fmt.Sprint("c", i))
		for {
			var d delta
			fast.next(t).decode(t, &d)
			if len(d.Upserts) > 0 && d.Upserts[len(d.Upserts)-1].ID == c.ID {
				break
			}
		}
	}
	n := 0
	for range slow.Frames() {
		n++
	}
	if n > 2 {
		t.Errorf("slow subscriber held %d frames, more than its buffer of 2", n)
	}
	if _, dropped := l.hub.Stats(); dropped != 1 {
		t.Errorf("dropped %d, want 1", dropped)
	}
}

// TestEventsWindow: with a bounded window of embedded comments, a comment
// that leaves the window is not reported deleted, a deleted one is, and an
// older comment that moves back into the window is sent.
func TestEventsWindow(t *testing.T) {
	l := newLive(t, liveOptions{embedLimit: 3})
	p := l.createPost(t, "window")
	var cs []comment.Comment
	for i := range 3 {
		cs = append(cs, l.comment(t, p.ID, fmt.Sprint("c", i)))
	}
	waitCount(t, l, p.ID, 3)
	s, _ := open(t, l.posts.URL, p.ID, "")
	var snap snapshot
	s.next(t).decode(t, &snap)
	if len(snap.Comments) != 3 || snap.CommentCount != 3 {
		t.Fatalf("snapshot %+v", snap)
	}

	c3 := l.comment(t, p.ID, "c3") // c0 leaves the window
	var d delta
	s.next(t).decode(t, &d)
	if d.CommentCount != 4 || len(d.Upserts) != 1 || d.Upserts[0].ID != c3.ID || len(d.Deletes) != 0 {
		t.Fatalf("after a fourth comment: %+v, want c3 added and no delete", d)
	}

	l.call(t, l.comments, "DELETE", "/comments/"+cs[1].ID, "", 204, nil) // c0 comes back
	d = delta{}
	s.next(t).decode(t, &d)
	if d.CommentCount != 3 || len(d.Deletes) != 1 || d.Deletes[0] != cs[1].ID || len(d.Upserts) != 1 || d.Upserts[0].ID != cs[0].ID {
		t.Fatalf("after deleting c1: %+v, want c1 deleted and c0 back", d)
	}
}

func waitCount(t testing.TB, l *system, id string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, err := l.db.Posts().Get(context.Background(), id)
		if err == nil && p.CommentCount == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("post %s has %d comments after 5 s, want %d (%v)", id, p.CommentCount, n, err)
		}
		time.Sleep(5 * time.Millisecond) // polling the sync, bounded above
	}
}

// TestFanout2000 holds 2,000 streams on one post and measures the time from
// a comment's 201 to the last stream receiving it. It reports the figure
// with -v (go test -run Fanout -v ./internal/post/).
func TestFanout2000(t *testing.T) {
	if testing.Short() {
		t.Skip("fan-out load test: skipped with -short")
	}
	const clients = 2000
	const text = "hello, everyone"
	l := newLive(t, liveOptions{})
	p := l.createPost(t, "popular")

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	addr := strings.TrimPrefix(l.posts.URL, "http://")

	var ms0 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)

	var (
		connected sync.WaitGroup
		received  sync.WaitGroup
		last      atomic.Int64 // unix nanos of the latest receipt
		failures  atomic.Int64
	)
	connected.Add(clients)
	received.Add(clients)
	for range clients {
		go func() {
			// A bare connection and one goroutine per client keep the test
			// light (and under the race detector's goroutine limit).
			res, err := rawStream(ctx, addr, p.ID)
			if err != nil {
				failures.Add(1)
				connected.Done()
				received.Done()
				return
			}
			defer res.Body.Close()
			first, got := true, false
			readEvents(res.Body, func(e event) {
				if first {
					first = false
					connected.Done()
					return
				}
				if !got && strings.Contains(e.data, text) {
					got = true
					now := time.Now().UnixNano()
					for {
						old := last.Load()
						if now <= old || last.CompareAndSwap(old, now) {
							break
						}
					}
					received.Done()
				}
			})
			if !got {
				received.Done()
			}
		}()
	}
	waitGroup(t, &connected, 60*time.Second, "clients to connect")
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d of %d clients failed to connect", n, clients)
	}
	if subs, _ := l.hub.Stats(); subs != clients {
		t.Fatalf("hub has %d subscribers, want %d", subs, clients)
	}
	var ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms1)

	body, _ := json.Marshal(map[string]string{"postId": p.ID, "text": text})
	res, err := http.Post(l.comments.URL+"/comments", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	created := time.Now()
	var c comment.Comment
	_ = json.NewDecoder(res.Body).Decode(&c)
	res.Body.Close()
	if res.StatusCode != 201 {
		t.Fatalf("comment: %d", res.StatusCode)
	}
	waitGroup(t, &received, 30*time.Second, "clients to receive the comment")
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d clients failed", n)
	}
	took := time.Duration(last.Load() - created.UnixNano())
	if _, dropped := l.hub.Stats(); dropped != 0 {
		t.Errorf("%d subscribers dropped", dropped)
	}
	perClient := (int64(ms1.HeapInuse) - int64(ms0.HeapInuse)) / clients
	t.Logf("fan-out: %d clients, comment 201 -> last client received: %v; heap in use %.1f MiB (%d B per client, test clients included), goroutines %d",
		clients, took.Round(time.Millisecond), float64(ms1.HeapInuse)/(1<<20), perClient, runtime.NumGoroutine())
	if took > 5*time.Second {
		t.Errorf("fan-out took %v, want well under 5 s", took)
	}
	// Server and client side of each stream together: bufio buffers, the
	// queue, the parser. 64 KiB a stream would mean a leak.
	if perClient > 64<<10 {
		t.Errorf("%d bytes of heap per client: memory is not bounded", perClient)
	}
}

// rawStream opens a stream over a plain connection, which closes when ctx
// ends.
func rawStream(ctx context.Context, addr, postID string) (*http.Response, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, func() { conn.Close() })
	req, _ := http.NewRequest("GET", "http://"+addr+"/posts/"+postID+"/events", nil)
	if err := req.Write(conn); err != nil {
		return nil, err
	}
	res, err := http.ReadResponse(bufio.NewReaderSize(conn, 2048), req)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != 200 {
		res.Body.Close()
		return nil, fmt.Errorf("status %d", res.StatusCode)
	}
	return res, nil
}

func waitGroup(t *testing.T, wg *sync.WaitGroup, d time.Duration, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}
