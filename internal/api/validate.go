package api

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// CheckText records in problems (keyed by ptr) why a required text field is
// unacceptable: blank, longer than maxRunes characters or maxBytes bytes (0
// means no such limit), or holding control characters other than tab and
// newlines, which no blog text needs and which break terminals and logs.
func CheckText(problems map[string]string, ptr, s string, maxRunes, maxBytes int) {
	switch {
	case strings.TrimSpace(s) == "":
		problems[ptr] = "is required and must not be blank"
	case maxRunes > 0 && utf8.RuneCountInString(s) > maxRunes:
		problems[ptr] = fmt.Sprintf("must be at most %d characters", maxRunes)
	case maxBytes > 0 && len(s) > maxBytes:
		problems[ptr] = fmt.Sprintf("must be at most %d bytes", maxBytes)
	case strings.IndexFunc(s, badControl) >= 0:
		problems[ptr] = "must not contain control characters"
	case strings.IndexFunc(s, bidiControl) >= 0:
		problems[ptr] = "must not contain bidirectional embedding, override or isolate characters (U+202A..U+202E, U+2066..U+2069)"
	}
}

// CheckTitle is CheckText for a one-line title, which is shown inline (in
// lists, headings, the browser's title bar) next to other text: it also
// refuses invisible characters (zero-width space, word joiner, byte-order
// mark, Mongolian vowel separator) that make two titles look alike or hide
// text. Zero-width joiner and non-joiner stay allowed: emoji sequences,
// Persian and Indic scripts need them, and they reorder nothing.
func CheckTitle(problems map[string]string, ptr, s string, maxRunes int) {
	CheckText(problems, ptr, s, maxRunes, 0)
	if _, bad := problems[ptr]; !bad && strings.IndexFunc(s, invisible) >= 0 {
		problems[ptr] = "must not contain invisible characters (zero-width space U+200B, U+2060, U+FEFF, U+180E)"
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

// Now returns the time from clock (time.Now when nil) in UTC, truncated to
// the millisecond, which is all MongoDB keeps: a value a handler returns is
// then exactly what a later read gives back, whichever store holds it.
func Now(clock func() time.Time) time.Time {
	if clock == nil {
		clock = time.Now
	}
	return clock().UTC().Truncate(time.Millisecond)
}

func badControl(r rune) bool {
	return unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t'
}
