// Package bench is the blog's benchmark suite behind `blog bench`: it seeds
// datasets of a given number of comments, starts the services on them (or
// targets running ones), drives load through the HTTP API with vegeta, and
// measures throughput and latency per scenario, the propagation lag of
// comments into their posts, and the services' memory, next to two
// baselines measured in the same run: a bare net/http handler serving the
// same bytes as GET /posts/{id} (the read ceiling) and raw inserts through
// the same SQLite driver and settings (the write ceiling).
//
// It measures; it never fails on speed. Targets are evaluated and reported,
// and the caller decides what to do with them.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"blog/internal/comment"
	"blog/internal/store/sqlite"
)

// Config is one benchmark run. The zero value of a field means its default
// (see Defaults).
type Config struct {
	// Binary is the blog binary the bench starts (`Binary serve`) on each
	// dataset. Ignored when PostsURL is set.
	Binary string
	// PostsURL and CommentsURL target running services instead: nothing is
	// seeded, the data found there is measured once (Sizes is ignored), and
	// the services' memory is read only if PID names their process.
	PostsURL, CommentsURL string
	PID                   int
	// Token is sent as a bearer token with writes (a running system's
	// BLOG_API_TOKEN); the services the bench starts need none.
	Token string

	// Sizes are the datasets, in comments: each is seeded fresh as
	// Sizes[i]/CommentsPerPost posts of CommentsPerPost comments.
	Sizes           []int
	CommentsPerPost int
	// Duration is how long each scenario is measured, after Warmup
	// (unmeasured) of the same load.
	Duration, Warmup time.Duration
	// Concurrency is how many requests a closed-loop scenario keeps in flight.
	Concurrency int
	// LagRate is the pace, comments per second, of the propagation
	// scenario; LagPosts how many posts those comments spread over.
	LagRate, LagPosts int
	// NoBaselines skips both baselines.
	NoBaselines bool
	// IdleWindow is how long the services' CPU is measured with no load,
	// after the scenarios (0: DefaultIdleWindow; negative: not measured).
	IdleWindow time.Duration
	// Only, when set, names the scenarios to run (of Scenarios, and
	// Propagation); the others are left out of the report.
	Only []string
	// Self is the command line that runs the read baseline's server in a
	// process of its own (ServeBare, given "-bare-addr ADDR -bare-body
	// FILE"); empty runs it in the bench's process.
	Self []string
	// TempDir holds the datasets ("" = the system's); Keep keeps them.
	TempDir string
	Keep    bool
	// ProfileDir, when set, receives a CPU profile of the services per
	// scenario and a heap profile per dataset; the binary must be built
	// with -tags pprof (see cmd/blog/bench_pprof.go).
	ProfileDir string
	// Progress receives a line per step; nil discards them.
	Progress io.Writer
}

// Defaults of Config.
const (
	DefaultSizes           = "1000,100000,1000000"
	DefaultCommentsPerPost = 20
	DefaultDuration        = 10 * time.Second
	DefaultWarmup          = time.Second
	DefaultConcurrency     = 8
	DefaultLagRate         = 500
	DefaultLagPosts        = 20
	DefaultIdleWindow      = 20 * time.Second
)

// ParseSizes reads a comma-separated list of sizes; k and M suffixes
// multiply by a thousand and a million ("1k,100k,1M").
func ParseSizes(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		mul := 1
		switch {
		case strings.HasSuffix(f, "k"), strings.HasSuffix(f, "K"):
			mul, f = 1000, f[:len(f)-1]
		case strings.HasSuffix(f, "M"), strings.HasSuffix(f, "m"):
			mul, f = 1_000_000, f[:len(f)-1]
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("size %q is not a positive number of comments", f)
		}
		out = append(out, n*mul)
	}
	if len(out) == 0 {
		return nil, errors.New("no sizes")
	}
	return out, nil
}

func (c *Config) defaults() {
	if len(c.Sizes) == 0 {
		c.Sizes, _ = ParseSizes(DefaultSizes)
	}
	if c.CommentsPerPost <= 0 {
		c.CommentsPerPost = DefaultCommentsPerPost
	}
	if c.Duration <= 0 {
		c.Duration = DefaultDuration
	}
	if c.Warmup < 0 {
		c.Warmup = 0
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.LagRate <= 0 {
		c.LagRate = DefaultLagRate
	}
	if c.LagPosts <= 0 {
		c.LagPosts = DefaultLagPosts
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.IdleWindow == 0 {
		c.IdleWindow = DefaultIdleWindow
	}
}

// Report is everything a run measured.
type Report struct {
	Machine Machine `json:"machine"`
	// Settings echoes the run's load settings.
	Settings Settings `json:"settings"`
	// Bare is the read baseline (GET of the same bytes from a bare
	// handler), BareWhere where its server ran; Raw the write baseline.
	Bare      *Stat  `json:"bare,omitempty"`
	BareWhere string `json:"bareWhere,omitempty"`
	Raw       *Stat  `json:"raw,omitempty"`
	// Sizes holds one entry per dataset, in the order run.
	Sizes []SizeResult `json:"sizes"`
	// Notes are things a reader of the numbers should know.
	Notes []string `json:"notes,omitempty"`
}

// Settings are the knobs that shaped the load.
type Settings struct {
	Duration        time.Duration `json:"duration"`
	Warmup          time.Duration `json:"warmup"`
	Concurrency     int           `json:"concurrency"`
	LagRate         int           `json:"lagRate"`
	LagPosts        int           `json:"lagPosts"`
	CommentsPerPost int           `json:"commentsPerPost"`
	Target          string        `json:"target"`
}

// SizeResult is what was measured on one dataset.
type SizeResult struct {
	// Comments and Posts the dataset was seeded with (Comments -1: a
	// running system's data, not counted).
	Comments int           `json:"comments"`
	Posts    int           `json:"posts"`
	SeedTook time.Duration `json:"seedTook,omitempty"`
	// Scenarios in the order of the package's Scenarios.
	Scenarios []Stat `json:"scenarios"`
	// Drain is how long after the create-comment burst the sync took to
	// apply its backlog (until a comment sent right after it was visible).
	Drain time.Duration `json:"drain"`
	// Paced is the propagation scenario's creates; LagGet and LagSSE its
	// lags.
	Paced  Stat `json:"paced"`
	LagGet Lag  `json:"lagGet"`
	LagSSE Lag  `json:"lagSse"`
	// RSS is the services' resident memory after the load, Peak its
	// high-water mark (VmRSS and VmHWM), in bytes; 0 when unknown.
	RSS  int64 `json:"rss"`
	Peak int64 `json:"peak"`
	// IdleCPU is the cores the services used over IdleWindow with no
	// load, after the scenarios and once the sync had caught up.
	IdleCPU    float64       `json:"idleCpu"`
	IdleWindow time.Duration `json:"idleWindow,omitempty"`
	// Disk is what the store holds after the run: the comments stored,
	// the database file with its WAL, and each table and index.
	Disk *Disk `json:"disk,omitempty"`
}

// Disk is the space the embedded store takes after a run.
type Disk struct {
	Comments  int64          `json:"comments"`
	FileBytes int64          `json:"fileBytes"`
	Objects   []sqlite.Space `json:"objects"`
}

// Scenario returns the stat of the named scenario (zero if absent).
func (s SizeResult) Scenario(name string) Stat {
	for _, st := range s.Scenarios {
		if st.Name == name {
			return st
		}
	}
	return Stat{Name: name}
}

// Run runs the benchmark described by cfg and returns what it measured.
// Errors are only returned for a run that could not take place (a binary
// that does not start, a seed that fails); slow results are results.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.defaults()
	external := cfg.PostsURL != "" || cfg.CommentsURL != ""
	if external && (cfg.PostsURL == "" || cfg.CommentsURL == "") {
		return nil, errors.New("bench: a running system needs both the posts and the comments URL")
	}
	if !external && cfg.Binary == "" {
		return nil, errors.New("bench: no binary to start (and no running system to target)")
	}
	rep := &Report{Machine: ThisMachine(), Settings: Settings{
		Duration: cfg.Duration, Warmup: cfg.Warmup, Concurrency: cfg.Concurrency,
		LagRate: cfg.LagRate, LagPosts: cfg.LagPosts, CommentsPerPost: cfg.CommentsPerPost,
		Target: "blog serve (embedded SQLite), started by the bench on a temp dir",
	}}
	if external {
		rep.Settings.Target = "running services at " + cfg.PostsURL + " and " + cfg.CommentsURL
	}
	tmp, err := os.MkdirTemp(cfg.TempDir, "blog-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if cfg.Keep {
		fmt.Fprintf(cfg.Progress, "datasets kept in %s\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	if cfg.ProfileDir != "" {
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	r := &runner{cfg: cfg, rep: rep, tmp: tmp}

	if !cfg.NoBaselines {
		raw, err := r.rawInserts(ctx)
		if err != nil {
			return nil, err
		}
		rep.Raw = &raw
		r.progress("baseline: raw SQLite insert", raw)
	}

	if external {
		sys := &system{postsURL: strings.TrimRight(cfg.PostsURL, "/"), commentsURL: strings.TrimRight(cfg.CommentsURL, "/")}
		posts, err := discover(ctx, sys, cfg.Token)
		if err != nil {
			return nil, err
		}
		res := r.measure(ctx, sys, posts, -1, cfg.PID)
		rep.Sizes = append(rep.Sizes, res)
		r.finish()
		return rep, ctx.Err()
	}

	for _, size := range cfg.Sizes {
		if ctx.Err() != nil {
			break
		}
		res, err := r.size(ctx, size)
		if err != nil {
			return rep, err
		}
		rep.Sizes = append(rep.Sizes, res)
	}
	r.finish()
	return rep, ctx.Err()
}

// runner carries a run's state between its steps.
type runner struct {
	cfg Config
	rep *Report
	tmp string
	// noPprof is set once the services turned out to serve no profiles.
	noPprof bool
	// noise is the most CPU other processes used during a scenario, cores.
	noise float64
}

// finish adds the notes that only the whole run can tell.
func (r *runner) finish() {
	if r.noise > 0.2 {
		r.note("other processes used up to %.2f of the %d cores during a scenario: the numbers are lower than a quiet machine would give (see the cores column)", r.noise, r.rep.Machine.CPUs)
	}
}

func (r *runner) progress(what string, s Stat) {
	r.noise = max(r.noise, s.CPU.Other)
	fmt.Fprintf(r.cfg.Progress, "%-34s %9s/s  p50 %-8s p99 %-8s errors %d  cpu %s\n", what, fmtRate(s.Rate), fmtDur(s.P50), fmtDur(s.P99), s.Errors, fmtCPU(s.CPU))
}

func (r *runner) note(format string, args ...any) {
	n := fmt.Sprintf(format, args...)
	if !slices.Contains(r.rep.Notes, n) {
		r.rep.Notes = append(r.rep.Notes, n)
	}
	fmt.Fprintln(r.cfg.Progress, "note:", n)
}

// size seeds a fresh dataset of n comments, starts the services on it,
// measures, and stops them.
func (r *runner) size(ctx context.Context, n int) (SizeResult, error) {
	dir := filepath.Join(r.tmp, "data-"+strconv.Itoa(n))
	posts := max(1, n/r.cfg.CommentsPerPost)
	fmt.Fprintf(r.cfg.Progress, "== %s comments: seeding %d posts x %d comments\n", fmtSize(n), posts, r.cfg.CommentsPerPost)
	begin := time.Now()
	db, err := sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		return SizeResult{}, fmt.Errorf("bench: open dataset: %w", err)
	}
	seeded, err := db.Seed(ctx, sqlite.SeedSpec{Posts: posts, CommentsPerPost: r.cfg.CommentsPerPost})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return SizeResult{}, fmt.Errorf("bench: seed %d comments: %w", n, err)
	}
	took := time.Since(begin)
	fmt.Fprintf(r.cfg.Progress, "seeded in %v; starting %s serve\n", took.Round(time.Millisecond), r.cfg.Binary)

	sys, err := startSystem(ctx, r.cfg.Binary, dir, r.cfg.ProfileDir != "" && !r.noPprof)
	if err != nil {
		return SizeResult{}, fmt.Errorf("bench: %w", err)
	}
	res := r.measure(ctx, sys, seeded, n, sys.proc.pid())
	res.SeedTook = took
	if err := sys.stop(); err != nil {
		r.note("the services did not stop cleanly after the %s run: %v", fmtSize(n), err)
	}
	if d, err := diskUsage(ctx, dir); err != nil {
		r.note("disk usage at %s not measured: %v", fmtSize(n), err)
	} else {
		res.Disk = d
	}
	if !r.cfg.Keep {
		_ = os.RemoveAll(dir)
	}
	return res, nil
}

// measure runs every scenario against sys, whose data holds posts.
func (r *runner) measure(ctx context.Context, sys *system, posts []sqlite.SeededPost, n, pid int) SizeResult {
	cfg := r.cfg
	ds := &dataset{postsURL: sys.postsURL, commentsURL: sys.commentsURL, token: cfg.Token, posts: posts}
	res := SizeResult{Comments: n, Posts: len(posts)}
	label := fmtSize(n)

	if !cfg.NoBaselines && r.rep.Bare == nil {
		if bare, err := r.bare(ctx, ds); err != nil {
			r.note("read baseline not measured: %v", err)
		} else {
			r.rep.Bare = &bare
			r.progress("baseline: bare GET (same bytes)", bare)
		}
	}

	for _, sc := range Scenarios {
		if ctx.Err() != nil {
			return res
		}
		if !r.runs(sc) {
			continue
		}
		tr := ds.targeter(sc)
		if cfg.Warmup > 0 {
			attack(ctx, sc, tr, 0, cfg.Concurrency, cfg.Warmup, false, nil)
		}
		stopProfile := r.profile(ctx, sys, label, sc)
		before := snapCPU(pid)
		st := attack(ctx, sc, tr, 0, cfg.Concurrency, cfg.Duration, false, nil)
		st.CPU = snapCPU(pid).since(before)
		stopProfile()
		res.Scenarios = append(res.Scenarios, st)
		r.progress(label+": "+sc, st)
		if st.Errors > 0 {
			r.note("%s at %s: %d of %d requests failed, first: %s", sc, label, st.Errors, st.Requests, st.FirstError)
		}
		if sc == CreateComment {
			res.Drain = r.drain(ctx, ds)
			fmt.Fprintf(r.cfg.Progress, "%s: sync backlog drained %v after the burst\n", label, res.Drain.Round(time.Millisecond))
		}
	}

	if r.runs(Propagation) {
		r.propagation(ctx, sys, ds, label, pid, &res)
	}

	if pid > 0 && cfg.IdleWindow > 0 && ctx.Err() == nil {
		before := snapCPU(pid)
		select {
		case <-ctx.Done():
		case <-time.After(cfg.IdleWindow):
		}
		res.IdleCPU, res.IdleWindow = snapCPU(pid).since(before).Server, cfg.IdleWindow
		fmt.Fprintf(r.cfg.Progress, "%s: idle CPU over %v: %.2f%% of a core\n", label, cfg.IdleWindow, 100*res.IdleCPU)
	}
	if pid > 0 {
		res.RSS, res.Peak = memory(pid)
		fmt.Fprintf(r.cfg.Progress, "%s: services' memory: RSS %s, peak %s\n", label, fmtMB(res.RSS), fmtMB(res.Peak))
	}
	if sys.pprofURL != "" && !r.noPprof {
		r.saveProfile(ctx, sys.pprofURL+"/debug/pprof/heap", filepath.Join(r.cfg.ProfileDir, label+"-heap.pb.gz"))
	}
	return res
}

// runs reports whether the scenario is to run.
func (r *runner) runs(scenario string) bool {
	return len(r.cfg.Only) == 0 || slices.Contains(r.cfg.Only, scenario)
}

// propagation runs the propagation scenario: a few posts, paced comments,
// lag to GET and to SSE.
func (r *runner) propagation(ctx context.Context, sys *system, ds *dataset, label string, pid int, res *SizeResult) {
	cfg, posts := r.cfg, ds.posts
	ids := make([]string, 0, cfg.LagPosts)
	for _, i := range rand.Perm(len(posts))[:min(cfg.LagPosts, len(posts))] {
		ids = append(ids, posts[i].ID)
	}
	stopProfile := r.profile(ctx, sys, label, "propagation")
	before := snapCPU(pid)
	lag := propagation(ctx, ds, ids, cfg.LagRate, cfg.Concurrency, cfg.Duration)
	lag.create.CPU = snapCPU(pid).since(before)
	r.noise = max(r.noise, lag.create.CPU.Other)
	stopProfile()
	res.Paced, res.LagGet, res.LagSSE = lag.create, lag.get, lag.sse
	fmt.Fprintf(r.cfg.Progress, "%s: propagation at %d/s: GET p50 %s p99 %s max %s; SSE %s\n", label, cfg.LagRate,
		fmtDur(lag.get.P50), fmtDur(lag.get.P99), fmtDur(lag.get.Max), sseSummary(lag.sse))
	if lag.create.Errors > 0 {
		r.note("paced comments at %s: %d of %d failed, first: %s", label, lag.create.Errors, lag.create.Requests, lag.create.FirstError)
	}
	if lag.sse.Skipped != "" {
		r.note("SSE lag not measured: %s", lag.sse.Skipped)
	}
	if lag.sse.Note != "" {
		r.note("SSE at %s: %s (a subscriber fell behind and was dropped, then resumed)", label, lag.sse.Note)
	}
}

func sseSummary(l Lag) string {
	if l.Skipped != "" {
		return "skipped (" + l.Skipped + ")"
	}
	return fmt.Sprintf("p50 %s p99 %s max %s", fmtDur(l.P50), fmtDur(l.P99), fmtDur(l.Max))
}

// bare measures the read ceiling: GETs, as the get-post scenario sends
// them, of a bare handler that answers with the bytes of a real GET
// /posts/{id} of this dataset.
func (r *runner) bare(ctx context.Context, ds *dataset) (Stat, error) {
	body, ct, err := fetch(ctx, http.DefaultClient, ds.postsURL+"/posts/"+ds.randomPost().ID)
	if err != nil {
		return Stat{}, err
	}
	srv, err := startBare(ctx, r.cfg.Self, r.tmp, body, ct)
	if err != nil {
		return Stat{}, err
	}
	defer srv.stop()
	r.rep.BareWhere = srv.where
	bareDS := &dataset{postsURL: srv.url, commentsURL: srv.url, posts: ds.posts}
	get := bareDS.targeter(GetPost)
	if r.cfg.Warmup > 0 {
		attack(ctx, "bare", get, 0, r.cfg.Concurrency, r.cfg.Warmup, false, nil)
	}
	pid := 0
	if srv.proc != nil {
		pid = srv.proc.pid()
	}
	before := snapCPU(pid)
	st := attack(ctx, "bare GET", get, 0, r.cfg.Concurrency, r.cfg.Duration, false, nil)
	st.CPU = snapCPU(pid).since(before)
	return st, nil
}

// rawInserts measures the write ceiling: comment rows inserted straight
// into a fresh store's comments table, one transaction each, through the
// store's own write pool, by Concurrency goroutines.
func (r *runner) rawInserts(ctx context.Context) (Stat, error) {
	dir := filepath.Join(r.tmp, "raw")
	db, err := sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		return Stat{}, fmt.Errorf("bench: raw-insert baseline: %w", err)
	}
	defer func() {
		_ = db.Close()
		_ = os.RemoveAll(dir)
	}()
	postID := bson.NewObjectID().Hex()
	run := func(d time.Duration) Stat {
		var (
			mu   sync.Mutex
			recs []*recorder
			wg   sync.WaitGroup
		)
		end := time.Now().Add(d)
		for range r.cfg.Concurrency {
			rec := newRecorder("raw insert")
			mu.Lock()
			recs = append(recs, rec)
			mu.Unlock()
			wg.Go(func() {
				for ctx.Err() == nil && time.Now().Before(end) {
					c := comment.Comment{ID: bson.NewObjectID().Hex(), PostID: postID, Text: commentText, CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
					start := time.Now()
					err := db.InsertBaseline(ctx, c)
					msg := ""
					if err != nil {
						msg = err.Error()
					}
					rec.add(start, time.Since(start), msg)
				}
			})
		}
		wg.Wait()
		all := newRecorder("raw insert")
		for _, rec := range recs {
			all.merge(rec)
		}
		return all.stat()
	}
	if r.cfg.Warmup > 0 {
		run(r.cfg.Warmup)
	}
	before := snapCPU(0)
	st := run(r.cfg.Duration)
	st.CPU = snapCPU(0).since(before)
	return st, nil
}

// drain sends one comment after a burst and waits until its post shows it:
// the sync applies in order, so by then it has caught up with the burst.
func (r *runner) drain(ctx context.Context, ds *dataset) time.Duration {
	client := &http.Client{Timeout: 30 * time.Second}
	p := ds.randomPost()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ds.commentsURL+"/comments", strings.NewReader(string(commentBody(p.ID))))
	if err != nil {
		return 0
	}
	req.Header = ds.header()
	res, err := client.Do(req)
	if err != nil {
		r.note("drain: %v", err)
		return 0
	}
	var c struct {
		ID string `json:"_id"`
	}
	err = json.NewDecoder(res.Body).Decode(&c)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusCreated {
		r.note("drain: create comment: %s %v", res.Status, err)
		return 0
	}
	sent := time.Now()
	needle := `"` + c.ID + `"`
	for ctx.Err() == nil && time.Since(sent) < 10*time.Minute {
		body, _, err := fetch(ctx, client, ds.postsURL+"/posts/"+p.ID)
		if err == nil && strings.Contains(string(body), needle) {
			return time.Since(sent)
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.note("drain: the sync had not caught up after 10 minutes")
	return time.Since(sent)
}

// discover finds the posts of a running system (up to 5,000, newest
// first), creating a few with comments if it has none.
func discover(ctx context.Context, sys *system, token string) ([]sqlite.SeededPost, error) {
	client := &http.Client{Timeout: 30 * time.Second}
	var posts []sqlite.SeededPost
	next := sys.postsURL + "/posts?limit=100"
	linkNext := regexp.MustCompile(`<([^>]+)>;\s*rel="next"`)
	for next != "" && len(posts) < 5000 {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, next, nil)
		if err != nil {
			return nil, err
		}
		res, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("bench: list posts: %w", err)
		}
		var page []struct {
			ID        string    `json:"_id"`
			CreatedAt time.Time `json:"createdAt"`
		}
		err = json.NewDecoder(res.Body).Decode(&page)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("bench: list posts: %s %v", res.Status, err)
		}
		for _, p := range page {
			posts = append(posts, sqlite.SeededPost{ID: p.ID, CreatedAt: p.CreatedAt})
		}
		next = ""
		if m := linkNext.FindStringSubmatch(res.Header.Get("Link")); m != nil {
			next = sys.postsURL + m[1]
		}
	}
	if len(posts) == 0 {
		return nil, errors.New("bench: the running system has no posts; create some (or let the bench start its own system)")
	}
	slices.Reverse(posts) // oldest first, as seeded datasets are
	return posts, nil
}

// merge adds o's records to r.
func (r *recorder) merge(o *recorder) {
	r.lat = append(r.lat, o.lat...)
	r.requests += o.requests
	r.errors += o.errors
	if r.firstError == "" {
		r.firstError = o.firstError
	}
	if !o.first.IsZero() && (r.first.IsZero() || o.first.Before(r.first)) {
		r.first = o.first
	}
	if o.last.After(r.last) {
		r.last = o.last
	}
}

// profile starts fetching a CPU profile of the services for the next
// Duration, saved as ProfileDir/<label>-<scenario>.pb.gz, and returns a
// function that waits for it. It does nothing unless profiling.
func (r *runner) profile(ctx context.Context, sys *system, label, scenario string) (wait func()) {
	if r.cfg.ProfileDir == "" || sys.pprofURL == "" || r.noPprof {
		return func() {}
	}
	secs := int((r.cfg.Duration + time.Second - 1) / time.Second)
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", sys.pprofURL, secs)
	file := filepath.Join(r.cfg.ProfileDir, label+"-"+strings.ReplaceAll(scenario, " ", "-")+".pb.gz")
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.saveProfile(ctx, url, file)
	}()
	return func() { <-done }
}

func (r *runner) saveProfile(ctx context.Context, url, file string) {
	body, _, err := fetch(ctx, &http.Client{Timeout: r.cfg.Duration + time.Minute}, url)
	if err != nil {
		r.noPprof = true
		r.note("%v (%v)", errNoPprof, err)
		return
	}
	if err := os.WriteFile(file, body, 0o644); err != nil {
		r.note("save profile: %v", err)
	}
}

// Machine describes where the numbers were measured.
type Machine struct {
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPU        string `json:"cpu"`
	Memory     int64  `json:"memory"`
	Go         string `json:"go"`
	OS         string `json:"os"`
	Kernel     string `json:"kernel"`
}

// ThisMachine describes the machine the bench runs on.
func ThisMachine() Machine {
	m := Machine{
		CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH,
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if f := strings.Fields(rest); len(f) > 0 {
					kb, _ := strconv.ParseInt(f[0], 10, 64)
					m.Memory = kb << 10
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// diskUsage measures the store in dir (its services stopped): the comments
// it holds, its file and WAL, and every table and index.
func diskUsage(ctx context.Context, dir string) (*Disk, error) {
	db, err := sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	d := &Disk{}
	if d.Comments, err = db.CountComments(ctx); err != nil {
		return nil, err
	}
	if d.Objects, err = db.SpaceUsage(ctx); err != nil {
		return nil, err
	}
	for _, suffix := range []string{"", "-wal"} {
		if fi, err := os.Stat(filepath.Join(dir, sqlite.FileName+suffix)); err == nil {
			d.FileBytes += fi.Size()
		}
	}
	return d, nil
}
