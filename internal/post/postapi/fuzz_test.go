package postapi_test

import (
	"encoding/json"
	"strings"
	"testing"

	"blog/internal/post"
)

// FuzzCreatePost throws arbitrary bodies at POST /posts over the real store:
// no body may produce a 5xx, and whatever is accepted is stored as sent.
func FuzzCreatePost(f *testing.F) {
	for _, s := range []string{
		`{"title":"My First Post","content":"This is the content of my first post."}`,
		`{"title":"","content":"x"}`, `{"title":{"$gt":""},"content":"x"}`, `[]`, `null`, `{"title":"a","content":"b"} {}`,
		`{"title":"a","content":"b","_id":"672a2b5ab2c87aa17bd7b49b"}`, "{\"title\":\"\xff\",\"content\":\"b\"}", `{"title":"a\u0000","content":"b"}`,
	} {
		f.Add(s)
	}
	srv, _ := newServer(f)
	f.Fuzz(func(t *testing.T, body string) {
		r := do(t, srv, "POST", "/posts", "application/json", body)
		switch {
		case r.status >= 500:
			t.Fatalf("status %d for %q: %s", r.status, body, r.body)
		case r.status == 201:
			var in post.NewPost
			var got post.Post
			if err := json.Unmarshal([]byte(body), &in); err != nil {
				t.Fatalf("accepted a body encoding/json refuses: %q", body)
			}
			if err := json.Unmarshal(r.body, &got); err != nil || got.Title != in.Title || got.Content != in.Content {
				t.Fatalf("stored %+v for %q", got, body)
			}
		case r.status < 400:
			t.Fatalf("status %d for %q", r.status, body)
		case !strings.HasPrefix(r.header.Get("Content-Type"), "application/problem+json"):
			t.Fatalf("a %d that is not a problem: %s", r.status, r.body)
		}
	})
}
