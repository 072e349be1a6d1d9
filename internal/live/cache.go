package live

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
	"sync"

	"blog/internal/changes"
	"blog/internal/post"
)

// DefaultCacheBytes bounds the encoded posts a Cache keeps: about 4,000
// posts of the bench's size (4 KB with 20 comments), 16 MB of memory.
const DefaultCacheBytes = 16 << 20

// Cache keeps the encoded answers of recently read posts (GET /posts/{id}),
// with their ETags, so a post read again is served from memory without a
// store read or an encode.
//
// It is correct across processes because it is invalidated through the
// posts feed, which carries every change to a post and to its embedded
// comments whichever process made it: the live-updates Hub that follows
// that feed tells the cache each changed post (Hub.Cache). A Cached answer
// is therefore never older than the hub's position in the feed, the same
// bound as the live updates themselves. While the hub has no open stream
// (before the first, after a failure or lost history) the cache holds and
// keeps nothing, since it would miss invalidations.
//
// A store read that began before an invalidation is not Cached (the
// generation check in put), so an invalidation cannot be overtaken by the
// stale read it was meant to replace.
type Cache struct {
	mu      sync.Mutex
	entries map[string]*Cached
	bytes   int // sum of len(body) of entries
	max     int
	gen     uint64 // bumped by every invalidation
	active  bool   // the hub follows the feed
}

// Cached is one post's encoded answer (Encode), served by Serve.
type Cached struct {
	body []byte // the JSON, with the trailing newline json.Encoder adds
	etag string // a strong ETag: a hash of body, quoted
}

// NewCache returns a cache of at most maxBytes of encoded posts
// (DefaultCacheBytes when maxBytes <= 0). It serves nothing until a Hub
// following the posts feed is given it (Hub.Cache).
func NewCache(maxBytes int) *Cache {
	if maxBytes <= 0 {
		maxBytes = DefaultCacheBytes
	}
	return &Cache{entries: map[string]*Cached{}, max: maxBytes}
}

// Lookup returns the Cached answer for the post, or nil and the
// generation to hand to Put after reading the post from the store.
func (c *Cache) Lookup(id string) (*Cached, uint64) {
	if c == nil {
		return nil, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries[id], c.gen
}

// Put keeps e for the post, unless something was invalidated since gen
// was taken (the read may predate that change) or the cache is inactive.
// When full it evicts entries at random (map order), which costs nothing
// to track and is as good as any policy for the uniform reads it sees.
func (c *Cache) Put(id string, gen uint64, e *Cached) {
	if c == nil || len(e.body) > c.max/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.active || c.gen != gen {
		return
	}
	if old := c.entries[id]; old != nil {
		c.bytes -= len(old.body)
	}
	for k, v := range c.entries {
		if c.bytes+len(e.body) <= c.max {
			break
		}
		delete(c.entries, k)
		c.bytes -= len(v.body)
	}
	c.entries[id] = e
	c.bytes += len(e.body)
}

// invalidate forgets the posts the events name. It is nil-safe, for a hub
// without a cache.
func (c *Cache) invalidate(events []changes.Event[post.Post]) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, e := range events {
		if old := c.entries[e.Key]; old != nil {
			c.bytes -= len(old.body)
			delete(c.entries, e.Key)
		}
	}
}

// Forget drops one post, after this process changed it, so that its next
// read here sees the change without waiting for the feed.
func (c *Cache) Forget(id string) {
	c.invalidate([]changes.Event[post.Post]{{Key: id}})
}

// setActive empties the cache and says whether it may keep answers: only
// while the hub has an open stream, which delivers every later change.
func (c *Cache) setActive(active bool) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.entries)
	c.bytes = 0
	c.active = active
}

// Len returns how many posts are Cached, for tests and metrics.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// Cache makes the hub invalidate c with every change it follows. Call it
// before Run.
func (h *Hub) Cache(c *Cache) { h.cache = c }

// Encode encodes a post's answer with its ETag.
func Encode(p post.Post) *Cached {
	body := p.AppendJSON(make([]byte, 0, 1024+len(p.Content)+160*len(p.Comments)))
	body = append(body, '\n')
	sum := sha256.Sum256(body)
	etag := make([]byte, 0, 2+22)
	etag = append(etag, '"')
	etag = base64.RawURLEncoding.AppendEncode(etag, sum[:16])
	etag = append(etag, '"')
	return &Cached{body: body, etag: string(etag)}
}

// Serve writes the answer, or 304 Not Modified when the request's
// If-None-Match names its ETag (RFC 9110 §13.1.2: weak comparison, a list,
// or *).
func (e *Cached) Serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("ETag", e.etag)
	h.Set("Cache-Control", "no-cache")
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, e.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(e.body)
}

// etagMatch reports whether an If-None-Match value names etag.
func etagMatch(inm, etag string) bool {
	for tag := range strings.SplitSeq(inm, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
			return true
		}
	}
	return false
}
