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
	// relayBufferBytes is the one buffer a relayed stream reads the posts
	// service through. Events pass through it piece by piece, never whole,
	// so a snapshot of 500 KB costs a stream no more than a keepalive.
	relayBufferBytes = 4 << 10
	// maxFieldBytes bounds the start of a line kept to read an event's id
	// and type; longer id or event lines are not ours and are ignored.
	maxFieldBytes = 160
	// Backoff of reconnections to the posts service.
	relayMinBackoff = 100 * time.Millisecond
	relayMaxBackoff = 2 * time.Second
)

// events relays GET /posts/{id}/events from the posts service to the
// browser as it comes, through one small fixed buffer.
//
// Limits (Config.Streams): a cap on streams open at once, in all and per
// browser address (past them 503 or 429 with Retry-After), and a lifetime
// after which the stream ends; the browser then reconnects with the id of
// the last whole event it got, so it misses nothing.
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
	last := lastEventID(r)
	release, ok := s.streams.Acquire(w, r)
	if !ok {
		return
	}
	defer release()
	ctx, cancel := context.WithCancel(r.Context())
	if life := s.streams.Lifetime(); life > 0 {
		ctx, cancel = context.WithTimeout(r.Context(), life)
	}
	defer cancel()
	go func() {
		select {
		case <-s.done: // the server is shutting down
			cancel()
		case <-ctx.Done():
		}
	}()

	client := s.cfg.Proxies.ClientIP(r)
	up, err := s.dial(ctx, id, last, client)
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

	s.relay(ctx, out, up, id, last, client)
}

// relay forwards the posts service's stream up (nil: none yet) of post
// id to out, reconnecting with backoff (and from the last whole event,
// last) whenever it ends, until ctx ends, the browser goes or the post is
// gone.
func (s *Server) relay(ctx context.Context, out *sseWriter, up *http.Response, id, last, client string) {
	backoff := relayMinBackoff
	for {
		if up != nil {
			forwarded, partial, gone, err := pump(out, up.Body, &last)
			up.Body.Close()
			// Half an event has reached the browser: end its stream, so it
			// drops the half and reconnects from the last whole event.
			if gone || partial || errors.Is(err, errClient) || ctx.Err() != nil {
				return
			}
			if forwarded {
				backoff = relayMinBackoff
			}
			s.log.Debug("posts event stream ended; reconnecting", "post", id, "err", err)
		}
		// Keep the browser's connection (and its proxies) alive meanwhile,
		// and let the page say so (an event without id leaves the
		// browser's Last-Event-ID as it was).
		if !out.send([]byte("event: reconnecting\ndata: {}\n\n")) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, relayMaxBackoff)
		var err error
		up, err = s.dial(ctx, id, last, client)
		if err == nil && !out.send([]byte("event: live\ndata: {}\n\n")) {
			up.Body.Close()
			return
		}
		if code := status(err); err != nil && code >= 400 && code < 500 {
			if code == http.StatusNotFound {
				out.send([]byte("event: gone\ndata: {\"_id\":\"" + id + "\"}\n\n"))
			}
			return
		}
	}
}

// lastEventID is the event id the browser resumes from: its Last-Event-ID
// header, or the lastEventId query parameter; empty (start from a snapshot)
// when it is not an id the posts service made.
func lastEventID(r *http.Request) string {
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get("lastEventId")
	}
	if !eventID.MatchString(last) {
		return ""
	}
	return last
}

// dial opens the posts service's stream of a post for the browser at
// client, whose address it forwards so the posts service's per-client
// stream cap counts browsers, not this service.
func (s *Server) dial(ctx context.Context, id, last, client string) (*http.Response, error) {
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
	if client != "" {
		req.Header.Set("X-Forwarded-For", client)
	}
	if s.cfg.ProxyKey != "" {
		req.Header.Set(api.ProxyKeyHeader, s.cfg.ProxyKey)
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
func (o *sseWriter) send(b []byte) bool { return o.write(b) && o.flush() }

// write writes b (buffered), reporting success.
func (o *sseWriter) write(b []byte) bool {
	_ = o.rc.SetWriteDeadline(time.Now().Add(relayWriteTimeout))
	_, err := o.w.Write(b)
	return err == nil
}

// flush sends what is buffered, reporting success.
func (o *sseWriter) flush() bool {
	_ = o.rc.SetWriteDeadline(time.Now().Add(relayWriteTimeout))
	return o.rc.Flush() == nil
}

// pump copies the posts service's stream to the browser through one small
// buffer, a piece at a time, noting the id of each whole event in last and
// flushing at the end of each event. It returns when either side ends:
// whether it forwarded a whole event, whether it stopped partway through
// one (the caller must then end the browser's stream rather than append
// another stream's lines to the half event), and whether the post is gone.
func pump(out *sseWriter, body io.Reader, last *string) (forwarded, partial, gone bool, err error) {
	br := bufio.NewReaderSize(body, relayBufferBytes)
	head := make([]byte, 0, maxFieldBytes) // the start of the current line
	var (
		lineStart = true  // the next byte begins a line
		inEvent   bool    // a line of an unfinished event has been sent
		id        *string // the id line of the current event, if any
		isGone    bool
	)
	for {
		chunk, rerr := br.ReadSlice('\n')
		if len(chunk) > 0 {
			if lineStart {
				head = head[:0]
			}
			head = append(head, chunk[:min(len(chunk), cap(head)-len(head))]...)
			complete := chunk[len(chunk)-1] == '\n'
			blank := lineStart && complete && len(bytes.TrimRight(chunk, "\r\n")) == 0
			if !out.write(chunk) {
				return forwarded, true, false, errClient
			}
			switch {
			case blank && inEvent: // the event is whole
				if id != nil {
					*last = *id
				}
				if !out.flush() {
					return forwarded, false, false, errClient
				}
				forwarded, inEvent, id = true, false, nil
				if isGone {
					return true, false, true, nil
				}
			case blank:
			case complete:
				inEvent = true
				if len(head) < cap(head) || head[len(head)-1] == '\n' {
					l := bytes.TrimRight(head, "\r\n")
					if v, ok := field(l, "id"); ok {
						v := string(v)
						id = &v
					}
					if v, ok := field(l, "event"); ok && string(v) == "gone" {
						isGone = true
					}
				}
			default:
				inEvent = true
			}
			lineStart = complete
		}
		if rerr == bufio.ErrBufferFull {
			continue
		}
		if rerr != nil {
			return forwarded, inEvent || !lineStart, false, rerr
		}
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
