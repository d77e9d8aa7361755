#!/bin/sh
# Builds the fuzzers with clang and runs each for N seconds (default 60)
# over its seed corpus. New corpus entries and crash reproducers go to
# $FUZZ_OUT (default /tmp/redoubt-fuzz), never into the seed directories.
# $FUZZ_TARGETS picks some of: request reply cluster_slots conncmd glob
# pubsub
# (default all).
set -eu

secs=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${FUZZ_OUT:-${TMPDIR:-/tmp}/redoubt-fuzz}
cc=${CC:-clang}
targets=${FUZZ_TARGETS:-request reply cluster_slots conncmd glob pubsub}

mkdir -p "$out/include"
: > "$out/include/config.h"

# The target's source file for a corpus name.
src() {
    case $1 in
    cluster_slots|conncmd|glob|pubsub) echo "fuzz_$1" ;;
    *) echo "fuzz_resp_$1" ;;
    esac
}

for t in $targets; do
    $cc -std=gnu11 -g -O1 -fno-omit-frame-pointer \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -I"$out/include" -I"$top/src" \
        -I"$top/modules/cluster" \
        -o "$out/$(src "$t")" "$here/$(src "$t").c" \
        "$top/src/rd_resp_codec.c" \
        "$top/src/rd_resp_value.c" "$top/src/rd_buf.c" \
        "$top/src/rd_alloc.c" "$top/modules/cluster/rd_cluster_slots.c" \
        "$top/src/rd_conncmd.c" "$top/src/rd_match.c" "$top/src/rd_pubsub.c" \
        $(pkg-config --cflags --libs libpcre2-8)
done

for t in $targets; do
    mkdir -p "$out/corpus-$t"
    "$out/$(src "$t")" -max_total_time="$secs" -max_len=4096 \
        -artifact_prefix="$out/$t-" \
        "$out/corpus-$t" "$here/corpus/$t"
done
