package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is a child process the bench started (the services, or the bare
// baseline server), with the tail of its output for when it fails.
type process struct {
	cmd  *exec.Cmd
	out  *tail
	done chan struct{}
	err  error // set before done closes
}

// startProcess runs bin with args in dir, with env as its whole environment.
func startProcess(bin string, args []string, dir string, env []string) (*process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Env = dir, env
	out := &tail{max: 64 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &process{cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// pid is the process id, for reading its memory.
func (p *process) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop asks the process to shut down (SIGTERM), as an operator would, and
// kills it if it has not within grace.
func (p *process) stop(grace time.Duration) error {
	if p.exited() {
		return p.exitErr()
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.exitErr()
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("did not stop within %v of SIGTERM; killed", grace)
	}
}

func (p *process) exitErr() error {
	if p.err != nil {
		return fmt.Errorf("%w; its output ends:\n%s", p.err, p.out)
	}
	return nil
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(b), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// freePort returns a TCP port of the loopback interface that was free a
// moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// serviceEnv is the whole environment the services run with: the bench's
// own, minus every setting of the blog (so neither MONGO_URI nor a token nor
// a port of the caller's leaks in), plus the given settings.
func serviceEnv(set map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "BLOG_"), k == "MONGO_URI", k == "PORT", k == "COMMENTS_PORT", k == "WEB_PORT",
			k == "POSTS_URL", k == "COMMENTS_URL", k == "HOST", k == "LOG_LEVEL":
			continue
		}
		env = append(env, kv)
	}
	for k, v := range set {
		env = append(env, k+"="+v)
	}
	return env
}

// system is the blog under test: its two base URLs, and the process when the
// bench started it.
type system struct {
	postsURL, commentsURL string
	proc                  *process
	pprofURL              string // "" unless profiling
}

// startSystem runs `bin serve` on the embedded store in dir, with the
// comment rate limit off, and waits until both APIs are ready. Every port
// serve opens (the web front end's too, idle here) is a free one, so the
// bench runs beside anything else on the machine, its own other runs too.
func startSystem(ctx context.Context, bin, dir string, profile bool) (*system, error) {
	var ports [3]int
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	pp, cp := ports[0], ports[1]
	set := map[string]string{
		"BLOG_DATA_DIR":     dir,
		"HOST":              "127.0.0.1",
		"PORT":              strconv.Itoa(pp),
		"COMMENTS_PORT":     strconv.Itoa(cp),
		"WEB_PORT":          strconv.Itoa(ports[2]),
		"BLOG_COMMENT_RATE": "0",
		// The load generator is one client address: the per-address cap
		// on live streams (8) would refuse the propagation scenario's
		// subscribers with 429s and leave it without an SSE figure.
		"BLOG_STREAMS_PER_CLIENT": "0",
		"LOG_LEVEL":               "warn",
	}
	s := &system{
		postsURL:    fmt.Sprintf("http://127.0.0.1:%d", pp),
		commentsURL: fmt.Sprintf("http://127.0.0.1:%d", cp),
	}
	if profile {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		set["BLOG_PPROF_ADDR"] = fmt.Sprintf("127.0.0.1:%d", port)
		s.pprofURL = "http://" + set["BLOG_PPROF_ADDR"]
	}
	var err error
	if s.proc, err = startProcess(bin, []string{"serve"}, dir, serviceEnv(set)); err != nil {
		return nil, err
	}
	if err := waitReady(ctx, s.proc, 2*time.Minute, s.postsURL+"/readyz", s.commentsURL+"/readyz"); err != nil {
		_ = s.proc.stop(5 * time.Second)
		return nil, fmt.Errorf("the services did not get ready: %w; their output ends:\n%s", err, s.proc.out)
	}
	return s, nil
}

// stop shuts the services down, if the bench started them.
func (s *system) stop() error {
	if s.proc == nil {
		return nil
	}
	return s.proc.stop(30 * time.Second)
}

// waitReady polls each URL until it answers 200, the process (if any) exits,
// or within passes.
func waitReady(ctx context.Context, p *process, within time.Duration, urls ...string) error {
	deadline := time.Now().Add(within)
	client := &http.Client{Timeout: 2 * time.Second}
	for _, u := range urls {
		for {
			if p != nil && p.exited() {
				return fmt.Errorf("the process exited: %v", p.err)
			}
			if ok(ctx, client, u) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not ready after %v", u, within)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

func ok(ctx context.Context, c *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	res, err := c.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}

// memory reads a process's resident set now (VmRSS) and at its peak (VmHWM)
// from /proc, in bytes; zeros where /proc is not there (not Linux).
func memory(pid int) (rss, peak int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, found := strings.Cut(sc.Text(), ":")
		if !found {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			rss = n << 10
		case "VmHWM":
			peak = n << 10
		}
	}
	return rss, peak
}

// BareHandler answers every request with body as contentType: the ceiling
// for a read, net/http and nothing else.
func BareHandler(body []byte, contentType string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", contentType)
		_, _ = w.Write(body)
	})
}

// ServeBare serves BareHandler on addr until ctx ends. `blog bench` runs it
// in a process of its own (the bench re-executes its binary), so the
// baseline meets the load generator across processes, as the services do.
func ServeBare(ctx context.Context, addr string, body []byte, contentType string) error {
	srv := &http.Server{Addr: addr, Handler: BareHandler(body, contentType), ReadHeaderTimeout: 5 * time.Second}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	}
}

// bareServer is the running read baseline.
type bareServer struct {
	url  string
	proc *process     // when it runs in a process of its own
	srv  *http.Server // when it runs in the bench's process
	// where says which, for the report.
	where string
}

// startBare starts the read baseline serving body: in a process of its own
// when self (the command line that runs ServeBare, given "-bare-addr ADDR
// -bare-body FILE") is set and works, else in this process.
func startBare(ctx context.Context, self []string, tmp string, body []byte, contentType string) (*bareServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	b := &bareServer{url: "http://" + addr}
	if len(self) > 0 {
		file := tmp + "/bare-body.json"
		if err := os.WriteFile(file, body, 0o644); err != nil {
			return nil, err
		}
		args := append(append([]string{}, self[1:]...), "-bare-addr", addr, "-bare-body", file)
		p, err := startProcess(self[0], args, tmp, os.Environ())
		if err == nil {
			if err = waitReady(ctx, p, 10*time.Second, b.url+"/"); err == nil {
				b.proc, b.where = p, "own process"
				return b, nil
			}
			_ = p.stop(time.Second)
		}
		// Fall through: e.g. a binary whose main does not dispatch to
		// `bench` yet. The report says where the baseline ran.
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	b.srv = &http.Server{Handler: BareHandler(body, contentType), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = b.srv.Serve(ln) }()
	b.where = "bench process"
	return b, nil
}

func (b *bareServer) stop() {
	if b.proc != nil {
		_ = b.proc.stop(5 * time.Second)
	}
	if b.srv != nil {
		_ = b.srv.Close()
	}
}

// fetch GETs url and returns the body and Content-Type of a 200.
func fetch(ctx context.Context, c *http.Client, url string) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, "", err
	}
	res, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, "", err
	}
	if res.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("GET %s: %s: %s", url, res.Status, bytes.TrimSpace(body))
	}
	return body, res.Header.Get("Content-Type"), nil
}

// errNoPprof means the services were not built with pprof (-tags pprof).
var errNoPprof = errors.New("the services serve no pprof endpoint: build the binary with -tags pprof")

// cpuSnap is a reading of CPU time used so far: by the whole machine
// (busy), by the server under load (svc) and by the bench itself (self), in
// clock ticks.
type cpuSnap struct {
	at              time.Time
	busy, svc, self int64
	ok              bool
}

// clockTicks is USER_HZ, the unit of /proc's CPU times: 100 on every Linux
// the bench is meant for.
const clockTicks = 100

// snapCPU reads the CPU times of the machine, of process pid, and of the
// bench's own process from /proc; ok is false where /proc is not there.
func snapCPU(pid int) cpuSnap {
	s := cpuSnap{at: time.Now()}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return s
	}
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 8 { // guest time is already counted in user
			break
		}
		s.busy += n
	}
	s.self = procTicks(os.Getpid())
	if pid > 0 {
		s.svc = procTicks(pid)
	}
	s.ok = true
	return s
}

// procTicks returns a process's user plus system time, in clock ticks.
func procTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name is parenthesised and may hold spaces: fields count
	// from after its closing parenthesis. utime and stime are fields 14 and
	// 15 of the line, so 12 and 13 after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

// CPU is how many cores were busy during a scenario, and with what: the
// server under load, the bench itself (the load generator), and everything
// else on the machine (noise: other processes competing for the cores).
type CPU struct {
	Server float64 `json:"server"`
	Bench  float64 `json:"bench"`
	Other  float64 `json:"other"`
}

// since returns the cores used between a and b.
func (b cpuSnap) since(a cpuSnap) CPU {
	secs := b.at.Sub(a.at).Seconds()
	if !a.ok || !b.ok || secs <= 0 {
		return CPU{}
	}
	cores := func(ticks int64) float64 { return float64(ticks) / clockTicks / secs }
	c := CPU{Server: cores(b.svc - a.svc), Bench: cores(b.self - a.self)}
	c.Other = max(0, cores(b.busy-a.busy)-c.Server-c.Bench)
	return c
}
