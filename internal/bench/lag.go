package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Propagation lag: comments are created at a steady pace, round-robin over a
// few posts, and for each one the bench measures how long after its 201 it
// is visible where readers look:
//
//   - in GET /posts/{id}: for the comments on the first pollPosts posts, a
//     poller per post reads it every pollEvery while a comment of it is not
//     yet embedded; the lag ends when the response that shows the comment
//     arrives, so it includes that read (an upper bound, by one GET's
//     latency plus up to pollEvery). Polling a sample of the posts keeps the
//     measurement's own load small and bounded (at most pollPosts reads in
//     flight): polling them all turned the pollers into a heavier load than
//     the one measured once the lag grew, and the lag with it;
//   - on GET /posts/{id}/events (Server-Sent Events), when the services serve
//     it: one subscriber per post, subscribed before the load starts, notes
//     when each comment id first arrives in a frame.
//
// A comment seen before its own 201 reached the bench counts as lag zero.

const (
	// pollEvery is the pause between a poller's reads of a post.
	pollEvery = time.Millisecond
	// pollPosts is how many of the posts are polled with GET.
	pollPosts = 4
	// visibleWithin bounds the wait for one comment to become visible;
	// beyond it the comment counts as missed.
	visibleWithin = 10 * time.Second
)

// lagResult is the outcome of the propagation scenario.
type lagResult struct {
	create   Stat // the paced creates themselves
	get, sse Lag
}

// created is one comment the scenario created: its post, its id, and when
// its 201 arrived.
type created struct {
	post, id string
	at       time.Time
}

// propagation creates comments at rate per second for d, spread over posts,
// and measures when they become visible.
func propagation(ctx context.Context, ds *dataset, posts []string, rate, workers int, d time.Duration) lagResult {
	var res lagResult
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()

	sctx, stopSSE := context.WithCancel(ctx)
	defer stopSSE()
	sub, skipped := subscribe(sctx, ds.postsURL, posts)

	var (
		mu   sync.Mutex
		made []created
	)
	pollers := newPollers(ctx, client, ds.postsURL, posts[:min(pollPosts, len(posts))])
	next := roundRobin(len(posts))
	h := ds.header()
	tr := func(t *vegeta.Target) error {
		t.Method, t.URL, t.Header = http.MethodPost, ds.commentsURL+"/comments", h
		t.Body = commentBody(posts[next()])
		return nil
	}
	each := func(r *vegeta.Result) {
		if r.Code != http.StatusCreated {
			return
		}
		var c struct {
			ID     string `json:"_id"`
			PostID string `json:"postId"`
		}
		if json.Unmarshal(r.Body, &c) != nil || c.ID == "" {
			return
		}
		cr := created{post: c.PostID, id: c.ID, at: r.End()}
		mu.Lock()
		made = append(made, cr)
		mu.Unlock()
		pollers.watch(cr)
	}
	res.create = attack(ctx, "paced comments", tr, rate, workers, d, true, each)
	getLags, missed := pollers.wait()
	res.get = newLag("GET /posts/{id}", getLags, missed)

	if sub == nil {
		res.sse = Lag{Via: "SSE /posts/{id}/events", Skipped: skipped}
		return res
	}
	// Give the last events a moment to arrive, then read the arrivals.
	deadline := time.Now().Add(visibleWithin)
	for !sub.sawAll(made) && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	stopSSE()
	var sseLags []time.Duration
	sseMissed := 0
	for _, c := range made {
		at, ok := sub.seen(c.id)
		if !ok {
			sseMissed++
			continue
		}
		sseLags = append(sseLags, max(0, at.Sub(c.at)))
	}
	res.sse = newLag("SSE /posts/{id}/events", sseLags, sseMissed)
	if sub.reconnects.Load() > 0 {
		res.sse.Note = fmt.Sprintf("%d stream reconnects", sub.reconnects.Load())
	}
	return res
}

// pollers watch posts for the comments created on them: one goroutine per
// post reads it, pollEvery apart, while any of its comments is not yet
// visible. One reader per post bounds the load the measurement itself adds
// (at most one read per post in flight), however far the sync falls behind:
// a poller per comment would pile reads onto a slow system until it
// collapsed under its own measurement.
type pollers struct {
	mu      sync.Mutex
	pending map[string][]created // by post
	wake    map[string]chan struct{}
	lags    []time.Duration
	missed  int
	wg      sync.WaitGroup
	stop    context.CancelFunc
	done    chan struct{}
}

func newPollers(ctx context.Context, c *http.Client, postsURL string, posts []string) *pollers {
	ctx, cancel := context.WithCancel(ctx)
	p := &pollers{pending: map[string][]created{}, wake: map[string]chan struct{}{}, stop: cancel, done: make(chan struct{})}
	for _, id := range posts {
		wake := make(chan struct{}, 1)
		p.wake[id] = wake
		p.wg.Go(func() { p.poll(ctx, c, postsURL+"/posts/"+id, id, wake) })
	}
	return p
}

// watch starts looking for cr, if its post is polled.
func (p *pollers) watch(cr created) {
	wake := p.wake[cr.post] // written only by newPollers
	if wake == nil {
		return
	}
	p.mu.Lock()
	p.pending[cr.post] = append(p.pending[cr.post], cr)
	p.mu.Unlock()
	select {
	case wake <- struct{}{}:
	default:
	}
}

// wait lets the pollers finish what is pending (each comment for at most
// visibleWithin after its 201), stops them, and returns the lags and how
// many comments never showed.
func (p *pollers) wait() ([]time.Duration, int) {
	close(p.done)
	p.wg.Wait()
	p.stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lags, p.missed
}

// poll reads one post while comments are pending on it, settling each as it
// shows up (lag: until the showing response arrived) or as its wait runs out.
func (p *pollers) poll(ctx context.Context, c *http.Client, url, post string, wake <-chan struct{}) {
	for {
		p.mu.Lock()
		n := len(p.pending[post])
		p.mu.Unlock()
		if n == 0 {
			select {
			case <-wake:
				continue
			case <-p.done:
				return
			case <-ctx.Done():
				return
			}
		}
		body, _, err := fetch(ctx, c, url)
		now := time.Now()
		p.mu.Lock()
		left := p.pending[post][:0]
		for _, cr := range p.pending[post] {
			switch {
			case err == nil && bytes.Contains(body, []byte(`"`+cr.id+`"`)):
				p.lags = append(p.lags, max(0, now.Sub(cr.at)))
			case now.Sub(cr.at) > visibleWithin || ctx.Err() != nil:
				p.missed++
			default:
				left = append(left, cr)
			}
		}
		p.pending[post] = left
		p.mu.Unlock()
		if len(left) > 0 {
			time.Sleep(pollEvery)
		}
	}
}

// sse holds the subscribers of the posts' event streams and when each
// comment id first arrived on any of them.
type sse struct {
	mu         sync.Mutex
	first      map[string]time.Time
	reconnects atomic.Int64
}

func (s *sse) note(ids [][]byte, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if _, ok := s.first[string(id)]; !ok {
			s.first[string(id)] = at
		}
	}
}

func (s *sse) seen(id string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.first[id]
	return t, ok
}

func (s *sse) sawAll(cs []created) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range cs {
		if _, ok := s.first[c.id]; !ok {
			return false
		}
	}
	return true
}

// idInFrame finds the comment ids of a frame's data: every _id but the
// post's own, which a snapshot also carries (it is filtered out by never
// being a created comment's id).
var idInFrame = regexp.MustCompile(`"_id":"([0-9a-f]{24})"`)

// subscribe opens the event stream of each post and returns once every
// stream has delivered its first frame. It returns nil and why when the
// services have no such route (a 404 for a post that exists) or a stream
// does not start.
func subscribe(ctx context.Context, postsURL string, posts []string) (*sse, string) {
	s := &sse{first: map[string]time.Time{}}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: len(posts)}}
	started := make(chan error, len(posts))
	for _, p := range posts {
		go s.follow(ctx, client, postsURL+"/posts/"+p+"/events", started)
	}
	timeout := time.After(10 * time.Second)
	for range posts {
		select {
		case err := <-started:
			if err != nil {
				return nil, err.Error()
			}
		case <-timeout:
			return nil, "the event streams did not start within 10s"
		case <-ctx.Done():
			return nil, ctx.Err().Error()
		}
	}
	return s, ""
}

// follow reads one post's stream, reconnecting with Last-Event-ID when the
// server ends it (as a browser would), until ctx ends. It reports on
// started once: nil after the first frame, or why it could not start.
func (s *sse) follow(ctx context.Context, c *http.Client, url string, started chan<- error) {
	// started has room for every stream's one report.
	report := func(err error) { started <- err }
	first, lastID := true, ""
	for ctx.Err() == nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			report(err)
			return
		}
		req.Header.Set("Accept", "text/event-stream")
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		res, err := c.Do(req)
		if err != nil {
			if first {
				report(fmt.Errorf("event stream: %w", err))
				return
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if res.StatusCode != http.StatusOK {
			msg, _ := io.ReadAll(io.LimitReader(res.Body, 512))
			res.Body.Close()
			if first {
				if res.StatusCode == http.StatusNotFound || res.StatusCode == http.StatusMethodNotAllowed {
					report(fmt.Errorf("the services have no event stream (GET /posts/{id}/events: %s)", res.Status))
				} else {
					report(fmt.Errorf("event stream: %s: %s", res.Status, bytes.TrimSpace(msg)))
				}
				return
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if !first {
			s.reconnects.Add(1)
		}
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			line := sc.Bytes()
			switch {
			case bytes.HasPrefix(line, []byte("id:")):
				lastID = strings.TrimSpace(string(line[3:]))
			case bytes.HasPrefix(line, []byte("data:")):
				at := time.Now()
				var ids [][]byte
				for _, m := range idInFrame.FindAllSubmatch(line, -1) {
					ids = append(ids, m[1])
				}
				s.note(ids, at)
				if first {
					first = false
					report(nil)
				}
			}
		}
		res.Body.Close()
	}
}
