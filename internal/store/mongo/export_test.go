package mongo

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// SetDeleteChunk sets how many comments one transaction of a post's
// comment deletion removes (DeleteByPost and the cascade), so tests reach
// several chunks with few comments. Set it before db is used.
func SetDeleteChunk(db *DB, n int) { db.deleteChunk = n }

// SetCommentCount writes a post's commentCount straight into the posts
// collection, as drift would, for the contract suite's count rules.
func SetCommentCount(ctx context.Context, db *DB, postID string, n int) error {
	pid, ok := oid(postID)
	if !ok {
		return fmt.Errorf("post %q: malformed id", postID)
	}
	_, err := db.posts.updateOne(ctx, idFilter(pid), bson.D{{Key: "$set", Value: bson.D{{Key: "commentCount", Value: int64(n)}}}}, false)
	return err
}

// SetRepairChunk sets how many comments one RebuildPost transaction copies
// or prunes, and returns a function that restores it.
func SetRepairChunk(n int) (restore func()) {
	old := repairChunk
	repairChunk = n
	return func() { repairChunk = old }
}
