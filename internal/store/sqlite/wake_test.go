package sqlite

import (
	"context"
	"database/sql"
	"testing"
	"time"
)

// TestPresence: a DB alone on its file knows it, and sees a second DB (in
// this process too: the locks belong to open files, not processes) until
// that one closes.
func TestPresence(t *testing.T) {
	dir := t.TempDir()
	a := openTest(t, dir, testOptions)
	if a.presence.others() {
		t.Fatal("a lone DB sees company")
	}
	b, err := Open(context.Background(), dir, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	if !a.presence.others() || !b.presence.others() {
		t.Fatalf("two DBs on one file: a sees others %v, b %v; want both true", a.presence.others(), b.presence.others())
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if a.presence.others() {
		t.Fatal("a still sees company after b closed")
	}
}

// TestWakesOnlyInterestedStreams: a commit that logs a comment wakes the
// comments streams only, and one that logs nothing (a checkpoint) wakes
// none.
func TestWakesOnlyInterestedStreams(t *testing.T) {
	db := openTest(t, t.TempDir(), testOptions)
	p := mustPost(t, db)
	cases := []struct {
		name                    string
		write                   func(t *testing.T)
		wantPosts, wantComments bool
	}{
		{"comment-wakes-comments", func(t *testing.T) { mustComment(t, db, p.ID) }, false, true},
		{"post-wakes-posts", func(t *testing.T) { mustPost(t, db) }, true, false},
		{"checkpoint-wakes-none", func(t *testing.T) {
			err := db.write(context.Background(), func(tx *sql.Tx) error {
				return saveCheckpoint(context.Background(), tx, "test", encodeToken(1))
			})
			if err != nil {
				t.Fatal(err)
			}
		}, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			posts, comments := db.wakes.posts.wait(), db.wakes.comments.wait()
			before := db.wakes.commits.Load()
			c.write(t)
			if got := closed(posts); got != c.wantPosts {
				t.Errorf("posts woken %v, want %v", got, c.wantPosts)
			}
			if got := closed(comments); got != c.wantComments {
				t.Errorf("comments woken %v, want %v", got, c.wantComments)
			}
			if moved := db.wakes.commits.Load() != before; moved != (c.wantPosts || c.wantComments) {
				t.Errorf("commit count moved %v", moved)
			}
		})
	}
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestOtherProcessWakesStream: a stream waiting on one DB returns the
// comment another DB on the same file committed, well before the quiet
// interval, through the watcher's data_version poll.
func TestOtherProcessWakesStream(t *testing.T) {
	dir := t.TempDir()
	opt := Options{QuietInterval: time.Minute, PollInterval: 5 * time.Millisecond}
	a, b := openTest(t, dir, opt), openTest(t, dir, opt)
	p := mustPost(t, b)
	st := openStreamT(t, a.CommentFeed(), nil)
	c := mustComment(t, b, p.ID)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bt, err := st.Next(ctx)
	if err != nil {
		t.Fatalf("no batch from the other DB's commit: %v", err)
	}
	if len(bt.Events) != 1 || bt.Events[0].Key != c.ID {
		t.Fatalf("batch %+v, want the comment %s", bt.Events, c.ID)
	}
}

// TestSpaceUsage: every table and index is reported, with its table, and
// the comments table grows with its comments.
func TestSpaceUsage(t *testing.T) {
	db := openTest(t, t.TempDir(), testOptions)
	p := mustPost(t, db)
	for range 200 {
		mustComment(t, db, p.ID)
	}
	sp, err := db.SpaceUsage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Space{}
	for _, s := range sp {
		byName[s.Name] = s
	}
	if c := byName["comments"]; c.Index || c.Table != "comments" || c.Payload < 200*20 {
		t.Fatalf("comments: %+v, want a table with at least 200 comments' payload", c)
	}
	if ix := byName["comments_id"]; !ix.Index || ix.Table != "comments" || ix.Bytes == 0 {
		t.Fatalf("comments_id: %+v, want an index of comments", ix)
	}
	if n, err := db.CountComments(context.Background()); err != nil || n != 200 {
		t.Fatalf("CountComments = %d, %v; want 200", n, err)
	}
}
