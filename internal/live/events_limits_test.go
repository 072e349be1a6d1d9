package live_test

import (
	"testing"
	"time"

	"blog/internal/api"
)

// TestEventsStreamCaps is finding 1's attack on the posts service itself:
// streams past the per-client cap get 429, past the process cap 503, both
// with Retry-After, while /livez keeps answering; a stream ends after its
// lifetime and its client, reconnecting with Last-Event-ID, misses nothing.
func TestEventsStreamCaps(t *testing.T) {
	t.Run("caps", func(t *testing.T) {
		l := newLive(t, liveOptions{gate: api.NewStreamGate(api.StreamLimits{Max: 3, PerClient: 2}, nil)})
		p := l.createPost(t, "capped")
		for i := range 2 {
			if s, res := open(t, l.posts.URL, p.ID, ""); s == nil {
				t.Fatalf("stream %d: %d", i, res.StatusCode)
			}
		}
		_, res := open(t, l.posts.URL, p.ID, "")
		if res.StatusCode != 429 || res.Header.Get("Retry-After") == "" {
			t.Fatalf("third stream of one client: %d, want 429 with Retry-After", res.StatusCode)
		}
		res.Body.Close()
	})
	t.Run("process-cap-503", func(t *testing.T) {
		l := newLive(t, liveOptions{gate: api.NewStreamGate(api.StreamLimits{Max: 2, PerClient: -1}, nil)})
		p := l.createPost(t, "capped")
		for range 2 {
			if s, res := open(t, l.posts.URL, p.ID, ""); s == nil {
				t.Fatalf("stream: %d", res.StatusCode)
			}
		}
		_, res := open(t, l.posts.URL, p.ID, "")
		if res.StatusCode != 503 || res.Header.Get("Retry-After") == "" {
			t.Fatalf("stream past the cap: %d, want 503 with Retry-After", res.StatusCode)
		}
		res.Body.Close()
		l.call(t, l.posts, "GET", "/posts/"+p.ID, "", 200, nil)
	})
	t.Run("lifetime-then-resume", func(t *testing.T) {
		l := newLive(t, liveOptions{gate: api.NewStreamGate(api.StreamLimits{Lifetime: time.Second}, nil)})
		p := l.createPost(t, "brief")
		s, _ := open(t, l.posts.URL, p.ID, "")
		first := s.next(t)
		s.ended(t)
		l.comment(t, p.ID, "missed?")
		s2, _ := open(t, l.posts.URL, p.ID, first.id)
		deadline := time.Now().Add(5 * time.Second)
		for {
			e := s2.next(t)
			if e.name == "delta" || e.name == "snapshot" {
				var d delta
				e.decode(t, &d)
				if d.CommentCount == 1 {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatal("the comment made between two streams never arrived")
			}
		}
	})
}
