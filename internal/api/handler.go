package api

import (
	"log/slog"
	"net/http"
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
