// Package jsonenc appends the blog's JSON values straight to a byte slice:
// timestamps in the seed's form and strings escaped exactly as encoding/json
// escapes them. The services' types encode themselves with it (their
// MarshalJSON and AppendJSON methods), so a response is one pass over the
// data, without time.Time.MarshalJSON and without encoding/json re-checking
// what a MarshalJSON method returned.
package jsonenc

import (
	"time"
	"unicode/utf8"
)

// TimeLayout is how the seed's Mongoose serialises a Date
// (Date.prototype.toISOString): UTC, exactly three fraction digits and a Z,
// as in 2024-11-05T14:03:07.120Z. A time at a whole second still carries
// ".000"; finer precision is truncated, as MongoDB stores milliseconds.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// AppendTime appends t in TimeLayout (converted to UTC), quoted.
func AppendTime(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.UTC().AppendFormat(dst, TimeLayout)
	return append(dst, '"')
}

// Time is a time.Time that encodes in TimeLayout. Convert a *time.Time to
// *Time to give a struct field the seed's form.
type Time time.Time

// MarshalJSON encodes t in TimeLayout.
func (t Time) MarshalJSON() ([]byte, error) {
	return AppendTime(make([]byte, 0, len(TimeLayout)+2), time.Time(t)), nil
}

const hex = "0123456789abcdef"

// safe marks the ASCII bytes that go into a JSON string unescaped under
// encoding/json's default HTML-safe escaping: not a control character, not
// '"' or '\\', and not '<', '>' or '&'.
var safe = func() (s [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		s[b] = true
	}
	for _, b := range `"\<>&` {
		s[b] = false
	}
	return s
}()

// AppendString appends s as a quoted JSON string, escaped byte for byte as
// encoding/json's Marshal escapes it: the HTML characters as \u003c, \u003e
// and \u0026, U+2028 and U+2029 escaped, and invalid UTF-8 replaced by
// U+FFFD.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if safe[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
