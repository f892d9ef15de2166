#!/bin/bash
# Instructions the server executes per acked publish (callgrind's Ir count),
# for comparing builds: unlike pubs/s on a shared machine it repeats to
# within about 0.5% between runs of one build. Kernel time is not counted.
#
#   bench/instructions.sh [PARLEY_BINARY] [SECONDS]
#
# Starts the binary under valgrind --tool=callgrind on CPU 0 with the bench
# config (one tenant, history_size 1000), runs `parley bench publish
# --publishers 64` against it from CPU 1, stops it and prints the total
# instructions over the acked pubs. The server runs ~50x slower under
# callgrind, so the run is short in pubs; start-up is included in the total
# (about 1% of it at 10 s).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-$ROOT/build/parley}
SECS=${2:-10}
PORT=${PORT:-18093}
CLIENT=${CLIENT:-$ROOT/build/parley}
SECRET=benchsecretbenchsecret0123
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 2; }

WORK=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
. "$ROOT/bench/config.sh"
parley_bench_config "$WORK/parley.yaml" "$SECRET"
mkdir "$WORK/data"
taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" "$BIN" serve \
    --config "$WORK/parley.yaml" --listen "127.0.0.1:$PORT" --data "$WORK/data" \
    >"$WORK/server.log" 2>&1 &
PID=$!
for _ in $(seq 300); do
    curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
    sleep 0.2
done
taskset -c 1 "$CLIENT" bench publish --url "127.0.0.1:$PORT" --secret "$SECRET" --tenant bench \
    --publishers 64 --duration "$SECS" --drain 5 --quiet >"$WORK/bench.out" 2>&1 || true
kill "$PID"
wait "$PID" 2>/dev/null || true
ACKED=$(grep -o '"pubs_acked":[0-9]*' "$WORK/bench.out" | cut -d: -f2)
BATCH=$(grep -o '"commit_batch_avg":[0-9.]*' "$WORK/bench.out" | cut -d: -f2)
IR=$(callgrind_annotate "$WORK/cg.out" 2>/dev/null | awk '/PROGRAM TOTALS/ && !ir {gsub(",", "", $1); ir = $1} END {print ir}')
if [ -z "$ACKED" ] || [ "$ACKED" = 0 ] || [ -z "$IR" ]; then
    echo "no result; bench output:" >&2
    cat "$WORK/bench.out" >&2
    exit 1
fi
echo "$(basename "$BIN"): $ACKED pubs acked, commit batch $BATCH, $IR instructions, $((IR / ACKED)) per acked pub"
