package mongo_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	driver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"blog/internal/store/mongo"
	"blog/internal/store/mongo/mongotest"
	"blog/internal/store/storetest"
)

// contractEmbedLimit keeps the suite's bounding tests small.
const contractEmbedLimit = 3

// stores wires every hook of the suite, the optional ones included, so no
// contract subtest skips for want of one. The injector writes through the
// DB's own backend, so it is the same code on lungo and on a server.
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
				out = append(out, storetest.Parked{Op: d.Op, Key: d.DocID, Reason: d.Reason})
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

// TestContractLungo runs the shared store contract on the lungo backend, a
// fresh in-memory engine per subtest.
func TestContractLungo(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) storetest.Stores {
		return stores(mongotest.Open(t, mongo.Options{EmbedLimit: contractEmbedLimit}))
	})
}

// TestContractServer runs the shared store contract on a real deployment
// through the v2 driver, each subtest in a fresh database that is dropped
// afterwards. It needs TEST_MONGO_URI, a replica set or sharded cluster.
func TestContractServer(t *testing.T) {
	uri := os.Getenv("TEST_MONGO_URI")
	if uri == "" {
		t.Skip("TEST_MONGO_URI is not set; set it to a replica set " +
			"(e.g. mongodb://localhost:27017/?replicaSet=rs0) to run the contract suite against a real MongoDB")
	}
	t.Parallel()
	storetest.Run(t, func(t *testing.T) storetest.Stores {
		return stores(openServer(t, uri, mongo.Options{
			EmbedLimit:    contractEmbedLimit,
			QuietInterval: 200 * time.Millisecond,
		}))
	})
}

// openServer opens uri on a fresh database and drops it when t ends.
func openServer(t *testing.T, uri string, opt mongo.Options) *mongo.DB {
	t.Helper()
	name := "blogtest_" + bson.NewObjectID().Hex()
	db, err := mongo.Open(t.Context(), withDatabase(uri, name), opt)
	if err != nil {
		t.Fatalf("open %s: %v", mongo.MaskURI(uri), err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := db.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
		client, err := driver.Connect(options.Client().ApplyURI(uri))
		if err != nil {
			t.Errorf("connect to drop %s: %v", name, err)
			return
		}
		defer client.Disconnect(ctx)
		if err := client.Database(name).Drop(ctx); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	return db
}

// withDatabase returns uri with its path (the database) set to name. The
// path is also where a user authenticates unless authSource says otherwise,
// so an authSource naming the original database (admin by default) is
// added for a URI with credentials.
func withDatabase(uri, name string) string {
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return uri
	}
	hosts, db, query := rest, "", ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		hosts = rest[:i]
		path, q, _ := strings.Cut(rest[i:], "?")
		db, query = strings.TrimPrefix(path, "/"), q
	}
	if strings.Contains(hosts, "@") && !strings.Contains(strings.ToLower(query), "authsource=") {
		if db == "" {
			db = "admin"
		}
		if query != "" {
			query += "&"
		}
		query += "authSource=" + db
	}
	if query != "" {
		query = "?" + query
	}
	return fmt.Sprintf("%s://%s/%s%s", scheme, hosts, name, query)
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
		if got := withDatabase(tc.in, "x"); got != tc.want {
			t.Errorf("withDatabase(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
