package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"
)

// MaxBody is the default limit on a request body: far above any valid post,
// far below what could hurt a service.
const MaxBody = 1 << 20

// serverOwned are fields a client may see but never set; naming them in a
// request gets a message that says so rather than "unknown field".
var serverOwned = map[string]bool{
	"_id": true, "createdAt": true, "updatedAt": true, "comments": true, "commentCount": true,
}

// Decode reads a request body into a T strictly: an optional JSON media
// type, at most max bytes (MaxBody if max <= 0), valid UTF-8, exactly one
// JSON object, no unknown or server-owned fields, and every field of the
// type it is declared with (so `{"postId": {"$ne": null}}` is refused rather
// than passed to a query). Failures are *Problem errors with a 4xx status.
func Decode[T any](w http.ResponseWriter, r *http.Request, max int64) (T, error) {
	var v T
	if max <= 0 {
		max = MaxBody
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return v, NewProblem(http.StatusUnsupportedMediaType, "Send the body as application/json.")
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return v, NewProblem(http.StatusRequestEntityTooLarge, fmt.Sprintf("The body must be at most %d bytes.", max))
		}
		return v, NewProblem(http.StatusBadRequest, "The body could not be read.")
	}
	if err := Unmarshal(body, &v); err != nil {
		return v, err
	}
	return v, nil
}

// Validator is a request body that can check itself, returning a
// validation problem (see Invalid) or nil.
type Validator interface{ Validate() error }

// DecodeValid decodes a request body strictly (see Decode) with the default
// size limit, then validates it.
func DecodeValid[T Validator](w http.ResponseWriter, r *http.Request) (T, error) {
	v, err := Decode[T](w, r, 0)
	if err != nil {
		return v, err
	}
	return v, v.Validate()
}

// Unmarshal is Decode's strict JSON step on bytes already read, kept apart so
// fuzz tests can reach it without HTTP.
func Unmarshal(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return NewProblem(http.StatusBadRequest, "The body is empty; send a JSON object.")
	}
	if !utf8.Valid(body) {
		return NewProblem(http.StatusBadRequest, "The body is not valid UTF-8.")
	}
	if b := bytes.TrimSpace(body); b[0] != '{' {
		return NewProblem(http.StatusBadRequest, "The body must be a JSON object.")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeProblem(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return NewProblem(http.StatusBadRequest, "The body must hold exactly one JSON object.")
	}
	return nil
}

// decodeProblem turns encoding/json's errors into messages a client can act
// on, without echoing the body back.
func decodeProblem(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return NewProblem(http.StatusBadRequest, fmt.Sprintf("The body is not valid JSON (at byte %d).", syn.Offset))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return NewProblem(http.StatusBadRequest, "The body is not valid JSON (it ends too soon).")
	case errors.As(err, &typ):
		if typ.Field == "" {
			return NewProblem(http.StatusBadRequest, "The body must be a JSON object.")
		}
		return Invalid(map[string]string{"#/" + typ.Field: "must be a JSON " + jsonKind(typ.Type.Kind().String())})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		if serverOwned[name] {
			return Invalid(map[string]string{"#/" + name: "is set by the server and cannot be sent"})
		}
		return Invalid(map[string]string{"#/" + name: "is not a known field"})
	default:
		return NewProblem(http.StatusBadRequest, "The body could not be decoded as the expected JSON object.")
	}
}

// jsonKind names a Go kind the way a JSON client thinks of it.
func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "struct", "map":
		return "object"
	case "slice", "array":
		return "array"
	default:
		return "number"
	}
}
