// Package api holds what every HTTP service of the blog shares: RFC 9457
// problem responses, strict JSON decoding, JSON and Link-header encoding, a
// router whose own 404 and 405 answers are problems too, and health probes.
package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"unicode/utf8"

	"blog/internal/fault"
)

// Problem is an RFC 9457 problem detail. Errors is the extension that lists
// per-field validation failures.
type Problem struct {
	Type     string       `json:"type"`
	Title    string       `json:"title"`
	Status   int          `json:"status"`
	Detail   string       `json:"detail,omitempty"`
	Instance string       `json:"instance,omitempty"`
	Errors   []FieldError `json:"errors,omitempty"`
}

// FieldError names one invalid part of a request, by an RFC 6901 JSON
// Pointer in URI fragment form: to a body member ("#/title"), a query
// parameter ("#/limit") or a path parameter ("#/id"); and what is wrong.
type FieldError struct {
	Pointer string `json:"pointer"`
	Detail  string `json:"detail"`
}

// Problem type URIs. Plain HTTP failures use about:blank as RFC 9457 advises;
// validation failures get their own type because clients handle them apart.
const (
	TypeBlank      = "about:blank"
	TypeValidation = "/problems/validation"
)

// Error is a Problem that can travel as an error from a decoder or
// validator to the handler that writes it.
func (p *Problem) Error() string { return p.Title + ": " + p.Detail }

// NewProblem returns a problem of type about:blank with the status's text as
// title.
func NewProblem(status int, detail string) *Problem {
	return &Problem{Type: TypeBlank, Title: http.StatusText(status), Status: status, Detail: detail}
}

// Invalid returns a 400 validation problem listing field errors, sorted by
// pointer so responses are stable. It returns nil when there are none, so a
// Validate method can end with `return api.Invalid(errs)`.
func Invalid(fields map[string]string) error {
	if len(fields) == 0 {
		return nil
	}
	p := &Problem{
		Type:   TypeValidation,
		Title:  "Your request is not valid.",
		Status: http.StatusBadRequest,
		Detail: "See errors for what to change.",
	}
	for ptr, d := range fields {
		p.Errors = append(p.Errors, FieldError{Pointer: ptr, Detail: d})
	}
	sort.Slice(p.Errors, func(i, j int) bool { return p.Errors[i].Pointer < p.Errors[j].Pointer })
	return p
}

// Problem size limits: however many fields or query parameters a request
// gets wrong, and however long their names, its problem document stays a
// few kilobytes (6,000 unknown query parameters once made one of 377 KB).
const (
	// MaxFieldErrors is how many field errors a problem lists; the rest are
	// counted in its detail.
	MaxFieldErrors = 20
	// maxProblemText bounds a pointer, detail or instance, in bytes.
	maxProblemText = 200
)

// WriteProblem sends p as application/problem+json, within the size
// limits above.
func WriteProblem(w http.ResponseWriter, r *http.Request, p *Problem) {
	if p.Instance == "" && r != nil {
		p.Instance = r.URL.Path
	}
	p.Instance = clip(p.Instance, maxProblemText)
	if n := len(p.Errors); n > MaxFieldErrors {
		p.Errors = p.Errors[:MaxFieldErrors]
		p.Detail = fmt.Sprintf("See errors for what to change (the first %d of %d).", MaxFieldErrors, n)
	}
	for i := range p.Errors {
		p.Errors[i].Pointer = clip(p.Errors[i].Pointer, maxProblemText)
		p.Errors[i].Detail = clip(p.Errors[i].Detail, maxProblemText)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// WriteError answers with the problem that err stands for. This is the one
// place where domain errors become status codes: a *Problem is sent as is,
// a validation error (fault.Fields) as the validation problem Invalid
// builds, another domain error (package fault) by its kind with its
// client-safe message, and
// anything else is logged and answered with a bare 500 whose text reveals
// nothing of the cause.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var p *Problem
	if errors.As(err, &p) {
		WriteProblem(w, r, p)
		return
	}
	var fields fault.Fields
	if errors.As(err, &fields) {
		WriteProblem(w, r, Invalid(fields).(*Problem))
		return
	}
	status := http.StatusInternalServerError
	switch fault.KindOf(err) {
	case fault.NotFound:
		status = http.StatusNotFound
	case fault.Conflict:
		status = http.StatusConflict
	case fault.Invalid:
		status = http.StatusBadRequest
	}
	if status == http.StatusInternalServerError {
		log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		WriteProblem(w, r, NewProblem(status, "The server could not complete the request; it has been logged."))
		return
	}
	WriteProblem(w, r, NewProblem(status, fault.Message(err)))
}

// WriteJSON sends v as JSON with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// clip shortens s to at most n bytes, on a character boundary, marking the
// cut with an ellipsis.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strings.ToValidUTF8(s[:cut], "") + "…"
}
