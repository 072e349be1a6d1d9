package commentapi_test

import (
	"strings"
	"testing"
)

// FuzzCreateComment throws arbitrary bodies and post ids at POST /comments
// over the real store: no input may produce a 5xx.
func FuzzCreateComment(f *testing.F) {
	srv, postID := newServer(f)
	for _, s := range []string{
		`{"postId":"` + postID + `","text":"This is a comment on the post."}`,
		`{"postId":{"$ne":null},"text":"x"}`, `{"postId":"672a2b5ab2c87aa17bd7b49b","text":"x"}`,
		`{"postId":"` + postID + `","text":"<script>alert(1)</script>"}`, `{"text":1}`, `{}`, `"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r := do(t, srv, "POST", "/comments", body)
		if r.status >= 500 || (r.status >= 400 && !strings.HasPrefix(r.header.Get("Content-Type"), "application/problem+json")) {
			t.Fatalf("status %d (%s) for %q: %s", r.status, r.header.Get("Content-Type"), body, r.body)
		}
	})
}
