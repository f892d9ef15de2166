#!/usr/bin/env bash
# Checks the size limits of src/: no .c file over 1,200 lines, no header over
# 300, no function over 100 lines (a function runs from a line that starts
# its definition at column 0 to the next line that is a lone "}"). Exits 1
# listing every offender.
set -euo pipefail
cd "$(dirname "$0")/../src"
bad=0
while read -r n f; do
    [[ $f == total ]] && continue
    if [[ $f == *.c && $n -gt 1200 ]] || [[ $f == *.h && $n -gt 300 ]]; then
        echo "sizes: src/$f has $n lines"
        bad=1
    fi
done < <(find . -name '*.[ch]' -print0 | xargs -0 wc -l | sed 's#\./##')
while read -r line; do
    echo "sizes: $line"
    bad=1
done < <(find . -name '*.c' -print0 | xargs -0 awk '
    FNR == 1 { start = 0 }
    /^[a-zA-Z_].*\(/ && !/;[[:space:]]*$/ { start = FNR; name = $0 }
    /^}/ && start { if (FNR - start > 100) printf "src/%s:%d: function of %d lines: %s\n", substr(FILENAME, 3), start, FNR - start, name; start = 0 }
')
if ((bad)); then exit 1; fi
echo "sizes: ok"
