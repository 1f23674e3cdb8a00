#!/usr/bin/env bash
# The side-by-side harness (../shared/peers: podium, Node.js `ws`, centrifuge, one load
# generator), run from a copy so that its builds and results stay out of shared/, with one
# correction to the copy's load generator:
#
#   each member's delivery histogram is sized before the window (`new_with_bounds`), instead of
#   growing from empty at the member's first in-window broadcast. Grown there, 10,000
#   histograms take some 64 KiB each within the same tick: the generator, on the same two
#   cores, stalls for hundreds of ms, and that one tick is the p99 of the whole window for
#   every server alike (docs/PERFORMANCE.md, "The harness's first tick").
#
# Every other figure of the harness is unchanged. The environment is the harness's own
# (N, S, RATE, TICK, B, SCENARIOS, TARGETS, ...: see its run.sh); RAW=1 runs the copy as shipped.
#   N=10000 S=15 RATE=2000 bench/peers.sh
# Long and heavy by design: run it on purpose, never from the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
src=../shared/peers
[[ -d $src ]] || { echo "no harness at $src" >&2; exit 1; }
copy="${PEERS_COPY:-${TMPDIR:-/tmp}/podium-peers}"
mkdir -p "$copy"
# Keep the copy's builds (loadgen, node_modules, the centrifuge binary) between runs.
tar -C "$src" --exclude=results --exclude=target --exclude=node_modules --exclude=bin -cf - . \
  | tar -C "$copy" -xf -
main="$copy/loadgen/src/main.rs"
grown='let mut local = Histogram::<u64>::new(3).unwrap();'
sized='let mut local = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();'
if [[ ${RAW:-0} != 1 ]]; then
  if grep -qF "$grown" "$main"; then
    sed -i "s/$(printf '%s' "$grown" | sed 's/[][\.*^$/]/\\&/g')/$sized/" "$main"
  elif ! grep -qF "$sized" "$main"; then
    echo "bench/peers.sh: the harness's load generator changed; run it as shipped (RAW=1) or update this script" >&2
    exit 1
  fi
fi
ulimit -n "$(ulimit -Hn)"
exec "$copy/run.sh"
