#!/usr/bin/env bash
# Webhooks beside a full publish load: the question the webhook goal asks
# (signed deliveries per second, and the acked publish rate while they run,
# as a ratio to the same load without them). Two `parley bench publish`
# clients run at once against one server on CPU 0: the main one at full
# speed on tenant `bench` (never routed) and a second one at a fixed rate
# on tenant `hooked`, whose every pub a route sends to hook_sink. The
# baseline runs the same two clients with no route. Runs alternate (base,
# hooks, base, hooks) because these machines are noisy.
#
#   bench/webhooks_mix.sh [--rate 10000] [--duration 10] [--out FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/config.sh
PARLEY=${PARLEY:-build/parley}
HOOK_SINK=${HOOK_SINK:-build/hook_sink}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
RATE=10000
DURATION=10
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
    --rate) RATE=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "usage: $0 [--rate N] [--duration S] [--out FILE]" >&2; exit 2 ;;
    esac
done

TMP=$(mktemp -d /tmp/parley-whmix.XXXXXX)
SECRET=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
HOOK_SECRET="whsec_$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
# Below the kernel's ephemeral range (32768 and up by default), where a
# port the clients' own connections hold made a run fail to listen.
PORT=$((20000 + RANDOM % 10000))
SINK_PORT=$((PORT + 1))
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

wait_http() {
    for _ in $(seq 1 100); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "no answer from $1" >&2
    return 1
}

config() { # config ROUTED
    cat <<CONF
tenants:
  - {id: bench, jwt_secret: "$SECRET"}
  - {id: hooked, jwt_secret: "$SECRET"}
namespaces:
  - {name: "", history_size: 1000}
limits: {max_connections_per_ip: 100000}
CONF
    [ "$1" = 1 ] || return 0
    cat <<CONF
webhook_allowed_networks: ["127.0.0.0/8"]
webhooks:
  - {id: sink, tenant: hooked, url: "http://127.0.0.1:$SINK_PORT/hook", secret: "$HOOK_SECRET", max_in_flight: 64}
routes:
  - {id: all, tenant: hooked, match: {channel: "*"}, action: {webhook: sink}}
CONF
}

# one LABEL ROUTED: a run; prints one JSON line.
one() {
    local label=$1 routed=$2
    taskset -c "$CLIENT_CPU" "$HOOK_SINK" --port "$SINK_PORT" 2>/dev/null &
    local sink=$!
    PIDS+=("$sink")
    rm -rf "$TMP/data" && mkdir -p "$TMP/data"
    config "$routed" >"$TMP/p.yaml"
    taskset -c "$SERVER_CPU" "$PARLEY" serve --config "$TMP/p.yaml" --listen "127.0.0.1:$PORT" \
        --data "$TMP/data" >"$TMP/server.log" 2>&1 &
    local srv=$!
    PIDS+=("$srv")
    wait_http "http://127.0.0.1:$PORT/healthz"
    wait_http "http://127.0.0.1:$SINK_PORT/count"
    local c0
    c0=$(curl -fs "http://127.0.0.1:$SINK_PORT/count")
    taskset -c "$CLIENT_CPU" "$PARLEY" bench publish --url "127.0.0.1:$PORT" --secret "$SECRET" \
        --tenant hooked --publishers 4 --rate "$RATE" --duration "$DURATION" --quiet \
        >"$TMP/side.out" &
    local side=$!
    taskset -c "$CLIENT_CPU" "$PARLEY" bench publish --url "127.0.0.1:$PORT" --secret "$SECRET" \
        --tenant bench --duration "$DURATION" --server-pid "$srv" --quiet >"$TMP/main.out"
    wait "$side"
    local c1
    c1=$(curl -fs "http://127.0.0.1:$SINK_PORT/count")
    python3 - "$label" "$routed" "$TMP/main.out" "$TMP/side.out" "$c0" "$c1" "$DURATION" <<'PY'
import json, sys
label, routed, main, side, c0, c1, dur = sys.argv[1:8]
m = json.loads(open(main).read().splitlines()[1])
s = json.loads(open(side).read().splitlines()[1])
print(json.dumps({"label": label, "routed": routed == "1", "main_pubs_per_s": m["pubs_per_s"],
                  "main_ack_p99_ms": m["ack_latency_us"]["p99"] / 1000,
                  "side_pubs_per_s": s["pubs_per_s"], "server_cpu_s": m.get("server_cpu_s"),
                  "deliveries_per_s": (int(c1) - int(c0)) / float(dur)}))
PY
    kill "$srv" "$sink" 2>/dev/null || true
    wait "$srv" "$sink" 2>/dev/null || true
    PIDS=()
}

: >"$TMP/rows.jsonl"
for i in 1 2; do
    one "base$i" 0 | tee -a "$TMP/rows.jsonl" >&2
    one "hooks$i" 1 | tee -a "$TMP/rows.jsonl" >&2
done
python3 - "$TMP/rows.jsonl" "$RATE" "$DURATION" >"$TMP/table.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {r["label"]: r for r in rows}
print("| run | main acked pubs/s (tenant bench) | main ack p99 ms | routed tenant pubs/s (target %s) | signed deliveries/s | main ratio to the same pair's base |" % sys.argv[2])
print("|---|---|---|---|---|---|")
for r in rows:
    base = by.get("base" + r["label"][-1])
    ratio = "-" if not r["routed"] else "%.2f" % (r["main_pubs_per_s"] / base["main_pubs_per_s"])
    print("| %s | %.0f | %.1f | %.0f | %s | %s |" % (r["label"], r["main_pubs_per_s"], r["main_ack_p99_ms"],
          r["side_pubs_per_s"], "%.0f" % r["deliveries_per_s"] if r["routed"] else "-", ratio))
PY
cat "$TMP/table.md"
if [ -n "$OUT" ]; then
    cp "$TMP/table.md" "$OUT"
    cp "$TMP/rows.jsonl" "${OUT%.md}.jsonl"
fi
