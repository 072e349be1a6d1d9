package post

import (
	"log/slog"
	"time"

	"blog/internal/changes"
	"blog/internal/comment"
)

// CommentsConsumer is the checkpoint name under which the posts service
// records how far it has read the comments feed.
const CommentsConsumer = "posts.comments"

// NewCommentSync returns the consumer that keeps every post's embedded
// comments and commentCount in step with the comments feed. It is the
// seed's change-stream listener, made resumable: it starts from its saved
// checkpoint, and the store applies each batch with the checkpoint at once.
func NewCommentSync(store Store, feed changes.Feed[comment.Comment], log *slog.Logger) *changes.Consumer[comment.Comment] {
	return &changes.Consumer[comment.Comment]{
		Name:       CommentsConsumer,
		Feed:       feed,
		Sink:       store,
		Log:        log,
		MinBackoff: 50 * time.Millisecond,
		MaxBackoff: 5 * time.Second,
	}
}
