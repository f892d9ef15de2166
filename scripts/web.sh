#!/bin/sh
# Builds the web app (web/) into OUT (default build/web), the directory the
# server serves at / and /admin when it sits next to the binary. Installs the
# build tools from web/package-lock.json first when they are missing or stale.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build/web}
case $out in /*) ;; *) out=$(pwd)/$out ;; esac
cd "$root/web"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi
node build.mjs "$out"
