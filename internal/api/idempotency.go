package api

import (
	"bytes"
	"container/list"
	"crypto/sha256"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// IdempotencyKeyHeader is the request header that makes a POST safe to
// retry, from the IETF httpapi working group's draft "The Idempotency-Key
// HTTP Header Field" (draft-ietf-httpapi-idempotency-key-header).
const IdempotencyKeyHeader = "Idempotency-Key"

// Idempotency retention defaults: how long an answer is kept for replay,
// and how many bytes of answers one process keeps at most.
const (
	DefaultIdempotencyTTL      = 24 * time.Hour
	DefaultIdempotencyMaxBytes = 64 << 20
	maxIdempotencyKeyLen       = 255
	idempotencyBodyLimit       = 1 << 20 // as the JSON decoder's bound
)

// IdempotencyKeys remembers the answers to requests that carried an
// Idempotency-Key, so that a client retrying after a lost response gets the
// first answer again instead of creating a second resource. Following the
// draft:
//
//   - same key, same request (method, path, query and body): the first
//     answer is replayed (status, Content-Type, Location and body);
//   - same key, another request: 422, the key is refused;
//   - same key while the first request is still being served: 409.
//
// Keys are scoped to the method and path, kept for TTL after their answer
// (24 h by default), and only answers worth replaying are kept: 2xx and
// 4xx other than 408, 409 and 429. A 5xx, a rate limit or a panic releases
// the key, so a retry runs again.
//
// The keys live in this process's memory, bounded by MaxBytes of stored
// answers (the oldest go first): they do not survive a restart and are not
// shared between replicas, so a retry that reaches another replica, or
// arrives after a restart, runs again. Run one replica per service, or
// route retries to the same one, when that matters.
type IdempotencyKeys struct {
	// TTL is how long an answer is replayed (0: DefaultIdempotencyTTL).
	TTL time.Duration
	// MaxBytes bounds the stored answers (0: DefaultIdempotencyMaxBytes).
	MaxBytes int
	// Now is the clock (nil: time.Now), replaceable in tests.
	Now func() time.Time

	mu      sync.Mutex
	entries map[string]*list.Element // of *idemEntry, oldest first in order
	order   list.List
	bytes   int
}

type idemEntry struct {
	scope       string
	fingerprint [sha256.Size]byte
	done        bool
	expires     time.Time
	status      int
	header      http.Header
	body        []byte
}

// Middleware returns the Middleware applying k to a route. Requests without
// the header pass through untouched.
func (k *IdempotencyKeys) Middleware() Middleware {
	return func(next http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { k.serve(w, r, next) }
	}
}

// serve applies k to one request: see IdempotencyKeys.
func (k *IdempotencyKeys) serve(w http.ResponseWriter, r *http.Request, next http.HandlerFunc) {
	raw, ok := r.Header[http.CanonicalHeaderKey(IdempotencyKeyHeader)]
	if !ok {
		next(w, r)
		return
	}
	key, ok := parseIdempotencyKey(raw)
	if !ok {
		WriteProblem(w, r, NewProblem(http.StatusBadRequest, badIdempotencyKey))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, idempotencyBodyLimit+1))
	if err != nil {
		WriteProblem(w, r, NewProblem(http.StatusBadRequest, "The request body could not be read."))
		return
	}
	if len(body) > idempotencyBodyLimit {
		// Too large to be accepted anyway: let the handler refuse it.
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
		next(w, r)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	fp := fingerprint(r, body)
	scope := r.Method + " " + r.URL.Path + " " + key

	k.mu.Lock()
	k.expire()
	if el, ok := k.entries[scope]; ok {
		e := el.Value.(*idemEntry)
		k.mu.Unlock()
		replay(w, r, e, fp)
		return
	}
	e := &idemEntry{scope: scope, fingerprint: fp}
	k.entries[scope] = k.order.PushBack(e)
	k.mu.Unlock()

	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	stored := false
	defer func() {
		if !stored { // a panic or an answer not worth replaying
			k.mu.Lock()
			k.remove(k.entries[scope])
			k.mu.Unlock()
		}
	}()
	next(rec, r)
	if !replayable(rec.status) || rec.overflow {
		return
	}
	k.store(e, rec)
	stored = true
}

// fingerprint identifies a request by its method, URI and body, so that a
// key reused for another request is told apart.
func fingerprint(r *http.Request, body []byte) [sha256.Size]byte {
	h := sha256.New()
	io.WriteString(h, r.Method+" "+r.URL.RequestURI()+"\n")
	h.Write(body)
	var fp [sha256.Size]byte
	h.Sum(fp[:0])
	return fp
}

// replay answers a request whose key is known: with the stored answer when
// the request is the same (fingerprint fp) and its answer is done; else with
// the problem the draft names (422 for another request, 409 while the first
// is in flight).
func replay(w http.ResponseWriter, r *http.Request, e *idemEntry, fp [sha256.Size]byte) {
	switch {
	case e.fingerprint != fp:
		WriteProblem(w, r, NewProblem(http.StatusUnprocessableEntity,
			"This Idempotency-Key was already used with another request; use a new key for a new request."))
	case !e.done:
		WriteProblem(w, r, NewProblem(http.StatusConflict,
			"A request with this Idempotency-Key is still being processed; retry later."))
	default:
		for name, vs := range e.header {
			w.Header()[name] = vs
		}
		w.WriteHeader(e.status)
		_, _ = w.Write(e.body)
	}
}

// store keeps rec's answer in e for replays until the TTL, then evicts the
// oldest answers beyond the byte budget (never e itself).
func (k *IdempotencyKeys) store(e *idemEntry, rec *recorder) {
	k.mu.Lock()
	defer k.mu.Unlock()
	e.done, e.status, e.body = true, rec.status, rec.body.Bytes()
	e.expires = k.now().Add(k.ttl())
	e.header = http.Header{}
	for _, name := range []string{"Content-Type", "Location", "Link"} {
		if vs := rec.Header().Values(name); len(vs) > 0 {
			e.header[name] = vs
		}
	}
	k.bytes += len(e.body)
	for k.bytes > k.maxBytes() && k.order.Len() > 1 {
		oldest := k.order.Front()
		if oldest.Value.(*idemEntry) == e {
			break
		}
		k.remove(oldest)
	}
}

// expire drops the answers past their time; the caller holds k.mu. The
// list is in insertion order, which is close enough to expiry order for an
// amortised sweep: an entry still in flight or not yet expired stops it.
func (k *IdempotencyKeys) expire() {
	if k.entries == nil {
		k.entries = map[string]*list.Element{}
	}
	now := k.now()
	for el := k.order.Front(); el != nil; el = k.order.Front() {
		e := el.Value.(*idemEntry)
		if !e.done || now.Before(e.expires) {
			return
		}
		k.remove(el)
	}
}

// remove forgets one entry; the caller holds k.mu.
func (k *IdempotencyKeys) remove(el *list.Element) {
	if el == nil {
		return
	}
	e := el.Value.(*idemEntry)
	if k.entries[e.scope] == el {
		delete(k.entries, e.scope)
	}
	k.order.Remove(el)
	k.bytes -= len(e.body)
}

func (k *IdempotencyKeys) now() time.Time {
	if k.Now != nil {
		return k.Now()
	}
	return time.Now()
}

func (k *IdempotencyKeys) ttl() time.Duration {
	if k.TTL > 0 {
		return k.TTL
	}
	return DefaultIdempotencyTTL
}

func (k *IdempotencyKeys) maxBytes() int {
	if k.MaxBytes > 0 {
		return k.MaxBytes
	}
	return DefaultIdempotencyMaxBytes
}

// replayable reports whether an answer is the request's lasting outcome:
// success, or a client error that the same request would get again.
func replayable(status int) bool {
	switch {
	case status >= 200 && status < 300:
		return true
	case status == http.StatusRequestTimeout, status == http.StatusConflict, status == http.StatusTooManyRequests:
		return false
	default:
		return status >= 400 && status < 500
	}
}

// parseIdempotencyKey reads the header's value: the draft makes it a
// Structured Field String (RFC 8941, `"..."`); a bare token is accepted
// too, as many clients send one. It must be 1 to 255 printable ASCII
// characters and given once; ok is false when it is not.
func parseIdempotencyKey(vals []string) (key string, ok bool) {
	if len(vals) != 1 {
		return "", false
	}
	v := strings.TrimSpace(vals[0])
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
		if strings.ContainsAny(v, `"\`) { // escapes: not worth supporting in a key
			return "", false
		}
	}
	if v == "" || len(v) > maxIdempotencyKeyLen {
		return "", false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return "", false
		}
	}
	return v, true
}

// badIdempotencyKey is the problem detail of an invalid Idempotency-Key.
const badIdempotencyKey = `The Idempotency-Key header must be given once, as a string of 1 to 255 printable ASCII characters, such as "8e03978e-40d5-43e8-bc93-6894a57f9324".`

// recorder passes an answer through while keeping a copy for replay, up to
// the body limit (beyond it the answer is not kept).
type recorder struct {
	http.ResponseWriter
	status   int
	wrote    bool
	body     bytes.Buffer
	overflow bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	if !r.overflow {
		if r.body.Len()+len(b) > idempotencyBodyLimit {
			r.overflow = true
			r.body.Reset()
		} else {
			r.body.Write(b)
		}
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
