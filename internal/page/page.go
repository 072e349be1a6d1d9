// Package page holds keyset pagination shared by every list endpoint: a page
// request, and the opaque cursor that names the last item a client has seen.
//
// Lists are ordered by (createdAt, _id), so a cursor stays correct when items
// are inserted concurrently: no offsets, nothing skipped, nothing repeated.
package page

import (
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Limits on a page's size; DefaultLimit applies when the client gives none.
const (
	DefaultLimit = 20
	MaxLimit     = 100
)

// Cursor names the last item of a page: the next page starts strictly after
// it in the list's order.
type Cursor struct {
	At time.Time
	ID string
}

// Query asks for one page: at most Limit items after After (nil = first page).
type Query struct {
	Limit int
	After *Cursor
}

// ErrBadCursor is returned for a cursor that this package did not make.
var ErrBadCursor = errors.New("page: malformed cursor")

var hexID = regexp.MustCompile(`^[0-9a-f]{24}$`)

// Encode returns the cursor's opaque, URL-safe text.
func (c Cursor) Encode() string {
	raw := strconv.FormatInt(c.At.UnixMilli(), 10) + ":" + c.ID
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// Decode parses a cursor made by Encode.
func Decode(s string) (Cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, ErrBadCursor
	}
	ms, id, ok := strings.Cut(string(raw), ":")
	if !ok || !hexID.MatchString(id) {
		return Cursor{}, ErrBadCursor
	}
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil || n < 0 {
		return Cursor{}, ErrBadCursor
	}
	return Cursor{At: time.UnixMilli(n).UTC(), ID: id}, nil
}

// Parse reads a page request from the query parameters limit and after.
// It reports problems by parameter name so handlers can answer 400 with them.
func Parse(limit, after string) (Query, map[string]string) {
	q := Query{Limit: DefaultLimit}
	problems := map[string]string{}
	if limit != "" {
		n, err := strconv.Atoi(limit)
		if err != nil || n < 1 || n > MaxLimit {
			problems["limit"] = fmt.Sprintf("must be an integer from 1 to %d", MaxLimit)
		} else {
			q.Limit = n
		}
	}
	if after != "" {
		c, err := Decode(after)
		if err != nil {
			problems["after"] = "must be a cursor from a previous page's Link header"
		} else {
			q.After = &c
		}
	}
	if len(problems) == 0 {
		problems = nil
	}
	return q, problems
}
