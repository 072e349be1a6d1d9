package web

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// view is what every page template gets: the page's own data in Page, and
// what the layout needs.
type view struct {
	Title  string // the document title, before the site name
	SignIn bool   // authors sign in (a token is configured)
	// Author: the visitor may write posts and moderate: signed in, or
	// anyone when no token is configured (the APIs are open then too, and
	// only reachable from this machine unless BLOG_INSECURE is set).
	Author bool
	Path   string // the current path, to come back to after signing in
	Page   any
}

// pageNames are the page templates; each is parsed with the layout.
var pageNames = []string{"home", "post", "editor", "login", "error"}

func (s *Server) parseTemplates() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"asset":    s.asset,
		"date":     formatDate,
		"iso":      func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }, // as toISOString
		"ms":       func(t time.Time) int64 { return t.UnixMilli() },
		"markdown": markdown,
		"excerpt":  func(s string) string { return excerpt(plainText(s), 220) },
		"plural":   plural,
	}
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html")
	if err != nil {
		return nil, fmt.Errorf("web: parse layout: %w", err)
	}
	pages := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := base.Clone()
		if err == nil {
			t, err = t.ParseFS(templateFS, "templates/"+name+".html")
		}
		if err != nil {
			return nil, fmt.Errorf("web: parse %s page: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// asset returns a static file's URL with its content hash, so browsers may
// cache it for good and still get a new version at once.
func (s *Server) asset(name string) (string, error) {
	sum, ok := s.assets[name]
	if !ok {
		return "", fmt.Errorf("web: no static file %q", name)
	}
	return "/static/" + name + "?v=" + sum, nil
}

// render writes a page. It renders into a buffer first, so a template
// failure becomes a clean error page rather than half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	v := view{
		Title: title, SignIn: s.sessions.enabled, Author: s.author(r),
		Path: r.URL.RequestURI(), Page: data,
	}
	var buf bytes.Buffer
	if err := s.pages[name].ExecuteTemplate(&buf, "layout.html", v); err != nil {
		s.log.Error("render page", "page", name, "err", err)
		if name != "error" {
			s.fail(w, r, http.StatusInternalServerError, "Something went wrong on our side; it has been logged.")
			return
		}
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store") // live data and sign-in state: never from a cache
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorPage is the data of the error page.
type errorPage struct {
	Status  int
	Heading string
	Message string
}

// fail renders the error page.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, message string) {
	heading := http.StatusText(status)
	switch status {
	case http.StatusNotFound:
		heading = "Page not found"
	case http.StatusServiceUnavailable, http.StatusBadGateway:
		heading = "The blog is having trouble"
	}
	s.render(w, r, status, "error", heading, errorPage{Status: status, Heading: heading, Message: message})
}

// unavailable renders the page for an API that could not answer, logging
// why (which the visitor never sees).
func (s *Server) unavailable(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Error("api call failed", "method", r.Method, "path", r.URL.Path, "err", err)
	s.fail(w, r, http.StatusServiceUnavailable, "Part of the blog is not answering right now. Please try again in a moment.")
}

func formatDate(t time.Time) string { return t.UTC().Format("2 Jan 2006, 15:04 UTC") }

// excerpt returns the start of s, at most n characters, cut at a word.
func excerpt(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	cut := 0
	for i := range s {
		if cut == n {
			s = s[:i]
			break
		}
		cut++
	}
	if i := strings.LastIndexFunc(s, unicode.IsSpace); i > n/2 {
		s = s[:i]
	}
	return strings.TrimRightFunc(s, func(r rune) bool { return unicode.IsPunct(r) || unicode.IsSpace(r) }) + "…"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
