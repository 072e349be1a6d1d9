package mongo_test

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"blog/internal/changes"
	"blog/internal/mongowire"
	"blog/internal/post"
	"blog/internal/store/mongo"
	"blog/internal/store/mongo/mongotest"
)

// TestDroppedCommentsResync (issue 10, defect 1): after the comments
// collection is dropped under a running comment sync (a re-seed, say), its
// stream is invalidated; the consumer rebuilds the read model once (the
// dropped comments leave their posts) and follows a new stream from the
// head, so a comment created afterwards is embedded within 10 s. Before,
// it reopened at its checkpoint, met the drop again, and never synced
// another comment. The same happens for a failing getMore with
// CappedPositionLost (136), through MongoDB's fail point.
func TestDroppedCommentsResync(t *testing.T) {
	for _, tc := range []struct {
		name string
		lose func(t *testing.T, env *mongotest.Env)
	}{
		{"drop-comments", func(t *testing.T, env *mongotest.Env) {
			if err := env.Database().Collection("comments").Drop(context.Background()); err != nil {
				t.Fatal(err)
			}
		}},
		{"capped-position-lost", func(t *testing.T, env *mongotest.Env) {
			env.FailPoint(t, bson.D{{Key: "times", Value: 1}}, bson.D{
				{Key: "failCommands", Value: bson.A{"getMore"}}, {Key: "errorCode", Value: 136}})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, env := mongotest.OpenEnv(t, mongowire.Options{}, mongo.Options{EmbedLimit: 3})
			c := post.NewCommentSync(db.Posts(), db.CommentFeed(), nil)
			c.MinBackoff, c.MaxBackoff = time.Millisecond, 50*time.Millisecond
			start(t, c)
			waitFor(t, "consumer running", c.Running)
			p := newPost(t, db, "p", at(0))
			old := newComment(t, db, p.ID, "before", at(1))
			waitFor(t, "the first comment embedded", func() bool {
				got, err := db.Posts().Get(ctxFor(t), p.ID)
				return err == nil && got.CommentCount == 1
			})
			tc.lose(t, env)
			waitFor(t, "one resync", func() bool { return c.Stats().Resyncs >= 1 })
			fresh := newComment(t, db, p.ID, "after", at(2))
			begin := time.Now()
			want := []string{fresh.ID}
			if tc.name != "drop-comments" {
				want = []string{old.ID, fresh.ID}
			}
			waitFor(t, "the comment after the loss embedded", func() bool {
				got, err := db.Posts().Get(ctxFor(t), p.ID)
				if err != nil || got.CommentCount != len(want) || len(got.Comments) != len(want) {
					return false
				}
				for i, e := range got.Comments {
					if e.ID != want[i] {
						return false
					}
				}
				return true
			})
			if d := time.Since(begin); d > 10*time.Second {
				t.Errorf("embedded %v after the loss, want within 10 s", d)
			}
			if st := c.Stats(); st.Resyncs != 1 {
				t.Errorf("%d resyncs, want 1", st.Resyncs)
			}
		})
	}
}

// TestDroppedPostsResyncCascade (issue 10, defect 1): after the posts
// collection is dropped under the running cascade, its stream is
// invalidated; the cascade's consumer rebuilds once, which deletes the
// comments whose posts are gone, and keeps following the posts feed.
func TestDroppedPostsResyncCascade(t *testing.T) {
	db, env := mongotest.OpenEnv(t, mongowire.Options{}, mongo.Options{})
	c := &changes.Consumer[post.Post]{
		Name: "comments.posts", Feed: db.PostEvents(), Sink: db.PostCascade(),
		MinBackoff: time.Millisecond, MaxBackoff: 50 * time.Millisecond,
	}
	start(t, c)
	waitFor(t, "consumer running", c.Running)
	p := newPost(t, db, "p", at(0))
	newComment(t, db, p.ID, "orphaned by the drop", at(1))
	if err := env.Database().Collection("posts").Drop(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "one resync", func() bool { return c.Stats().Resyncs >= 1 })
	waitFor(t, "the dropped post's comments deleted", func() bool {
		n, err := env.Database().Collection("comments").CountDocuments(context.Background(), bson.D{})
		return err == nil && n == 0
	})
	// The cascade keeps following: a post created and deleted now has its
	// comments deleted too.
	q := newPost(t, db, "q", at(2))
	newComment(t, db, q.ID, "of q", at(3))
	if err := db.Posts().Delete(ctxFor(t), q.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "q's comments deleted by the cascade", func() bool {
		n, err := env.Database().Collection("comments").CountDocuments(context.Background(), bson.D{})
		return err == nil && n == 0
	})
	if st := c.Stats(); st.Resyncs != 1 {
		t.Errorf("%d resyncs, want 1", st.Resyncs)
	}
}
