package sqlite

import (
	"database/sql"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"modernc.org/sqlite"
)

// chattr makes path immutable (flag "+i") or not ("-i"); it reports false
// when the file system or the process's capabilities do not allow it.
func chattr(t *testing.T, flag, path string) bool {
	t.Helper()
	out, err := exec.Command("chattr", flag, path).CombinedOutput()
	if err != nil {
		t.Logf("chattr %s %s: %v %s", flag, path, err, out)
		return false
	}
	return true
}

// TestOpenRefusesWhatItCannotWrite is finding 6's attack: a store that
// cannot be written used to open, serve reads and fail every write with a
// 500. Tests run as root here, whom permission bits do not stop, so the
// cases use what stops root too: a directory that is a regular file, an
// immutable file or directory (chattr +i, skipped where not permitted),
// and permission bits only when not root.
func TestOpenRefusesWhatItCannotWrite(t *testing.T) {
	t.Run("data-dir-is-a-file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "data")
		if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Open(t.Context(), file, Options{})
		if err == nil || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), "not a directory") {
			t.Fatalf("err %v, want one naming %s as not a directory", err, file)
		}
	})
	t.Run("immutable-database-file", func(t *testing.T) {
		dir := t.TempDir()
		db, err := Open(t.Context(), dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		db.Close()
		path := filepath.Join(dir, FileName)
		if !chattr(t, "+i", path) {
			t.Skip("chattr +i is not permitted here")
		}
		t.Cleanup(func() { chattr(t, "-i", path) })
		_, err = Open(t.Context(), dir, Options{})
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "immutable") {
			t.Fatalf("err %v, want one naming %s and why", err, path)
		}
	})
	t.Run("immutable-empty-directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if !chattr(t, "+i", dir) {
			t.Skip("chattr +i is not permitted here")
		}
		t.Cleanup(func() { chattr(t, "-i", dir) })
		_, err := Open(t.Context(), dir, Options{})
		if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "cannot be written") {
			t.Fatalf("err %v, want one naming %s and why", err, dir)
		}
	})
	t.Run("read-only-file-by-permission", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root writes regardless of permission bits")
		}
		dir := t.TempDir()
		db, err := Open(t.Context(), dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		db.Close()
		path := filepath.Join(dir, FileName)
		if err := os.Chmod(path, 0o444); err != nil {
			t.Fatal(err)
		}
		_, err = Open(t.Context(), dir, Options{})
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "permission denied") {
			t.Fatalf("err %v, want one naming %s and the permission", err, path)
		}
	})
	t.Run("sqlite-opened-read-only", func(t *testing.T) {
		// The last check, a write transaction, against a file SQLite itself
		// opened read-only (mode=ro), as a read-only mount would make it.
		dir := t.TempDir()
		db, err := Open(t.Context(), dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		db.Close()
		path := filepath.Join(dir, FileName)
		ro := &DB{path: path, w: sql.OpenDB(connector{dsn: "file:" + path + "?mode=ro&_txlock=immediate", drv: &sqlite.Driver{}})}
		defer ro.w.Close()
		err = probeWrite(t.Context(), ro)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "readonly") {
			t.Fatalf("err %v, want one naming %s as read-only", err, path)
		}
	})
}
