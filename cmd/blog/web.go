package main

import (
	"context"
	"log/slog"
	"net"
	"strconv"

	"blog/internal/api"
	"blog/internal/changes"
	"blog/internal/post"
	"blog/internal/web"
)

// webService builds the web front end (`blog web`): pages for readers and
// authors, rendered from the posts and comments APIs at postsURL and
// commentsURL, which it reaches over HTTP only. token is BLOG_API_TOKEN:
// with it, authors sign in and write posts in the browser, and the service
// sends it to the APIs; it never reaches a page. Register the returned
// server's Close with http.Server.RegisterOnShutdown, so that relayed event
// streams end when shutdown begins.
func webService(postsURL, commentsURL, token string, commentRate int, log *slog.Logger) (*web.Server, error) {
	return web.New(web.Config{
		PostsURL:    postsURL,
		CommentsURL: commentsURL,
		Token:       token,
		CommentRate: commentRate,
		Log:         log,
	})
}

// registerPostEvents adds GET /posts/{id}/events (live updates as
// Server-Sent Events) to the posts service's router. The returned run
// follows the posts feed, once for the whole process, until its context
// ends; then every stream ends too, so cancel that context when shutdown
// begins (http.Server.RegisterOnShutdown) rather than after it. ready is a
// readiness probe: the hub follows the feed. The hub also invalidates
// cache, the posts handler's cache of encoded posts (nil: none).
func registerPostEvents(rt *api.Router, feed changes.Feed[post.Post], store post.Store, cache *post.Cache, log *slog.Logger) (run func(context.Context) error, ready api.Probe) {
	hub := post.NewHub(feed, store, log)
	hub.Cache(cache)
	(&post.Events{Hub: hub, Log: log}).Register(rt)
	return hub.Run, hub.Ready
}

// serviceURL is the URL at which a service of this machine listening on
// host:port is reached: a wildcard host (all interfaces) is reached on the
// loopback address.
func serviceURL(host string, port int) string {
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(port))
}
