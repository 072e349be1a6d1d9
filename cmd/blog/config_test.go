package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte("PORT=5000\nCOMMENTS_PORT=5001\nBLOG_DATA_DIR=/from-dotenv\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"COMMENTS_PORT": "6001", "BLOG_DATA_DIR": "/from-env"}
	cfg, rest, err := loadConfig("blog", []string{"-data-dir", "/from-flag", "extra"}, func(k string) string { return env[k] }, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PostsPort != 5000 {
		t.Errorf("PORT %d: .env should beat the default", cfg.PostsPort)
	}
	if cfg.CommentsPort != 6001 {
		t.Errorf("COMMENTS_PORT %d: the environment should beat .env", cfg.CommentsPort)
	}
	if cfg.DataDir != "/from-flag" {
		t.Errorf("BLOG_DATA_DIR %q: the flag should beat the environment", cfg.DataDir)
	}
	if cfg.Host != "127.0.0.1" || cfg.EmbedLimit != 50 {
		t.Errorf("defaults: %+v", cfg)
	}
	if len(rest) != 1 || rest[0] != "extra" {
		t.Errorf("rest %q", rest)
	}
}

func TestLoadConfigRejects(t *testing.T) {
	t.Chdir(t.TempDir())
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{name: "port-not-number", env: map[string]string{"PORT": "http"}, want: "PORT"},
		{name: "port-range", args: []string{"-port", "70000"}, want: "PORT"},
		{name: "embed-limit-zero", env: map[string]string{"BLOG_EMBED_LIMIT": "0"}, want: "BLOG_EMBED_LIMIT"},
		{name: "unknown-flag", args: []string{"-nope"}, want: "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := loadConfig("blog", tt.args, func(k string) string { return tt.env[k] }, io.Discard, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want one naming %s", err, tt.want)
			}
		})
	}
}

func TestMaskURI(t *testing.T) {
	for _, in := range []string{
		"mongodb://u:secret@h1:27017,h2:27018/test?replicaSet=rs0",
		"mongodb+srv://admin:secret@cluster.example.net/",
		"mongodb://h/test?authMechanismProperties=AWS_SESSION_TOKEN:secret&tlsCertificateKeyFilePassword=secret",
	} {
		if got := maskURI(in); strings.Contains(got, "secret") || !strings.HasPrefix(got, "mongodb") {
			t.Errorf("maskURI(%q) = %q", in, got)
		}
	}
	if maskURI("") != "" {
		t.Error("an unset URI should stay empty")
	}
}

func TestHostNeedsTokenOrInsecure(t *testing.T) {
	t.Chdir(t.TempDir())
	tests := []struct {
		name string
		env  map[string]string
		ok   bool
	}{
		{name: "loopback-default", ok: true},
		{name: "localhost", env: map[string]string{"HOST": "localhost"}, ok: true},
		{name: "ipv6-loopback", env: map[string]string{"HOST": "::1"}, ok: true},
		{name: "all-interfaces-refused", env: map[string]string{"HOST": "0.0.0.0"}},
		{name: "empty-host-refused", env: map[string]string{"HOST": ""}, ok: true}, // empty env var: the default applies
		{name: "all-interfaces-token", env: map[string]string{"HOST": "0.0.0.0", "BLOG_API_TOKEN": "s3cret"}, ok: true},
		{name: "all-interfaces-insecure", env: map[string]string{"HOST": "0.0.0.0", "BLOG_INSECURE": "1"}, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := loadConfig("blog", nil, func(k string) string { return tt.env[k] }, io.Discard, nil)
			if (err == nil) != tt.ok {
				t.Fatalf("err %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "BLOG_API_TOKEN") {
				t.Fatalf("the refusal does not say what to do: %v", err)
			}
		})
	}
}

func TestTokenMaskedInLog(t *testing.T) {
	var b strings.Builder
	log := slog.New(slog.NewTextHandler(&b, nil))
	log.Info("starting", "config", Config{APIToken: "s3cret", MongoURI: "mongodb://u:pw@h/test"})
	if strings.Contains(b.String(), "s3cret") || strings.Contains(b.String(), ":pw@") {
		t.Fatalf("secret in log: %s", b.String())
	}
}
