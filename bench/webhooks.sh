#!/usr/bin/env bash
# The webhook benchmark: what outbound webhooks cost the publish path and how
# fast deliveries leave. Every run starts a fresh parley (server on CPU 0)
# and a fresh bench/hook_sink receiver (on CPU 1, beside the bench client),
# runs `parley bench publish` (standard class, 64 publishers) against it and
# samples /metrics and the sink's /count every 200 ms
# (bench/webhook_sample.py):
#
#   a  baseline: no webhooks, no routes; acked publishes/s
#   b  one endpoint (hook_sink on loopback, max_in_flight 64, default retry
#      schedule) and one route matching every pub of the bench channels
#      (match {channel: "*"}): acked publishes/s; deliveries/s during the
#      publish window (sink /count delta / window) and overall (all the
#      deliveries the sink got / time from the start until the queue drained);
#      max parley_route_lag_entries and parley_webhook_queue_depth
#   c  slow receiver: hook_sink --delay-ms 2000, max_in_flight 16: acked
#      publishes/s (the publish path must not slow down)
#   d  --rate 50000 with the route of b: max and final route lag, and whether
#      it is back to 0 within 5 s after publishing stopped
#   bq, cq  b and c again with /metrics left unread while publishing (only the
#      sink's /count is sampled; /metrics is read again once publishing ends):
#      reading /metrics waits for the hooks thread's lock on the worker's
#      loop, so the 200 ms sampling of b and c itself slows the publish path
#      (bench/README.md, "Webhooks"); bq/a and cq/a are the publish path's
#      own cost.
#
# The runs go a b bq c cq, twice, then d once. The table gives every figure
# and the ratios b/a, bq/a, c/a and cq/a of each pair. It also counts, per
# run, the pubs the route turned into deliveries (created), those the router
# reported missed (parley_route_events_missed_total: retention removed them
# before the router read them) and the rest (acked - created - missed), which
# were neither.
#
#   bench/webhooks.sh [--out bench/results/YYYY-MM-DD-webhooks.md] [--quick]
#   bench/webhooks.sh --table FILE.jsonl   # the table again from saved results
#
# --quick: 2 s runs, short drain waits (a smoke run; figures meaningless).
# Environment: PARLEY (build/parley), HOOK_SINK (build/hook_sink), DURATION
# (10), DRAIN_MAX (seconds to wait for b's queue to drain, 120), SERVER_CPU
# (0), CLIENT_CPU (1), HISTORY_SIZE (the namespace's history_size, 1000 as in
# bench/config.sh).
set -euo pipefail

cd "$(dirname "$0")/.."
PARLEY=${PARLEY:-build/parley}
HOOK_SINK=${HOOK_SINK:-build/hook_sink}
DURATION=${DURATION:-10}
DRAIN_MAX=${DRAIN_MAX:-120}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
HISTORY_SIZE=${HISTORY_SIZE:-1000}
OUT=""
TABLE_ONLY=""
while [ $# -gt 0 ]; do
    case "$1" in
    --out) OUT=$2; shift 2 ;;
    --table) TABLE_ONLY=$2; shift 2 ;;
    --quick) DURATION=2; DRAIN_MAX=15; shift ;;
    *) echo "usage: $0 [--out FILE] [--quick]" >&2; exit 2 ;;
    esac
done
# table JSONL LOAD: the markdown table of saved results.
table() {
    python3 - "$1" "$(date -u +%Y-%m-%d)" "$(nproc)" "$DURATION" "$2" "$HISTORY_SIZE" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {r["label"]: r for r in rows}
date, ncpu, dur, load, hist = sys.argv[2:7]
def f(v, fmt="%.0f"):
    return "-" if v is None else (fmt % v)
print("# Webhooks: publish path and deliveries, %s\n" % date)
print("%s cores; parley on CPU 0, bench client, hook_sink and the sampler on CPU 1; "
      "`parley bench publish` 64 publishers, inflight 64, standard class, %s s per run; "
      "history_size %s; load average before the table: %s.\n" % (ncpu, dur, hist, load))
print("| run | what | acked pubs/s | server CPU s | deliveries/s in window | deliveries/s until drained (drain s) | route lag max (entries) | queue depth max | created / missed / neither (of acked) | ok |")
print("|---|---|---|---|---|---|---|---|---|---|")
what = {"a": "no routes", "b": "route -> hook_sink, mif 64", "c": "slow sink 2 s, mif 16",
        "d": "route, --rate 50000", "bq": "as b, /metrics unread while publishing",
        "cq": "as c, /metrics unread while publishing"}
for r in rows:
    k = r["kind"]
    drained = "-"
    if k in ("b", "bq"):
        after = None
        if r.get("sink_total") is not None and r.get("sink_window") is not None and r["drain_s"] > 0:
            after = (r["sink_total"] - r["sink_window"]) / r["drain_s"]
        drained = "%s (%s%.1f s; %s/s once publishing stopped)" % (
            f(r.get("deliveries_total_per_s")),
            "" if r.get("drained") else "NOT drained after ", r["drain_s"], f(after))
    acc = "-"
    if k != "a":
        acc = "%s / %s / %s" % (f(r.get("created")), f(r.get("missed")), f(r.get("unaccounted")))
    print("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        r["label"], what[k], f(r["pubs_per_s"]), f(r["server_cpu_s"], "%.2f"),
        f(r.get("deliveries_window_per_s")) if k != "a" else "-", drained,
        f(r.get("lag_max")) if k != "a" else "-", f(r.get("depth_max")) if k != "a" else "-",
        acc, "yes" if r["exit"] == 0 else "exit %d" % r["exit"]))
print("\n## Ratios (same pair, acked publishes/s)\n")
print("| pair | b/a (webhooks on, /metrics every 200 ms) | bq/a (webhooks on, /metrics unread) | c/a (slow receiver, /metrics every 200 ms) | cq/a (slow receiver, /metrics unread) |")
print("|---|---|---|---|---|")
for i in (1, 2):
    a = by.get("a%d" % i)
    if not a or not a["pubs_per_s"]:
        continue
    cells = []
    for k in ("b", "bq", "c", "cq"):
        x = by.get("%s%d" % (k, i))
        cells.append(f(x and x["pubs_per_s"] / a["pubs_per_s"], "%.2f"))
    print("| %d | %s |" % (i, " | ".join(cells)))
d = by.get("d")
if d:
    print("\n## Routing lag at a fixed rate (--rate 50000)\n")
    print("acked %s pubs/s; route lag (log entries) max %s during publishing, %s overall, "
          "%s at the end; back to 0 %s; deliveries in window %s/s; "
          "created %s, missed %s, neither %s of %s acked." % (
        f(d["pubs_per_s"]), f(d.get("lag_max_during")), f(d.get("lag_max")), f(d.get("lag_final")),
        ("%.1f s after publishing stopped" % d["lag_zero_after_s"]) if d.get("lag_zero_after_s") is not None
        else "NOT within 5 s", f(d.get("deliveries_window_per_s")),
        f(d.get("created")), f(d.get("missed")), f(d.get("unaccounted")), f(d.get("pubs_acked"))))
PY
}
if [ -n "$TABLE_ONLY" ]; then
    table "$TABLE_ONLY" "${LOAD:-not recorded}"
    exit 0
fi

for bin in "$PARLEY" "$HOOK_SINK" taskset curl python3; do
    command -v "$bin" >/dev/null 2>&1 || [ -x "$bin" ] || {
        echo "missing: $bin (hook_sink: cmake --build build --target hook_sink)" >&2
        exit 2
    }
done

TMP=$(mktemp -d /tmp/parley-webhooks.XXXXXX)
SECRET=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
HOOK_SECRET="whsec_$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
PARLEY_PORT=$((20000 + RANDOM % 10000))
SINK_PORT=$((PARLEY_PORT + 1))
SERVER_PID=""
SINK_PID=""
SAMPLER_PID=""
RESULTS="$TMP/results.jsonl"
: >"$RESULTS"
SAMPLER=bench/webhook_sample.py
METRICS="http://127.0.0.1:$PARLEY_PORT/metrics"
SINK_URL="http://127.0.0.1:$SINK_PORT/count"

stop_pid() {
    local pid=$1
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
stop_all() {
    if [ -n "$SAMPLER_PID" ]; then touch "$TMP/stop"; stop_pid "$SAMPLER_PID"; SAMPLER_PID=""; fi
    stop_pid "$SERVER_PID"; SERVER_PID=""
    stop_pid "$SINK_PID"; SINK_PID=""
}
cleanup() {
    stop_all
    rm -rf "$TMP"
}
trap cleanup EXIT
. bench/config.sh
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# write_config FILE WITH_ROUTE MAX_IN_FLIGHT
write_config() {
    cat >"$1" <<CONF
tenants:
  - id: bench
    jwt_secret: "$SECRET"
namespaces:
  - name: ""
    history_size: $HISTORY_SIZE
limits:
  max_connections_per_ip: 100000
CONF
    [ "$2" = 1 ] || return 0
    cat >>"$1" <<CONF
webhook_allowed_networks: ["127.0.0.0/8"]
webhooks:
  - id: sink
    tenant: bench
    url: "http://127.0.0.1:$SINK_PORT/hook"
    secret: $HOOK_SECRET
    max_in_flight: $3
routes:
  - id: all
    tenant: bench
    match: {channel: "*"}
    action: {webhook: sink}
CONF
}

# start KIND: KIND is a (no routes), b, c (slow sink), d (as b), bq or cq
# (b and c without /metrics read while publishing).
start() {
    local kind=$1 route=1 mif=64 delay=0
    case $kind in
    a) route=0 ;;
    c | cq) mif=16; delay=2000 ;;
    esac
    rm -f "$TMP/gate"
    case $kind in bq | cq) ;; *) touch "$TMP/gate" ;; esac
    if [ $route = 1 ]; then
        taskset -c "$CLIENT_CPU" "$HOOK_SINK" --port "$SINK_PORT" --delay-ms "$delay" \
            2>"$TMP/sink.log" &
        SINK_PID=$!
        wait_port "$SINK_PORT"
    fi
    rm -rf "$TMP/data"
    mkdir -p "$TMP/data"
    write_config "$TMP/parley.yaml" "$route" "$mif"
    taskset -c "$SERVER_CPU" "$PARLEY" serve --config "$TMP/parley.yaml" \
        --listen "127.0.0.1:$PARLEY_PORT" --data "$TMP/data" >"$TMP/parley.log" 2>&1 &
    SERVER_PID=$!
    wait_port "$PARLEY_PORT"
    for _ in $(seq 1 50); do
        curl -fs "http://127.0.0.1:$PARLEY_PORT/healthz" >/dev/null && break
        sleep 0.1
    done
    # Let the hooks thread turn the committed log on and take its position.
    sleep 0.5
    rm -f "$TMP/stop" "$TMP/samples.jsonl"
    taskset -c "$CLIENT_CPU" python3 "$SAMPLER" --metrics "$METRICS" \
        $([ $route = 1 ] && echo --sink "$SINK_URL") --out "$TMP/samples.jsonl" \
        --stop "$TMP/stop" --gate "$TMP/gate" &
    SAMPLER_PID=$!
}

edge() { python3 "$SAMPLER" --once "$METRICS" "$SINK_URL"; }

# run LABEL KIND [bench args]: one publish run, figures appended to RESULTS.
run() {
    local label=$1 kind=$2
    shift 2
    echo "== $label" >&2
    start "$kind"
    sleep 0.3
    local e0 e1 e2 rc
    e0=$(edge)
    set +e
    taskset -c "$CLIENT_CPU" "$PARLEY" bench publish --url "127.0.0.1:$PARLEY_PORT" \
        --secret "$SECRET" --tenant bench --quiet --duration "$DURATION" \
        --server-pid "$SERVER_PID" --label "$label" "$@" >"$TMP/run.out"
    rc=$?
    set -e
    touch "$TMP/gate"
    e1=$(edge)
    head -1 "$TMP/run.out" >&2
    [ $rc -eq 0 ] || echo "   (exit status $rc)" >&2
    # After publishing: b waits for the queue to drain, d watches the lag 5 s.
    local waited=0 limit=1
    case $kind in b | bq) limit=$DRAIN_MAX ;; d) limit=5 ;; esac
    if [ "$kind" = b ] || [ "$kind" = bq ]; then
        while [ $waited -lt $((limit * 5)) ]; do
            python3 - "$METRICS" "$SINK_URL" <<'PY' && break
import json, subprocess, sys
s = json.loads(subprocess.check_output([sys.executable, "bench/webhook_sample.py", "--once", sys.argv[1], sys.argv[2]]))
done = s["depth"] == 0 and s["lag"] == 0 and s["in_flight"] == 0 and s["sink"] is not None and s["delivered"] is not None and s["sink"] >= s["delivered"]
sys.exit(0 if done else 1)
PY
            sleep 0.2
            waited=$((waited + 1))
        done
    else
        sleep "$limit"
    fi
    e2=$(edge)
    touch "$TMP/stop"
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=""
    python3 - "$label" "$kind" "$TMP/run.out" "$TMP/samples.jsonl" "$e0" "$e1" "$e2" \
        "$rc" >>"$RESULTS" <<'PY'
import json, sys
label, kind, runout, samples, e0, e1, e2, rc = sys.argv[1:9]
lines = open(runout).read().splitlines()
b = json.loads(lines[1]) if len(lines) > 1 else {}
e0, e1, e2 = json.loads(e0), json.loads(e1), json.loads(e2)
ss = [json.loads(l) for l in open(samples)] if samples else []
def d(a, z, k):
    return None if a.get(k) is None or z.get(k) is None else z[k] - a[k]
def mx(k, lo=None, hi=None):
    v = [s[k] for s in ss if s.get(k) is not None and (lo is None or s["t"] >= lo) and (hi is None or s["t"] <= hi)]
    return max(v) if v else None
r = {"label": label, "kind": kind, "exit": int(rc),
     "pubs_acked": b.get("pubs_acked"), "pubs_per_s": b.get("pubs_per_s"),
     "publish_s": b.get("publish_s"), "server_cpu_s": b.get("server_cpu_s"),
     "ack_p50_us": b.get("ack_latency_us", {}).get("p50"),
     "ack_p99_us": b.get("ack_latency_us", {}).get("p99"),
     "commit_batch_avg": b.get("commit_batch_avg"),
     "window_s": e1["t"] - e0["t"]}
if kind != "a":
    w = r["window_s"]
    sw = d(e0, e1, "sink")
    r["sink_window"] = sw
    r["deliveries_window_per_s"] = sw / w if sw is not None and w > 0 else None
    st = d(e0, e2, "sink")
    r["sink_total"] = st
    r["created"] = d(e0, e2, "created")
    r["missed"] = d(e0, e2, "missed")
    if r["pubs_acked"] is not None and r["created"] is not None and r["missed"] is not None:
        r["unaccounted"] = r["pubs_acked"] - r["created"] - r["missed"]
    r["lag_max"] = mx("lag")
    r["depth_max"] = mx("depth")
    r["lag_final"] = e2["lag"]
    r["depth_final"] = e2["depth"]
    if kind in ("b", "bq"):
        r["drained"] = e2["depth"] == 0 and e2["lag"] == 0
        r["drain_s"] = e2["t"] - e1["t"]
        r["deliveries_total_per_s"] = st / (e2["t"] - e0["t"]) if st is not None else None
    if kind == "d":
        # Back to 0 within 5 s of publishing stopping: the first sample after
        # e1 with lag 0 (and every later one).
        after = [s for s in ss if s["t"] >= e1["t"] and s.get("lag") is not None]
        zero_at = None
        for i, s in enumerate(after):
            if all(x["lag"] == 0 for x in after[i:]):
                zero_at = s["t"] - e1["t"]
                break
        r["lag_zero_after_s"] = zero_at
        r["lag_zero_within_5s"] = zero_at is not None and zero_at <= 5.0 and e2["lag"] == 0
        r["lag_max_during"] = mx("lag", e0["t"], e1["t"])
print(json.dumps(r))
PY
    cp "$TMP/samples.jsonl" "$TMP/samples-$label.jsonl" 2>/dev/null || true
    stop_all
}

for i in 1 2; do
    run "a$i" a
    run "b$i" b
    run "bq$i" bq
    run "c$i" c
    run "cq$i" cq
done
run d d --rate 50000

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
table "$RESULTS" "$LOAD" | tee "$TMP/table.md"
if [ -n "$OUT" ]; then
    cp "$TMP/table.md" "$OUT"
    cp "$RESULTS" "${OUT%.md}.jsonl"
    for s in "$TMP"/samples-*.jsonl; do
        [ -e "$s" ] || continue
        l=$(basename "$s" .jsonl)
        sed "s/^{/{\"run\": \"${l#samples-}\", /" "$s"
    done >"${OUT%.md}.samples.jsonl"
    echo "saved $OUT, ${OUT%.md}.jsonl and ${OUT%.md}.samples.jsonl" >&2
fi
