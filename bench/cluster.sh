#!/usr/bin/env bash
# Several podium processes sharing one port (PODIUM_REUSE_PORT, the redis engine) driven by
# several load generators, each opening its sockets from addresses of its own (one process may
# hold 20,000 descriptors, and one source reaches one port only about 28,000 times; the kernel
# picks each connection's port by scanning that range, which gets slow as it fills, TIME_WAIT
# leftovers of the run before included, so each generator spreads over SOURCES addresses).
# Prints each generator's summary line and, per server process, the most descriptors it held.
#   PROCS=3 CLIENTS=3 bench/cluster.sh connect --connections 16700 --rate 600 --hold 10
#   PROCS=3 bench/cluster.sh fanout --members 15000 --players 20 --seconds 15
#   REDIS_CLUSTER_NODES=redis://127.0.0.1:7001 PROCS=3 bench/cluster.sh storm --players 3000
# Needs Redis and PostgreSQL (REDIS_URL or REDIS_CLUSTER_NODES, DATABASE_URL; defaults: the
# local ones). Long and heavy by design: run it on purpose, never from the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)"
cargo build --release -q -p podium -p podium-bench
procs=${PROCS:-3}
clients=${CLIENTS:-1}
sources=${SOURCES:-4}
export PODIUM_REUSE_PORT=true
# A Redis Cluster when REDIS_CLUSTER_NODES names one (scripts/redis-cluster), else one node.
if [[ -z ${REDIS_CLUSTER_NODES:-} ]]; then
  export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
fi
export REDIS_PREFIX=${REDIS_PREFIX:-cluster:}
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
export DATABASE_SCHEMA=${DATABASE_SCHEMA:-bench}
# Not dev mode: bench/server.toml's secret is in the repository and refused; draw this run's.
eval "$(scripts/dev-secrets --export)"
logs=${TMPDIR:-/tmp}/podium-cluster
mkdir -p "$logs"
servers=()
trap 'kill "${servers[@]}" 2>/dev/null || true' EXIT
for i in $(seq "$procs"); do
  ./target/release/podium --config bench/server.toml >"$logs/server-$i.log" 2>&1 &
  servers+=($!)
  # One at a time: the first migrates the schema, the others find it current.
  for _ in $(seq 100); do grep -q "podium listening" "$logs/server-$i.log" && break; sleep 0.1; done
  grep -q "podium listening" "$logs/server-$i.log" || { cat "$logs/server-$i.log"; exit 1; }
done
generators=()
for c in $(seq "$clients"); do
  from=$(seq -s, -f "127.0.0.%g" $(((c - 1) * sources + 2)) $((c * sources + 1)))
  ./target/release/podium-bench --sources "$from" --secret "$JWT_SECRET" "$@" >"$logs/bench-$c.log" 2>&1 &
  generators+=($!)
done
declare -A most
running() { for g in "${generators[@]}"; do kill -0 "$g" 2>/dev/null && return 0; done; return 1; }
while running; do
  for pid in "${servers[@]}"; do
    n=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)
    ((n > ${most[$pid]:-0})) && most[$pid]=$n
  done
  sleep 1
done
for g in "${generators[@]}"; do wait "$g" || true; done
for c in $(seq "$clients"); do grep -E "^(connect|fanout|storm|wave):" "$logs/bench-$c.log" || tail -5 "$logs/bench-$c.log"; done
for pid in "${servers[@]}"; do echo "server $pid: most descriptors held ${most[$pid]:-0}"; done
