#!/usr/bin/env bash
# Runs the same `parley bench` scenarios against nats-server (WebSocket),
# against parley, and against the reference broadcaster bench/refcast.c (the
# ceiling: what the client and the kernel allow) in one go, each server
# freshly started and pinned to CPU 0,
# the bench client pinned to CPU 1, and prints the figures and the
# parley/nats ratios as a markdown table (saved with --out FILE, the raw JSON
# lines beside it as FILE.jsonl). When the client's core is the limit (both
# servers below 100% CPU), "deliveries per server CPU second" is the ratio
# that still compares the servers.
#
#   bench/compare.sh [--out bench/results/YYYY-MM-DD-compare.md] [--all] [--quick]
#                    [--idle-verify] [--chat]
#
# --all adds the parley-only scenarios (latency at half the max rate,
# publish, storm, the idle verification bursts) so one run reproduces every
# figure in bench/README.md.
# --idle-verify runs only the idle verification bursts (IDLE_CONNS
# subscribers, one publish each, answers read as they arrive and read only
# after 1 s); no nats-server needed.
# --chat runs only the chat scenario (CHAT_CONNS connections in 5 of
# CHAT_ROOMS rooms each): a fixed CHAT_RATE and --find-max, against
# nats-server (a subject per room), parley standard and ephemeral, and
# refcast. Without --chat the fixed-rate chat runs are part of the default
# set and the --find-max ones of --all.
# --quick uses small counts (a smoke run, figures meaningless).
# Environment: PARLEY (default build/parley), NATS_SERVER (nats-server),
# REFCAST (build/refcast, built when missing), DURATION (10), FANOUT_SUBS
# ("1000 10000"), CHANNELS ("1000 10000": the channels scenario, one
# subscriber per channel), IDLE_CONNS (19000), CHAT_CONNS (10000), CHAT_ROOMS
# (2000), CHAT_RATE (2000 pubs/s: the fixed-rate runs), CHAT_FROM (500
# pubs/s: the first --find-max step),
# CHAT_STEP (5: seconds per --find-max step), CHAT_P99 (100ms: the steps'
# p99 bound), SERVER_CPU (0), CLIENT_CPU (1).
set -euo pipefail

cd "$(dirname "$0")/.."
. bench/config.sh
PARLEY=${PARLEY:-build/parley}
NATS_SERVER=${NATS_SERVER:-nats-server}
DURATION=${DURATION:-10}
FANOUT_SUBS=${FANOUT_SUBS:-"1000 10000"}
CHANNELS=${CHANNELS:-"1000 10000"}
REFCAST=${REFCAST:-build/refcast}
IDLE_CONNS=${IDLE_CONNS:-19000}
CHAT_CONNS=${CHAT_CONNS:-10000}
CHAT_ROOMS=${CHAT_ROOMS:-2000}
CHAT_RATE=${CHAT_RATE:-2000}
CHAT_FROM=${CHAT_FROM:-500}
CHAT_STEP=${CHAT_STEP:-5}
CHAT_P99=${CHAT_P99:-100ms}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
OUT=""
ALL=0
VERIFY_ONLY=0
CHAT_ONLY=0
while [ $# -gt 0 ]; do
    case "$1" in
    --out) OUT=$2; shift 2 ;;
    --all) ALL=1; shift ;;
    --quick) DURATION=2; FANOUT_SUBS="50"; CHANNELS="50"; IDLE_CONNS=500; CHAT_CONNS=200
        CHAT_ROOMS=40; CHAT_RATE=500; CHAT_FROM=500; CHAT_STEP=1; shift ;;
    --idle-verify) VERIFY_ONLY=1; shift ;;
    --chat) CHAT_ONLY=1; shift ;;
    *) echo "usage: $0 [--out FILE] [--all] [--quick] [--idle-verify] [--chat]" >&2; exit 2 ;;
    esac
done

if [ $VERIFY_ONLY -eq 1 ]; then
    NATS_SERVER=true
elif ! command -v "$NATS_SERVER" >/dev/null 2>&1 && [ "$NATS_SERVER" = nats-server ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get install -y -qq nats-server >/dev/null
fi
[ -x "$REFCAST" ] || cmake --build "$(dirname "$REFCAST")" --target refcast >/dev/null
for bin in "$PARLEY" "$NATS_SERVER" "$REFCAST" taskset curl python3; do
    command -v "$bin" >/dev/null 2>&1 || [ -x "$bin" ] || { echo "missing: $bin" >&2; exit 2; }
done

TMP=$(mktemp -d /tmp/parley-compare.XXXXXX)
SECRET=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
PARLEY_PORT=$((20000 + RANDOM % 10000))
NATS_PORT=$((PARLEY_PORT + 1))
NATS_WS_PORT=$((PARLEY_PORT + 2))
REF_PORT=$((PARLEY_PORT + 3))
SERVER_PID=""
RESULTS="$TMP/results.jsonl"
: >"$RESULTS"

cleanup() {
    stop_server
    rm -rf "$TMP"
}
trap cleanup EXIT

# The file descriptor limit applies to the servers too: raise it to the hard limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}

start_nats() {
    cat >"$TMP/nats.conf" <<CONF
listen: "127.0.0.1:$NATS_PORT"
max_payload: 1048576
websocket { listen: "127.0.0.1:$NATS_WS_PORT", no_tls: true }
CONF
    taskset -c "$SERVER_CPU" "$NATS_SERVER" -c "$TMP/nats.conf" >"$TMP/nats.log" 2>&1 &
    SERVER_PID=$!
    wait_port "$NATS_WS_PORT"
}

start_refcast() {
    taskset -c "$SERVER_CPU" "$REFCAST" --port "$REF_PORT" >"$TMP/refcast.log" 2>&1 &
    SERVER_PID=$!
    wait_port "$REF_PORT"
}

start_parley() {
    rm -rf "$TMP/data"
    mkdir -p "$TMP/data"
    parley_bench_config "$TMP/parley.yaml" "$SECRET"
    taskset -c "$SERVER_CPU" "$PARLEY" serve --config "$TMP/parley.yaml" \
        --listen "127.0.0.1:$PARLEY_PORT" --data "$TMP/data" >"$TMP/parley.log" 2>&1 &
    SERVER_PID=$!
    wait_port "$PARLEY_PORT"
    for _ in $(seq 1 50); do
        curl -fs "http://127.0.0.1:$PARLEY_PORT/healthz" >/dev/null && return 0
        sleep 0.1
    done
    echo "parley did not become healthy; log:" >&2
    tail -20 "$TMP/parley.log" >&2
    return 1
}

# bench LABEL ARGS...: one run against the server started last; keeps its JSON line.
bench() {
    local label=$1
    shift
    echo "== $label" >&2
    local line
    set +e
    taskset -c "$CLIENT_CPU" "$PARLEY" bench "$@" --server-pid "$SERVER_PID" --label "$label" \
        >"$TMP/run.out"
    local rc=$?
    set -e
    head -1 "$TMP/run.out" >&2
    line=$(sed -n 2p "$TMP/run.out")
    [ -n "$line" ] && echo "$line" >>"$RESULTS"
    [ $rc -eq 0 ] || echo "   (exit status $rc)" >&2
}

PA=(--url "127.0.0.1:$PARLEY_PORT" --secret "$SECRET" --tenant bench --quiet)
NA=(--url "127.0.0.1:$NATS_WS_PORT" --proto nats --quiet)
RA=(--url "127.0.0.1:$REF_PORT" --secret x --tenant x --quiet)

# idle_verify: the verification bursts, each against a fresh server.
idle_verify() {
    start_parley
    bench "idle-$IDLE_CONNS-parley-verify" idle "${PA[@]}" --conns "$IDLE_CONNS" --hold 2 --verify
    stop_server
    start_parley
    bench "idle-$IDLE_CONNS-parley-verify-late" idle "${PA[@]}" --conns "$IDLE_CONNS" --hold 2 \
        --verify --verify-read-after 1
    stop_server
}

# every_server SCENARIO N: the scenario with N subscribers against
# nats-server, parley (standard and ephemeral) and refcast, each fresh.
every_server() {
    local scen=$1 n=$2
    start_nats
    bench "$scen-$n-nats" "$scen" "${NA[@]}" --subs "$n" --duration "$DURATION"
    stop_server
    for cls in standard ephemeral; do
        start_parley
        bench "$scen-$n-parley-$cls" "$scen" "${PA[@]}" --subs "$n" --duration "$DURATION" \
            --class "$cls"
        stop_server
    done
    start_refcast
    bench "$scen-$n-refcast" "$scen" "${RA[@]}" --subs "$n" --duration "$DURATION"
    stop_server
}

# chat_fixed / chat_max: the chat scenario at CHAT_RATE, and stepped up
# from it until a step misses CHAT_P99 or falls behind; parley standard and
# ephemeral, nats-server, then refcast (the ceiling), each against a
# fresh server.
CA=(--conns "$CHAT_CONNS" --rooms "$CHAT_ROOMS")
chat_fixed() {
    start_nats
    bench "chat-$CHAT_CONNS-nats" chat "${NA[@]}" "${CA[@]}" --rate "$CHAT_RATE" \
        --duration "$DURATION"
    stop_server
    for cls in standard ephemeral; do
        start_parley
        bench "chat-$CHAT_CONNS-parley-$cls" chat "${PA[@]}" "${CA[@]}" --rate "$CHAT_RATE" \
            --duration "$DURATION" --class "$cls"
        stop_server
    done
    start_refcast
    bench "chat-$CHAT_CONNS-refcast" chat "${RA[@]}" "${CA[@]}" --rate "$CHAT_RATE" \
        --duration "$DURATION"
    stop_server
}
chat_max() {
    start_nats
    bench "chat-$CHAT_CONNS-findmax-nats" chat "${NA[@]}" "${CA[@]}" --find-max \
        --rate "$CHAT_FROM" --duration "$CHAT_STEP" --p99-bound "$CHAT_P99"
    stop_server
    for cls in standard ephemeral; do
        start_parley
        bench "chat-$CHAT_CONNS-findmax-parley-$cls" chat "${PA[@]}" "${CA[@]}" --find-max \
            --rate "$CHAT_FROM" --duration "$CHAT_STEP" --p99-bound "$CHAT_P99" --class "$cls"
        stop_server
    done
    start_refcast
    bench "chat-$CHAT_CONNS-findmax-refcast" chat "${RA[@]}" "${CA[@]}" --find-max \
        --rate "$CHAT_FROM" --duration "$CHAT_STEP" --p99-bound "$CHAT_P99"
    stop_server
}

if [ $CHAT_ONLY -eq 1 ]; then
    chat_fixed
    chat_max
    ALL=0
elif [ $VERIFY_ONLY -eq 1 ]; then
    idle_verify
else
    for subs in $FANOUT_SUBS; do every_server fanout "$subs"; done
    # Many small rooms: one subscriber per channel, one publisher round-robin.
    for n in $CHANNELS; do every_server channels "$n"; done
    chat_fixed
    start_nats
    bench "idle-$IDLE_CONNS-nats" idle "${NA[@]}" --conns "$IDLE_CONNS" --hold 5
    stop_server
    start_parley
    bench "idle-$IDLE_CONNS-parley" idle "${PA[@]}" --conns "$IDLE_CONNS" --hold 5
    stop_server
fi

if [ $ALL -eq 1 ]; then
    first=${FANOUT_SUBS%% *}
    half=$(python3 - "$RESULTS" "fanout-$first-parley-standard" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
r = [x for x in rows if x.get("label") == sys.argv[2]]
print(max(1, int(r[0]["pubs_per_s"] / 2)) if r else 100)
PY
)
    start_parley
    bench "fanout-$first-parley-standard-halfrate" fanout "${PA[@]}" --subs "$first" \
        --duration "$DURATION" --rate "$half"
    stop_server
    # A fixed low rate (20 pubs/s to the first fan-out size): latency, not throughput.
    start_parley
    bench "fanout-$first-rate20-parley-standard" fanout "${PA[@]}" --subs "$first" \
        --duration "$DURATION" --rate 20
    stop_server
    start_refcast
    bench "fanout-$first-rate20-refcast" fanout "${RA[@]}" --subs "$first" --duration "$DURATION" \
        --rate 20
    stop_server
    start_parley
    bench "publish-64-parley" publish "${PA[@]}" --publishers 64 --duration "$DURATION"
    stop_server
    storm_subs=10000
    [ "$first" -lt 1000 ] && storm_subs=$first
    start_parley
    # One channel per subscriber: 10,000 pubs/s is then one pub per channel per
    # second (one shared channel would need 10^8 deliveries/s); see README.
    bench "storm-$storm_subs-parley" storm "${PA[@]}" --subs "$storm_subs" \
        --channels "$storm_subs" --rate 10000 --duration "$((DURATION > 8 ? DURATION : 8))" \
        --drop-at 2
    stop_server
    idle_verify
    chat_max
fi

python3 - "$RESULTS" "$(date -u +%Y-%m-%d)" "$(nproc)" <<'PY' | tee "$TMP/table.md"
import json, sys
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    rows[r["label"]] = r
def us(v): return "%.2f ms" % (v / 1000.0)
def rss(r):
    v = r.get("rss_per_conn_bytes")
    return "-" if v is None else "%.0f B (%d -> %d KiB)" % (v, r["rss_before_kib"], r["rss_hold_kib"])
print("# parley vs nats-server and the reference broadcaster, %s (%s cores; server on one core, client on another)\n" % (sys.argv[2], sys.argv[3]))
def cpu_per(r):
    if "server_cpu_s" not in r or not r["deliveries"]:
        return None
    return r["server_cpu_s"] * 1e6 / r["deliveries"]
print("| run | conns | pubs/s | deliveries/s | p50 | p99 | p99.9 | max | lost/dup/ooo | server CPU s | server CPU µs/delivery | RSS/conn | connect/s | ok |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for k, r in rows.items():
    lat = r["latency_us"]
    cp = cpu_per(r)
    print("| %s | %d | %.0f | %.0f | %s | %s | %s | %s | %d/%d/%d | %s | %s | %s | %.0f | %s |" % (
        k, r["connections"], r["pubs_per_s"], r["deliveries_per_s"], us(lat["p50"]), us(lat["p99"]),
        us(lat["p999"]), us(lat["max"]), r["lost"], r["duplicated"], r["out_of_order"],
        "%.2f" % r["server_cpu_s"] if "server_cpu_s" in r else "-",
        "-" if cp is None else "%.3f" % cp, rss(r),
        r["connect_per_s"], "yes" if r["ok"] else "NO"))
print("\n## Ratios (parley / nats)\n")
print("| comparison | ratio |")
print("|---|---|")
for k, r in rows.items():
    if not k.startswith(("fanout-", "channels-", "chat-")) or not k.endswith("-nats") or "-findmax" in k:
        continue
    base = k[:-len("-nats")]
    for cls in ("standard", "ephemeral"):
        p = rows.get("%s-parley-%s" % (base, cls))
        if p and r["deliveries_per_s"] > 0:
            print("| %s deliveries/s, parley %s | %.2fx |" % (base, cls, p["deliveries_per_s"] / r["deliveries_per_s"]))
        if p and cpu_per(p) and cpu_per(r):
            print("| %s deliveries per server CPU second, parley %s | %.2fx |" % (base, cls, cpu_per(r) / cpu_per(p)))
print("\n## Ratios to the reference broadcaster (parley / refcast: 1.00x is the ceiling)\n")
print("| comparison | ratio |")
print("|---|---|")
for k, ref in rows.items():
    if not k.endswith("-refcast") or "-findmax" in k:
        continue
    base = k[:-len("-refcast")]
    for cls in ("standard", "ephemeral"):
        p = rows.get("%s-parley-%s" % (base, cls))
        if not p or ref["deliveries_per_s"] <= 0:
            continue
        print("| %s deliveries/s, parley %s | %.2fx |" % (base, cls, p["deliveries_per_s"] / ref["deliveries_per_s"]))
        print("| %s delivery p50 / p99, parley %s | %.2fx / %.2fx |" % (
            base, cls, p["latency_us"]["p50"] / max(ref["latency_us"]["p50"], 1),
            p["latency_us"]["p99"] / max(ref["latency_us"]["p99"], 1)))
for k, r in rows.items():
    if k.startswith("idle-") and k.endswith("-nats"):
        p = rows.get(k[:-len("-nats")] + "-parley")
        if p and r.get("rss_per_conn_bytes") and p.get("rss_per_conn_bytes"):
            print("| %s RSS per connection (lower is better) | %.2fx |" % (k[:-5], p["rss_per_conn_bytes"] / r["rss_per_conn_bytes"]))
        if p and r["connect_per_s"] > 0:
            print("| %s connects/s | %.2fx |" % (k[:-5], p["connect_per_s"] / r["connect_per_s"]))
for k in ("publish-64-parley",):
    r = rows.get(k)
    if r:
        a = r["ack_latency_us"]
        print("\npublish, 64 publishers: %.0f acked pubs/s, ack p50 %s p99 %s, commit batch avg %s" % (
            r["pubs_per_s"], us(a["p50"]), us(a["p99"]), r.get("commit_batch_avg", "n/a")))
for k, r in rows.items():
    v = r.get("verify")
    if v:
        pc = v["publisher_closed"]
        print("\n%s: %d published, %d acked, %d refused %s, %d unanswered, %d/%d subscribers served, %d missing, closed by the server %s%s: %s" % (
            k, v["published"], v["acked"], v["refused"], json.dumps(v["refused_by"]), v["unanswered"],
            v["delivered"], v["channels"], v["missing"], json.dumps(v["disconnects"]),
            "" if pc is None else " (publisher: %d after %d acks)" % (pc["code"], pc["acked_before"]),
            "PASS" if v["ok"] else "FAIL"))
for k, r in rows.items():
    c = r.get("chat")
    if not c:
        continue
    steps = " ".join("%.0f/s:p99=%.1fms%s" % (t["rate"], t["p99_ms"], "" if t["ok"] else
                     " (over)" if t["kept_up"] else " (behind)") for t in c["steps"])
    print("\n%s: %d rooms (sizes %d..%d, median %d, %.1f members per pub), %d of %d memberships lossy, %d with dups or reordering; steps %s%s" % (
        k, c["rooms"], c["size_min"], c["size_max"], c["size_median"], c["fanout"],
        c["memberships_lossy"], c["memberships"], c["memberships_dup_ooo"], steps,
        "; max sustainable rate %.0f pubs/s (p99 <= %.0f ms)" % (c["max_rate"], c["p99_bound_ms"]) if c["find_max"] else ""))
for k, r in rows.items():
    if k.startswith("chat-") and k.endswith(("-refcast", "-nats")) and r["chat"]["max_rate"] > 0:
        base, other = k.rsplit("-", 1)
        for cls in ("standard", "ephemeral"):
            p = rows.get("%s-parley-%s" % (base, cls))
            if p and p["chat"]["find_max"]:
                print("\n%s max sustainable rate, parley %s / %s: %.2fx" % (
                    base, cls, other, p["chat"]["max_rate"] / r["chat"]["max_rate"]))
for k, r in rows.items():
    if k.startswith("storm-"):
        print("\n%s: caught up in %s s, gaps %d, lost %d, dups %d, recovered %d pubs in subscribe results" % (
            k, r.get("catchup_s"), r["gaps"], r["lost"], r["duplicated"], r.get("recovered", 0)))
PY
if [ -n "$OUT" ]; then
    cp "$TMP/table.md" "$OUT"
    cp "$RESULTS" "${OUT%.md}.jsonl"
    echo "saved $OUT and ${OUT%.md}.jsonl" >&2
fi
