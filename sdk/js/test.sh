#!/bin/sh
# The JS SDK's checks: clean install, type check, build, tests against the
# real server (PARLEY_BIN, default ../../build/parley), including the browser
# test in headless Chromium (/usr/bin/chromium, or PARLEY_CHROMIUM; installed
# by scripts/deps.sh test). Non-zero on failure.
set -eu
cd "$(dirname "$0")"
PARLEY_BIN=$(cd "$(dirname "${PARLEY_BIN:-../../build/parley}")" && pwd)/$(basename "${PARLEY_BIN:-../../build/parley}")
export PARLEY_BIN
[ -x "$PARLEY_BIN" ] || { echo "sdk/js: no server binary at $PARLEY_BIN (build it first)" >&2; exit 1; }
npm ci --no-audit --no-fund --loglevel=error >/dev/null
npx tsc --noEmit -p tsconfig.json
npm run --silent build >/dev/null 2>&1 || { npm run build; exit 1; }
echo "sdk/js: browser bundle $(gzip -c dist/parley.browser.min.js | wc -c) bytes minified+gzipped"
node --test --test-concurrency=1 --test-reporter=spec test/*.test.mjs
