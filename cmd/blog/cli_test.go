package main

import (
	"bytes"
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"blog/internal/post"
)

// TestCLI runs the program in-process as a user would type it and checks
// what it says and how it ends.
func TestCLI(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		dotenv string
		// wantErr is text the returned error must hold ("" : none);
		// helpErr: the error is flag.ErrHelp (exit status 0).
		wantErr    string
		helpErr    bool
		wantStdout []string
		// notStderr must not appear in what the program itself printed.
		notStderr []string
	}{
		{name: "help-shows-defaults", args: []string{"help"},
			wantStdout: []string{"usage: blog", `(default "./data")`, "(default 8080)", "(default 4000)", "(default 168h0m0s)", "(default 50)", "-log-level level"}},
		{name: "dash-h-exits-0", args: []string{"-h"},
			wantStdout: []string{"usage: blog", "(default 4000)"}},
		{name: "serve-dash-h-is-help", args: []string{"serve", "-h"}, helpErr: true,
			wantStdout: []string{"usage: blog serve [flags]", "(default 4000)"}},
		{name: "bad-flag-value-reported-once", args: []string{"-port=abc"},
			wantErr: `invalid value "abc" for flag -port`, notStderr: []string{"invalid value", "Usage of"}},
		{name: "verify-refuses-flags-it-does-not-use", args: []string{"verify", "-port", "3"},
			wantErr: "flag provided but not defined: -port"},
		{name: "web-refuses-store-flags", args: []string{"web", "-mongo-uri", "mongodb://x"},
			wantErr: "flag provided but not defined: -mongo-uri"},
		{name: "posts-refuses-web-flags", args: []string{"posts", "-web-port", "1"},
			wantErr: "flag provided but not defined: -web-port"},
		{name: "comments-refuses-posts-url", args: []string{"comments", "-posts-url", "http://x"},
			wantErr: "flag provided but not defined: -posts-url"},
		{name: "dotenv-error-says-only-the-line", args: []string{"verify"}, dotenv: "this is bad\n",
			wantErr: `.env line 1: "this is bad" is not NAME=value`, notStderr: []string{"unexpected character"}},
		{name: "verify-no-store", args: []string{"verify", "-data-dir", "none"},
			wantErr: "no embedded store at none/blog.db"},
		{name: "deadletters-no-store", args: []string{"deadletters"},
			wantErr: "no embedded store at data/blog.db: nothing to list"},
		{name: "deadletters-retry-no-store", args: []string{"deadletters", "-data-dir", "none", "-retry", "x"},
			wantErr: "no embedded store at none/blog.db"},
		{name: "dotenv-names-bad-line", args: []string{"verify"}, dotenv: "PORT=5000\n# fine\nthis is bad\nX=1\n",
			wantErr: `.env line 3: "this is bad"`},
		{name: "dotenv-multiline-value-ok", args: []string{"verify", "-data-dir", "none"}, dotenv: "A=\"one\ntwo\"\nB=x y z = q\nC=\"open\n",
			wantErr: `.env line 4`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			if tt.dotenv != "" {
				if err := os.WriteFile(".env", []byte(tt.dotenv), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), append([]string{"blog"}, tt.args...), func(string) string { return "" }, &stdout, &stderr)
			switch {
			case tt.helpErr:
				if !errors.Is(err, flag.ErrHelp) {
					t.Fatalf("err %v, want flag.ErrHelp (exit 0)", err)
				}
			case tt.wantErr == "":
				if err != nil {
					t.Fatalf("err %v", err)
				}
			case err == nil || !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("err %v, want one holding %q", err, tt.wantErr)
			}
			if tt.wantErr != "" && strings.Count(err.Error(), tt.wantErr) != 1 {
				t.Errorf("error repeats itself: %v", err)
			}
			for _, w := range tt.wantStdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
				}
			}
			for _, n := range tt.notStderr {
				if strings.Contains(stderr.String(), n) {
					t.Errorf("stderr holds %q (the error is reported once, by main):\n%s", n, stderr.String())
				}
			}
			// verify never creates a store where there was none.
			if _, err := os.Stat(filepath.Join(dir, "none")); err == nil {
				t.Errorf("created a data directory")
			}
			if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
				t.Errorf("created ./data")
			}
		})
	}
}

// TestStartupLogShowsWhatTheCommandUses: `blog web` reaches data over HTTP,
// so its start-up log names no store setting; `blog verify` and
// `blog deadletters` show only the store's.
func TestStartupLogShowsWhatTheCommandUses(t *testing.T) {
	cfg := defaultConfig()
	cfg.MongoURI = "mongodb://user:secret@db:27017/?replicaSet=rs0"
	for _, tc := range []struct {
		cmd       string
		want, not []string
	}{
		{"web", []string{"WEB_PORT", "POSTS_URL", "BLOG_API_TOKEN"}, []string{"MONGO_URI", "BLOG_DATA_DIR", "store=", "BLOG_EMBED_LIMIT"}},
		{"verify", []string{"MONGO_URI", "BLOG_EMBED_LIMIT"}, []string{"WEB_PORT", "PORT=", "secret"}},
		{"deadletters", []string{"MONGO_URI", "BLOG_DATA_DIR"}, []string{"WEB_PORT", "PORT=", "HOST", "BLOG_MAX_STREAMS", "secret"}},
		{"serve", []string{"MONGO_URI", "WEB_PORT", "PORT="}, []string{"secret"}},
	} {
		t.Run(tc.cmd, func(t *testing.T) {
			var b bytes.Buffer
			slog.New(slog.NewTextHandler(&b, nil)).Info("starting", "config", startup{cfg, tc.cmd})
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("log lacks %s: %s", w, b.String())
				}
			}
			for _, n := range tc.not {
				if strings.Contains(b.String(), n) {
					t.Errorf("log holds %s: %s", n, b.String())
				}
			}
		})
	}
}

// TestDescribeDrift: verify names the missing, extra and changed comments
// of a drifted post instead of printing two lists of ids.
func TestDescribeDrift(t *testing.T) {
	at := time.Date(2024, 11, 5, 14, 3, 7, 120e6, time.UTC)
	c := func(id, text string) post.Comment { return post.Comment{ID: id, Text: text, CreatedAt: at} }
	tests := []struct {
		name      string
		d         post.Drift
		want, not []string
	}{
		{name: "missing-extra-changed",
			d:    post.Drift{PostID: "p1", Count: 3, WantCount: 3, Embedded: []post.Comment{c("a", "x"), c("b", "old"), c("z", "gone")}, WantEmbedded: []post.Comment{c("a", "x"), c("b", "new"), c("c", "y")}},
			want: []string{"drift: post p1\n", "missing (stored, not embedded): c\n", "extra (embedded, not among the latest stored): z\n", "changed (embedded copy differs): b\n"},
			not:  []string{"commentCount", "order"}},
		{name: "count-only",
			d:    post.Drift{PostID: "p2", Count: 1, WantCount: 2, Embedded: []post.Comment{c("a", "x")}, WantEmbedded: []post.Comment{c("a", "x")}},
			want: []string{"commentCount 1, want 2"}, not: []string{"missing", "extra", "changed"}},
		{name: "order",
			d:    post.Drift{PostID: "p3", Count: 2, WantCount: 2, Embedded: []post.Comment{c("b", "y"), c("a", "x")}, WantEmbedded: []post.Comment{c("a", "x"), c("b", "y")}},
			want: []string{"out of order: b, a"}, not: []string{"missing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := describeDrift("drift", tt.d)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("lacks %q:\n%s", w, got)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(got, n) {
					t.Errorf("holds %q:\n%s", n, got)
				}
			}
		})
	}
}
