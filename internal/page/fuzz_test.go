package page_test

import (
	"testing"

	"blog/internal/page"
)

// FuzzParse: any query parameters give a query or named problems, never a
// panic or a limit out of range.
func FuzzParse(f *testing.F) {
	f.Add("20", "")
	f.Add("0", "MTczMjM5MDAwMDEyMzo2NzJhMmI1YWIyYzg3YWExN2JkN2I0OWI")
	f.Add("-1", "%%%")
	f.Fuzz(func(t *testing.T, limit, after string) {
		q, problems := page.Parse(limit, after)
		if problems == nil && (q.Limit < 1 || q.Limit > page.MaxLimit) {
			t.Fatalf("limit %d accepted from %q", q.Limit, limit)
		}
		if q.After != nil {
			if c, err := page.Decode(q.After.Encode()); err != nil || c != *q.After {
				t.Fatalf("cursor does not round-trip: %v", err)
			}
		}
	})
}
