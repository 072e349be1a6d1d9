package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRunServicesPortInUse: a port in use fails start-up before any worker
// starts, and the listeners already opened are closed again.
func TestRunServicesPortInUse(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	var started atomic.Int32
	worker := func(context.Context) { started.Add(1) }
	free := newServer("127.0.0.1", freeTCPPort(t), http.NotFoundHandler(), slog.New(slog.DiscardHandler))
	svcs := []service{
		{name: "first", server: free, workers: []func(context.Context){worker}},
		{name: "second", server: &http.Server{Addr: taken.Addr().String()}, workers: []func(context.Context){worker}},
	}
	err = runServices(t.Context(), svcs, time.Second, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "listen on "+taken.Addr().String()) {
		t.Fatalf("runServices = %v, want a listen error naming %s", err, taken.Addr())
	}
	if n := started.Load(); n != 0 {
		t.Errorf("%d workers started, want none", n)
	}
	// The first listener was closed: its port can be taken again.
	ln, err := net.Listen("tcp", free.Addr)
	if err != nil {
		t.Fatalf("the first service's port is still held: %v", err)
	}
	ln.Close()
}

// TestRunServicesLifecycle: workers start before the server serves, the
// server answers until the context ends, then it drains and the workers are
// stopped before runServices returns.
func TestRunServicesLifecycle(t *testing.T) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freeTCPPort(t)))
	var ready, stopped atomic.Bool
	srv := newServer("127.0.0.1", 0, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !ready.Load() {
			http.Error(w, "served before ready", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}), slog.New(slog.DiscardHandler))
	srv.Addr = addr
	worker := func(ctx context.Context) {
		ready.Store(true)
		<-ctx.Done()
		stopped.Store(true)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- runServices(ctx, []service{{name: "test", server: srv, workers: []func(context.Context){worker}, ready: []func() bool{ready.Load}}}, 5*time.Second, slog.New(slog.DiscardHandler))
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := http.Get("http://" + addr + "/")
		if err == nil {
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK || string(body) != "ok" {
				t.Fatalf("GET: %d %q, want 200 ok", res.StatusCode, body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server never answered: %v", err)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, bounded by the deadline
	}
	if stopped.Load() {
		t.Fatal("the worker stopped while serving")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("runServices = %v, want nil after the context ended", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("runServices did not return after the context ended")
	}
	if !stopped.Load() {
		t.Error("runServices returned before its worker stopped")
	}
}

// freeTCPPort returns a loopback port free at the time of the call.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
