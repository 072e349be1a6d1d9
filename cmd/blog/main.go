// Command blog runs the blog's services: posts and comments, each an HTTP/JSON
// API, kept in sync through a change stream of the comments collection.
//
//	blog [serve]      the posts, comments and web services in one process (the default)
//	blog posts        the posts service alone
//	blog comments     the comments service alone
//	blog web          the web front end alone
//	blog verify       compare posts' embedded comments with the comments (-repair)
//	blog bench        the benchmark suite
//	blog healthcheck  probe a /readyz URL, for container health checks
//	blog help         every subcommand and flag, with defaults
//
// With MONGO_URI unset it runs on an embedded SQLite store in BLOG_DATA_DIR,
// which several processes may share; with MONGO_URI set, on MongoDB (a replica
// set, since change streams need one).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"blog/internal/api"
	"blog/internal/changes"
	"blog/internal/comment"
	"blog/internal/comment/commentapi"
	"blog/internal/live"
	"blog/internal/metrics"
	"blog/internal/post"
	"blog/internal/post/postapi"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) { // -h: the usage asked for
			return
		}
		fmt.Fprintf(os.Stderr, "blog: %v\n", err)
		os.Exit(1)
	}
}

const usage = `usage: blog [serve|posts|comments|web|verify|deadletters|bench|healthcheck] [flags]

  serve     run the posts, comments and web services in one process (default)
  posts     run the posts service alone (and its comment sync)
  comments  run the comments service alone (and its post-delete cascade)
  web       run the web front end alone; it reaches the APIs at POSTS_URL
            and COMMENTS_URL
  verify    compare every post's embedded comments with the comments store;
            verify [flags] -repair  also rebuilds the drifted posts
  deadletters  list the change events the consumers parked;
            deadletters [flags] -retry ID  applies one again and removes it
  bench     run the benchmark suite (blog bench -h for its flags)
  healthcheck [URL]
            exit 0 if URL (default: the posts service's /readyz) answers
            200 within 3 s; for container health checks (images have no curl)

Flags (each also an environment variable; a .env file is read too):
`

// run is the whole program with its dependencies passed in, so tests can run
// it in-process with their own arguments, environment and output.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd, rest := "serve", args[1:]
	if len(rest) > 0 && slices.Contains([]string{"-h", "-help", "--help"}, rest[0]) {
		cmd = "help" // blog -h: the whole usage, not serve's alone
	} else if len(rest) > 0 && rest[0] != "" && rest[0][0] != '-' {
		cmd, rest = rest[0], rest[1:]
	}
	switch cmd {
	case "bench":
		// The bench has flags of its own and starts its own system.
		return benchCmd(ctx, rest, getenv, stdout, stderr)
	case "healthcheck":
		return healthcheck(ctx, rest, getenv, stdout)
	case "serve", "posts", "comments", "web", "verify", "deadletters":
	case "help":
		fmt.Fprint(stdout, usage)
		cfg := defaultConfig()
		newFlags("blog", &cfg, stdout).PrintDefaults()
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
	var (
		repair bool
		retry  string
		more   func(*flag.FlagSet)
		only   []string
	)
	only = commandFlags[cmd]
	if cmd == "verify" {
		more = func(fs *flag.FlagSet) {
			fs.BoolVar(&repair, "repair", false, "rebuild every drifted post from the comments store")
		}
	}
	if cmd == "deadletters" {
		more = func(fs *flag.FlagSet) {
			fs.StringVar(&retry, "retry", "", "apply the dead letter with this `ID` again and remove it")
		}
	}
	cfg, extra, err := loadConfig("blog "+cmd, rest, getenv, stdout, more, only...)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	log.Info("starting", "command", cmd, "config", startup{cfg, cmd})
	if len(extra) > 0 {
		return fmt.Errorf("unexpected arguments: %q", extra)
	}
	if cmd == "verify" {
		return verify(ctx, repair, cfg, log, stdout)
	}
	if cmd == "deadletters" {
		return deadLetters(ctx, retry, cfg, log, stdout)
	}
	return serve(ctx, cmd, cfg, log)
}

// serve opens the store, builds the services cmd names and runs them until
// ctx ends (see runServices); then it closes the store. Everything that can
// fail at start-up (the store, the web service's config, the ports) fails
// before any goroutine starts, so an early return leaves nothing running.
func serve(ctx context.Context, cmd string, cfg Config, log *slog.Logger) error {
	// The web front end alone needs no store: it reaches data over HTTP.
	var st *stores
	if cmd != "web" {
		var err error
		if st, err = openStore(ctx, cfg, log); err != nil {
			return err
		}
		defer func() {
			if err := st.close(); err != nil {
				log.Error("close store", "err", err)
			}
		}()
	}
	reg := metrics.New()
	// The web front end `blog serve` starts is the APIs' trusted proxy by a
	// key only this process knows; `blog web` run apart proves itself with
	// BLOG_API_TOKEN, which it shares with the APIs (none: no key); other
	// proxies are trusted by address, BLOG_TRUSTED_PROXIES.
	proxyKey := cfg.APIToken
	if cmd == "serve" {
		proxyKey = newProxyKey()
	}
	var svcs []service
	if cmd == "serve" || cmd == "posts" {
		svcs = append(svcs, buildPosts(cfg, st, log, reg, proxyKey))
	}
	if cmd == "serve" || cmd == "comments" {
		svcs = append(svcs, buildComments(cfg, st, log, reg, proxyKey))
	}
	if cmd == "serve" || cmd == "web" {
		web, err := buildWeb(cfg, log, proxyKey)
		if err != nil {
			return err
		}
		svcs = append(svcs, web)
	}
	if st != nil && st.prune != nil && cfg.ChangelogRetention > 0 {
		svcs = append(svcs, service{name: "change log pruning", workers: []func(context.Context){
			func(ctx context.Context) { prune(ctx, st.prune, cfg.ChangelogRetention, log) },
		}})
	}
	return runServices(ctx, svcs, cfg.ShutdownTimeout, log)
}

// service is what one service of the process runs: an HTTP server (nil for
// a service of workers alone), the workers it needs, and the readiness
// checks that should hold before its server serves.
type service struct {
	name   string       // in the start-up log
	server *http.Server // nil: none
	// workers run from start-up until every server has drained; they must
	// return once their context ends.
	workers []func(context.Context)
	// ready are polled, for up to 5 s, before any server serves.
	ready []func() bool
}

// buildPosts builds the posts service: its API, its comment sync (the
// consumer of the comments feed that keeps the posts' embedded comments)
// and the live-updates hub behind GET /posts/{id}/events.
func buildPosts(cfg Config, st *stores, log *slog.Logger, reg *metrics.Registry, proxyKey string) service {
	log = log.With("service", "posts")
	commentSync := post.NewCommentSync(st.posts, st.commentFeed, log)
	commentSync.Lease, commentSync.Holder = st.leases, holderName(cfg.Host, cfg.PostsPort)
	reg.Consumer(commentSync.Name, commentSync.Stats)
	h := &postapi.Handler{Store: st.posts, Log: log, Auth: api.RequireToken(cfg.APIToken), ListBytes: cfg.ListBytes, Cache: live.NewCache(0), Idempotency: (&api.IdempotencyKeys{}).Middleware()}
	probes := map[string]api.Probe{"store": st.posts.Ping, "comment sync": running(commentSync.Healthy)}
	rt := apiRouter("posts", postapi.OpenAPI, h.Register, log, reg, probes)
	gate := api.NewStreamGate(cfg.streamLimits(), cfg.proxies().WithKey(proxyKey))
	runEvents, eventsReady := registerPostEvents(rt, st.postFeed, st.posts, h.Cache, gate, log)
	probes["live updates"] = eventsReady
	srv := newServer(cfg.Host, cfg.PostsPort, rt, log)
	// Live event streams end when shutdown begins, so Shutdown need not
	// wait for them.
	eventsCtx, stopEvents := context.WithCancel(context.Background())
	srv.RegisterOnShutdown(stopEvents)
	return service{
		name:   "posts API",
		server: srv,
		workers: []func(context.Context){
			func(ctx context.Context) { _ = commentSync.Run(ctx) },
			func(ctx context.Context) {
				defer context.AfterFunc(ctx, stopEvents)()
				_ = runEvents(eventsCtx)
			},
		},
		// Serve only once the sync has its starting point (or is a standby
		// replica), so no comment written through this process precedes it.
		ready: []func() bool{commentSync.Running},
	}
}

// buildComments builds the comments service: its API and the post-delete
// cascade (the consumer of the posts feed that deletes a deleted post's
// comments).
func buildComments(cfg Config, st *stores, log *slog.Logger, reg *metrics.Registry, proxyKey string) service {
	log = log.With("service", "comments")
	cascade := &changes.Consumer[post.Post]{
		Name: CascadeConsumer, Feed: st.postFeed, Sink: st.cascade, Log: log,
		Lease: st.leases, Holder: holderName(cfg.Host, cfg.CommentsPort),
	}
	reg.Consumer(cascade.Name, cascade.Stats)
	h := &commentapi.Handler{
		Store: st.comments, Log: log,
		PostExists:  postExists(st.posts),
		Idempotency: (&api.IdempotencyKeys{}).Middleware(),
		Auth:        api.RequireToken(cfg.APIToken),
		Throttle:    api.SkipWithToken(cfg.APIToken, api.RateLimit(cfg.CommentRate, cfg.proxies().WithKey(proxyKey))),
		ListBytes:   cfg.ListBytes,
	}
	probes := map[string]api.Probe{"store": st.comments.Ping, "post cascade": running(cascade.Healthy)}
	return service{
		name:    "comments API",
		server:  newServer(cfg.Host, cfg.CommentsPort, apiRouter("comments", commentapi.OpenAPI, h.Register, log, reg, probes), log),
		workers: []func(context.Context){func(ctx context.Context) { _ = cascade.Run(ctx) }},
	}
}

// buildWeb builds the web front end (see webService).
func buildWeb(cfg Config, log *slog.Logger, proxyKey string) (service, error) {
	log = log.With("service", "web")
	ws, err := webService(cfg, proxyKey, log)
	if err != nil {
		return service{}, err
	}
	srv := newServer(cfg.Host, cfg.WebPort, ws, log)
	srv.RegisterOnShutdown(ws.Close)
	return service{name: "web (open in a browser)", server: srv}, nil
}

// runServices runs svcs until ctx ends or a server fails. It listens on
// every server's address before starting anything, so a port in use fails
// start-up at once and cleanly; starts the workers; waits (up to 5 s) for
// the readiness checks; serves. On the way out it drains the servers
// within shutdown, then stops the workers (change consumers save their
// checkpoint with every batch) and waits for them until the same deadline
// (at least a second more).
func runServices(ctx context.Context, svcs []service, shutdown time.Duration, log *slog.Logger) error {
	var servers []*http.Server
	var names []string
	for _, s := range svcs {
		if s.server != nil {
			servers, names = append(servers, s.server), append(names, s.name)
		}
	}
	listeners, err := listen(servers)
	if err != nil {
		return err
	}
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	var wg sync.WaitGroup
	for _, s := range svcs {
		for _, w := range s.workers {
			wg.Go(func() { w(workCtx) })
		}
	}
	for _, s := range svcs {
		for _, ok := range s.ready {
			if !waitUntil(ctx, 5*time.Second, ok) {
				log.Warn("a change consumer is not running yet; serving anyway, /readyz says so")
			}
		}
	}
	errc := make(chan error, len(servers))
	for i, srv := range servers {
		log.Info("listening", "service", names[i], "url", "http://"+listeners[i].Addr().String())
		go func() {
			if err := srv.Serve(listeners[i]); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serve %s: %w", srv.Addr, err)
			}
		}()
	}
	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case runErr = <-errc:
		log.Error("server failed; shutting down", "err", runErr)
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdown)
	defer cancel()
	drain(shutCtx, servers, log)
	stopWork()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		log.Info("stopped")
	case <-time.After(max(time.Until(deadlineOf(shutCtx)), time.Second)):
		log.Error("change consumers did not stop in time; exiting anyway (their checkpoints hold)")
	}
	return runErr
}

// listen opens a listener on each server's address; on an error it closes
// those it opened.
func listen(servers []*http.Server) ([]net.Listener, error) {
	listeners := make([]net.Listener, len(servers))
	for i, srv := range servers {
		ln, err := net.Listen("tcp", srv.Addr)
		if err != nil {
			for _, l := range listeners[:i] {
				_ = l.Close()
			}
			return nil, fmt.Errorf("listen on %s: %w", srv.Addr, err)
		}
		listeners[i] = ln
	}
	return listeners, nil
}

// drain shuts every server down at once, each waiting for its requests until
// ctx ends, then closing what is left.
func drain(ctx context.Context, servers []*http.Server, log *slog.Logger) {
	var wg sync.WaitGroup
	for _, srv := range servers {
		wg.Go(func() {
			if err := srv.Shutdown(ctx); err != nil {
				log.Error("shutdown did not drain in time", "addr", srv.Addr, "err", err)
				_ = srv.Close()
			}
		})
	}
	wg.Wait()
}

// deadlineOf returns ctx's deadline, or now when it has none.
func deadlineOf(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now()
}

// CascadeConsumer is the checkpoint and lease name of the comments service's
// consumer of the posts feed, which deletes a deleted post's comments.
const CascadeConsumer = "comments.posts"

// apiRouter assembles an API service's routes: those register adds, its
// OpenAPI document doc, health and readiness (probes), GET /metrics, and the
// per-route metrics labelled with the service's name.
func apiRouter(name string, doc []byte, register func(*api.Router), log *slog.Logger, reg *metrics.Registry, probes map[string]api.Probe) *api.Router {
	rt := api.NewRouter(log)
	register(rt)
	rt.ServeDoc(doc)
	rt.Health(probes)
	rt.Handle("GET /metrics", reg.Handler())
	rt.Observe(reg.Observer(name))
	return rt
}

// postExists tells the comments service whether a post exists, from the
// posts store the process shares, so GET /comments/{postId} answers 404 for
// a post that does not exist, as POST /comments does.
func postExists(ps post.Store) func(context.Context, string) error {
	return func(ctx context.Context, id string) error {
		if _, err := ps.Get(ctx, id); err != nil {
			if errors.Is(err, post.ErrNotFound) {
				return comment.ErrPostNotFound
			}
			return fmt.Errorf("check post %s: %w", id, err)
		}
		return nil
	}
}

// running turns a consumer's Healthy into a readiness probe: a sync that
// is not running, or has been failing past its StallAfter, is not ready.
func running(ok func() bool) api.Probe {
	return func(context.Context) error {
		if !ok() {
			return errors.New("consumer is not running, or stalled: every attempt has failed for a while (see the log and blog_consumer_failing_seconds)")
		}
		return nil
	}
}

// holderName names a replica for leases by its host and service port. Two
// live processes cannot listen on the same address, so the name is unique
// among the living; and a replica restarted after a crash is recognised as
// the lease's holder and resumes at once instead of waiting out the TTL.
func holderName(host string, port int) string {
	name, _ := os.Hostname()
	if port == 0 { // a port chosen by the system: only the process is unique
		return fmt.Sprintf("%s/pid-%d", name, os.Getpid())
	}
	return fmt.Sprintf("%s/%s", name, net.JoinHostPort(host, strconv.Itoa(port)))
}

// prune trims the embedded change log every pruneEvery: what every consumer
// has applied, and whatever is older than the retention. A consumer whose
// checkpoint is pruned away rebuilds its read model.
func prune(ctx context.Context, fn func(context.Context, time.Duration) (int64, error), keep time.Duration, log *slog.Logger) {
	for {
		// The store logs what it pruned; only a failure is logged here.
		if _, err := fn(ctx, keep); err != nil && ctx.Err() == nil {
			log.Error("prune change log", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pruneEvery):
		}
	}
}

// pruneEvery is how often the change log is pruned: often enough that it
// holds little more than the last seconds of changes (issue 12), each run
// one short write transaction.
const pruneEvery = 10 * time.Second

// newServer returns an HTTP server with timeouts set, so no slow or stalled
// client can hold a connection or a goroutine for long.
func newServer(host string, port int, h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Addr:              net.JoinHostPort(host, strconv.Itoa(port)),
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// waitUntil polls cond until it holds, ctx ends or d passes, and reports
// whether it held.
func waitUntil(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	return true
}
