package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"blog/internal/bench"
)

// runBench runs `bin bench args...` with an empty BLOG_API_TOKEN, until it
// exits or ctx ends.
func runBench(ctx context.Context, bin string, args []string, stdout, stderr io.Writer) error {
	cmd := exec.CommandContext(ctx, bin, append([]string{"bench"}, args...)...)
	cmd.Env = append(os.Environ(), "BLOG_API_TOKEN=")
	cmd.Stdout, cmd.Stderr = stdout, stderr
	return cmd.Run()
}

// TestBenchQuick runs the CI smoke run of `blog bench -quick` against a real
// system (the binary built from this package, started by the bench on a
// temp dir) and checks that it measured something in every scenario: the
// table has a row per scenario with a non-zero throughput, comments
// propagated, both baselines ran, and the chart and JSON were written. It
// asserts nothing about speed: benchmarks are not timed tests.
func TestBenchQuick(t *testing.T) {
	bin := binary(t)
	dir := t.TempDir()
	chart, results := filepath.Join(dir, "bench.png"), filepath.Join(dir, "bench.json")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var stdout, stderr bytes.Buffer
	args := []string{"-quick", "-bin", bin, "-tmp", dir, "-chart", chart, "-json", results}
	begin := time.Now()
	if err := runBench(ctx, bin, args, &stdout, &stderr); err != nil {
		t.Fatalf("blog bench %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.String())
	}
	t.Logf("quick bench took %v:\n%s", time.Since(begin).Round(time.Millisecond), stdout.String())

	table := stdout.String()
	for _, sc := range bench.Scenarios {
		row := regexp.MustCompile(`(?m)^\| ` + regexp.QuoteMeta(sc) + ` \| 1k \| ([0-9,.]+)/s \|`).FindStringSubmatch(table)
		if row == nil {
			t.Errorf("no table row for %q at 1k", sc)
			continue
		}
		if strings.Trim(row[1], "0,.") == "" {
			t.Errorf("%q: throughput %s/s, want more than zero", sc, row[1])
		}
	}
	for _, want := range []string{"*baseline:* bare net/http GET", "*baseline:* raw SQLite insert", "| target |", "Machine: "} {
		if !strings.Contains(table, want) {
			t.Errorf("the report lacks %q", want)
		}
	}

	var rep bench.Report
	b, err := os.ReadFile(results)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("results JSON: %v", err)
	}
	if len(rep.Sizes) != 1 || rep.Sizes[0].Comments != 1000 || rep.Sizes[0].Posts != 1000/bench.DefaultCommentsPerPost {
		t.Fatalf("sizes measured: %+v, want one of 1000 comments", rep.Sizes)
	}
	s := rep.Sizes[0]
	for _, sc := range bench.Scenarios {
		if st := s.Scenario(sc); st.Rate <= 0 || st.Errors > 0 || st.P50 <= 0 {
			t.Errorf("%s: %+v, want successes only and a rate", sc, st)
		}
	}
	if s.LagGet.Seen == 0 || s.LagGet.Missed > 0 {
		t.Errorf("propagation to GET: %+v, want every paced comment seen", s.LagGet)
	}
	if rep.Bare == nil || rep.Bare.Rate <= 0 || rep.Raw == nil || rep.Raw.Rate <= 0 {
		t.Errorf("baselines: bare %+v, raw %+v; want both measured", rep.Bare, rep.Raw)
	}
	if s.RSS <= 0 || s.Peak < s.RSS {
		t.Errorf("memory: RSS %d, peak %d; want the services' memory read", s.RSS, s.Peak)
	}
	png, err := os.ReadFile(chart)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("chart: not a PNG (%v)", err)
	}
}

// TestBenchRunningSystem measures services the bench did not start, as
// found: nothing is seeded, the posts are discovered through the API, and
// memory is read from the process given with -pid.
func TestBenchRunningSystem(t *testing.T) {
	bin := binary(t)
	dir := t.TempDir()
	var ports [3]int
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	posts, comments := fmt.Sprintf("http://127.0.0.1:%d", ports[0]), fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	cmd := exec.Command(bin, "serve")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BLOG_DATA_DIR="+dir, "HOST=127.0.0.1", "LOG_LEVEL=warn", "BLOG_COMMENT_RATE=0",
		fmt.Sprintf("PORT=%d", ports[0]), fmt.Sprintf("COMMENTS_PORT=%d", ports[1]), fmt.Sprintf("WEB_PORT=%d", ports[2]),
		"MONGO_URI=", "BLOG_API_TOKEN=")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("services' output:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for _, u := range []string{posts + "/readyz", comments + "/readyz"} {
		for {
			res, err := http.Get(u)
			if err == nil {
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not ready", u)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for i := range 3 {
		res, err := http.Post(posts+"/posts", "application/json", strings.NewReader(fmt.Sprintf(`{"title":"post %d","content":"some content"}`, i)))
		if err != nil || res.StatusCode != http.StatusCreated {
			t.Fatalf("create post: %v %v", res, err)
		}
		res.Body.Close()
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	args := []string{"-posts-url", posts, "-comments-url", comments, "-pid", fmt.Sprint(cmd.Process.Pid),
		"-duration", "500ms", "-warmup", "0", "-no-baselines", "-tmp", dir}
	if err := runBench(ctx, bin, args, &stdout, &stderr); err != nil {
		t.Fatalf("blog bench %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.String())
	}
	table := stdout.String()
	for _, sc := range bench.Scenarios {
		if !regexp.MustCompile(`(?m)^\| ` + regexp.QuoteMeta(sc) + ` \| as found \| [0-9,.]*[1-9][0-9,.]*/s \|`).MatchString(table) {
			t.Errorf("no row with a throughput for %q on the running system:\n%s", sc, table)
		}
	}
	if !regexp.MustCompile(`(?m)^\| as found \| 3 \| – \| [0-9]+ MB \|`).MatchString(table) {
		t.Errorf("memory row lacks the 3 posts found or the RSS read through -pid:\n%s", table)
	}
}
