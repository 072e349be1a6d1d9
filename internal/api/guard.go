package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Middleware wraps a handler with a policy (authentication, rate limits).
type Middleware func(http.HandlerFunc) http.HandlerFunc

// Wrap applies m to h; a nil Middleware (no policy configured) lets every
// request through, so handlers need not default their guards.
func (m Middleware) Wrap(h http.HandlerFunc) http.HandlerFunc {
	if m == nil {
		return h
	}
	return m(h)
}

// Open is the Middleware that lets every request through.
func Open(h http.HandlerFunc) http.HandlerFunc { return h }

// RequireToken returns a Middleware admitting only requests that carry
// `Authorization: Bearer <token>`. Tokens are compared in constant time (on
// their hashes, so not even the length leaks). An empty token means no
// authentication is configured: everything passes.
func RequireToken(token string) Middleware {
	if token == "" {
		return Open
	}
	want := sha256.Sum256([]byte(token))
	return func(next http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if !bearer(r, want) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="blog"`)
				WriteProblem(w, r, NewProblem(http.StatusUnauthorized, "This request needs a valid bearer token (Authorization: Bearer <token>)."))
				return
			}
			next(w, r)
		}
	}
}

// bearer reports whether r carries `Authorization: Bearer <token>` for the
// token whose SHA-256 is want, comparing in constant time.
func bearer(r *http.Request, want [sha256.Size]byte) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	sum := sha256.Sum256([]byte(got))
	return ok && subtle.ConstantTimeCompare(sum[:], want[:]) == 1
}

// SkipWithToken returns a Middleware that lets requests bearing the token
// straight through and sends all others through inner. The web front end
// sends the token on its users' behalf and limits each browser itself; to
// the API it is one address, which a per-address limit would otherwise
// choke. An empty token means no one skips.
func SkipWithToken(token string, inner Middleware) Middleware {
	if token == "" {
		return inner
	}
	want := sha256.Sum256([]byte(token))
	return func(next http.HandlerFunc) http.HandlerFunc {
		limited := inner(next)
		return func(w http.ResponseWriter, r *http.Request) {
			if bearer(r, want) {
				next(w, r)
				return
			}
			limited(w, r)
		}
	}
}

// RateLimit returns a Middleware that allows each client IP perMinute
// requests a minute on average (token bucket, bursts of up to a tenth of
// that), answering 429 with Retry-After beyond it. perMinute <= 0 turns the
// limit off. Buckets idle for ten minutes are forgotten, so memory is bounded
// by the clients of the last ten minutes.
func RateLimit(perMinute int) Middleware {
	if perMinute <= 0 {
		return Open
	}
	l := &limiter{
		every:   rate.Limit(float64(perMinute) / 60),
		burst:   max(1, perMinute/10),
		buckets: map[string]*bucket{},
	}
	return func(next http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if wait, ok := l.allow(clientIP(r), time.Now()); !ok {
				w.Header().Set("Retry-After", fmt.Sprint(int(math.Ceil(wait.Seconds()))))
				WriteProblem(w, r, NewProblem(http.StatusTooManyRequests, "Too many requests from your address; try again after Retry-After seconds."))
				return
			}
			next(w, r)
		}
	}
}

type limiter struct {
	every rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// allow takes a token from ip's bucket, or says how long until one is free.
func (l *limiter) allow(ip string, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		for k, b := range l.buckets {
			if now.Sub(b.seen) > 10*time.Minute {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b := l.buckets[ip]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(l.every, l.burst)}
		l.buckets[ip] = b
	}
	b.seen = now
	res := b.lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d, false
	}
	return 0, true
}

// clientIP is the address a request comes from: the connection's peer,
// unless that peer is on this machine (the web front end, or a reverse proxy
// beside the service) and names the client in X-Forwarded-For, whose last
// entry it added. A remote peer's forwarding headers are not trusted: anyone
// can send them.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		if fwd := r.Header.Values("X-Forwarded-For"); len(fwd) > 0 {
			last := fwd[len(fwd)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if f := net.ParseIP(strings.TrimSpace(last)); f != nil {
				return f.String()
			}
		}
	}
	return host
}

// ClientIP is clientIP for other packages: the web front end passes it on
// in X-Forwarded-For, so the APIs limit each browser, not the front end.
func ClientIP(r *http.Request) string { return clientIP(r) }
