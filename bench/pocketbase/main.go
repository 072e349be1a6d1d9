// Command pbpeer is the PocketBase peer of `blog bench`: PocketBase v0.40.4,
// the backend a developer would pick instead for "posts with live
// comments", set up as the blog is (a posts and a comments collection, the
// comment's relation to its post indexed with its creation time, open
// rules) and seeded like the bench's datasets. It is a Go module of its own
// (PocketBase needs Go 1.27), never a dependency of the blog's module and
// never run in CI. bench/run-peer.sh drives it; see docs/BENCHMARKS.md.
//
//	pbpeer serve --dir DIR --http 127.0.0.1:8090   PocketBase's own serve, collections ensured at start
//	pbpeer seed  --dir DIR --posts 5000 --per-post 20
package main

import (
	"crypto/rand"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/pocketbase/pocketbase"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/types"
	"github.com/spf13/cobra"
)

func main() {
	// Not dev mode (SQL logging), whatever the binary's directory: PocketBase
	// takes a binary under the temp dir for `go run`.
	app := pocketbase.NewWithConfig(pocketbase.Config{DefaultDev: false})
	app.OnBootstrap().BindFunc(func(e *core.BootstrapEvent) error {
		if err := e.Next(); err != nil {
			return err
		}
		return ensureCollections(e.App)
	})
	var posts, perPost int
	seed := &cobra.Command{
		Use:   "seed",
		Short: "seed posts with comments as blog bench seeds its datasets",
		RunE: func(*cobra.Command, []string) error {
			if err := app.Bootstrap(); err != nil {
				return err
			}
			return seedData(app, posts, perPost)
		},
	}
	seed.Flags().IntVar(&posts, "posts", 5000, "posts to create")
	seed.Flags().IntVar(&perPost, "per-post", 20, "comments per post")
	app.RootCmd.AddCommand(seed)
	if err := app.Start(); err != nil {
		log.Fatal(err)
	}
}

// ensureCollections creates posts and comments when missing: open rules,
// comments.post a relation to posts, indexed with created.
func ensureCollections(app core.App) error {
	if _, err := app.FindCollectionByNameOrId("comments"); err == nil {
		return nil
	}
	open := types.Pointer("")
	posts := core.NewBaseCollection("posts")
	posts.ListRule, posts.ViewRule, posts.CreateRule, posts.UpdateRule, posts.DeleteRule = open, open, open, open, open
	posts.Fields.Add(
		&core.TextField{Name: "title", Required: true, Max: 300},
		&core.TextField{Name: "content", Max: 100 << 10},
		&core.AutodateField{Name: "created", OnCreate: true},
		&core.AutodateField{Name: "updated", OnCreate: true, OnUpdate: true},
	)
	posts.AddIndex("idx_posts_created", false, "created", "")
	if err := app.Save(posts); err != nil {
		return fmt.Errorf("create posts: %w", err)
	}
	comments := core.NewBaseCollection("comments")
	comments.ListRule, comments.ViewRule, comments.CreateRule, comments.UpdateRule, comments.DeleteRule = open, open, open, open, open
	comments.Fields.Add(
		&core.RelationField{Name: "post", Required: true, CollectionId: posts.Id, MaxSelect: 1, CascadeDelete: true},
		&core.TextField{Name: "text", Required: true, Max: 10 << 10},
		&core.AutodateField{Name: "created", OnCreate: true},
		&core.AutodateField{Name: "updated", OnCreate: true, OnUpdate: true},
	)
	comments.AddIndex("idx_comments_post_created", false, "post, created", "")
	if err := app.Save(comments); err != nil {
		return fmt.Errorf("create comments: %w", err)
	}
	return nil
}

// seedData writes posts of 480-byte contents, each with perPost 96-byte
// comments, interleaved across posts as on a live blog, in transactions of
// a thousand rows, straight into the collections' tables (as blog's Seed
// writes its tables), with PocketBase's id and date formats.
func seedData(app core.App, posts, perPost int) error {
	const content = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. "
	body := strings.Repeat(content, 5)[:480]
	start := time.Now().Add(-time.Duration(posts*perPost) * time.Millisecond)
	at := func(i int) string { return start.Add(time.Duration(i) * time.Millisecond).UTC().Format("2006-01-02 15:04:05.000Z") }
	ids := make([]string, posts)
	for lo := 0; lo < posts; lo += 1000 {
		err := app.RunInTransaction(func(tx core.App) error {
			for i := lo; i < min(lo+1000, posts); i++ {
				ids[i] = newID()
				_, err := tx.DB().NewQuery("INSERT INTO posts (id, title, content, created, updated) VALUES ({:id}, {:t}, {:c}, {:at}, {:at})").
					Bind(map[string]any{"id": ids[i], "t": fmt.Sprintf("Seeded post %d", i), "c": body, "at": at(i)}).Execute()
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("seed posts: %w", err)
		}
	}
	total := posts * perPost
	for lo := 0; lo < total; lo += 1000 {
		err := app.RunInTransaction(func(tx core.App) error {
			for i := lo; i < min(lo+1000, total); i++ {
				p := i % posts
				text := (fmt.Sprintf("Comment %d on post %d: ", i/posts, p) + strings.Repeat("sed do eiusmod tempor ", 5))[:96]
				_, err := tx.DB().NewQuery("INSERT INTO comments (id, post, text, created, updated) VALUES ({:id}, {:p}, {:t}, {:at}, {:at})").
					Bind(map[string]any{"id": newID(), "p": ids[p], "t": text, "at": at(posts + i)}).Execute()
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("seed comments: %w", err)
		}
	}
	fmt.Printf("seeded %d posts, %d comments\n", posts, total)
	return nil
}

// newID returns a PocketBase record id: 15 characters of [a-z0-9].
func newID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 15)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
