package main

import (
	"encoding/json"
	"log/slog"
	"slices"
	"testing"

	"blog/internal/api"
	"blog/internal/comment"
	"blog/internal/metrics"
	"blog/internal/post"
)

// TestOpenAPIMatchesRoutes keeps each service's document true: every route
// the service registers is documented and every documented route exists.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for name, tc := range map[string]struct {
		doc []byte
		rt  *api.Router
	}{
		"posts":    {post.OpenAPI, postsWithEvents(log)},
		"comments": {comment.OpenAPI, commentsRouter(&comment.Handler{}, log, metrics.New(), nil)},
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
	rt := postsRouter(&post.Handler{}, log, metrics.New(), nil)
	registerPostEvents(rt, nil, nil, nil, log)
	return rt
}
