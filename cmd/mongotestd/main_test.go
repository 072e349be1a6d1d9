package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// TestProcess builds mongotestd, runs it as a process, reads the one line
// it prints, talks to it with the v2 driver, and stops it with SIGTERM.
func TestProcess(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "mongotestd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
	})
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		t.Fatalf("no line on stdout: %v", lines.Err())
	}
	uri := lines.Text()
	if !strings.HasPrefix(uri, "mongodb://127.0.0.1:") || !strings.HasSuffix(uri, "/?replicaSet=rs0") {
		t.Fatalf("printed %q, want a connection string", uri)
	}
	go func() {
		extra := lines.Scan()
		if extra {
			t.Errorf("a second line on stdout: %q", lines.Text())
		}
		done <- cmd.Wait()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Database("d").Collection("c").InsertOne(ctx, bson.D{{Key: "x", Value: 1}}); err != nil {
		t.Fatalf("insert: %v", err)
	}
	if n, err := c.Database("d").Collection("c").CountDocuments(ctx, bson.D{}); err != nil || n != 1 {
		t.Fatalf("count = %d, %v", n, err)
	}
	_ = c.Disconnect(ctx)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v, want a clean exit", err)
		}
	case <-ctx.Done():
		t.Fatal("mongotestd did not stop on SIGTERM")
	}
}

func TestHelpSaysTestStandIn(t *testing.T) {
	var out strings.Builder
	err := run(context.Background(), []string{"-h"}, &out, &out)
	if err == nil || !strings.Contains(out.String(), "TEST STAND-IN FOR MONGODB, NOT A DATABASE") {
		t.Fatalf("-h: %v\n%s", err, out.String())
	}
}
