package mongo_test

import (
	"context"
	"testing"

	"blog/internal/store/mongo"
	"blog/internal/store/mongo/mongotest"
	"blog/internal/store/storetest"
)

// contractEmbedLimit keeps the suite's bounding tests small.
const contractEmbedLimit = 3

// stores wires every hook of the suite, the optional ones included, so no
// contract subtest skips for want of one. The injector writes through the
// driver, so it is the same code on the wire server and on a real one.
func stores(db *mongo.DB) storetest.Stores {
	return storetest.Stores{
		Posts:       db.Posts(),
		Comments:    db.Comments(),
		CommentFeed: db.CommentFeed(),
		PostFeed:    db.PostFeed(),
		EmbedLimit:  contractEmbedLimit,
		Leases:      db.Leases(),
		Cascade:     db.PostCascade(),
		InjectMalformedComment: func(t *testing.T, postID string) string {
			return mongotest.InjectMalformedComment(t, db, postID)
		},
		InjectMalformedCommentOnPost: func(t *testing.T, postID string) string {
			return mongotest.InjectMalformedCommentOnPost(t, db, postID)
		},
		DeadLetters: func(ctx context.Context, consumer string) ([]storetest.Parked, error) {
			ds, err := db.DeadLetters(ctx, consumer)
			var out []storetest.Parked
			for _, d := range ds {
				out = append(out, storetest.Parked{Op: d.Op, Key: d.Key, Reason: d.Reason})
			}
			return out, err
		},
		SetCommentCount: func(t *testing.T, postID string, n int) {
			if err := mongo.SetCommentCount(t.Context(), db, postID, n); err != nil {
				t.Fatal(err)
			}
		},
		SetDeleteChunk: func(n int) { mongo.SetDeleteChunk(db, n) },
	}
}

// TestContract runs the shared store contract through the v2 driver over
// TCP: on a fresh wire server per subtest, or, when TEST_MONGO_URI is set,
// on that replica set in a fresh database per subtest.
func TestContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) storetest.Stores {
		return stores(mongotest.Open(t, mongo.Options{EmbedLimit: contractEmbedLimit}))
	})
}

func TestWithDatabase(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"mongodb://localhost:27017,localhost:27018,localhost:27019/test?replicaSet=rs0",
			"mongodb://localhost:27017,localhost:27018,localhost:27019/x?replicaSet=rs0"},
		{"mongodb://localhost", "mongodb://localhost/x"},
		{"mongodb://localhost/?replicaSet=rs0", "mongodb://localhost/x?replicaSet=rs0"},
		{"mongodb://u:p@h/test?replicaSet=rs0", "mongodb://u:p@h/x?replicaSet=rs0&authSource=test"},
		{"mongodb://u:p@h", "mongodb://u:p@h/x?authSource=admin"},
		{"mongodb://u:p@h/?authSource=other", "mongodb://u:p@h/x?authSource=other"},
	} {
		if got := mongotest.WithDatabase(tc.in, "x"); got != tc.want {
			t.Errorf("WithDatabase(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
