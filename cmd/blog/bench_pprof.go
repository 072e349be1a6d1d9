//go:build pprof

package main

import (
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/ on http.DefaultServeMux
	"os"
)

// Built with -tags pprof, the binary serves net/http/pprof on
// BLOG_PPROF_ADDR (host:port) when that is set, so that `blog bench -profile
// DIR` can take CPU and heap profiles of the services under load:
//
//	go build -tags pprof -o /tmp/blog ./cmd/blog
//	/tmp/blog bench -profile /tmp/prof -sizes 100k
//	go tool pprof -top /tmp/blog /tmp/prof/100k-create-comment.pb.gz
//
// Normal builds leave it out: profiling endpoints are for the bench, not
// for production.
func init() {
	if addr := os.Getenv("BLOG_PPROF_ADDR"); addr != "" {
		go func() { _ = http.ListenAndServe(addr, nil) }()
	}
}
