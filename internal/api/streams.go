package api

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// Live-stream defaults. A stream holds a connection (three file
// descriptors when the web front end relays it in the same process), a few
// goroutines and small buffers: at these caps a 2-core machine with the
// usual 1,024..20,000 descriptors keeps answering everything else.
const (
	DefaultMaxStreams       = 500
	DefaultStreamsPerClient = 8
	// DefaultStreamLifetime ends a stream after this long; the browser
	// reconnects with Last-Event-ID and misses nothing, and a client cannot
	// hold a slot for ever.
	DefaultStreamLifetime = 10 * time.Minute
)

// StreamLimits bound the long-lived responses (Server-Sent Events) a
// service keeps open.
type StreamLimits struct {
	// Max is the cap over all clients; 0 means DefaultMaxStreams, < 0 none.
	Max int
	// PerClient is the cap per client address (an IPv6 /64 counts as one);
	// 0 means DefaultStreamsPerClient, < 0 none.
	PerClient int
	// Lifetime is how long one stream may last; 0 means
	// DefaultStreamLifetime, < 0 for ever.
	Lifetime time.Duration
}

// StreamGate counts open streams against StreamLimits.
type StreamGate struct {
	max, perClient int
	lifetime       time.Duration
	proxies        *Proxies

	mu  sync.Mutex
	n   int
	per map[string]int
}

// NewStreamGate returns a gate for lim, telling clients apart by proxies
// (see Proxies.ClientKey).
func NewStreamGate(lim StreamLimits, proxies *Proxies) *StreamGate {
	pick := func(v, def int) int {
		switch {
		case v < 0:
			return 0
		case v == 0:
			return def
		}
		return v
	}
	g := &StreamGate{
		max:       pick(lim.Max, DefaultMaxStreams),
		perClient: pick(lim.PerClient, DefaultStreamsPerClient),
		lifetime:  lim.Lifetime,
		proxies:   proxies,
		per:       map[string]int{},
	}
	if g.lifetime == 0 {
		g.lifetime = DefaultStreamLifetime
	}
	return g
}

// Acquire admits r's stream, returning the function that ends its count
// (call it once, when the stream ends). Past a cap it answers r itself,
// 503 when the process is full and 429 when r's client has its share, both
// with Retry-After, and returns ok false. A nil gate admits everything.
func (g *StreamGate) Acquire(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	if g == nil {
		return func() {}, true
	}
	key := g.proxies.ClientKey(r)
	g.mu.Lock()
	switch {
	case g.max > 0 && g.n >= g.max:
		g.mu.Unlock()
		w.Header().Set("Retry-After", "30")
		WriteProblem(w, r, NewProblem(http.StatusServiceUnavailable,
			fmt.Sprintf("The server is following as many live streams as it can (%d); retry after Retry-After seconds.", g.max)))
		return nil, false
	case g.perClient > 0 && g.per[key] >= g.perClient:
		g.mu.Unlock()
		w.Header().Set("Retry-After", "30")
		WriteProblem(w, r, NewProblem(http.StatusTooManyRequests,
			fmt.Sprintf("Your address has %d live streams open, the most it may; close one or retry after Retry-After seconds.", g.perClient)))
		return nil, false
	}
	g.n++
	g.per[key]++
	g.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			g.n--
			if g.per[key]--; g.per[key] <= 0 {
				delete(g.per, key)
			}
			g.mu.Unlock()
		})
	}, true
}

// Open returns how many streams are open.
func (g *StreamGate) Open() int {
	if g == nil {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}

// Lifetime returns how long a stream opened now may last (0: for ever):
// the configured lifetime shortened by up to a tenth at random, so streams
// opened together do not all reconnect at once.
func (g *StreamGate) Lifetime() time.Duration {
	if g == nil || g.lifetime < 0 {
		return 0
	}
	return g.lifetime - time.Duration(rand.Int64N(int64(g.lifetime)/10+1))
}
