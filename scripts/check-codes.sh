#!/usr/bin/env bash
# Fails when a client-visible code is written as a number in src/ instead of
# by its name from src/util/errors.h (PE_* errors 100-114, PC_* close codes
# 4000-4999), printing the offending lines. Comments are not checked.
set -euo pipefail
cd "$(dirname "$0")/.."

find src -name '*.[ch]' ! -path src/util/errors.h -print0 | sort -z | xargs -0 perl -e '
use strict;
use warnings;

# Numbers in these forms are not protocol codes. Each is masked before the
# search; keep the list short and say why.
my @not_codes = (
    qr/HTTP\/1\.1 101\b/,                     # the WebSocket handshake HTTP status
    qr/status(?:_code)?\s*[!=]=\s*101\b/,     # the same, checked by the bench client
    qr/\[[^\]\n]*\]/,                         # array dimensions: buffer sizes
    qr/[*\/%]\s*\d+|\d+\s*[*\/%]/,            # arithmetic operands
    qr/(?:\d+\s*,\s*){2,}\d*/,                 # lists of numbers: histogram bounds
    # sizes, limits, percentages: the comparison or assignment up to ; , or )
    qr/\b\w*(?:size|cap|limit|pct)\w*\s*[=<>]+[^;,()]*(?:\([^()]*\)[^;,()]*)*/i,
    qr/#define\s+\w*(?:MAX|CAP|CHUNK|MARKS|LINE|FIELD|SIZE|BYTES|LIMIT)\w*\s+\d+/,
    qr/\bK[A-Z]+\("[^"]*"[^)]*\)/,             # config keys with their bounds
    qr/uv_listen\([^;]*/,                     # listen backlog
    qr/code\s*>=\s*3000\s*&&\s*code\s*<=\s*4999/, # RFC 6455 close-code range (net/ws.c)
    # obs/metrics.c, not yet on the names: its per-code buckets and the help
    # texts of two metrics.
    qr/code\s*>=\s*100\s*&&\s*code\s*<\s*100\s*\+/,
    qr/"[^"]*(?:closed with|answered) \d+[^"]*"/,
);

my $bad = 0;
for my $file (@ARGV) {
    open(my $fh, "<", $file) or die "$file: $!";
    local $/;
    my $src = <$fh>;
    close $fh;
    my @orig = split /\n/, $src, -1;
    # Blank out comments, keeping line breaks (and string literals) intact.
    $src =~ s{("(?:\\.|[^"\\\n])*"|\x27(?:\\.|[^\x27\\\n])*\x27)|(/\*.*?\*/|//[^\n]*)}
             { defined $1 ? $1 : ($2 =~ s/[^\n]+/ /gr) }gse;
    my $n = 0;
    for my $line (split /\n/, $src, -1) {
        $n++;
        my $masked = $line;
        $masked =~ s/$_/ /g for @not_codes;
        next unless $masked =~ /(?<![\w.])(?:1(?:0\d|1[0-4])|4\d{3})(?![\w.])/;
        print "$file:$n: $orig[$n - 1]\n";
        $bad = 1;
    }
}
if ($bad) {
    print STDERR "check-codes: use the names of src/util/errors.h for protocol and close codes\n";
    exit 1;
}
' || exit 1
