package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"blog/internal/bench"
)

const benchUsage = `usage: blog bench [flags]

Starts the services (this binary's serve) on a temp dir, seeds each dataset
size, drives load through the HTTP API and prints a markdown table of
throughput, latency, propagation lag and memory, with two baselines measured
in the same run. Or, with -posts-url and -comments-url, measures running
services as they are. It measures and reports; it never fails on speed.

  blog bench                                  the full run: 1k, 100k, 1M comments
  blog bench -quick                           a smoke run (CI): 1k, 1s per scenario
  blog bench -chart docs/bench.png -json docs/bench.json

Flags:
`

// benchFlags are `blog bench`'s flags, parsed.
type benchFlags struct {
	cfg      bench.Config
	peer     bench.PeerConfig
	sizes    string
	quick    bool
	chart    string
	jsonOut  string
	bareAddr string
	bareBody string
	noBase   bool
	only     string
	set      map[string]bool // the flags given explicitly
}

// parseBenchFlags parses `blog bench`'s arguments.
func parseBenchFlags(args []string, getenv func(string) string, stderr io.Writer) (*benchFlags, error) {
	fs := flag.NewFlagSet("blog bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, benchUsage)
		fs.PrintDefaults()
	}
	f := &benchFlags{set: map[string]bool{}}
	cfg, peer := &f.cfg, &f.peer
	exe, _ := os.Executable()
	fs.StringVar(&cfg.Binary, "bin", exe, "`path` of the blog binary started (as blog serve) on each dataset")
	fs.StringVar(&cfg.PostsURL, "posts-url", "", "measure a running posts service at this URL instead (with -comments-url)")
	fs.StringVar(&cfg.CommentsURL, "comments-url", "", "measure a running comments service at this URL instead (with -posts-url)")
	fs.IntVar(&cfg.PID, "pid", 0, "with -posts-url: the running services' process id, to read their memory")
	fs.StringVar(&cfg.Token, "token", getenv("BLOG_API_TOKEN"), "bearer token for writes to a running system (env BLOG_API_TOKEN)")
	fs.StringVar(&f.sizes, "sizes", bench.DefaultSizes, "dataset sizes in comments, comma-separated (k and M suffixes allowed)")
	fs.IntVar(&cfg.CommentsPerPost, "per-post", bench.DefaultCommentsPerPost, "comments per seeded post (posts = size / per-post)")
	fs.DurationVar(&cfg.Duration, "duration", bench.DefaultDuration, "how long each scenario is measured")
	fs.DurationVar(&cfg.Warmup, "warmup", bench.DefaultWarmup, "unmeasured load before each scenario")
	fs.IntVar(&cfg.Concurrency, "concurrency", bench.DefaultConcurrency, "requests in flight in the closed-loop scenarios")
	fs.IntVar(&cfg.LagRate, "lag-rate", bench.DefaultLagRate, "comments per second of the propagation scenario")
	fs.IntVar(&cfg.LagPosts, "lag-posts", bench.DefaultLagPosts, "posts the propagation scenario's comments spread over")
	fs.BoolVar(&f.noBase, "no-baselines", false, "skip the bare-handler and raw-insert baselines")
	fs.DurationVar(&cfg.IdleWindow, "idle", bench.DefaultIdleWindow, "measure the services' idle CPU for this long after the scenarios (negative: skip)")
	fs.StringVar(&f.only, "only", "", "run only these scenarios, comma-separated (e.g. \"create comment,propagation\"; for profiling)")
	fs.BoolVar(&f.quick, "quick", false, "smoke run for CI: -sizes 1000 -duration 1s -warmup 0 (flags given explicitly win)")
	fs.StringVar(&f.chart, "chart", "", "write a PNG chart of throughput and latency against dataset size to this file")
	fs.StringVar(&f.jsonOut, "json", "", "write the raw results as JSON to this file")
	fs.StringVar(&cfg.ProfileDir, "profile", "", "save CPU profiles of the services per scenario into this dir (binary built with -tags pprof)")
	fs.StringVar(&cfg.TempDir, "tmp", "", "directory for the datasets (default: the system's temp dir)")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep the datasets after the run")
	fs.StringVar(&peer.Peer, "peer", "", "compare with PocketBase instead: the pbpeer binary built from bench/pocketbase (see bench/run-peer.sh)")
	fs.IntVar(&peer.Rounds, "rounds", 3, "with -peer: rounds, alternating which system goes first")
	fs.IntVar(&peer.Posts, "peer-posts", 5000, "with -peer: posts seeded in both (of -per-post comments)")
	fs.StringVar(&f.bareAddr, "bare-addr", "", "internal: serve the read baseline on this address")
	fs.StringVar(&f.bareBody, "bare-body", "", "internal: the file the read baseline serves")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("bench: unexpected arguments %q", fs.Args())
	}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	return f, nil
}

// benchCmd is `blog bench`: the benchmark suite (package bench). With
// -bare-addr it is instead the read baseline's server, which the bench runs
// from its own binary so the baseline gets a process of its own, as the
// services do.
func benchCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	f, err := parseBenchFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	if f.bareAddr != "" {
		body, err := os.ReadFile(f.bareBody)
		if err != nil {
			return fmt.Errorf("bench: bare server: %w", err)
		}
		return bench.ServeBare(ctx, f.bareAddr, body, "application/json")
	}
	if err := f.complete(); err != nil {
		return err
	}
	if f.peer.Peer != "" {
		return benchPeer(ctx, f, stdout, stderr)
	}
	return benchSuite(ctx, f, stdout, stderr)
}

// complete applies -quick's defaults to the flags not given explicitly and
// checks and resolves the sizes, scenarios and binary path into f.cfg.
func (f *benchFlags) complete() error {
	cfg := &f.cfg
	if f.quick {
		if !f.set["sizes"] {
			f.sizes = "1000"
		}
		if !f.set["duration"] {
			cfg.Duration = time.Second
		}
		if !f.set["warmup"] {
			cfg.Warmup = 0
		}
		if !f.set["idle"] {
			cfg.IdleWindow = 2 * time.Second
		}
	}
	var err error
	if cfg.Sizes, err = bench.ParseSizes(f.sizes); err != nil {
		return fmt.Errorf("bench: -sizes: %w", err)
	}
	cfg.NoBaselines = f.noBase
	for sc := range strings.SplitSeq(f.only, ",") {
		if sc = strings.TrimSpace(sc); sc == "" {
			continue
		}
		if !slices.Contains(bench.Scenarios, sc) && sc != bench.Propagation {
			return fmt.Errorf("bench: -only: no scenario %q (have %q and %q)", sc, bench.Scenarios, bench.Propagation)
		}
		cfg.Only = append(cfg.Only, sc)
	}
	if cfg.Binary == "" {
		return errors.New("bench: cannot tell this program's path; give -bin")
	}
	if cfg.Binary, err = filepath.Abs(cfg.Binary); err != nil {
		return fmt.Errorf("bench: -bin: %w", err)
	}
	return nil
}

// benchPeer is `blog bench -peer`: the comparison with PocketBase.
func benchPeer(ctx context.Context, f *benchFlags, stdout, stderr io.Writer) error {
	cfg, peer := &f.cfg, &f.peer
	peer.Binary, peer.PerPost, peer.TempDir, peer.Progress = cfg.Binary, cfg.CommentsPerPost, cfg.TempDir, stderr
	if f.set["duration"] || f.quick {
		peer.Duration = cfg.Duration
	}
	if f.quick {
		peer.Posts, peer.HotComments, peer.LagRate = min(peer.Posts, 200), 100, 100
	}
	if f.set["lag-rate"] {
		peer.LagRate = cfg.LagRate
	}
	var err error
	if peer.Peer, err = filepath.Abs(peer.Peer); err != nil {
		return fmt.Errorf("bench: -peer: %w", err)
	}
	rep, err := bench.RunPeer(ctx, *peer)
	if rep != nil && len(rep.Rounds) > 0 {
		if werr := bench.WritePeerMarkdown(stdout, rep); werr != nil && err == nil {
			err = werr
		}
		if f.jsonOut != "" {
			if jerr := writeJSON(f.jsonOut, rep); jerr != nil && err == nil {
				err = jerr
			}
		}
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// benchSuite is `blog bench` itself: the suite over each dataset size, or
// over running services.
func benchSuite(ctx context.Context, f *benchFlags, stdout, stderr io.Writer) error {
	cfg := f.cfg
	// The read baseline's server is this same binary's `bench -bare-addr`.
	cfg.Self = []string{cfg.Binary, "bench"}
	cfg.Progress = stderr
	rep, err := bench.Run(ctx, cfg)
	if rep != nil && len(rep.Sizes) > 0 {
		if werr := bench.WriteMarkdown(stdout, rep); werr != nil && err == nil {
			err = werr
		}
		if f.chart != "" {
			if cerr := writeFile(f.chart, func(w io.Writer) error { return bench.WriteChart(w, rep) }); cerr != nil && err == nil {
				err = cerr
			}
		}
		if f.jsonOut != "" {
			if jerr := writeJSON(f.jsonOut, rep); jerr != nil && err == nil {
				err = jerr
			}
		}
	}
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "bench: interrupted; the table shows what was measured")
		return nil
	}
	return err
}

// writeJSON writes v as indented JSON to the file name (see writeFile).
func writeJSON(name string, v any) error {
	return writeFile(name, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	})
}

// writeFile writes a file through fn, creating its directory.
func writeFile(name string, fn func(io.Writer) error) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := fn(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	return f.Close()
}
