package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestParseSizes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		err  bool
	}{
		{in: "1000,100000,1000000", want: []int{1000, 100000, 1000000}},
		{in: "1k, 100k ,1M", want: []int{1000, 100000, 1000000}},
		{in: "5", want: []int{5}},
		{in: "", err: true},
		{in: "1k,,2k", err: true},
		{in: "-3", err: true},
		{in: "many", err: true},
	} {
		got, err := ParseSizes(tc.in)
		if (err != nil) != tc.err || (!tc.err && !equal(got, tc.want)) {
			t.Errorf("ParseSizes(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRecorderPercentiles(t *testing.T) {
	r := newRecorder("x")
	start := time.Unix(1000, 0)
	for i := 1; i <= 100; i++ {
		r.add(start.Add(time.Duration(i)*time.Millisecond), time.Duration(i)*time.Millisecond, "")
	}
	r.add(start, time.Millisecond, "status 500")
	s := r.stat()
	if s.Requests != 101 || s.Errors != 1 || s.FirstError != "status 500" {
		t.Fatalf("counts: %+v", s)
	}
	if s.P50 != 50*time.Millisecond || s.P99 != 99*time.Millisecond || s.Max != 100*time.Millisecond {
		t.Errorf("percentiles p50 %v p99 %v max %v; want 50ms 99ms 100ms", s.P50, s.P99, s.Max)
	}
	// 100 successes between the first start (t=0, the failure) and the last
	// end (t=200ms): 500/s.
	if s.Elapsed != 200*time.Millisecond || s.Rate < 499 || s.Rate > 501 {
		t.Errorf("elapsed %v rate %v; want 200ms, 500/s", s.Elapsed, s.Rate)
	}
	if p50, p99, m := percentiles(nil); p50 != 0 || p99 != 0 || m != 0 {
		t.Error("percentiles of nothing are not zero")
	}
}

func TestFormats(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{fmtSize(1000), "1k"}, {fmtSize(100000), "100k"}, {fmtSize(1000000), "1M"}, {fmtSize(1500), "1,500"}, {fmtSize(-1), "as found"},
		{fmtRate(12345.6), "12,346"}, {fmtRate(0), "0"}, {fmtRate(2.25), "2.2"},
		{fmtDur(1500 * time.Microsecond), "1.50ms"}, {fmtDur(250 * time.Microsecond), "250µs"}, {fmtDur(25 * time.Millisecond), "25.0ms"}, {fmtDur(0), "–"},
		{thousands(1234567), "1,234,567"}, {thousands(-1000), "-1,000"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// report returns a made-up report of three sizes.
func report(commentRate1M float64, lagP99 time.Duration, peak int64) *Report {
	mk := func(n int, commentRate float64) SizeResult {
		s := SizeResult{Comments: n, Posts: n / 20, RSS: 50 << 20, Peak: 60 << 20,
			LagGet: Lag{Via: "GET", Seen: 100, P50: 2 * time.Millisecond, P99: 8 * time.Millisecond, Max: 9 * time.Millisecond},
			LagSSE: Lag{Via: "SSE", Skipped: "no route"},
			Paced:  Stat{Name: "paced comments", Requests: 5000, Rate: 500, Paced: 500},
		}
		for _, sc := range Scenarios {
			st := Stat{Name: sc, Rate: 5000, P50: time.Millisecond, P99: 3 * time.Millisecond, Max: 4 * time.Millisecond, Requests: 100}
			switch sc {
			case CreateComment:
				st.Rate = commentRate
			case GetRecentPost:
				st.Rate = 7000 // 0.875x the bare handler
			}
			s.Scenarios = append(s.Scenarios, st)
		}
		return s
	}
	rep := &Report{
		Settings: Settings{Duration: time.Second, Concurrency: 8, LagRate: 500, LagPosts: 20},
		Bare:     &Stat{Name: "bare", Rate: 8000}, Raw: &Stat{Name: "raw", Rate: 10000},
		Sizes: []SizeResult{mk(1000, 3000), mk(100000, 3000), mk(1000000, commentRate1M)},
	}
	rep.Sizes[2].LagGet.P99 = lagP99
	rep.Sizes[2].Peak = peak
	return rep
}

func TestTargets(t *testing.T) {
	verdicts := func(rep *Report) map[string]string {
		m := map[string]string{}
		for _, tg := range Targets(rep) {
			m[tg.Goal] = tg.Verdict
		}
		return m
	}
	good := verdicts(report(2900, 10*time.Millisecond, 100<<20))
	for goal, v := range good {
		want := "pass"
		if strings.Contains(goal, "SSE") {
			want = "n/a"
		}
		if v != want {
			t.Errorf("good report: %q is %s, want %s", goal, v, want)
		}
	}
	badRep := report(1000, 30*time.Millisecond, 300<<20)
	badRep.Sizes[1].Scenarios[1].Rate = 4000 // get recent post: 0.5x
	badRep.Sizes[0].IdleWindow, badRep.Sizes[0].IdleCPU = time.Second, 0.01
	bad := verdicts(badRep)
	for _, goal := range []string{
		"create comment ≥ 2,000/s",
		"create comment at 1M ≥ 0.8x at 1k",
		"propagation to GET p99 ≤ 20 ms at 500/s",
		"RSS ≤ 200 MB at 1M",
		"get recent post ≥ 0.8x the bare handler",
		"idle CPU ≤ 0.2% of a core",
	} {
		if bad[goal] != "FAIL" {
			t.Errorf("bad report: %q is %q, want FAIL (all: %v)", goal, bad[goal], bad)
		}
	}
}

func TestWriteMarkdownAndChart(t *testing.T) {
	rep := report(2900, 10*time.Millisecond, 100<<20)
	var md bytes.Buffer
	if err := WriteMarkdown(&md, rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| get post | 1M | 5,000/s | 1.00ms | 3.00ms | 4.00ms | 0 | 0.62x bare GET |",
		"| create comment | 1k | 3,000/s |",
		"0.30x raw insert",
		"| 1M | 500/s | 2.00ms | 10.0ms |",
		"| 1M | 50,000 |",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
	var png bytes.Buffer
	if err := WriteChart(&png, rep); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png.Bytes(), []byte("\x89PNG")) {
		t.Error("chart is not a PNG")
	}
	one := &Report{Sizes: rep.Sizes[:1], Bare: rep.Bare}
	if err := WriteChart(&png, one); err != nil {
		t.Errorf("chart of one size: %v", err)
	}
}
