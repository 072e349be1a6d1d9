package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// checkWritable refuses, before SQLite is asked, a data directory or
// database file this process cannot write, naming the path and the reason.
// Without it a read-only blog.db opens, serves reads and answers every
// write with a 500 ("attempt to write a readonly database"), and a
// read-only empty directory fails with "unable to open database file (14)".
// The checks write for real (create and remove a file, open for writing)
// rather than read permission bits, so they hold for root as well, whom
// bits do not stop but an immutable file (chattr +i) or a read-only mount
// do.
func checkWritable(dir, path string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("sqlite: data directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("sqlite: data directory %s is a %s, not a directory", dir, fi.Mode().Type().String())
	}
	probe, err := os.CreateTemp(dir, ".write-probe-*")
	if err != nil {
		return fmt.Errorf("sqlite: data directory %s cannot be written (SQLite keeps %s-wal and %s-shm beside the database): %s",
			dir, FileName, FileName, reason(err))
	}
	_ = probe.Close()
	_ = os.Remove(probe.Name())
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil // SQLite creates it in the directory just probed
	case err != nil:
		return fmt.Errorf("sqlite: database file %s cannot be written: %s", path, reason(err))
	}
	return f.Close()
}

// reason says why a write failed, with what to do about it.
func reason(err error) string {
	uid := os.Geteuid()
	switch {
	case errors.Is(err, syscall.EACCES):
		return fmt.Sprintf("permission denied for this process (uid %d): give it the path (chown) or write permission (chmod u+w)", uid)
	case errors.Is(err, syscall.EPERM):
		return "operation not permitted: the path is immutable or append-only (see lsattr; chattr -i)"
	case errors.Is(err, syscall.EROFS):
		return "it is on a read-only file system"
	case errors.Is(err, syscall.ENOTDIR):
		return "a part of the path is a file, not a directory"
	default:
		return err.Error()
	}
}

// probeWrite starts and rolls back a write transaction, the one test that
// catches every way SQLite may find the file read-only (its own open
// flags, a read-only mount, a lock it cannot take).
func probeWrite(ctx context.Context, db *DB) error {
	tx, err := db.w.BeginTx(ctx, nil) // BEGIN IMMEDIATE: takes the write lock
	if err == nil {
		_, err = tx.ExecContext(ctx, "CREATE TABLE write_probe(x)")
		_ = tx.Rollback()
	}
	if err != nil {
		return fmt.Errorf("sqlite: database file %s cannot be written: %w", db.path, err)
	}
	return nil
}
