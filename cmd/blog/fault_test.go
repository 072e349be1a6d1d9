package main_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The fault tests run the services as real processes and kill them with
// SIGKILL at random instants while clients write, then require the posts'
// embedded comments to converge exactly to the comments service's truth.

// kill stops p with SIGKILL, as a crash would, and waits for it to be gone.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Kill()
	err := <-p.done
	p.done <- err
}

// client is a bounded HTTP client for the load: a request to a killed
// process fails fast instead of hanging.
var client = &http.Client{Timeout: 5 * time.Second}

func try(method, url, body string) (int, []byte, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, err
}

// allComments pages through a post's comments on the comments service.
func allComments(t *testing.T, comments, postID string) []commentJSON {
	t.Helper()
	var out []commentJSON
	next := "/comments/" + postID + "?limit=100"
	link := regexp.MustCompile(`<([^>]+)>; rel="next"`)
	for next != "" {
		var page []commentJSON
		h := call(t, "GET", comments+next, "", 200, &page)
		out = append(out, page...)
		next = ""
		if m := link.FindStringSubmatch(h.Get("Link")); m != nil {
			next = m[1]
		}
	}
	return out
}

// converged reports whether post id embeds exactly the latest limit comments
// of the comments service (oldest first, same texts) and counts them all.
func converged(t *testing.T, posts, comments, id string, limit int) (bool, string) {
	t.Helper()
	truth := allComments(t, comments, id)
	var p postJSON
	status, body, err := try("GET", posts+"/posts/"+id, "")
	if err != nil || status != 200 {
		return false, fmt.Sprintf("GET post: %d %v", status, err)
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	want := truth[max(0, len(truth)-limit):]
	if p.CommentCount != len(truth) || len(p.Comments) != len(want) {
		return false, fmt.Sprintf("post %s: count %d embeds %d; comments service has %d (want %d embedded)", id, p.CommentCount, len(p.Comments), len(truth), len(want))
	}
	for i := range want {
		if p.Comments[i].ID != want[i].ID || p.Comments[i].Text != want[i].Text {
			return false, fmt.Sprintf("post %s: embedded[%d] = %s %q, want %s %q", id, i, p.Comments[i].ID, p.Comments[i].Text, want[i].ID, want[i].Text)
		}
	}
	return true, ""
}

func faultDuration(t *testing.T) time.Duration {
	if s := os.Getenv("FAULT_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("FAULT_DURATION: %v", err)
		}
		return d
	}
	return 8 * time.Second
}

// TestFaultKillAnyInstant: both services as separate processes, clients
// creating, editing and deleting comments (and deleting a post) while the
// services are SIGKILLed at random and restarted; then every post must
// converge to exactly what the comments service holds, every acknowledged
// comment must exist, and `blog verify` must find no drift. It runs on each
// store; on MongoDB (the wire test server unless TEST_MONGO_URI is set) for
// at most 3 s of faults, to keep the suite's time down.
func TestFaultKillAnyInstant(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			d := faultDuration(t)
			if b.name == "mongo" {
				d = min(d, 3*time.Second)
			}
			faultKillAnyInstant(t, b.env(t), d)
		})
	}
}

func faultKillAnyInstant(t *testing.T, extra []string, faults time.Duration) {
	const limit = 5 // a small embed window, so back-fill and bounding are exercised
	dir := t.TempDir()
	pp, cp := freePort(t), freePort(t)
	env := []string{
		fmt.Sprintf("PORT=%d", pp), fmt.Sprintf("COMMENTS_PORT=%d", cp), "BLOG_DATA_DIR=" + filepath.Join(dir, "data"),
		"BLOG_COMMENT_RATE=0", fmt.Sprintf("BLOG_EMBED_LIMIT=%d", limit), "LOG_LEVEL=warn",
	}
	env = append(env, extra...)
	posts, comments := fmt.Sprintf("http://127.0.0.1:%d", pp), fmt.Sprintf("http://127.0.0.1:%d", cp)

	var mu sync.Mutex // guards procs
	procs := map[string]*proc{"posts": start(t, dir, env, "posts"), "comments": start(t, dir, env, "comments")}
	waitReady(t, posts)
	waitReady(t, comments)

	var postIDs []string
	for i := range 6 {
		var p postJSON
		call(t, "POST", posts+"/posts", fmt.Sprintf(`{"title":"post %d","content":"c"}`, i), 201, &p)
		postIDs = append(postIDs, p.ID)
	}
	doomed := postIDs[5] // deleted mid-run: its comments must go too
	postIDs = postIDs[:5]

	// Each worker owns its comments, so each comment's operations are
	// serial and the last acknowledged one says what must be true; a
	// comment whose last operation failed without an answer is uncertain.
	type state struct {
		text      string
		deleted   bool
		uncertain bool
		doomed    bool // on the post deleted mid-run: the cascade removes it
	}
	var (
		stmu     sync.Mutex
		states   = map[string]*state{}
		created  atomic.Int64
		edited   atomic.Int64
		deleted  atomic.Int64
		failures atomic.Int64
		stop     atomic.Bool
		wg       sync.WaitGroup
	)
	for w := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			var mine []string
			for n := 0; !stop.Load(); n++ {
				switch r := rng.IntN(10); {
				case r < 6 || len(mine) == 0:
					text := fmt.Sprintf("w%d-c%d", w, n)
					target := postIDs[rng.IntN(len(postIDs))]
					if n%40 == 7 {
						target = doomed
					}
					status, body, err := try("POST", comments+"/comments", fmt.Sprintf(`{"postId":%q,"text":%q}`, target, text))
					if err != nil || status != 201 {
						failures.Add(1)
						continue // unacknowledged: may or may not exist, and no one will touch it
					}
					var c commentJSON
					_ = json.Unmarshal(body, &c)
					stmu.Lock()
					states[c.ID] = &state{text: text, doomed: target == doomed}
					stmu.Unlock()
					created.Add(1)
					if target != doomed {
						mine = append(mine, c.ID)
					}
				case r < 8:
					id := mine[rng.IntN(len(mine))]
					text := fmt.Sprintf("w%d-e%d", w, n)
					status, _, err := try("PATCH", comments+"/comments/"+id, fmt.Sprintf(`{"text":%q}`, text))
					stmu.Lock()
					switch {
					case err == nil && status == 200:
						states[id].text, states[id].uncertain = text, false
						edited.Add(1)
					case err != nil || status >= 500:
						states[id].uncertain = true
						failures.Add(1)
					}
					stmu.Unlock()
				default:
					i := rng.IntN(len(mine))
					id := mine[i]
					status, _, err := try("DELETE", comments+"/comments/"+id, "")
					stmu.Lock()
					switch {
					case err == nil && status == 204:
						states[id].deleted, states[id].uncertain = true, false
						mine = append(mine[:i], mine[i+1:]...)
						deleted.Add(1)
					case err != nil || status >= 500:
						states[id].uncertain = true
						failures.Add(1)
					}
					stmu.Unlock()
				}
			}
		})
	}

	// The killer: SIGKILL a random service at a random instant, restart it.
	kills := 0
	rng := rand.New(rand.NewPCG(7, 7))
	deadline := time.Now().Add(faults)
	postDeleted := false
	for time.Now().Before(deadline) {
		time.Sleep(time.Duration(150+rng.IntN(600)) * time.Millisecond) // the fault schedule, not synchronisation
		if !postDeleted && time.Until(deadline) < faults/2 {
			if status, _, err := try("DELETE", posts+"/posts/"+doomed, ""); err == nil && status == 204 {
				postDeleted = true
			}
		}
		name := []string{"posts", "comments"}[rng.IntN(2)]
		mu.Lock()
		procs[name].kill(t)
		kills++
		procs[name] = start(t, dir, env, name)
		mu.Unlock()
	}
	stop.Store(true)
	wg.Wait()
	if !postDeleted {
		call(t, "DELETE", posts+"/posts/"+doomed, "", 204, nil)
	}
	waitReady(t, posts)
	waitReady(t, comments)

	// Convergence: poll with a deadline until every post matches.
	begin := time.Now()
	for {
		all, why := true, ""
		for _, id := range postIDs {
			if ok, w := converged(t, posts, comments, id, limit); !ok {
				all, why = false, w
				break
			}
		}
		if all {
			break
		}
		if time.Since(begin) > 60*time.Second {
			t.Fatalf("not converged 60 s after the last kill: %s", why)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, bounded by the deadline
	}
	convergence := time.Since(begin)

	// Nothing acknowledged was lost, and acknowledged edits and deletes hold.
	present := map[string]commentJSON{}
	for _, id := range postIDs {
		for _, c := range allComments(t, comments, id) {
			present[c.ID] = c
		}
	}
	checked := 0
	for id, st := range states {
		if st.uncertain || st.doomed {
			continue
		}
		c, ok := present[id]
		switch {
		case st.deleted && ok:
			t.Errorf("comment %s was deleted (204) but is back", id)
		case !st.deleted && !ok:
			t.Errorf("comment %s was acknowledged but is lost", id)
		case ok && c.Text != st.text:
			t.Errorf("comment %s has text %q, want the acknowledged %q", id, c.Text, st.text)
		}
		checked++
	}
	// A deleted post's comments answer 404 (the post does not exist) once
	// its comments are gone; any left would be listed.
	if status, body, _ := try("GET", comments+"/comments/"+doomed, ""); status != 404 {
		t.Errorf("the deleted post's comments answer %d: %s", status, body)
	}
	if status, _, _ := try("GET", posts+"/posts/"+doomed, ""); status != 404 {
		t.Errorf("deleted post answers %d", status)
	}

	// Stop the services cleanly, then the verifier must find no drift.
	mu.Lock()
	for _, p := range procs {
		p.stop(t)
	}
	mu.Unlock()
	verify := exec.Command(binary(t), append([]string{"verify"}, "-data-dir", filepath.Join(dir, "data"), "-embed-limit", fmt.Sprint(limit))...)
	verify.Env = append(os.Environ(), extra...) // MONGO_URI on MongoDB
	out, err := verify.CombinedOutput()
	if err != nil {
		t.Fatalf("blog verify after the fault run: %v\n%s", err, out)
	}
	t.Logf("fault test: %d comments created, %d edited, %d deleted, %d requests failed during %d SIGKILLs; %d acknowledged states checked; converged %v after the last kill",
		created.Load(), edited.Load(), deleted.Load(), failures.Load(), kills, checked, convergence.Round(time.Millisecond))
}

// TestLeaseFailover: two `blog posts` replicas on one database; exactly one
// holds the comment sync's lease; SIGKILL it and the other takes over within
// 10 s, and comments keep reaching their posts.
func TestLeaseFailover(t *testing.T) {
	dir := t.TempDir()
	p1, p2, cp := freePort(t), freePort(t), freePort(t)
	base := []string{fmt.Sprintf("COMMENTS_PORT=%d", cp), "BLOG_DATA_DIR=" + filepath.Join(dir, "data"), "BLOG_COMMENT_RATE=0"}
	comments := fmt.Sprintf("http://127.0.0.1:%d", cp)
	replicas := map[string]*proc{}
	for _, port := range []int{p1, p2} {
		url := fmt.Sprintf("http://127.0.0.1:%d", port)
		replicas[url] = start(t, dir, append(base, fmt.Sprintf("PORT=%d", port)), "posts")
	}
	start(t, dir, append(base, fmt.Sprintf("PORT=%d", freePort(t))), "comments")
	for url := range replicas {
		waitReady(t, url)
	}
	waitReady(t, comments)

	holder := func() []string {
		var hs []string
		for url := range replicas {
			if leaseHeld(t, url) {
				hs = append(hs, url)
			}
		}
		return hs
	}
	var leader string
	waitFor(t, 10*time.Second, "one replica holds the lease", func() bool {
		hs := holder()
		if len(hs) == 1 {
			leader = hs[0]
		}
		return len(hs) == 1
	})
	var p postJSON
	call(t, "POST", leader+"/posts", `{"title":"t","content":"c"}`, 201, &p)
	call(t, "POST", comments+"/comments", `{"postId":"`+p.ID+`","text":"before"}`, 201, nil)
	waitComments(t, leader, p.ID, 1)

	replicas[leader].kill(t)
	killed := time.Now()
	delete(replicas, leader)
	var survivor string
	for url := range replicas {
		survivor = url
	}
	call(t, "POST", comments+"/comments", `{"postId":"`+p.ID+`","text":"after"}`, 201, nil)
	waitFor(t, 10*time.Second, "the survivor takes the lease", func() bool { return leaseHeld(t, survivor) })
	t.Logf("lease taken over %v after SIGKILL of the holder", time.Since(killed).Round(time.Millisecond))
	waitComments(t, survivor, p.ID, 2)
}

// leaseHeld reads a replica's blog_consumer_lease_holder metric.
func leaseHeld(t *testing.T, base string) bool {
	t.Helper()
	status, body, err := try("GET", base+"/metrics", "")
	if err != nil || status != 200 {
		return false
	}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), `blog_consumer_lease_holder{consumer="posts.comments"}`) {
			return strings.HasSuffix(sc.Text(), " 1")
		}
	}
	return false
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, bounded by the deadline
	}
}
