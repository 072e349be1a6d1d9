package web

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestSessionIdleTimeout: a sign-in unused for longer than the idle time
// ends even within its absolute lifetime; use renews it, up to that
// lifetime.
func TestSessionIdleTimeout(t *testing.T) {
	s := newSessions("tok", 12*time.Hour, time.Hour, nil, nil)
	t0 := time.Now()
	w := httptest.NewRecorder()
	s.issue(w, httptest.NewRequest("POST", "/login", nil), t0)
	cookie := w.Result().Cookies()[0]
	req := func(c *http.Cookie) *http.Request {
		r := httptest.NewRequest("GET", "/posts/new", nil)
		r.AddCookie(c)
		return r
	}
	tests := []struct {
		name  string
		at    time.Duration
		valid bool
	}{
		{"valid-after-59m-idle", 59 * time.Minute, true},
		{"ended-after-61m-idle", 61 * time.Minute, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.valid(req(cookie), t0.Add(tt.at)); got != tt.valid {
				t.Fatalf("valid %v, want %v", got, tt.valid)
			}
		})
	}
	// Used at 50 min, the session lasts until 50 min + 1 h.
	ss, ok := s.current(req(cookie), t0.Add(50*time.Minute))
	if !ok {
		t.Fatal("session not current at 50 min")
	}
	ss.seen = t0.Add(50 * time.Minute).Unix()
	w = httptest.NewRecorder()
	s.set(w, httptest.NewRequest("GET", "/", nil), ss)
	renewed := w.Result().Cookies()[0]
	if !s.valid(req(renewed), t0.Add(100*time.Minute)) {
		t.Fatal("a renewed session ended before its idle time")
	}
	if s.valid(req(renewed), t0.Add(12*time.Hour+time.Second)) {
		t.Fatal("a session outlived its absolute lifetime")
	}
	// A tampered time fails the signature.
	forged := *renewed
	forged.Value = "x" + forged.Value
	if s.valid(req(&forged), t0) {
		t.Fatal("a tampered cookie was accepted")
	}
}
