package metrics_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"blog/internal/changes"
	"blog/internal/metrics"
)

func scrape(t *testing.T, r *metrics.Registry) string {
	t.Helper()
	w := httptest.NewRecorder()
	r.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(w.Body)
	return string(b)
}

func TestHTTPAndConsumerMetrics(t *testing.T) {
	r := metrics.New()
	obs := r.Observer("posts")
	obs("GET /posts/{id}", "GET", 200, 3*time.Millisecond)
	for i := range 50 {
		obs("", "FOO"+strings.Repeat("X", i), 404, time.Millisecond) // hostile methods
	}
	r.Consumer("posts.comments", func() changes.Stats {
		return changes.Stats{Leader: true, Applied: 7, Retries: 2, DeadLetters: 1, Resyncs: 1, Lag: 1500 * time.Millisecond}
	})
	out := scrape(t, r)
	for _, want := range []string{
		`blog_http_requests_total{code="200",method="GET",route="GET /posts/{id}",service="posts"} 1`,
		`blog_http_requests_total{code="404",method="OTHER",route="unmatched",service="posts"} 50`,
		`blog_consumer_events_applied_total{consumer="posts.comments"} 7`,
		`blog_consumer_retries_total{consumer="posts.comments"} 2`,
		`blog_consumer_dead_letters_total{consumer="posts.comments"} 1`,
		`blog_consumer_resyncs_total{consumer="posts.comments"} 1`,
		`blog_consumer_lease_holder{consumer="posts.comments"} 1`,
		`blog_consumer_lag_seconds{consumer="posts.comments"} 1.5`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s", want)
		}
	}
	if strings.Contains(out, "FOOX") {
		t.Error("a client-chosen method became a label value")
	}
}
