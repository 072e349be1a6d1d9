package main_test

import (
	"context"
	"os"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	driver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"blog/internal/mongowire"
	"blog/internal/store/mongo/mongotest"
)

// backend is a store the end-to-end tests run the real binary on.
type backend struct {
	name string
	// env returns what the binary's environment adds for it (MONGO_URI
	// for MongoDB); it is called once per test, so restarts see the same
	// data.
	env func(t *testing.T) []string
}

// backends are the embedded store and MongoDB: the wire test server
// (mongowire) in this process, or the replica set TEST_MONGO_URI names.
func backends() []backend {
	return []backend{
		{"embedded", func(*testing.T) []string { return nil }},
		{"mongo", func(t *testing.T) []string { return []string{"MONGO_URI=" + mongoURI(t)} }},
	}
}

// mongoURI returns a connection string to a fresh database: on a wire
// server started for the test, or on TEST_MONGO_URI, where the database is
// dropped when the test ends.
func mongoURI(t *testing.T) string {
	t.Helper()
	name := "blog_e2e_" + bson.NewObjectID().Hex()
	base := os.Getenv("TEST_MONGO_URI")
	if base == "" {
		return mongotest.WithDatabase(mongowire.Start(t), name)
	}
	uri := mongotest.WithDatabase(base, name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := driver.Connect(options.Client().ApplyURI(uri))
		if err != nil {
			t.Errorf("connect to drop %s: %v", name, err)
			return
		}
		defer c.Disconnect(ctx)
		if err := c.Database(name).Drop(ctx); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	return uri
}
