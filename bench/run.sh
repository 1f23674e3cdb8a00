#!/usr/bin/env bash
# Runs a podium-bench scenario against a fresh release server, RUNS times (default 3), and
# prints each run's summary line. Usage:
#   bench/run.sh connect --connections 10000 --rate 2000 --hold 5
#   bench/run.sh fanout --members 10000 --players 20 --seconds 15
#   BENCH_ARGS="--sources 127.0.0.2,127.0.0.3" bench/run.sh connect ...   # options before the scenario
# Long by design: run it on purpose, never from the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)"
cargo build --release -q -p podium -p podium-bench
runs=${RUNS:-3}
secret=()
if [[ -n ${REDIS_URL:-}${DATABASE_URL:-} ]]; then
  # The redis engine is not dev mode: podium refuses bench/server.toml's secret, which is
  # written in the repository. This run draws its own and tells the bench.
  eval "$(scripts/dev-secrets --export)"
  secret=(--secret "$JWT_SECRET")
fi
for i in $(seq "$runs"); do
  ./target/release/podium --config bench/server.toml >"${TMPDIR:-/tmp}/podium-bench-server.log" 2>&1 &
  server=$!
  trap 'kill $server 2>/dev/null || true' EXIT
  for _ in $(seq 50); do curl -sf localhost:8080/ready >/dev/null && break; sleep 0.1; done
  timeout 600 ./target/release/podium-bench --server-pid "$server" "${secret[@]}" ${BENCH_ARGS:-} "$@" 2>&1 | grep -E "^(connect|fanout|ingest|naive|storm|wave|per-tick)" | grep -v "players start"
  kill "$server"; wait "$server" 2>/dev/null || true
done
