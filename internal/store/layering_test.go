// Package store_test holds the storage adapters' architecture test: the
// adapters (sqlite, mongo) implement the domain's ports and must not depend
// on the HTTP side of the blog.
package store_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestAdaptersDoNotDependOnHTTP fails when a storage adapter depends, even
// indirectly, on a package of this module that speaks HTTP (package api,
// the service APIs, the live-updates hub, the web front end), as told by
// `go list -deps`: the domain packages hold the types, rules and ports; the
// HTTP handlers live apart. The embedded adapter must not link net/http at
// all; the MongoDB driver links it itself (for its AWS and OCSP support), so
// for that adapter only this module's packages are held to it.
func TestAdaptersDoNotDependOnHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list: skipped with -short")
	}
	for _, tc := range []struct {
		adapter   string
		noNetHTTP bool // net/http must not be linked at all
	}{
		{"blog/internal/store/sqlite", true},
		{"blog/internal/store/mongo", false},
	} {
		t.Run(tc.adapter[strings.LastIndex(tc.adapter, "/")+1:], func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", "-f",
				`{{.ImportPath}}|{{.Dir}}|{{join .GoFiles " "}}|{{join .Imports " "}}`, tc.adapter).CombinedOutput()
			if err != nil {
				t.Fatalf("go list -deps %s: %v\n%s", tc.adapter, err, out)
			}
			for line := range strings.Lines(string(out)) {
				f := strings.Split(strings.TrimSpace(line), "|")
				if len(f) != 4 {
					t.Fatalf("go list: unexpected line %q", line)
				}
				pkg, dir, files, imports := f[0], f[1], strings.Fields(f[2]), strings.Fields(f[3])
				if !strings.HasPrefix(pkg, "blog/") {
					if pkg == "net/http" && tc.noNetHTTP {
						t.Errorf("%s links net/http", tc.adapter)
					}
					continue
				}
				watch(t, dir, files)
				switch {
				case httpPackage(pkg):
					t.Errorf("%s depends on %s", tc.adapter, pkg)
				case slices.Contains(imports, "net/http"):
					t.Errorf("%s depends on %s, which imports net/http", tc.adapter, pkg)
				}
			}
		})
	}
}

// httpPackage reports the packages of this module that speak HTTP.
func httpPackage(pkg string) bool {
	switch pkg {
	case "blog/internal/api", "blog/internal/live", "blog/internal/web":
		return true
	}
	return strings.HasSuffix(pkg, "api") // postapi, commentapi
}

// watch reads the package's directory and stats its files, so that go
// test's cache, which records what a test reads, runs this test again when
// any of them changes (it cannot see what go list read).
func watch(t *testing.T, dir string, files []string) {
	t.Helper()
	if _, err := os.ReadDir(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
}
