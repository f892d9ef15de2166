#!/usr/bin/env bash
# Cluster mode against the embedded engine, in alternating runs because
# these machines are noisy: acked publishes with 64 publishers on one node
# with engine sqlite and on one node with engine redis (Redis with AOF
# appendfsync always), Redis round trips per publish (writes of the command
# link, from /metrics), and the publish-to-delivery latency of fan-out to
# 1,000 subscribers at FAN_RATE (100) pubs/s on sqlite, on one redis node,
# and with the subscribers on another node than the publisher. The nodes
# and Redis are pinned to CPU 0 (SERVER_CPU), the bench client to CPU 1
# (CLIENT_CPU).
#
#   bench/cluster.sh [--duration 10] [--rounds 2] [--out FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/config.sh
PARLEY=${PARLEY:-build/parley}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
DURATION=10
ROUNDS=2
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "usage: $0 [--duration S] [--rounds N] [--out FILE]" >&2; exit 2 ;;
    esac
done

TMP=$(mktemp -d /tmp/parley-cluster.XXXXXX)
SECRET=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
RPORT=$((20000 + RANDOM % 10000))
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

taskset -c "$SERVER_CPU" redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$TMP" --save "" \
    --appendonly yes --appendfsync always --daemonize no --logfile "$TMP/redis.log" &
PIDS+=($!)
wait_port "$RPORT"

metric() { # metric PORT NAME
    curl -fs "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n {print $2}'
}

run() { # run ENGINE ROUND: prints the bench's JSON line with round trips added
    local engine=$1 round=$2 port=$((RPORT + 1 + round * 2))
    [ "$engine" = redis ] && port=$((port + 1))
    local dir="$TMP/$engine-$round"
    mkdir -p "$dir/data"
    parley_bench_config "$dir/p.yaml" "$SECRET"
    if [ "$engine" = redis ]; then
        printf 'engine: {type: redis, address: "127.0.0.1:%s", prefix: "b%s"}\n' "$RPORT" \
            "$round" >>"$dir/p.yaml"
    fi
    taskset -c "$SERVER_CPU" "$PARLEY" serve --config "$dir/p.yaml" --listen "127.0.0.1:$port" \
        --data "$dir/data" >"$dir/log" 2>&1 &
    local pid=$!
    PIDS+=($pid)
    wait_port "$port"
    sleep 1.5
    local rt0=0
    [ "$engine" = redis ] && rt0=$(metric "$port" parley_engine_round_trips_total)
    local line
    line=$(taskset -c "$CLIENT_CPU" "$PARLEY" bench publish --url "127.0.0.1:$port" \
        --secret "$SECRET" --tenant bench --publishers 64 --duration "$DURATION" --quiet \
        --server-pid "$pid" --label "$engine" | tail -n 1)
    sleep 1.5 # round trips are published at the engine's ping, once a second
    local rt1=0
    [ "$engine" = redis ] && rt1=$(metric "$port" parley_engine_round_trips_total)
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["round_trips"]=int(float(sys.argv[2]))-int(float(sys.argv[3])); print(json.dumps(d))' \
        "$line" "$rt1" "$rt0"
}

# node ENGINE NAME PREFIX: starts a node, prints its port (PID in $TMP/NAME.pid).
node() {
    local dir="$TMP/$2" port=$((RPORT + 100 + RANDOM % 1000))
    mkdir -p "$dir/data"
    parley_bench_config "$dir/p.yaml" "$SECRET"
    [ "$1" = redis ] &&
        printf 'engine: {type: redis, address: "127.0.0.1:%s", prefix: "%s"}\n' "$RPORT" "$3" \
            >>"$dir/p.yaml"
    taskset -c "$SERVER_CPU" "$PARLEY" serve --config "$dir/p.yaml" --listen "127.0.0.1:$port" \
        --data "$dir/data" >"$dir/log" 2>&1 &
    echo $! >"$TMP/$2.pid"
    PIDS+=($!)
    wait_port "$port"
    echo "$port"
}

# fan ENGINE LABEL CROSS ROUND: 1,000 subscribers, FAN_RATE pubs/s; with
# CROSS=1 the subscribers are on a second node (another node than the
# publisher's), which is the latency cluster mode adds.
fan() {
    local pa pb
    pa=$(node "$1" "fa-$2-$4" "f$2$4")
    pb=$pa
    [ "$3" = 1 ] && pb=$(node "$1" "fb-$2-$4" "f$2$4")
    sleep 1.5
    taskset -c "$CLIENT_CPU" "$PARLEY" bench fanout --url "127.0.0.1:$pa" \
        --sub-url "127.0.0.1:$pb" --secret "$SECRET" --tenant bench --subs 1000 \
        --rate "$FAN_RATE" --duration "$DURATION" --quiet --label "$2" | tail -n 1 |
        python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); d["round_trips"]=0; print(json.dumps(d))'
    for f in "$TMP/fa-$2-$4.pid" "$TMP/fb-$2-$4.pid"; do
        [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null
    done
    return 0
}

LINES="$TMP/lines.jsonl"
FANS="$TMP/fans.jsonl"
FAN_RATE=${FAN_RATE:-100}
for round in $(seq 1 "$ROUNDS"); do
    run sqlite "$round" >>"$LINES"
    run redis "$round" >>"$LINES"
    fan sqlite sqlite 0 "$round" >>"$FANS"
    fan redis redis-same-node 0 "$round" >>"$FANS"
    fan redis redis-other-node 1 "$round" >>"$FANS"
done

python3 - "$LINES" "$FANS" <<'PY' | tee "${OUT:-/dev/null}"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| run | engine | acked pubs/s | ack p50 / p99 (ms) | Redis round trips per pub | lost |")
print("|---|---|---:|---:|---:|---:|")
for i, r in enumerate(rows):
    a = r["ack_latency_us"]
    rt = "%.3f" % (r["round_trips"] / r["pubs_acked"]) if r["label"] == "redis" and r["pubs_acked"] else "-"
    print("| %d | %s | %.0f | %.2f / %.2f | %s | %d |" % (i // 2 + 1, r["label"], r["pubs_per_s"],
          a["p50"] / 1000, a["p99"] / 1000, rt, r["lost"]))
by = {}
for r in rows:
    by.setdefault(r["label"], []).append(r["pubs_per_s"])
for sq, rd in zip(by.get("sqlite", []), by.get("redis", [])):
    print("\nredis/sqlite acked publish rate: %.2fx" % (rd / sq))
fans = [json.loads(l) for l in open(sys.argv[2])]
print("\n| fanout, 1,000 subscribers | deliveries/s | publish-to-delivery p50 / p99 (ms) | lost |")
print("|---|---:|---:|---:|")
for r in fans:
    l = r["latency_us"]
    print("| %s | %.0f | %.2f / %.2f | %d |" % (r["label"], r["deliveries_per_s"], l["p50"] / 1000,
          l["p99"] / 1000, r["lost"]))
PY
[ -n "$OUT" ] && cat "$LINES" "$FANS" >"$OUT.jsonl"
exit 0
