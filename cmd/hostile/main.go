// Command hostile starts `blog serve` and attacks it the ways issue 11
// describes, on loopback only and bounded in count and time, while it
// watches the process: how long /livez takes to answer and how much memory
// (RSS) the process holds. It is a check of limits, not a benchmark of
// speed.
//
//	go build -o /tmp/blog ./cmd/blog
//	go run ./cmd/hostile -bin /tmp/blog -attack all
//
// Attacks:
//
//	streams  10,000 live-stream attempts on a post with 50 comments of
//	         10 KB, through the web front end, from one address, then the
//	         same from 1,250 loopback addresses (127.1.x.y), so that both the
//	         per-client and the process cap are reached
//	lists    24 clients looping GET /posts?limit=100 over 100 such posts,
//	         plus 16 clients that send the request and never read
//	forged   300,000 POST /comments with a distinct X-Forwarded-For each
//	         (invalid bodies: nothing is stored)
//
// It exits non-zero when /livez took longer than -livez or the RSS went
// over -rss; it kills the server (and says so) past -kill-rss, so a build
// without the limits cannot take the machine down.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// verbose is -v: say when slow probes and attack phases happen.
var verbose bool

// phase notes, with -v, that an attack phase begins.
func phase(what string) {
	if verbose {
		fmt.Fprintf(os.Stderr, "  %s: %s\n", time.Now().Format("15:04:05.000"), what)
	}
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "hostile:", err)
		os.Exit(1)
	}
}

type options struct {
	bin                 string
	livez               time.Duration
	rss, killRSS        int64 // bytes
	streams, forged     int
	listFor             time.Duration
	posts, commentsEach int
	commentBytes        int
	keepLog             bool
	sources             []int // stream rounds: how many source addresses each
}

func run() error {
	var o options
	var attack string
	var rssMB, killMB int64
	flag.StringVar(&o.bin, "bin", "", "path of the blog binary to attack (required)")
	flag.StringVar(&attack, "attack", "all", "streams, lists, forged (several: comma-separated) or all")
	flag.DurationVar(&o.livez, "livez", 100*time.Millisecond, "the longest /livez may take")
	flag.Int64Var(&rssMB, "rss", 300, "the most RSS the process may reach, MB")
	flag.Int64Var(&killMB, "kill-rss", 1500, "kill the server past this RSS, MB")
	flag.IntVar(&o.streams, "streams", 10_000, "stream attempts per round")
	flag.IntVar(&o.forged, "forged", 300_000, "requests with forged addresses")
	flag.DurationVar(&o.listFor, "list-for", 20*time.Second, "how long the list clients run")
	flag.IntVar(&o.posts, "posts", 100, "posts seeded for the lists attack")
	flag.IntVar(&o.commentsEach, "comments", 50, "comments seeded per post")
	flag.IntVar(&o.commentBytes, "comment-bytes", 10_000, "bytes of each seeded comment (ASCII; the most a comment may hold)")
	flag.BoolVar(&o.keepLog, "log", false, "print the server's log at the end")
	flag.BoolVar(&verbose, "v", false, "print each /livez answer over 100 ms, and when each attack phase begins")
	sources := flag.String("sources", "1,1250", "stream rounds, each from this many loopback addresses")
	probe := flag.String("probe", "", "internal: probe these URLs (comma-separated) every 50 ms until stdin closes")
	control := flag.Bool("control", false, "internal: serve /livez on a free loopback port, print its URL, until stdin closes")
	flag.Parse()
	if *probe != "" {
		return probeLoop(strings.Split(*probe, ","))
	}
	if *control {
		return serveControl()
	}
	if o.bin == "" {
		return errors.New("-bin is required (go build -o /tmp/blog ./cmd/blog)")
	}
	o.rss, o.killRSS = rssMB<<20, killMB<<20
	for _, f := range strings.Split(*sources, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 60_000 {
			return fmt.Errorf("-sources: %q is not a count from 1 to 60000", f)
		}
		o.sources = append(o.sources, n)
	}
	attacks := map[string]func(context.Context, *server, options, []string) (string, error){
		"streams": attackStreams, "lists": attackLists, "forged": attackForged,
	}
	names := strings.Split(attack, ",")
	if attack == "all" {
		names = []string{"streams", "lists", "forged"}
	}
	failed := false
	for _, name := range names {
		fn, ok := attacks[name]
		if !ok {
			return fmt.Errorf("unknown attack %q", name)
		}
		ok, err := runOne(name, fn, o)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		failed = failed || !ok
	}
	if failed {
		return errors.New("a limit was exceeded")
	}
	return nil
}

// runOne starts a fresh server, runs one attack under the monitor and
// prints the result; it reports whether the limits held.
func runOne(name string, attack func(context.Context, *server, options, []string) (string, error), o options) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	srv, err := start(ctx, o.bin)
	if err != nil {
		return false, err
	}
	defer srv.stop(o.keepLog)
	target := srv.web
	switch name {
	case "lists":
		target = srv.posts
	case "forged":
		target = srv.comments
	}
	// Seed before watching: the attack is measured, not the set-up.
	var ids []string
	switch name {
	case "streams":
		ids, err = srv.seed(ctx, 1, o.commentsEach, o.commentBytes)
	case "lists":
		ids, err = srv.seed(ctx, o.posts, o.commentsEach, o.commentBytes)
	}
	if err != nil {
		return false, err
	}
	// The same probe before the attack: the machine's own noise (it is
	// shared), the baseline the attack's figures compare with.
	calm := watch(srv.cmd.Process.Pid, target+"/livez", o.killRSS)
	time.Sleep(2 * time.Second)
	base := calm.stop()
	mon := watch(srv.cmd.Process.Pid, target+"/livez", o.killRSS)
	phase("watch begins")
	cpu0, wall0 := cpuTime(srv.cmd.Process.Pid), time.Now()
	note, err := attack(ctx, srv, o, ids)
	cpu, wall := cpuTime(srv.cmd.Process.Pid)-cpu0, time.Since(wall0)
	st := mon.stop()
	if err != nil {
		return false, err
	}
	ok := st.maxLivez <= o.livez && st.livezFailed == 0 && st.peakRSS <= o.rss && !st.killed
	verdict := "held"
	if !ok {
		verdict = "EXCEEDED"
	}
	fmt.Printf("%-8s %s | /livez max %v p99 %v median %v over %d probes, %d failed (idle before: max %v median %v; idle control process meanwhile: max %v p99 %v) | RSS start %d MB, peak %d MB, end %d MB | limits (%v, %d MB) %s\n",
		name, note, st.maxLivez.Round(time.Millisecond), st.p99.Round(time.Millisecond), st.median.Round(time.Millisecond), st.probes, st.livezFailed,
		base.maxLivez.Round(time.Millisecond), base.median.Round(time.Millisecond), st.ctlMax.Round(time.Millisecond), st.ctlP99.Round(time.Millisecond),
		st.startRSS>>20, st.peakRSS>>20, st.endRSS>>20, o.livez, o.rss>>20, verdict)
	fmt.Printf("%-8s server CPU %v over %v of attack (%.2f cores)\n", name, cpu.Round(time.Millisecond), wall.Round(time.Millisecond), cpu.Seconds()/wall.Seconds())
	if st.killed {
		fmt.Printf("%-8s the server passed %d MB and was killed\n", name, o.killRSS>>20)
	}
	return ok, nil
}

// server is a running `blog serve`.
type server struct {
	cmd                  *exec.Cmd
	dir                  string
	posts, comments, web string
	token                string
	out                  *bytes.Buffer
	outMu                *sync.Mutex
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func start(ctx context.Context, bin string) (*server, error) {
	dir, err := os.MkdirTemp("", "hostile-")
	if err != nil {
		return nil, err
	}
	var ports [3]int
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	s := &server{
		dir:      dir,
		posts:    fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		comments: fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		web:      fmt.Sprintf("http://127.0.0.1:%d", ports[2]),
		token:    "hostile-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		out:      &bytes.Buffer{},
		outMu:    &sync.Mutex{},
	}
	s.cmd = exec.CommandContext(ctx, bin, "serve")
	s.cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "HOST=127.0.0.1",
		"PORT=" + strconv.Itoa(ports[0]), "COMMENTS_PORT=" + strconv.Itoa(ports[1]), "WEB_PORT=" + strconv.Itoa(ports[2]),
		"BLOG_DATA_DIR=" + filepath.Join(dir, "data"), "BLOG_API_TOKEN=" + s.token, "LOG_LEVEL=warn",
	}
	w := lockedWriter{s.outMu, s.out}
	s.cmd.Stdout, s.cmd.Stderr = w, w
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, base := range []string{s.posts, s.comments, s.web} {
		for {
			res, err := http.Get(base + "/readyz")
			if err == nil {
				res.Body.Close()
				if res.StatusCode == 200 {
					break
				}
			}
			if time.Now().After(deadline) {
				s.stop(true)
				return nil, fmt.Errorf("%s not ready within 30 s", base)
			}
			time.Sleep(50 * time.Millisecond) // start-up poll, bounded above
		}
	}
	return s, nil
}

func (s *server) stop(printLog bool) {
	if s.cmd.ProcessState == nil {
		_ = s.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = s.cmd.Process.Kill()
			<-done
		}
	}
	if printLog {
		s.outMu.Lock()
		fmt.Fprintf(os.Stderr, "--- server log ---\n%s", s.out.String())
		s.outMu.Unlock()
	}
	_ = os.RemoveAll(s.dir)
}

// monitor probes /livez every 50 ms and samples the RSS.
type monitor struct {
	stopc chan struct{}
	done  chan stats
}

type stats struct {
	probes, livezFailed       int
	maxLivez, p99, median     time.Duration
	ctlMax, ctlP99            time.Duration // an idle process on the same machine, in the same ticks
	startRSS, peakRSS, endRSS int64
	killed                    bool
}

// cpuTime is the user and system CPU time pid has used (clock ticks of
// 10 ms, as Linux reports them in /proc/pid/stat).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * 10 * time.Millisecond
}

func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// watch samples pid's RSS every 50 ms (killing it past killAt) and probes
// livez every 50 ms from a child process of its own, so that the probe's
// timings are not delayed by the attack's goroutines in this process.
func watch(pid int, livez string, killAt int64) *monitor {
	m := &monitor{stopc: make(chan struct{}), done: make(chan stats, 1)}
	self, err := os.Executable()
	if err != nil {
		panic(err) // a tool, not a service: no way on without it
	}
	// A control: the same /livez answer from an idle process of its own,
	// probed in the same ticks, shows what the shared machine alone costs.
	ctl := exec.Command(self, "-control")
	ctlIn, _ := ctl.StdinPipe()
	ctlOut, _ := ctl.StdoutPipe()
	if err := ctl.Start(); err != nil {
		panic(err)
	}
	ctlURL, err := bufio.NewReader(ctlOut).ReadString('\n')
	if err != nil {
		panic(err)
	}
	probe := exec.Command(self, "-probe", livez+","+strings.TrimSpace(ctlURL)+"/livez")
	stdin, _ := probe.StdinPipe()
	stdout, _ := probe.StdoutPipe()
	probe.Stderr = os.Stderr
	if err := probe.Start(); err != nil {
		panic(err)
	}
	probed := make(chan probeResult, 1)
	go func() { probed <- readProbes(stdout) }()
	go func() {
		st := stats{startRSS: rss(pid)}
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-m.stopc:
				st.endRSS = rss(pid)
				stdin.Close()
				r := <-probed
				_ = probe.Wait()
				ctlIn.Close()
				_ = ctl.Wait()
				st.summarize(r)
				m.done <- st
				return
			case <-tick.C:
			}
			if r := rss(pid); r > st.peakRSS {
				st.peakRSS = r
				if r > killAt && !st.killed {
					st.killed = true
					if p, err := os.FindProcess(pid); err == nil {
						_ = p.Kill()
					}
				}
			}
		}
	}()
	return m
}

// probeResult is what the probe process measured: /livez latencies of the
// service and of the control, and the service's failed probes.
type probeResult struct {
	lat, control []time.Duration
	failed       int
}

// readProbes reads the probe process's lines ("<which> <µs> [<unix ms>]";
// which 0 is the service, else the control; a µs that is not a number is a
// failed probe) until its output ends.
func readProbes(stdout io.Reader) probeResult {
	var r probeResult
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		which := f[0]
		us, err := strconv.ParseInt(f[1], 10, 64)
		at := time.Now()
		if len(f) > 2 {
			ms, _ := strconv.ParseInt(f[2], 10, 64)
			at = time.UnixMilli(ms)
		}
		switch {
		case err != nil && which == "0":
			r.failed++
		case err != nil:
		case which == "0":
			d := time.Duration(us) * time.Microsecond
			r.lat = append(r.lat, d)
			if verbose && d > 100*time.Millisecond {
				fmt.Fprintf(os.Stderr, "  slow /livez: %v, asked at %s\n", d.Round(time.Millisecond), at.Format("15:04:05.000"))
			}
		default:
			r.control = append(r.control, time.Duration(us)*time.Microsecond)
		}
	}
	return r
}

// summarize records r's percentiles in st.
func (st *stats) summarize(r probeResult) {
	c := r.control
	sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
	if len(c) > 0 {
		st.ctlMax, st.ctlP99 = c[len(c)-1], c[len(c)*99/100]
	}
	lat := r.lat
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		st.maxLivez, st.p99, st.median = lat[len(lat)-1], lat[len(lat)*99/100], lat[len(lat)/2]
	}
	st.livezFailed = r.failed
	st.probes = len(lat) + r.failed
}

// serveControl answers GET /livez on a free loopback port, printing its
// base URL, until its standard input closes.
func serveControl() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("http://%s\n", ln.Addr())
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); ln.Close() }()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok"}`+"\n")
	})
	err = http.Serve(ln, mux)
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// probeLoop GETs each of urls every 50 ms, printing "<index> <time in
// microseconds>" (or "<index> fail") per answer, until its standard input
// closes.
func probeLoop(urls []string) error {
	clients := make([]*http.Client, len(urls))
	for i := range clients {
		clients[i] = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	}
	done := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(done) }()
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return nil
		case <-tick.C:
		}
		for i, url := range urls {
			t0 := time.Now()
			res, err := clients[i].Get(url)
			if err != nil {
				fmt.Fprintln(out, i, "fail")
				continue
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				fmt.Fprintln(out, i, "fail")
				continue
			}
			fmt.Fprintln(out, i, time.Since(t0).Microseconds(), t0.UnixMilli())
		}
	}
}

func (m *monitor) stop() stats {
	close(m.stopc)
	return <-m.done
}

// call sends a JSON request with the token and decodes the answer.
func (s *server) call(method, url string, body, out any) error {
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(method, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != 201 {
		msg, _ := io.ReadAll(io.LimitReader(res.Body, 500))
		return fmt.Errorf("%s %s: %d %s", method, url, res.StatusCode, msg)
	}
	if out != nil {
		return json.NewDecoder(res.Body).Decode(out)
	}
	return nil
}

// seed makes n posts with each comments of size bytes, and waits until the
// last post embeds them.
func (s *server) seed(ctx context.Context, n, each, size int) ([]string, error) {
	var ids []string
	for i := range n {
		var p struct {
			ID string `json:"_id"`
		}
		if err := s.call("POST", s.posts+"/posts", map[string]string{"title": fmt.Sprintf("post %d", i), "content": "content"}, &p); err != nil {
			return nil, err
		}
		ids = append(ids, p.ID)
	}
	jobs := make(chan string)
	errc := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for id := range jobs {
				for j := range each {
					text := strings.Repeat(string(rune('a'+j%26)), size)
					if err := s.call("POST", s.comments+"/comments", map[string]string{"postId": id, "text": text}, nil); err != nil {
						select {
						case errc <- err:
						default:
						}
						return
					}
				}
			}
		})
	}
	for _, id := range ids {
		jobs <- id
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errc:
		return nil, err
	default:
	}
	last := ids[len(ids)-1]
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var p struct {
			Comments []json.RawMessage `json:"comments"`
		}
		res, err := http.Get(s.posts + "/posts/" + last)
		if err == nil {
			_ = json.NewDecoder(res.Body).Decode(&p)
			res.Body.Close()
			if len(p.Comments) >= each {
				return ids, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, errors.New("the seeded comments did not reach their posts within 3 min")
		}
		time.Sleep(200 * time.Millisecond) // poll the sync, bounded above
	}
}

// attackStreams makes o.streams attempts at a live stream from one
// address, then as many from 1,250 addresses, holding every stream it gets
// (reading it through a small buffer) until the round ends.
func attackStreams(ctx context.Context, s *server, o options, ids []string) (string, error) {
	addr := strings.TrimPrefix(s.web, "http://")
	var notes []string
	for _, sources := range o.sources {
		phase(fmt.Sprintf("streams: %d attempts from %d address(es)", o.streams, sources))
		counts := map[string]*atomic.Int64{"200": {}, "429": {}, "503": {}, "other": {}, "error": {}}
		var held sync.WaitGroup
		roundCtx, endRound := context.WithCancel(ctx)
		sem := make(chan struct{}, 200)
		var tries sync.WaitGroup
		for i := range o.streams {
			src := net.IPv4(127, 1, byte(i%sources/250), byte(i%sources%250+1))
			if sources == 1 {
				src = net.IPv4(127, 0, 0, 1)
			}
			sem <- struct{}{}
			tries.Go(func() {
				defer func() { <-sem }()
				code, conn, err := openStream(roundCtx, src, addr, "/posts/"+ids[0]+"/events")
				switch {
				case err != nil:
					counts["error"].Add(1)
				case code == 200:
					counts["200"].Add(1)
					held.Go(func() {
						defer conn.Close()
						stop := context.AfterFunc(roundCtx, func() { conn.Close() })
						defer stop()
						buf := make([]byte, 4096)
						for {
							if _, err := conn.Read(buf); err != nil {
								return
							}
						}
					})
				case code == 429 || code == 503:
					counts[strconv.Itoa(code)].Add(1)
				default:
					counts["other"].Add(1)
				}
			})
		}
		tries.Wait()
		phase("streams: all attempts answered; holding")
		time.Sleep(2 * time.Second) // hold every admitted stream a moment, under the monitor
		endRound()
		held.Wait()
		phase("streams: round over")
		notes = append(notes, fmt.Sprintf("%d attempts from %d address(es): %d streamed, %d 429, %d 503, %d other, %d errors",
			o.streams, sources, counts["200"].Load(), counts["429"].Load(), counts["503"].Load(), counts["other"].Load(), counts["error"].Load()))
	}
	return strings.Join(notes, "; "), nil
}

// openStream sends GET path from the local address src and reads the
// status line; a 200's connection is returned open.
func openStream(ctx context.Context, src net.IP, addr, path string) (int, net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", path, addr)
	line, err := bufio.NewReaderSize(conn, 256).ReadString('\n')
	if err != nil {
		conn.Close()
		return 0, nil, err
	}
	f := strings.Fields(line)
	if len(f) < 2 {
		conn.Close()
		return 0, nil, fmt.Errorf("bad status line %q", line)
	}
	code, _ := strconv.Atoi(f[1])
	if code != 200 {
		conn.Close()
		return code, nil, nil
	}
	_ = conn.SetDeadline(time.Time{})
	return code, conn, nil
}

// attackLists runs 24 clients looping GET /posts?limit=100 over posts
// with many large comments, and 16 that send it and never read.
func attackLists(ctx context.Context, s *server, o options, _ []string) (string, error) {
	addr := strings.TrimPrefix(s.posts, "http://")
	var slow []net.Conn
	for range 16 {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(conn, "GET /posts?limit=100 HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
		slow = append(slow, conn)
	}
	defer func() {
		for _, c := range slow {
			c.Close()
		}
	}()
	var requests, bytesRead, maxBody, items, parsed atomic.Int64
	end := time.Now().Add(o.listFor)
	var wg sync.WaitGroup
	for range 24 {
		wg.Go(func() {
			client := &http.Client{Timeout: 30 * time.Second}
			for time.Now().Before(end) && ctx.Err() == nil {
				res, err := client.Get(s.posts + "/posts?limit=100")
				if err != nil {
					continue
				}
				// Count the bytes; parse one answer in 20 for its items
				// (parsing all would load this process, not the server).
				var n int64
				if requests.Add(1)%20 == 1 {
					var posts []json.RawMessage
					body, _ := io.ReadAll(res.Body)
					_ = json.Unmarshal(body, &posts)
					n = int64(len(body))
					items.Add(int64(len(posts)))
					parsed.Add(1)
				} else {
					n, _ = io.Copy(io.Discard, res.Body)
				}
				res.Body.Close()
				bytesRead.Add(n)
				for {
					m := maxBody.Load()
					if n <= m || maxBody.CompareAndSwap(m, n) {
						break
					}
				}
			}
		})
	}
	wg.Wait()
	n := max(requests.Load(), 1)
	return fmt.Sprintf("%d posts of %d comments x %d B; 24 clients x %v + 16 non-reading: %d requests, %.1f posts and %d KB a page on average, largest page %d KB",
		o.posts, o.commentsEach, o.commentBytes, o.listFor, requests.Load(), float64(items.Load())/float64(max(parsed.Load(), 1)), bytesRead.Load()/n>>10, maxBody.Load()>>10), nil
}

// attackForged sends o.forged POST /comments, each claiming another client
// address in X-Forwarded-For, with a body the service refuses.
func attackForged(ctx context.Context, s *server, o options, _ []string) (string, error) {
	counts := make([]atomic.Int64, 600)
	var errs atomic.Int64
	jobs := make(chan int, 256)
	var wg sync.WaitGroup
	start := time.Now()
	for range 32 {
		wg.Go(func() {
			client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			for i := range jobs {
				req, _ := http.NewRequestWithContext(ctx, "POST", s.comments+"/comments", strings.NewReader(`{}`))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
				res, err := client.Do(req)
				if err != nil {
					errs.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode < len(counts) {
					counts[res.StatusCode].Add(1)
				}
			}
		})
	}
	for i := range o.forged {
		if ctx.Err() != nil {
			break
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	var parts []string
	for code := range counts {
		if n := counts[code].Load(); n > 0 {
			parts = append(parts, fmt.Sprintf("%d x %d", n, code))
		}
	}
	return fmt.Sprintf("%d requests with distinct X-Forwarded-For in %v: %s, %d errors",
		o.forged, time.Since(start).Round(time.Second), strings.Join(parts, ", "), errs.Load()), nil
}
