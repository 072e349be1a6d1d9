package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"blog/internal/changes"
	"blog/internal/comment"
	"blog/internal/post"
	"blog/internal/store/mongo"
	"blog/internal/store/sqlite"
)

// stores is what the services need from whichever adapter the config picks.
type stores struct {
	posts       post.Store
	comments    comment.Store
	commentFeed changes.Feed[comment.Comment]
	postFeed    changes.Feed[post.Post]
	// cascade is the comments service's sink of the posts feed.
	cascade changes.Sink[post.Post]
	leases  changes.Leaser
	// prune trims the change log (embedded store only; MongoDB's oplog is
	// the server's business).
	prune func(ctx context.Context, olderThan time.Duration) (int64, error)
	close func() error
}

// openStore opens MongoDB when MONGO_URI is set, else the embedded store.
func openStore(ctx context.Context, cfg Config, log *slog.Logger) (*stores, error) {
	if cfg.MongoURI != "" {
		db, err := mongo.Open(ctx, cfg.MongoURI, mongo.Options{EmbedLimit: cfg.embedLimit(), Logger: log})
		if err != nil {
			return nil, err
		}
		return &stores{
			posts: db.Posts(), comments: db.Comments(),
			commentFeed: db.CommentFeed(), postFeed: db.PostEvents(),
			cascade: db.PostCascade(), leases: db.Leases(),
			close: func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				return db.Close(ctx)
			},
		}, nil
	}
	db, err := sqlite.Open(ctx, cfg.DataDir, sqlite.Options{EmbedLimit: cfg.embedLimit(), Logger: log})
	if err != nil {
		return nil, fmt.Errorf("open embedded store in %s: %w", cfg.DataDir, err)
	}
	return &stores{
		posts: db.Posts(), comments: db.Comments(),
		commentFeed: db.CommentFeed(), postFeed: db.PostEvents(),
		cascade: db.PostCascade(), leases: db.Leases(), prune: db.PruneBefore,
		close: db.Close,
	}, nil
}
