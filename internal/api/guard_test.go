package api_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strconv"
	"testing"

	"blog/internal/api"
)

func okHandler(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }

func status(h http.HandlerFunc, auth, remote string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", "/x", nil)
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	if remote != "" {
		r.RemoteAddr = remote
	}
	w := httptest.NewRecorder()
	h(w, r)
	return w
}

func TestRequireToken(t *testing.T) {
	h := api.RequireToken("s3cret")(okHandler)
	tests := []struct {
		name, auth string
		want       int
	}{
		{"write-401-no-header", "", 401},
		{"write-401-wrong-token", "Bearer nope", 401},
		{"write-401-prefix-of-token", "Bearer s3cre", 401},
		{"write-401-basic-scheme", "Basic s3cret", 401},
		{"write-204-right-token", "Bearer s3cret", 204},
		{"write-204-scheme-lower-case", "bearer s3cret", 204},
		{"write-204-scheme-upper-case", "BEARER s3cret", 204},
		{"write-204-spaces-after-scheme", "Bearer   s3cret", 204},
		{"write-401-scheme-only", "Bearer", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := status(h, tt.auth, "")
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d", w.Code, tt.want)
			}
			if tt.want == 401 && (w.Header().Get("Content-Type") != "application/problem+json" || w.Header().Get("WWW-Authenticate") == "") {
				t.Fatalf("401 without problem body or WWW-Authenticate: %v", w.Header())
			}
		})
	}
	if w := status(api.RequireToken("")(okHandler), "", ""); w.Code != 204 {
		t.Fatalf("no token configured: status %d, want everything to pass", w.Code)
	}
}

func TestRateLimit(t *testing.T) {
	h := api.RateLimit(60, nil)(okHandler) // a burst of 6, then one a second
	for i := range 6 {
		if w := status(h, "", "10.0.0.1:1234"); w.Code != 204 {
			t.Fatalf("request %d within the burst: %d", i, w.Code)
		}
	}
	w := status(h, "", "10.0.0.1:5678")
	if w.Code != 429 {
		t.Fatalf("request past the burst: %d, want 429", w.Code)
	}
	if s, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || s < 1 {
		t.Fatalf("Retry-After %q", w.Header().Get("Retry-After"))
	}
	if w := status(h, "", "10.0.0.2:1"); w.Code != 204 {
		t.Fatalf("another address is limited separately: %d", w.Code)
	}
	if w := status(api.RateLimit(0, nil)(okHandler), "", "10.0.0.1:1"); w.Code != 204 {
		t.Fatalf("rate 0 is off: %d", w.Code)
	}
	skip := api.SkipWithToken("s3cret", api.RateLimit(60, nil))(okHandler)
	for range 10 {
		if w := status(skip, "Bearer s3cret", "10.0.0.3:1"); w.Code != 204 {
			t.Fatalf("a token-bearing caller is not limited: %d", w.Code)
		}
	}
	for range 6 {
		status(skip, "", "10.0.0.3:1")
	}
	if w := status(skip, "", "10.0.0.3:1"); w.Code != 429 {
		t.Fatalf("without the token the limit applies: %d", w.Code)
	}
}

func forwarded(h http.HandlerFunc, remote, fwd string) int {
	r := httptest.NewRequest("POST", "/x", nil)
	r.RemoteAddr = remote
	if fwd != "" {
		r.Header.Set("X-Forwarded-For", fwd)
	}
	w := httptest.NewRecorder()
	h(w, r)
	return w.Code
}

func TestRateLimitForgedForwardedFor(t *testing.T) {
	// Finding 3: a client on loopback chose its bucket by sending
	// X-Forwarded-For. With no trusted proxy configured (the default), a
	// forged header never earns a fresh bucket, from any peer.
	h := api.RateLimit(60, nil)(okHandler) // a burst of 6
	for _, peer := range []string{"127.0.0.1:5000", "192.0.2.9:1"} {
		for i := range 6 {
			if c := forwarded(h, peer, fmt.Sprintf("203.0.113.%d", i)); c != 204 {
				t.Fatalf("%s request %d within the burst: %d", peer, i, c)
			}
		}
		for i := range 50 {
			if c := forwarded(h, peer, fmt.Sprintf("198.51.100.%d", i)); c != 429 {
				t.Fatalf("%s escaped its limit with a forged X-Forwarded-For (request %d): %d", peer, i, c)
			}
		}
	}
}

func TestRateLimitTrustedProxy(t *testing.T) {
	proxies, err := api.ParseProxies("10.0.0.0/8, 192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	h := api.RateLimit(60, proxies)(okHandler)
	// Through a trusted proxy each client has its own bucket; the right-most
	// address that is not a trusted proxy is the client.
	for i := range 6 {
		if c := forwarded(h, "10.1.2.3:5000", "6.6.6.6, 203.0.113.1, 10.9.9.9"); c != 204 {
			t.Fatalf("client 1, request %d: %d", i, c)
		}
	}
	if c := forwarded(h, "192.0.2.1:5000", "1.1.1.1, 203.0.113.1"); c != 429 {
		t.Fatalf("client 1 through another trusted proxy, with a forged left entry: %d, want 429", c)
	}
	if c := forwarded(h, "10.1.2.3:5000", "203.0.113.2"); c != 204 {
		t.Fatalf("client 2: %d", c)
	}
	keyed := proxies.WithKey("k3y")
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "127.0.0.1:1"
	r.Header.Set("X-Forwarded-For", "203.0.113.9")
	if got := keyed.ClientIP(r); got != "127.0.0.1" {
		t.Fatalf("loopback peer without the key: client %s, want the peer", got)
	}
	r.Header.Set(api.ProxyKeyHeader, "k3y")
	if got := keyed.ClientIP(r); got != "203.0.113.9" {
		t.Fatalf("peer with the proxy key: client %s, want the forwarded address", got)
	}
	r.Header.Set(api.ProxyKeyHeader, "wrong")
	if got := keyed.ClientIP(r); got != "127.0.0.1" {
		t.Fatalf("peer with a wrong key: client %s, want the peer", got)
	}
	if _, err := api.ParseProxies("10.0.0.0/8, nonsense"); err == nil {
		t.Fatal("a bad trusted proxy entry was accepted")
	}
}

func TestRateLimitIPv6By64(t *testing.T) {
	h := api.RateLimit(60, nil)(okHandler)
	for i := range 6 {
		if c := forwarded(h, fmt.Sprintf("[2001:db8:1:2::%x]:1", i+1), ""); c != 204 {
			t.Fatalf("request %d: %d", i, c)
		}
	}
	if c := forwarded(h, "[2001:db8:1:2:ffff::1]:1", ""); c != 429 {
		t.Fatalf("another address in the same /64 got a fresh bucket: %d", c)
	}
	if c := forwarded(h, "[2001:db8:1:3::1]:1", ""); c != 204 {
		t.Fatalf("another /64 is limited apart: %d", c)
	}
}

func TestRateLimitBucketsBounded(t *testing.T) {
	// 300,000 distinct addresses through a limiter capped at 1,000 buckets:
	// the oldest are forgotten, so memory stays flat, and a recent client
	// keeps its (empty) bucket.
	check := api.Limit{PerMinute: 60, Burst: 1, MaxBuckets: 1000}.Check()
	req := httptest.NewRequest("POST", "/x", nil)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range 300_000 {
		req.RemoteAddr = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String() + ":1"
		check(req)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 8<<20 {
		t.Fatalf("heap grew %d bytes over 300,000 addresses with 1,000 buckets", grew)
	}
	if _, ok := check(req); ok {
		t.Fatal("the most recent address lost its bucket")
	}
}

func TestGlobal(t *testing.T) {
	g := api.Global(60) // a burst of 6 across everyone
	for i := range 6 {
		if _, ok := g(); !ok {
			t.Fatalf("attempt %d within the burst refused", i)
		}
	}
	if wait, ok := g(); ok || wait <= 0 {
		t.Fatalf("attempt past the global burst: ok=%v wait=%v", ok, wait)
	}
	if api.Global(0) != nil {
		t.Fatal("Global(0) should be no ceiling")
	}
}

func TestHTTPS(t *testing.T) {
	proxies, _ := api.ParseProxies("10.0.0.1")
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Forwarded-Proto", "https")
	r.RemoteAddr = "10.0.0.1:1"
	if !proxies.HTTPS(r) {
		t.Fatal("X-Forwarded-Proto: https from a trusted proxy")
	}
	r.RemoteAddr = "10.0.0.2:1"
	if proxies.HTTPS(r) {
		t.Fatal("X-Forwarded-Proto from an untrusted peer was believed")
	}
}
