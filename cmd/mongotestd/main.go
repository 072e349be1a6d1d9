// Command mongotestd runs mongowire, a MongoDB wire-protocol server for
// tests backed by an in-memory lungo engine, as a process: a test stand-in,
// not a database. It prints one line, a connection string, once it accepts
// connections, and runs until SIGTERM or SIGINT; its data dies with it.
//
//	MONGO_URI=$(go run ./cmd/mongotestd -addr 127.0.0.1:27099 | head -1) ...
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"blog/internal/mongowire"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "mongotestd:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mongotestd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "`host:port` to listen on (port 0 picks a free one)")
	set := fs.String("replset", "rs0", "replica set `name` to report")
	mode := fs.String("mode", "primary", "what to answer as: primary, standalone or uninitiated")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: mongotestd [-addr host:port] [-replset name] [-mode primary|standalone|uninitiated]

mongotestd is a TEST STAND-IN FOR MONGODB, NOT A DATABASE. It speaks MongoDB's
wire protocol over an in-memory embedded engine (lungo) so that the blog's
MongoDB code path, the official Go driver included, can be tried and tested on
a machine without a MongoDB server. Data is lost when it exits; there is no
authentication, no replication and no durability, and one write transaction
runs at a time. It supports MongoDB's configureFailPoint/failCommand fail
point for fault tests, and refuses what it does not implement with an error.

It prints one line to stdout once it accepts connections, a connection
string such as mongodb://127.0.0.1:27099/?replicaSet=rs0, and runs until
SIGTERM or SIGINT.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (see -h)", fs.Args())
	}
	opt := mongowire.Options{SetName: *set, Logger: slog.New(slog.NewTextHandler(stderr, nil))}
	switch *mode {
	case "primary":
	case "standalone":
		opt.Mode = mongowire.Standalone
	case "uninitiated":
		opt.Mode = mongowire.Uninitiated
	default:
		return fmt.Errorf("-mode %q: want primary, standalone or uninitiated", *mode)
	}
	s, err := mongowire.Listen(*addr, opt)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(stdout, s.URI()); err != nil {
		_ = s.Close()
		return err
	}
	<-ctx.Done()
	return s.Close()
}
