package main_test

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestStartupLogNamesServices: the real binary's start-up log says which
// service listens at which URL, so a user knows which port is the website,
// and -h exits with status 0.
func TestStartupLogNamesServices(t *testing.T) {
	dir := t.TempDir()
	posts, comments, web := freePort(t), freePort(t), freePort(t)
	p := start(t, dir, []string{"BLOG_DATA_DIR=" + dir, "PORT=" + strconv.Itoa(posts), "COMMENTS_PORT=" + strconv.Itoa(comments), "WEB_PORT=" + strconv.Itoa(web)})
	want := []string{
		`service="posts API" url=http://127.0.0.1:` + strconv.Itoa(posts),
		`service="comments API" url=http://127.0.0.1:` + strconv.Itoa(comments),
		`service="web (open in a browser)" url=http://127.0.0.1:` + strconv.Itoa(web),
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		missing := ""
		for _, w := range want {
			if !strings.Contains(p.out.String(), w) {
				missing = w
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("start-up log lacks %s:\n%s", missing, p.out)
		}
		time.Sleep(20 * time.Millisecond)
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
