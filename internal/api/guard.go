package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
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
// token whose SHA-256 is want, comparing in constant time. The scheme name
// matches in any case ("bearer", "BEARER"), as RFC 9110 §11.1 requires.
func bearer(r *http.Request, want [sha256.Size]byte) bool {
	scheme, got, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	// RFC 9110 §11.1: the scheme is case-insensitive; spaces may follow it.
	ok := strings.EqualFold(scheme, "Bearer")
	sum := sha256.Sum256([]byte(strings.TrimLeft(got, " ")))
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

// DefaultMaxBuckets caps the per-address buckets a limiter keeps: about
// 150 bytes each, so the cap holds a limiter under 10 MB however many
// addresses (or forged ones) arrive; past it the least recently seen
// address is forgotten.
const DefaultMaxBuckets = 50_000

// Limit is a per-client-address rate limit (token bucket).
type Limit struct {
	// PerMinute is the sustained rate per address; <= 0 turns the limit off.
	PerMinute int
	// Burst is how many requests may come at once; 0 means a tenth of
	// PerMinute, at least 1.
	Burst int
	// Proxies says whose X-Forwarded-For names the client (nil: nobody's).
	Proxies *Proxies
	// MaxBuckets caps the addresses remembered; 0 means DefaultMaxBuckets.
	MaxBuckets int
}

// RateLimit returns a Middleware that allows each client address (see
// Proxies.ClientKey) perMinute requests a minute on average, in bursts of up
// to a tenth of that, answering 429 with Retry-After beyond it. perMinute <=
// 0 turns the limit off.
func RateLimit(perMinute int, proxies *Proxies) Middleware {
	return Limit{PerMinute: perMinute, Proxies: proxies}.Middleware()
}

// Middleware returns the limit as a Middleware (Open when it is off).
func (l Limit) Middleware() Middleware {
	check := l.Check()
	if check == nil {
		return Open
	}
	return func(next http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if wait, ok := check(r); !ok {
				w.Header().Set("Retry-After", fmt.Sprint(int(math.Ceil(wait.Seconds()))))
				WriteProblem(w, r, NewProblem(http.StatusTooManyRequests, "Too many requests from your address; try again after Retry-After seconds."))
				return
			}
			next(w, r)
		}
	}
}

// Check returns the limit as a function that takes a token from r's bucket
// or says how long until one is free; nil when the limit is off. Callers
// that answer with a page rather than a problem use it directly.
func (l Limit) Check() func(r *http.Request) (time.Duration, bool) {
	if l.PerMinute <= 0 {
		return nil
	}
	burst := l.Burst
	if burst <= 0 {
		burst = max(1, l.PerMinute/10)
	}
	size := l.MaxBuckets
	if size <= 0 {
		size = DefaultMaxBuckets
	}
	buckets, err := lru.New[string, *rate.Limiter](size)
	if err != nil { // only for a size < 1, excluded above
		panic(err)
	}
	every := rate.Limit(float64(l.PerMinute) / 60)
	return func(r *http.Request) (time.Duration, bool) {
		key := l.Proxies.ClientKey(r)
		lim, ok := buckets.Get(key)
		if !ok {
			lim = rate.NewLimiter(every, burst)
			if prev, found, _ := buckets.PeekOrAdd(key, lim); found {
				lim = prev
			}
		}
		return reserve(lim, time.Now())
	}
}

// reserve takes a token from lim at now, or says how long until one is free.
func reserve(lim *rate.Limiter, now time.Time) (time.Duration, bool) {
	res := lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d, false
	}
	return 0, true
}

// Global returns a check allowing perMinute requests a minute in all (bursts
// of a tenth of that), whoever sends them: the ceiling over every address
// for something an attacker could spread over many, such as sign-in
// attempts. perMinute <= 0 returns nil (no ceiling).
func Global(perMinute int) func() (time.Duration, bool) {
	if perMinute <= 0 {
		return nil
	}
	lim := rate.NewLimiter(rate.Limit(float64(perMinute)/60), max(1, perMinute/10))
	return func() (time.Duration, bool) { return reserve(lim, time.Now()) }
}
