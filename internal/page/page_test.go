package page_test

import (
	"testing"
	"time"

	"blog/internal/page"
)

func TestCursorRoundTrip(t *testing.T) {
	c := page.Cursor{At: time.UnixMilli(1732390000123).UTC(), ID: "672a2b5ab2c87aa17bd7b49b"}
	got, err := page.Decode(c.Encode())
	if err != nil || !got.At.Equal(c.At) || got.ID != c.ID {
		t.Fatalf("round trip: got %+v, %v; want %+v", got, err, c)
	}
}

func TestParse(t *testing.T) {
	good := page.Cursor{At: time.UnixMilli(5), ID: "672a2b5ab2c87aa17bd7b49b"}.Encode()
	tests := []struct {
		name, limit, after string
		wantLimit          int
		bad                []string
	}{
		{name: "defaults", wantLimit: page.DefaultLimit},
		{name: "limit-1", limit: "1", wantLimit: 1},
		{name: "limit-max", limit: "100", wantLimit: 100},
		{name: "limit-0", limit: "0", bad: []string{"limit"}},
		{name: "limit-101", limit: "101", bad: []string{"limit"}},
		{name: "limit-word", limit: "ten", bad: []string{"limit"}},
		{name: "after-good", after: good, wantLimit: page.DefaultLimit},
		{name: "after-garbage", after: "!!", bad: []string{"after"}},
		{name: "after-bad-id", after: page.Cursor{At: time.UnixMilli(5), ID: "zz"}.Encode(), bad: []string{"after"}},
		{name: "both-bad", limit: "-3", after: "x", bad: []string{"after", "limit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, problems := page.Parse(tt.limit, tt.after)
			if len(problems) != len(tt.bad) {
				t.Fatalf("problems %v, want %v", problems, tt.bad)
			}
			for _, k := range tt.bad {
				if problems[k] == "" {
					t.Errorf("no problem for %s", k)
				}
			}
			if tt.bad == nil && q.Limit != tt.wantLimit {
				t.Errorf("limit %d, want %d", q.Limit, tt.wantLimit)
			}
		})
	}
}
