package fault

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Fields is a validation error: for each invalid field of a request, why
// it is invalid, keyed by an RFC 6901 JSON Pointer in URI fragment form
// ("#/title" names the member title). Its kind is Invalid; package api
// answers it with a 400 validation problem listing every field. The domain
// packages fill it with the checks below, so their rules need no HTTP.
type Fields map[string]string

// Error lists the fields and their reasons, sorted by pointer.
func (f Fields) Error() string {
	ptrs := make([]string, 0, len(f))
	for p := range f {
		ptrs = append(ptrs, p)
	}
	slices.Sort(ptrs)
	var b strings.Builder
	b.WriteString("invalid request")
	for i, p := range ptrs {
		sep := "; "
		if i == 0 {
			sep = ": "
		}
		fmt.Fprintf(&b, "%s%s %s", sep, p, f[p])
	}
	return b.String()
}

// Err returns f as an error, or nil when it lists no field, so that a
// Validate method can end with `return problems.Err()`.
func (f Fields) Err() error {
	if len(f) == 0 {
		return nil
	}
	return f
}

var objectID = regexp.MustCompile(`^[0-9a-f]{24}$`)

// ValidID reports whether s is a 24-hex ObjectID string (lower case), the
// only id shape the blog accepts.
func ValidID(s string) bool { return objectID.MatchString(s) }

// CheckID records in f (at ptr) that s is not a valid id (ValidID).
func (f Fields) CheckID(ptr, s string) {
	if !ValidID(s) {
		f[ptr] = "must be a 24-character hexadecimal ObjectID"
	}
}

// CheckText records in f (at ptr) why a required text field is
// unacceptable: blank, longer than maxRunes characters or maxBytes bytes (0
// means no such limit), or holding control characters other than tab and
// newlines, which no blog text needs and which break terminals and logs.
func (f Fields) CheckText(ptr, s string, maxRunes, maxBytes int) {
	switch {
	case strings.TrimSpace(s) == "":
		f[ptr] = "is required and must not be blank"
	case maxRunes > 0 && utf8.RuneCountInString(s) > maxRunes:
		f[ptr] = fmt.Sprintf("must be at most %d characters", maxRunes)
	case maxBytes > 0 && len(s) > maxBytes:
		f[ptr] = fmt.Sprintf("must be at most %d bytes", maxBytes)
	case strings.IndexFunc(s, badControl) >= 0:
		f[ptr] = "must not contain control characters"
	case strings.IndexFunc(s, bidiControl) >= 0:
		f[ptr] = "must not contain bidirectional embedding, override or isolate characters (U+202A..U+202E, U+2066..U+2069)"
	}
}

// CheckTitle is CheckText for a one-line title, which is shown inline (in
// lists, headings, the browser's title bar) next to other text: it also
// refuses invisible characters (zero-width space, word joiner, byte-order
// mark, Mongolian vowel separator) that make two titles look alike or hide
// text. Zero-width joiner and non-joiner stay allowed: emoji sequences,
// Persian and Indic scripts need them, and they reorder nothing.
func (f Fields) CheckTitle(ptr, s string, maxRunes int) {
	f.CheckText(ptr, s, maxRunes, 0)
	if _, bad := f[ptr]; !bad && strings.IndexFunc(s, invisible) >= 0 {
		f[ptr] = "must not contain invisible characters (zero-width space U+200B, U+2060, U+FEFF, U+180E)"
	}
}

// bidiControl reports the characters that change the direction of the
// text after them until a matching terminator (Unicode UAX #9 explicit
// embeddings, overrides and isolates): in user text they can make what a
// reader sees differ from what is stored ("Trojan Source",
// CVE-2021-42574). The implicit marks U+200E/U+200F affect only neutral
// characters next to them and stay allowed.
func bidiControl(r rune) bool {
	return (r >= '\u202A' && r <= '\u202E') || (r >= '\u2066' && r <= '\u2069')
}

func invisible(r rune) bool {
	return r == '\u200B' || r == '\u2060' || r == '\uFEFF' || r == '\u180E'
}

func badControl(r rune) bool {
	return unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t'
}
