package sqlite

import (
	"database/sql"
	"fmt"
	"log/slog"
)

// sortKey is a row's place in a list ordered by (created_at, id): its two
// values as stored, whatever their types.
type sortKey struct{ at, id any }

// listing is one keyset-paged list, as readList reads it.
type listing[T any] struct {
	// what names the list in logs.
	what string
	// query returns at most limit rows of the list strictly after key in
	// its order, or from its start when key is nil.
	query func(after *sortKey, limit int) (*sql.Rows, error)
	// scan reads a row into an item; key returns an item's sort key as
	// stored.
	scan func(sc scanner) (T, error)
	key  func(v T) sortKey
	// atCol and idCol are the positions of the sort key's columns in a row.
	atCol, idCol int
}

// readList reads up to n items of l after key (nil: from the start).
//
// A row that scan cannot read (a value of the wrong type, such as a
// created_at written by hand as text or as a fraction, which SQLite's
// column affinity keeps as it was given) is logged and skipped, as the
// rebuild leaves such rows out, rather than failing every page that holds
// it. The page is then topped up from the rows after it, so that only the
// last page of a list can come back short: the HTTP API and `blog verify`
// read a short page as the end of the list. Reading on from a skipped row
// uses its key as stored, which SQLite compares with the same rules,
// across types, that its ORDER BY sorts by, so nothing is skipped or read
// twice.
func readList[T any](log *slog.Logger, l listing[T], after *sortKey, n int) ([]T, error) {
	out := make([]T, 0, min(n, 1024))
	for len(out) < n {
		limit := n - len(out)
		rows, err := l.query(after, limit)
		if err != nil {
			return nil, err
		}
		read := 0
		for rows.Next() {
			read++
			v, err := l.scan(rows)
			if err == nil {
				out = append(out, v)
				k := l.key(v)
				after = &k
				continue
			}
			k, kerr := rawKey(rows, l.atCol, l.idCol)
			if kerr != nil {
				rows.Close()
				return nil, fmt.Errorf("%w (and then: %w)", err, kerr)
			}
			log.Warn("list skips a row it cannot read", "list", l.what, "id", fmt.Sprint(k.id), "err", err)
			after = &k
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		if read < limit {
			break // the list ends here
		}
	}
	return out, nil
}

// rawKey scans the current row again, every column as stored, and returns
// its sort key. (A row may be scanned more than once.)
func rawKey(rows *sql.Rows, atCol, idCol int) (sortKey, error) {
	cols, err := rows.Columns()
	if err != nil {
		return sortKey{}, err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return sortKey{}, err
	}
	return sortKey{at: vals[atCol], id: vals[idCol]}, nil
}
