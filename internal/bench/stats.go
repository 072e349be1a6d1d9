package bench

import (
	"fmt"
	"slices"
	"time"
)

// Stat is one measured scenario: how many requests, how fast, how slow.
type Stat struct {
	Name string `json:"name"`
	// Requests counts every request sent; Errors those that failed (a
	// transport error or a status outside 2xx). Only successes are timed.
	Requests int `json:"requests"`
	Errors   int `json:"errors"`
	// Rate is successes per second over Elapsed, from the first request's
	// start to the last response's end.
	Rate    float64       `json:"rate"`
	Elapsed time.Duration `json:"elapsed"`
	// Latency percentiles of the successes.
	P50 time.Duration `json:"p50"`
	P99 time.Duration `json:"p99"`
	Max time.Duration `json:"max"`
	// FirstError describes the first failure, for the report's notes.
	FirstError string `json:"firstError,omitempty"`
	// Paced is the requested rate of a paced scenario (0: as fast as the
	// system answers, with Concurrency requests in flight).
	Paced int `json:"paced,omitempty"`
	// CPU is what the cores were busy with meanwhile (zero where /proc
	// is not there).
	CPU CPU `json:"cpu"`
}

// recorder collects the outcomes of one scenario. It is used by one
// goroutine.
type recorder struct {
	name       string
	lat        []time.Duration
	requests   int
	errors     int
	first      time.Time
	last       time.Time
	firstError string
}

func newRecorder(name string) *recorder { return &recorder{name: name} }

// add records one request that started at start and took took; err is "" for
// a success.
func (r *recorder) add(start time.Time, took time.Duration, err string) {
	r.requests++
	if r.first.IsZero() || start.Before(r.first) {
		r.first = start
	}
	if end := start.Add(took); end.After(r.last) {
		r.last = end
	}
	if err != "" {
		r.errors++
		if r.firstError == "" {
			r.firstError = err
		}
		return
	}
	r.lat = append(r.lat, took)
}

// stat summarises what was recorded.
func (r *recorder) stat() Stat {
	s := Stat{Name: r.name, Requests: r.requests, Errors: r.errors, FirstError: r.firstError}
	if r.requests == 0 {
		return s
	}
	s.Elapsed = r.last.Sub(r.first)
	if s.Elapsed > 0 {
		s.Rate = float64(len(r.lat)) / s.Elapsed.Seconds()
	}
	s.P50, s.P99, s.Max = percentiles(r.lat)
	return s
}

// percentiles returns the 50th and 99th percentiles (nearest rank) and the
// maximum of ds, which it sorts.
func percentiles(ds []time.Duration) (p50, p99, maxD time.Duration) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	slices.Sort(ds)
	return rank(ds, 50), rank(ds, 99), ds[len(ds)-1]
}

// rank returns the p-th percentile of sorted ds by nearest rank.
func rank(ds []time.Duration, p int) time.Duration {
	i := (len(ds)*p + 99) / 100 // ceil(n*p/100), 1-based
	return ds[max(0, min(len(ds), i)-1)]
}

// Lag is the propagation of comments to one place where readers see them.
type Lag struct {
	// Via names the place: "GET /posts/{id}" or "SSE /posts/{id}/events".
	Via string `json:"via"`
	// Seen counts the comments that became visible; Missed those that did
	// not within the wait.
	Seen   int           `json:"seen"`
	Missed int           `json:"missed"`
	P50    time.Duration `json:"p50"`
	P99    time.Duration `json:"p99"`
	Max    time.Duration `json:"max"`
	// Skipped says why the lag was not measured ("" when it was).
	Skipped string `json:"skipped,omitempty"`
	// Note is something to know about a measured lag.
	Note string `json:"note,omitempty"`
}

func newLag(via string, lags []time.Duration, missed int) Lag {
	l := Lag{Via: via, Seen: len(lags), Missed: missed}
	l.P50, l.P99, l.Max = percentiles(lags)
	return l
}

// fmtDur prints a latency with about three significant digits.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "–"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

// fmtRate prints a rate per second with thousands separated.
func fmtRate(r float64) string {
	if r <= 0 {
		return "0"
	}
	if r < 10 {
		return fmt.Sprintf("%.1f", r)
	}
	return thousands(int64(r + 0.5))
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	var out []byte
	for i, c := range []byte(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, c)
	}
	return string(out)
}

// fmtSize names a dataset size the way the issue does: 1k, 100k, 1M.
func fmtSize(n int) string {
	switch {
	case n < 0:
		return "as found"
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	default:
		return thousands(int64(n))
	}
}

// fmtMB prints bytes as MB.
func fmtMB(b int64) string {
	if b <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f MB", float64(b)/(1<<20))
}

// fmtCPU prints cores used as server / bench / other.
func fmtCPU(c CPU) string {
	if c == (CPU{}) {
		return "–"
	}
	return fmt.Sprintf("%.2f / %.2f / %.2f", c.Server, c.Bench, c.Other)
}
