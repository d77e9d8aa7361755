#!/bin/bash
# t_pipeline: 10,000 mixed commands written in one go, as RESP and as
# inline commands; the replies must be byte for byte what redis-server
# itself answers to the same bytes.
# shellcheck disable=SC2016,SC2119 # RESP literals; rd_start's CONF is optional
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
rd_init
need cmp od

redis_start a
rd_conf "${RD_REDIS_PORT[a]}" > "$T/redoubt.conf"
rd_start

N=10000
BIGVAL=$(printf '%*s' 70000 '' | tr ' ' 'z')

cmd() { resp_encode "$@"; }

# ECHO of a binary payload with NUL, CR LF, 0xff and RESP look-alikes.
echo_bin() {
    local p="$1"
    printf '*2\r\n$4\r\nECHO\r\n$%d\r\n\0\r\n%s\377\r\n*1\r\n$-1\r\n\r\n' $((15 + ${#p})) "$p"
}

gen_resp() {
    local i k
    for ((i = 0; i < N; i++)); do
        k=$((i % 50))
        if ((i % 997 == 500)); then
            cmd SET "big:$i" "$BIGVAL"
            continue
        fi
        if ((i % 997 == 501)); then
            cmd GET "big:$((i - 1))"
            continue
        fi
        case $((i % 17)) in
            0) cmd SET "key:$k" "val$i" ;;
            1) cmd GET "key:$k" ;;
            2) cmd INCR "ctr:$((i % 7))" ;;
            3) cmd LPUSH "list:$((i % 5))" "item$i" "x$i" ;;
            4) cmd LRANGE "list:$((i % 5))" 0 9 ;;
            5) cmd DEL "key:$k" "key:$(((k + 1) % 50))" ;;
            6) cmd EXISTS "key:$k" ctr:1 nokey ;;
            7) cmd HSET "h:$((i % 3))" "f$((i % 10))" "v$i" ;;
            8) cmd HGET "h:$((i % 3))" "f$((i % 10))" ;;
            9) cmd INCR "list:$((i % 5))" ;;            # WRONGTYPE error
            10) printf '*0\r\n'; cmd PING ;;          # *0: no reply
            11) echo_bin "$i" ;;
            12) cmd GET nosuchkey ;;                    # null bulk
            13) cmd HGETALL "h:$((i % 3))" ;;           # array
            14) cmd INCRBY "key:$k" notanumber ;;       # ERR not an integer
            15) cmd MGET "key:$k" ctr:2 nokey "list:1" ;;
            16) cmd ECHO "" ;;                          # empty bulk
        esac
    done
    cmd QUIT
}

# gen_inline [PREFIX]: the inline pipeline, keys prefixed with PREFIX.
gen_inline() {
    local i k P=${1:-}
    for ((i = 0; i < N; i++)); do
        k=$((i % 50))
        case $((i % 13)) in
            0) printf 'SET %sikey:%d val%d\r\n' "$P" "$k" "$i" ;;
            1) printf 'GET %sikey:%d\n' "$P" "$k" ;;
            2) printf 'INCR %sictr\r\n' "$P" ;;
            3) printf 'ECHO "bin\\x00\\r\\n\\xff%d" tail\r\n' "$i" ;;  # error: wrong number of args
            4) printf 'ECHO "bin\\x00\\r\\n\\xff%d"\r\n' "$i" ;;
            5) printf "HSET %sih 'f %d' \"v %d\"\r\n" "$P" "$k" "$i" ;;
            6) printf 'LPUSH %sil a%d b c\r\n' "$P" "$i" ;;
            7) printf 'LRANGE %sil 0 3\r\n' "$P" ;;
            8) printf 'PING\n\r\n' ;;               # empty line: no reply
            9) printf '  EXISTS   %sikey:1  nokey  \r\n' "$P" ;;
            10) printf 'INCR %sil\r\n' "$P" ;;          # WRONGTYPE
            11) cmd HGET "${P}ih" "f $k" ;;            # RESP between inline lines
            12) printf 'GET nosuchkey\r\n' ;;
        esac
    done
}

# show_diff A B: where two reply streams part.
show_diff() {
    local off
    off=$(cmp "$1" "$2" 2>&1 | sed -n 's/.* byte \([0-9]*\).*/\1/p')
    note "sizes: $(wc -c < "$1") (redis) vs $(wc -c < "$2") (redoubt); first difference at byte ${off:-?}"
    if [ -n "$off" ]; then
        local from=$((off > 200 ? off - 200 : 0))
        note "redis:";   tail -c +"$((from + 1))" "$1" | head -c 400 | od -c | head -20 >&2
        note "redoubt:"; tail -c +"$((from + 1))" "$2" | head -c 400 | od -c | head -20 >&2
    fi
}

# --- RESP pipeline -----------------------------------------------------
gen_resp > "$T/resp.in"
note "RESP pipeline: $N commands + QUIT, $(wc -c < "$T/resp.in") bytes"

dcli a FLUSHALL >/dev/null
raw_exchange "${RD_REDIS_PORT[a]}" "$T/resp.in" "$T/resp.direct" 60 ||
    fail "redis-server itself did not finish the RESP pipeline"
[ "$(tail -c 5 "$T/resp.direct" | tr '\r\n' '~|')" = '+OK~|' ] || fail "redis's reply stream does not end with QUIT's +OK"
grep -q WRONGTYPE "$T/resp.direct" || fail "the pipeline produced no error replies (test bug)"

dcli a FLUSHALL >/dev/null
t0=$(now_ms)
raw_exchange "$RD_PORT" "$T/resp.in" "$T/resp.via" 60
rc=$?
t1=$(now_ms)
[ "$rc" -eq 124 ] && { show_diff "$T/resp.direct" "$T/resp.via"; fail "RESP pipeline through redoubt: connection not closed after QUIT within 60 s"; }
cmp -s "$T/resp.direct" "$T/resp.via" || { show_diff "$T/resp.direct" "$T/resp.via"; fail "RESP pipeline: redoubt's replies differ from redis-server's"; }
note "RESP pipeline through redoubt: $((t1 - t0)) ms, $(wc -c < "$T/resp.via") reply bytes identical"

# The data landed in redis as it would have directly.
assert_eq 1 "$(dcli a EXISTS big:500)" "big value SET in the pipeline is in redis"
assert_eq 70000 "$(dcli a STRLEN big:500)" "size of the big value SET in the pipeline"

# --- inline pipeline ---------------------------------------------------
gen_inline > "$T/inline.in"
printf 'QUIT\r\n' > "$T/quit.in"
cat "$T/inline.in" "$T/quit.in" > "$T/inline-quit.in"
note "inline pipeline: $N commands, $(wc -c < "$T/inline.in") bytes"

dcli a FLUSHALL >/dev/null
raw_exchange "${RD_REDIS_PORT[a]}" "$T/inline-quit.in" "$T/inline.direct" 60 ||
    fail "redis-server itself did not finish the inline pipeline"
[ "$(tail -c 5 "$T/inline.direct" | tr '\r\n' '~|')" = '+OK~|' ] || fail "redis's inline reply stream does not end with +OK"
want=$(( $(wc -c < "$T/inline.direct") - 5 ))
head -c "$want" "$T/inline.direct" > "$T/inline.want"

# Through redoubt without QUIT: read exactly as many bytes as redis gave.
dcli a FLUSHALL >/dev/null
raw_exchange_n "$RD_PORT" "$T/inline.in" "$T/inline.via" "$want" 60 ||
    fail "inline pipeline through redoubt: not all replies within 60 s ($(wc -c < "$T/inline.via") of $want bytes)"
cmp -s "$T/inline.want" "$T/inline.via" || { show_diff "$T/inline.want" "$T/inline.via"; fail "inline pipeline: redoubt's replies differ from redis-server's"; }

# And with QUIT at the end, through redoubt too.
dcli a FLUSHALL >/dev/null
raw_exchange "$RD_PORT" "$T/inline-quit.in" "$T/inline-quit.via" 60 ||
    fail "inline pipeline + QUIT through redoubt: connection not closed within 60 s"
cmp -s "$T/inline.direct" "$T/inline-quit.via" || { show_diff "$T/inline.direct" "$T/inline-quit.via"; fail "inline pipeline + QUIT: replies differ from redis-server's"; }

# --- several pipelines at once, on both workers ------------------------
# Each session has its own keys, so each must get exactly the solo replies.
dcli a FLUSHALL >/dev/null
pids=()
for j in 1 2 3 4; do
    gen_inline "s$j:" > "$T/par.$j.in"
    raw_exchange_n "$RD_PORT" "$T/par.$j.in" "$T/par.$j" "$want" 60 &
    pids+=("$!")
    RD_PIDS+=("$!")
done
for pid in "${pids[@]}"; do
    wait "$pid"
done
for j in 1 2 3 4; do
    cmp -s "$T/inline.want" "$T/par.$j" || { show_diff "$T/inline.want" "$T/par.$j"; fail "concurrent inline pipeline $j: replies differ from redis-server's"; }
done

assert_eq PONG "$(rcli PING)" "PING after the pipelines"
pass
