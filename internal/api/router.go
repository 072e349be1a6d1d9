package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"time"

	"blog/internal/fault"
	"blog/internal/page"
)

// Router is the standard library's ServeMux with two additions: requests no
// route matches get a problem response (404, or 405 with Allow) instead of
// the mux's plain text, and every request is logged with its route pattern.
type Router struct {
	mux     *http.ServeMux
	log     *slog.Logger
	routes  []string
	observe func(route, method string, code int, took time.Duration)
}

// Observe sets a function called after every request with its route
// pattern ("" when none matched), method, status and duration: the hook
// metrics use.
func (rt *Router) Observe(fn func(route, method string, code int, took time.Duration)) {
	rt.observe = fn
}

// NewRouter returns an empty router that logs to log.
func NewRouter(log *slog.Logger) *Router {
	return &Router{mux: http.NewServeMux(), log: log}
}

// HandleFunc registers h for a ServeMux pattern such as "POST /posts".
func (rt *Router) HandleFunc(pattern string, h http.HandlerFunc) { rt.Handle(pattern, h) }

// Handle registers h for a ServeMux pattern.
func (rt *Router) Handle(pattern string, h http.Handler) {
	rt.mux.Handle(pattern, h)
	rt.routes = append(rt.routes, pattern)
}

// Routes returns the patterns registered so far, so a test can hold them
// against the service's OpenAPI document.
func (rt *Router) Routes() []string { return slices.Clone(rt.routes) }

// ServeHTTP routes r, answering unmatched requests with problems.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	status := Recover(rt.log, w, r, http.HandlerFunc(rt.route), func(w http.ResponseWriter, r *http.Request) {
		WriteProblem(w, r, NewProblem(http.StatusInternalServerError, "The server could not complete the request; it has been logged."))
	})
	took := time.Since(start)
	if rt.observe != nil {
		rt.observe(r.Pattern, r.Method, status, took)
	}
	rt.log.Debug("request", "method", r.Method, "path", r.URL.Path, "route", r.Pattern, "status", status, "took", took)
}

// route dispatches r through the mux.
func (rt *Router) route(w http.ResponseWriter, r *http.Request) {
	if h, pattern := rt.mux.Handler(r); pattern == "" {
		// Let the mux decide between 404 and 405 (and compute Allow), then
		// answer in our format.
		rec := &StatusWriter{ResponseWriter: discard{h: http.Header{}}, Status: http.StatusOK}
		h.ServeHTTP(rec, r)
		if allow := rec.Header().Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		switch rec.Status {
		case http.StatusMethodNotAllowed:
			WriteProblem(w, r, NewProblem(rec.Status, fmt.Sprintf("%s is not allowed here; see the Allow header.", r.Method)))
		case http.StatusNotFound:
			WriteProblem(w, r, NewProblem(rec.Status, "No resource lives at this path."))
		default:
			// Redirects (a path to clean up) and the like: replay for real.
			rt.mux.ServeHTTP(w, r)
		}
		return
	}
	rt.mux.ServeHTTP(w, r)
}

// Recover serves r with next and returns the status it answered. A panic in
// next is a bug, not an input: it is logged, answered by fail (unless a
// response has begun) and the server keeps serving. http.ErrAbortHandler,
// a deliberate abort, is passed on to net/http.
func Recover(log *slog.Logger, w http.ResponseWriter, r *http.Request, next http.Handler, fail func(http.ResponseWriter, *http.Request)) (status int) {
	sw := &StatusWriter{ResponseWriter: w, Status: http.StatusOK}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			log.Error("handler panicked", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v))
			if !sw.Wrote {
				fail(sw, r)
			}
		}
		status = sw.Status
	}()
	next.ServeHTTP(sw, r)
	return sw.Status
}

// StatusWriter remembers the status a handler wrote and whether it began
// its response.
type StatusWriter struct {
	http.ResponseWriter
	Status int
	Wrote  bool
}

// WriteHeader records the first status written.
func (s *StatusWriter) WriteHeader(code int) {
	if !s.Wrote {
		s.Status, s.Wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

// Write marks the response as begun.
func (s *StatusWriter) Write(b []byte) (int, error) {
	s.Wrote = true
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer (flushing for
// streams, deadlines).
func (s *StatusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// discard is a ResponseWriter that keeps headers and drops the body.
type discard struct{ h http.Header }

func (d discard) Header() http.Header         { return d.h }
func (d discard) Write(b []byte) (int, error) { return len(b), nil }
func (d discard) WriteHeader(int)             {}

// ValidID reports whether s is a 24-hex ObjectID string, the only id shape
// this API accepts (fault.ValidID); anything else is a 400 before any store
// is asked.
func ValidID(s string) bool { return fault.ValidID(s) }

// PathID returns the named path value if it is a valid id, or a 400 problem
// naming the parameter.
func PathID(r *http.Request, name string) (string, error) {
	id := r.PathValue(name)
	if !ValidID(id) {
		return "", Invalid(map[string]string{"#/" + name: "must be a 24-character hexadecimal ObjectID"})
	}
	return id, nil
}

// PageQuery reads a page request from r's query parameters limit and after,
// refusing any other parameter so typos do not pass silently.
func PageQuery(r *http.Request) (page.Query, error) {
	vals := r.URL.Query()
	problems := map[string]string{}
	for k, v := range vals {
		switch {
		case k != "limit" && k != "after":
			problems["#/"+k] = "is not a known query parameter"
		case len(v) > 1:
			problems["#/"+k] = "must be given once"
		}
	}
	q, ps := page.Parse(vals.Get("limit"), vals.Get("after"))
	for k, v := range ps {
		problems["#/"+k] = v
	}
	if err := Invalid(problems); err != nil {
		return page.Query{}, err
	}
	return q, nil
}

// SetNextLink adds `Link: <path?limit=N&after=C>; rel="next"` for the page
// after the one whose last item is last.
func SetNextLink(w http.ResponseWriter, r *http.Request, limit int, last page.Cursor) {
	q := url.Values{}
	q.Set("limit", fmt.Sprint(limit))
	q.Set("after", last.Encode())
	u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
	w.Header().Add("Link", fmt.Sprintf(`<%s>; rel="next"`, u.String()))
}

// Probe reports whether a dependency is ready; nil means yes.
type Probe func(ctx context.Context) error

// Health registers GET /livez (the process answers) and GET /readyz (every
// probe passes within two seconds; otherwise 503 with the failing check's
// name, never its error text).
func (rt *Router) Health(probes map[string]Probe) {
	rt.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	rt.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		for name, p := range probes {
			if err := p(ctx); err != nil {
				rt.log.Warn("not ready", "check", name, "err", err)
				WriteProblem(w, r, NewProblem(http.StatusServiceUnavailable, name+" is not ready"))
				return
			}
		}
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}

// Fetch returns the query a handler should give its store: one item more
// than the client asked for, so WritePage can tell whether a next page exists
// without a count.
func Fetch(q page.Query) page.Query {
	q.Limit++
	return q
}

// WritePage sends a page of items as a JSON array (never null, so the seed's
// clients keep working), with a rel="next" Link when the store returned the
// extra item that Fetch asked for.
func WritePage[T any](w http.ResponseWriter, r *http.Request, q page.Query, items []T, cursor func(T) page.Cursor) {
	if len(items) > q.Limit {
		items = items[:q.Limit]
		SetNextLink(w, r, q.Limit, cursor(items[len(items)-1]))
	}
	if items == nil {
		items = []T{}
	}
	WriteJSON(w, http.StatusOK, items)
}
