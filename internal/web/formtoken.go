package web

import (
	"container/list"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"
)

// One submit, one comment. Each comment form carries a one-time token that
// this service issued when it rendered the form. The first POST with it
// spends it and creates the comment; a second POST with the same token (a
// double click, a resent form, a browser retry) creates nothing: it waits
// for the first to finish and is sent where the first was. The token also
// travels to the comments API as the request's Idempotency-Key, so a retry
// of the API call cannot store the comment twice either.
//
// Tokens live in this process's memory: a form rendered by one replica of
// the web service must be sent to the same one (or it is shown again with a
// fresh token, the text kept), and a restart invalidates open forms the
// same way.

// Form token limits: how long a form stays valid, and how many tokens one
// process keeps (the oldest are forgotten first).
const (
	formTokenTTL  = 6 * time.Hour
	maxFormTokens = 100_000
)

// formTokens is the store of issued tokens.
type formTokens struct {
	mu      sync.Mutex
	entries map[string]*list.Element // of *formToken, oldest first in order
	order   list.List
	now     func() time.Time
}

// formToken is one issued token: unused, being spent, or spent with the
// place its submission led to.
type formToken struct {
	value    string
	issued   time.Time
	spending bool
	done     chan struct{} // closed when the spending request has an outcome
	location string        // where the spending request was sent; "" if it failed
}

func newFormTokens() *formTokens {
	return &formTokens{entries: map[string]*list.Element{}, now: time.Now}
}

// issue returns a new token.
func (f *formTokens) issue() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	v := hex.EncodeToString(b[:])
	f.mu.Lock()
	defer f.mu.Unlock()
	f.expire()
	for f.order.Len() >= maxFormTokens {
		f.remove(f.order.Front())
	}
	f.entries[v] = f.order.PushBack(&formToken{value: v, issued: f.now(), done: make(chan struct{})})
	return v
}

// spend claims token v for one submission. It returns first=true when this
// request is the one to act (then it must call settle); otherwise, for a
// token already spent or being spent, the token of that first submission,
// whose outcome the caller may wait for. ok is false for a token that was
// never issued or has expired.
func (f *formTokens) spend(v string) (t *formToken, first, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.expire()
	el, found := f.entries[v]
	if !found {
		return nil, false, false
	}
	t = el.Value.(*formToken)
	if t.spending {
		return t, false, true
	}
	t.spending = true
	return t, true, true
}

// settle records where the submission that spent t was sent. An empty
// location (the submission failed: the form is shown again) frees the
// token for the next try; the waiting duplicates then show the form too.
func (f *formTokens) settle(t *formToken, location string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t.location = location
	close(t.done)
	if location == "" {
		t.spending = false
		t.done = make(chan struct{})
	}
}

// expire forgets tokens older than formTokenTTL; the caller holds f.mu.
func (f *formTokens) expire() {
	cut := f.now().Add(-formTokenTTL)
	for el := f.order.Front(); el != nil && el.Value.(*formToken).issued.Before(cut); el = f.order.Front() {
		f.remove(el)
	}
}

func (f *formTokens) remove(el *list.Element) {
	delete(f.entries, el.Value.(*formToken).value)
	f.order.Remove(el)
}
