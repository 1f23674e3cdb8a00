#!/usr/bin/env bash
# How long `podium rebuild` takes for a campaign of ROWS results (default 1,000,000: PLAYERS
# players, ROWS/PLAYERS results each, spread over the last 20 days), from PostgreSQL into an
# empty Redis prefix. Prints rows, players and the seconds of each of RUNS runs, and the same
# with the rebuild index dropped (what every rebuild cost before migration 0005).
#   bench/rebuild.sh                  # against the local Redis and PostgreSQL
#   REDIS_CLUSTER_NODES=redis://127.0.0.1:7001 bench/rebuild.sh
# Writes a schema of its own (DATABASE_SCHEMA, default bench_rebuild) and drops it at the end.
# Long by design: run it on purpose, never from the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p podium
rows=${ROWS:-1000000} players=${PLAYERS:-200000} runs=${RUNS:-3}
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
export DATABASE_SCHEMA=${DATABASE_SCHEMA:-bench_rebuild}
[[ -n ${REDIS_CLUSTER_NODES:-} ]] || export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
eval "$(scripts/dev-secrets --export)"
export PGOPTIONS="-c client_min_messages=warning"
psql() { command psql "$DATABASE_URL" -qtAX -v ON_ERROR_STOP=1 "$@"; }
trap 'psql -c "DROP SCHEMA IF EXISTS $DATABASE_SCHEMA CASCADE" >/dev/null' EXIT
psql -c "DROP SCHEMA IF EXISTS $DATABASE_SCHEMA CASCADE" >/dev/null
./target/release/podium migrate >/dev/null
# The demo campaign as the engine records it at start.
log=${TMPDIR:-/tmp}/podium-rebuild-bench.log
PODIUM_LISTEN=127.0.0.1:18089 ./target/release/podium >"$log" 2>&1 &
server=$!
for _ in $(seq 100); do grep -q "podium listening" "$log" && break; sleep 0.1; done
kill "$server"; wait "$server" 2>/dev/null || true
psql <<SQL
SET search_path = $DATABASE_SCHEMA;
INSERT INTO results (session_id, started_at, user_id, campaign_id, score, accepted_at)
SELECT 's' || g, t, 'p' || (g % $players), 'demo', (g::int8 * 7919) % 100000, t + interval '20 s'
FROM (SELECT g, now() - (g % 1728000) * interval '1 s' AS t FROM generate_series(1, $rows) g) x;
ANALYZE results;
SQL
echo "rows=$(psql -c "SELECT count(*) FROM $DATABASE_SCHEMA.results") players=$players"
rebuild() {
  for i in $(seq "$runs"); do
    export REDIS_PREFIX="rebuild-bench-$i-$RANDOM:"
    start=$(date +%s.%N)
    ./target/release/podium rebuild --campaign demo >/dev/null
    echo "$1 run $i: $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }') s"
    if [[ -n ${REDIS_CLUSTER_NODES:-} ]]; then
      for node in ${REDIS_CLUSTER_NODES//,/ }; do
        port=${node##*:}
        redis-cli -p "$port" --scan --pattern "$REDIS_PREFIX*" | xargs -r -n 1 redis-cli -p "$port" unlink >/dev/null 2>&1 || true
      done
    else
      redis-cli --scan --pattern "$REDIS_PREFIX*" | xargs -r -n 500 redis-cli unlink >/dev/null
    fi
  done
}
rebuild "with the index"
psql -c "DROP INDEX $DATABASE_SCHEMA.results_campaign_user_best"
rebuild "without the index"
