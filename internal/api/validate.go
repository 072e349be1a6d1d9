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

func badControl(r rune) bool {
	return unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t'
}
