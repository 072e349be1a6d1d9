package main

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"blog/internal/api"
	"blog/internal/changes"
	"blog/internal/live"
	"blog/internal/post"
	"blog/internal/web"
)

// webService builds the web front end (`blog web`): pages for readers and
// authors, rendered from the posts and comments APIs (cfg.postsURL,
// cfg.commentsURL), which it reaches over HTTP only. With BLOG_API_TOKEN,
// authors sign in and write posts in the browser, and the service sends the
// token to the APIs; it never reaches a page. proxyKey, when not empty, is
// the key by which the APIs of this process know this front end as their
// trusted proxy. Signed-out sessions are remembered in BLOG_DATA_DIR when it
// can be written. Register the returned server's Close with
// http.Server.RegisterOnShutdown, so that relayed event streams end when
// shutdown begins.
func webService(cfg Config, proxyKey string, log *slog.Logger) (*web.Server, error) {
	revoked := ""
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
			log.Warn("signed-out sessions are kept in memory only: a restart of the web front end forgets them", "err", err)
		} else {
			revoked = filepath.Join(cfg.DataDir, "web-signed-out.json")
		}
	}
	return web.New(web.Config{
		PostsURL:        cfg.postsURL(),
		CommentsURL:     cfg.commentsURL(),
		Token:           cfg.APIToken,
		CommentRate:     cfg.CommentRate,
		Log:             log,
		SessionIdle:     cfg.SessionIdle,
		RevokedFile:     revoked,
		Proxies:         cfg.proxies(),
		ProxyKey:        proxyKey,
		LoginRate:       offIfZero(cfg.LoginRate),
		LoginGlobalRate: offIfZero(cfg.LoginGlobalRate),
		Streams:         cfg.streamLimits(),
	})
}

// registerPostEvents adds GET /posts/{id}/events (live updates as
// Server-Sent Events) to the posts service's router. The returned run
// follows the posts feed, once for the whole process, until its context
// ends; then every stream ends too, so cancel that context when shutdown
// begins (http.Server.RegisterOnShutdown) rather than after it. ready is a
// readiness probe: the hub follows the feed. The hub also invalidates
// cache, the posts handler's cache of encoded posts (nil: none).
func registerPostEvents(rt *api.Router, feed changes.Feed[post.Post], store post.Store, cache *live.Cache, gate *api.StreamGate, log *slog.Logger) (run func(context.Context) error, ready api.Probe) {
	hub := live.NewHub(feed, store, log)
	hub.Cache(cache)
	(&live.Events{Hub: hub, Log: log, Gate: gate}).Register(rt)
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

// newProxyKey returns a random key for ProxyKeyHeader: `blog serve`'s web
// front end proves with it that it is the APIs' trusted proxy.
func newProxyKey() string { return rand.Text() }
