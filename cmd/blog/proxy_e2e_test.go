package main_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSeparateWebFrontEndTrustedByToken: `blog web` run apart from `blog
// posts` relays each browser's stream with the browser's address, and the
// posts service believes it because the front end proves itself with the
// API token; so the posts service's per-client stream cap counts browsers,
// not the front end (which would otherwise be one client capped at 2
// streams here). Three browsers on distinct loopback addresses open 2
// streams each; every stream must get its snapshot.
func TestSeparateWebFrontEndTrustedByToken(t *testing.T) {
	dir := t.TempDir()
	pp, cp, wp := freePort(t), freePort(t), freePort(t)
	env := []string{
		fmt.Sprintf("PORT=%d", pp), fmt.Sprintf("COMMENTS_PORT=%d", cp), fmt.Sprintf("WEB_PORT=%d", wp),
		"BLOG_DATA_DIR=" + filepath.Join(dir, "data"), "BLOG_API_TOKEN=tok", "BLOG_STREAMS_PER_CLIENT=2",
	}
	start(t, dir, env, "posts")
	start(t, dir, env, "web")
	posts, web := fmt.Sprintf("http://127.0.0.1:%d", pp), fmt.Sprintf("127.0.0.1:%d", wp)
	waitReady(t, posts)
	req, _ := http.NewRequest("POST", posts+"/posts", strings.NewReader(`{"title":"t","content":"c"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer tok")
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 201 {
		t.Fatalf("create post: %v %v", err, res)
	}
	var p struct {
		ID string `json:"_id"`
	}
	_ = json.NewDecoder(res.Body).Decode(&p)
	res.Body.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if r, err := http.Get("http://" + web + "/livez"); err == nil {
			r.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("web front end not up within 20 s")
		}
		time.Sleep(20 * time.Millisecond) // start-up poll, bounded above
	}
	for b := range 3 {
		for s := range 2 {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(10+b))}, Timeout: 5 * time.Second}
			conn, err := d.Dial("tcp", web)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(conn, "GET /posts/%s/events HTTP/1.1\r\nHost: %s\r\n\r\n", p.ID, web)
			br := bufio.NewReader(conn)
			got := false
			for !got {
				line, err := br.ReadString('\n')
				if err != nil {
					t.Fatalf("browser %d stream %d: no snapshot: %v", b, s, err)
				}
				got = strings.HasPrefix(line, "event: snapshot")
			}
		}
	}
}
