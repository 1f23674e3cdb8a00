#!/usr/bin/env bash
# A storm of PLAYERS (default 2,000) arriving over SECONDS (default 4) while Redis is down, so
# every game is decided straight in PostgreSQL (the fallback): prints the storm's summary, the
# submits answered `busy`, and the PostgreSQL pool's most connections in use and waiters
# (sampled from /metrics every 100 ms) against its cap (DATABASE_POOL_SIZE, default 8).
#   bench/fallback-storm.sh
# Runs a Redis of its own on port 6391 (killed once podium is up) and the local PostgreSQL.
# Long by design: run it on purpose, never from the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)"
cargo build --release -q -p podium -p podium-bench
players=${PLAYERS:-2000} seconds=${SECONDS_OVER:-4}
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
export DATABASE_SCHEMA=${DATABASE_SCHEMA:-bench_fallback} REDIS_URL=redis://127.0.0.1:6391
export REDIS_PREFIX="fallback-$RANDOM:" DATABASE_POOL_SIZE=${DATABASE_POOL_SIZE:-8}
eval "$(scripts/dev-secrets --export)"
dir=$(mktemp -d)
redis-server --port 6391 --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" --daemonize yes \
  --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
log=$dir/podium.log
./target/release/podium --config bench/server.toml >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; kill "$(cat "$dir/redis.pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 100); do curl -sf localhost:8080/ready >/dev/null && break; sleep 0.1; done
kill "$(cat "$dir/redis.pid")"
for _ in $(seq 100); do curl -s localhost:8080/health | grep -q redis_down && break; sleep 0.1; done
metric() { curl -s localhost:8080/metrics | awk -v s="$1" '$1 == s { print $2 }'; }
( most=0; waiting=0
  while kill -0 "$server" 2>/dev/null && [[ ! -e $dir/done ]]; do
    u=$(metric 'podium_pool_connections_in_use{pool="postgres"}'); w=$(metric 'podium_pool_waiting{pool="postgres"}')
    ((${u%.*} > most)) && most=${u%.*}; ((${w%.*} > waiting)) && waiting=${w%.*}
    echo "$most $waiting" >"$dir/pool"; sleep 0.1
  done ) &
./target/release/podium-bench --server-pid "$server" --secret "$JWT_SECRET" storm \
  --players "$players" --seconds "$seconds" --play-ms 200 --hold 1 --room '' >"$dir/bench.log" 2>&1 || true
touch "$dir/done"; sleep 0.3
grep -E "^storm:" "$dir/bench.log" | cut -c1-400
echo "submits answered busy: $(metric 'podium_submits_total{outcome="failed",reason="busy"}'), timed out in the client: $(grep -ci 'timed out\|elapsed' "$dir/bench.log" || true)"
echo "postgres pool: most in use $(cut -d' ' -f1 "$dir/pool") of $DATABASE_POOL_SIZE, most waiting $(cut -d' ' -f2 "$dir/pool"), pool timeouts $(metric podium_postgres_pool_timeouts_total)"
