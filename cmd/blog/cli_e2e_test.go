package main_test

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestStartupLogNamesServices: the real binary's start-up log says which
// service listens at which URL, so a user knows which port is the website,
// and -h exits with status 0.
func TestStartupLogNamesServices(t *testing.T) {
	dir := t.TempDir()
	// Port 0: the system picks free ports, and the log must say which.
	p := start(t, dir, []string{"BLOG_DATA_DIR=" + dir, "PORT=0", "COMMENTS_PORT=0", "WEB_PORT=0"})
	want := []*regexp.Regexp{
		regexp.MustCompile(`service="posts API" url=http://127\.0\.0\.1:[1-9][0-9]*`),
		regexp.MustCompile(`service="comments API" url=http://127\.0\.0\.1:[1-9][0-9]*`),
		regexp.MustCompile(`service="web \(open in a browser\)" url=http://127\.0\.0\.1:[1-9][0-9]*`),
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var missing *regexp.Regexp
		for _, w := range want {
			if !w.MatchString(p.out.String()) {
				missing = w
			}
		}
		if missing == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("start-up log lacks %s:\n%s", missing, p.out)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, bounded by the deadline
	}
	p.stop(t)

	cmd := exec.Command(binary(t), "-h")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "usage: blog") {
		t.Fatalf("blog -h: %v\n%s", err, out)
	}
	cmd = exec.Command(binary(t), "serve", "-h")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "(default 4000)") {
		t.Fatalf("blog serve -h: %v\n%s", err, out)
	}
}
