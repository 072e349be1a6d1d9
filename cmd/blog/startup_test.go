package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeRefusesUnwritableStore: `blog serve` on a store it cannot write
// exits with an error naming the file and the reason instead of serving
// reads and failing every write. The immutable case needs chattr +i
// (skipped where not permitted); running as root, permission bits would not
// stop the process.
func TestServeRefusesUnwritableStore(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	immutable := t.TempDir()
	if out, err := exec.Command("chattr", "+i", immutable).CombinedOutput(); err != nil {
		t.Logf("chattr: %v %s; the immutable case is skipped", err, out)
		immutable = ""
	} else {
		t.Cleanup(func() { _ = exec.Command("chattr", "-i", immutable).Run() })
	}
	for _, tt := range []struct{ name, dir, want string }{
		{"data-dir-is-a-file", file, "not a directory"},
		{"immutable-data-dir", immutable, "cannot be written"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.dir == "" {
				t.Skip("chattr +i is not permitted here")
			}
			env := map[string]string{"BLOG_DATA_DIR": tt.dir, "PORT": "0", "COMMENTS_PORT": "0", "WEB_PORT": "0"}
			var stderr bytes.Buffer
			err := run(t.Context(), []string{"blog", "serve"}, func(k string) string { return env[k] }, &stderr, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.dir) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want one naming %s: %s", err, tt.dir, tt.want)
			}
			if strings.Contains(stderr.String(), "listening") {
				t.Fatal("the services listened before the store was found unwritable")
			}
			t.Log(err)
		})
	}
}
