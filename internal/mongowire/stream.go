package mongowire

import (
	"context"
	"fmt"
	"time"

	"github.com/256dpi/lungo"
	"github.com/256dpi/lungo/bsonkit"
	"github.com/256dpi/lungo/mongokit"
	v1bson "go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// poll is how often a waiting getMore looks at lungo's oplog again: lungo's
// blocking Next cannot be bounded by a deadline without ending its stream.
const poll = 10 * time.Millisecond

// changeStream is a $changeStream cursor over a lungo stream. lungo cannot
// run pipelines, so a $match following $changeStream is applied here, to
// each event as the server would see it.
type changeStream struct {
	h      lungo.Handle
	ls     *lungo.Stream
	match  bsonkit.Doc
	lookup bool
	pbrt   bson.Raw
	done   bool
}

// openStream answers an aggregate whose first stage is $changeStream.
func (s *Server) openStream(r *request, stages []bson.Raw) (bson.D, error) {
	if Mode(s.mode.Load()) != Primary {
		return nil, cmdErr(40573, "Location40573", "The $changeStream stage is only supported on replica sets")
	}
	var h lungo.Handle
	if v, _ := r.val("aggregate"); v.Type == bson.TypeString {
		h = lungo.Handle{r.db, v.StringValue()}
	} else {
		h = lungo.Handle{r.db, ""}
	}
	if r.db == "" {
		return nil, badValue("aggregate needs $db")
	}
	opts, ok := stages[0].Lookup("$changeStream").DocumentOK()
	if !ok {
		return nil, badValue("$changeStream takes a document")
	}
	st := &changeStream{h: h}
	resumeAfter, startAfter, startAt, err := st.options(opts)
	if err != nil {
		return nil, err
	}
	if st.match, err = streamMatch(stages[1:]); err != nil {
		return nil, err
	}
	// The tail is read before the stream positions itself, so the first
	// post-batch resume token is never past the stream's position.
	tail := s.tail()
	ls, err := s.engine.Watch(h, nil, resumeAfter, startAfter, startAt.v1())
	if err != nil {
		return nil, lungoErr(err)
	}
	st.ls = ls
	switch {
	case startAfter != nil:
		st.pbrt = raw(startAfter)
	case resumeAfter != nil:
		st.pbrt = raw(resumeAfter)
	default:
		st.pbrt = tail
	}
	n := 0
	if c, ok := r.doc("cursor"); ok {
		b, _ := number(c.Lookup("batchSize"))
		n = int(b)
	}
	var batch bson.A = bson.A{}
	if n != 0 || !r.hasField("cursor") {
		if n <= 0 {
			n = defaultFirstBatch
		}
		if batch, err = s.fetch(r.ctx, st, n, 0); err != nil {
			_ = ls.Close(context.Background())
			return nil, err
		}
	}
	c := &cursor{ns: h.String(), st: st}
	var id int64
	if !st.done {
		s.addCursor(c)
		id = c.id
	}
	return bson.D{{Key: "cursor", Value: bson.D{
		{Key: "firstBatch", Value: batch}, {Key: "postBatchResumeToken", Value: st.pbrt},
		{Key: "id", Value: id}, {Key: "ns", Value: h.String()}}}}, nil
}

// options reads the $changeStream stage's options into st and returns
// where the stream starts (all nil: at the tail).
func (st *changeStream) options(opts bson.Raw) (resumeAfter, startAfter bsonkit.Doc, startAt *v1Timestamp, err error) {
	for _, el := range mustElements(opts) {
		v := el.Value()
		switch el.Key() {
		case "fullDocument":
			switch v.StringValue() {
			case "default":
			case "updateLookup":
				st.lookup = true
			default:
				return nil, nil, nil, unsupported("fullDocument %q", v.StringValue())
			}
		case "fullDocumentBeforeChange":
			if v.StringValue() != "off" {
				return nil, nil, nil, unsupported("fullDocumentBeforeChange %q", v.StringValue())
			}
		case "showExpandedEvents":
			if b, _ := v.BooleanOK(); b {
				return nil, nil, nil, unsupported("showExpandedEvents")
			}
		case "resumeAfter", "startAfter":
			d, ok := v.DocumentOK()
			if !ok {
				return nil, nil, nil, cmdErr(codeInvalidResumeToken, "InvalidResumeToken", el.Key()+" must be a resume token document")
			}
			tok, inv, err := token(d)
			if err != nil {
				return nil, nil, nil, err
			}
			if el.Key() == "resumeAfter" {
				if inv {
					return nil, nil, nil, cmdErr(codeInvalidResumeToken, "InvalidResumeToken",
						"Attempting to resume a change stream using 'resumeAfter' is not allowed from an invalidate notification.")
				}
				resumeAfter = tok
			} else {
				startAfter = tok
			}
		case "startAtOperationTime":
			t, i, ok := v.TimestampOK()
			if !ok {
				return nil, nil, nil, badValue("startAtOperationTime must be a timestamp")
			}
			startAt = &v1Timestamp{T: t, I: i}
		default:
			return nil, nil, nil, unsupported("the $changeStream option %q", el.Key())
		}
	}
	return resumeAfter, startAfter, startAt, nil
}

// streamMatch compiles the $match stages that follow $changeStream (the only
// stages supported there) into one filter; nil: none.
func streamMatch(stages []bson.Raw) (match bsonkit.Doc, err error) {
	var matches bson.A
	for _, stage := range stages {
		if firstKey(stage) != "$match" {
			return nil, unsupported("the stage %s after $changeStream (only $match)", firstKey(stage))
		}
		d, ok := stage.Lookup("$match").DocumentOK()
		if !ok {
			return nil, badValue("$match takes a document")
		}
		matches = append(matches, d)
	}
	switch len(matches) {
	case 0:
	case 1:
		m, err := kit(matches[0].(bson.Raw))
		if err != nil {
			return nil, err
		}
		match = m
	default:
		and, _ := bson.Marshal(bson.D{{Key: "$and", Value: matches}})
		m, err := kit(and)
		if err != nil {
			return nil, err
		}
		match = m
	}
	if match != nil {
		// Check the filter once, so a bad one fails the aggregate.
		if _, err := mongokit.Match(&v1bson.D{}, match); err != nil {
			return nil, badValue("$match: %v", err)
		}
	}
	return match, nil
}

// token turns a resume token into lungo's; inv reports the token of an
// invalidate event, which startAfter accepts (the stream starts after the
// drop that caused it).
func token(d bson.Raw) (bsonkit.Doc, bool, error) {
	tok, err := kit(d)
	if err != nil {
		return nil, false, err
	}
	inv := false
	out := v1bson.D{}
	for _, e := range *tok {
		if e.Key == "invalidate" {
			inv = true
			continue
		}
		out = append(out, e)
	}
	if len(out) != 1 || out[0].Key != "ts" {
		return nil, false, cmdErr(codeInvalidResumeToken, "InvalidResumeToken", "not a resume token this server issued")
	}
	return &out, inv, nil
}

// tail is the resume token of the newest oplog entry. lungo never changes
// a committed catalog in place, so reading it is safe.
func (s *Server) tail() bson.Raw {
	ns := s.engine.Catalog().Namespaces[lungo.Oplog]
	if ns == nil || len(ns.Documents.List) == 0 {
		return nil
	}
	id, ok := bsonkit.Get(ns.Documents.List[len(ns.Documents.List)-1], "_id").(v1bson.D)
	if !ok {
		return nil
	}
	return raw(&id)
}

// fetch reads up to max events, waiting up to wait for the first one, and
// advances the stream's post-batch resume token past every event it
// scanned, delivered or filtered out.
func (s *Server) fetch(ctx context.Context, st *changeStream, max int, wait time.Duration) (bson.A, error) {
	deadline := time.Now().Add(wait)
	out := bson.A{}
	size := 0
	for {
		for len(out) < max && size < maxBatchBytes && !st.done {
			tail := s.tail()
			// Not ctx: a lungo stream whose context ends is dead for good.
			if !st.ls.TryNext(context.Background()) {
				if err := st.ls.Err(); err != nil {
					return nil, lungoErr(err)
				}
				if tail != nil {
					st.pbrt = tail
				}
				break
			}
			ev := v1bson.D{}
			if err := st.ls.Decode(&ev); err != nil {
				return nil, lungoErr(fmt.Errorf("decode change event: %w", err))
			}
			evDoc := &ev
			id, _ := bsonkit.Get(evDoc, "_id").(v1bson.D)
			tok := raw(&id)
			op, _ := bsonkit.Get(evDoc, "operationType").(string)
			if ((op == "drop" || op == "rename") && st.h[1] != "") || op == "dropDatabase" {
				if ok, _ := st.matches(evDoc); ok {
					b := raw(evDoc)
					out = append(out, b)
				}
				inv := append(v1bson.D{}, id...)
				inv = append(inv, v1bson.E{Key: "invalidate", Value: true})
				invTok := raw(&inv)
				ie, _ := bson.Marshal(bson.D{{Key: "_id", Value: invTok}, {Key: "operationType", Value: "invalidate"},
					{Key: "clusterTime", Value: bsonkit.Get(evDoc, "clusterTime")}})
				out = append(out, bson.Raw(ie))
				st.pbrt, st.done = invTok, true
				_ = st.ls.Close(context.Background())
				break
			}
			if op == "update" {
				s.shapeUpdate(st, evDoc)
			}
			if ok, err := st.matches(evDoc); err != nil {
				return nil, badValue("$match: %v", err)
			} else if !ok {
				st.pbrt = tok
				continue
			}
			b := raw(evDoc)
			out = append(out, b)
			size += len(b)
			st.pbrt = tok
		}
		if len(out) > 0 || st.done || !time.Now().Before(deadline) {
			return out, nil
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return out, nil
		case <-t.C:
		}
	}
}

func (st *changeStream) matches(ev bsonkit.Doc) (bool, error) {
	if st.match == nil {
		return true, nil
	}
	return mongokit.Match(ev, st.match)
}

// shapeUpdate gives an update event the fullDocument a server would: the
// document as it is now (updateLookup; null once deleted), or none.
func (s *Server) shapeUpdate(st *changeStream, ev bsonkit.Doc) {
	var full any
	if st.lookup {
		db, _ := bsonkit.Get(ev, "ns.db").(string)
		coll, _ := bsonkit.Get(ev, "ns.coll").(string)
		if txn, err := s.engine.Begin(context.Background(), false); err == nil {
			q := &v1bson.D{{Key: "_id", Value: bsonkit.Get(ev, "documentKey._id")}}
			if res, err := txn.Find(lungo.Handle{db, coll}, q, nil, 0, 1); err == nil && len(res.Matched) > 0 {
				full = *res.Matched[0]
			}
		}
	}
	out := (*ev)[:0:0]
	for _, e := range *ev {
		if e.Key == "fullDocument" {
			if st.lookup {
				out = append(out, v1bson.E{Key: "fullDocument", Value: full})
			}
			continue
		}
		out = append(out, e)
	}
	*ev = out
}
