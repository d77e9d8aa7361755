#!/bin/bash
# t_cluster_spread: the commands redoubt spreads over the masters of a
# real 6-node TLS Redis Cluster (3 masters, see t_cluster.sh), clients on
# a plaintext listener sending AUTH alice. The oracle is the cluster
# itself (its nodes' own answers) or a plain redis-server given the same
# commands:
#   1  SCAN of 20,000 keys (COUNT 1000): each key exactly once, cursors
#      decimal; HSCAN/SSCAN/ZSCAN route by key
#   2  SCAN MATCH, TYPE, MATCH+TYPE: the union of the nodes' own SCANs;
#      a small COUNT on a subset; a MATCH whose {hash tag} pins one slot
#      scans that slot's master only (cmdstat_scan of the others stays);
#      invalid cursors get Redis's error
#   3  SCAN while keys are added and deleted: every key present
#      throughout is returned
#   4  DEL, UNLINK, EXISTS, TOUCH, MSET over keys of all three masters,
#      duplicates and missing keys, pipelined with GETs: replies byte for
#      byte a standalone redis-server's, the values on the nodes too;
#      MSETNX, RENAME, SUNIONSTORE, EVAL across slots stay CROSSSLOT
#   5  FUNCTION LOAD on every master, FCALL/FCALL_RO on keys of each,
#      FUNCTION LIST/STATS, LOAD again (the nodes' error), DELETE and
#      FLUSH on every master, FUNCTION KILL (no function running: the
#      nodes' NOTBUSY); EVAL then SCRIPT EXISTS / EVALSHA (the rule)
#   6  RANDOMKEY: nil on an empty cluster, the key of the only master
#      that has keys, keys of more than one master
# shellcheck disable=SC2016,SC2119,SC2317 # RESP literals; optional args; steps called indirectly
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
rd_init
need_tls
need sort comm

T_START=$(now_ms)
cluster_start
PW=$CLUSTER_ALICE_PW
redis_start ref
note "cluster up in $(( $(now_ms) - T_START )) ms: nodes ${CLUSTER_PORTS[*]}"

N1=${CLUSTER_PORTS[0]}
N2=${CLUSTER_PORTS[1]}
CONF=$T/redoubt.conf
cat > "$CONF" <<EOF
# redoubt test configuration for $RD_TEST
worker_processes = $RD_WORKERS;
pid_file = "$T/redoubt.pid";
worker_shutdown_timeout = "10s";
error_log = { path = "$T/error.log"; level = "${RD_LOG_LEVEL:-info}"; };
upstream_tls = { ca_cert = "$CLUSTER_CA/db-client-ca.crt"; ca_key = "$CLUSTER_CA/db-client-ca.key";
                 server_ca = "$CLUSTER_CA/db-ca.crt"; };
listen = ( { address = "127.0.0.1:$RD_PORT"; database = "c"; tls = false; } );
databases = (
  { name = "c"; uri = "rediss://127.0.0.1:$N1?mode=cluster"; connect_timeout = "2s";
    cluster = { seeds = [ "127.0.0.1:$N2" ]; }; }
);
EOF
rd_start "$CONF"

# --- helpers ---------------------------------------------------------------

rx() {
    REDISCLI_AUTH=$PW timeout 20 redis-cli --user alice --no-auth-warning -h 127.0.0.1 -p "$RD_PORT" "$@"
}


# load_slots: SLOT_OWNER[slot] = the port of its master; MASTERS sorted.


# pick_keys PREFIX N: PICKED = N keys "PREFIX<j>" on each master, master
# by master in the order of MASTERS (PICKED[m*N+i]).


# via_pipe FILE: the commands in FILE (RESP), after AUTH, through redoubt
# in one connection; the replies (without the AUTH's) on stdout.
via_pipe() {
    { resp_encode AUTH alice "$PW"; cat "$1"; resp_encode QUIT; } > "$1.in"
    raw_exchange "$RD_PORT" "$1.in" "$1.out" 60 || fail "pipeline $1: the connection was not closed after QUIT"
    tail -c +6 "$1.out" | head -c -5
}

# scan_via S OUT ARGS...: SCAN from cursor 0 to the end through session
# S with ARGS; the keys go to OUT, one a line; SCAN_CALLS is the number
# of calls. Every cursor must be a decimal number; at most SCAN_MAX calls.
SCAN_CALLS=0
scan_via() {
    local s=$1 out=$2 cur=0 n=0 max=${SCAN_MAX:-5000} lines
    shift 2
    : > "$out"
    while :; do
        sess_cmd "$s" SCAN "$cur" "$@" || fail "SCAN $cur $*: no reply"
        [[ $REPLY == '*2'$'\n'* ]] || fail "SCAN $cur $* through redoubt: $(head -c 200 <<<"$REPLY")"
        mapfile -t lines <<<"$REPLY"
        cur=${lines[1]}
        [[ $cur =~ ^(0|[1-9][0-9]*)$ ]] || fail "SCAN through redoubt: cursor '$cur' is not a decimal number"
        [ "${#lines[@]}" -gt 3 ] && printf '%s\n' "${lines[@]:3}" >> "$out"
        n=$((n + 1))
        [ "$cur" = 0 ] && break
        [ "$n" -lt "$max" ] || fail "SCAN $* through redoubt did not end in $max calls"
    done
    SCAN_CALLS=$n
}

# node_scan PORT ARGS...: the keys the node's own SCAN returns.
node_scan() {
    local p=$1 cur=0 out
    shift
    while :; do
        out=$(ccli "$p" SCAN "$cur" "$@" COUNT 1000) || fail "SCAN on node $p: $out"
        cur=$(head -n 1 <<<"$out")
        tail -n +2 <<<"$out" | grep -v '^$'
        [ "$cur" = 0 ] && break
    done
}

# nodes_scan ARGS...: the union of the masters' own SCANs, sorted.
nodes_scan() {
    local p
    for p in "${MASTERS[@]}"; do node_scan "$p" "$@"; done | sort
}

node_busy() { [[ $(ccli "$1" PING 2>&1) == BUSY* ]]; }

scan_calls() { ccli "$1" INFO commandstats | tr -d '\r' | sed -n 's/^cmdstat_scan:calls=\([0-9]*\),.*/\1/p' | grep . || echo 0; }

FAILED_STEPS=()
step() {
    local n=$1 title=$2 fn=$3 t0 rc
    if [ -n "${RD_SPREAD_STEPS:-}" ] && [[ " $RD_SPREAD_STEPS " != *" $n "* ]]; then
        return 0
    fi
    note "--- step $n: $title"
    t0=$(now_ms)
    ( "$fn" )
    rc=$?
    if [ "$rc" -ne 0 ]; then
        FAILED_STEPS+=("$n")
        note "--- step $n FAILED ($(( $(now_ms) - t0 )) ms)"
    else
        note "--- step $n passed ($(( $(now_ms) - t0 )) ms)"
    fi
}

# --- 1: a full SCAN --------------------------------------------------------
step1() {
    local n=20000 i S p sum dups t0
    cluster_flushall
    load_slots
    for ((i = 0; i < n; i++)); do
        case $((i % 4)) in
            0) resp_encode SET "s:$i" "$i" ;;
            1) resp_encode SET "{t$((i % 9))}:s:$i" "$i" ;;
            *) resp_encode SET "k$i:s" "$i" ;;
        esac
    done > "$T/s1.set"
    via_pipe "$T/s1.set" | tr -d '\r' | sort | uniq -c | sed 's/^ *//' > "$T/s1.set.replies"
    assert_eq "$n +OK" "$(cat "$T/s1.set.replies")" "20,000 SETs through redoubt"
    sum=0
    for p in "${MASTERS[@]}"; do sum=$((sum + $(ccli "$p" DBSIZE))); done
    assert_eq "$n" "$sum" "DBSIZE summed over the masters"
    nodes_scan > "$T/s1.want"
    assert_eq "$n" "$(wc -l < "$T/s1.want")" "keys in the nodes' own SCANs"

    asess S
    t0=$(now_ms)
    scan_via "$S" "$T/s1.got" COUNT 1000
    note "SCAN of $n keys through redoubt: $SCAN_CALLS calls, $(( $(now_ms) - t0 )) ms"
    dups=$(sort "$T/s1.got" | uniq -d | head -n 3 | tr '\n' ' ')
    assert_eq "" "$dups" "keys SCAN returned twice"
    sort "$T/s1.got" > "$T/s1.got.sorted"
    cmp -s "$T/s1.want" "$T/s1.got.sorted" ||
        fail "SCAN through redoubt differs from the union of the nodes' SCANs: $(diff "$T/s1.want" "$T/s1.got.sorted" | head -n 4 | tr '\n' ' ')"
    [ "$SCAN_CALLS" -ge 3 ] || fail "SCAN of 20,000 keys over 3 masters in $SCAN_CALLS calls"

    # The keyed scans route by key.
    ccli "${SLOT_OWNER[$(key_slot h1)]}" HSET h1 a 1 b 2 c 3 > /dev/null
    ccli "${SLOT_OWNER[$(key_slot z1)]}" ZADD z1 1 a 2 b > /dev/null
    ccli "${SLOT_OWNER[$(key_slot st1)]}" SADD st1 x > /dev/null
    sess_expect "$S" $'*2\n0\n*6\na\n1\nb\n2\nc\n3' HSCAN h1 0
    sess_expect "$S" $'*2\n0\n*4\na\n1\nb\n2' ZSCAN z1 0
    sess_expect "$S" $'*2\n0\n*1\nx' SSCAN st1 0
    sess_close "$S"
}

# --- 2: SCAN options, a pinned MATCH, invalid cursors ----------------------------
step2() {
    local S i p owner_p want got before=() after=() slot k args a
    cluster_flushall
    load_slots
    for ((i = 0; i < 900; i++)); do
        case $((i % 3)) in
            0) resp_encode SET "m:$i" x ;;
            1) resp_encode HSET "h:$i" f v ;;
            2) resp_encode SADD "m:set:$i" e ;;
        esac
    done > "$T/s2.set"
    for ((i = 0; i < 60; i++)); do resp_encode SET "{pin}:$i" p; done >> "$T/s2.set"
    via_pipe "$T/s2.set" > /dev/null
    asess S
    for args in "MATCH m:1*" "TYPE hash" "MATCH m:* TYPE set" "MATCH *{pin}* TYPE string"; do
        read -ra a <<<"$args"
        nodes_scan "${a[@]}" > "$T/s2.want"
        [ -s "$T/s2.want" ] || fail "the nodes' SCAN $args is empty (test bug)"
        scan_via "$S" "$T/s2.got" "${a[@]}" COUNT 200
        sort "$T/s2.got" > "$T/s2.got.sorted"
        cmp -s "$T/s2.want" "$T/s2.got.sorted" ||
            fail "SCAN $args through redoubt differs from the nodes': $(diff "$T/s2.want" "$T/s2.got.sorted" | head -n 4 | tr '\n' ' ')"
    done
    # A small COUNT: many calls, each key once.
    nodes_scan > "$T/s2.want"
    scan_via "$S" "$T/s2.got" COUNT 3
    note "SCAN COUNT 3 of $(wc -l < "$T/s2.want") keys: $SCAN_CALLS calls"
    [ "$SCAN_CALLS" -gt 100 ] || fail "SCAN COUNT 3 ended in $SCAN_CALLS calls"
    assert_eq "" "$(sort "$T/s2.got" | uniq -d | head -n 3 | tr '\n' ' ')" "keys SCAN COUNT 3 returned twice"
    sort "$T/s2.got" > "$T/s2.got.sorted"
    cmp -s "$T/s2.want" "$T/s2.got.sorted" || fail "SCAN COUNT 3 through redoubt differs from the nodes' SCANs"

    # MATCH {pin}:* can only match slot {pin}'s keys: its master alone is
    # scanned. The others' cmdstat_scan stays; *{pin}* goes everywhere.
    key_slot '{pin}' slot
    owner_p=${SLOT_OWNER[slot]}
    for p in "${MASTERS[@]}"; do before+=("$(scan_calls "$p")"); done
    scan_via "$S" "$T/s2.pin" MATCH '{pin}:*' COUNT 5
    for p in "${MASTERS[@]}"; do after+=("$(scan_calls "$p")"); done
    assert_eq 60 "$(sort -u "$T/s2.pin" | wc -l)" "keys SCAN MATCH {pin}:* returned"
    for i in 0 1 2; do
        p=${MASTERS[i]}
        if [ "$p" = "$owner_p" ]; then
            assert_eq "$SCAN_CALLS" "$((after[i] - before[i]))" "SCANs on {pin}'s master $p for MATCH {pin}:*"
        else
            assert_eq 0 "$((after[i] - before[i]))" "SCANs on master $p (not {pin}'s) for MATCH {pin}:*"
        fi
    done
    before=(); after=()
    for p in "${MASTERS[@]}"; do before+=("$(scan_calls "$p")"); done
    for k in '*{pin}:*' '{pi?}:*' '{}:*' 'x\{pin}:*'; do
        scan_via "$S" "$T/s2.nopin" MATCH "$k" COUNT 1000
    done
    for p in "${MASTERS[@]}"; do after+=("$(scan_calls "$p")"); done
    for i in 0 1 2; do
        [ "$((after[i] - before[i]))" -ge 4 ] || fail "master ${MASTERS[i]} was not scanned for patterns that do not pin a slot"
    done
    # {pin}:* again, with a pipelined SET of a new key in the slot before
    # it (SCAN waits for nothing: same node connection).
    sess_expect "$S" "+OK" SET '{pin}:new' 1
    scan_via "$S" "$T/s2.pin" MATCH '{pin}:*' COUNT 1000
    assert_eq 61 "$(sort -u "$T/s2.pin" | wc -l)" "keys SCAN MATCH {pin}:* returned after one more"

    # Cursors redoubt cannot have made: Redis's error (as a plain node
    # answers for what it cannot parse).
    want=$(dcli ref SCAN abc 2>&1)
    assert_eq "ERR invalid cursor" "$want" "a plain redis-server's answer to SCAN abc"
    for k in abc 18446744073709551616 99999999999999999999999 -1 ' 1' '1 ' 5 16383 '' 0x10; do
        sess_expect "$S" "-$want" SCAN "$k"
    done
    sess_expect "$S" "-$want" SCAN 5 MATCH '{pin}:*'
    sess_expect "$S" '+PONG' PING
    sess_close "$S"
}

# --- 3: SCAN while keys come and go ------------------------------------------
step3() {
    local S W i j=0 d=0 cur=0 n=0 lines
    cluster_flushall
    load_slots
    for ((i = 0; i < 3000; i++)); do resp_encode SET "st:$i" x; done > "$T/s3.set"
    for ((i = 0; i < 1500; i++)); do resp_encode SET "tmp:$i" x; done >> "$T/s3.set"
    via_pipe "$T/s3.set" > /dev/null
    asess S
    asess W
    : > "$T/s3.got"
    while :; do
        sess_cmd "$S" SCAN "$cur" COUNT 100 || fail "SCAN: no reply"
        mapfile -t lines <<<"$REPLY"
        cur=${lines[1]}
        [[ $cur =~ ^[0-9]+$ ]] || fail "SCAN while keys change: $(head -c 200 <<<"$REPLY")"
        [ "${#lines[@]}" -gt 3 ] && printf '%s\n' "${lines[@]:3}" >> "$T/s3.got"
        n=$((n + 1))
        [ "$cur" = 0 ] && break
        [ "$n" -lt 3000 ] || fail "SCAN while keys change did not end in 3000 calls"
        # 60 new keys (the tables grow: rehashing) and 20 deleted ones.
        local args=()
        for ((i = 0; i < 60; i++)); do args+=("new:$j" y); j=$((j + 1)); done
        sess_expect "$W" "+OK" MSET "${args[@]}"
        args=()
        for ((i = 0; i < 20 && d < 1500; i++)); do args+=("tmp:$d"); d=$((d + 1)); done
        [ "${#args[@]}" -gt 0 ] && sess_expect "$W" ":${#args[@]}" DEL "${args[@]}"
    done
    note "SCAN while keys change: $n calls, $j keys added, $d deleted"
    [ "$j" -ge 3000 ] || fail "only $j keys were added during the SCAN (test bug)"
    for ((i = 0; i < 3000; i++)); do echo "st:$i"; done | sort > "$T/s3.want"
    grep '^st:' "$T/s3.got" | sort -u > "$T/s3.got.st"
    assert_eq "" "$(comm -23 "$T/s3.want" "$T/s3.got.st" | head -n 5 | tr '\n' ' ')" "keys present throughout that SCAN did not return"
    sess_close "$S"
    sess_close "$W"
}

# --- 4: split multi-key commands ----------------------------------------------
step4() {
    local k want got
    cluster_flushall
    load_slots
    pick_keys "p4:" 3
    local K=("${PICKED[@]}")         # K[0..2] master 0, K[3..5] master 1, K[6..8] master 2
    pick_keys "p4:none:" 1
    local M=("${PICKED[@]}")         # never set
    dcli ref FLUSHALL > /dev/null
    {
        resp_encode MSET "${K[0]}" a0 "${K[3]}" a3 "${K[6]}" a6 "${K[1]}" a1 "${K[4]}" a4 "${K[7]}" a7
        resp_encode MGET "${K[0]}" "${K[3]}" "${K[6]}" "${K[1]}" "${K[4]}" "${K[7]}" "${M[0]}"
        resp_encode MSET "${K[0]}" first "${K[3]}" b3 "${K[0]}" second "${K[8]}" b8
        resp_encode GET "${K[0]}"
        resp_encode EXISTS "${K[0]}" "${K[3]}" "${K[6]}" "${M[0]}" "${K[0]}" "${M[1]}" "${K[8]}" "${K[8]}"
        resp_encode TOUCH "${K[6]}" "${M[2]}" "${K[1]}" "${K[1]}" "${K[4]}"
        resp_encode EXISTS "${M[0]}" "${M[1]}" "${M[2]}"
        resp_encode DEL "${K[0]}" "${K[0]}" "${K[3]}" "${M[0]}" "${K[6]}" "${K[6]}"
        resp_encode GET "${K[3]}"
        resp_encode EXISTS "${K[0]}" "${K[3]}" "${K[6]}" "${K[1]}" "${K[4]}" "${K[7]}"
        resp_encode UNLINK "${K[1]}" "${M[1]}" "${K[4]}" "${K[4]}" "${K[7]}"
        resp_encode SET "${K[2]}" c2
        resp_encode DEL "${K[2]}" "${K[5]}"
        resp_encode MSET "${K[2]}" d2 "${K[5]}" d5
        resp_encode EXISTS "${K[2]}" "${K[5]}" "${K[8]}" "${K[2]}"
        resp_encode DEL "${M[0]}" "${M[1]}" "${M[2]}"
        resp_encode MSET '{t}x' 1 '{t}y' 2
        resp_encode DEL '{t}x' '{t}y' '{t}z'
        resp_encode MGET "${K[2]}" "${K[5]}" "${K[8]}"
        resp_encode DEL "${K[8]}"
        resp_encode EXISTS "${K[8]}"
        resp_encode MSET "${K[0]}" e0 "${K[3]}" e3 "${K[6]}" e6
        resp_encode MSET "${K[0]}"
        resp_encode DEL
    } > "$T/s4.cmds"
    { cat "$T/s4.cmds"; resp_encode QUIT; } > "$T/s4.ref.in"
    raw_exchange "${RD_REDIS_PORT[ref]}" "$T/s4.ref.in" "$T/s4.ref.out" 20 || fail "the reference redis-server did not answer"
    head -c -5 "$T/s4.ref.out" > "$T/s4.want"     # without QUIT's +OK
    via_pipe "$T/s4.cmds" > "$T/s4.got"
    grep -aq '^:4' "$T/s4.want" || fail "the reference's replies look wrong (test bug): $(tr '\r\n' '  ' < "$T/s4.want" | head -c 300)"
    if ! cmp -s "$T/s4.want" "$T/s4.got"; then
        note "reference: $(tr '\r\n' '| ' < "$T/s4.want" | head -c 900)"
        note "redoubt:   $(tr '\r\n' '| ' < "$T/s4.got" | head -c 900)"
        fail "DEL/UNLINK/EXISTS/TOUCH/MSET through redoubt differ from a plain redis-server's replies"
    fi
    # The values on the nodes, as on the reference.
    for k in "${K[@]}" "${M[@]}" '{t}x'; do
        want=$(dcli ref GET "$k" 2>&1)
        got=$(dget "$k")
        assert_eq "$want" "$got" "$k straight on its master after the split commands"
    done
    assert_eq "e0 e3 e6" "$(dget "${K[0]}") $(dget "${K[3]}") $(dget "${K[6]}")" "MSET over three masters, on the nodes"
    # What needs one slot keeps -CROSSSLOT, and does nothing.
    local S
    asess S
    sess_expect "$S" "-CROSSSLOT Keys in request don't hash to the same slot" MSETNX "${M[0]}" 1 "${M[1]}" 2
    sess_expect "$S" ":0" EXISTS "${M[0]}"
    sess_expect "$S" ":1" MSETNX '{t}p' 1 '{t}q' 2
    sess_expect "$S" "-CROSSSLOT Keys in request don't hash to the same slot" RENAME "${K[0]}" "${K[3]}"
    sess_expect "$S" "-CROSSSLOT Keys in request don't hash to the same slot" SUNIONSTORE "${K[0]}" "${K[3]}"
    sess_expect "$S" "-CROSSSLOT Keys in request don't hash to the same slot" EVAL "return 1" 2 "${K[0]}" "${K[3]}"
    sess_expect "$S" "-CROSSSLOT Keys in request don't hash to the same slot" FCALL f 2 "${K[0]}" "${K[3]}"
    sess_expect "$S" "e0" GET "${K[0]}"
    sess_close "$S"
}

# --- 5: functions and scripts --------------------------------------------------
step5() {
    local S p i k lib out want sha
    cluster_flushall
    load_slots
    for p in "${MASTERS[@]}"; do ccli "$p" FUNCTION FLUSH > /dev/null; done
    pick_keys "p5:" 1
    local K=("${PICKED[@]}")
    lib=$'#!lua name=spread\nredis.register_function(\'fset\', function(keys, args) return redis.call(\'SET\', keys[1], args[1]) end)\nredis.register_function{function_name=\'fget\', callback=function(keys, args) return redis.call(\'GET\', keys[1]) end, flags={\'no-writes\'}}\nredis.register_function{function_name=\'spin\', callback=function(keys, args) while true do end end, flags={\'no-writes\'}}'
    asess S
    sess_expect "$S" "spread" FUNCTION LOAD "$lib"
    for p in "${MASTERS[@]}"; do
        assert_eq spread "$(ccli "$p" FUNCTION LIST LIBRARYNAME spread | sed -n 2p)" "the library on master $p after FUNCTION LOAD through redoubt"
    done
    for i in 0 1 2; do
        k=${K[i]}
        sess_expect "$S" "+OK" FCALL fset 1 "$k" "f$i"
        sess_expect "$S" "f$i" FCALL_RO fget 1 "$k"
        assert_eq "f$i" "$(dget "$k")" "$k after FCALL through redoubt, straight on its master"
    done
    sess_expect "$S" "-CROSSSLOT Keys in request don't hash to the same slot" FCALL fset 2 "${K[0]}" "${K[1]}" x
    # Loaded again: each master's error; REPLACE converges.
    out=$(ccli "${MASTERS[0]}" FUNCTION LOAD "$lib" 2>&1)
    sess_expect "$S" "-$out" FUNCTION LOAD "$lib"
    sess_expect "$S" "spread" FUNCTION LOAD REPLACE "$lib"
    # One master's list (the masters agree but for the order of the
    # functions), through redis-cli's formatting.
    out=$(rx FUNCTION LIST 2>&1)
    assert_contains "spread" "$out" "FUNCTION LIST through redoubt"
    want=no
    for p in "${MASTERS[@]}"; do [ "$(ccli "$p" FUNCTION LIST)" = "$out" ] && want=yes; done
    assert_eq yes "$want" "FUNCTION LIST through redoubt is a master's: $out"
    out=$(rx FUNCTION STATS 2>&1)
    assert_contains "engines" "$out" "FUNCTION STATS through redoubt"
    # FUNCTION KILL with nothing running: every master says NOTBUSY.
    out=$(ccli "${MASTERS[0]}" FUNCTION KILL 2>&1)
    assert_prefix NOTBUSY "$out" "FUNCTION KILL straight on a master"
    sess_expect "$S" "-$out" FUNCTION KILL
    # FUNCTION DUMP from one master, FUNCTION RESTORE on every one.
    resp_encode FUNCTION DUMP > "$T/s5.dump"
    via_pipe "$T/s5.dump" > "$T/s5.dump.got"
    assert_prefix '$' "$(head -c 1 "$T/s5.dump.got")" "FUNCTION DUMP through redoubt"
    sess_expect "$S" "+OK" FUNCTION FLUSH
    for p in "${MASTERS[@]}"; do
        assert_eq "" "$(ccli "$p" FUNCTION LIST)" "FUNCTION LIST on master $p after FUNCTION FLUSH through redoubt"
    done
    { printf '*3\r\n$8\r\nFUNCTION\r\n$7\r\nRESTORE\r\n'; cat "$T/s5.dump.got"; } > "$T/s5.restore"
    assert_eq "+OK" "$(via_pipe "$T/s5.restore" | tr -d '\r')" "FUNCTION RESTORE through redoubt"
    for p in "${MASTERS[@]}"; do
        assert_eq spread "$(ccli "$p" FUNCTION LIST LIBRARYNAME spread | sed -n 2p)" "the library on master $p after FUNCTION RESTORE through redoubt"
    done
    # FUNCTION KILL: +OK from the master running a function, whichever.
    ccli "${MASTERS[2]}" CONFIG SET busy-reply-threshold 50 > /dev/null
    ccli "${MASTERS[2]}" FCALL_RO spin 0 > "$T/s5.spin" 2>&1 &
    local spin=$!
    wait_for 10 node_busy "${MASTERS[2]}" || fail "the spinning function does not make master ${MASTERS[2]} busy"
    sess_expect "$S" "+OK" FUNCTION KILL
    wait "$spin"
    assert_contains "killed" "$(cat "$T/s5.spin")" "the FCALL that FUNCTION KILL through redoubt stopped"
    ccli "${MASTERS[2]}" CONFIG SET busy-reply-threshold 5000 > /dev/null
    sess_expect "$S" "+OK" FUNCTION DELETE spread
    for p in "${MASTERS[@]}"; do
        assert_eq "" "$(ccli "$p" FUNCTION LIST)" "FUNCTION LIST on master $p after FUNCTION DELETE through redoubt"
    done
    out=$(ccli "${MASTERS[0]}" FUNCTION DELETE spread 2>&1)
    sess_expect "$S" "-$out" FUNCTION DELETE spread
    sess_expect "$S" "spread" FUNCTION LOAD "$lib"
    sess_expect "$S" "+OK" FUNCTION FLUSH
    for p in "${MASTERS[@]}"; do
        assert_eq "" "$(ccli "$p" FUNCTION LIST)" "FUNCTION LIST on master $p after FUNCTION FLUSH through redoubt"
    done
    out=$(ccli "${MASTERS[0]}" FCALL fset 1 "${K[0]}" x 2>&1)
    sess_expect "$S" "-$out" FCALL fset 1 "${K[0]}" x

    # EVAL caches its script on its keys' master only: SCRIPT EXISTS (1
    # only when every master has it) says 0, EVALSHA works there and
    # nowhere else; SCRIPT LOAD makes it 1 and EVALSHA works everywhere.
    local script="return redis.call('GET', KEYS[1])"
    sha=$(printf '%s' "$script" | sha1sum | cut -d' ' -f1)
    sess_expect "$S" "f0" EVAL "$script" 1 "${K[0]}"
    assert_eq 1 "$(ccli "${MASTERS[0]}" SCRIPT EXISTS "$sha")" "the script on the EVAL's master"
    assert_eq 0 "$(ccli "${MASTERS[1]}" SCRIPT EXISTS "$sha")" "the script on another master"
    sess_expect "$S" $'*1\n:0' SCRIPT EXISTS "$sha"
    sess_expect "$S" "f0" EVALSHA "$sha" 1 "${K[0]}"
    sess_cmd "$S" EVALSHA "$sha" 1 "${K[1]}"
    assert_prefix "-NOSCRIPT" "$REPLY" "EVALSHA on another master's key after EVAL"
    sess_expect "$S" "$sha" SCRIPT LOAD "$script"
    sess_expect "$S" $'*1\n:1' SCRIPT EXISTS "$sha"
    sess_expect "$S" "f2" EVALSHA "$sha" 1 "${K[2]}"
    sess_close "$S"
}

# --- 6: RANDOMKEY --------------------------------------------------------------
step6() {
    local S i k p only=()
    cluster_flushall
    load_slots
    asess S
    sess_expect "$S" "(nil)" RANDOMKEY
    # Keys on one master only (each in turn): RANDOMKEY still finds them.
    pick_keys "p6:" 4
    local m
    for m in 0 1 2; do
        only=()
        for i in 0 1 2 3; do only+=("${PICKED[m * 4 + i]}"); done
        for k in "${only[@]}"; do ccli "${MASTERS[m]}" SET "$k" 1 > /dev/null; done
        for ((i = 0; i < 6; i++)); do
            sess_cmd "$S" RANDOMKEY
            [[ " ${only[*]} " == *" $REPLY "* ]] || fail "RANDOMKEY with keys on master ${MASTERS[m]} only: '$REPLY'"
        done
        ccli "${MASTERS[m]}" FLUSHALL > /dev/null
    done
    # Keys everywhere: each reply exists; more than one master answers.
    for k in "${PICKED[@]}"; do p=; owner "$k" p; ccli "$p" SET "$k" 1 > /dev/null; done
    local -A masters=()
    for ((i = 0; i < 30; i++)); do
        sess_cmd "$S" RANDOMKEY
        [[ " ${PICKED[*]} " == *" $REPLY "* ]] || fail "RANDOMKEY: '$REPLY' is not one of the keys"
        owner "$REPLY" p
        masters[$p]=1
    done
    [ "${#masters[@]}" -ge 2 ] || fail "30 RANDOMKEYs named keys of ${#masters[@]} master(s) only"
    sess_expect "$S" "+OK" FLUSHALL
    sess_expect "$S" "(nil)" RANDOMKEY
    sess_close "$S"
}

step 1 "SCAN of 20,000 keys" step1
step 2 "SCAN MATCH/TYPE/COUNT, pinned MATCH, invalid cursors" step2
step 3 "SCAN while keys are added and deleted" step3
step 4 "DEL UNLINK EXISTS TOUCH MSET split by slot" step4
step 5 "functions and scripts on every master" step5
step 6 "RANDOMKEY" step6

[ "${#FAILED_STEPS[@]}" -eq 0 ] || fail "failed steps: ${FAILED_STEPS[*]} (see the FAIL lines above)"
rd_stop
assert_eq 0 "$RD_LAST_RC" "redoubt's exit status"
note "t_cluster_spread took $(( $(now_ms) - T_START )) ms"
pass
