package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"blog/internal/api"
	"blog/internal/comment/commentapi"
	"blog/internal/metrics"
	"blog/internal/post/postapi"
)

// TestOpenAPIMatchesRoutes keeps each service's document true: every route
// the service registers is documented and every documented route exists.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for name, tc := range map[string]struct {
		doc []byte
		rt  *api.Router
	}{
		"posts":    {postapi.OpenAPI, postsWithEvents(log)},
		"comments": {commentapi.OpenAPI, apiRouter("comments", commentapi.OpenAPI, (&commentapi.Handler{}).Register, log, metrics.New(), nil)},
	} {
		t.Run(name, func(t *testing.T) {
			var doc map[string]any
			if err := json.Unmarshal(tc.doc, &doc); err != nil || doc["openapi"] != "3.1.0" {
				t.Fatalf("not an OpenAPI 3.1 document: %v", err)
			}
			documented, err := api.DocumentedRoutes(tc.doc)
			if err != nil {
				t.Fatal(err)
			}
			registered := tc.rt.Routes()
			for _, r := range registered {
				if !slices.Contains(documented, r) {
					t.Errorf("route %q is not documented", r)
				}
			}
			for _, d := range documented {
				if !slices.Contains(registered, d) {
					t.Errorf("documented route %q does not exist", d)
				}
			}
		})
	}
}

// postsWithEvents is the posts router as serve builds it, live events
// included.
func postsWithEvents(log *slog.Logger) *api.Router {
	rt := apiRouter("posts", postapi.OpenAPI, (&postapi.Handler{}).Register, log, metrics.New(), nil)
	registerPostEvents(rt, nil, nil, nil, nil, log)
	return rt
}

// TestProblemTypesAnswer: a validation problem's type is a URL that answers
// with its description, and its pointers are RFC 6901 JSON Pointers in URI
// fragment form, whether they name a body member, a query or a path
// parameter.
func TestProblemTypesAnswer(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	srv := httptest.NewServer(apiRouter("comments", commentapi.OpenAPI, (&commentapi.Handler{Log: log}).Register, log, metrics.New(), nil))
	defer srv.Close()
	for _, tc := range []struct{ name, method, path, body, pointer string }{
		{"body-member", "POST", "/comments", `{"postId":"x","text":"hi"}`, "#/postId"},
		{"query-parameter", "GET", "/comments/672a2b5ab2c87aa17bd7b49b?limit=0", "", "#/limit"},
		{"path-parameter", "GET", "/comments/nope", "", "#/id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var p api.Problem
			_ = json.NewDecoder(res.Body).Decode(&p)
			res.Body.Close()
			if res.StatusCode != 400 {
				t.Fatalf("status %d, want 400: %+v", res.StatusCode, p)
			}
			want := []api.FieldError{{Pointer: tc.pointer}}
			if diff := cmp.Diff(want, p.Errors, cmpopts.IgnoreFields(api.FieldError{}, "Detail")); diff != "" {
				t.Fatalf("field errors (-want +got):\n%s", diff)
			}
			doc, err := http.Get(srv.URL + p.Type)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(doc.Body)
			doc.Body.Close()
			if doc.StatusCode != 200 || !strings.Contains(string(b), "JSON Pointer") {
				t.Fatalf("GET %s: %d %s", p.Type, doc.StatusCode, b)
			}
		})
	}
}
