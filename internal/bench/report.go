package bench

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Target is one of the performance targets, evaluated on a report.
type Target struct {
	Goal     string `json:"goal"`
	Measured string `json:"measured"`
	// Verdict is "pass", "FAIL", or "n/a" (not measurable in this run).
	Verdict string `json:"verdict"`
}

// The targets' thresholds (issue 6, for the embedded store on 2 cores).
const (
	minBareRatio      = 0.5
	minCommentRate    = 2000
	minGrowthRatio    = 0.8
	maxListGrowth     = 1.5
	maxLagP50         = 5 * time.Millisecond
	maxLagP99         = 20 * time.Millisecond
	maxRSS            = 200 << 20
	targetLargestSize = 1_000_000
)

func verdict(ok bool) string {
	if ok {
		return "pass"
	}
	return "FAIL"
}

// Targets evaluates the targets on rep. Each is judged on its
// worst dataset; growth targets compare the largest dataset with the
// smallest.
func Targets(rep *Report) []Target {
	sizes := rep.Sizes
	if len(sizes) == 0 {
		return nil
	}
	small, large := sizes[0], sizes[len(sizes)-1]
	for _, s := range sizes {
		if s.Comments < small.Comments {
			small = s
		}
		if s.Comments > large.Comments {
			large = s
		}
	}
	var ts []Target
	// Recently read posts, served from the cache, against the bare handler.
	if ran(sizes, GetRecentPost) && rep.Bare != nil && rep.Bare.Rate > 0 {
		worst, measured := bareRatios(sizes, GetRecentPost, rep.Bare.Rate)
		ts = append(ts, Target{"get recent post ≥ 0.8x the bare handler", measured, verdict(worst >= 0.8)})
	}
	ts = append(ts, idleTarget(sizes)...)
	ts = append(ts, getPostTarget(sizes, rep.Bare), createCommentTarget(sizes))
	ts = append(ts,
		growthTarget(fmt.Sprintf("create comment at %s ≥ 0.8x at %s", fmtSize(large.Comments), fmtSize(small.Comments)), CreateComment, sizes, small, large),
		growthTarget(fmt.Sprintf("list posts page at %s within 1.5x of %s", fmtSize(large.Comments), fmtSize(small.Comments)), ListPosts, sizes, small, large),
		growthTarget(fmt.Sprintf("list comments page at %s within 1.5x of %s", fmtSize(large.Comments), fmtSize(small.Comments)), ListComments, sizes, small, large),
	)
	ts = append(ts, lagTargets(sizes, rep.Settings.LagRate)...)
	goal := fmt.Sprintf("RSS ≤ 200 MB at %s", fmtSize(large.Comments))
	if large.Peak > 0 {
		ts = append(ts, Target{goal, fmt.Sprintf("peak %s, after the load %s", fmtMB(large.Peak), fmtMB(large.RSS)), verdict(large.Peak <= maxRSS)})
	} else {
		ts = append(ts, Target{goal, "unknown (no process to read)", "n/a"})
	}
	return ts
}

// ran reports whether the scenario sent requests at any size.
func ran(sizes []SizeResult, sc string) bool {
	for _, s := range sizes {
		if s.Scenario(sc).Requests > 0 {
			return true
		}
	}
	return false
}

// bareRatios returns the scenario's throughput as a ratio of the bare
// handler's (bare, requests per second): the worst over the sizes, and
// each size's, as "1k 0.93x, 100k 0.91x".
func bareRatios(sizes []SizeResult, sc string, bare float64) (worst float64, measured string) {
	parts := []string{}
	for i, s := range sizes {
		r := s.Scenario(sc).Rate / bare
		if i == 0 || r < worst {
			worst = r
		}
		parts = append(parts, fmt.Sprintf("%s %.2fx", fmtSize(s.Comments), r))
	}
	return worst, strings.Join(parts, ", ")
}

// idleTarget judges the services' idle CPU, when it was measured.
func idleTarget(sizes []SizeResult) []Target {
	var idle []string
	idleOK := true
	for _, s := range sizes {
		if s.IdleWindow > 0 {
			idle = append(idle, fmt.Sprintf("%s %.2f%%", fmtSize(s.Comments), 100*s.IdleCPU))
			idleOK = idleOK && s.IdleCPU <= 0.002
		}
	}
	if len(idle) == 0 {
		return nil
	}
	return []Target{{"idle CPU ≤ 0.2% of a core", strings.Join(idle, ", "), verdict(idleOK)}}
}

// getPostTarget judges reads: get post against the bare handler.
func getPostTarget(sizes []SizeResult, bare *Stat) Target {
	const goal = "get post ≥ 0.5x the bare handler"
	switch {
	case !ran(sizes, GetPost):
		return Target{goal, "not run", "n/a"}
	case bare == nil || bare.Rate <= 0:
		return Target{goal, "no baseline", "n/a"}
	}
	worst, measured := bareRatios(sizes, GetPost, bare.Rate)
	return Target{goal, measured, verdict(worst >= minBareRatio)}
}

// createCommentTarget judges writes: create comment throughput.
func createCommentTarget(sizes []SizeResult) Target {
	const goal = "create comment ≥ 2,000/s"
	if !ran(sizes, CreateComment) {
		return Target{goal, "not run", "n/a"}
	}
	worst, parts := 0.0, []string{}
	for i, s := range sizes {
		r := s.Scenario(CreateComment).Rate
		if i == 0 || r < worst {
			worst = r
		}
		parts = append(parts, fmt.Sprintf("%s %s/s", fmtSize(s.Comments), fmtRate(r)))
	}
	return Target{goal, strings.Join(parts, ", "), verdict(worst >= minCommentRate)}
}

// growthTarget compares the scenario's throughput at the largest size with
// the smallest: creating a comment must keep 0.8x of it, a list page must
// stay within 1.5x of its cost.
func growthTarget(goal, scenario string, sizes []SizeResult, small, large SizeResult) Target {
	if !ran(sizes, scenario) {
		return Target{goal, "not run", "n/a"}
	}
	if small.Comments == large.Comments {
		return Target{goal, "needs two sizes", "n/a"}
	}
	a, b := small.Scenario(scenario).Rate, large.Scenario(scenario).Rate
	if a <= 0 {
		return Target{goal, "no throughput at the smallest size", "n/a"}
	}
	t := Target{Goal: goal, Measured: fmt.Sprintf("%s/s at %s, %s/s at %s: %.2fx", fmtRate(b), fmtSize(large.Comments), fmtRate(a), fmtSize(small.Comments), b/a)}
	if scenario == CreateComment {
		t.Verdict = verdict(b/a >= minGrowthRatio)
	} else {
		t.Verdict = verdict(b > 0 && a/b <= maxListGrowth)
	}
	if large.Comments < targetLargestSize {
		t.Measured += " (largest size run is " + fmtSize(large.Comments) + ", not 1M)"
	}
	return t
}

// lagTargets judges propagation, to GET and (when measured) to SSE, on the
// worst dataset; lagRate is the comments per second it was measured at.
func lagTargets(sizes []SizeResult, lagRate int) []Target {
	var ts []Target
	for _, via := range []string{"GET", "SSE"} {
		var p50, p99 time.Duration
		measured := false
		for _, s := range sizes {
			l := s.LagGet
			if via == "SSE" {
				l = s.LagSSE
			}
			if l.Seen == 0 {
				continue
			}
			measured = true
			p50, p99 = max(p50, l.P50), max(p99, l.P99)
		}
		goal50 := fmt.Sprintf("propagation to %s p50 ≤ 5 ms at %d/s", via, lagRate)
		goal99 := fmt.Sprintf("propagation to %s p99 ≤ 20 ms at %d/s", via, lagRate)
		if !measured {
			ts = append(ts, Target{goal50, "not measured", "n/a"}, Target{goal99, "not measured", "n/a"})
			continue
		}
		ts = append(ts,
			Target{goal50, fmtDur(p50) + " (worst size)", verdict(p50 <= maxLagP50)},
			Target{goal99, fmtDur(p99) + " (worst size)", verdict(p99 <= maxLagP99)})
	}
	return ts
}

// WriteMarkdown writes the report as markdown tables: scenarios per
// dataset with baselines and ratios, propagation, memory, the targets, the
// machine and notes.
func WriteMarkdown(w io.Writer, rep *Report) error {
	b := &strings.Builder{}
	st := rep.Settings
	fmt.Fprintf(b, "Each scenario: %v measured after %v of warm-up, %d requests in flight (closed loop), through the HTTP API.\n\n", st.Duration, st.Warmup, st.Concurrency)
	b.WriteString("| scenario | comments | throughput | p50 | p99 | max | errors | vs baseline | cores: server / bench / other | server CPU per request |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---|---|---:|\n")
	for _, sc := range Scenarios {
		for _, s := range rep.Sizes {
			x := s.Scenario(sc)
			if x.Requests == 0 {
				continue // not run (-only)
			}
			ratio := ""
			switch {
			case (sc == GetPost || sc == GetRecentPost) && rep.Bare != nil && rep.Bare.Rate > 0:
				ratio = fmt.Sprintf("%.2fx bare GET", x.Rate/rep.Bare.Rate)
			case sc == CreateComment && rep.Raw != nil && rep.Raw.Rate > 0:
				ratio = fmt.Sprintf("%.2fx raw insert", x.Rate/rep.Raw.Rate)
			}
			fmt.Fprintf(b, "| %s | %s | %s/s | %s | %s | %s | %d | %s | %s | %s |\n", sc, fmtSize(s.Comments), fmtRate(x.Rate), fmtDur(x.P50), fmtDur(x.P99), fmtDur(x.Max), x.Errors, ratio, fmtCPU(x.CPU), perRequest(x))
		}
	}
	if rep.Bare != nil {
		x := rep.Bare
		fmt.Fprintf(b, "| *baseline:* bare net/http GET, same bytes as get post (%s) | – | %s/s | %s | %s | %s | %d | 1x | %s | %s |\n", rep.BareWhere, fmtRate(x.Rate), fmtDur(x.P50), fmtDur(x.P99), fmtDur(x.Max), x.Errors, fmtCPU(x.CPU), perRequest(*x))
	}
	if rep.Raw != nil {
		x := rep.Raw
		fmt.Fprintf(b, "| *baseline:* raw SQLite insert, same driver and pragmas, one tx per row (in the bench process) | – | %s/s | %s | %s | %s | %d | 1x | %s | %s |\n", fmtRate(x.Rate), fmtDur(x.P50), fmtDur(x.P99), fmtDur(x.Max), x.Errors, fmtCPU(x.CPU), perRequest(Stat{Rate: x.Rate, CPU: CPU{Server: x.CPU.Bench}}))
	}
	writePropagation(b, rep)
	b.WriteString("\n| comments | posts | seeded in | services' RSS after the load | peak RSS |\n")
	b.WriteString("|---:|---:|---:|---:|---:|\n")
	for _, s := range rep.Sizes {
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", fmtSize(s.Comments), thousands(int64(s.Posts)), fmtDur(s.SeedTook), fmtMB(s.RSS), fmtMB(s.Peak))
	}

	for _, s := range rep.Sizes {
		if s.IdleWindow > 0 {
			fmt.Fprintf(b, "\nIdle CPU at %s, over %v with no load after the scenarios: %.2f%% of a core.\n", fmtSize(s.Comments), s.IdleWindow, 100*s.IdleCPU)
		}
	}
	for _, s := range rep.Sizes {
		writeDisk(b, s)
	}

	b.WriteString("\n| target | measured | |\n|---|---|---|\n")
	for _, t := range Targets(rep) {
		fmt.Fprintf(b, "| %s | %s | %s |\n", t.Goal, t.Measured, t.Verdict)
	}
	writeMachine(b, rep)
	for _, n := range rep.Notes {
		fmt.Fprintf(b, "\nNote: %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writePropagation writes the propagation table: per size, the lag from a
// comment's 201 until GET and the live stream show it.
func writePropagation(b *strings.Builder, rep *Report) {
	st := rep.Settings
	fmt.Fprintf(b, "\nPropagation: comments created at a steady %d/s for %v, round-robin over %d posts; lag from the comment's 201 until it is visible: in GET /posts/{id} (the comments on %d of the posts, each polled every %v while one is pending; the lag includes that GET) and on each post's SSE stream. Missed: not visible within %v (or, in GET, already pushed out of the embedded latest by newer comments).\n\n", st.LagRate, st.Duration, st.LagPosts, min(pollPosts, st.LagPosts), pollEvery, visibleWithin)
	b.WriteString("| comments | created | → GET /posts/{id} p50 | p99 | max | missed | → SSE p50 | p99 | max | missed | backlog after the create-comment burst | cores: server / bench / other |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, s := range rep.Sizes {
		if s.Paced.Requests == 0 {
			continue // not run (-only)
		}
		sse := [4]string{"–", "–", "–", "–"}
		if s.LagSSE.Seen > 0 || s.LagSSE.Missed > 0 {
			sse = [4]string{fmtDur(s.LagSSE.P50), fmtDur(s.LagSSE.P99), fmtDur(s.LagSSE.Max), fmt.Sprint(s.LagSSE.Missed)}
		}
		fmt.Fprintf(b, "| %s | %s/s | %s | %s | %s | %d | %s | %s | %s | %s | drained in %s | %s |\n", fmtSize(s.Comments), fmtRate(s.Paced.Rate),
			fmtDur(s.LagGet.P50), fmtDur(s.LagGet.P99), fmtDur(s.LagGet.Max), s.LagGet.Missed,
			sse[0], sse[1], sse[2], sse[3], fmtDur(s.Drain), fmtCPU(s.Paced.CPU))
	}
}

// writeMachine writes the machine the run measured on, and what the
// columns mean.
func writeMachine(b *strings.Builder, rep *Report) {
	st := rep.Settings
	m := rep.Machine
	fmt.Fprintf(b, "\nMachine: %d CPUs (GOMAXPROCS %d)", m.CPUs, m.GOMAXPROCS)
	if m.CPU != "" {
		fmt.Fprintf(b, ", %s", m.CPU)
	}
	if m.Memory > 0 {
		fmt.Fprintf(b, ", %.1f GiB memory", float64(m.Memory)/(1<<30))
	}
	fmt.Fprintf(b, ", %s, %s", m.Go, m.OS)
	if m.Kernel != "" {
		fmt.Fprintf(b, " (kernel %s)", m.Kernel)
	}
	fmt.Fprintf(b, ". Target: %s; the load generator runs on the same machine. Cores: CPU used during the scenario by the server under load, by the bench (load generator, pollers), and by everything else on the machine (noise); server CPU per request is the server's CPU time over the requests it answered (for a create comment it includes the sync's work for that comment), the number least disturbed by noise.\n", st.Target)
}

// perRequest is the server's CPU time per answered request.
func perRequest(s Stat) string {
	if s.Rate <= 0 || s.CPU.Server <= 0 {
		return "–"
	}
	return fmtDur(time.Duration(s.CPU.Server / s.Rate * float64(time.Second)))
}

// writeDisk writes the table of a dataset's disk space per comment, by
// table and index.
func writeDisk(b *strings.Builder, s SizeResult) {
	d := s.Disk
	if d == nil || d.Comments == 0 {
		return
	}
	per := func(n int64) string { return fmt.Sprintf("%.0f", float64(n)/float64(d.Comments)) }
	var total int64
	for _, o := range d.Objects {
		total += o.Bytes
	}
	fmt.Fprintf(b, "\nDisk after the %s run: %s comments stored; the file and its WAL %s, %s bytes per comment; the tables and indexes (dbstat) %s bytes per comment:\n\n", fmtSize(s.Comments), thousands(d.Comments), fmtMB(d.FileBytes), per(d.FileBytes), per(total))
	b.WriteString("| table or index | of table | bytes | bytes per comment | payload per comment |\n|---|---|---:|---:|---:|\n")
	for _, o := range d.Objects {
		if o.Bytes*1000 < total { // under 0.1%: the small bookkeeping tables
			continue
		}
		name := o.Name
		if o.Index {
			name += " (index)"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", name, o.Table, thousands(o.Bytes), per(o.Bytes), per(o.Payload))
	}
}
