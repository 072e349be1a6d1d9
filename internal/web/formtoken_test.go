package web_test

import (
	"net/url"
	"strings"
	"sync"
	"testing"

	"blog/internal/comment"
)

// TestOneSubmitOneComment: a comment form sent twice with its one-time
// token (a double click, concurrent POSTs) stores one comment, and both
// submissions land on it; a form without a valid token is shown again with
// the text kept, and stores nothing.
func TestOneSubmitOneComment(t *testing.T) {
	st := newStack(t, stackOptions{})
	p := st.createPost(t, "Once", "text")
	c := st.client(t)
	path := "/posts/" + p.ID

	t.Run("concurrent-same-token-stores-one", func(t *testing.T) {
		token := c.formToken(path)
		var wg sync.WaitGroup
		locs := make([]string, 4)
		for i := range locs {
			wg.Go(func() {
				res := c.post(path, url.Values{"text": {"only once"}, "token": {token}})
				if res.status != 303 {
					t.Errorf("submission %d: %d", i, res.status)
				}
				locs[i] = res.header.Get("Location")
			})
		}
		wg.Wait()
		for _, l := range locs {
			if l != locs[0] || !strings.Contains(l, "#c-") {
				t.Errorf("submissions sent to %q, want all to the one comment", locs)
				break
			}
		}
	})
	t.Run("resent-token-stores-none", func(t *testing.T) {
		token := c.formToken(path)
		first := c.post(path, url.Values{"text": {"resent"}, "token": {token}})
		again := c.post(path, url.Values{"text": {"resent"}, "token": {token}})
		if first.status != 303 || again.status != 303 || again.header.Get("Location") != first.header.Get("Location") {
			t.Fatalf("first %d %s, again %d %s", first.status, first.header.Get("Location"), again.status, again.header.Get("Location"))
		}
	})
	for _, tc := range []struct{ name, token string }{{"missing-token-409", ""}, {"forged-token-409", strings.Repeat("ab", 16)}} {
		t.Run(tc.name, func(t *testing.T) {
			res := c.post(path, url.Values{"text": {"no token"}, "token": {tc.token}})
			if res.status != 409 || !strings.Contains(res.body, ">no token</textarea>") {
				t.Fatalf("%d, want 409 with the text kept: %.800s", res.status, res.body)
			}
		})
	}
	var cs []comment.Comment
	getJSON(t, st.comments.URL+"/comments/"+p.ID, &cs)
	if len(cs) != 2 {
		t.Fatalf("%d comments stored, want 2 (one per form): %+v", len(cs), cs)
	}
}
