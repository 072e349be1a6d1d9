package mongowire

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/256dpi/lungo"
	"github.com/256dpi/lungo/bsonkit"
	"github.com/256dpi/lungo/mongokit"
	v1bson "go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// Server error codes, as MongoDB numbers and names them.
const (
	codeInternalError              = 1
	codeBadValue                   = 2
	codeFailedToParse              = 9
	codeTypeMismatch               = 14
	codeNamespaceNotFound          = 26
	codeLockTimeout                = 24
	codeCursorNotFound             = 43
	codeNamespaceExists            = 48
	codeMaxTimeMSExpired           = 50
	codeCommandNotFound            = 59
	codeNoReplicationEnabled       = 76
	codeNotYetInitialized          = 94
	codeCommandNotSupported        = 115
	codeNoSuchTransaction          = 251
	codeInvalidResumeToken         = 260
	codeOperationNotSupportedInTxn = 263
	codeTransactionTooOld          = 225
	codeChangeStreamHistoryLost    = 286
	codeDuplicateKey               = 11000
	codeNotWritablePrimary         = 10107
)

// cmdError is a command's failure: an ok:0 reply.
type cmdError struct {
	Code   int32
	Name   string
	Msg    string
	Labels []string
}

func (e *cmdError) Error() string { return fmt.Sprintf("%s (%d): %s", e.Name, e.Code, e.Msg) }

func cmdErr(code int32, name, msg string) *cmdError {
	return &cmdError{Code: code, Name: name, Msg: msg}
}

func unsupported(format string, args ...any) *cmdError {
	return cmdErr(codeCommandNotSupported, "CommandNotSupported", "mongowire does not support "+fmt.Sprintf(format, args...))
}

func badValue(format string, args ...any) *cmdError {
	return cmdErr(codeBadValue, "BadValue", fmt.Sprintf(format, args...))
}

// request is one command as the handlers read it.
type request struct {
	c     *conn
	name  string
	db    string
	body  bson.Raw
	seqs  map[string][]bson.Raw
	start time.Time
	ctx   context.Context

	sess      *session
	txnNumber int64
	hasTxnNum bool
	inTxn     bool // autocommit:false
	// txn is the session's transaction as it was when the command began: a
	// client that gave up on a command may abort the transaction from
	// another connection while it still runs.
	txn *lungo.Transaction
}

func (r *request) val(key string) (bson.RawValue, bool) {
	v, err := r.body.LookupErr(key)
	return v, err == nil
}

func (r *request) str(key string) string {
	v, _ := r.val(key)
	s, _ := v.StringValueOK()
	return s
}

func (r *request) flag(key string) bool {
	v, ok := r.val(key)
	if !ok {
		return false
	}
	switch v.Type {
	case bson.TypeBoolean:
		return v.Boolean()
	default:
		n, ok := number(v)
		return ok && n != 0
	}
}

func (r *request) num(key string) (int64, bool) {
	v, ok := r.val(key)
	if !ok {
		return 0, false
	}
	return number(v)
}

func number(v bson.RawValue) (int64, bool) {
	switch v.Type {
	case bson.TypeInt32:
		return int64(v.Int32()), true
	case bson.TypeInt64:
		return v.Int64(), true
	case bson.TypeDouble:
		f := v.Double()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, false
		}
		return int64(f), true
	}
	return 0, false
}

func (r *request) doc(key string) (bson.Raw, bool) {
	v, ok := r.val(key)
	if !ok {
		return nil, false
	}
	d, ok := v.DocumentOK()
	return d, ok
}

// docs returns an array of documents given in the body or as an OP_MSG
// document sequence.
func (r *request) docs(key string) ([]bson.Raw, error) {
	if d, ok := r.seqs[key]; ok {
		return d, nil
	}
	v, ok := r.val(key)
	if !ok {
		return nil, nil
	}
	arr, ok := v.ArrayOK()
	if !ok {
		return nil, cmdErr(codeTypeMismatch, "TypeMismatch", fmt.Sprintf("%s.%s must be an array", r.name, key))
	}
	vals, err := arr.Values()
	if err != nil {
		return nil, badValue("%s.%s: %v", r.name, key, err)
	}
	out := make([]bson.Raw, 0, len(vals))
	for _, v := range vals {
		d, ok := v.DocumentOK()
		if !ok {
			return nil, cmdErr(codeTypeMismatch, "TypeMismatch", fmt.Sprintf("%s.%s must hold documents", r.name, key))
		}
		out = append(out, d)
	}
	return out, nil
}

// coll is the namespace the command names in its first field.
func (r *request) handle() (lungo.Handle, error) {
	name := r.str(r.name)
	if name == "" {
		return lungo.Handle{}, cmdErr(codeTypeMismatch, "InvalidNamespace", fmt.Sprintf("%s needs a collection name", r.name))
	}
	if r.db == "" {
		return lungo.Handle{}, cmdErr(codeFailedToParse, "FailedToParse", "the command has no $db")
	}
	return lungo.Handle{r.db, name}, nil
}

// Fields every command may carry: session, transaction, concern and API
// fields, which mongowire accepts (a single lungo engine has nothing to
// wait for on a write concern, and every read is of the latest state).
var genericFields = map[string]bool{
	"$db": true, "lsid": true, "txnNumber": true, "autocommit": true, "startTransaction": true,
	"$clusterTime": true, "$readPreference": true, "readConcern": true, "writeConcern": true,
	"maxTimeMS": true, "comment": true, "apiVersion": true, "apiStrict": true,
	"apiDeprecationErrors": true, "$audit": true, "bypassDocumentValidation": true,
}

type command struct {
	fn     func(*request) (bson.D, error)
	fields []string // accepted besides the generic ones
	inTxn  bool     // allowed in a multi-document transaction
	admin  bool     // no failCommand (configureFailPoint itself)
	any    bool     // accepts every field (handshake commands)
}

func (s *Server) commands() map[string]command {
	hello := command{fn: s.hello, any: true}
	return map[string]command{
		"hello":              hello,
		"isMaster":           hello,
		"ismaster":           hello,
		"ping":               {fn: func(*request) (bson.D, error) { return bson.D{}, nil }},
		"buildInfo":          {fn: s.buildInfo, any: true},
		"buildinfo":          {fn: s.buildInfo, any: true},
		"endSessions":        {fn: s.endSessions},
		"insert":             {fn: s.insert, fields: []string{"documents", "ordered"}, inTxn: true},
		"update":             {fn: s.update, fields: []string{"updates", "ordered"}, inTxn: true},
		"delete":             {fn: s.delete, fields: []string{"deletes", "ordered"}, inTxn: true},
		"findAndModify":      {fn: s.findAndModify, fields: []string{"query", "sort", "remove", "update", "new", "upsert", "arrayFilters", "fields"}, inTxn: true},
		"find":               {fn: s.find, fields: []string{"filter", "sort", "projection", "skip", "limit", "batchSize", "singleBatch", "hint", "noCursorTimeout", "allowPartialResults"}, inTxn: true},
		"getMore":            {fn: s.getMore, fields: []string{"collection", "batchSize"}, inTxn: true},
		"killCursors":        {fn: s.killCursors, fields: []string{"cursors"}, inTxn: true},
		"count":              {fn: s.count, fields: []string{"query", "limit", "skip", "hint"}},
		"aggregate":          {fn: s.aggregate, fields: []string{"pipeline", "cursor", "hint", "allowDiskUse"}, inTxn: true},
		"create":             {fn: s.create, inTxn: true},
		"createIndexes":      {fn: s.createIndexes, fields: []string{"indexes", "commitQuorum"}, inTxn: true},
		"listCollections":    {fn: s.listCollections, fields: []string{"filter", "nameOnly", "authorizedCollections", "cursor"}},
		"listIndexes":        {fn: s.listIndexes, fields: []string{"cursor"}},
		"listDatabases":      {fn: s.listDatabases, fields: []string{"filter", "nameOnly", "authorizedDatabases"}},
		"drop":               {fn: s.drop},
		"dropDatabase":       {fn: s.dropDatabase},
		"commitTransaction":  {fn: s.commitTransaction, fields: []string{"recoveryToken"}, inTxn: true},
		"abortTransaction":   {fn: s.abortTransaction, fields: []string{"recoveryToken"}, inTxn: true},
		"configureFailPoint": {fn: s.configureFailPoint, fields: []string{"mode", "data"}, admin: true},
		"replSetInitiate":    {fn: s.replSetInitiate, any: true},
		"renameCollection":   {fn: s.renameCollection, fields: []string{"to", "dropTarget"}},
	}
}

// handle runs one command and returns its reply document; hangUp asks the
// caller to close the connection without a reply (failCommand's
// closeConnection).
func (s *Server) handle(c *conn, body bson.Raw, seqs map[string][]bson.Raw) (reply bson.Raw, hangUp bool) {
	r := &request{c: c, name: firstKey(body), body: body, seqs: seqs, start: time.Now()}
	r.db, _ = body.Lookup("$db").StringValueOK()
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	r.ctx = ctx
	d, err := s.run(r)
	if errors.Is(err, errHangUp) {
		return nil, true
	}
	if err != nil {
		reply = errorReply(err)
	} else {
		reply = s.okReply(d)
	}
	if s.opt.Observe != nil {
		s.opt.Observe(r.db, r.name, body, reply)
	}
	return reply, false
}

var errHangUp = errors.New("close the connection")

func (s *Server) run(r *request) (bson.D, error) {
	cmds := s.commands()
	cmd, ok := cmds[r.name]
	if !ok {
		return nil, cmdErr(codeCommandNotFound, "CommandNotFound", fmt.Sprintf("no such command: '%s' (mongowire, a test stand-in for MongoDB, does not implement it)", r.name))
	}
	if !cmd.any {
		known := map[string]bool{r.name: true}
		for _, f := range cmd.fields {
			known[f] = true
		}
		for _, el := range mustElements(r.body) {
			if !known[el.Key()] && !genericFields[el.Key()] {
				return nil, unsupported("the %q field of %s", el.Key(), r.name)
			}
		}
	}
	var wce bson.Raw
	if !cmd.admin {
		act := s.fp.match(r.name, r.c.appName.Load())
		if act != nil {
			if act.closeConnection {
				return nil, errHangUp
			}
			if act.block > 0 {
				t := time.NewTimer(act.block)
				select {
				case <-t.C:
				case <-r.ctx.Done():
					t.Stop()
					return nil, errClosed
				}
			}
			if act.errorCode != 0 {
				e := cmdErr(act.errorCode, codeName(act.errorCode), "Failing command via 'failCommand' failpoint")
				e.Labels = act.labels
				if !act.labelsSet {
					e.Labels = s.defaultLabels(r, act.errorCode)
				}
				return nil, e
			}
			wce = act.writeConcernError
		}
	}
	if ms, ok := r.num("maxTimeMS"); ok && ms > 0 && r.name != "getMore" {
		if time.Since(r.start) > time.Duration(ms)*time.Millisecond {
			return nil, cmdErr(codeMaxTimeMSExpired, "MaxTimeMSExpired", "operation exceeded time limit")
		}
		var cancel context.CancelFunc
		r.ctx, cancel = context.WithDeadline(r.ctx, r.start.Add(time.Duration(ms)*time.Millisecond))
		defer cancel()
	}
	if err := s.bindSession(r, cmd); err != nil {
		return nil, err
	}
	if r.name != "hello" && r.name != "isMaster" && r.name != "ismaster" && r.name != "buildInfo" &&
		r.name != "buildinfo" && r.name != "ping" && r.name != "replSetInitiate" && r.name != "endSessions" {
		switch Mode(s.mode.Load()) {
		case Uninitiated:
			return nil, cmdErr(codeNotYetInitialized, "NotYetInitialized", "no replset config has been received (run rs.initiate())")
		}
	}
	d, err := cmd.fn(r)
	if err != nil {
		return nil, err
	}
	if wce != nil {
		d = append(d, bson.E{Key: "writeConcernError", Value: wce})
	}
	return d, nil
}

// defaultLabels are the error labels a server adds itself when failCommand
// names no errorLabels: RetryableWriteError on a retryable write failing
// with a retryable code, TransientTransactionError inside a transaction,
// ResumableChangeStreamError on a change stream's getMore.
func (s *Server) defaultLabels(r *request, code int32) []string {
	retryable := map[int32]bool{6: true, 7: true, 89: true, 91: true, 189: true, 262: true, 9001: true,
		10107: true, 11600: true, 11602: true, 13435: true, 13436: true, 63: true, 150: true, 13388: true, 234: true, 133: true}
	var labels []string
	if r.flagPresent("autocommit") && retryable[code] && r.name != "commitTransaction" {
		labels = append(labels, "TransientTransactionError")
	}
	write := r.name == "insert" || r.name == "update" || r.name == "delete" || r.name == "findAndModify" ||
		r.name == "commitTransaction" || r.name == "abortTransaction"
	if write && r.hasField("txnNumber") && retryable[code] {
		labels = append(labels, "RetryableWriteError")
	}
	if r.name == "getMore" && (retryable[code] || code == codeCursorNotFound) {
		if id, ok := r.num("getMore"); ok && s.isStream(id) {
			labels = append(labels, "ResumableChangeStreamError")
		}
	}
	return labels
}

func (r *request) hasField(key string) bool { _, ok := r.val(key); return ok }
func (r *request) flagPresent(key string) bool {
	v, ok := r.val(key)
	return ok && v.Type == bson.TypeBoolean && !v.Boolean()
}

func mustElements(d bson.Raw) []bson.RawElement {
	els, _ := d.Elements()
	return els
}

func codeName(code int32) string {
	names := map[int32]string{
		1: "InternalError", 2: "BadValue", 6: "HostUnreachable", 7: "HostNotFound", 11: "UserNotFound",
		24: "LockTimeout", 26: "NamespaceNotFound", 43: "CursorNotFound", 48: "NamespaceExists",
		50: "MaxTimeMSExpired", 59: "CommandNotFound", 64: "WriteConcernFailed", 89: "NetworkTimeout",
		91: "ShutdownInProgress", 112: "WriteConflict", 115: "CommandNotSupported", 133: "FailedToSatisfyReadPreference",
		136: "CappedPositionLost", 189: "PrimarySteppedDown", 251: "NoSuchTransaction", 262: "ExceededTimeLimit",
		280: "ChangeStreamFatalError", 286: "ChangeStreamHistoryLost", 9001: "SocketException",
		10107: "NotWritablePrimary", 11000: "DuplicateKey", 11600: "InterruptedAtShutdown",
		11602: "InterruptedDueToReplStateChange", 13435: "NotPrimaryNoSecondaryOk", 13436: "NotPrimaryOrSecondary",
	}
	if n, ok := names[code]; ok {
		return n
	}
	return fmt.Sprintf("Error%d", code)
}

func errorReply(err error) bson.Raw {
	var ce *cmdError
	if !errors.As(err, &ce) {
		ce = cmdErr(codeInternalError, "InternalError", err.Error())
	}
	d := bson.D{{Key: "ok", Value: 0.0}, {Key: "errmsg", Value: ce.Msg}, {Key: "code", Value: ce.Code}, {Key: "codeName", Value: ce.Name}}
	if len(ce.Labels) > 0 {
		d = append(d, bson.E{Key: "errorLabels", Value: ce.Labels})
	}
	raw, mErr := bson.Marshal(d)
	if mErr != nil {
		raw, _ = bson.Marshal(bson.D{{Key: "ok", Value: 0.0}, {Key: "errmsg", Value: mErr.Error()}, {Key: "code", Value: int32(codeInternalError)}})
	}
	return raw
}

func (s *Server) okReply(d bson.D) bson.Raw {
	now := bsonkit.Now()
	ts := bson.Timestamp{T: now.T, I: now.I}
	d = append(d, bson.E{Key: "ok", Value: 1.0})
	if Mode(s.mode.Load()) == Primary {
		d = append(d,
			bson.E{Key: "$clusterTime", Value: bson.D{{Key: "clusterTime", Value: ts}, {Key: "signature", Value: bson.D{
				{Key: "hash", Value: bson.Binary{Subtype: 0, Data: make([]byte, 20)}}, {Key: "keyId", Value: int64(0)}}}}},
			bson.E{Key: "operationTime", Value: ts})
	}
	raw, err := bson.Marshal(d)
	if err != nil {
		return errorReply(fmt.Errorf("mongowire: encode reply: %w", err))
	}
	return raw
}

// hello answers hello, isMaster and the legacy handshake.
func (s *Server) hello(r *request) (bson.D, error) {
	if meta, ok := r.doc("client"); ok {
		if name, ok := meta.Lookup("application", "name").StringValueOK(); ok {
			r.c.appName.Store(name)
		}
	}
	writable := "isWritablePrimary"
	if r.name != "hello" {
		writable = "ismaster"
	}
	d := bson.D{}
	if r.hasField("helloOk") {
		d = append(d, bson.E{Key: "helloOk", Value: true})
	}
	switch Mode(s.mode.Load()) {
	case Primary:
		d = append(d,
			bson.E{Key: writable, Value: true},
			bson.E{Key: "secondary", Value: false},
			bson.E{Key: "setName", Value: s.opt.SetName},
			bson.E{Key: "setVersion", Value: int32(1)},
			bson.E{Key: "hosts", Value: bson.A{s.addr}},
			bson.E{Key: "primary", Value: s.addr},
			bson.E{Key: "me", Value: s.addr},
			bson.E{Key: "electionId", Value: s.election},
			bson.E{Key: "logicalSessionTimeoutMinutes", Value: int32(30)},
		)
	case Standalone:
		d = append(d, bson.E{Key: writable, Value: true}, bson.E{Key: "logicalSessionTimeoutMinutes", Value: int32(30)})
	case Uninitiated:
		d = append(d,
			bson.E{Key: writable, Value: false},
			bson.E{Key: "secondary", Value: false},
			bson.E{Key: "isreplicaset", Value: true},
			bson.E{Key: "info", Value: "Does not have a valid replica set config"},
		)
	}
	d = append(d,
		bson.E{Key: "maxBsonObjectSize", Value: int32(16 * 1024 * 1024)},
		bson.E{Key: "maxMessageSizeBytes", Value: int32(maxMessage)},
		bson.E{Key: "maxWriteBatchSize", Value: int32(100000)},
		bson.E{Key: "localTime", Value: time.Now()},
		bson.E{Key: "connectionId", Value: int32(r.c.id)},
		bson.E{Key: "minWireVersion", Value: int32(0)},
		bson.E{Key: "maxWireVersion", Value: int32(21)},
		bson.E{Key: "readOnly", Value: false},
	)
	return d, nil
}

func (s *Server) buildInfo(*request) (bson.D, error) {
	return bson.D{
		{Key: "version", Value: "7.0.0-mongowire"},
		{Key: "versionArray", Value: bson.A{int32(7), int32(0), int32(0), int32(0)}},
		{Key: "gitVersion", Value: "mongowire"},
		{Key: "maxBsonObjectSize", Value: int32(16 * 1024 * 1024)},
	}, nil
}

// replSetInitiate turns an uninitiated member into the primary, as
// rs.initiate() does; a standalone refuses it, as a real one does.
func (s *Server) replSetInitiate(*request) (bson.D, error) {
	switch Mode(s.mode.Load()) {
	case Standalone:
		return nil, cmdErr(codeNoReplicationEnabled, "NoReplicationEnabled", "This node was not started with replication enabled.")
	case Primary:
		return nil, cmdErr(23, "AlreadyInitialized", "already initialized")
	}
	s.mode.Store(int32(Primary))
	return bson.D{}, nil
}

// kit turns a BSON document into lungo's representation.
func kit(raw bson.Raw) (bsonkit.Doc, error) {
	d := v1bson.D{}
	if raw == nil {
		return &d, nil
	}
	if err := v1bson.Unmarshal(raw, &d); err != nil {
		return nil, badValue("decode document: %v", err)
	}
	return &d, nil
}

// raw turns a lungo document into BSON.
func raw(doc bsonkit.Doc) bson.Raw {
	if doc == nil {
		return nil
	}
	b, err := v1bson.Marshal(doc)
	if err != nil {
		return nil
	}
	return b
}

// lungoErr maps lungo's errors to server errors.
func lungoErr(err error) error {
	var ce *cmdError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce):
		return err
	case lungo.IsUniquenessError(err):
		return cmdErr(codeDuplicateKey, "DuplicateKey", "E11000 duplicate key error: "+err.Error())
	case errors.Is(err, lungo.ErrLostOplogPosition), strings.Contains(err.Error(), "unable to resume change stream"):
		return cmdErr(codeChangeStreamHistoryLost, "ChangeStreamHistoryLost",
			"Resume of change stream was not possible, as the resume point may no longer be in the oplog. ("+err.Error()+")")
	case errors.Is(err, context.DeadlineExceeded):
		return cmdErr(codeMaxTimeMSExpired, "MaxTimeMSExpired", "operation exceeded time limit")
	case errors.Is(err, context.Canceled), errors.Is(err, lungo.ErrEngineClosed):
		return cmdErr(11600, "InterruptedAtShutdown", "interrupted at shutdown")
	case strings.Contains(err.Error(), "token acquisition timeout"):
		return &cmdError{Code: codeLockTimeout, Name: "LockTimeout", Msg: "timed out waiting for the write lock", Labels: []string{"TransientTransactionError"}}
	}
	return cmdErr(codeBadValue, "BadValue", err.Error())
}

// write runs fn in the request's transaction, or in a transaction of its
// own committed when fn returns no error.
func (s *Server) write(r *request, fn func(txn *lungo.Transaction) (bson.D, error)) (bson.D, error) {
	if r.inTxn {
		r.sess.use.Lock()
		d, err := fn(r.txn)
		r.sess.use.Unlock()
		if err != nil {
			// A failed write aborts a transaction, as on a server; the
			// error keeps its own labels (a duplicate key is not transient).
			r.sess.abortTxn(r.txn)
		}
		return d, lungoErr(err)
	}
	txn, err := s.engine.Begin(r.ctx, true)
	if err != nil {
		return nil, lungoErr(err)
	}
	d, err := fn(txn)
	if err != nil {
		s.engine.Abort(txn)
		return nil, lungoErr(err)
	}
	if err := s.engine.Commit(txn); err != nil {
		return nil, lungoErr(err)
	}
	return d, nil
}

// read runs fn on the request's transaction or on a snapshot.
func (s *Server) read(r *request, fn func(txn *lungo.Transaction) (bson.D, error)) (bson.D, error) {
	if r.inTxn {
		r.sess.use.Lock()
		d, err := fn(r.txn)
		r.sess.use.Unlock()
		return d, lungoErr(err)
	}
	txn, err := s.engine.Begin(r.ctx, false)
	if err != nil {
		return nil, lungoErr(err)
	}
	d, err := fn(txn)
	return d, lungoErr(err)
}

func writeError(i int, err error) bson.D {
	var ce *cmdError
	if !errors.As(lungoErr(err), &ce) {
		ce = cmdErr(codeInternalError, "InternalError", err.Error())
	}
	return bson.D{{Key: "index", Value: int32(i)}, {Key: "code", Value: ce.Code}, {Key: "errmsg", Value: ce.Msg}}
}

func (s *Server) insert(r *request) (bson.D, error) {
	h, err := r.handle()
	if err != nil {
		return nil, err
	}
	docs, err := r.docs("documents")
	if err != nil {
		return nil, err
	}
	ordered := !r.hasField("ordered") || r.flag("ordered")
	return s.write(r, func(txn *lungo.Transaction) (bson.D, error) {
		var n int32
		var werrs bson.A
		for i, d := range docs {
			doc, err := kit(d)
			if err != nil {
				return nil, err
			}
			if bsonkit.Get(doc, "_id") == bsonkit.Missing {
				*doc = append(v1bson.D{{Key: "_id", Value: bson.NewObjectID()}}, *doc...)
			}
			res, err := txn.Insert(h, bsonkit.List{doc}, true)
			if err == nil && res.Error != nil {
				err = res.Error
			}
			if err != nil {
				werrs = append(werrs, writeError(i, err))
				if ordered {
					break
				}
				continue
			}
			n++
		}
		return writeReply(r, n, -1, nil, werrs)
	})
}

// writeReply builds a write command's reply; in a transaction a write
// error aborts it.
func writeReply(r *request, n, nModified int32, upserted bson.A, werrs bson.A) (bson.D, error) {
	d := bson.D{{Key: "n", Value: n}}
	if nModified >= 0 {
		d = append(d, bson.E{Key: "nModified", Value: nModified})
	}
	if len(upserted) > 0 {
		d = append(d, bson.E{Key: "upserted", Value: upserted})
	}
	if len(werrs) > 0 {
		if r.inTxn {
			we := werrs[0].(bson.D)
			code, _ := we[1].Value.(int32)
			msg, _ := we[2].Value.(string)
			return nil, &cmdError{Code: code, Name: codeName(code), Msg: msg}
		}
		d = append(d, bson.E{Key: "writeErrors", Value: werrs})
	}
	return d, nil
}

func isOperatorUpdate(u bsonkit.Doc) bool {
	return len(*u) > 0 && strings.HasPrefix((*u)[0].Key, "$")
}

func (s *Server) update(r *request) (bson.D, error) {
	h, err := r.handle()
	if err != nil {
		return nil, err
	}
	ups, err := r.docs("updates")
	if err != nil {
		return nil, err
	}
	ordered := !r.hasField("ordered") || r.flag("ordered")
	stmts := make([]updateStmt, 0, len(ups))
	for _, up := range ups {
		st, err := parseUpdate(up)
		if err != nil {
			return nil, err
		}
		stmts = append(stmts, st)
	}
	return s.write(r, func(txn *lungo.Transaction) (bson.D, error) {
		var n, nMod int32
		var upserted, werrs bson.A
		for i, st := range stmts {
			var res *lungo.Result
			var err error
			if isOperatorUpdate(st.u) {
				limit := 1
				if st.multi {
					limit = 0
				}
				res, err = txn.Update(h, st.q, nil, st.u, 0, limit, st.upsert, st.af)
			} else {
				res, err = txn.Replace(h, st.q, nil, st.u, st.upsert)
			}
			if err != nil {
				werrs = append(werrs, writeError(i, err))
				if ordered {
					break
				}
				continue
			}
			if res.Upserted != nil {
				n++
				upserted = append(upserted, bson.D{{Key: "index", Value: int32(i)}, {Key: "_id", Value: raw(res.Upserted).Lookup("_id")}})
				continue
			}
			n += int32(len(res.Matched))
			nMod += int32(len(res.Modified))
		}
		return writeReply(r, n, nMod, upserted, werrs)
	})
}

// updateStmt is one statement of an update command.
type updateStmt struct {
	q, u          bsonkit.Doc
	multi, upsert bool
	af            bsonkit.List
}

// parseUpdate reads one statement of an update command's updates array.
func parseUpdate(up bson.Raw) (st updateStmt, err error) {
	for _, el := range mustElements(up) {
		switch el.Key() {
		case "q", "u", "multi", "upsert", "arrayFilters", "hint":
		default:
			return st, unsupported("the %q field of an update statement", el.Key())
		}
	}
	if up.Lookup("u").Type == bson.TypeArray {
		return st, unsupported("updates with an aggregation pipeline")
	}
	q, _ := up.Lookup("q").DocumentOK()
	u, _ := up.Lookup("u").DocumentOK()
	if st.q, err = kit(q); err != nil {
		return st, err
	}
	if st.u, err = kit(u); err != nil {
		return st, err
	}
	st.multi, _ = up.Lookup("multi").BooleanOK()
	st.upsert, _ = up.Lookup("upsert").BooleanOK()
	if af, ok := up.Lookup("arrayFilters").ArrayOK(); ok {
		var w struct {
			V []v1bson.D `bson:"v"`
		}
		if err := v1bson.Unmarshal(wrapArray(bson.Raw(af)), &w); err != nil {
			return st, badValue("arrayFilters: %v", err)
		}
		for i := range w.V {
			st.af = append(st.af, &w.V[i])
		}
	}
	if st.multi && !isOperatorUpdate(st.u) {
		return st, badValue("multi update is not supported for replacement-style update")
	}
	return st, nil
}

func wrapArray(arr bson.Raw) []byte {
	d, _ := bson.Marshal(bson.D{{Key: "v", Value: bson.RawArray(arr)}})
	return d
}

func (s *Server) delete(r *request) (bson.D, error) {
	h, err := r.handle()
	if err != nil {
		return nil, err
	}
	dels, err := r.docs("deletes")
	if err != nil {
		return nil, err
	}
	ordered := !r.hasField("ordered") || r.flag("ordered")
	type stmt struct {
		q     bsonkit.Doc
		limit int
	}
	stmts := make([]stmt, 0, len(dels))
	for _, d := range dels {
		for _, el := range mustElements(d) {
			switch el.Key() {
			case "q", "limit", "hint":
			default:
				return nil, unsupported("the %q field of a delete statement", el.Key())
			}
		}
		q, _ := d.Lookup("q").DocumentOK()
		doc, err := kit(q)
		if err != nil {
			return nil, err
		}
		lim, _ := number(d.Lookup("limit"))
		stmts = append(stmts, stmt{q: doc, limit: int(lim)})
	}
	return s.write(r, func(txn *lungo.Transaction) (bson.D, error) {
		var n int32
		var werrs bson.A
		for i, st := range stmts {
			res, err := txn.Delete(h, st.q, nil, 0, st.limit)
			if err != nil {
				werrs = append(werrs, writeError(i, err))
				if ordered {
					break
				}
				continue
			}
			n += int32(len(res.Matched))
		}
		return writeReply(r, n, -1, nil, werrs)
	})
}

func (s *Server) findAndModify(r *request) (bson.D, error) {
	h, err := r.handle()
	if err != nil {
		return nil, err
	}
	if f, ok := r.doc("fields"); ok && len(mustElements(f)) > 0 {
		return nil, unsupported("projections (findAndModify.fields)")
	}
	q, sort, err := r.filterAndSort("query")
	if err != nil {
		return nil, err
	}
	remove, returnNew, upsert := r.flag("remove"), r.flag("new"), r.flag("upsert")
	var u bsonkit.Doc
	if !remove {
		uv, ok := r.val("update")
		if !ok {
			return nil, cmdErr(codeFailedToParse, "FailedToParse", "Either an update or remove=true must be specified")
		}
		if uv.Type == bson.TypeArray {
			return nil, unsupported("updates with an aggregation pipeline")
		}
		ud, _ := uv.DocumentOK()
		if u, err = kit(ud); err != nil {
			return nil, err
		}
	}
	if r.hasField("arrayFilters") {
		return nil, unsupported("findAndModify.arrayFilters")
	}
	return s.write(r, func(txn *lungo.Transaction) (bson.D, error) {
		var value any = nil
		leo := bson.D{}
		switch {
		case remove:
			res, err := txn.Delete(h, q, sort, 0, 1)
			if err != nil {
				return nil, err
			}
			leo = append(leo, bson.E{Key: "n", Value: int32(len(res.Matched))})
			if len(res.Matched) > 0 {
				value = raw(res.Matched[0])
			}
		default:
			var res *lungo.Result
			if isOperatorUpdate(u) {
				res, err = txn.Update(h, q, sort, u, 0, 1, upsert, nil)
			} else {
				res, err = txn.Replace(h, q, sort, u, upsert)
			}
			if err != nil {
				return nil, err
			}
			leo, value = modified(res, returnNew)
		}
		return bson.D{{Key: "lastErrorObject", Value: leo}, {Key: "value", Value: value}}, nil
	})
}

func (s *Server) find(r *request) (bson.D, error) {
	h, err := r.handle()
	if err != nil {
		return nil, err
	}
	if p, ok := r.doc("projection"); ok && len(mustElements(p)) > 0 {
		return nil, unsupported("projections (find.projection)")
	}
	filter, sort, err := r.filterAndSort("filter")
	if err != nil {
		return nil, err
	}
	skip, _ := r.num("skip")
	limit, _ := r.num("limit")
	if limit < 0 {
		limit = -limit
	}
	batch, _ := r.num("batchSize")
	var docs []bson.Raw
	if _, err := s.read(r, func(txn *lungo.Transaction) (bson.D, error) {
		res, err := txn.Find(h, filter, sort, int(skip), int(limit))
		if err != nil {
			return nil, err
		}
		for _, d := range res.Matched {
			docs = append(docs, raw(d))
		}
		return nil, nil
	}); err != nil {
		return nil, err
	}
	return s.cursorReply(h, docs, int(batch), r.flag("singleBatch") || limit == 1), nil
}

func (s *Server) count(r *request) (bson.D, error) {
	h, err := r.handle()
	if err != nil {
		return nil, err
	}
	qr, _ := r.doc("query")
	q, err := kit(qr)
	if err != nil {
		return nil, err
	}
	skip, _ := r.num("skip")
	limit, _ := r.num("limit")
	if limit < 0 {
		limit = -limit
	}
	return s.read(r, func(txn *lungo.Transaction) (bson.D, error) {
		res, err := txn.Find(h, q, nil, int(skip), int(limit))
		if err != nil {
			return nil, err
		}
		return bson.D{{Key: "n", Value: int32(len(res.Matched))}}, nil
	})
}

// aggregate runs $changeStream pipelines and the plain pipelines the
// driver's helpers send (countDocuments): an optional $match, $sort, $skip
// and $limit, in that order, then optionally a $group counting them.
// modified is findAndModify's answer to an update or replacement: its
// lastErrorObject and the document before (or, with returnNew, after) it.
func modified(res *lungo.Result, returnNew bool) (leo bson.D, value any) {
	switch {
	case res.Upserted != nil:
		up := raw(res.Upserted)
		leo = bson.D{{Key: "n", Value: int32(1)}, {Key: "updatedExisting", Value: false},
			{Key: "upserted", Value: up.Lookup("_id")}}
		if returnNew {
			value = up
		}
	case len(res.Matched) > 0:
		leo = bson.D{{Key: "n", Value: int32(1)}, {Key: "updatedExisting", Value: true}}
		value = raw(res.Matched[0])
		if returnNew && len(res.Modified) > 0 {
			value = raw(res.Modified[0])
		}
	default:
		leo = bson.D{{Key: "n", Value: int32(0)}, {Key: "updatedExisting", Value: false}}
	}
	return leo, value
}

// countGroup reads the one $group stage aggregate supports, {_id:
// <constant>, <field>: {$sum: 1}}, and returns the field's name.
func countGroup(v bson.RawValue) (string, error) {
	d, _ := v.DocumentOK()
	els := mustElements(d)
	ok := len(els) == 2 && els[0].Key() == "_id"
	var group string
	if ok {
		sum, isDoc := els[1].Value().DocumentOK()
		n, isNum := number(sum.Lookup("$sum"))
		ok = isDoc && isNum && n == 1 && len(mustElements(sum)) == 1 && els[0].Value().Type != bson.TypeString
		group = els[1].Key()
	}
	if !ok {
		return "", unsupported("$group other than {_id: <constant>, <field>: {$sum: 1}}")
	}
	return group, nil
}

func (s *Server) aggregate(r *request) (bson.D, error) {
	stages, err := r.docs("pipeline")
	if err != nil {
		return nil, err
	}
	if len(stages) > 0 && firstKey(stages[0]) == "$changeStream" {
		if r.inTxn {
			return nil, cmdErr(codeOperationNotSupportedInTxn, "OperationNotSupportedInTransaction", "$changeStream is not allowed in a transaction")
		}
		return s.openStream(r, stages)
	}
	h, err := r.handle()
	if err != nil {
		return nil, err
	}
	filter, _ := kit(nil)
	var sort bsonkit.Doc
	var skip, limit int64
	var group string
	order := 0
	for _, st := range stages {
		name := firstKey(st)
		v := st.Lookup(name)
		rank := map[string]int{"$match": 1, "$sort": 2, "$skip": 3, "$limit": 4, "$group": 5}[name]
		if rank == 0 || rank <= order {
			return nil, unsupported("the aggregation stage %s here (it supports $match, $sort, $skip, $limit and a counting $group, in that order, and $changeStream)", name)
		}
		order = rank
		switch name {
		case "$match":
			d, _ := v.DocumentOK()
			if filter, err = kit(d); err != nil {
				return nil, err
			}
		case "$sort":
			d, _ := v.DocumentOK()
			if sort, err = kit(d); err != nil {
				return nil, err
			}
		case "$skip":
			skip, _ = number(v)
		case "$limit":
			limit, _ = number(v)
		case "$group":
			if group, err = countGroup(v); err != nil {
				return nil, err
			}
		}
	}
	var docs []bson.Raw
	if _, err := s.read(r, func(txn *lungo.Transaction) (bson.D, error) {
		res, err := txn.Find(h, filter, sort, int(skip), int(limit))
		if err != nil {
			return nil, err
		}
		if group != "" {
			if len(res.Matched) > 0 {
				d, _ := bson.Marshal(bson.D{{Key: "_id", Value: int32(1)}, {Key: group, Value: int32(len(res.Matched))}})
				docs = append(docs, d)
			}
			return nil, nil
		}
		for _, d := range res.Matched {
			docs = append(docs, raw(d))
		}
		return nil, nil
	}); err != nil {
		return nil, err
	}
	batch := 0
	if c, ok := r.doc("cursor"); ok {
		n, _ := number(c.Lookup("batchSize"))
		batch = int(n)
	}
	return s.cursorReply(h, docs, batch, false), nil
}

func (s *Server) create(r *request) (bson.D, error) {
	h, err := r.handle()
	if err != nil {
		return nil, err
	}
	return s.write(r, func(txn *lungo.Transaction) (bson.D, error) {
		if txn.Catalog().Namespaces[h] != nil {
			return nil, cmdErr(codeNamespaceExists, "NamespaceExists", "Collection "+h.String()+" already exists.")
		}
		return bson.D{}, txn.Create(h)
	})
}

func (s *Server) createIndexes(r *request) (bson.D, error) {
	h, err := r.handle()
	if err != nil {
		return nil, err
	}
	specs, err := r.docs("indexes")
	if err != nil {
		return nil, err
	}
	type spec struct {
		name string
		cfg  mongokit.IndexConfig
	}
	var list []spec
	for _, sp := range specs {
		var x spec
		for _, el := range mustElements(sp) {
			switch el.Key() {
			case "key":
				d, _ := el.Value().DocumentOK()
				if x.cfg.Key, err = kit(d); err != nil {
					return nil, err
				}
			case "name":
				x.name, _ = el.Value().StringValueOK()
			case "unique":
				x.cfg.Unique, _ = el.Value().BooleanOK()
			case "partialFilterExpression":
				d, _ := el.Value().DocumentOK()
				if x.cfg.Partial, err = kit(d); err != nil {
					return nil, err
				}
			case "expireAfterSeconds":
				n, _ := number(el.Value())
				x.cfg.Expiry = time.Duration(n) * time.Second
			case "v", "background":
			default:
				return nil, unsupported("the index option %q", el.Key())
			}
		}
		if x.cfg.Key == nil || x.name == "" {
			return nil, badValue("an index needs a key and a name")
		}
		list = append(list, x)
	}
	return s.write(r, func(txn *lungo.Transaction) (bson.D, error) {
		created := txn.Catalog().Namespaces[h] == nil
		before, _ := txn.ListIndexes(h)
		for _, x := range list {
			if _, err := txn.CreateIndex(h, x.name, x.cfg); err != nil {
				return nil, cmdErr(86, "IndexKeySpecsConflict", err.Error())
			}
		}
		after, _ := txn.ListIndexes(h)
		nb := len(before)
		if created {
			nb = 1
		}
		return bson.D{{Key: "createdCollectionAutomatically", Value: created},
			{Key: "numIndexesBefore", Value: int32(nb)}, {Key: "numIndexesAfter", Value: int32(len(after))}}, nil
	})
}

func (s *Server) listCollections(r *request) (bson.D, error) {
	fr, _ := r.doc("filter")
	filter, err := kit(fr)
	if err != nil {
		return nil, err
	}
	var docs []bson.Raw
	if _, err := s.read(r, func(txn *lungo.Transaction) (bson.D, error) {
		list, err := txn.ListCollections(lungo.Handle{r.db, ""}, filter)
		if err != nil {
			return nil, err
		}
		for _, d := range list {
			docs = append(docs, raw(d))
		}
		return nil, nil
	}); err != nil {
		return nil, err
	}
	return s.cursorReply(lungo.Handle{r.db, "$cmd.listCollections"}, docs, 0, false), nil
}

func (s *Server) listIndexes(r *request) (bson.D, error) {
	h, err := r.handle()
	if err != nil {
		return nil, err
	}
	var docs []bson.Raw
	if _, err := s.read(r, func(txn *lungo.Transaction) (bson.D, error) {
		if txn.Catalog().Namespaces[h] == nil {
			return nil, cmdErr(codeNamespaceNotFound, "NamespaceNotFound", "ns does not exist: "+h.String())
		}
		list, err := txn.ListIndexes(h)
		if err != nil {
			return nil, err
		}
		for _, d := range list {
			docs = append(docs, raw(d))
		}
		return nil, nil
	}); err != nil {
		return nil, err
	}
	return s.cursorReply(h, docs, 0, false), nil
}

func (s *Server) listDatabases(r *request) (bson.D, error) {
	fr, _ := r.doc("filter")
	filter, err := kit(fr)
	if err != nil {
		return nil, err
	}
	return s.read(r, func(txn *lungo.Transaction) (bson.D, error) {
		list, err := txn.ListDatabases(filter)
		if err != nil {
			return nil, err
		}
		dbs := bson.A{}
		for _, d := range list {
			dbs = append(dbs, raw(d))
		}
		return bson.D{{Key: "databases", Value: dbs}, {Key: "totalSize", Value: int64(0)}}, nil
	})
}

func (s *Server) drop(r *request) (bson.D, error) {
	h, err := r.handle()
	if err != nil {
		return nil, err
	}
	return s.write(r, func(txn *lungo.Transaction) (bson.D, error) {
		return bson.D{{Key: "ns", Value: h.String()}}, txn.Drop(h)
	})
}

func (s *Server) dropDatabase(r *request) (bson.D, error) {
	if r.db == "" || r.db == "admin" || r.db == "local" {
		return nil, badValue("cannot drop database %q", r.db)
	}
	return s.write(r, func(txn *lungo.Transaction) (bson.D, error) {
		return bson.D{{Key: "dropped", Value: r.db}}, txn.Drop(lungo.Handle{r.db, ""})
	})
}

// renameCollection moves a collection within a database, as the admin
// command does: the documents and indexes move at once, a change stream on
// the old name gets a rename event and is invalidated, and the new name's
// watchers see no inserts.
func (s *Server) renameCollection(r *request) (bson.D, error) {
	if r.db != "admin" {
		return nil, cmdErr(13, "Unauthorized", "renameCollection may only be run against the admin database.")
	}
	split := func(ns string) (lungo.Handle, bool) {
		db, coll, ok := strings.Cut(ns, ".")
		return lungo.Handle{db, coll}, ok && db != "" && coll != ""
	}
	from, ok1 := split(r.str("renameCollection"))
	to, ok2 := split(r.str("to"))
	if !ok1 || !ok2 {
		return nil, badValue("renameCollection and to must be full namespaces (db.collection)")
	}
	if from[0] != to[0] {
		return nil, unsupported("renaming a collection to another database")
	}
	dropTarget := r.flag("dropTarget")
	return s.write(r, func(txn *lungo.Transaction) (bson.D, error) {
		src := txn.Catalog().Namespaces[from]
		if src == nil {
			return nil, cmdErr(codeNamespaceNotFound, "NamespaceNotFound", "Source collection "+from.String()+" does not exist")
		}
		if txn.Catalog().Namespaces[to] != nil {
			if !dropTarget {
				return nil, cmdErr(codeNamespaceExists, "NamespaceExists", "Target collection "+to.String()+" exists")
			}
			if err := txn.Drop(to); err != nil {
				return nil, err
			}
		}
		moved := src.Clone()
		// Drop clones the catalog and appends a drop event to its own copy
		// of the oplog; that event, made in this transaction, becomes the
		// rename event, and the moved collection joins the copy.
		if err := txn.Drop(from); err != nil {
			return nil, err
		}
		cat := txn.Catalog()
		oplog := cat.Namespaces[lungo.Oplog].Documents.List
		ev := oplog[len(oplog)-1]
		for i := range *ev {
			if (*ev)[i].Key == "operationType" {
				(*ev)[i].Value = "rename"
			}
		}
		*ev = append(*ev, v1bson.E{Key: "to", Value: v1bson.D{{Key: "db", Value: to[0]}, {Key: "coll", Value: to[1]}}})
		cat.Namespaces[to] = moved
		return bson.D{}, nil
	})
}

// filterAndSort reads a command's filter (under the field key: find's
// "filter", findAndModify's "query"; absent means every document) and its
// optional sort, as lungo's documents.
func (r *request) filterAndSort(key string) (filter, sort bsonkit.Doc, err error) {
	fr, _ := r.doc(key)
	if filter, err = kit(fr); err != nil {
		return nil, nil, err
	}
	if sr, ok := r.doc("sort"); ok && len(mustElements(sr)) > 0 {
		if sort, err = kit(sr); err != nil {
			return nil, nil, err
		}
	}
	return filter, sort, nil
}
