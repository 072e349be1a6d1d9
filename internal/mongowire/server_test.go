package mongowire_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"blog/internal/mongowire"
)

func connect(t *testing.T, uri string, opts ...*options.ClientOptions) *mongo.Client {
	t.Helper()
	o := options.Client().ApplyURI(uri).SetServerSelectionTimeout(3 * time.Second)
	for _, x := range opts {
		if x.AppName != nil {
			o.SetAppName(*x.AppName)
		}
	}
	c, err := mongo.Connect(o)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestCRUD(t *testing.T) {
	t.Parallel()
	c := connect(t, mongowire.Start(t))
	ctx := ctxFor(t)
	if err := c.Ping(ctx, readpref.Primary()); err != nil {
		t.Fatalf("ping: %v", err)
	}
	coll := c.Database("db").Collection("c")
	if err := c.Database("db").CreateCollection(ctx, "c"); err != nil {
		t.Fatalf("create: %v", err)
	}
	var se mongo.ServerError
	if err := c.Database("db").CreateCollection(ctx, "c"); !errors.As(err, &se) || !se.HasErrorCode(48) {
		t.Fatalf("create again: %v, want NamespaceExists (48)", err)
	}
	if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "n", Value: 1}}}); err != nil {
		t.Fatalf("create index: %v", err)
	}
	for i := range 250 {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: i}, {Key: "n", Value: i % 10}}); err != nil {
			t.Fatalf("insert: %v", err)
		}
	}
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); !mongo.IsDuplicateKeyError(err) {
		t.Fatalf("insert duplicate: %v, want a duplicate key error", err)
	}
	n, err := coll.CountDocuments(ctx, bson.D{{Key: "n", Value: 3}})
	if err != nil || n != 25 {
		t.Fatalf("count = %d, %v; want 25", n, err)
	}
	cur, err := coll.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: -1}}).SetBatchSize(7))
	if err != nil {
		t.Fatalf("find: %v", err)
	}
	var all []bson.M
	if err := cur.All(ctx, &all); err != nil || len(all) != 250 || all[0]["_id"] != int32(249) {
		t.Fatalf("find all: %d documents, first %v, %v; want 250 from 249", len(all), all[0], err)
	}
	r, err := coll.UpdateMany(ctx, bson.D{{Key: "n", Value: 1}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 100}}}})
	if err != nil || r.MatchedCount != 25 || r.ModifiedCount != 25 {
		t.Fatalf("update many: %+v, %v", r, err)
	}
	r, err = coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "new"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: -1}}}}, options.UpdateOne().SetUpsert(true))
	if err != nil || r.UpsertedCount != 1 || r.UpsertedID != "new" {
		t.Fatalf("upsert: %+v, %v", r, err)
	}
	var got bson.M
	err = coll.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: "new"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "x", Value: 1}}}},
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&got)
	if err != nil || got["x"] != int32(1) {
		t.Fatalf("find one and update: %v, %v", got, err)
	}
	if err := coll.FindOneAndDelete(ctx, bson.D{{Key: "_id", Value: "new"}}).Decode(&got); err != nil || got["_id"] != "new" {
		t.Fatalf("find one and delete: %v, %v", got, err)
	}
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "new"}}).Err(); !errors.Is(err, mongo.ErrNoDocuments) {
		t.Fatalf("find deleted: %v", err)
	}
	d, err := coll.DeleteMany(ctx, bson.D{{Key: "n", Value: bson.D{{Key: "$gte", Value: 100}}}})
	if err != nil || d.DeletedCount != 25 {
		t.Fatalf("delete many: %+v, %v", d, err)
	}
	names, err := c.Database("db").ListCollectionNames(ctx, bson.D{})
	if err != nil || len(names) != 1 || names[0] != "c" {
		t.Fatalf("collections: %v, %v", names, err)
	}
	if err := coll.Drop(ctx); err != nil {
		t.Fatalf("drop: %v", err)
	}
	if n, err := coll.CountDocuments(ctx, bson.D{}); err != nil || n != 0 {
		t.Fatalf("count after drop = %d, %v", n, err)
	}
}

func TestUnsupportedRefused(t *testing.T) {
	t.Parallel()
	c := connect(t, mongowire.Start(t))
	ctx := ctxFor(t)
	for _, tc := range []struct {
		name string
		cmd  bson.D
		code int32
	}{
		{"unknown-command", bson.D{{Key: "mapReduce", Value: "c"}}, 59},
		{"unknown-field", bson.D{{Key: "find", Value: "c"}, {Key: "collation", Value: bson.D{{Key: "locale", Value: "fr"}}}}, 115},
		{"unsupported-stage", bson.D{{Key: "aggregate", Value: "c"}, {Key: "pipeline", Value: bson.A{bson.D{{Key: "$lookup", Value: bson.D{}}}}}, {Key: "cursor", Value: bson.D{}}}, 115},
		{"other-fail-point", bson.D{{Key: "configureFailPoint", Value: "hangBeforeCommit"}, {Key: "mode", Value: "alwaysOn"}}, 115},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := "db"
			if tc.name == "other-fail-point" {
				db = "admin"
			}
			err := c.Database(db).RunCommand(ctx, tc.cmd).Err()
			var ce mongo.CommandError
			if !errors.As(err, &ce) || ce.Code != tc.code || ce.Message == "" {
				t.Fatalf("err = %v, want command error %d", err, tc.code)
			}
		})
	}
}

func TestTransactions(t *testing.T) {
	t.Parallel()
	c := connect(t, mongowire.Start(t))
	ctx := ctxFor(t)
	coll := c.Database("db").Collection("t")
	if err := c.Database("db").CreateCollection(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	sess, err := c.StartSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.EndSession(ctx)
	_, err = sess.WithTransaction(ctx, func(ctx context.Context) (any, error) {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
			return nil, err
		}
		// The transaction reads its own write.
		return nil, coll.FindOne(ctx, bson.D{{Key: "_id", Value: 1}}).Err()
	})
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	boom := errors.New("boom")
	_, err = sess.WithTransaction(ctx, func(ctx context.Context) (any, error) {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 2}}); err != nil {
			return nil, err
		}
		return nil, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("abort: %v", err)
	}
	ids := map[int32]bool{}
	cur, err := coll.Find(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	for cur.Next(ctx) {
		ids[cur.Current.Lookup("_id").Int32()] = true
	}
	if !ids[1] || ids[2] || len(ids) != 1 {
		t.Fatalf("documents after commit and abort: %v, want only 1", ids)
	}
}

func TestChangeStreamResume(t *testing.T) {
	t.Parallel()
	c := connect(t, mongowire.Start(t))
	ctx := ctxFor(t)
	coll := c.Database("db").Collection("s")
	opts := options.ChangeStream().SetFullDocument(options.UpdateLookup).SetMaxAwaitTime(50 * time.Millisecond)
	match := mongo.Pipeline{{{Key: "$match", Value: bson.D{{Key: "operationType", Value: bson.D{{Key: "$in", Value: bson.A{"insert", "update"}}}}}}}}
	cs, err := coll.Watch(ctx, match, opts)
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	if cs.ResumeToken() == nil {
		t.Fatal("a new stream has no post-batch resume token")
	}
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}, {Key: "v", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "$set", Value: bson.D{{Key: "v", Value: 2}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "$set", Value: bson.D{{Key: "v", Value: 3}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: 9}}); err != nil {
		t.Fatal(err)
	}
	var ops []string
	var first bson.Raw
	for len(ops) < 3 && cs.Next(ctx) {
		ops = append(ops, cs.Current.Lookup("operationType").StringValue())
		if first == nil {
			first = append(bson.Raw(nil), cs.ResumeToken()...)
		}
		if ops[len(ops)-1] == "update" {
			// updateLookup: the document as it is now, not as of the event.
			if v := cs.Current.Lookup("fullDocument", "v").Int32(); v != 3 {
				t.Errorf("update event fullDocument.v = %d, want 3 (updateLookup)", v)
			}
		}
	}
	if len(ops) != 3 || ops[0] != "insert" || ops[1] != "update" {
		t.Fatalf("events %v, %v", ops, cs.Err())
	}
	_ = cs.Close(ctx)
	// Resume after the first event: the two updates follow.
	cs, err = coll.Watch(ctx, match, options.ChangeStream().SetStartAfter(first).SetMaxAwaitTime(50*time.Millisecond))
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	n := 0
	for n < 2 && cs.Next(ctx) {
		if op := cs.Current.Lookup("operationType").StringValue(); op != "update" {
			t.Fatalf("resumed stream gave %s, want update", op)
		}
		n++
	}
	// Dropping the collection invalidates the stream.
	if err := coll.Drop(ctx); err != nil {
		t.Fatal(err)
	}
	var last string
	for cs.Next(ctx) {
		last = cs.Current.Lookup("operationType").StringValue()
	}
	if last != "invalidate" || cs.ID() != 0 {
		t.Fatalf("after drop: last event %q, cursor %d, err %v; want invalidate and a closed cursor", last, cs.ID(), cs.Err())
	}
	// startAfter the invalidate opens a new stream past the drop.
	cs2, err := coll.Watch(ctx, mongo.Pipeline{}, options.ChangeStream().SetStartAfter(cs.ResumeToken()))
	if err != nil {
		t.Fatalf("start after invalidate: %v", err)
	}
	_ = cs2.Close(ctx)
}

func TestChangeStreamHistoryLost(t *testing.T) {
	t.Parallel()
	s := mongowire.StartServer(t, mongowire.Options{OplogMinSize: 1, OplogMaxSize: 2, OplogMinAge: time.Nanosecond})
	c := connect(t, s.URI())
	ctx := ctxFor(t)
	coll := c.Database("db").Collection("h")
	cs, err := coll.Watch(ctx, mongo.Pipeline{})
	if err != nil {
		t.Fatal(err)
	}
	tok := cs.ResumeToken()
	_ = cs.Close(ctx)
	for i := range 5 {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: i}}); err != nil {
			t.Fatal(err)
		}
	}
	// lungo ages its oplog in whole seconds: keep writing until the token
	// has been dropped, within a deadline.
	deadline := time.Now().Add(5 * time.Second)
	for i := 100; ; i++ {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: i}}); err != nil {
			t.Fatal(err)
		}
		var cs2 *mongo.ChangeStream
		cs2, err = coll.Watch(ctx, mongo.Pipeline{}, options.ChangeStream().SetStartAfter(tok))
		if err != nil || time.Now().After(deadline) {
			break
		}
		_ = cs2.Close(ctx)
		time.Sleep(50 * time.Millisecond)
	}
	var se mongo.ServerError
	if !errors.As(err, &se) || !se.HasErrorCode(286) {
		t.Fatalf("resume from a token no longer in the oplog: %v, want ChangeStreamHistoryLost (286)", err)
	}
}

func TestRenameInvalidates(t *testing.T) {
	t.Parallel()
	c := connect(t, mongowire.Start(t))
	ctx := ctxFor(t)
	from := c.Database("db").Collection("from")
	if _, err := from.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := from.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "x", Value: 1}}}); err != nil {
		t.Fatal(err)
	}
	cs, err := from.Watch(ctx, mongo.Pipeline{}, options.ChangeStream().SetMaxAwaitTime(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	rename := bson.D{{Key: "renameCollection", Value: "db.from"}, {Key: "to", Value: "db.to"}}
	if err := c.Database("admin").RunCommand(ctx, rename).Err(); err != nil {
		t.Fatalf("rename: %v", err)
	}
	var ops []string
	for cs.Next(ctx) {
		ops = append(ops, cs.Current.Lookup("operationType").StringValue())
	}
	if len(ops) != 2 || ops[0] != "rename" || ops[1] != "invalidate" {
		t.Fatalf("events after rename %v (%v), want [rename invalidate]", ops, cs.Err())
	}
	to := c.Database("db").Collection("to")
	if n, err := to.CountDocuments(ctx, bson.D{}); err != nil || n != 1 {
		t.Fatalf("renamed collection holds %d documents, %v; want 1", n, err)
	}
	if n, err := from.CountDocuments(ctx, bson.D{}); err != nil || n != 0 {
		t.Fatalf("old name holds %d documents, %v; want 0", n, err)
	}
	specs, err := to.Indexes().ListSpecifications(ctx)
	if err != nil || len(specs) != 2 {
		t.Fatalf("renamed collection's indexes %v, %v; want _id and x", specs, err)
	}
	var se mongo.ServerError
	if err := c.Database("admin").RunCommand(ctx, rename).Err(); !errors.As(err, &se) || !se.HasErrorCode(26) {
		t.Fatalf("renaming a missing collection: %v, want NamespaceNotFound (26)", err)
	}
}

// TestTransactionWriteErrorAborts: a duplicate key inside a transaction
// fails it for good (no TransientTransactionError, so no retry loop) and
// its other writes are gone.
func TestTransactionWriteErrorAborts(t *testing.T) {
	t.Parallel()
	c := connect(t, mongowire.Start(t))
	ctx := ctxFor(t)
	coll := c.Database("db").Collection("d")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	sess, err := c.StartSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.EndSession(ctx)
	calls := 0
	_, err = sess.WithTransaction(ctx, func(ctx context.Context) (any, error) {
		calls++
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 2}}); err != nil {
			return nil, err
		}
		_, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}})
		return nil, err
	})
	if !mongo.IsDuplicateKeyError(err) || calls != 1 {
		t.Fatalf("transaction with a duplicate key: %v after %d attempts, want a duplicate key error after 1", err, calls)
	}
	if n, err := coll.CountDocuments(ctx, bson.D{}); err != nil || n != 1 {
		t.Fatalf("%d documents after the failed transaction, %v; want 1", n, err)
	}
}

// TestModes: a standalone refuses transactions and change streams as a real
// one does; an uninitiated member refuses work until rs.initiate()
// (replSetInitiate), after which it is a primary.
func TestModes(t *testing.T) {
	t.Parallel()
	direct := func(t *testing.T, s *mongowire.Server) *mongo.Client {
		c, err := mongo.Connect(options.Client().ApplyURI("mongodb://" + s.Addr() + "/?directConnection=true"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
		return c
	}
	t.Run("standalone", func(t *testing.T) {
		t.Parallel()
		c := direct(t, mongowire.StartServer(t, mongowire.Options{Mode: mongowire.Standalone}))
		ctx := ctxFor(t)
		coll := c.Database("db").Collection("s")
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "x", Value: 1}}); err != nil {
			t.Fatalf("insert on a standalone: %v", err)
		}
		if _, err := coll.Watch(ctx, mongo.Pipeline{}); err == nil {
			t.Fatal("a standalone opened a change stream")
		}
		var ce mongo.CommandError
		err := c.Database("admin").RunCommand(ctx, bson.D{{Key: "replSetInitiate", Value: bson.D{}}}).Err()
		if !errors.As(err, &ce) || ce.Code != 76 {
			t.Fatalf("rs.initiate() on a standalone: %v, want NoReplicationEnabled (76)", err)
		}
	})
	t.Run("uninitiated", func(t *testing.T) {
		t.Parallel()
		s := mongowire.StartServer(t, mongowire.Options{Mode: mongowire.Uninitiated})
		c := direct(t, s)
		ctx := ctxFor(t)
		coll := c.Database("db").Collection("u")
		var ce mongo.CommandError
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "x", Value: 1}}); !errors.As(err, &ce) || ce.Code != 94 {
			t.Fatalf("insert before rs.initiate(): %v, want NotYetInitialized (94)", err)
		}
		if err := c.Database("admin").RunCommand(ctx, bson.D{{Key: "replSetInitiate", Value: bson.D{}}}).Err(); err != nil {
			t.Fatalf("rs.initiate(): %v", err)
		}
		rs := connect(t, s.URI())
		if _, err := rs.Database("db").Collection("u").InsertOne(ctxFor(t), bson.D{{Key: "x", Value: 1}}); err != nil {
			t.Fatalf("insert on the initiated replica set: %v", err)
		}
	})
}
