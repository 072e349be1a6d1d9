package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"golang.org/x/net/html"

	"blog/internal/api"
	"blog/internal/comment"
	"blog/internal/comment/commentapi"
	"blog/internal/live"
	"blog/internal/post"
	"blog/internal/post/postapi"
	"blog/internal/store/sqlite"
	"blog/internal/web"
)

// stack is the whole system over real HTTP, as `blog serve` runs it: the
// posts service (with its comment sync and live updates) and the comments
// service over one embedded store, and the web service, which reaches them
// over HTTP only.
type stack struct {
	db       *sqlite.DB
	log      *slog.Logger
	posts    *postsService
	comments *httptest.Server
	web      *httptest.Server
	token    string
	opt      stackOptions
}

type stackOptions struct {
	token       string
	commentRate int
	web         func(*web.Config)  // adjusts the web service's config
	events      func(*live.Events) // adjusts the posts service's live updates
}

func newStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	db, err := sqlite.Open(t.Context(), t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	log := slog.New(slog.DiscardHandler)
	st := &stack{db: db, log: log, token: o.token, opt: o}

	ctx, cancel := context.WithCancel(context.Background())
	consumer := post.NewCommentSync(db.Posts(), db.CommentFeed(), log)
	done := make(chan struct{})
	go func() { defer close(done); _ = consumer.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st.posts = startPosts(t, st, ln)
	t.Cleanup(func() { st.posts.stop() })

	crt := api.NewRouter(log)
	(&commentapi.Handler{Store: db.Comments(), Log: log, Auth: api.RequireToken(o.token)}).Register(crt)
	crt.Health(map[string]api.Probe{"store": db.Comments().Ping})
	st.comments = httptest.NewServer(crt)
	t.Cleanup(st.comments.Close)

	wcfg := web.Config{
		PostsURL: "http://" + st.posts.addr, CommentsURL: st.comments.URL,
		Token: o.token, CommentRate: o.commentRate, Log: log,
	}
	if o.web != nil {
		o.web(&wcfg)
	}
	ws, err := web.New(wcfg)
	if err != nil {
		t.Fatal(err)
	}
	st.web = httptest.NewUnstartedServer(ws)
	st.web.Config.RegisterOnShutdown(ws.Close)
	st.web.Config.WriteTimeout = 2 * time.Second // streams must outlive it
	st.web.Start()
	t.Cleanup(func() { ws.Close(); st.web.Close() })

	deadline := time.Now().Add(5 * time.Second)
	for !consumer.Running() {
		if time.Now().After(deadline) {
			t.Fatal("comment sync not running after 5 s")
		}
		time.Sleep(5 * time.Millisecond) // start-up poll, bounded above
	}
	return st
}

// postsService is the posts API with live updates on a fixed address, so a
// test can stop it and start it again where the web service expects it.
type postsService struct {
	addr string
	srv  *http.Server
	stop func()
}

func startPosts(t *testing.T, st *stack, ln net.Listener) *postsService {
	t.Helper()
	hub := live.NewHub(st.db.PostFeed(), st.db.Posts(), st.log)
	ctx, cancel := context.WithCancel(context.Background())
	hubDone := make(chan struct{})
	go func() { defer close(hubDone); _ = hub.Run(ctx) }()
	rt := api.NewRouter(st.log)
	(&postapi.Handler{Store: st.db.Posts(), Log: st.log, Auth: api.RequireToken(st.token)}).Register(rt)
	ev := &live.Events{Hub: hub, Log: st.log}
	if st.opt.events != nil {
		st.opt.events(ev)
	}
	ev.Register(rt)
	rt.Health(map[string]api.Probe{"store": st.db.Posts().Ping, "live updates": hub.Ready})
	srv := &http.Server{Handler: rt, WriteTimeout: 2 * time.Second}
	srv.RegisterOnShutdown(cancel)
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ln) }()
	var once sync.Once
	return &postsService{addr: ln.Addr().String(), srv: srv, stop: func() {
		once.Do(func() {
			sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer scancel()
			if err := srv.Shutdown(sctx); err != nil {
				t.Errorf("posts service shutdown: %v", err)
			}
			<-served
			cancel()
			<-hubDone
		})
	}}
}

// createPost stores a post through the posts API.
func (st *stack) createPost(t *testing.T, title, content string) post.Post {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"title": title, "content": content})
	req, _ := http.NewRequest("POST", "http://"+st.posts.addr+"/posts", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	if st.token != "" {
		req.Header.Set("Authorization", "Bearer "+st.token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var p post.Post
	if res.StatusCode != 201 || json.NewDecoder(res.Body).Decode(&p) != nil {
		t.Fatalf("create post: %d", res.StatusCode)
	}
	return p
}

// addComments stores comments straight in the store, as the comments
// service would, for tests that need many.
func (st *stack) addComments(t *testing.T, postID string, n int) []comment.Comment {
	t.Helper()
	var out []comment.Comment
	at := time.Now().UTC().Truncate(time.Millisecond).Add(-time.Hour)
	for i := range n {
		c := comment.Comment{ID: bson.NewObjectID().Hex(), PostID: postID, Text: fmt.Sprintf("comment %d", i), CreatedAt: at.Add(time.Duration(i) * time.Millisecond)}
		if err := st.db.Comments().Create(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// client is a browser-like client: cookies, no automatic redirects, and
// the headers a browser sends with a same-origin form.
type client struct {
	t    *testing.T
	base string
	http *http.Client
}

func (st *stack) client(t *testing.T) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, base: st.web.URL, http: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type page struct {
	status int
	header http.Header
	body   string
}

func (c *client) get(path string) page {
	c.t.Helper()
	return c.do("GET", path, nil, nil)
}

// post sends a form as a same-origin browser would. A comment form (one
// with text) without a token gets a fresh one from its page first, as a
// browser's form has one.
func (c *client) post(path string, form url.Values) page {
	c.t.Helper()
	if form.Has("text") && !form.Has("token") {
		form.Set("token", c.formToken(path))
	}
	return c.do("POST", path, form, http.Header{"Sec-Fetch-Site": {"same-origin"}, "Origin": {c.base}})
}

var tokenInput = regexp.MustCompile(`name="token" value="([0-9a-f]{32})"`)

// formToken reads a comment form's one-time token from the page at path
// ("" when the page has none).
func (c *client) formToken(path string) string {
	c.t.Helper()
	m := tokenInput.FindStringSubmatch(c.get(path).body)
	if m == nil {
		return ""
	}
	return m[1]
}

func (c *client) do(method, path string, form url.Values, h http.Header) page {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range h {
		req.Header[k] = v
	}
	res, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return page{res.StatusCode, res.Header, string(b)}
}

// follow GETs a redirect's target.
func (c *client) follow(p page) page {
	c.t.Helper()
	if p.status != http.StatusSeeOther {
		c.t.Fatalf("status %d, want 303: %s", p.status, p.body)
	}
	return c.get(p.header.Get("Location"))
}

func TestHome(t *testing.T) {
	st := newStack(t, stackOptions{})
	c := st.client(t)
	if p := c.get("/"); p.status != 200 || !strings.Contains(p.body, "No posts yet.") {
		t.Fatalf("empty blog: %d %s", p.status, p.body)
	}
	for i := range 12 {
		st.createPost(t, fmt.Sprintf("Post number %02d", i), "Some text for the excerpt.")
	}
	first := c.get("/")
	checkPage(t, first)
	for i := 2; i < 12; i++ {
		if !strings.Contains(first.body, fmt.Sprintf("Post number %02d", i)) {
			t.Errorf("first page lacks post %d", i)
		}
	}
	next := regexp.MustCompile(`<a rel="next" href="(/\?after=[^"]+)">Older posts`).FindStringSubmatch(first.body)
	if next == nil {
		t.Fatalf("no link to older posts:\n%s", first.body)
	}
	second := c.get(html.UnescapeString(next[1]))
	checkPage(t, second)
	if !strings.Contains(second.body, "Post number 00") || !strings.Contains(second.body, "Post number 01") ||
		strings.Contains(second.body, "Post number 02") || strings.Contains(second.body, `rel="next"`) {
		t.Errorf("second page should hold exactly the two oldest posts:\n%s", second.body)
	}
	if p := c.get("/?after=garbage"); p.status != 400 {
		t.Errorf("bad cursor: %d, want 400", p.status)
	}
}

func TestPostPage(t *testing.T) {
	st := newStack(t, stackOptions{})
	p := st.createPost(t, `Title <b>bold</b>`, "First paragraph.\n\nSecond <script>alert(1)</script> paragraph.")
	c := st.client(t)
	cm := c.post("/posts/"+p.ID, url.Values{"text": {`<img src=x onerror=alert(1)>`}})
	page := c.follow(cm)
	checkPage(t, page)
	for _, want := range []string{
		`Title &lt;b&gt;bold&lt;/b&gt;`,
		`<p>First paragraph.</p>`,
		`Second alert(1) paragraph.`,
		`&lt;img src=x onerror=alert(1)&gt;`,
		`<form method="post" action="/posts/` + p.ID + `"`,
		`<textarea id="comment-text" name="text"`,
		`data-events="/posts/` + p.ID + `/events"`,
	} {
		if !strings.Contains(page.body, want) {
			t.Errorf("post page lacks %s", want)
		}
	}
	if strings.Contains(page.body, "<img src=x") || strings.Contains(page.body, "<b>bold") {
		t.Error("user text reached the page unescaped")
	}

	tests := []struct {
		name, path string
		status     int
	}{
		{name: "unknown-post-404", path: "/posts/0123456789abcdef01234567", status: 404},
		{name: "bad-id-404", path: "/posts/nope", status: 404},
		{name: "bad-cursor-400", path: "/posts/" + p.ID + "?after=zzz", status: 400},
		{name: "unknown-path-404", path: "/nope/nope", status: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := c.get(tt.path)
			if got.status != tt.status || !strings.HasPrefix(got.header.Get("Content-Type"), "text/html") {
				t.Fatalf("%d %s, want %d html", got.status, got.header.Get("Content-Type"), tt.status)
			}
			checkPage(t, got)
		})
	}
}

func TestAddComment(t *testing.T) {
	st := newStack(t, stackOptions{})
	p := st.createPost(t, "Comments welcome", "text")
	c := st.client(t)
	tests := []struct {
		name    string
		path    string
		text    string
		header  http.Header
		status  int
		message string // in the page
	}{
		{name: "ok-303", text: "Nice post!", status: 303},
		{name: "multiline-303", text: "line one\nline two", status: 303},
		{name: "blank-422", text: "   ", status: 422, message: "Your comment is required and must not be blank."},
		{name: "too-long-422", text: strings.Repeat("x", comment.MaxTextChars+1), status: 422, message: "Your comment must be at most 10000 characters."},
		{name: "cjk-at-limit-303", text: strings.Repeat("字", comment.MaxTextChars), status: 303},
		{name: "emoji-at-limit-303", text: strings.Repeat("😀", comment.MaxTextChars), status: 303},
		{name: "control-chars-422", text: "a\x00b", status: 422, message: "Your comment must not contain control characters."},
		{name: "unknown-post-404", path: "/posts/0123456789abcdef01234567", text: "hi", status: 404},
		{name: "cross-site-403", text: "forged", header: http.Header{"Sec-Fetch-Site": {"cross-site"}}, status: 403},
		{name: "foreign-origin-403", text: "forged", header: http.Header{"Origin": {"https://evil.example"}}, status: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			if path == "" {
				path = "/posts/" + p.ID
			}
			var res page
			if tt.header != nil {
				form := url.Values{"text": {tt.text}}
				h := tt.header.Clone()
				res = c.do("POST", path, form, h)
			} else {
				res = c.post(path, url.Values{"text": {tt.text}})
			}
			if res.status != tt.status {
				t.Fatalf("status %d, want %d: %.400s", res.status, tt.status, res.body)
			}
			if tt.status == 303 {
				loc := res.header.Get("Location")
				if !strings.HasPrefix(loc, "/posts/"+p.ID) || !strings.Contains(loc, "#c-") {
					t.Fatalf("redirect to %q, want the post page at the comment", loc)
				}
				got := c.get(loc)
				if !strings.Contains(got.body, html.EscapeString(tt.text)) {
					t.Errorf("the comment is not on the page it redirects to")
				}
				return
			}
			checkPage(t, res)
			if tt.message != "" {
				if !strings.Contains(res.body, html.EscapeString(tt.message)) {
					t.Errorf("page lacks %q:\n%.2000s", tt.message, res.body)
				}
				if !strings.Contains(res.body, `aria-invalid="true"`) {
					t.Error("the textarea is not marked invalid")
				}
				if tt.name == "blank-422" && !strings.Contains(res.body, ">"+tt.text+"</textarea>") {
					t.Error("the form lost what was typed")
				}
			}
		})
	}
	// Nothing forged or invalid was stored.
	var cs []comment.Comment
	getJSON(t, st.comments.URL+"/comments/"+p.ID, &cs)
	if len(cs) != 4 {
		t.Errorf("%d comments stored, want the 4 valid ones", len(cs))
	}
}

func TestCommentRateLimit(t *testing.T) {
	st := newStack(t, stackOptions{commentRate: 10}) // a burst of 1
	p := st.createPost(t, "Busy", "text")
	c := st.client(t)
	if res := c.post("/posts/"+p.ID, url.Values{"text": {"one"}}); res.status != 303 {
		t.Fatalf("first comment: %d", res.status)
	}
	res := c.post("/posts/"+p.ID, url.Values{"text": {"two"}})
	if res.status != 429 || !strings.Contains(res.body, "very quickly") || !strings.Contains(res.body, ">two</textarea>") {
		t.Fatalf("second comment at once: %d, want 429 with the form kept: %.1000s", res.status, res.body)
	}
}

// TestCommentPages: a busy post opens on its latest comments; the redirect
// after commenting lands on the new comment, anchored; older and newer
// pages link both ways and tell the live script their range.
func TestCommentPages(t *testing.T) {
	st := newStack(t, stackOptions{})
	p := st.createPost(t, "Popular", "text")
	st.addComments(t, p.ID, 120)
	c := st.client(t)

	latest := c.get("/posts/" + p.ID)
	checkPage(t, latest)
	if n := len(commentItem.FindAllString(latest.body, -1)); n != 50 {
		t.Fatalf("latest page shows %d comments, want 50", n)
	}
	var all []comment.Comment
	for next := "/comments/" + p.ID + "?limit=100"; next != ""; {
		var page []comment.Comment
		h := getJSONHeader(t, st.comments.URL+next, &page)
		all = append(all, page...)
		next = ""
		if m := regexp.MustCompile(`<([^>]+)>; rel="next"`).FindStringSubmatch(h.Get("Link")); m != nil {
			next = m[1]
		}
	}
	if !strings.Contains(latest.body, `id="c-`+all[119].ID+`"`) || !strings.Contains(latest.body, `id="c-`+all[70].ID+`"`) || strings.Contains(latest.body, `id="c-`+all[69].ID+`"`) {
		t.Fatal("the latest page does not show the latest 50 comments")
	}
	if strings.Contains(latest.body, `rel="next"`) || strings.Contains(latest.body, `data-end-ms=`) {
		t.Fatal("the latest page links to newer comments or ends")
	}

	// Older, and back: each page 50, the oldest ends at #1.
	older := regexp.MustCompile(`<a rel="prev" href="([^"]+)">← Older comments`)
	newer := regexp.MustCompile(`<a rel="next" href="([^"]+)">Newer comments`)
	m := older.FindStringSubmatch(latest.body)
	if m == nil {
		t.Fatal("no link to older comments")
	}
	middle := c.get(html.UnescapeString(m[1]))
	if n := len(commentItem.FindAllString(middle.body, -1)); n != 50 || !strings.Contains(middle.body, `id="c-`+all[20].ID+`"`) || !strings.Contains(middle.body, `id="c-`+all[69].ID+`"`) {
		t.Fatalf("the older page shows %d comments, want #21-#70", n)
	}
	if !strings.Contains(middle.body, `data-start-ms=`) || !strings.Contains(middle.body, `data-end-ms=`) {
		t.Error("a middle page does not tell the script its range")
	}
	m = older.FindStringSubmatch(middle.body)
	if m == nil {
		t.Fatal("no link to the oldest comments")
	}
	oldest := c.get(html.UnescapeString(m[1]))
	if n := len(commentItem.FindAllString(oldest.body, -1)); n != 20 || older.MatchString(oldest.body) {
		t.Fatalf("the oldest page shows %d comments (want #1-#20) or links further back", n)
	}
	m = newer.FindStringSubmatch(oldest.body)
	if m == nil {
		t.Fatal("no link from the oldest page to newer comments")
	}
	if back := c.get(html.UnescapeString(m[1])); !strings.Contains(back.body, `id="c-`+all[20].ID+`"`) {
		t.Fatal("newer from the oldest page does not start at #21")
	}

	// A new comment lands on the latest page, anchored on it.
	res := c.post("/posts/"+p.ID, url.Values{"text": {"number 121"}})
	loc := res.header.Get("Location")
	if res.status != 303 || !regexp.MustCompile(`^/posts/[0-9a-f]{24}#c-[0-9a-f]{24}$`).MatchString(loc) {
		t.Fatalf("redirect %d to %q, want the latest page anchored on the comment", res.status, loc)
	}
	id := loc[strings.Index(loc, "#c-")+3:]
	if page := c.get(loc); !strings.Contains(page.body, `id="c-`+id+`"`) {
		t.Fatal("the redirect's page does not show the new comment")
	}
}

// commentItem matches a shown comment (not the script's empty template).
var commentItem = regexp.MustCompile(`<li class="comment" id="c-[0-9a-f]{24}"`)

func TestSecurityHeaders(t *testing.T) {
	st := newStack(t, stackOptions{})
	p := st.createPost(t, "Headers", "text")
	c := st.client(t)
	for _, path := range []string{"/", "/posts/" + p.ID, "/nope"} {
		res := c.get(path)
		csp := res.header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") ||
			!strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		if res.header.Get("X-Content-Type-Options") != "nosniff" || res.header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: headers %v", path, res.header)
		}
	}
}

func TestStatic(t *testing.T) {
	st := newStack(t, stackOptions{})
	c := st.client(t)
	home := c.get("/")
	m := regexp.MustCompile(`href="(/static/style\.css\?v=[0-9a-f]+)"`).FindStringSubmatch(home.body)
	if m == nil {
		t.Fatal("no versioned stylesheet link")
	}
	tests := []struct {
		name, path, contentType, cache string
		status                         int
	}{
		{name: "css-versioned", path: m[1], contentType: "text/css; charset=utf-8", cache: "public, max-age=31536000, immutable", status: 200},
		{name: "css-unversioned", path: "/static/style.css", contentType: "text/css; charset=utf-8", cache: "no-cache", status: 200},
		{name: "js", path: "/static/live.js", contentType: "text/javascript; charset=utf-8", cache: "no-cache", status: 200},
		{name: "unknown-404", path: "/static/nope.js", status: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := c.get(tt.path)
			if res.status != tt.status {
				t.Fatalf("status %d, want %d", res.status, tt.status)
			}
			if tt.status != 200 {
				return
			}
			if ct := res.header.Get("Content-Type"); ct != tt.contentType {
				t.Errorf("content type %q, want %q", ct, tt.contentType)
			}
			if cc := res.header.Get("Cache-Control"); cc != tt.cache {
				t.Errorf("cache control %q, want %q", cc, tt.cache)
			}
		})
	}
}

func TestAuthors(t *testing.T) {
	const token = "s3cret-token-for-tests"
	st := newStack(t, stackOptions{token: token})
	c := st.client(t)
	seen := []page{}
	keep := func(p page) page { seen = append(seen, p); return p }

	// Signed out: the author pages ask to sign in.
	res := keep(c.get("/posts/new"))
	if res.status != 303 || res.header.Get("Location") != "/login?next=%2Fposts%2Fnew" {
		t.Fatalf("new post, signed out: %d to %q", res.status, res.header.Get("Location"))
	}
	if res := keep(c.post("/posts", url.Values{"title": {"x"}, "content": {"y"}})); res.status != 403 {
		t.Fatalf("create post, signed out: %d, want 403", res.status)
	}
	login := keep(c.get("/login?next=%2Fposts%2Fnew"))
	checkPage(t, login)
	if res := keep(c.post("/login", url.Values{"token": {"wrong"}, "next": {"/posts/new"}})); res.status != 401 || !strings.Contains(res.body, "not the blog") {
		t.Fatalf("wrong token: %d", res.status)
	}
	res = keep(c.post("/login", url.Values{"token": {token}, "next": {"/posts/new"}}))
	if res.status != 303 || res.header.Get("Location") != "/posts/new" {
		t.Fatalf("sign in: %d to %q", res.status, res.header.Get("Location"))
	}
	for _, ck := range res.header.Values("Set-Cookie") {
		if strings.Contains(ck, token) || !strings.Contains(ck, "HttpOnly") || !strings.Contains(ck, "SameSite=Lax") {
			t.Errorf("cookie %q", ck)
		}
	}

	// Signed in: write, fail validation, publish, edit.
	editor := keep(c.get("/posts/new"))
	checkPage(t, editor)
	bad := keep(c.post("/posts", url.Values{"title": {" "}, "content": {"Body"}}))
	if bad.status != 422 || !strings.Contains(bad.body, "The title is required and must not be blank.") || !strings.Contains(bad.body, ">Body</textarea>") {
		t.Fatalf("blank title: %d %.2000s", bad.status, bad.body)
	}
	checkPage(t, bad)
	res = keep(c.post("/posts", url.Values{"title": {"Fresh <post>"}, "content": {"Hello.\n\nWorld."}}))
	view := keep(c.follow(res))
	if !strings.Contains(view.body, "Fresh &lt;post&gt;") || !strings.Contains(view.body, "Edit post") {
		t.Fatalf("new post page: %.2000s", view.body)
	}
	id := strings.TrimPrefix(res.header.Get("Location"), "/posts/")
	edit := keep(c.get("/posts/" + id + "/edit"))
	checkPage(t, edit)
	if !strings.Contains(edit.body, `value="Fresh &lt;post&gt;"`) {
		t.Errorf("edit form not filled in")
	}
	res = keep(c.post("/posts/"+id+"/edit", url.Values{"title": {"Renamed"}, "content": {"New text."}}))
	if view := keep(c.follow(res)); !strings.Contains(view.body, "Renamed") || !strings.Contains(view.body, "New text.") || !strings.Contains(view.body, "· edited") {
		t.Fatalf("after edit: %.2000s", view.body)
	}

	// Moderate a comment, then delete the post.
	cres := keep(c.post("/posts/"+id, url.Values{"text": {"to be removed"}}))
	if cres.status != 303 {
		t.Fatalf("comment: %d", cres.status)
	}
	cid := cres.header.Get("Location")[strings.Index(cres.header.Get("Location"), "#c-")+3:]
	withDelete := keep(c.get("/posts/" + id))
	if !strings.Contains(withDelete.body, "/comments/"+cid+"/delete") {
		t.Fatal("authors see no delete button on comments")
	}
	if res := keep(c.post("/posts/"+id+"/comments/"+cid+"/delete", url.Values{})); res.status != 303 {
		t.Fatalf("delete comment: %d", res.status)
	}
	if after := keep(c.get("/posts/" + id)); strings.Contains(after.body, "to be removed") {
		t.Error("deleted comment still shown")
	}
	if res := keep(c.post("/posts/"+id+"/delete", url.Values{})); res.status != 303 || res.header.Get("Location") != "/" {
		t.Fatalf("delete post: %d", res.status)
	}
	if res := keep(c.get("/posts/" + id)); res.status != 404 {
		t.Errorf("deleted post: %d, want 404", res.status)
	}

	// Signing out ends it; the token never reached any page.
	keep(c.post("/logout", url.Values{}))
	if res := keep(c.get("/posts/new")); res.status != 303 {
		t.Errorf("after sign out: %d, want a redirect to sign in", res.status)
	}
	for _, p := range seen {
		if strings.Contains(p.body, token) || strings.Contains(fmt.Sprint(p.header), token) {
			t.Fatalf("the token leaked into a page: %.500s", p.body)
		}
	}
}

// TestWritingWithoutToken: with no token configured (the APIs are open,
// on loopback), the browser writes posts directly: no sign-in, and the
// editor, edit and delete work for anyone who reaches the site.
func TestWritingWithoutToken(t *testing.T) {
	st := newStack(t, stackOptions{})
	c := st.client(t)
	if res := c.get("/login"); res.status != 404 {
		t.Errorf("/login: %d, want 404 when no token is configured", res.status)
	}
	home := c.get("/")
	if strings.Contains(home.body, "Sign in") || !strings.Contains(home.body, `href="/posts/new"`) {
		t.Error("home should offer writing and no sign-in without a token")
	}
	if res := c.get("/posts/new"); res.status != 200 || !strings.Contains(res.body, `name="title"`) {
		t.Fatalf("/posts/new: %d", res.status)
	}
	res := c.post("/posts", url.Values{"title": {"Open blog"}, "content": {"Written without a token."}})
	if res.status != 303 || !strings.HasPrefix(res.header.Get("Location"), "/posts/") {
		t.Fatalf("create: %d %s", res.status, res.body)
	}
	path := res.header.Get("Location")
	if res := c.post(path+"/edit", url.Values{"title": {"Open blog, edited"}, "content": {"Still open."}}); res.status != 303 {
		t.Fatalf("edit: %d", res.status)
	}
	if page := c.get(path); !strings.Contains(page.body, "Open blog, edited") || !strings.Contains(page.body, path+"/edit") {
		t.Fatalf("edited post page lacks the new title or its edit link")
	}
	if res := c.post(path+"/delete", url.Values{}); res.status != 303 {
		t.Fatalf("delete: %d", res.status)
	}
	if res := c.get(path); res.status != 404 {
		t.Fatalf("deleted post: %d", res.status)
	}
}

func TestReady(t *testing.T) {
	st := newStack(t, stackOptions{})
	c := st.client(t)
	// The APIs become ready once their change consumers run: poll.
	for deadline := time.Now().Add(10 * time.Second); ; {
		res := c.get("/readyz")
		if res.status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz: %d %s", res.status, res.body)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, bounded by the deadline
	}
	st.posts.stop()
	if res := c.get("/readyz"); res.status != 503 || !strings.Contains(res.body, "posts service") {
		t.Errorf("readyz without the posts service: %d %s", res.status, res.body)
	}
	if res := c.get("/"); res.status != 503 || !strings.Contains(res.body, "not answering") {
		t.Errorf("home without the posts service: %d", res.status)
	}
}

// Live updates through the web service's relay.

type event struct{ id, name, data string }

type stream struct {
	events chan event
	cancel context.CancelFunc
}

// openStream opens the web service's relay of a post's events.
func openStream(t *testing.T, base, path, lastID string) (*stream, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", base+path, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		res.Body.Close()
		return nil, res
	}
	s := &stream{events: make(chan event, 64), cancel: cancel}
	go func() {
		defer close(s.events)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 0, 4096), 1<<20)
		var e event
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if e.name != "" {
					s.events <- e
				}
				e = event{}
			case strings.HasPrefix(line, "id: "):
				e.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				e.name = line[7:]
			case strings.HasPrefix(line, "data: "):
				e.data = line[6:]
			}
		}
	}()
	return s, res
}

func (s *stream) next(t *testing.T, within time.Duration) event {
	t.Helper()
	select {
	case e, ok := <-s.events:
		if !ok {
			t.Fatal("stream ended")
		}
		return e
	case <-time.After(within):
		t.Fatalf("no event within %v", within)
	}
	return event{}
}

// waitFor reads events until one's data contains text.
func (s *stream) waitFor(t *testing.T, text string, within time.Duration) event {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		e := s.next(t, time.Until(deadline))
		if strings.Contains(e.data, text) {
			return e
		}
	}
}

func TestRelay(t *testing.T) {
	st := newStack(t, stackOptions{})
	p := st.createPost(t, "Live", "text")
	c := st.client(t)

	s, res := openStream(t, st.web.URL, "/posts/"+p.ID+"/events", "")
	if res.Header.Get("Content-Type") != "text/event-stream" || res.Header.Get("Content-Security-Policy") == "" {
		t.Errorf("headers %v", res.Header)
	}
	if e := s.next(t, 5*time.Second); e.name != "snapshot" || e.id == "" {
		t.Fatalf("first event %+v, want a snapshot", e)
	}

	// A comment posted through the page's form reaches the stream; the
	// server's WriteTimeout (2 s here) does not cut it.
	time.Sleep(2500 * time.Millisecond)
	start := time.Now()
	if res := c.post("/posts/"+p.ID, url.Values{"text": {"hello <b>live</b>"}}); res.status != 303 {
		t.Fatalf("comment: %d", res.status)
	}
	e := s.waitFor(t, `hello \u003cb\u003elive\u003c/b\u003e`, 2*time.Second)
	if e.name != "delta" {
		t.Fatalf("got %s, want a delta", e.name)
	}
	t.Logf("comment form -> relayed event: %v", time.Since(start).Round(time.Millisecond))
	current := e.id

	t.Run("last-event-id-header-forwarded", func(t *testing.T) {
		s2, _ := openStream(t, st.web.URL, "/posts/"+p.ID+"/events", current)
		select {
		case e := <-s2.events:
			t.Fatalf("got %s %s; the client already has the current state", e.name, e.data)
		case <-time.After(300 * time.Millisecond):
		}
	})
	t.Run("last-event-id-query-forwarded", func(t *testing.T) {
		s3, _ := openStream(t, st.web.URL, "/posts/"+p.ID+"/events?lastEventId="+current, "")
		select {
		case e := <-s3.events:
			t.Fatalf("got %s; the client already has the current state", e.name)
		case <-time.After(300 * time.Millisecond):
		}
	})

	t.Run("survives-posts-restart", func(t *testing.T) {
		// Changes made while the posts service is down come through, once,
		// when it is back, on the same browser connection.
		// The reader's page was open (with its form token) before.
		token := c.formToken("/posts/" + p.ID)
		st.restartPostsWith(t, func() {
			if res := c.post("/posts/"+p.ID, url.Values{"text": {"while down"}, "token": {token}}); res.status != 303 {
				t.Fatalf("comment while posts is down: %d", res.status)
			}
		})
		e := s.waitFor(t, "while down", 10*time.Second)
		if e.name != "snapshot" {
			t.Errorf("after a restart got %s, want a snapshot (the new process has no deltas to offer)", e.name)
		}
		var snap struct {
			Comments []post.Comment `json:"comments"`
		}
		_ = json.Unmarshal([]byte(e.data), &snap)
		if len(snap.Comments) != 2 {
			t.Errorf("snapshot has %d comments, want 2", len(snap.Comments))
		}
		if res := c.post("/posts/"+p.ID, url.Values{"text": {"after restart"}}); res.status != 303 {
			t.Fatalf("comment: %d", res.status)
		}
		if e := s.waitFor(t, "after restart", 2*time.Second); e.name != "delta" {
			t.Errorf("got %s, want a delta", e.name)
		}
	})

	t.Run("garbage-last-event-id-gets-snapshot", func(t *testing.T) {
		s4, _ := openStream(t, st.web.URL, "/posts/"+p.ID+"/events?lastEventId="+url.QueryEscape("x\r\nEvil: 1"), "")
		if e := s4.next(t, 5*time.Second); e.name != "snapshot" {
			t.Fatalf("got %s, want a snapshot", e.name)
		}
	})

	t.Run("unknown-post-404", func(t *testing.T) {
		if _, res := openStream(t, st.web.URL, "/posts/0123456789abcdef01234567/events", ""); res.StatusCode != 404 {
			t.Errorf("status %d, want 404", res.StatusCode)
		}
	})

	t.Run("post-deleted-gone", func(t *testing.T) {
		req, _ := http.NewRequest("DELETE", "http://"+st.posts.addr+"/posts/"+p.ID, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != 204 {
			t.Fatalf("delete: %v %v", err, res)
		}
		res.Body.Close()
		if e := s.waitFor(t, p.ID, 5*time.Second); e.name != "gone" {
			t.Errorf("got %s, want gone", e.name)
		}
		select {
		case _, ok := <-s.events:
			if ok {
				t.Error("stream goes on after gone")
			}
		case <-time.After(2 * time.Second):
			t.Error("stream still open after gone")
		}
	})
}

// restartPostsWith stops the posts service, runs during, and starts it
// again.
func (st *stack) restartPostsWith(t *testing.T, during func()) {
	t.Helper()
	st.posts.stop()
	during()
	ln, err := net.Listen("tcp", st.posts.addr)
	if err != nil {
		t.Fatal(err)
	}
	st.posts = startPosts(t, st, ln)
}

// TestRelayEndsOnShutdown: the web server's Shutdown ends relayed streams
// at once instead of waiting for them.
func TestRelayEndsOnShutdown(t *testing.T) {
	st := newStack(t, stackOptions{})
	p := st.createPost(t, "Bye", "text")
	s, _ := openStream(t, st.web.URL, "/posts/"+p.ID+"/events", "")
	s.next(t, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	begin := time.Now()
	if err := st.web.Config.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	select {
	case <-s.events:
	case <-time.After(2 * time.Second):
		t.Error("stream still open after shutdown")
	}
}

// checkPage holds a rendered page to the rules every page keeps: valid
// structure with landmarks and one h1, no inline script or event handler,
// every form control labelled, every form posting to this site.
func checkPage(t *testing.T, p page) {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(p.body))
	if err != nil {
		t.Fatalf("page does not parse: %v", err)
	}
	counts := map[string]int{}
	labels := map[string]bool{}
	var controls []string
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			counts[n.Data]++
			attrs := map[string]string{}
			for _, a := range n.Attr {
				attrs[a.Key] = a.Val
				if strings.HasPrefix(a.Key, "on") {
					t.Errorf("inline event handler %s=%q", a.Key, a.Val)
				}
				if (a.Key == "href" || a.Key == "src" || a.Key == "action") && strings.HasPrefix(strings.ToLower(strings.TrimSpace(a.Val)), "javascript:") {
					t.Errorf("javascript: URL in %s", a.Key)
				}
			}
			switch n.Data {
			case "script":
				if attrs["src"] == "" || n.FirstChild != nil {
					t.Error("inline script")
				}
			case "label":
				labels[attrs["for"]] = true
			case "input", "textarea", "select":
				if attrs["type"] != "hidden" {
					controls = append(controls, attrs["id"])
				}
			case "form":
				if a := attrs["action"]; !strings.HasPrefix(a, "/") || strings.HasPrefix(a, "//") {
					t.Errorf("form posts to %q", a)
				}
				if attrs["method"] != "post" {
					t.Errorf("form method %q", attrs["method"])
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	for _, id := range controls {
		if id == "" || !labels[id] {
			t.Errorf("form control %q has no label", id)
		}
	}
	for _, landmark := range []string{"header", "nav", "main", "footer"} {
		if counts[landmark] == 0 {
			t.Errorf("no <%s> landmark", landmark)
		}
	}
	if counts["h1"] != 1 {
		t.Errorf("%d h1 elements, want 1", counts["h1"])
	}
}

func getJSON(t *testing.T, u string, out any) {
	t.Helper()
	res, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

// getJSONHeader is getJSON that also returns the answer's headers.
func getJSONHeader(t *testing.T, u string, out any) http.Header {
	t.Helper()
	res, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
	return res.Header
}

// TestHomePagesBothWays: the home page links to older posts and, from
// there, back to newer ones, page by page.
func TestHomePagesBothWays(t *testing.T) {
	st := newStack(t, stackOptions{})
	for i := range 25 {
		st.createPost(t, fmt.Sprintf("Post %02d", i), "text")
	}
	c := st.client(t)
	older := regexp.MustCompile(`<a rel="next" href="([^"]+)">Older posts`)
	newer := regexp.MustCompile(`<a rel="prev" href="([^"]+)">← Newer posts`)
	first := c.get("/")
	if newer.MatchString(first.body) {
		t.Fatal("the first page links to newer posts")
	}
	m := older.FindStringSubmatch(first.body)
	second := c.get(html.UnescapeString(m[1]))
	third := c.get(html.UnescapeString(older.FindStringSubmatch(second.body)[1]))
	if !strings.Contains(third.body, "Post 04") || !strings.Contains(third.body, "Post 00") || older.MatchString(third.body) {
		t.Fatalf("the third page should hold posts 04 to 00 and be the last")
	}
	back := c.get(html.UnescapeString(newer.FindStringSubmatch(third.body)[1]))
	if !strings.Contains(back.body, "Post 14") || !strings.Contains(back.body, "Post 05") || strings.Contains(back.body, "Post 15") || strings.Contains(back.body, "Post 04") {
		t.Fatalf("newer from the third page should be the second page (14 to 05): %q", regexp.MustCompile(`Post [0-9]+`).FindAllString(back.body, -1))
	}
	top := c.get(html.UnescapeString(newer.FindStringSubmatch(back.body)[1]))
	if !strings.Contains(top.body, "Post 24") || !strings.Contains(top.body, "Post 15") || newer.MatchString(top.body) {
		t.Fatalf("newer from the second page should be the first page, with no newer link:\n%.3000s", top.body)
	}
}
