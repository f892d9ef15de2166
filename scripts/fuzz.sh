#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for a bounded time
# over its checked-in corpus, with a fixed seed (FUZZ_SEED) so the gate in
# `make test` is repeatable; `make fuzz` or another seed explores further.
# Usage: scripts/fuzz.sh SECONDS
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
CC=clang cmake -S . -B build-fuzz -DFUZZ=ON -DCMAKE_BUILD_TYPE=Debug -DSANITIZE=address,undefined >/dev/null
targets=()
for f in fuzz/fuzz_*.c; do targets+=(--target "$(basename "$f" .c)"); done
cmake --build build-fuzz -j "$(nproc)" "${targets[@]}"
for f in fuzz/fuzz_*.c; do
  name=$(basename "$f" .c)
  corpus=fuzz/corpus/${name#fuzz_}
  work=$(mktemp -d)
  [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
  dict=()
  [ -f "fuzz/${name#fuzz_}.dict" ] && dict=(-dict="fuzz/${name#fuzz_}.dict")
  echo "-- $name for ${secs}s"
  build-fuzz/"$name" "${dict[@]}" -seed="${FUZZ_SEED:-1}" -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=0 "$work" 2>&1 | tail -n 2
  rm -rf "$work"
done
