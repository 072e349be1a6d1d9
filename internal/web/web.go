// Package web is the blog's browser front end (`blog web`): a
// backend-for-frontend that renders pages with html/template and talks to
// the posts and comments services over HTTP only, never to a store: the
// seed's synchronous pattern next to its change-stream pattern.
//
// Everything works without JavaScript: reading, paging, commenting (a plain
// form, POST-redirect-GET) and, when BLOG_API_TOKEN is set, writing and
// editing posts after signing in. One small script file adds live updates:
// it follows the post's event stream, which this service relays from the
// posts service, and adds, edits and removes comments in place.
//
// Safety: html/template escapes all user text; the Content-Security-Policy
// allows scripts from this origin only (no inline script, no inline event
// handler); state-changing requests must come from this origin
// (http.CrossOriginProtection, see New); the API token stays in this
// process and is never rendered.
package web

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"blog/internal/api"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config is what the web service needs to run.
type Config struct {
	// PostsURL and CommentsURL are the base URLs of the two APIs, such as
	// http://127.0.0.1:4000.
	PostsURL, CommentsURL string
	// Token is BLOG_API_TOKEN. When set, authors can sign in with it and
	// write posts in the browser; this service then sends it to the APIs.
	// It is never rendered, logged or put in a cookie.
	Token string
	// CommentRate is how many comments one browser address may post a
	// minute (0: no limit here).
	CommentRate int
	// Log receives errors and request logs; nil discards them.
	Log *slog.Logger
	// Client is used for API calls; nil means one with sensible timeouts.
	// Streams use its Transport without an overall timeout.
	Client *http.Client
	// SessionTTL is how long an author stays signed in; zero means
	// DefaultSessionTTL.
	SessionTTL time.Duration
	// SessionIdle ends a sign-in unused for this long; zero means
	// DefaultSessionIdle.
	SessionIdle time.Duration
	// RevokedFile is where signed-out sessions are remembered across
	// restarts (a small JSON file); empty keeps them in memory only.
	RevokedFile string
	// Proxies says whose X-Forwarded-For and X-Forwarded-Proto to believe
	// (nil: nobody's).
	Proxies *api.Proxies
	// ProxyKey, when set, is sent to the APIs in api.ProxyKeyHeader: `blog
	// serve` makes one up so that its APIs trust this front end's
	// X-Forwarded-For and no one else's.
	ProxyKey string
	// LoginRate and LoginGlobalRate limit sign-in attempts a minute per
	// browser address and in all; zero means DefaultLoginRate and
	// DefaultLoginGlobalRate, negative turns the limit off.
	LoginRate, LoginGlobalRate int
	// Streams limits the live-update streams this service relays.
	Streams api.StreamLimits
}

// Sign-in limits, attempts a minute: an author needs one; a guesser of a
// token needs billions.
const (
	DefaultLoginRate       = 10
	DefaultLoginGlobalRate = 100
)

// Server is the web service's http.Handler.
type Server struct {
	cfg      Config
	log      *slog.Logger
	api      *apiClient
	stream   *http.Client
	pages    map[string]*template.Template
	assets   map[string]string // file name -> content hash, for cache busting
	sessions *sessions
	forms    *formTokens // one-time tokens of comment forms
	comment  func(*http.Request) (time.Duration, bool)
	login    func(*http.Request) (time.Duration, bool)
	streams  *api.StreamGate
	handler  http.Handler

	done     chan struct{} // closed by Close: relayed streams end
	doneOnce sync.Once
}

// New returns the web service for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	posts, err := baseURL("posts", cfg.PostsURL)
	if err != nil {
		return nil, err
	}
	comments, err := baseURL("comments", cfg.CommentsURL)
	if err != nil {
		return nil, err
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{
			Timeout: 10 * time.Second,
			Transport: &http.Transport{
				Proxy:                 http.ProxyFromEnvironment,
				MaxIdleConnsPerHost:   64,
				IdleConnTimeout:       90 * time.Second,
				ResponseHeaderTimeout: 10 * time.Second,
			},
		}
	}
	revoked, err := loadRevocations(cfg.RevokedFile, cfg.Log)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Log,
		api:      &apiClient{posts: posts, comments: comments, http: client, token: cfg.Token, proxyKey: cfg.ProxyKey},
		stream:   &http.Client{Transport: client.Transport}, // no overall timeout: streams last
		sessions: newSessions(cfg.Token, cfg.SessionTTL, cfg.SessionIdle, cfg.Proxies, revoked),
		comment:  limiter(api.Limit{PerMinute: cfg.CommentRate, Proxies: cfg.Proxies}, 0),
		login: limiter(api.Limit{PerMinute: orDefault(cfg.LoginRate, DefaultLoginRate), Burst: 3, Proxies: cfg.Proxies},
			orDefault(cfg.LoginGlobalRate, DefaultLoginGlobalRate)),
		streams: api.NewStreamGate(cfg.Streams, cfg.Proxies),
		done:    make(chan struct{}),
		forms:   newFormTokens(),
	}
	if s.assets, err = hashAssets(); err != nil {
		return nil, err
	}
	if s.pages, err = s.parseTemplates(); err != nil {
		return nil, err
	}
	s.handler = s.routes()
	return s, nil
}

// Close ends every relayed event stream; register it with
// http.Server.RegisterOnShutdown so that Shutdown need not wait for them.
func (s *Server) Close() { s.doneOnce.Do(func() { close(s.done) }) }

// ServeHTTP serves the front end.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.home)
	mux.HandleFunc("GET /posts/{id}", s.post)
	mux.HandleFunc("POST /posts/{id}", s.addComment)
	mux.HandleFunc("GET /posts/{id}/events", s.events)
	mux.HandleFunc("GET /posts/{id}/comments", s.pageComments)
	mux.HandleFunc("GET /login", s.loginForm)
	mux.HandleFunc("POST /login", s.loginSubmit)
	mux.HandleFunc("POST /logout", s.logout)
	mux.HandleFunc("GET /posts/new", s.authorOnly(s.newPost))
	mux.HandleFunc("POST /posts", s.authorOnly(s.createPost))
	mux.HandleFunc("GET /posts/{id}/edit", s.authorOnly(s.editPost))
	mux.HandleFunc("POST /posts/{id}/edit", s.authorOnly(s.updatePost))
	mux.HandleFunc("POST /posts/{id}/delete", s.authorOnly(s.deletePost))
	mux.HandleFunc("POST /posts/{id}/comments/{cid}/delete", s.authorOnly(s.deleteComment))
	mux.HandleFunc("GET /static/{name}", s.static)
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		api.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.ready)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, http.StatusNotFound, "There is nothing at this address.")
	})

	// CSRF: a state-changing request must come from this origin. Browsers
	// say where a request comes from in Sec-Fetch-Site (all since 2023) or
	// Origin; a cross-site form post or fetch is refused. Requests with
	// neither header are not from a browser, and carry no cookie a forger
	// could borrow. This needs no token in forms, so pages stay cacheable
	// and work without JavaScript.
	csrf := http.NewCrossOriginProtection()
	csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, http.StatusForbidden, "This form was sent from another site, so it was refused. Go back to the page, reload it and try again.")
	}))
	return s.recoverer(securityHeaders(csrf.Handler(withClientIP(s.cfg.Proxies, s.sessions.touch(mux)))))
}

// contentSecurityPolicy allows this origin's scripts, styles, images and
// event stream, and nothing else: no inline script or style, no plugins, no
// framing, forms only to this origin.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// recoverer logs each request and turns a panic into a 500 page.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		status := api.Recover(s.log, w, r, next, func(w http.ResponseWriter, r *http.Request) {
			s.fail(w, r, http.StatusInternalServerError, "Something went wrong on our side; it has been logged.")
		})
		s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", status, "took", time.Since(start))
	})
}

// ready answers 200 when both APIs are ready, else 503 naming the first
// that is not.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	for name, base := range map[string]*url.URL{"posts service": s.api.posts, "comments service": s.api.comments} {
		if err := s.api.ready(ctx, base); err != nil {
			s.log.Warn("not ready", "check", name, "err", err)
			api.WriteProblem(w, r, api.NewProblem(http.StatusServiceUnavailable, name+" is not ready"))
			return
		}
	}
	api.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// static serves the embedded stylesheet, script and icon. A URL carrying
// the file's current hash (as pages link it) may be cached for a year.
func (s *Server) static(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	sum, ok := s.assets[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if r.URL.Query().Get("v") == sum {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	w.Header().Set("ETag", `"`+sum+`"`)
	http.ServeFileFS(w, r, staticFS, path.Join("static", name))
}

// hashAssets returns a short content hash of each static file.
func hashAssets() (map[string]string, error) {
	out := map[string]string{}
	entries, err := fs.ReadDir(staticFS, "static")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		b, err := fs.ReadFile(staticFS, "static/"+e.Name())
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		out[e.Name()] = hex.EncodeToString(sum[:6])
	}
	return out, nil
}

func baseURL(name, raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("web: the %s URL must be an http(s) URL such as http://127.0.0.1:4000, not %q", name, raw)
	}
	return u, nil
}

// limiter combines a per-address limit with a ceiling over all addresses
// (global a minute; 0: none) into a check whose answer the caller renders
// as a page: allowed, or how long to wait.
func limiter(per api.Limit, global int) func(*http.Request) (time.Duration, bool) {
	check, all := per.Check(), api.Global(global)
	return func(r *http.Request) (time.Duration, bool) {
		if check != nil {
			if wait, ok := check(r); !ok {
				return max(wait, time.Second).Round(time.Second), false
			}
		}
		if all != nil {
			if wait, ok := all(); !ok {
				return max(wait, time.Second).Round(time.Second), false
			}
		}
		return 0, true
	}
}

// orDefault returns n, def when n is zero, and 0 (off) when n is negative.
func orDefault(n, def int) int {
	switch {
	case n < 0:
		return 0
	case n == 0:
		return def
	}
	return n
}

// errUnavailable marks an API that could not be reached or failed.
var errUnavailable = errors.New("web: service unavailable")
