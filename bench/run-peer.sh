#!/bin/sh
# Runs the blog and PocketBase v0.40.4 side by side (blog bench -peer):
# builds both, then alternates them round after round and prints the
# median ratios (docs/BENCHMARKS.md, "Against PocketBase"). Not run in CI.
#
#   bench/run-peer.sh                      3 rounds, 10 s per load
#   bench/run-peer.sh -rounds 5 -duration 5s -json /tmp/peer.json
#
# PocketBase v0.40.4 needs Go 1.27; GOTOOLCHAIN fetches it from the module
# proxy. Its module (bench/pocketbase) is separate from the blog's: its
# go.mod keeps it out of `go build ./...`, `go mod tidy` and CI.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out=${BENCH_BIN_DIR:-$(mktemp -d)}
(cd "$root/bench/pocketbase" && GOTOOLCHAIN=${PEER_TOOLCHAIN:-go1.27.3} go build -o "$out/pbpeer" .)
(cd "$root" && go build -o "$out/blog" ./cmd/blog)
exec "$out/blog" bench -peer "$out/pbpeer" "$@"
