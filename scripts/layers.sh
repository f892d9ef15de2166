#!/usr/bin/env bash
# Checks the one-way folder graph of src/ (docs/architecture.md): a file may
# include headers of its own folder and of the folders listed for it below,
# nothing else. A call needs a declaration (-Werror refuses implicit ones),
# so an include check is also a call check. Exits 1 listing every violation.
set -euo pipefail
cd "$(dirname "$0")/../src"

declare -A allowed=(
    [util]=""
    [config]="util"
    [obs]="util config"
    [auth]="util config"
    [engine]="util config"
    [delivery]="util config obs engine"
    [broker]="util config obs auth engine delivery"
    [hooks]="util config obs auth engine delivery"
    [proto]="util config obs auth engine delivery broker hooks"
    [net]="util config obs auth engine delivery broker hooks proto"
    [cli]="util config obs auth engine delivery broker hooks proto net"
)

bad=0
for dir in */; do
    dir=${dir%/}
    if [[ -z ${allowed[$dir]+set} ]]; then
        echo "layers: src/$dir is not in the layer table (scripts/layers.sh, docs/architecture.md)"
        bad=1
        continue
    fi
    while IFS= read -r hit; do
        file=${hit%%:*}
        rest=${hit#*:}
        line=${rest%%:*}
        inc=$(sed -E 's/.*#include "([a-z_]+)\/.*/\1/' <<<"$rest")
        [[ $inc == "$dir" ]] && continue
        if [[ " ${allowed[$dir]} " != *" $inc "* ]]; then
            echo "layers: src/$file:$line includes $inc/, which $dir/ may not use (allowed: ${allowed[$dir]:-none})"
            bad=1
        fi
    done < <(grep -rnE '^#include "[a-z_]+/' "$dir" --include='*.c' --include='*.h' || true)
done
if ((bad)); then exit 1; fi
echo "layers: ok ($(ls -d */ | wc -l) folders, one-way)"
