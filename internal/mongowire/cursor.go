package mongowire

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/256dpi/lungo"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// maxBatchBytes caps the documents of one reply well under the 16 MiB a
// reply document may hold.
const maxBatchBytes = 8 << 20

// defaultFirstBatch is a server's default first batch size.
const defaultFirstBatch = 101

// cursor is an open cursor: the rest of a query's results, or a change
// stream.
type cursor struct {
	id   int64
	ns   string
	mu   sync.Mutex
	used atomic.Int64 // unix nanoseconds of the last use, read by the reaper
	docs []bson.Raw
	st   *changeStream
}

func (c *cursor) close() {
	if c.st != nil {
		_ = c.st.ls.Close(context.Background())
	}
}

func (s *Server) addCursor(c *cursor) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cursorID++
	c.id = s.cursorID
	c.used.Store(time.Now().UnixNano())
	s.cursors[c.id] = c
}

func (s *Server) isStream(id int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.cursors[id]
	return c != nil && c.st != nil
}

// take splits off the next batch of at most n documents (0: no count
// limit) and maxBatchBytes.
func take(docs []bson.Raw, n int) (batch bson.A, rest []bson.Raw) {
	size := 0
	batch = bson.A{}
	for i, d := range docs {
		if (n > 0 && len(batch) == n) || (len(batch) > 0 && size+len(d) > maxBatchBytes) {
			return batch, docs[i:]
		}
		batch = append(batch, d)
		size += len(d)
	}
	return batch, nil
}

// cursorReply returns a query's first batch, keeping a cursor for the rest.
func (s *Server) cursorReply(h lungo.Handle, docs []bson.Raw, batchSize int, single bool) bson.D {
	if batchSize <= 0 {
		batchSize = defaultFirstBatch
	}
	first, rest := take(docs, batchSize)
	var id int64
	if len(rest) > 0 && !single {
		c := &cursor{ns: h.String(), docs: rest}
		s.addCursor(c)
		id = c.id
	}
	return bson.D{{Key: "cursor", Value: bson.D{
		{Key: "firstBatch", Value: first}, {Key: "id", Value: id}, {Key: "ns", Value: h.String()}}}}
}

func (s *Server) getMore(r *request) (bson.D, error) {
	id, _ := r.num("getMore")
	s.mu.Lock()
	c := s.cursors[id]
	s.mu.Unlock()
	if c == nil {
		return nil, cmdErr(codeCursorNotFound, "CursorNotFound", fmt.Sprintf("cursor id %d not found", id))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.used.Store(time.Now().UnixNano())
	n, _ := r.num("batchSize")
	if c.st != nil {
		await := time.Second
		if ms, ok := r.num("maxTimeMS"); ok && ms > 0 {
			await = time.Duration(ms) * time.Millisecond
		}
		if n <= 0 {
			n = 1 << 30
		}
		batch, err := s.fetch(r.ctx, c.st, int(n), await)
		if err != nil {
			s.dropCursor(id)
			return nil, err
		}
		if c.st.done {
			s.dropCursor(id)
			id = 0
		}
		return bson.D{{Key: "cursor", Value: bson.D{
			{Key: "nextBatch", Value: batch}, {Key: "postBatchResumeToken", Value: c.st.pbrt},
			{Key: "id", Value: id}, {Key: "ns", Value: c.ns}}}}, nil
	}
	var batch bson.A
	batch, c.docs = take(c.docs, int(n))
	if len(c.docs) == 0 {
		s.dropCursor(id)
		id = 0
	}
	return bson.D{{Key: "cursor", Value: bson.D{
		{Key: "nextBatch", Value: batch}, {Key: "id", Value: id}, {Key: "ns", Value: c.ns}}}}, nil
}

func (s *Server) dropCursor(id int64) {
	s.mu.Lock()
	c := s.cursors[id]
	delete(s.cursors, id)
	s.mu.Unlock()
	if c != nil {
		c.close()
	}
}

func (s *Server) killCursors(r *request) (bson.D, error) {
	v, _ := r.val("cursors")
	arr, ok := v.ArrayOK()
	if !ok {
		return nil, badValue("killCursors.cursors must be an array of cursor ids")
	}
	vals, _ := arr.Values()
	killed, missing := bson.A{}, bson.A{}
	for _, v := range vals {
		id, _ := number(v)
		s.mu.Lock()
		c := s.cursors[id]
		delete(s.cursors, id)
		s.mu.Unlock()
		if c == nil {
			missing = append(missing, id)
			continue
		}
		c.close()
		killed = append(killed, id)
	}
	return bson.D{{Key: "cursorsKilled", Value: killed}, {Key: "cursorsNotFound", Value: missing},
		{Key: "cursorsAlive", Value: bson.A{}}, {Key: "cursorsUnknown", Value: bson.A{}}}, nil
}
