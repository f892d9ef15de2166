#!/usr/bin/env bash
# Installs the Debian packages Parley needs, only when some are missing.
# Usage: scripts/deps.sh build|test
set -euo pipefail
build_pkgs="build-essential cmake pkg-config libuv1-dev libhttp-parser-dev libwslay-dev libssl-dev
  libsqlite3-dev libyaml-dev libjansson-dev libjsmn-dev libcurl4-openssl-dev zlib1g-dev libhiredis-dev"
test_pkgs="libcmocka-dev clang libclang-rt-14-dev python3 python3-pytest python3-websockets curl redis-server"
# bench/compare.sh also needs nats-server (it installs it when missing).
pkgs="$build_pkgs"
[ "${1:-build}" = test ] && pkgs="$pkgs $test_pkgs"
missing=()
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The web app is built, and the JavaScript SDK tested, with Node.js and npm.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then missing+=(nodejs npm); fi
# Its browser test drives Debian's chromium (/usr/bin/chromium) with playwright-core.
if [ "${1:-build}" = test ] && [ ! -x /usr/bin/chromium ]; then missing+=(chromium); fi
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
