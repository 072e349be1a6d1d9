package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// sessionCookie is the name of the author's sign-in cookie.
const sessionCookie = "blog_author"

// sessions issues and checks author sign-ins. An author signs in by typing
// the API token once; the browser then holds a cookie with an expiry time
// and an HMAC of it under a key derived from the token: not the token, and
// useless once it expires or the token changes. Nothing is stored, so
// several web processes agree and a restart signs nobody out.
type sessions struct {
	enabled bool
	token   [32]byte // sha256 of the token, for a constant-time comparison
	key     []byte
	ttl     time.Duration
}

func newSessions(token string, ttl time.Duration) sessions {
	if ttl <= 0 {
		ttl = 12 * time.Hour
	}
	if token == "" {
		return sessions{ttl: ttl}
	}
	mac := hmac.New(sha256.New, []byte(token))
	mac.Write([]byte("blog web author session v1"))
	return sessions{enabled: true, token: sha256.Sum256([]byte(token)), key: mac.Sum(nil), ttl: ttl}
}

// check reports whether token is the API token, in constant time.
func (s sessions) check(token string) bool {
	sum := sha256.Sum256([]byte(token))
	return s.enabled && subtle.ConstantTimeCompare(sum[:], s.token[:]) == 1
}

func (s sessions) sign(exp string) string {
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(exp))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// issue sets the sign-in cookie.
func (s sessions) issue(w http.ResponseWriter, r *http.Request, now time.Time) {
	exp := strconv.FormatInt(now.Add(s.ttl).Unix(), 10)
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: exp + "." + s.sign(exp), Path: "/",
		MaxAge: int(s.ttl.Seconds()), HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode,
	})
}

// clear removes the sign-in cookie.
func (s sessions) clear(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode,
	})
}

// valid reports whether r carries an unexpired sign-in cookie of ours.
func (s sessions) valid(r *http.Request, now time.Time) bool {
	if !s.enabled {
		return false
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return false
	}
	exp, sig, ok := strings.Cut(c.Value, ".")
	if !ok || !hmac.Equal([]byte(sig), []byte(s.sign(exp))) {
		return false
	}
	n, err := strconv.ParseInt(exp, 10, 64)
	return err == nil && now.Unix() < n
}
