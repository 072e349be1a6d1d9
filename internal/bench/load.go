package bench

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"blog/internal/page"
	"blog/internal/store/sqlite"
)

// The scenarios, in the order they run and are reported.
const (
	GetPost = "get post"
	// GetRecentPost reads the recentPosts newest posts, over and over: the
	// posts a blog's readers read most, which the posts service caches.
	GetRecentPost = "get recent post"
	ListPosts     = "list posts page"
	ListComments  = "list comments page"
	CreatePost    = "create post"
	CreateComment = "create comment"
	// Propagation is the paced-comments scenario that measures lag.
	Propagation = "propagation"
)

// Scenarios lists every load scenario in report order.
var Scenarios = []string{GetPost, GetRecentPost, ListPosts, ListComments, CreatePost, CreateComment}

// recentPosts is how many of the newest posts GetRecentPost reads.
const recentPosts = 20

// Texts of what the write scenarios create: a post of the seeded posts'
// size, a comment of the seeded comments' size.
var (
	postBody = []byte(`{"title":"A post written by the benchmark","content":"` +
		filler(480) + `"}`)
	commentText = filler(96)
)

func filler(n int) string {
	const s = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. "
	out := ""
	for len(out) < n {
		out += s
	}
	return out[:n]
}

// dataset is what the scenarios aim at: the services' URLs and the posts
// known to exist, oldest first.
type dataset struct {
	postsURL, commentsURL string
	token                 string
	posts                 []sqlite.SeededPost
}

func (d *dataset) randomPost() sqlite.SeededPost { return d.posts[rand.IntN(len(d.posts))] }

// header is the headers of a write: JSON, and the bearer token if any.
func (d *dataset) header() http.Header {
	h := http.Header{"Content-Type": {"application/json"}}
	if d.token != "" {
		h.Set("Authorization", "Bearer "+d.token)
	}
	return h
}

// targeter returns the requests of a scenario. Targeters are called by
// several of vegeta's workers at once; math/rand/v2's functions are safe
// for that.
func (d *dataset) targeter(scenario string) vegeta.Targeter {
	switch scenario {
	case GetPost:
		return func(t *vegeta.Target) error {
			t.Method, t.URL = http.MethodGet, d.postsURL+"/posts/"+d.randomPost().ID
			return nil
		}
	case GetRecentPost:
		recent := d.posts[max(0, len(d.posts)-recentPosts):]
		return func(t *vegeta.Target) error {
			t.Method, t.URL = http.MethodGet, d.postsURL+"/posts/"+recent[rand.IntN(len(recent))].ID
			return nil
		}
	case ListPosts:
		// A page after a random post's cursor, chosen so the page is full
		// (at least page.DefaultLimit posts are older): the seek a client
		// following Link headers deep into the list makes.
		lo := min(page.DefaultLimit, len(d.posts)-1)
		return func(t *vegeta.Target) error {
			p := d.posts[lo+rand.IntN(len(d.posts)-lo)]
			t.Method = http.MethodGet
			t.URL = d.postsURL + "/posts?after=" + page.Cursor{At: p.CreatedAt, ID: p.ID}.Encode()
			return nil
		}
	case ListComments:
		return func(t *vegeta.Target) error {
			t.Method, t.URL = http.MethodGet, d.commentsURL+"/comments/"+d.randomPost().ID
			return nil
		}
	case CreatePost:
		h := d.header()
		return func(t *vegeta.Target) error {
			t.Method, t.URL, t.Header, t.Body = http.MethodPost, d.postsURL+"/posts", h, postBody
			return nil
		}
	case CreateComment:
		h := d.header()
		return func(t *vegeta.Target) error {
			t.Method, t.URL, t.Header = http.MethodPost, d.commentsURL+"/comments", h
			t.Body = commentBody(d.randomPost().ID)
			return nil
		}
	}
	panic("bench: unknown scenario " + scenario)
}

// commentBody is the JSON of a new comment on post id (ids are hex, the
// text plain ASCII: nothing to escape).
func commentBody(id string) []byte {
	b := make([]byte, 0, 40+len(id)+len(commentText))
	b = append(b, `{"postId":"`...)
	b = append(b, id...)
	b = append(b, `","text":"`...)
	b = append(b, commentText...)
	return append(b, `"}`...)
}

// attack runs tr for d and returns its Stat. With rate zero it is a closed
// loop: workers requests in flight, each sent as soon as the last returned,
// so Rate is the throughput the system sustains. With a rate it paces
// requests at rate per second (up to 64x workers in flight if the system
// falls behind). keep says whether results keep their bodies; each result
// goes to each (if set) as it arrives.
func attack(ctx context.Context, name string, tr vegeta.Targeter, rate, workers int, d time.Duration, keep bool, each func(*vegeta.Result)) Stat {
	maxW := uint64(workers)
	pacer := vegeta.Rate{Freq: 0, Per: time.Second}
	if rate > 0 {
		pacer.Freq = rate
		maxW = uint64(64 * workers)
	}
	opts := []func(*vegeta.Attacker){
		vegeta.Workers(uint64(workers)), vegeta.MaxWorkers(maxW),
		vegeta.Connections(workers), vegeta.KeepAlive(true),
		vegeta.Timeout(30 * time.Second), vegeta.Redirects(vegeta.NoFollow),
	}
	if !keep {
		opts = append(opts, vegeta.MaxBody(0))
	}
	a := vegeta.NewAttacker(opts...)
	stop := context.AfterFunc(ctx, func() { a.Stop() })
	defer stop()
	rec := newRecorder(name)
	for res := range a.Attack(tr, pacer, d, name) {
		errText := res.Error
		if errText == "" && (res.Code < 200 || res.Code > 299) {
			errText = "status " + strconv.Itoa(int(res.Code))
		}
		rec.add(res.Timestamp, res.Latency, errText)
		if each != nil {
			each(res)
		}
	}
	s := rec.stat()
	s.Paced = rate
	return s
}

// roundRobin returns a function that cycles through n indexes, safe for
// concurrent use.
func roundRobin(n int) func() int {
	var i atomic.Uint64
	return func() int { return int((i.Add(1) - 1) % uint64(n)) }
}
