package mongowire_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"blog/internal/mongowire"
)

// failPoint configures MongoDB's failCommand fail point, exactly as on a
// real server started with enableTestCommands=1, and turns it off when the
// test ends.
func failPoint(t *testing.T, c *mongo.Client, mode any, data bson.D) {
	t.Helper()
	admin := c.Database("admin")
	cmd := bson.D{{Key: "configureFailPoint", Value: "failCommand"}, {Key: "mode", Value: mode}, {Key: "data", Value: data}}
	if err := admin.RunCommand(context.Background(), cmd).Err(); err != nil {
		t.Fatalf("configureFailPoint: %v", err)
	}
	t.Cleanup(func() {
		_ = admin.RunCommand(context.Background(), bson.D{{Key: "configureFailPoint", Value: "failCommand"}, {Key: "mode", Value: "off"}}).Err()
	})
}

func times(n int) bson.D { return bson.D{{Key: "times", Value: n}} }

func TestFailCommand(t *testing.T) {
	t.Parallel()
	uri := mongowire.Start(t)
	for _, tc := range []struct {
		name  string
		mode  any
		data  bson.D
		check func(t *testing.T, c *mongo.Client, coll *mongo.Collection)
	}{
		{"error-code-times-1", times(1), bson.D{{Key: "failCommands", Value: bson.A{"find"}}, {Key: "errorCode", Value: 2}}, func(t *testing.T, c *mongo.Client, coll *mongo.Collection) {
			var se mongo.ServerError
			if err := coll.FindOne(ctxFor(t), bson.D{}).Err(); !errors.As(err, &se) || !se.HasErrorCode(2) {
				t.Fatalf("first find: %v, want code 2", err)
			}
			if err := coll.FindOne(ctxFor(t), bson.D{}).Err(); !errors.Is(err, mongo.ErrNoDocuments) {
				t.Fatalf("second find: %v, want the fail point spent", err)
			}
		}},
		{"error-labels", times(1), bson.D{{Key: "failCommands", Value: bson.A{"find"}}, {Key: "errorCode", Value: 112}, {Key: "errorLabels", Value: bson.A{"Custom"}}}, func(t *testing.T, c *mongo.Client, coll *mongo.Collection) {
			var se mongo.ServerError
			if err := coll.FindOne(ctxFor(t), bson.D{}).Err(); !errors.As(err, &se) || !se.HasErrorLabel("Custom") {
				t.Fatalf("find: %v, want label Custom", err)
			}
		}},
		{"retryable-write-retried", times(1), bson.D{{Key: "failCommands", Value: bson.A{"insert"}}, {Key: "errorCode", Value: 91}}, func(t *testing.T, c *mongo.Client, coll *mongo.Collection) {
			if _, err := coll.InsertOne(ctxFor(t), bson.D{{Key: "_id", Value: "r"}}); err != nil {
				t.Fatalf("insert: %v, want the driver to retry a ShutdownInProgress once", err)
			}
		}},
		// Reads are retried once, so the fault must outlast the retry.
		{"close-connection", times(2), bson.D{{Key: "failCommands", Value: bson.A{"find"}}, {Key: "closeConnection", Value: true}}, func(t *testing.T, c *mongo.Client, coll *mongo.Collection) {
			err := coll.FindOne(context.Background(), bson.D{}).Err()
			if !mongo.IsNetworkError(err) {
				t.Fatalf("find: %v, want a network error", err)
			}
		}},
		{"block-connection", times(1), bson.D{{Key: "failCommands", Value: bson.A{"find"}}, {Key: "blockConnection", Value: true}, {Key: "blockTimeMS", Value: 1000}}, func(t *testing.T, c *mongo.Client, coll *mongo.Collection) {
			ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := coll.FindOne(ctx, bson.D{}).Err()
			if !errors.Is(err, context.DeadlineExceeded) && !mongo.IsTimeout(err) {
				t.Fatalf("find: %v, want a timeout", err)
			}
			if time.Since(start) > 900*time.Millisecond {
				t.Fatalf("find returned after %s, want the context's deadline", time.Since(start))
			}
		}},
		{"write-concern-error", times(1), bson.D{{Key: "failCommands", Value: bson.A{"insert"}}, {Key: "writeConcernError", Value: bson.D{{Key: "code", Value: 64}, {Key: "errmsg", Value: "waiting for replication timed out"}}}}, func(t *testing.T, c *mongo.Client, coll *mongo.Collection) {
			_, err := coll.InsertOne(ctxFor(t), bson.D{{Key: "_id", Value: "w"}})
			var we mongo.WriteException
			if !errors.As(err, &we) || we.WriteConcernError == nil || we.WriteConcernError.Code != 64 {
				t.Fatalf("insert: %v, want a write concern error 64", err)
			}
		}},
		{"app-name-other", "alwaysOn", bson.D{{Key: "failCommands", Value: bson.A{"find"}}, {Key: "errorCode", Value: 2}, {Key: "appName", Value: "someone-else"}}, func(t *testing.T, c *mongo.Client, coll *mongo.Collection) {
			if err := coll.FindOne(ctxFor(t), bson.D{}).Err(); !errors.Is(err, mongo.ErrNoDocuments) {
				t.Fatalf("find from another app: %v, want no fault", err)
			}
			other := connect(t, uri, options.Client().SetAppName("someone-else"))
			var se mongo.ServerError
			if err := other.Database("db").Collection(coll.Name()).FindOne(ctxFor(t), bson.D{}).Err(); !errors.As(err, &se) || !se.HasErrorCode(2) {
				t.Fatalf("find from the named app: %v, want code 2", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := connect(t, uri)
			coll := c.Database("db").Collection(tc.name)
			failPoint(t, c, tc.mode, tc.data)
			tc.check(t, c, coll)
		})
	}
}

func TestFailCommandGetMoreCappedPositionLost(t *testing.T) {
	t.Parallel()
	c := connect(t, mongowire.Start(t))
	ctx := ctxFor(t)
	coll := c.Database("db").Collection("g")
	cs, err := coll.Watch(ctx, mongo.Pipeline{}, options.ChangeStream().SetMaxAwaitTime(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close(ctx)
	failPoint(t, c, times(1), bson.D{{Key: "failCommands", Value: bson.A{"getMore"}}, {Key: "errorCode", Value: 136}})
	deadline := time.Now().Add(5 * time.Second)
	for cs.Err() == nil && time.Now().Before(deadline) {
		cs.TryNext(ctx)
	}
	var se mongo.ServerError
	if !errors.As(cs.Err(), &se) || !se.HasErrorCode(136) {
		t.Fatalf("stream error %v, want CappedPositionLost (136), which is not resumable", cs.Err())
	}
}

// TestFailCommandModes checks alwaysOn, {skip: n} and off, and the count
// configureFailPoint answers with (how often the fail point fired).
func TestFailCommandModes(t *testing.T) {
	t.Parallel()
	c := connect(t, mongowire.Start(t))
	ctx := ctxFor(t)
	coll := c.Database("db").Collection("modes")
	data := bson.D{{Key: "failCommands", Value: bson.A{"find"}}, {Key: "errorCode", Value: 2}}
	configure := func(mode any) int32 {
		t.Helper()
		raw, err := c.Database("admin").RunCommand(ctx, bson.D{{Key: "configureFailPoint", Value: "failCommand"},
			{Key: "mode", Value: mode}, {Key: "data", Value: data}}).Raw()
		if err != nil {
			t.Fatalf("configureFailPoint %v: %v", mode, err)
		}
		return raw.Lookup("count").Int32()
	}
	fails := func() bool {
		var se mongo.ServerError
		err := coll.FindOne(ctx, bson.D{}).Err()
		switch {
		case err == nil || errors.Is(err, mongo.ErrNoDocuments):
			return false
		case !errors.As(err, &se) || !se.HasErrorCode(2):
			t.Fatalf("find: %v, want code 2 or no fault", err)
		}
		return true
	}
	configure(bson.D{{Key: "skip", Value: 1}})
	if got := []bool{fails(), fails(), fails()}; got[0] || !got[1] || !got[2] {
		t.Fatalf("skip 1: failures %v, want [false true true]", got)
	}
	if n := configure("alwaysOn"); n != 2 {
		t.Fatalf("count after skip 1 and three finds = %d, want 2", n)
	}
	for range 2 {
		if !fails() {
			t.Fatal("alwaysOn: a find succeeded")
		}
	}
	if n := configure("off"); n != 2 {
		t.Fatalf("count after two alwaysOn finds = %d, want 2", n)
	}
	if fails() {
		t.Fatal("off: a find failed")
	}
}
