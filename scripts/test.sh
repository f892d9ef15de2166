#!/usr/bin/env bash
# The whole test suite, as `make test` and CI run it: release build with unit
# and black-box tests (again on the redis engine), the JavaScript SDK's and
# the web app's tests against
# that build, the server's tests again under ASan+UBSan, then bounded fuzz
# runs.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=$(nproc)

echo "== structure (layers, sizes, named codes)"
scripts/layers.sh
scripts/sizes.sh
scripts/check-codes.sh

echo "== build (release)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$JOBS"

echo "== unit tests"
(cd build && ctest --output-on-failure)

echo "== black-box tests"
PARLEY_BIN=$PWD/build/parley /usr/bin/python3 -m pytest -q tests/integration

echo "== black-box tests on the redis engine"
scripts/redis-suite.sh build/parley

echo "== JavaScript SDK (npm ci, type check, build, tests against the server)"
PARLEY_BIN=$PWD/build/parley sdk/js/test.sh

echo "== web app (build, type check, headless Chromium against the server)"
PARLEY_BIN=$PWD/build/parley tests/e2e/run.sh

echo "== build (ASan + UBSan)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSANITIZE=address,undefined >/dev/null
cmake --build build-asan -j "$JOBS"

echo "== unit tests under sanitizers"
(cd build-asan && ctest --output-on-failure)

echo "== black-box tests under sanitizers"
PARLEY_BIN=$PWD/build-asan/parley PARLEY_SANITIZED=1 /usr/bin/python3 -m pytest -q tests/integration

echo "== bench smoke (zero loss, not speed)"
scripts/bench-smoke.sh build/parley

echo "== fuzz (bounded)"
scripts/fuzz.sh "${FUZZ_SECONDS:-15}"

# Every stage above stops the script on failure (set -e), so reaching this
# line means all of them passed.
echo "stages: 12 passed, 0 failed"
