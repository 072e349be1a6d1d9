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

// Decode reads a request body into a T strictly: a JSON media type
// (Content-Type application/json or */*+json, required: 415 otherwise), at most max bytes (MaxBody if max <= 0), valid UTF-8, exactly one
// JSON object, no unknown or server-owned fields, and every field of the
// type it is declared with (so `{"postId": {"$ne": null}}` is refused rather
// than passed to a query), each key once (see Unmarshal). Failures are *Problem errors with a 4xx status.
func Decode[T any](w http.ResponseWriter, r *http.Request, max int64) (T, error) {
	var v T
	if max <= 0 {
		max = MaxBody
	}
	// A JSON media type is required, not merely allowed: a page on another
	// origin can send a body without one (fetch with mode "no-cors" and a
	// Blob, navigator.sendBeacon, a form), but not with application/json
	// unless this origin agrees in a CORS preflight, which it never does.
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		w.Header().Set("Accept-Post", "application/json")
		return v, NewProblem(http.StatusUnsupportedMediaType, "Send the body as application/json (Content-Type: application/json).")
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
	if ptr, ok := duplicateKey(body); ok {
		return Invalid(map[string]string{ptr: "appears more than once; send each field once"})
	}
	return nil
}

// duplicateKey returns the JSON pointer of the first key that repeats
// within one object of body, which must be valid JSON. encoding/json would
// take the last value (and match keys regardless of case), so
// `{"title":"a","title":"b"}` or `{"title":"a","Title":"b"}` could show
// one reader of the body a value another ignores; a strict decoder refuses
// them instead (RFC 8259 §4: names "SHOULD be unique"). Keys are compared
// case-folded for that reason.
func duplicateKey(body []byte) (string, bool) {
	type frame struct {
		obj       bool
		expectKey bool
		keys      map[string]bool
		ptr       string // the pointer of this container
		key       string // the current key (objects)
	}
	var stack []*frame
	dec := json.NewDecoder(bytes.NewReader(body))
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].obj {
			stack[n-1].expectKey = true
		}
	}
	childPtr := func() string {
		if n := len(stack); n > 0 {
			top := stack[n-1]
			if top.obj {
				return top.ptr + "/" + top.key
			}
			return top.ptr + "/-"
		}
		return "#"
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				stack = append(stack, &frame{obj: v == '{', expectKey: v == '{', keys: map[string]bool{}, ptr: childPtr()})
			default:
				stack = stack[:len(stack)-1]
				valueDone()
			}
			continue
		case string:
			if n := len(stack); n > 0 && stack[n-1].obj && stack[n-1].expectKey {
				top := stack[n-1]
				folded := strings.ToLower(v)
				if top.keys[folded] {
					return top.ptr + "/" + v, true
				}
				top.keys[folded], top.key, top.expectKey = true, v, false
				continue
			}
		}
		valueDone()
	}
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
