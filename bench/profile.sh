#!/usr/bin/env bash
# Where a fanout's server CPU goes: runs `podium-bench fanout` against a release server and,
# once every member is connected, samples the server with `perf record` (call graphs) for
# PERF_SECONDS; prints the bench's summary and the hottest symbols, self time first. The data
# stays in $TMPDIR/podium-profile/perf.data for `perf report`. Usage:
#   bench/profile.sh [members, default 10000] [seconds measured, default 15]
# Whole call chains need frame pointers: build podium with
#   RUSTFLAGS="-C force-frame-pointers=yes" cargo build --release --target-dir /tmp/fp -p podium
# and run with PODIUM_BIN=/tmp/fp/release/podium.
# Long and heavy by design: run it on purpose, never from the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)"
command -v perf >/dev/null || { echo "perf is required (Debian: linux-perf)" >&2; exit 1; }
cargo build --release -q -p podium -p podium-bench
members="${1:-10000}"
seconds="${2:-15}"
sample="${PERF_SECONDS:-8}"
out="${TMPDIR:-/tmp}/podium-profile"
mkdir -p "$out"
"${PODIUM_BIN:-./target/release/podium}" --config bench/server.toml >"$out/server.log" 2>&1 &
server=$!
trap 'kill $server $bench 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf localhost:8080/ready >/dev/null && break; sleep 0.1; done
./target/release/podium-bench --server-pid "$server" fanout --members "$members" --players 20 \
  --seconds "$seconds" >"$out/bench.log" 2>&1 &
bench=$!
for _ in $(seq 600); do grep -q "players start" "$out/bench.log" && break; sleep 0.2; done
perf record -q -F 999 -g -p "$server" -o "$out/perf.data" -- sleep "$sample" 2>/dev/null
wait "$bench"
grep -E "^fanout:" "$out/bench.log"
perf report -i "$out/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null \
  | grep -E "^ +[0-9.]+%" | head -"${TOP:-40}"
