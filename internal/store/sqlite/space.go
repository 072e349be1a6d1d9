package sqlite

import (
	"context"
	"fmt"
)

// Space is the disk space one table or index of the store takes.
type Space struct {
	// Name is the table's or index's name; Table the table it belongs to
	// (Name itself for a table).
	Name, Table string
	// Index is set for an index (including SQLite's automatic ones for
	// primary keys and UNIQUE constraints).
	Index bool
	// Bytes is the pages it occupies (SQLite's dbstat: pgsize summed),
	// Payload the bytes of its records in those pages.
	Bytes, Payload int64
}

// SpaceUsage reports the space of every table and index, largest first,
// from SQLite's dbstat virtual table (compiled into modernc.org/sqlite),
// so a benchmark can tell which copy of the data costs what.
func (db *DB) SpaceUsage(ctx context.Context) ([]Space, error) {
	rows, err := db.r.QueryContext(ctx, `
		SELECT d.name, COALESCE(m.tbl_name, d.name), COALESCE(m.type, 'table') = 'index',
			SUM(d.pgsize), SUM(d.payload)
		FROM dbstat AS d LEFT JOIN sqlite_schema AS m ON m.name = d.name
		GROUP BY d.name ORDER BY SUM(d.pgsize) DESC, d.name`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: space usage: %w", err)
	}
	defer rows.Close()
	var out []Space
	for rows.Next() {
		var s Space
		if err := rows.Scan(&s.Name, &s.Table, &s.Index, &s.Bytes, &s.Payload); err != nil {
			return nil, fmt.Errorf("sqlite: space usage: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: space usage: %w", err)
	}
	return out, nil
}

// CountComments returns how many comments the comments table holds.
func (db *DB) CountComments(ctx context.Context) (int64, error) {
	var n int64
	if err := db.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM comments`).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: count comments: %w", err)
	}
	return n, nil
}
