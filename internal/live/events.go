// Package live is the posts service's live updates: a Hub that follows the
// posts feed once per process and fans each post's changes out to its
// subscribers, GET /posts/{id}/events serving them as Server-Sent Events,
// and the cache of encoded posts (Cache) that the same feed keeps fresh.
package live

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"blog/internal/api"
	"blog/internal/changes"
	"blog/internal/jsonenc"
	"blog/internal/post"
)

// Live updates: GET /posts/{id}/events streams a post's changes as
// Server-Sent Events, so an open page shows new, edited and deleted comments
// without reloading.
//
// The design is state-based. The posts feed says which post changed; the hub
// then reads the post and sends its current state (or the difference from the
// previous one). A connection first subscribes and only then gets the current
// state, so nothing committed in between is missed, and each event's id is a
// hash of the state it leaves the client in. A client that reconnects with
// Last-Event-ID gets the current state again unless it already has it: no gap
// and no duplicate, also after this process restarts, since the id names a
// state rather than a position in a feed that a restart forgets.
//
// Frames on the wire:
//
//	id: <version>           event: snapshot   data: {"_id","title","updatedAt","commentCount","comments"}
//	id: <version>           event: delta      data: {"title","updatedAt","commentCount","upserts","deletes"}
//	                        event: gone       data: {"_id"}  (the post was deleted; the stream ends)
//
// A snapshot is the whole state (without the post's content, which can be
// large and which pages render themselves). A delta is one atomic step
// between two states: comments to add or replace by _id, and _ids of
// comments known to be deleted.

// Defaults of the events endpoint and the hub.
const (
	// DefaultSubscriberBuffer is how many frames a subscriber may lag behind
	// before the hub drops it; it reconnects with Last-Event-ID and catches
	// up from a snapshot. It bounds the hub's memory per subscriber.
	DefaultSubscriberBuffer = 32
	// DefaultKeepalive is how often an idle stream sends a comment line, so
	// proxies and browsers do not take it for dead.
	DefaultKeepalive = 15 * time.Second
	// DefaultStreamWriteTimeout bounds one write to a stream: a client that
	// stops reading is disconnected instead of holding a goroutine forever.
	DefaultStreamWriteTimeout = 10 * time.Second
	// retryMillis is the reconnection delay the stream asks browsers to use.
	retryMillis = 1000
)

// ErrHubClosed is returned by Subscribe once the hub has stopped.
var ErrHubClosed = errors.New("post: live updates have stopped")

// errNotReady is returned by Subscribe while the hub has no open stream.
var errNotReady = errors.New("post: live updates are not ready")

// Hub reads the posts feed once per process and fans each change out to the
// subscribers of the changed post. Memory is bounded: one state per watched
// post, and a fixed queue of shared, pre-encoded frames per subscriber.
type Hub struct {
	feed  changes.Feed[post.Post]
	store post.Store
	log   *slog.Logger

	// Buffer is each subscriber's queue length in frames; set before Run.
	Buffer int
	// MinBackoff and MaxBackoff bound the wait before reopening a failed
	// stream; set before Run.
	MinBackoff, MaxBackoff time.Duration

	mu     sync.Mutex
	topics map[string]*topic
	closed bool

	ready     chan struct{} // closed once the first stream is open
	readyOnce sync.Once
	done      chan struct{} // closed when Run returns
	doneOnce  sync.Once

	subscribers atomic.Int64
	dropped     atomic.Int64

	cache *Cache // invalidated by every change followed (cache.go)
}

// NewHub returns a hub over the posts feed and store; Run starts it.
func NewHub(feed changes.Feed[post.Post], store post.Store, log *slog.Logger) *Hub {
	return &Hub{
		feed: feed, store: store, log: log,
		Buffer:     DefaultSubscriberBuffer,
		MinBackoff: 50 * time.Millisecond,
		MaxBackoff: 5 * time.Second,
		topics:     map[string]*topic{},
		ready:      make(chan struct{}),
		done:       make(chan struct{}),
	}
}

// Stats reports the current subscribers and how many were dropped for
// falling behind since the hub started.
func (h *Hub) Stats() (subscribers, dropped int64) {
	return h.subscribers.Load(), h.dropped.Load()
}

// Ready reports whether the hub follows the feed, for readiness probes.
func (h *Hub) Ready(context.Context) error {
	select {
	case <-h.done:
		return ErrHubClosed
	case <-h.ready:
		return nil
	default:
		return errNotReady
	}
}

// Run follows the posts feed from its head until ctx ends, refreshing the
// watched posts it reports. A failed stream is reopened after its last
// position, so no change is skipped; if that position is gone
// (changes.ErrHistoryLost, from Open or from a running stream) it reopens
// at the head and drops every subscriber, which then reconnect and start
// again from a fresh snapshot. When Run
// returns, every subscriber's stream ends.
func (h *Hub) Run(ctx context.Context) error {
	defer h.shutdown()
	var token changes.Token
	backoff := h.MinBackoff
	for ctx.Err() == nil {
		stream, err := h.open(ctx, token)
		if err == nil {
			h.readyOnce.Do(func() { close(h.ready) })
			h.cache.setActive(true)
			var progressed bool
			token, progressed, err = h.follow(ctx, stream, token)
			h.cache.setActive(false)
			_ = stream.Close(context.WithoutCancel(ctx))
			if progressed {
				backoff = h.MinBackoff
			}
			if errors.Is(err, changes.ErrHistoryLost) {
				// The running stream lost its position (a dropped or renamed
				// collection, an invalidate): reopening after token would
				// meet the same loss forever, so start again at the head.
				token = nil
				n := h.dropAll()
				h.log.Warn("posts feed history lost on a running stream; live subscribers dropped to resync", "subscribers", n)
			}
		}
		if ctx.Err() != nil {
			break
		}
		h.log.Warn("posts feed for live updates failed; reopening", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, h.MaxBackoff)
	}
	return nil
}

// open opens the feed after token, or at its head when that position is no
// longer retained; then it forgets every topic, whose states may have missed
// the changes in between.
func (h *Hub) open(ctx context.Context, token changes.Token) (changes.Stream[post.Post], error) {
	stream, err := h.feed.Open(ctx, token)
	if token != nil && errors.Is(err, changes.ErrHistoryLost) {
		if stream, err = h.feed.Open(ctx, nil); err == nil {
			n := h.dropAll()
			h.log.Warn("posts feed history lost; live subscribers dropped to resync", "subscribers", n)
		}
	}
	return stream, err
}

// follow applies the stream's batches until it fails, and returns the
// position after the last batch and whether it got any.
func (h *Hub) follow(ctx context.Context, s changes.Stream[post.Post], token changes.Token) (changes.Token, bool, error) {
	progressed := false
	for {
		b, err := s.Next(ctx)
		if err != nil {
			return token, progressed, err
		}
		progressed = true
		if len(b.Events) > 0 {
			h.cache.invalidate(b.Events)
			h.apply(ctx, b.Events)
		}
		if b.Token != nil {
			token = b.Token
		}
	}
}

// apply refreshes each watched post that the events name, once per batch.
// The events' documents are not used: a post is read again instead, in
// order, one read at a time per post, so every state the hub sends is at
// least as new as the one before, including the snapshot a new subscriber
// got from its own read.
func (h *Hub) apply(ctx context.Context, events []changes.Event[post.Post]) {
	seen := make(map[string]bool, len(events))
	for _, e := range events {
		if seen[e.Key] {
			continue
		}
		seen[e.Key] = true
		h.mu.Lock()
		t := h.topics[e.Key]
		h.mu.Unlock()
		if t == nil {
			continue
		}
		if err := h.refresh(ctx, t, true); err != nil && ctx.Err() == nil {
			// The change cannot be shown; rather than leave subscribers
			// with a stale state, end their streams: they reconnect and
			// read the post afresh.
			h.log.Error("read post for live update; dropping its subscribers", "post", t.id, "err", err)
			h.drop(t)
		}
	}
}

// refresh reads the post and publishes its state. Reads of one topic are
// serialised, so states are published in the order they were read. Unless
// force is set, it reads nothing when the topic already has a state (it was
// published after the caller subscribed, which is all the caller needs).
func (h *Hub) refresh(ctx context.Context, t *topic, force bool) error {
	t.load.Lock()
	defer t.load.Unlock()
	if !force {
		t.mu.Lock()
		loaded := t.state != nil || t.gone
		t.mu.Unlock()
		if loaded {
			return nil
		}
	}
	p, err := h.store.Get(ctx, t.id)
	if errors.Is(err, post.ErrNotFound) {
		h.gone(t)
		return nil
	}
	if err != nil {
		return err
	}
	st, err := newLiveState(p)
	if err != nil {
		return err
	}
	if n := t.publish(st); n > 0 {
		h.dropped.Add(int64(n))
		h.subscribers.Add(-int64(n))
		h.log.Info("live subscribers fell behind and were dropped", "post", t.id, "count", n)
		h.collect(t)
	}
	return nil
}

// Subscription is one client's view of one post: a queue of SSE frames,
// closed when the client is dropped, the post is deleted or the hub stops.
type Subscription struct {
	hub    *Hub
	topic  *topic
	ch     chan []byte
	lastID string
	primed bool // has been sent (or skipped, as already known) a snapshot
	closed bool // guarded by topic.mu
}

// Frames returns the subscription's queue. Each frame is a complete SSE
// event, shared with other subscribers: do not modify it.
func (s *Subscription) Frames() <-chan []byte { return s.ch }

// Close ends the subscription; it may be called more than once.
func (s *Subscription) Close() {
	h, t := s.hub, s.topic
	h.mu.Lock()
	t.mu.Lock()
	if !s.closed {
		t.remove(s)
		h.subscribers.Add(-1)
	}
	if len(t.subs) == 0 && h.topics[t.id] == t {
		delete(h.topics, t.id)
	}
	t.mu.Unlock()
	h.mu.Unlock()
}

// Subscribe registers a subscriber to post id and makes sure it gets the
// post's current state as its first frame, unless that state's version is
// lastID (the client has it already). It returns ErrNotFound when there is
// no such post, and waits (within ctx) for the hub's first stream to open.
func (h *Hub) Subscribe(ctx context.Context, id, lastID string) (*Subscription, error) {
	select {
	case <-h.ready:
	case <-h.done:
		return nil, ErrHubClosed
	case <-ctx.Done():
		return nil, errNotReady
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrHubClosed
	}
	t := h.topics[id]
	if t == nil {
		t = &topic{id: id, subs: map[*Subscription]struct{}{}}
		h.topics[id] = t
	}
	s := &Subscription{hub: h, topic: t, ch: make(chan []byte, max(2, h.Buffer)), lastID: lastID}
	t.mu.Lock()
	t.subs[s] = struct{}{}
	h.subscribers.Add(1)
	if t.state != nil {
		t.prime(s)
	}
	primed := s.primed
	t.mu.Unlock()
	h.mu.Unlock()

	if !primed {
		// The topic is new: read the post. The read starts after the
		// subscription exists, and the hub has been following the feed since
		// before, so any later change reaches the subscriber as a delta.
		if err := h.refresh(ctx, t, false); err != nil {
			s.Close()
			return nil, err
		}
		t.mu.Lock()
		primed, gone := s.primed, t.gone
		t.mu.Unlock()
		if !primed {
			s.Close()
			if gone {
				return nil, post.ErrNotFound
			}
			return nil, errNotReady // dropped meanwhile by a failed read
		}
	}
	return s, nil
}

// gone tells a deleted post's subscribers and forgets the topic.
func (h *Hub) gone(t *topic) {
	frame := goneFrame(t.id)
	h.mu.Lock()
	if h.topics[t.id] == t {
		delete(h.topics, t.id)
	}
	t.mu.Lock()
	t.gone = true
	for s := range t.subs {
		if s.primed {
			select {
			case s.ch <- frame:
			default:
			}
		}
		t.remove(s)
		h.subscribers.Add(-1)
	}
	t.mu.Unlock()
	h.mu.Unlock()
}

// drop ends every stream of a topic and forgets it, so its next
// subscribers start from a fresh read.
func (h *Hub) drop(t *topic) {
	h.mu.Lock()
	if h.topics[t.id] == t {
		delete(h.topics, t.id)
	}
	t.mu.Lock()
	for s := range t.subs {
		t.remove(s)
		h.subscribers.Add(-1)
	}
	t.mu.Unlock()
	h.mu.Unlock()
}

// dropAll drops every topic and returns how many subscribers it ended.
func (h *Hub) dropAll() int {
	h.mu.Lock()
	old := h.topics
	h.topics = map[string]*topic{}
	h.mu.Unlock()
	n := 0
	for _, t := range old {
		t.mu.Lock()
		for s := range t.subs {
			t.remove(s)
			h.subscribers.Add(-1)
			n++
		}
		t.mu.Unlock()
	}
	return n
}

// collect forgets a topic whose last subscriber was dropped.
func (h *Hub) collect(t *topic) {
	h.mu.Lock()
	t.mu.Lock()
	if len(t.subs) == 0 && h.topics[t.id] == t {
		delete(h.topics, t.id)
	}
	t.mu.Unlock()
	h.mu.Unlock()
}

// shutdown ends every stream and refuses new subscribers.
func (h *Hub) shutdown() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.dropAll()
	h.doneOnce.Do(func() { close(h.done) })
}

// topic is one watched post: its subscribers and the last state sent to
// them. Lock order: Hub.mu, then topic.mu. topic.load is taken alone.
type topic struct {
	id   string
	load sync.Mutex // serialises reads of the post

	mu    sync.Mutex
	state *liveState // last published; nil before the first read
	gone  bool
	subs  map[*Subscription]struct{}
}

// remove closes s's queue and unregisters it; t.mu must be held.
func (t *topic) remove(s *Subscription) {
	if s.closed {
		return
	}
	s.closed = true
	delete(t.subs, s)
	close(s.ch)
}

// prime queues the current snapshot for a new subscriber, unless it is the
// state the client says it has; t.mu must be held and t.state set.
func (t *topic) prime(s *Subscription) {
	s.primed = true
	if s.lastID != t.state.version {
		s.ch <- t.state.frame // a new queue has room
	}
}

// publish makes st the topic's state and queues it for every subscriber:
// as a delta for those that have the previous state, as a snapshot for
// those that have none. A subscriber whose queue is full is dropped; publish
// returns how many were.
func (t *topic) publish(st *liveState) (dropped int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gone || (t.state != nil && t.state.version == st.version) {
		return 0
	}
	var delta []byte
	if t.state != nil {
		delta = deltaFrame(t.state, st)
	}
	prev := t.state
	t.state = st
	for s := range t.subs {
		if !s.primed || prev == nil {
			t.prime(s) // cannot block: an unprimed queue is empty
			continue
		}
		select {
		case s.ch <- delta:
		default:
			t.remove(s)
			dropped++
		}
	}
	return dropped
}

// liveState is what a subscriber sees of a post: everything a page updates
// live. The content is left out: it can be 100 KB, and updatedAt tells a
// page that it changed.
type liveState struct {
	ID           string         `json:"_id"`
	Title        string         `json:"title"`
	UpdatedAt    *jsonenc.Time  `json:"updatedAt,omitempty"`
	CommentCount int            `json:"commentCount"`
	Comments     []post.Comment `json:"comments"`

	version string // a hash of the JSON above
	frame   []byte // the snapshot frame, encoded once for every subscriber
}

func newLiveState(p post.Post) (*liveState, error) {
	st := &liveState{ID: p.ID, Title: p.Title, UpdatedAt: (*jsonenc.Time)(p.UpdatedAt), CommentCount: p.CommentCount, Comments: p.Comments}
	if st.Comments == nil {
		st.Comments = []post.Comment{}
	}
	b, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("encode live state: %w", err)
	}
	sum := sha256.Sum256(b)
	st.version = hex.EncodeToString(sum[:8])
	st.frame = frame(st.version, "snapshot", b)
	return st, nil
}

// delta is one step from a state to the next.
type delta struct {
	Title        string         `json:"title"`
	UpdatedAt    *jsonenc.Time  `json:"updatedAt,omitempty"`
	CommentCount int            `json:"commentCount"`
	Upserts      []post.Comment `json:"upserts"`
	Deletes      []string       `json:"deletes"`
}

// diff returns the step from o to n. An embedded comment missing from n
// was deleted when n holds every comment of the post, or when it is newer
// than n's oldest (n holds the latest comments). Otherwise it only left the
// bounded window of embedded comments, which is no news.
func diff(o, n *liveState) delta {
	d := delta{Title: n.Title, UpdatedAt: n.UpdatedAt, CommentCount: n.CommentCount, Upserts: []post.Comment{}, Deletes: []string{}}
	old := make(map[string]post.Comment, len(o.Comments))
	for _, c := range o.Comments {
		old[c.ID] = c
	}
	kept := make(map[string]bool, len(n.Comments))
	var oldest *post.Comment
	for i, c := range n.Comments {
		kept[c.ID] = true
		if oldest == nil || post.Less(c, *oldest) {
			oldest = &n.Comments[i]
		}
		if prev, ok := old[c.ID]; !ok || !sameComment(prev, c) {
			d.Upserts = append(d.Upserts, c)
		}
	}
	complete := n.CommentCount <= len(n.Comments)
	for _, c := range o.Comments {
		if !kept[c.ID] && (complete || (oldest != nil && post.Less(*oldest, c))) {
			d.Deletes = append(d.Deletes, c.ID)
		}
	}
	return d
}

func sameComment(a, b post.Comment) bool {
	return a.Text == b.Text && a.CreatedAt.Equal(b.CreatedAt) &&
		(a.UpdatedAt == nil) == (b.UpdatedAt == nil) &&
		(a.UpdatedAt == nil || a.UpdatedAt.Equal(*b.UpdatedAt))
}

func deltaFrame(o, n *liveState) []byte {
	b, _ := json.Marshal(diff(o, n)) // plain data: cannot fail
	return frame(n.version, "delta", b)
}

func goneFrame(id string) []byte {
	b, _ := json.Marshal(map[string]string{"_id": id})
	return frame("", "gone", b)
}

// frame encodes one SSE event. JSON has no raw newlines, so data fits on
// one line.
func frame(id, event string, data []byte) []byte {
	var buf bytes.Buffer
	if id != "" {
		buf.WriteString("id: " + id + "\n")
	}
	buf.WriteString("event: " + event + "\ndata: ")
	buf.Write(data)
	buf.WriteString("\n\n")
	return buf.Bytes()
}

// Events serves GET /posts/{id}/events from a Hub.
type Events struct {
	Hub *Hub
	Log *slog.Logger
	// Keepalive is the interval of comment lines on an idle stream; zero
	// means DefaultKeepalive.
	Keepalive time.Duration
	// WriteTimeout bounds each write to a client; zero means
	// DefaultStreamWriteTimeout.
	WriteTimeout time.Duration
	// Gate caps the streams open at once (in all and per client) and their
	// lifetime; nil means no caps.
	Gate *api.StreamGate
}

// Register adds the events route to rt.
func (e *Events) Register(rt *api.Router) {
	rt.HandleFunc("GET /posts/{id}/events", e.serve)
}

// serve is GET /posts/{id}/events: it subscribes to the post (waiting
// up to 5 s for the hub after a restart) and streams its frames.
func (e *Events) serve(w http.ResponseWriter, r *http.Request) {
	id, err := api.PathID(r, "id")
	if err != nil {
		api.WriteError(w, r, e.Log, err)
		return
	}
	release, ok := e.Gate.Acquire(w, r)
	if !ok {
		return
	}
	defer release()
	// Wait a little for the hub after a restart rather than fail at once:
	// browsers give up on an error status, but not on a slow answer.
	subCtx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	sub, err := e.Hub.Subscribe(subCtx, id, r.Header.Get("Last-Event-ID"))
	cancel()
	switch {
	case errors.Is(err, errNotReady), errors.Is(err, ErrHubClosed):
		w.Header().Set("Retry-After", "1")
		api.WriteProblem(w, r, api.NewProblem(http.StatusServiceUnavailable, "Live updates are not available right now; retry shortly."))
		return
	case err != nil:
		api.WriteError(w, r, e.Log, err)
		return
	}
	defer sub.Close()
	e.stream(w, r, sub)
}

// stream sends sub's frames as an event stream until the subscription
// ends, the client goes, a write fails or the stream's lifetime passes.
func (e *Events) stream(w http.ResponseWriter, r *http.Request, sub *Subscription) {
	sw := &sseWriter{w: w, rc: http.NewResponseController(w), timeout: orDefault(e.WriteTimeout, DefaultStreamWriteTimeout)}
	// The server's WriteTimeout would cut the stream; each write gets its
	// own deadline instead (see sseWriter).
	_ = sw.rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	if !sw.write(fmt.Appendf(nil, "retry: %d\n\n", retryMillis)) || !sw.flush() {
		return
	}
	// At its lifetime the stream ends; the client reconnects with
	// Last-Event-ID and gets what changed meanwhile.
	var lifetime <-chan time.Time
	if d := e.Gate.Lifetime(); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		lifetime = t.C
	}
	keepalive := time.NewTicker(orDefault(e.Keepalive, DefaultKeepalive))
	defer keepalive.Stop()
	frames := sub.Frames()
	for {
		select {
		case f, ok := <-frames:
			if !ok || !sw.write(f) || !sw.writeQueued(frames) || !sw.flush() {
				return // dropped, post deleted or hub stopped (the client reconnects), or the client is gone
			}
		case <-keepalive.C:
			if !sw.write([]byte(": keepalive\n\n")) || !sw.flush() {
				return
			}
		case <-r.Context().Done():
			return
		case <-lifetime:
			return
		}
	}
}

// sseWriter writes an event stream, each write and flush within its own
// deadline, so a client that stops reading is disconnected.
type sseWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

// write writes b and reports whether it could.
func (s *sseWriter) write(b []byte) bool {
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	_, err := s.w.Write(b)
	return err == nil
}

// flush sends what was written and reports whether it could.
func (s *sseWriter) flush() bool {
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	return s.rc.Flush() == nil
}

// writeQueued writes the frames already queued, so one flush sends them
// all. It reports false when a write failed or the subscription ended
// (after flushing what was written).
func (s *sseWriter) writeQueued(frames <-chan []byte) bool {
	for {
		select {
		case f, ok := <-frames:
			if !ok {
				s.flush()
				return false
			}
			if !s.write(f) {
				return false
			}
		default:
			return true
		}
	}
}

// orDefault returns d, or def when d is not positive.
func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
