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

	"go.mongodb.org/mongo-driver/v2/bson"
	driver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

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

// poisoner writes a malformed comment of a post straight into a backend's
// database, as a careless script would, and mends it by hand, as an
// operator would.
type poisoner struct {
	// inject writes the malformed comment (postId the number 123) and
	// returns its id.
	inject func(t *testing.T, postID string) string
	// mend gives the comment postID and the text "mended".
	mend func(t *testing.T, id, postID string)
	// stillBad is what a retry of the malformed comment says.
	stillBad string
}

func embeddedPoisoner(data string) poisoner {
	path := filepath.Join(data, sqlite.FileName)
	return poisoner{
		inject: func(t *testing.T, postID string) string {
			id, err := sqlitetest.InjectMalformedComment(t.Context(), path, postID)
			if err != nil {
				t.Fatal(err)
			}
			return id
		},
		mend: func(t *testing.T, id, postID string) {
			err := sqlitetest.Exec(t.Context(), path, `UPDATE comments SET post_id = ?, text = 'mended' WHERE id = ?`, postID, id)
			if err != nil {
				t.Fatal(err)
			}
		},
		stillBad: "malformed post id",
	}
}

func mongoPoisoner(t *testing.T, uri string) poisoner {
	c, err := driver.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	name := uri[strings.LastIndex(uri, "/")+1:]
	name, _, _ = strings.Cut(name, "?")
	comments := c.Database(name).Collection("comments")
	return poisoner{
		inject: func(t *testing.T, _ string) string {
			id := bson.NewObjectID()
			_, err := comments.InsertOne(t.Context(), bson.D{
				{Key: "_id", Value: id}, {Key: "postId", Value: 123},
				{Key: "text", Value: "malformed"}, {Key: "createdAt", Value: time.Now()},
			})
			if err != nil {
				t.Fatal(err)
			}
			return id.Hex()
		},
		mend: func(t *testing.T, id, postID string) {
			cid, _ := bson.ObjectIDFromHex(id)
			pid, _ := bson.ObjectIDFromHex(postID)
			_, err := comments.UpdateOne(t.Context(), bson.D{{Key: "_id", Value: cid}},
				bson.D{{Key: "$set", Value: bson.D{{Key: "postId", Value: pid}, {Key: "text", Value: "mended"}}}})
			if err != nil {
				t.Fatal(err)
			}
		},
		stillBad: "still unreadable",
	}
}

// TestDeadLettersListAndRetry, on each backend: a malformed comment written
// straight into the database is parked by the running posts consumer;
// `blog deadletters` lists it (consumer, position, op, key, when, reason);
// a retry while it is still malformed fails and keeps it; once the document
// is mended by hand, `blog deadletters -retry ID` applies it and removes it,
// and the comment shows in its post.
func TestDeadLettersListAndRetry(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			dir := t.TempDir()
			data := filepath.Join(dir, "data")
			pp, cp := freePort(t), freePort(t)
			env := append([]string{fmt.Sprintf("PORT=%d", pp), fmt.Sprintf("COMMENTS_PORT=%d", cp), fmt.Sprintf("WEB_PORT=%d", freePort(t)), "BLOG_DATA_DIR=" + data}, be.env(t)...)
			pz := embeddedPoisoner(data)
			for _, e := range env {
				if uri, ok := strings.CutPrefix(e, "MONGO_URI="); ok {
					pz = mongoPoisoner(t, uri)
				}
			}
			testDeadLetters(t, dir, env, pz, fmt.Sprintf("http://127.0.0.1:%d", pp), fmt.Sprintf("http://127.0.0.1:%d", cp))
		})
	}
}

func testDeadLetters(t *testing.T, dir string, env []string, pz poisoner, posts, comments string) {
	start(t, dir, env, "serve")
	waitReady(t, posts)
	waitReady(t, comments)

	var p postJSON
	call(t, "POST", posts+"/posts", `{"title":"t","content":"c"}`, 201, &p)
	bad := pz.inject(t, p.ID)

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
	if len(f) > 5 {
		if _, err := time.Parse(time.RFC3339, f[5]); err != nil {
			t.Errorf("parked time %q: %v", f[5], err)
		}
	}

	// Still malformed: the retry fails, says why, and keeps it.
	if out, errOut, err := blogCmd(t, dir, env, "deadletters", "-retry", id); err == nil {
		t.Errorf("retry of a malformed comment succeeded: %s", out)
	} else if !strings.Contains(errOut, pz.stillBad) {
		t.Errorf("retry failed without saying why (want %q): %s", pz.stillBad, errOut)
	}
	pz.mend(t, bad, p.ID)
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
