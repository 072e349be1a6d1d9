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

// lockWait bounds how long a transaction waits for lungo's single write
// lock before it fails with a transient LockTimeout, which the driver's
// transaction helper retries.
const lockWait = 5 * time.Second

type txnState int

const (
	txnNone txnState = iota
	txnActive
	txnCommitted
	txnAborted
)

// session is a logical session (lsid): its transaction number and state,
// and the lungo transaction of an active multi-document transaction.
type session struct {
	s   *Server
	key string
	mu  sync.Mutex
	// use is held while a command runs on the session's transaction, and
	// by aborts from other goroutines (the reaper, a closed connection,
	// endSessions), because a lungo transaction is not safe for concurrent
	// use. Lock order: use, then mu.
	use      sync.Mutex
	number   int64
	state    txnState
	txn      *lungo.Transaction
	started  time.Time
	lastConn *conn
	used     atomic.Int64 // unix nanoseconds of the last command, for the reaper
}

func (s *Server) session(key string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.sessions[key]
	if !ok {
		ss = &session{s: s, key: key}
		ss.used.Store(time.Now().UnixNano())
		s.sessions[key] = ss
	}
	return ss
}

// bindSession attaches the request to its session and, for a command of a
// multi-document transaction (autocommit:false), to the transaction,
// starting it on startTransaction.
func (s *Server) bindSession(r *request, cmd command) error {
	lsid, ok := r.doc("lsid")
	if !ok {
		if r.hasField("autocommit") || r.hasField("txnNumber") {
			return badValue("txnNumber and autocommit need a session (lsid)")
		}
		return nil
	}
	id, err := lsid.LookupErr("id")
	if err != nil {
		return badValue("lsid has no id")
	}
	r.sess = s.session(string(id.Value))
	r.sess.used.Store(time.Now().UnixNano())
	r.txnNumber, r.hasTxnNum = r.num("txnNumber")
	if !r.hasField("autocommit") {
		return nil
	}
	if !r.flagPresent("autocommit") {
		return badValue("autocommit must be false when given")
	}
	if !r.hasTxnNum {
		return badValue("a transaction needs a txnNumber")
	}
	if !cmd.inTxn {
		return cmdErr(codeOperationNotSupportedInTxn, "OperationNotSupportedInTransaction",
			fmt.Sprintf("Cannot run '%s' in a multi-document transaction.", r.name))
	}
	if Mode(s.mode.Load()) != Primary {
		return cmdErr(20, "IllegalOperation", "Transaction numbers are only allowed on a replica set member or mongos")
	}
	r.inTxn = true
	return r.sess.enter(r)
}

func noSuchTransaction(n int64) *cmdError {
	return &cmdError{Code: codeNoSuchTransaction, Name: "NoSuchTransaction",
		Msg: fmt.Sprintf("Transaction with txnNumber %d has been aborted or was never started.", n), Labels: []string{"TransientTransactionError"}}
}

func (ss *session) enter(r *request) error {
	n := r.txnNumber
	if r.flag("startTransaction") {
		ss.mu.Lock()
		if n < ss.number || (n == ss.number && ss.state != txnNone) {
			ss.mu.Unlock()
			return cmdErr(codeTransactionTooOld, "TransactionTooOld",
				fmt.Sprintf("Cannot start transaction %d on session because a newer transaction %d has already started", n, ss.number))
		}
		ss.abortLocked()
		ss.number, ss.state = n, txnNone
		ss.mu.Unlock()
		ctx, cancel := context.WithTimeout(r.ctx, lockWait)
		txn, err := ss.s.engine.Begin(ctx, true)
		cancel()
		if err != nil {
			if ctx.Err() != nil && r.ctx.Err() == nil {
				return &cmdError{Code: codeLockTimeout, Name: "LockTimeout", Labels: []string{"TransientTransactionError"},
					Msg: "Unable to acquire the write lock within " + lockWait.String() + " (mongowire runs one write transaction at a time)"}
			}
			return lungoErr(err)
		}
		ss.mu.Lock()
		defer ss.mu.Unlock()
		if ss.number != n {
			ss.s.engine.Abort(txn)
			return noSuchTransaction(n)
		}
		ss.txn, ss.state, ss.started, ss.lastConn = txn, txnActive, time.Now(), r.c
		r.txn = txn
		return nil
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if r.name == "commitTransaction" || r.name == "abortTransaction" {
		ss.lastConn = r.c
		return nil // decided by the command itself
	}
	if n != ss.number || ss.state != txnActive {
		return noSuchTransaction(n)
	}
	ss.lastConn = r.c
	r.txn = ss.txn
	return nil
}

// abortLocked aborts an active transaction; ss.mu is held.
func (ss *session) abortLocked() {
	if ss.state == txnActive && ss.txn != nil {
		ss.s.engine.Abort(ss.txn)
	}
	if ss.state == txnActive {
		ss.state = txnAborted
	}
	ss.txn = nil
}

// abortTxn aborts txn if it is still the session's active transaction.
func (ss *session) abortTxn(txn *lungo.Transaction) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.txn == txn {
		ss.abortLocked()
	}
}

func (ss *session) abort() {
	ss.use.Lock()
	defer ss.use.Unlock()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.abortLocked()
}

func (ss *session) abortIfOlder(t time.Time) {
	ss.use.Lock()
	defer ss.use.Unlock()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.state == txnActive && ss.started.Before(t) {
		ss.abortLocked()
	}
}

func (ss *session) abortIfLastOn(c *conn) {
	ss.use.Lock()
	defer ss.use.Unlock()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.state == txnActive && ss.lastConn == c {
		ss.abortLocked()
	}
}

func (s *Server) commitTransaction(r *request) (bson.D, error) {
	ss := r.sess
	ss.mu.Lock()
	defer ss.mu.Unlock()
	switch {
	case r.txnNumber == ss.number && ss.state == txnCommitted:
		return bson.D{}, nil // a retried commit
	case r.txnNumber != ss.number || ss.state != txnActive:
		return nil, noSuchTransaction(r.txnNumber)
	}
	txn := ss.txn
	ss.txn = nil
	if err := s.engine.Commit(txn); err != nil {
		ss.state = txnAborted
		return nil, lungoErr(err)
	}
	ss.state = txnCommitted
	return bson.D{}, nil
}

func (s *Server) abortTransaction(r *request) (bson.D, error) {
	ss := r.sess
	ss.mu.Lock()
	defer ss.mu.Unlock()
	switch {
	case r.txnNumber == ss.number && ss.state == txnCommitted:
		return nil, cmdErr(256, "TransactionCommitted", "Transaction has been committed.")
	case r.txnNumber != ss.number || ss.state != txnActive:
		return nil, noSuchTransaction(r.txnNumber)
	}
	ss.abortLocked()
	return bson.D{}, nil
}

func (s *Server) endSessions(r *request) (bson.D, error) {
	ids, err := r.docs("endSessions")
	if err != nil {
		return nil, err
	}
	for _, d := range ids {
		id, err := d.LookupErr("id")
		if err != nil {
			continue
		}
		key := string(id.Value)
		s.mu.Lock()
		ss := s.sessions[key]
		delete(s.sessions, key)
		s.mu.Unlock()
		if ss != nil {
			ss.abort()
		}
	}
	return bson.D{}, nil
}
