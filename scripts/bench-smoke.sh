#!/usr/bin/env bash
# A few seconds of `parley bench` against a fresh server: asserts zero loss,
# duplicates and reordering (the bench exits non-zero on any), also per
# connection and room in a small chat, and that an idle verification burst
# reaches every subscriber; then the same client
# against the reference broadcaster (bench/refcast.c), and a short run of the
# group-commit probe (bench/commit_probe.c), the baselines bench/compare.sh
# divides by; not speed.
# Usage: scripts/bench-smoke.sh PATH_TO_PARLEY
set -euo pipefail
bin=${1:-build/parley}
dir=$(mktemp -d)
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
secret="bench-smoke-secret-0123456789abcdef"
cat > "$dir/parley.yaml" <<YAML
listen: "127.0.0.1:$port"
data_dir: "$dir/data"
tenants:
  - {id: bench, jwt_secret: "$secret"}
namespaces:
  - {name: "", history_size: 1000}
YAML
"$bin" serve --config "$dir/parley.yaml" > "$dir/server.log" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.1
done
"$bin" bench fanout --url "127.0.0.1:$port" --secret "$secret" --tenant bench \
  --subs 20 --count 2000 --duration 3 --quiet
"$bin" bench storm --url "127.0.0.1:$port" --secret "$secret" --tenant bench \
  --subs 50 --channels 10 --rate 500 --duration 3 --drop-at 1 --quiet
# Chat: 200 connections in 5 of 40 rooms each; every (connection, room)
# must get every pub of its room in offset order.
"$bin" bench chat --url "127.0.0.1:$port" --secret "$secret" --tenant bench \
  --conns 200 --rooms 40 --rate 400 --duration 2 --quiet
# 500 publishes in one burst stay far below the server's outbound queue, so
# this checks the verification's own bookkeeping, not the server's limits.
"$bin" bench idle --url "127.0.0.1:$port" --secret "$secret" --tenant bench \
  --conns 500 --hold 0.5 --verify --quiet

# The baselines: built here (they are not part of the default build).
build_dir=$(dirname "$bin")
cmake --build "$build_dir" --target refcast commit_probe >/dev/null
refport=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$build_dir/refcast" --port "$refport" 2>"$dir/refcast.log" &
refpid=$!
cleanup() {
  kill "$pid" "$refpid" 2>/dev/null || true
  wait "$pid" "$refpid" 2>/dev/null || true
  rm -rf "$dir"
}
. "$(dirname "$0")/../bench/config.sh"
wait_port "$refport"
"$bin" bench fanout --url "127.0.0.1:$refport" --secret x --tenant x \
  --subs 20 --count 2000 --duration 3 --quiet
"$bin" bench channels --url "127.0.0.1:$refport" --secret x --tenant x \
  --subs 50 --count 2000 --duration 3 --quiet
"$bin" bench chat --url "127.0.0.1:$refport" --secret x --tenant x \
  --conns 200 --rooms 40 --rate 400 --duration 2 --quiet
"$build_dir/commit_probe" --dir "$dir" --duration 0.3 --batches 1,16 | tee "$dir/probe.jsonl"
/usr/bin/python3 - "$dir/probe.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["batch"] for r in rows] == [1, 16] and all(r["records_per_s"] > 0 for r in rows), rows
PY
echo "bench smoke: ok"
