package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"blog/internal/store/sqlite"
)

// The peer comparison (`blog bench -peer PBPEER`): the blog and PocketBase
// (bench/pocketbase, built with its own Go module) on the same dataset, run
// one after the other in alternating order, round after round, each alone
// on the machine while measured. Each round yields a ratio per measure
// (ours / PocketBase); the report gives their median.

// PeerConfig is one side-by-side run.
type PeerConfig struct {
	// Binary is the blog binary; Peer the pbpeer binary
	// (bench/pocketbase).
	Binary, Peer string
	// Posts of PerPost comments are seeded in both; then HotComments
	// comments are created through each API on the Hot newest posts (the
	// posts under test, read by the read scenario).
	Posts, PerPost, Hot, HotComments int
	// Rounds of every measure; Duration of each load.
	Rounds   int
	Duration time.Duration
	// CreateWorkers and ReadWorkers are the requests in flight of the
	// create and read scenarios.
	CreateWorkers, ReadWorkers int
	// LagRate comments per second over LagPosts posts, for propagation.
	LagRate, LagPosts int
	TempDir           string
	Progress          io.Writer
}

func (c *PeerConfig) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.Posts, 5000)
	def(&c.PerPost, 20)
	def(&c.Hot, 10)
	def(&c.HotComments, 1000)
	def(&c.Rounds, 3)
	def(&c.CreateWorkers, 16)
	def(&c.ReadWorkers, 8)
	def(&c.LagRate, 400)
	def(&c.LagPosts, 20)
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
}

// PeerSide is what one round measured of one system.
type PeerSide struct {
	Create, Read, List Stat
	SSE                Lag
	RSS                int64
	Startup            time.Duration
	// DiskPerComment is the database file (and WAL) over the comments it
	// holds, after the round.
	DiskPerComment float64
}

// PeerRound is one round: both systems, and which ran first.
type PeerRound struct {
	OursFirst bool
	Ours      PeerSide
	Peer      PeerSide
}

// PeerReport is a whole side-by-side run.
type PeerReport struct {
	Machine Machine     `json:"machine"`
	Config  PeerConfig  `json:"config"`
	Rounds  []PeerRound `json:"rounds"`
}

// peerTarget is one of the two systems.
type peerTarget interface {
	name() string
	// start runs the system and returns how long until its first 200 to a
	// read of a post under test.
	start(ctx context.Context) (time.Duration, error)
	stop() error
	pid() int
	createComment(ctx context.Context, c *http.Client, post string) (string, error)
	readPost(ctx context.Context, c *http.Client, post string) error
	newestPage(ctx context.Context, c *http.Client) error
	// subscribe follows the comments of posts in real time.
	subscribe(ctx context.Context, posts []string) (*sse, error)
	// posts returns every post's id and the posts under test.
	posts() (all, hot []string)
	diskPerComment(ctx context.Context) (float64, error)
}

// RunPeer runs the side-by-side comparison.
func RunPeer(ctx context.Context, cfg PeerConfig) (*PeerReport, error) {
	cfg.defaults()
	tmp, err := os.MkdirTemp(cfg.TempDir, "blog-peer-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(tmp)
	rep := &PeerReport{Machine: ThisMachine(), Config: cfg}
	rep.Config.Progress = nil

	ours, err := newOurs(ctx, cfg, filepath.Join(tmp, "blog"))
	if err != nil {
		return nil, err
	}
	peer, err := newPocketBase(ctx, cfg, filepath.Join(tmp, "pb"))
	if err != nil {
		return nil, err
	}
	for _, t := range []peerTarget{ours, peer} {
		if err := prepare(ctx, cfg, t); err != nil {
			return nil, err
		}
	}
	for i := range cfg.Rounds {
		if ctx.Err() != nil {
			break
		}
		round := PeerRound{OursFirst: i%2 == 0}
		order := []peerTarget{ours, peer}
		if !round.OursFirst {
			order = []peerTarget{peer, ours}
		}
		for _, t := range order {
			side, err := measurePeer(ctx, cfg, t)
			if err != nil {
				return rep, fmt.Errorf("bench: %s, round %d: %w", t.name(), i+1, err)
			}
			if t == peerTarget(ours) {
				round.Ours = side
			} else {
				round.Peer = side
			}
		}
		rep.Rounds = append(rep.Rounds, round)
	}
	return rep, ctx.Err()
}

// prepare starts the system once to create the comments on the posts under
// test through its API, as its users would.
func prepare(ctx context.Context, cfg PeerConfig, t peerTarget) error {
	if _, err := t.start(ctx); err != nil {
		return fmt.Errorf("bench: start %s: %w", t.name(), err)
	}
	defer t.stop()
	c := &http.Client{Timeout: 10 * time.Second}
	_, hot := t.posts()
	for i := range cfg.HotComments {
		if _, err := t.createComment(ctx, c, hot[i%len(hot)]); err != nil {
			return fmt.Errorf("bench: comments on the posts under test in %s: %w", t.name(), err)
		}
	}
	fmt.Fprintf(cfg.Progress, "%s: %d comments created on the %d posts under test\n", t.name(), cfg.HotComments, len(hot))
	return nil
}

// measurePeer starts the system, runs every scenario on it, and stops it.
func measurePeer(ctx context.Context, cfg PeerConfig, t peerTarget) (PeerSide, error) {
	var side PeerSide
	var err error
	if side.Startup, err = t.start(ctx); err != nil {
		return side, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = t.stop()
		}
	}()
	all, hot := t.posts()
	pid := t.pid()
	run := func(name string, workers int, op func(context.Context, *http.Client) error) Stat {
		before := snapCPU(pid)
		st := closedLoop(ctx, name, workers, cfg.Duration, op)
		st.CPU = snapCPU(pid).since(before)
		fmt.Fprintf(cfg.Progress, "%-10s %-14s %9s/s  p50 %-8s p99 %-8s errors %d  cpu %s\n", t.name(), name, fmtRate(st.Rate), fmtDur(st.P50), fmtDur(st.P99), st.Errors, fmtCPU(st.CPU))
		return st
	}
	side.Create = run("create", cfg.CreateWorkers, func(ctx context.Context, c *http.Client) error {
		_, err := t.createComment(ctx, c, all[rand.IntN(len(all))])
		return err
	})
	side.Read = run("read post", cfg.ReadWorkers, func(ctx context.Context, c *http.Client) error {
		return t.readPost(ctx, c, hot[rand.IntN(len(hot))])
	})
	side.List = run("newest page", cfg.ReadWorkers, func(ctx context.Context, c *http.Client) error {
		return t.newestPage(ctx, c)
	})
	side.SSE = peerPropagation(ctx, cfg, t, all)
	fmt.Fprintf(cfg.Progress, "%-10s propagation    p50 %-8s p99 %-8s missed %d %s\n", t.name(), fmtDur(side.SSE.P50), fmtDur(side.SSE.P99), side.SSE.Missed, side.SSE.Skipped)
	side.RSS, _ = memory(pid)
	stopped = true
	if err := t.stop(); err != nil {
		return side, fmt.Errorf("stop: %w", err)
	}
	if side.DiskPerComment, err = t.diskPerComment(ctx); err != nil {
		return side, err
	}
	fmt.Fprintf(cfg.Progress, "%-10s start-up %s, RSS %s, %.0f disk bytes per comment\n", t.name(), fmtDur(side.Startup), fmtMB(side.RSS), side.DiskPerComment)
	return side, nil
}

// closedLoop keeps workers operations in flight for d and records them.
func closedLoop(ctx context.Context, name string, workers int, d time.Duration, op func(context.Context, *http.Client) error) Stat {
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}, Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	recs := make([]*recorder, workers)
	var wg sync.WaitGroup
	for i := range recs {
		recs[i] = newRecorder(name)
		wg.Go(func() {
			for ctx.Err() == nil {
				start := time.Now()
				err := op(ctx, c)
				if ctx.Err() != nil {
					return // cut short by the end of the run: not counted
				}
				msg := ""
				if err != nil {
					msg = err.Error()
				}
				recs[i].add(start, time.Since(start), msg)
			}
		})
	}
	wg.Wait()
	all := newRecorder(name)
	for _, r := range recs {
		all.requests += r.requests
		all.errors += r.errors
		all.lat = append(all.lat, r.lat...)
		if !r.first.IsZero() && (all.first.IsZero() || r.first.Before(all.first)) {
			all.first = r.first
		}
		if r.last.After(all.last) {
			all.last = r.last
		}
		if all.firstError == "" {
			all.firstError = r.firstError
		}
	}
	return all.stat()
}

// peerPropagation creates comments at LagRate for Duration over LagPosts
// posts and measures each one's lag from its 201 to its arrival on the
// system's real-time stream.
func peerPropagation(ctx context.Context, cfg PeerConfig, t peerTarget, all []string) Lag {
	posts := make([]string, 0, cfg.LagPosts)
	for _, i := range rand.Perm(len(all))[:min(cfg.LagPosts, len(all))] {
		posts = append(posts, all[i])
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	sub, err := t.subscribe(sctx, posts)
	if err != nil {
		return Lag{Via: "SSE", Skipped: err.Error()}
	}
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	n := int(float64(cfg.LagRate) * cfg.Duration.Seconds())
	var (
		mu   sync.Mutex
		made []created
		wg   sync.WaitGroup
	)
	jobs := make(chan string)
	for range 32 {
		wg.Go(func() {
			for p := range jobs {
				id, err := t.createComment(ctx, c, p)
				if err == nil {
					mu.Lock()
					made = append(made, created{post: p, id: id, at: time.Now()})
					mu.Unlock()
				}
			}
		})
	}
	start := time.Now()
	for i := range n {
		at := start.Add(time.Duration(i) * time.Second / time.Duration(cfg.LagRate))
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(at)):
		}
		if ctx.Err() != nil {
			break
		}
		jobs <- posts[i%len(posts)]
	}
	close(jobs)
	wg.Wait()
	deadline := time.Now().Add(visibleWithin)
	for !sub.sawAll(made) && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond) // waiting for stragglers, bounded above
	}
	var lags []time.Duration
	missed := 0
	for _, m := range made {
		seen, ok := sub.seen(m.id)
		if !ok {
			missed++
			continue
		}
		lags = append(lags, max(0, seen.Sub(m.at)))
	}
	return newLag("SSE", lags, missed)
}

// ours is the blog: `blog serve` on a seeded store.
type ours struct {
	bin, dir         string
	proc             *process
	postsURL, cmtURL string
	all, hot         []string
}

func newOurs(ctx context.Context, cfg PeerConfig, dir string) (*ours, error) {
	db, err := sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		return nil, fmt.Errorf("bench: open blog dataset: %w", err)
	}
	seeded, err := db.Seed(ctx, sqlite.SeedSpec{Posts: cfg.Posts, CommentsPerPost: cfg.PerPost})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("bench: seed blog: %w", err)
	}
	o := &ours{bin: cfg.Binary, dir: dir}
	for _, p := range seeded {
		o.all = append(o.all, p.ID)
	}
	o.hot = slices.Clone(o.all[len(o.all)-min(cfg.Hot, len(o.all)):]) // the newest
	return o, nil
}

func (o *ours) name() string               { return "blog" }
func (o *ours) pid() int                   { return o.proc.pid() }
func (o *ours) posts() (all, hot []string) { return o.all, o.hot }

func (o *ours) start(ctx context.Context) (time.Duration, error) {
	var ports [3]int
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return 0, err
		}
		ports[i] = p
	}
	o.postsURL = fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	o.cmtURL = fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	env := serviceEnv(map[string]string{
		"BLOG_DATA_DIR": o.dir, "HOST": "127.0.0.1", "PORT": strconv.Itoa(ports[0]),
		"COMMENTS_PORT": strconv.Itoa(ports[1]), "WEB_PORT": strconv.Itoa(ports[2]),
		"BLOG_COMMENT_RATE": "0", "LOG_LEVEL": "warn",
	})
	begin := time.Now()
	var err error
	if o.proc, err = startProcess(o.bin, []string{"serve"}, o.dir, env); err != nil {
		return 0, err
	}
	took, err := firstOK(ctx, o.proc, o.postsURL+"/posts/"+o.hot[0], begin)
	if err == nil {
		err = waitReady(ctx, o.proc, time.Minute, o.postsURL+"/readyz", o.cmtURL+"/readyz")
	}
	if err != nil {
		_ = o.proc.stop(5 * time.Second)
		return 0, fmt.Errorf("blog did not start: %w; its output ends:\n%s", err, o.proc.out)
	}
	return took, nil
}

func (o *ours) stop() error { return o.proc.stop(30 * time.Second) }

func (o *ours) createComment(ctx context.Context, c *http.Client, post string) (string, error) {
	var out struct {
		ID string `json:"_id"`
	}
	err := call(ctx, c, http.MethodPost, o.cmtURL+"/comments", commentBody(post), http.StatusCreated, &out)
	return out.ID, err
}

func (o *ours) readPost(ctx context.Context, c *http.Client, post string) error {
	return call(ctx, c, http.MethodGet, o.postsURL+"/posts/"+post, nil, http.StatusOK, nil)
}

func (o *ours) newestPage(ctx context.Context, c *http.Client) error {
	return call(ctx, c, http.MethodGet, o.postsURL+"/posts", nil, http.StatusOK, nil)
}

func (o *ours) subscribe(ctx context.Context, posts []string) (*sse, error) {
	s, why := subscribe(ctx, o.postsURL, posts)
	if s == nil {
		return nil, errors.New(why)
	}
	return s, nil
}

func (o *ours) diskPerComment(ctx context.Context) (float64, error) {
	d, err := diskUsage(ctx, o.dir)
	if err != nil {
		return 0, err
	}
	return float64(d.FileBytes) / float64(max(1, d.Comments)), nil
}

// pocketBase is PocketBase v0.40.4 as bench/pocketbase builds it.
type pocketBase struct {
	bin, dir string
	proc     *process
	url      string
	all, hot []string
}

func newPocketBase(ctx context.Context, cfg PeerConfig, dir string) (*pocketBase, error) {
	if cfg.Peer == "" {
		return nil, errors.New("bench: no PocketBase peer binary (build bench/pocketbase; see bench/run-peer.sh)")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	p := &pocketBase{bin: cfg.Peer, dir: dir}
	seed, err := startProcess(cfg.Peer, []string{"seed", "--dir", filepath.Join(dir, "pb_data"),
		"--posts", strconv.Itoa(cfg.Posts), "--per-post", strconv.Itoa(cfg.PerPost)}, dir, os.Environ())
	if err != nil {
		return nil, err
	}
	select {
	case <-seed.done:
	case <-ctx.Done():
		_ = seed.stop(5 * time.Second)
		return nil, ctx.Err()
	}
	if err := seed.exitErr(); err != nil {
		return nil, fmt.Errorf("bench: seed PocketBase: %w", err)
	}
	// The post ids, oldest first, from a start of the server.
	if _, err := p.start(ctx); err != nil {
		return nil, err
	}
	defer p.stop()
	c := &http.Client{Timeout: 10 * time.Second}
	for page := 1; ; page++ {
		var out struct {
			Items []struct {
				ID string `json:"id"`
			} `json:"items"`
		}
		u := fmt.Sprintf("%s/api/collections/posts/records?sort=created&perPage=1000&page=%d&fields=id&skipTotal=1", p.url, page)
		if err := call(ctx, c, http.MethodGet, u, nil, http.StatusOK, &out); err != nil {
			return nil, fmt.Errorf("bench: list PocketBase posts: %w", err)
		}
		for _, it := range out.Items {
			p.all = append(p.all, it.ID)
		}
		if len(out.Items) < 1000 {
			break
		}
	}
	if len(p.all) == 0 {
		return nil, errors.New("bench: PocketBase has no posts after seeding")
	}
	p.hot = slices.Clone(p.all[len(p.all)-min(cfg.Hot, len(p.all)):])
	return p, nil
}

func (p *pocketBase) name() string               { return "PocketBase" }
func (p *pocketBase) pid() int                   { return p.proc.pid() }
func (p *pocketBase) posts() (all, hot []string) { return p.all, p.hot }

func (p *pocketBase) start(ctx context.Context) (time.Duration, error) {
	port, err := freePort()
	if err != nil {
		return 0, err
	}
	p.url = fmt.Sprintf("http://127.0.0.1:%d", port)
	begin := time.Now()
	if p.proc, err = startProcess(p.bin, []string{"serve", "--dir", filepath.Join(p.dir, "pb_data"), "--http", fmt.Sprintf("127.0.0.1:%d", port)}, p.dir, os.Environ()); err != nil {
		return 0, err
	}
	probe := p.url + "/api/health"
	if len(p.hot) > 0 {
		probe = p.url + "/api/collections/posts/records/" + p.hot[0]
	}
	took, err := firstOK(ctx, p.proc, probe, begin)
	if err != nil {
		_ = p.proc.stop(5 * time.Second)
		return 0, fmt.Errorf("PocketBase did not start: %w; its output ends:\n%s", err, p.proc.out)
	}
	return took, nil
}

func (p *pocketBase) stop() error { return p.proc.stop(30 * time.Second) }

func (p *pocketBase) createComment(ctx context.Context, c *http.Client, post string) (string, error) {
	var out struct {
		ID string `json:"id"`
	}
	body, _ := json.Marshal(map[string]string{"post": post, "text": filler(96)})
	err := call(ctx, c, http.MethodPost, p.url+"/api/collections/comments/records", body, http.StatusOK, &out)
	return out.ID, err
}

// readPost is PocketBase's equivalent of GET /posts/{id}: the record, then
// a page of its 50 latest comments with their total count.
func (p *pocketBase) readPost(ctx context.Context, c *http.Client, post string) error {
	if err := call(ctx, c, http.MethodGet, p.url+"/api/collections/posts/records/"+post, nil, http.StatusOK, nil); err != nil {
		return err
	}
	q := url.Values{"filter": {"(post='" + post + "')"}, "sort": {"-created"}, "perPage": {"50"}}
	return call(ctx, c, http.MethodGet, p.url+"/api/collections/comments/records?"+q.Encode(), nil, http.StatusOK, nil)
}

func (p *pocketBase) newestPage(ctx context.Context, c *http.Client) error {
	return call(ctx, c, http.MethodGet, p.url+"/api/collections/posts/records?sort=-created&perPage=20", nil, http.StatusOK, nil)
}

// pbID finds record ids in a realtime message.
var pbID = regexp.MustCompile(`"id":"([a-z0-9]{15})"`)

// subscribe opens PocketBase's realtime connection and subscribes it to
// every comment (its topics are collections or records; the comments of
// the few posts followed here are most of what is created meanwhile).
func (p *pocketBase) subscribe(ctx context.Context, _ []string) (*sse, error) {
	s := &sse{first: map[string]time.Time{}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/api/realtime", nil)
	if err != nil {
		return nil, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("realtime: %w", err)
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	clientID := ""
	for clientID == "" && sc.Scan() {
		if line := sc.Bytes(); bytes.HasPrefix(line, []byte("data:")) {
			var connect struct {
				ClientID string `json:"clientId"`
			}
			if json.Unmarshal(bytes.TrimSpace(line[5:]), &connect) == nil {
				clientID = connect.ClientID
			}
		}
	}
	if clientID == "" {
		res.Body.Close()
		return nil, errors.New("realtime: no PB_CONNECT")
	}
	body, _ := json.Marshal(map[string]any{"clientId": clientID, "subscriptions": []string{"comments"}})
	if err := call(ctx, http.DefaultClient, http.MethodPost, p.url+"/api/realtime", body, http.StatusNoContent, nil); err != nil {
		res.Body.Close()
		return nil, fmt.Errorf("realtime subscribe: %w", err)
	}
	go func() {
		defer res.Body.Close()
		for sc.Scan() {
			if line := sc.Bytes(); bytes.HasPrefix(line, []byte("data:")) {
				at := time.Now()
				var ids [][]byte
				for _, m := range pbID.FindAllSubmatch(line, -1) {
					ids = append(ids, m[1])
				}
				s.note(ids, at)
			}
		}
	}()
	return s, nil
}

func (p *pocketBase) diskPerComment(ctx context.Context) (float64, error) {
	var size int64
	for _, f := range []string{"data.db", "data.db-wal"} {
		if fi, err := os.Stat(filepath.Join(p.dir, "pb_data", f)); err == nil {
			size += fi.Size()
		}
	}
	// Count the comments through a start of the server: its API is the
	// only reader of its file the bench relies on.
	if _, err := p.start(ctx); err != nil {
		return 0, err
	}
	defer p.stop()
	var out struct {
		TotalItems int64 `json:"totalItems"`
	}
	if err := call(ctx, &http.Client{Timeout: 30 * time.Second}, http.MethodGet, p.url+"/api/collections/comments/records?perPage=1&fields=id", nil, http.StatusOK, &out); err != nil {
		return 0, fmt.Errorf("count PocketBase comments: %w", err)
	}
	return float64(size) / float64(max(1, out.TotalItems)), nil
}

// firstOK polls u every 2 ms until it answers 200 and returns the time
// since begin.
func firstOK(ctx context.Context, p *process, u string, begin time.Time) (time.Duration, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := begin.Add(2 * time.Minute)
	for {
		if p.exited() {
			return 0, fmt.Errorf("exited: %v", p.err)
		}
		if ok(ctx, c, u) {
			return time.Since(begin), nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return 0, fmt.Errorf("%s: no 200 within 2 minutes", u)
		}
		time.Sleep(2 * time.Millisecond) // start-up probe, bounded above
	}
}

// call sends one request and decodes the answer into out (when not nil),
// or fails on any other status than want.
func call(ctx context.Context, c *http.Client, method, u string, body []byte, want int, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != want {
		return fmt.Errorf("%s %s: %s: %s", method, u, res.Status, bytes.TrimSpace(b[:min(len(b), 200)]))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// WritePeerMarkdown writes the median of each round's ratio, ours over
// PocketBase's, with the per-round figures.
func WritePeerMarkdown(w io.Writer, rep *PeerReport) error {
	b := &strings.Builder{}
	cfg := rep.Config
	fmt.Fprintf(b, "blog vs PocketBase v0.40.4 (bench/pocketbase), %d rounds in alternating order, each system alone while measured; %d posts x %d comments seeded in both, plus %d comments created through each API on the %d newest posts (the posts under test); every load %v.\n\n",
		len(rep.Rounds), cfg.Posts, cfg.PerPost, cfg.HotComments, cfg.Hot, cfg.Duration)
	b.WriteString("| measure | better | blog (median) | PocketBase (median) | blog / PocketBase, median of the rounds' ratios | per round |\n|---|---|---:|---:|---:|---|\n")
	type row struct {
		name, better string
		get          func(PeerSide) float64
		show         func(float64) string
	}
	rate := func(v float64) string { return fmtRate(v) + "/s" }
	dur := func(v float64) string { return fmtDur(time.Duration(v)) }
	rows := []row{
		{fmt.Sprintf("create a comment (%d in flight)", cfg.CreateWorkers), "higher", func(s PeerSide) float64 { return s.Create.Rate }, rate},
		{"create a comment: server CPU per request", "lower", func(s PeerSide) float64 { return cpuPer(s.Create) }, dur},
		{fmt.Sprintf("read one post with its latest 50 comments and count (%d in flight)", cfg.ReadWorkers), "higher", func(s PeerSide) float64 { return s.Read.Rate }, rate},
		{fmt.Sprintf("newest page of 20 posts (%d in flight)", cfg.ReadWorkers), "higher", func(s PeerSide) float64 { return s.List.Rate }, rate},
		{fmt.Sprintf("propagation 201 → SSE p50 at %d/s", cfg.LagRate), "lower", func(s PeerSide) float64 { return float64(s.SSE.P50) }, dur},
		{fmt.Sprintf("propagation 201 → SSE p99 at %d/s", cfg.LagRate), "lower", func(s PeerSide) float64 { return float64(s.SSE.P99) }, dur},
		{"RSS after the runs", "lower", func(s PeerSide) float64 { return float64(s.RSS) }, func(v float64) string { return fmtMB(int64(v)) }},
		{"start-up to first 200", "lower", func(s PeerSide) float64 { return float64(s.Startup) }, dur},
		{"disk bytes per comment (database file and WAL)", "lower", func(s PeerSide) float64 { return s.DiskPerComment }, func(v float64) string { return fmt.Sprintf("%.0f", v) }},
	}
	for _, r := range rows {
		var ov, pv, ratios []float64
		var per []string
		for _, rd := range rep.Rounds {
			o, p := r.get(rd.Ours), r.get(rd.Peer)
			ov, pv = append(ov, o), append(pv, p)
			if p > 0 {
				ratios = append(ratios, o/p)
				per = append(per, fmt.Sprintf("%.2fx", o/p))
			}
		}
		ratio := "– (PocketBase's is 0)"
		if len(ratios) > 0 {
			ratio = fmt.Sprintf("**%.2fx**", median(ratios))
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s |\n", r.name, r.better, r.show(median(ov)), r.show(median(pv)), ratio, strings.Join(per, ", "))
	}
	for _, rd := range rep.Rounds {
		for _, s := range []struct {
			who  string
			side PeerSide
		}{{"blog", rd.Ours}, {"PocketBase", rd.Peer}} {
			for _, st := range []Stat{s.side.Create, s.side.Read, s.side.List} {
				if st.Errors > 0 {
					fmt.Fprintf(b, "\nNote: %s %s: %d of %d requests failed, first: %s\n", s.who, st.Name, st.Errors, st.Requests, st.FirstError)
				}
			}
			if s.side.SSE.Skipped != "" || s.side.SSE.Missed > 0 {
				fmt.Fprintf(b, "\nNote: %s propagation: %d missed %s\n", s.who, s.side.SSE.Missed, s.side.SSE.Skipped)
			}
		}
	}
	b.WriteString("\nPropagation: PocketBase broadcasts a record to its realtime subscribers inside the request that creates it, so its event often arrives before its own 201 (a lag of 0); the blog's arrives through the change feed after the commit.\n")
	m := rep.Machine
	fmt.Fprintf(b, "\nMachine: %d CPUs, %s, %s. The load generator shares the machine.\n", m.CPUs, m.Go, m.OS)
	_, err := io.WriteString(w, b.String())
	return err
}

// cpuPer is the server's CPU time per successful request, in nanoseconds.
func cpuPer(s Stat) float64 {
	n := s.Rate * s.Elapsed.Seconds()
	if n <= 0 {
		return 0
	}
	return s.CPU.Server * s.Elapsed.Seconds() / n * 1e9
}

// median of vs (0 for none).
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
