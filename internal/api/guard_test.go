package api_test

import (
	"net/http"
	"net/http/httptest"
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
	h := api.RateLimit(60)(okHandler) // a burst of 6, then one a second
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
	if w := status(api.RateLimit(0)(okHandler), "", "10.0.0.1:1"); w.Code != 204 {
		t.Fatalf("rate 0 is off: %d", w.Code)
	}
	skip := api.SkipWithToken("s3cret", api.RateLimit(60))(okHandler)
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

func TestRateLimitPerForwardedClient(t *testing.T) {
	h := api.RateLimit(60)(okHandler) // a burst of 6
	req := func(remote, fwd string) int {
		r := httptest.NewRequest("POST", "/x", nil)
		r.RemoteAddr = remote
		if fwd != "" {
			r.Header.Set("X-Forwarded-For", fwd)
		}
		w := httptest.NewRecorder()
		h(w, r)
		return w.Code
	}
	// Through a front end on this machine, each browser has its own bucket.
	for i := range 6 {
		if c := req("127.0.0.1:5000", "203.0.113.1"); c != 204 {
			t.Fatalf("browser 1, request %d: %d", i, c)
		}
	}
	if c := req("127.0.0.1:5000", "203.0.113.1"); c != 429 {
		t.Fatalf("browser 1 past its burst: %d", c)
	}
	if c := req("127.0.0.1:5000", "198.51.100.7, 203.0.113.2"); c != 204 {
		t.Fatalf("browser 2 (last hop counts): %d", c)
	}
	// A remote peer cannot pick its bucket by sending the header.
	for range 6 {
		req("192.0.2.9:1", "203.0.113.50")
	}
	if c := req("192.0.2.9:1", "203.0.113.51"); c != 429 {
		t.Fatalf("a remote peer escaped its limit by forging X-Forwarded-For: %d", c)
	}
}
