#!/bin/sh
# Builds the RESP fuzzers with clang and runs each for N seconds (default
# 60) over its seed corpus. New corpus entries and crash reproducers go to
# $FUZZ_OUT (default /tmp/redoubt-fuzz), never into the seed directories.
set -eu

secs=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${FUZZ_OUT:-${TMPDIR:-/tmp}/redoubt-fuzz}
cc=${CC:-clang}

mkdir -p "$out/include"
: > "$out/include/config.h"

for t in request reply; do
    $cc -std=gnu11 -g -O1 -fno-omit-frame-pointer \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -I"$out/include" -I"$top/src" -I"$top/modules/resp" \
        -o "$out/fuzz_resp_$t" "$here/fuzz_resp_$t.c" \
        "$top/modules/resp/rd_resp_codec.c" "$top/src/rd_buf.c" \
        "$top/src/rd_alloc.c"
done

for t in request reply; do
    mkdir -p "$out/corpus-$t"
    "$out/fuzz_resp_$t" -max_total_time="$secs" -max_len=4096 \
        -artifact_prefix="$out/$t-" \
        "$out/corpus-$t" "$here/corpus/$t"
done
