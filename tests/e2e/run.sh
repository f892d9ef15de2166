#!/bin/sh
# The web app's end-to-end tests: builds the app into the binary's web/
# directory, then drives the real server with headless Chromium (node's test
# runner, playwright-core). PARLEY_BIN defaults to build/parley.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${PARLEY_BIN:-$root/build/parley}
[ -x "$bin" ] || { echo "e2e: no server binary at $bin (build it first)" >&2; exit 1; }
"$root/scripts/web.sh" "$(dirname "$bin")/web"
(cd "$root/web" && npx tsc --noEmit -p tsconfig.json)
PARLEY_BIN=$bin node --test --test-concurrency=1 --test-reporter=spec "$root"/tests/e2e/*.test.mjs
