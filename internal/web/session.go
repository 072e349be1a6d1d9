package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"blog/internal/api"
)

// sessionCookie is the name of the author's sign-in cookie.
const sessionCookie = "blog_author"

// Session defaults.
const (
	// DefaultSessionTTL is the absolute lifetime of a sign-in.
	DefaultSessionTTL = 12 * time.Hour
	// DefaultSessionIdle ends a sign-in that has not been used for this long.
	DefaultSessionIdle = time.Hour
	// sessionTouch is how stale the cookie's last-use time may grow before
	// a request refreshes it (so not every request sets a cookie).
	sessionTouch = time.Minute
	// maxRevoked caps the revocation list; only signed-in authors add to it,
	// and entries leave when their session would have expired anyway.
	maxRevoked = 10_000
)

// sessions issues and checks author sign-ins. An author signs in by typing
// the API token once; the browser then holds a cookie naming a random
// session id, when it was issued and when it was last used, with an HMAC of
// all three under a key derived from the token (not the token, and useless
// once the token changes). A session ends after ttl, after idle without
// use, or when its author signs out: signing out puts the session id on a
// revocation list, kept in a small file (see revocations) so that a restart
// of the web front end does not bring the session back.
type sessions struct {
	enabled bool
	token   [32]byte // sha256 of the token, for a constant-time comparison
	key     []byte
	ttl     time.Duration
	idle    time.Duration
	proxies *api.Proxies // whose X-Forwarded-Proto says the browser used TLS
	revoked *revocations
}

func newSessions(token string, ttl, idle time.Duration, proxies *api.Proxies, revoked *revocations) *sessions {
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	if idle <= 0 {
		idle = DefaultSessionIdle
	}
	if revoked == nil {
		revoked = &revocations{m: map[string]int64{}}
	}
	s := &sessions{ttl: ttl, idle: idle, proxies: proxies, revoked: revoked}
	if token == "" {
		return s
	}
	mac := hmac.New(sha256.New, []byte(token))
	mac.Write([]byte("blog web author session v2"))
	s.enabled, s.token, s.key = true, sha256.Sum256([]byte(token)), mac.Sum(nil)
	return s
}

// check reports whether token is the API token, in constant time.
func (s *sessions) check(token string) bool {
	sum := sha256.Sum256([]byte(token))
	return s.enabled && subtle.ConstantTimeCompare(sum[:], s.token[:]) == 1
}

func (s *sessions) sign(payload string) string {
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// session is a decoded sign-in cookie.
type session struct {
	id           string
	issued, seen int64 // Unix seconds
}

func (s *sessions) set(w http.ResponseWriter, r *http.Request, ss session) {
	payload := ss.id + "." + strconv.FormatInt(ss.issued, 10) + "." + strconv.FormatInt(ss.seen, 10)
	left := ss.issued + int64(s.ttl.Seconds()) - ss.seen
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: payload + "." + s.sign(payload), Path: "/",
		MaxAge: int(max(left, 1)), HttpOnly: true, Secure: s.proxies.HTTPS(r), SameSite: http.SameSiteLaxMode,
	})
}

// issue starts a new session and sets its cookie.
func (s *sessions) issue(w http.ResponseWriter, r *http.Request, now time.Time) {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	s.set(w, r, session{id: base64.RawURLEncoding.EncodeToString(b[:]), issued: now.Unix(), seen: now.Unix()})
}

// clear ends r's session: its id is revoked server-side (so a copy of the
// cookie is worthless from now on) and the cookie removed.
func (s *sessions) clear(w http.ResponseWriter, r *http.Request) {
	if ss, ok := s.parse(r); ok {
		s.revoked.add(ss.id, ss.issued+int64(s.ttl.Seconds()), time.Now())
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: s.proxies.HTTPS(r), SameSite: http.SameSiteLaxMode,
	})
}

// parse returns r's session cookie if it is one of ours (signature only).
func (s *sessions) parse(r *http.Request) (session, bool) {
	if !s.enabled {
		return session{}, false
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return session{}, false
	}
	i := strings.LastIndexByte(c.Value, '.')
	if i < 0 || !hmac.Equal([]byte(c.Value[i+1:]), []byte(s.sign(c.Value[:i]))) {
		return session{}, false
	}
	parts := strings.Split(c.Value[:i], ".")
	if len(parts) != 3 {
		return session{}, false
	}
	issued, err1 := strconv.ParseInt(parts[1], 10, 64)
	seen, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil {
		return session{}, false
	}
	return session{id: parts[0], issued: issued, seen: seen}, true
}

// current returns r's session if it is valid at now: ours, within its
// absolute and idle lifetimes, and not signed out.
func (s *sessions) current(r *http.Request, now time.Time) (session, bool) {
	ss, ok := s.parse(r)
	if !ok {
		return session{}, false
	}
	t := now.Unix()
	if t >= ss.issued+int64(s.ttl.Seconds()) || t >= ss.seen+int64(s.idle.Seconds()) || s.revoked.has(ss.id) {
		return session{}, false
	}
	return ss, true
}

// valid reports whether r carries a valid sign-in cookie of ours.
func (s *sessions) valid(r *http.Request, now time.Time) bool {
	_, ok := s.current(r, now)
	return ok
}

// touch wraps next so that a request with a valid session whose last use
// is more than sessionTouch ago gets its cookie renewed: use keeps a
// session alive up to its absolute lifetime, disuse ends it after idle.
func (s *sessions) touch(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		if ss, ok := s.current(r, now); ok && now.Unix()-ss.seen >= int64(sessionTouch.Seconds()) && r.URL.Path != "/logout" {
			ss.seen = now.Unix()
			s.set(w, r, ss)
		}
		next.ServeHTTP(w, r)
	})
}

// revocations is the list of signed-out session ids, each with the Unix
// time its session would expire anyway (after which it is dropped). With a
// path it is kept in that file (JSON, replaced atomically on each change),
// so signing out survives a restart; without one, or when the file cannot
// be written, it lives in memory only and says so in the log.
type revocations struct {
	mu   sync.Mutex
	m    map[string]int64
	path string
	log  *slog.Logger
}

// loadRevocations reads the list at path (a missing file is an empty list).
func loadRevocations(path string, log *slog.Logger) (*revocations, error) {
	rv := &revocations{m: map[string]int64{}, path: path, log: log}
	if path == "" {
		return rv, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return rv, nil
	}
	if err != nil {
		return nil, fmt.Errorf("web: read signed-out sessions: %w", err)
	}
	if err := json.Unmarshal(b, &rv.m); err != nil {
		return nil, fmt.Errorf("web: signed-out sessions in %s: %w", path, err)
	}
	if rv.m == nil {
		rv.m = map[string]int64{}
	}
	return rv, nil
}

func (rv *revocations) has(id string) bool {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	_, ok := rv.m[id]
	return ok
}

// add revokes id until exp (Unix seconds), dropping expired entries, and
// saves the list.
func (rv *revocations) add(id string, exp int64, now time.Time) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	for k, e := range rv.m {
		if e <= now.Unix() {
			delete(rv.m, k)
		}
	}
	for len(rv.m) >= maxRevoked { // drop the soonest to expire
		first, fe := "", int64(0)
		for k, e := range rv.m {
			if first == "" || e < fe {
				first, fe = k, e
			}
		}
		delete(rv.m, first)
	}
	rv.m[id] = exp
	if rv.path == "" {
		return
	}
	if err := rv.save(); err != nil && rv.log != nil {
		rv.log.Error("signed-out session kept in memory only; a restart would bring it back", "err", err)
	}
}

func (rv *revocations) save() error {
	b, err := json.Marshal(rv.m)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(rv.path), ".revoked-*")
	if err != nil {
		return fmt.Errorf("save signed-out sessions: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("save signed-out sessions: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save signed-out sessions: %w", err)
	}
	if err := os.Rename(tmp.Name(), rv.path); err != nil {
		return fmt.Errorf("save signed-out sessions: %w", err)
	}
	return nil
}
