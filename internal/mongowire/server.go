// Package mongowire is a MongoDB wire-protocol server for tests, backed by
// lungo, an embedded engine with an oplog, change streams and transactions.
// It is a test stand-in, not a database: data lives in memory, there is no
// authentication, no replication, and one write transaction runs at a time.
//
// The official v2 driver talks to it over TCP exactly as it talks to a
// replica-set primary: OP_MSG (and the legacy OP_QUERY hello of the first
// handshake), sessions and transactions, cursors, change streams with
// post-batch resume tokens, and MongoDB's own configureFailPoint/failCommand
// fail point, so a fault test written against it runs unchanged on a real
// server started with --setParameter enableTestCommands=1.
//
// What it does not support it refuses with a command error naming it (code
// 59 CommandNotFound for an unknown command, 115 CommandNotSupported for an
// unsupported option or stage), never with a silent success. It can also
// answer as a standalone mongod or as a member whose replica set was never
// initiated, so start-up checks can be tested.
//
// The product never links this package (nor lungo): only tests and
// cmd/mongotestd do.
package mongowire

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/256dpi/lungo"
	v1bson "go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/wiremessage"
)

// Mode is what the server says it is in its hello reply.
type Mode int

const (
	// Primary answers as the primary of a one-member replica set: the only
	// mode that serves change streams and transactions.
	Primary Mode = iota
	// Standalone answers as a mongod started without --replSet.
	Standalone
	// Uninitiated answers as a mongod started with --replSet whose replica
	// set has not been initiated (rs.initiate() turns it into Primary).
	Uninitiated
)

// Options configures a Server; the zero value is a replica-set primary of
// set "rs0" with lungo's default oplog retention.
type Options struct {
	// Mode is what hello reports; default Primary.
	Mode Mode
	// SetName is the replica set's name; default "rs0".
	SetName string
	// TransactionLifetime is how long a transaction may stay open before the
	// server aborts it, as transactionLifetimeLimitSeconds does; default 60s.
	TransactionLifetime time.Duration
	// OplogMinSize, OplogMaxSize and OplogMinAge tune lungo's oplog
	// retention (defaults 100, 1000 and 5m): an entry is dropped once it is
	// older than OplogMinAge and beyond OplogMaxSize. Tiny values make a
	// resume token age out, for tests of lost history.
	OplogMinSize, OplogMaxSize int
	OplogMinAge                time.Duration
	// Observe, when set, is called after every command with its database,
	// name, body and reply: how a test counts what a client sent, with no
	// seam in the client.
	Observe func(db, name string, cmd, reply bson.Raw)
	// Logger receives connection errors; default: discard.
	Logger *slog.Logger
}

// Server is a running wire-protocol server. Close stops it.
type Server struct {
	opt    Options
	ln     net.Listener
	addr   string
	engine *lungo.Engine
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mode     atomic.Int32
	connIDs  atomic.Int64
	election bson.ObjectID

	mu       sync.Mutex
	conns    map[*conn]struct{}
	sessions map[string]*session
	cursors  map[int64]*cursor
	cursorID int64

	fp failPoints
}

// Listen starts a server on addr ("127.0.0.1:0" picks a free port).
func Listen(addr string, opt Options) (*Server, error) {
	if opt.SetName == "" {
		opt.SetName = "rs0"
	}
	if opt.TransactionLifetime <= 0 {
		opt.TransactionLifetime = 60 * time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	engine, err := lungo.CreateEngine(lungo.Options{
		Store:        lungo.NewMemoryStore(),
		MinOplogSize: opt.OplogMinSize,
		MaxOplogSize: opt.OplogMaxSize,
		MinOplogAge:  opt.OplogMinAge,
	})
	if err != nil {
		return nil, fmt.Errorf("mongowire: start lungo: %w", err)
	}
	// A real oplog is never empty, and a change stream's first post-batch
	// resume token is its newest entry: start lungo's with one.
	if err := seedOplog(engine); err != nil {
		engine.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		engine.Close()
		return nil, fmt.Errorf("mongowire: listen on %s: %w", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opt:      opt,
		ln:       ln,
		addr:     ln.Addr().String(),
		engine:   engine,
		log:      opt.Logger,
		ctx:      ctx,
		cancel:   cancel,
		election: bson.NewObjectID(),
		conns:    map[*conn]struct{}{},
		sessions: map[string]*session{},
		cursors:  map[int64]*cursor{},
	}
	s.mode.Store(int32(opt.Mode))
	s.wg.Add(2)
	go s.accept()
	go s.reap()
	return s, nil
}

func seedOplog(engine *lungo.Engine) error {
	txn, err := engine.Begin(context.Background(), true)
	if err != nil {
		return fmt.Errorf("mongowire: seed oplog: %w", err)
	}
	doc := &v1bson.D{{Key: "_id", Value: "origin"}, {Key: "at", Value: time.Now()}}
	if _, err := txn.Insert(lungo.Handle{"mongowire", "origin"}, []*v1bson.D{doc}, true); err != nil {
		engine.Abort(txn)
		return fmt.Errorf("mongowire: seed oplog: %w", err)
	}
	if err := engine.Commit(txn); err != nil {
		return fmt.Errorf("mongowire: seed oplog: %w", err)
	}
	return nil
}

// Addr returns the host:port the server listens on.
func (s *Server) Addr() string { return s.addr }

// URI returns a connection string for the server: with replicaSet set to
// the replica set's name, as the seed's MONGO_URI has it, in every mode (a
// standalone or uninitiated server then fails the driver's server selection,
// as the real ones do).
func (s *Server) URI() string {
	return "mongodb://" + s.addr + "/?replicaSet=" + s.opt.SetName
}

// Close stops accepting, closes every connection and the engine, and waits
// for the server's goroutines.
func (s *Server) Close() error {
	s.cancel()
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.engine.Close()
	return err
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() == nil {
				s.log.Error("mongowire: accept", "err", err)
			}
			return
		}
		c := &conn{s: s, nc: nc, id: s.connIDs.Add(1)}
		s.mu.Lock()
		if s.ctx.Err() != nil {
			s.mu.Unlock()
			_ = nc.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go c.serve()
	}
}

// reap aborts transactions that outlived TransactionLifetime, forgets
// cursors idle for ten minutes and sessions idle for
// logicalSessionTimeoutMinutes (30), as a server does.
func (s *Server) reap() {
	defer s.wg.Done()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		s.mu.Lock()
		sessions := make([]*session, 0, len(s.sessions))
		for key, ss := range s.sessions {
			if now.Sub(time.Unix(0, ss.used.Load())) > 30*time.Minute {
				delete(s.sessions, key)
			}
			sessions = append(sessions, ss)
		}
		var idle []*cursor
		for id, c := range s.cursors {
			if now.Sub(time.Unix(0, c.used.Load())) > 10*time.Minute {
				idle = append(idle, c)
				delete(s.cursors, id)
			}
		}
		s.mu.Unlock()
		for _, ss := range sessions {
			ss.abortIfOlder(now.Add(-s.opt.TransactionLifetime))
		}
		for _, c := range idle {
			c.close()
		}
	}
}

// opQuery is the legacy OP_QUERY opcode, which a driver still uses for the
// first hello of a connection.
const opQuery wiremessage.OpCode = 2004

// maxMessage is the largest message accepted (maxMessageSizeBytes).
const maxMessage = 48_000_000

// conn is one client connection.
type conn struct {
	s       *Server
	nc      net.Conn
	id      int64
	appName atomic.Value // string, from the handshake's client metadata
}

func (c *conn) serve() {
	defer c.s.wg.Done()
	defer func() {
		_ = c.nc.Close()
		c.s.mu.Lock()
		delete(c.s.conns, c)
		sessions := make([]*session, 0, len(c.s.sessions))
		for _, ss := range c.s.sessions {
			sessions = append(sessions, ss)
		}
		c.s.mu.Unlock()
		// A client that went away (killed, say) leaves no transaction
		// holding lungo's single write lock behind.
		for _, ss := range sessions {
			ss.abortIfLastOn(c)
		}
	}()
	hdr := make([]byte, 16)
	for {
		if _, err := io.ReadFull(c.nc, hdr); err != nil {
			return
		}
		length := int32(binary.LittleEndian.Uint32(hdr))
		if length < 16 || length > maxMessage {
			c.s.log.Warn("mongowire: bad message length", "length", length)
			return
		}
		msg := make([]byte, length)
		copy(msg, hdr)
		if _, err := io.ReadFull(c.nc, msg[16:]); err != nil {
			return
		}
		_, reqID, _, op, rem, _ := wiremessage.ReadHeader(msg)
		var out []byte
		var hangUp bool
		switch op {
		case wiremessage.OpMsg:
			out, hangUp = c.handleMsg(reqID, rem)
		case opQuery:
			out, hangUp = c.handleQuery(reqID, rem)
		default:
			c.s.log.Warn("mongowire: unsupported opcode, closing the connection", "opcode", op.String())
			return
		}
		if hangUp {
			return
		}
		if out != nil {
			if _, err := c.nc.Write(out); err != nil {
				return
			}
		}
	}
}

// handleMsg answers one OP_MSG: the body section is the command, document
// sequences become arrays of it.
func (c *conn) handleMsg(reqID int32, rem []byte) ([]byte, bool) {
	flags, rem, ok := wiremessage.ReadMsgFlags(rem)
	if !ok {
		return nil, true
	}
	if flags&wiremessage.ChecksumPresent != 0 && len(rem) >= 4 {
		rem = rem[:len(rem)-4]
	}
	var body bsoncore.Document
	seqs := map[string][]bson.Raw{}
	for len(rem) > 0 {
		var st wiremessage.SectionType
		st, rem, ok = wiremessage.ReadMsgSectionType(rem)
		if !ok {
			return nil, true
		}
		switch st {
		case wiremessage.SingleDocument:
			body, rem, ok = wiremessage.ReadMsgSectionSingleDocument(rem)
		case wiremessage.DocumentSequence:
			var id string
			var docs []bsoncore.Document
			id, docs, rem, ok = wiremessage.ReadMsgSectionDocumentSequence(rem)
			for _, d := range docs {
				seqs[id] = append(seqs[id], bson.Raw(d))
			}
		default:
			return nil, true
		}
		if !ok {
			return nil, true
		}
	}
	if body == nil {
		return nil, true
	}
	reply, hangUp := c.s.handle(c, bson.Raw(body), seqs)
	if hangUp || flags&wiremessage.MoreToCome != 0 {
		return nil, hangUp
	}
	idx, out := wiremessage.AppendHeaderStart(nil, wiremessage.NextRequestID(), reqID, wiremessage.OpMsg)
	out = wiremessage.AppendMsgFlags(out, 0)
	out = wiremessage.AppendMsgSectionType(out, wiremessage.SingleDocument)
	out = append(out, reply...)
	return bsoncore.UpdateLength(out, idx, int32(len(out[idx:]))), false
}

// handleQuery answers the legacy OP_QUERY hello (isMaster) a driver sends
// first on a new connection; any other OP_QUERY is refused.
func (c *conn) handleQuery(reqID int32, rem []byte) ([]byte, bool) {
	// OP_QUERY: int32 flags, cstring full collection name, int32 skip,
	// int32 number to return, then the query document. (The driver's
	// readers for it are deprecated along with the opcode; the layout is
	// small enough to read here.)
	if len(rem) < 4 {
		return nil, true
	}
	rem = rem[4:]
	end := bytes.IndexByte(rem, 0)
	if end < 0 {
		return nil, true
	}
	ns := string(rem[:end])
	rem = rem[end+1:]
	if len(rem) < 8 {
		return nil, true
	}
	q, _, ok := bsoncore.ReadDocument(rem[8:])
	if !ok {
		return nil, true
	}
	var reply bson.Raw
	body := bson.Raw(q)
	// A legacy query may wrap the command in $query.
	if inner, ok := body.Lookup("$query").DocumentOK(); ok {
		body = inner
	}
	name := firstKey(body)
	if ns != "admin.$cmd" || (name != "isMaster" && name != "ismaster" && name != "hello") {
		reply = errorReply(cmdErr(codeCommandNotSupported, "CommandNotSupported",
			fmt.Sprintf("mongowire supports OP_QUERY only for the legacy hello on admin.$cmd, not %q on %s", name, ns)))
	} else {
		reply, _ = c.s.handle(c, body, nil)
	}
	idx, out := wiremessage.AppendHeaderStart(nil, wiremessage.NextRequestID(), reqID, wiremessage.OpReply)
	out = wiremessage.AppendReplyFlags(out, wiremessage.AwaitCapable)
	out = wiremessage.AppendReplyCursorID(out, 0)
	out = wiremessage.AppendReplyStartingFrom(out, 0)
	out = wiremessage.AppendReplyNumberReturned(out, 1)
	out = append(out, reply...)
	return bsoncore.UpdateLength(out, idx, int32(len(out[idx:]))), false
}

func firstKey(doc bson.Raw) string {
	el, err := doc.IndexErr(0)
	if err != nil {
		return ""
	}
	return el.Key()
}

// errClosed is what a command waiting on the server sees when it stops.
var errClosed = errors.New("mongowire: server closed")
