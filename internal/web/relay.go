package web

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"time"

	"blog/internal/api"
)

// Relay limits.
const (
	// relayWriteTimeout bounds one write to the browser: a client that
	// stops reading is let go instead of holding a goroutine.
	relayWriteTimeout = 10 * time.Second
	// maxEventBytes bounds one event read from the posts service (a
	// snapshot of 50 comments of 10 KB each, JSON-escaped, fits easily).
	maxEventBytes = 16 << 20
	// Backoff of reconnections to the posts service.
	relayMinBackoff = 100 * time.Millisecond
	relayMaxBackoff = 2 * time.Second
)

// events relays GET /posts/{id}/events from the posts service to the
// browser, one whole event at a time.
//
// The browser's Last-Event-ID (or the lastEventId query parameter, which
// the page's script uses when it opens a new EventSource itself) is passed
// on, so the posts service sends only what the page lacks. When the posts
// service goes away (a restart, a deploy), the relay keeps the browser's
// connection open, sending comment lines, and reconnects with the id of the
// last event it passed on: the page sees a pause, not an error, and then
// exactly the changes it missed.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !api.ValidID(id) {
		http.Error(w, "no such post", http.StatusNotFound)
		return
	}
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get("lastEventId")
	}
	if !eventID.MatchString(last) {
		last = "" // not an id the posts service made: start from a snapshot
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-s.done: // the server is shutting down
			cancel()
		case <-ctx.Done():
		}
	}()

	up, err := s.dial(ctx, id, last)
	if code := status(err); err != nil && code >= 400 && code < 500 {
		// No such post (or a bad request): say so, and the browser stops.
		http.Error(w, http.StatusText(code), code)
		return
	}

	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // lift the server's WriteTimeout for this stream
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	out := &sseWriter{w: w, rc: rc}
	if !out.send([]byte("retry: 1000\n\n")) {
		return
	}

	backoff := relayMinBackoff
	for {
		if up != nil {
			forwarded, gone, err := pump(out, up.Body, &last)
			up.Body.Close()
			if gone || errors.Is(err, errClient) || ctx.Err() != nil {
				return
			}
			if forwarded {
				backoff = relayMinBackoff
			}
			s.log.Debug("posts event stream ended; reconnecting", "post", id, "err", err)
		}
		// Keep the browser's connection (and its proxies) alive meanwhile.
		if !out.send([]byte(": reconnecting\n\n")) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, relayMaxBackoff)
		up, err = s.dial(ctx, id, last)
		if code := status(err); err != nil && code >= 400 && code < 500 {
			if code == http.StatusNotFound {
				out.send([]byte("event: gone\ndata: {\"_id\":\"" + id + "\"}\n\n"))
			}
			return
		}
	}
}

// dial opens the posts service's stream of a post.
func (s *Server) dial(ctx context.Context, id, last string) (*http.Response, error) {
	u := *s.api.posts
	u.Path += "/posts/" + id + "/events"
	req, err := http.NewRequestWithContext(ctx, "GET", u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if last != "" {
		req.Header.Set("Last-Event-ID", last)
	}
	res, err := s.stream.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: events of post %s: %w", errUnavailable, id, err)
	}
	mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type"))
	if res.StatusCode == http.StatusOK && mt == "text/event-stream" {
		return res, nil
	}
	res.Body.Close()
	if res.StatusCode >= 400 && res.StatusCode < 500 && res.StatusCode != http.StatusTooManyRequests {
		return nil, &problemError{api.Problem{Status: res.StatusCode, Title: http.StatusText(res.StatusCode)}}
	}
	return nil, fmt.Errorf("%w: events of post %s: status %d", errUnavailable, id, res.StatusCode)
}

// eventID matches the ids the posts service gives events (hex state
// versions), with room for change; anything else is not passed on.
var eventID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// errClient marks a failed write to the browser.
var errClient = errors.New("web: client gone")

// sseWriter writes to the browser's stream, each write with its own
// deadline.
type sseWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

// send writes b and flushes it, reporting success.
func (o *sseWriter) send(b []byte) bool {
	_ = o.rc.SetWriteDeadline(time.Now().Add(relayWriteTimeout))
	if _, err := o.w.Write(b); err != nil {
		return false
	}
	return o.rc.Flush() == nil
}

// pump copies events from the posts service to the browser, whole events
// only (a half event must never reach the browser, which would then take
// the next one's lines as its own), noting each event's id in last. It
// returns when either side ends, whether it forwarded any event, and
// whether the post is gone.
func pump(out *sseWriter, body io.Reader, last *string) (forwarded, gone bool, err error) {
	br := bufio.NewReaderSize(body, 16<<10)
	var block []byte
	for {
		line, err := readLine(br, maxEventBytes-len(block))
		if err != nil {
			return forwarded, false, err
		}
		block = append(block, line...)
		if len(bytes.TrimRight(line, "\r\n")) > 0 {
			continue
		}
		// A blank line ends the event.
		isGone := false
		for l := range bytes.Lines(block) {
			l = bytes.TrimRight(l, "\r\n")
			if v, ok := field(l, "id"); ok {
				*last = string(v)
			}
			if v, ok := field(l, "event"); ok && string(v) == "gone" {
				isGone = true
			}
		}
		if !out.send(block) {
			return forwarded, false, errClient
		}
		forwarded = true
		if isGone {
			return true, true, nil
		}
		block = block[:0]
	}
}

// readLine reads one line, failing when it is longer than max.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > max {
			return nil, errors.New("web: event too large")
		}
		line = append(line, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		return line, err
	}
}

// field returns the value of an SSE line "name: value" (or "name:value").
func field(line []byte, name string) ([]byte, bool) {
	v, ok := bytes.CutPrefix(line, []byte(name+":"))
	if !ok {
		return nil, false
	}
	return bytes.TrimPrefix(v, []byte(" ")), true
}
