package api

import (
	"log/slog"
	"net/http"
	"time"
)

// HandlerFunc is an HTTP handler that returns its failure instead of
// answering it, so that one place (Errors, through WriteError) turns every
// handler's errors into problem responses: a *Problem as it is, a domain
// error (package fault) by its kind, anything else a logged 500. A handler
// that returns an error must not have written its response.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Errors returns h as an http.HandlerFunc that answers h's error, if any,
// with WriteError, logging unexpected errors to log.
func Errors(log *slog.Logger, h HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			WriteError(w, r, log, err)
		}
	}
}

// Now returns the time from clock (time.Now when nil) in UTC, truncated to
// the millisecond, which is all MongoDB keeps: a value a handler returns is
// then exactly what a later read gives back, whichever store holds it.
func Now(clock func() time.Time) time.Time {
	if clock == nil {
		clock = time.Now
	}
	return clock().UTC().Truncate(time.Millisecond)
}
