package main_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"blog/internal/store/sqlite"
	"blog/internal/store/sqlite/sqlitetest"
)

// blogCmd runs the binary once with args and env (added to a clean
// environment), bounded by 30 s, and returns its standard output and error.
func blogCmd(t *testing.T, dir string, env []string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// TestDeadLettersListAndRetry: a malformed comment written straight into
// the database is parked by the running posts consumer; `blog deadletters`
// lists it (consumer, position, op, key, when, reason); once the document is
// mended by hand, `blog deadletters -retry ID` applies it and removes it,
// and the comment shows in its post.
func TestDeadLettersListAndRetry(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	pp, cp := freePort(t), freePort(t)
	env := []string{fmt.Sprintf("PORT=%d", pp), fmt.Sprintf("COMMENTS_PORT=%d", cp), fmt.Sprintf("WEB_PORT=%d", freePort(t)), "BLOG_DATA_DIR=" + data}
	posts, comments := fmt.Sprintf("http://127.0.0.1:%d", pp), fmt.Sprintf("http://127.0.0.1:%d", cp)
	start(t, dir, env, "serve")
	waitReady(t, posts)
	waitReady(t, comments)

	var p postJSON
	call(t, "POST", posts+"/posts", `{"title":"t","content":"c"}`, 201, &p)
	bad, err := sqlitetest.InjectMalformedComment(t.Context(), filepath.Join(data, sqlite.FileName), p.ID)
	if err != nil {
		t.Fatal(err)
	}

	var id, listing string
	waitFor(t, 30*time.Second, "blog deadletters to list the malformed comment", func() bool {
		out, errOut, err := blogCmd(t, dir, env, "deadletters")
		if err != nil {
			t.Fatalf("blog deadletters: %v\n%s", err, errOut)
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, bad) {
				id, listing = strings.Fields(line)[0], line
			}
		}
		return id != ""
	})
	f := strings.Fields(listing)
	if len(f) < 7 || f[1] != "posts.comments" || f[2] == "" || f[3] != "insert" || f[4] != bad {
		t.Errorf("listing %q, want id, consumer posts.comments, position, insert, key %s, time, reason", listing, bad)
	}
	if _, err := time.Parse(time.RFC3339, f[5]); err != nil {
		t.Errorf("parked time %q: %v", f[5], err)
	}
	if !strings.Contains(listing, "cannot") {
		t.Errorf("listing %q gives no reason", listing)
	}

	// Still malformed: the retry fails and keeps it.
	if out, errOut, err := blogCmd(t, dir, env, "deadletters", "-retry", id); err == nil {
		t.Errorf("retry of a malformed comment succeeded: %s", out)
	} else if !strings.Contains(errOut, "malformed post id") {
		t.Errorf("retry failed without saying why: %s", errOut)
	}
	// Mended by hand, as an operator would.
	err = sqlitetest.Exec(t.Context(), filepath.Join(data, sqlite.FileName),
		`UPDATE comments SET post_id = ?, text = 'mended' WHERE id = ?`, p.ID, bad)
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, err := blogCmd(t, dir, env, "deadletters", "-retry", id)
	if err != nil || !strings.Contains(out, "retried "+id) {
		t.Fatalf("blog deadletters -retry %s: %v\n%s\n%s", id, err, out, errOut)
	}
	var got postJSON
	call(t, "GET", posts+"/posts/"+p.ID, "", 200, &got)
	if got.CommentCount != 1 || len(got.Comments) != 1 || got.Comments[0].ID != bad || got.Comments[0].Text != "mended" {
		t.Errorf("post after the retry: %+v, want the mended comment %s embedded and counted", got, bad)
	}
	out, _, err = blogCmd(t, dir, env, "deadletters")
	if err != nil || strings.Contains(out, bad) || !strings.Contains(out, "0 dead letters") {
		t.Errorf("blog deadletters after the retry: %v\n%s", err, out)
	}
	if _, errOut, err := blogCmd(t, dir, env, "deadletters", "-retry", "999999"); err == nil || !strings.Contains(errOut, "no dead letter") {
		t.Errorf("retry of an unknown id: %v\n%s", err, errOut)
	}
}
