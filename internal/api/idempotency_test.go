package api_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"blog/internal/api"
)

// idemServer serves POST /things through IdempotencyKeys: each request that
// reaches the handler creates thing number n and answers 201 with it, or the
// status in the body's "status=" prefix. gate, when set, holds the handler
// until it is closed.
func idemServer(t *testing.T, k *api.IdempotencyKeys, gate chan struct{}) (*httptest.Server, *atomic.Int64, chan struct{}) {
	t.Helper()
	var n atomic.Int64
	entered := make(chan struct{}, 10)
	rt := api.NewRouter(slog.New(slog.DiscardHandler))
	rt.HandleFunc("POST /things", k.Middleware().Wrap(func(w http.ResponseWriter, r *http.Request) {
		select {
		case entered <- struct{}{}:
		default: // nobody is watching
		}
		if gate != nil {
			<-gate
		}
		body, _ := io.ReadAll(r.Body)
		status := 201
		if s, ok := strings.CutPrefix(string(body), "status="); ok {
			fmt.Sscan(s, &status)
		}
		id := n.Add(1)
		w.Header().Set("Location", fmt.Sprint("/things/", id))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"id":%d,"body":%q}`, id, body)
	}))
	srv := httptest.NewServer(rt)
	t.Cleanup(srv.Close)
	return srv, &n, entered
}

type answer struct {
	status   int
	body     string
	location string
}

func post(t *testing.T, url, key, body string) answer {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/things", strings.NewReader(body))
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return answer{}
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return answer{res.StatusCode, string(b), res.Header.Get("Location")}
}

func TestIdempotencyKey(t *testing.T) {
	tests := []struct {
		name string
		// two requests in a row: key and body of each
		key1, body1, key2, body2 string
		want2                    int
		// created is how many requests reached the handler
		created int64
		replay  bool
	}{
		{name: "same-key-same-body-replays", key1: `"k1"`, body1: "a", key2: `"k1"`, body2: "a", want2: 201, created: 1, replay: true},
		{name: "bare-token-key-replays", key1: "k1", body1: "a", key2: "k1", body2: "a", want2: 201, created: 1, replay: true},
		{name: "same-key-other-body-422", key1: "k1", body1: "a", key2: "k1", body2: "b", want2: 422, created: 1},
		{name: "other-key-creates", key1: "k1", body1: "a", key2: "k2", body2: "a", want2: 201, created: 2},
		{name: "no-key-creates-twice", body1: "a", body2: "a", want2: 201, created: 2},
		{name: "client-error-replayed", key1: "k1", body1: "status=400", key2: "k1", body2: "status=400", want2: 400, created: 1, replay: true},
		{name: "server-error-not-kept", key1: "k1", body1: "status=500", key2: "k1", body2: "status=500", want2: 500, created: 2},
		{name: "rate-limit-not-kept", key1: "k1", body1: "status=429", key2: "k1", body2: "status=429", want2: 429, created: 2},
		{name: "bad-key-400", key1: "\"\"", body1: "a", key2: strings.Repeat("x", 256), body2: "a", want2: 400, created: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, n, _ := idemServer(t, &api.IdempotencyKeys{}, nil)
			first := post(t, srv.URL, tt.key1, tt.body1)
			second := post(t, srv.URL, tt.key2, tt.body2)
			if second.status != tt.want2 {
				t.Fatalf("second answer %d %s, want %d", second.status, second.body, tt.want2)
			}
			if got := n.Load(); got != tt.created {
				t.Fatalf("handler ran %d times, want %d", got, tt.created)
			}
			if tt.replay && (first != second) {
				t.Fatalf("replay %+v differs from the first answer %+v", second, first)
			}
		})
	}
}

// TestIdempotencyKeyInFlight: a request with the key of one still being
// served gets 409 and does not run; once the first is done, the same
// request replays it.
func TestIdempotencyKeyInFlight(t *testing.T) {
	gate := make(chan struct{})
	srv, n, entered := idemServer(t, &api.IdempotencyKeys{}, gate)
	var wg sync.WaitGroup
	var first answer
	wg.Go(func() { first = post(t, srv.URL, "k", "a") })
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("first request never reached the handler")
	}
	if got := post(t, srv.URL, "k", "a"); got.status != 409 {
		t.Fatalf("concurrent request: %d %s, want 409", got.status, got.body)
	}
	close(gate)
	wg.Wait()
	if again := post(t, srv.URL, "k", "a"); again != first || n.Load() != 1 {
		t.Fatalf("after completion: %+v (first %+v), handler ran %d times", again, first, n.Load())
	}
}

// TestIdempotencyKeyExpires: an answer is replayed for TTL, then the key
// is free again.
func TestIdempotencyKeyExpires(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2024, 11, 5, 14, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	srv, n, _ := idemServer(t, &api.IdempotencyKeys{TTL: time.Hour, Now: clock}, nil)
	post(t, srv.URL, "k", "a")
	mu.Lock()
	now = now.Add(59 * time.Minute)
	mu.Unlock()
	post(t, srv.URL, "k", "a")
	if n.Load() != 1 {
		t.Fatalf("replay within TTL ran the handler: %d", n.Load())
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	post(t, srv.URL, "k", "a")
	if n.Load() != 2 {
		t.Fatalf("after TTL the request should run again: %d", n.Load())
	}
}

// TestIdempotencyKeyBounded: stored answers stay within MaxBytes; the
// oldest key is forgotten first.
func TestIdempotencyKeyBounded(t *testing.T) {
	srv, n, _ := idemServer(t, &api.IdempotencyKeys{MaxBytes: 100}, nil)
	for i := range 10 {
		post(t, srv.URL, fmt.Sprint("k", i), "a")
	}
	post(t, srv.URL, "k9", "a") // newest: kept
	if n.Load() != 10 {
		t.Fatalf("newest key not replayed: handler ran %d times", n.Load())
	}
	post(t, srv.URL, "k0", "a") // oldest: evicted
	if n.Load() != 11 {
		t.Fatalf("oldest key still kept past MaxBytes: handler ran %d times", n.Load())
	}
}
