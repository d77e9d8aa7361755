#!/bin/bash
# t_cluster_txn: MULTI/EXEC/DISCARD/WATCH/UNWATCH through redoubt in front
# of a real 6-node TLS Redis Cluster (clients on a plaintext listener with
# AUTH alice, and on a TLS listener with roles). The cluster's nodes
# (ccli) and a plain redis-server given the same bytes are the oracles:
#   1  MULTI/EXEC on keys of each master, checked on the nodes; DISCARD
#      changes nothing; an empty EXEC; MULTI/WATCH inside MULTI
#   2  WATCH: a concurrent writer on the node gives a nil EXEC and nothing
#      applies; without one it applies; UNWATCH and DISCARD end the watch
#      on the node; WATCH across slots, a transaction in another slot
#   3  queue-time refusals abort the transaction (-EXECABORT, nothing
#      ran): CROSSSLOT, a command spread over the masters, unknown
#      command, wrong arity; the queue bound (limits.client_output_limit)
#   4  the reply bytes of a pipelined mix of transactions (one with an
#      error inside: INCR on a string, the rest runs) and plain commands
#      over every master, byte for byte those of a standalone redis-server
#   5  roles: NOPERM inside MULTI aborts it; a refused MULTI (a role
#      without MULTI), in cluster and in standalone mode: nothing of the
#      would-be transaction runs
#   6  a slot moved between MULTI and EXEC (MOVED): the whole transaction
#      runs on the new owner; during a migration (ASK) too; with WATCH the
#      error goes to the client and nothing runs
#   7  a node connection lost between WATCH and EXEC: EXEC is refused,
#      and no watch stays behind on another node's connection
#   8  redis-py's default (transactional) pipeline, when python3 has redis
#   9  a MULTI the nodes' own ACL refuses: the EXEC gets the node's
#      NOPERM and none of the queued commands runs (redoubt sends them
#      only after the node accepted the MULTI); commands pipelined behind
#      the EXEC, on the same node connection, run after it and outside it
# RD_TXN_STEPS="1 4" runs only those steps.
# shellcheck disable=SC2016,SC2317 # RESP literals; steps called indirectly
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
rd_init
need_tls
need cmp od

T_START=$(now_ms)
NOMU_PW=$(openssl rand -hex 12) || fail "openssl rand"
# nomu may do everything but MULTI, by the nodes' own ACL (step 9).
cluster_start "user nomu on >$NOMU_PW ~* &* +@all -multi"
PW=$CLUSTER_ALICE_PW
CA=$CLUSTER_CA
CACERT=$CA/db-ca.crt
note "cluster up in $(( $(now_ms) - T_START )) ms: nodes ${CLUSTER_PORTS[*]}"

# The reference redis-server (alice exists there too) and a standalone
# TLS redis for the refused MULTI in standalone mode.
redis_start ref
assert_eq OK "$(dcli ref ACL SETUSER alice on ">$PW" '~*' '&*' +@all 2>&1)" "ACL SETUSER alice on the reference redis"
ctl cert server --ca-dir "$CA" --host localhost,127.0.0.1 --out "$T/standalone"
redis_start_tls s "$T/standalone.crt" "$T/standalone.key" "$CA/db-client-ca.crt"
st() { tls_cli "${RD_REDIS_PORT[s]}" "$CLUSTER_CLIENT" "$CACERT" --user alice --pass "$PW" --no-auth-warning "$@"; }
assert_eq OK "$(tls_cli "${RD_REDIS_PORT[s]}" "$CLUSTER_CLIENT" "$CACERT" ACL SETUSER alice on ">$PW" '~*' '&*' +@all 2>&1)" "ACL SETUSER alice on the standalone TLS redis"

ctl cert server --ca-dir "$CA" --host localhost,127.0.0.1 --out "$T/redoubt"
TL_PORT=$(free_port) || fail "no free port"
TS_PORT=$(free_port) || fail "no free port"
N1=${CLUSTER_PORTS[0]}
N2=${CLUSTER_PORTS[1]}
CONF=$T/redoubt.conf
cat > "$CONF" <<EOF
# redoubt test configuration for $RD_TEST
worker_processes = 2;
pid_file = "$T/redoubt.pid";
error_log = { path = "$T/error.log"; level = "${RD_LOG_LEVEL:-info}"; };
limits = { client_output_limit = "1mb"; };
tls = { certificate = "$T/redoubt.crt"; certificate_key = "$T/redoubt.key";
        client_ca = "$CA/user-ca.crt"; };
upstream_tls = { ca_cert = "$CA/db-client-ca.crt"; ca_key = "$CA/db-client-ca.key";
                 server_ca = "$CACERT"; };
listen = (
  { address = "127.0.0.1:$RD_PORT"; database = "c"; tls = false; },
  { address = "127.0.0.1:$TL_PORT"; database = "c"; },
  { address = "127.0.0.1:$TS_PORT"; database = "s"; }
);
roles = (
  { name = "access"; allow = { db_labels = { * = "*"; }; db_users = [ "*" ]; }; },
  { name = "no-multi"; deny = { db_labels = { * = "*"; }; commands = [ "multi" ]; }; },
  { name = "no-incr"; deny = { db_labels = { * = "*"; }; commands = [ "incr" ]; }; }
);
databases = (
  { name = "c"; uri = "rediss://127.0.0.1:$N1?mode=cluster"; connect_timeout = "2s";
    labels = { env = "test"; };
    cluster = { seeds = [ "127.0.0.1:$N2" ]; refresh_interval = "60s"; max_redirects = 5; }; },
  { name = "s"; uri = "rediss://127.0.0.1:${RD_REDIS_PORT[s]}"; connect_timeout = "2s";
    labels = { env = "test"; }; }
);
EOF
out=$("$REDOUBT" -t -c "$CONF" 2>&1) || fail "redoubt -t: $out"
rd_start "$CONF"
user "$T/nomulti" --user nora --roles access,no-multi --db-users alice
user "$T/noincr" --user nick --roles access,no-incr --db-users alice

# --- helpers ---------------------------------------------------------------

# trs PORT PREFIX: one TLS session through redoubt, commands from stdin.
trs() { tls_cli "$1" "$2" "$CACERT" 2>&1 | sed '/^$/d'; }

# tags PREFIX: TAGS = one hash tag "{PREFIXj}" per master, in MASTERS order.
TAGS=()
tags() {
    local j=0 k p m
    local -A got=()
    TAGS=()
    while [ "${#got[@]}" -lt 3 ]; do
        k="{$1$j}"; j=$((j + 1))
        owner "$k" p
        [ -n "${got[$p]:-}" ] && continue
        got[$p]=$k
    done
    for m in "${MASTERS[@]}"; do TAGS+=("${got[$m]}"); done
}


FAILED=()
step() {
    local n=$1 title=$2 fn=$3 t0
    if [ -n "${RD_TXN_STEPS:-}" ] && [[ " $RD_TXN_STEPS " != *" $n "* ]]; then return 0; fi
    note "--- step $n: $title"
    t0=$(now_ms)
    if ( "$fn" ); then note "--- step $n passed ($(( $(now_ms) - t0 )) ms)"
    else FAILED+=("$n"); note "--- step $n FAILED"; fi
}

EXECABORT="-EXECABORT Transaction discarded because of previous errors."
CROSS="-CROSSSLOT Keys in request don't hash to the same slot"

# --- 1 ---------------------------------------------------------------------------
step1() {
    local S t i p
    cluster_flushall
    load_slots
    tags s1m
    asess S
    for i in 0 1 2; do
        t=${TAGS[i]}
        dset "$t:n" 10
        sess_expect "$S" "+OK" MULTI
        sess_expect "$S" "+QUEUED" SET "$t:a" "v$i"
        sess_expect "$S" "+QUEUED" INCR "$t:n"
        sess_expect "$S" "+QUEUED" RPUSH "$t:l" x y
        sess_expect "$S" "+QUEUED" GET "$t:a"
        sess_expect "$S" $'*4\n+OK\n:11\n:2\nv'"$i" EXEC
        owner "$t" p
        assert_eq "v$i" "$(ccli "$p" GET "$t:a")" "$t:a on its master $p after EXEC"
        assert_eq "11" "$(ccli "$p" GET "$t:n")" "$t:n on its master $p after EXEC"
        assert_eq $'x\ny' "$(ccli "$p" LRANGE "$t:l" 0 -1)" "$t:l on its master $p after EXEC"
    done
    # DISCARD changes nothing.
    t=${TAGS[1]}
    sess_expect "$S" "+OK" MULTI
    sess_expect "$S" "+QUEUED" SET "$t:a" discarded
    sess_expect "$S" "+QUEUED" INCR "$t:n"
    sess_expect "$S" "+OK" DISCARD
    assert_eq "v1" "$(dget "$t:a")" "$t:a after DISCARD"
    assert_eq "11" "$(dget "$t:n")" "$t:n after DISCARD"
    sess_expect "$S" "-ERR DISCARD without MULTI" DISCARD
    sess_expect "$S" "-ERR EXEC without MULTI" EXEC
    # An empty transaction; MULTI and WATCH inside MULTI are errors that
    # do not abort it (as Redis).
    sess_expect "$S" "+OK" MULTI
    sess_expect "$S" "*0" EXEC
    sess_expect "$S" "+OK" MULTI
    sess_expect "$S" "-ERR MULTI calls can not be nested" MULTI
    sess_expect "$S" "-ERR WATCH inside MULTI is not allowed" WATCH "$t:a"
    sess_expect "$S" "+QUEUED" SET "$t:a" nested
    sess_expect "$S" $'*1\n+OK' EXEC
    assert_eq nested "$(dget "$t:a")" "$t:a after MULTI inside MULTI"
    # A keyless transaction.
    sess_expect "$S" "+OK" MULTI
    sess_expect "$S" "+QUEUED" PING
    sess_expect "$S" "+QUEUED" ECHO hi
    sess_expect "$S" $'*2\n+PONG\nhi' EXEC
    sess_close "$S"
}

# --- 2 ---------------------------------------------------------------------------
step2() {
    local S t p other
    cluster_flushall
    load_slots
    tags s2w
    t=${TAGS[0]} other=${TAGS[1]}
    owner "$t" p
    dset "$t:k" start
    asess S
    # A concurrent writer: nil, nothing applied.
    sess_expect "$S" "+OK" WATCH "$t:k"
    sess_expect "$S" "start" GET "$t:k"
    assert_eq OK "$(ccli "$p" SET "$t:k" writer)" "the concurrent writer, straight on $p"
    sess_expect "$S" "+OK" MULTI
    sess_expect "$S" "+QUEUED" SET "$t:k" mine
    sess_expect "$S" "+QUEUED" SET "$t:other" mine
    sess_expect "$S" "(nil)" EXEC
    assert_eq writer "$(ccli "$p" GET "$t:k")" "$t:k after a WATCH that failed"
    assert_eq "" "$(ccli "$p" GET "$t:other")" "$t:other after a WATCH that failed"
    # No writer: it applies.
    sess_expect "$S" "+OK" WATCH "$t:k" "$t:w2"
    sess_expect "$S" "+OK" MULTI
    sess_expect "$S" "+QUEUED" SET "$t:k" mine
    sess_expect "$S" $'*1\n+OK' EXEC
    assert_eq mine "$(ccli "$p" GET "$t:k")" "$t:k after a WATCH that held"
    # EXEC ended that watch: a write now does not touch the next one.
    assert_eq OK "$(ccli "$p" SET "$t:k" writer2)" "a write after EXEC"
    sess_expect "$S" "+OK" MULTI
    sess_expect "$S" "+QUEUED" SET "$t:k" again
    sess_expect "$S" $'*1\n+OK' EXEC
    # UNWATCH ends the watch on the node.
    sess_expect "$S" "+OK" WATCH "$t:k"
    sess_expect "$S" "+OK" UNWATCH
    assert_eq OK "$(ccli "$p" SET "$t:k" writer3)" "a write after UNWATCH"
    sess_expect "$S" "+OK" MULTI
    sess_expect "$S" "+QUEUED" SET "$t:k" after-unwatch
    sess_expect "$S" $'*1\n+OK' EXEC
    assert_eq after-unwatch "$(ccli "$p" GET "$t:k")" "$t:k: UNWATCH reached the node"
    # DISCARD ends it too.
    sess_expect "$S" "+OK" WATCH "$t:k"
    sess_expect "$S" "+OK" MULTI
    sess_expect "$S" "+OK" DISCARD
    assert_eq OK "$(ccli "$p" SET "$t:k" writer4)" "a write after DISCARD"
    sess_expect "$S" "+OK" MULTI
    sess_expect "$S" "+QUEUED" SET "$t:k" after-discard
    sess_expect "$S" $'*1\n+OK' EXEC
    assert_eq after-discard "$(ccli "$p" GET "$t:k")" "$t:k: DISCARD ended the watch on the node"
    sess_expect "$S" "+OK" UNWATCH
    # WATCH across slots; a transaction in another slot than the watch.
    sess_expect "$S" "$CROSS" WATCH "$t:k" "$other:k"
    sess_expect "$S" "+OK" WATCH "$t:k"
    sess_expect "$S" "$CROSS" WATCH "$other:k"
    sess_expect "$S" "+OK" MULTI
    sess_expect "$S" "$CROSS" SET "$other:k" x
    sess_expect "$S" "$EXECABORT" EXEC
    assert_eq "" "$(dget "$other:k")" "$other:k after a transaction outside the watched slot"
    sess_close "$S"
}

# --- 3 ---------------------------------------------------------------------------
step3() {
    local S t u big want c cmd=()
    cluster_flushall
    load_slots
    tags s3x
    t=${TAGS[0]} u=${TAGS[2]}
    dset "$t:k" orig
    asess S
    # CROSSSLOT: nothing ran.
    sess_expect "$S" "+OK" MULTI
    sess_expect "$S" "+QUEUED" SET "$t:k" changed
    sess_expect "$S" "$CROSS" SET "$u:k" changed
    sess_expect "$S" "+QUEUED" SET "$t:k2" changed
    sess_expect "$S" "$EXECABORT" EXEC
    assert_eq orig "$(dget "$t:k")" "$t:k after a CROSSSLOT inside MULTI"
    assert_eq "" "$(dget "$t:k2")" "$t:k2 after a CROSSSLOT inside MULTI"
    assert_eq "" "$(dget "$u:k")" "$u:k after a CROSSSLOT inside MULTI"
    # A command spread over every master; a session command.
    for c in DBSIZE "KEYS *" FLUSHALL "CLIENT ID"; do
        sess_expect "$S" "+OK" MULTI
        sess_expect "$S" "+QUEUED" SET "$t:k" changed
        read -ra cmd <<<"$c"
        sess_cmd "$S" "${cmd[@]}"
        assert_prefix "-ERR redoubt: " "$REPLY" "$c inside MULTI"
        sess_expect "$S" "$EXECABORT" EXEC
        assert_eq orig "$(dget "$t:k")" "$t:k after $c inside MULTI"
    done
    # Redis's own queue-time errors, Redis's texts.
    for c in "NOSUCH a b" "GET" "CONFIG NOSUCH" "CONFIG GET" "SAVE"; do
        want=$(printf 'MULTI\r\n%s\r\nDISCARD\r\n' "$c" | dcli ref 2>&1 | sed -n 2p)
        sess_expect "$S" "+OK" MULTI
        sess_expect "$S" "+QUEUED" SET "$t:k" changed
        read -ra cmd <<<"$c"
        sess_cmd "$S" "${cmd[@]}"
        assert_eq "-$want" "$REPLY" "$c inside MULTI (the reference redis-server's text)"
        sess_expect "$S" "$EXECABORT" EXEC
        assert_eq orig "$(dget "$t:k")" "$t:k after $c inside MULTI"
    done
    # The queue is bounded by limits.client_output_limit (1mb here).
    big=$(head -c 600000 /dev/zero | tr '\0' z)
    sess_expect "$S" "+OK" MULTI
    sess_expect "$S" "+QUEUED" SET "$t:k" "$big"
    sess_expect "$S" "-ERR redoubt: transaction too large (limits.client_output_limit)" SET "$t:k" "$big"
    sess_expect "$S" "$EXECABORT" EXEC
    assert_eq orig "$(dget "$t:k")" "$t:k after a transaction too large"
    sess_expect "$S" "+PONG" PING
    sess_close "$S"
}

# --- 4 ---------------------------------------------------------------------------
step4() {
    local a b c
    cluster_flushall
    load_slots
    tags s4p
    a=${TAGS[0]} b=${TAGS[1]} c=${TAGS[2]}
    {
        resp_encode AUTH alice "$PW"
        resp_encode SET "$a:x" 1
        resp_encode MULTI
        resp_encode INCR "$a:x"
        resp_encode SET "$a:s" str
        resp_encode INCR "$a:s"
        resp_encode GET "$a:x"
        resp_encode MGET "$a:x" "$a:s" "$a:none"
        resp_encode EXEC
        resp_encode GET "$b:y"
        resp_encode MULTI
        resp_encode RPUSH "$b:l" a b c
        resp_encode LRANGE "$b:l" 0 -1
        resp_encode HSET "$b:h" f v g w
        resp_encode HGETALL "$b:h"
        resp_encode EXEC
        resp_encode SET "$c:z" 3
        resp_encode MULTI
        resp_encode SET "$c:z" 5
        resp_encode DISCARD
        resp_encode GET "$c:z"
        resp_encode MULTI
        resp_encode EXEC
        resp_encode MULTI
        resp_encode PING
        resp_encode ECHO "$c"
        resp_encode EXEC
        resp_encode WATCH "$c:z"
        resp_encode MULTI
        resp_encode INCRBY "$c:z" 10
        resp_encode GET
        resp_encode EXEC
        resp_encode WATCH "$a:x"
        resp_encode MULTI
        resp_encode DEL "$a:x" "$a:s"
        resp_encode EXISTS "$a:x"
        resp_encode EXEC
        resp_encode GET "$c:z"
        for i in 1 2 3; do
            resp_encode MULTI
            resp_encode INCR "$b:n"
            resp_encode INCR "$b:n"
            resp_encode EXEC
            resp_encode INCR "$a:n"
            resp_encode INCR "$b:n"
        done
        resp_encode GET "$b:n"
        resp_encode QUIT
    } > "$T/s4.in"
    dcli ref FLUSHALL >/dev/null
    raw_exchange "${RD_REDIS_PORT[ref]}" "$T/s4.in" "$T/s4.want" 30 || fail "the reference did not finish"
    grep -aq WRONGTYPE "$T/s4.want" || grep -aq 'not an integer' "$T/s4.want" || fail "no error inside EXEC (test bug)"
    raw_exchange "$RD_PORT" "$T/s4.in" "$T/s4.got" 30 || note "redoubt did not close after QUIT in 30 s"
    compare_stream "$T/s4.want" "$T/s4.got" "pipelined transactions and plain commands"
    assert_eq 3 "$(dget "$c:z")" "$c:z on its master (DISCARD, and the EXEC with an arity error aborted)"
    assert_eq 9 "$(dget "$b:n")" "$b:n on its master"
    assert_eq "" "$(dget "$a:x")" "$a:x on its master (DEL inside EXEC)"
}

# --- 5 ---------------------------------------------------------------------------
step5() {
    local t out
    cluster_flushall
    load_slots
    tags s5r
    t=${TAGS[1]}
    dset "$t:k" orig
    dset "$t:n" 1
    # NOPERM inside MULTI (a role without INCR): the transaction aborts.
    out=$(printf 'AUTH alice %s\nMULTI\nSET %s in-txn\nINCR %s\nEXEC\nGET %s\n' "$PW" "$t:k" "$t:n" "$t:k" | trs "$TL_PORT" "$T/noincr")
    assert_eq "OK|OK|QUEUED|NOPERM|EXECABORT Transaction discarded because of previous errors.|orig" \
        "$(sed 's/^\(NOPERM\).*/\1/' <<<"$out" | tr '\n' '|' | sed 's/|$//')" "NOPERM inside MULTI (cluster)"
    assert_eq orig "$(dget "$t:k")" "$t:k on its master after NOPERM inside MULTI"
    assert_eq 1 "$(dget "$t:n")" "$t:n on its master after NOPERM inside MULTI"
    # A refused MULTI: nothing of the transaction runs, in cluster mode...
    out=$(printf 'AUTH alice %s\nMULTI\nSET %s refused\nINCR %s\nEXEC\nGET %s\nMULTI\nSET %s refused\nDISCARD\nGET %s\n' \
              "$PW" "$t:k" "$t:n" "$t:k" "$t:k" "$t:k" | trs "$TL_PORT" "$T/nomulti")
    assert_eq "OK|NOPERM|ERR redoubt: not run: the MULTI of this transaction was refused|ERR redoubt: not run: the MULTI of this transaction was refused|EXECABORT Transaction discarded because of previous errors.|orig|NOPERM|ERR redoubt: not run: the MULTI of this transaction was refused|OK|orig" \
        "$(sed 's/^\(NOPERM\).*/\1/' <<<"$out" | tr '\n' '|' | sed 's/|$//')" "a refused MULTI (cluster)"
    assert_eq orig "$(dget "$t:k")" "$t:k on its master after a refused MULTI"
    assert_eq 1 "$(dget "$t:n")" "$t:n on its master after a refused MULTI"
    # ... and in standalone mode.
    assert_eq OK "$(st SET sk orig 2>&1)" "SET sk on the standalone redis"
    out=$(printf 'AUTH alice %s\nMULTI\nSET sk refused\nINCR sn\nEXEC\nGET sk\n' "$PW" | trs "$TS_PORT" "$T/nomulti")
    assert_eq "OK|NOPERM|ERR redoubt: not run: the MULTI of this transaction was refused|ERR redoubt: not run: the MULTI of this transaction was refused|EXECABORT Transaction discarded because of previous errors.|orig" \
        "$(sed 's/^\(NOPERM\).*/\1/' <<<"$out" | tr '\n' '|' | sed 's/|$//')" "a refused MULTI (standalone)"
    assert_eq orig "$(st GET sk 2>&1)" "sk on the standalone redis after a refused MULTI"
    # The EXEC and DISCARD of a refused MULTI still drop the session's
    # WATCHes, as Redis's would: they reach Redis as UNWATCH.
    local u0 u1
    u0=$(st INFO commandstats 2>&1 | sed -n 's/^cmdstat_unwatch:calls=\([0-9]*\),.*/\1/p')
    out=$(printf 'AUTH alice %s\nWATCH sk\nMULTI\nEXEC\nMULTI\nDISCARD\n' "$PW" | trs "$TS_PORT" "$T/nomulti")
    assert_eq "OK|OK|NOPERM|EXECABORT Transaction discarded because of previous errors.|NOPERM|OK" \
        "$(sed 's/^\(NOPERM\).*/\1/' <<<"$out" | tr '\n' '|' | sed 's/|$//')" "WATCH, then a refused MULTI's EXEC and DISCARD (standalone)"
    u1=$(st INFO commandstats 2>&1 | sed -n 's/^cmdstat_unwatch:calls=\([0-9]*\),.*/\1/p')
    assert_eq 2 "$(( ${u1:-0} - ${u0:-0} ))" "UNWATCHes that reached the standalone redis for a refused MULTI's EXEC and DISCARD"
    assert_eq "" "$(st GET sn 2>&1)" "sn on the standalone redis after a refused MULTI"
    # The same transaction with a role that may: it runs (the control).
    out=$(printf 'AUTH alice %s\nMULTI\nSET %s ran\nEXEC\n' "$PW" "$t:k" | trs "$TL_PORT" "$T/noincr")
    assert_eq "OK|OK|QUEUED|OK" "$(tr '\n' '|' <<<"$out" | sed 's/|$//')" "MULTI/EXEC over the TLS listener"
    assert_eq ran "$(dget "$t:k")" "$t:k on its master after MULTI/EXEC over TLS"
}

# --- 9 ---------------------------------------------------------------------------
step9() {
    local t u out want
    cluster_flushall
    load_slots
    tags s9r
    t=${TAGS[0]}
    # u: another key of the same master, in another slot.
    for u in s9a s9b s9c s9d s9e s9f s9g s9h s9i s9j; do
        local pu pt su st_
        owner "$u" pu; owner "$t:k" pt; key_slot "$u" su; key_slot "$t:k" st_
        [ "$pu" = "$pt" ] && [ "$su" != "$st_" ] && break
    done
    dset "$t:k" orig
    dset "$t:n" 1
    out=$(printf 'AUTH nomu %s\nMULTI\nSET %s in-txn\nINCR %s\nEXEC\nSET %s after\nINCR %s\nGET %s\nGET %s\n' \
              "$NOMU_PW" "$t:k" "$t:n" "$u" "$t:n" "$t:k" "$u" | redis-cli -h 127.0.0.1 -p "$RD_PORT" 2>&1 | sed '/^$/d')
    want="OK|OK|QUEUED|QUEUED|NOPERM this user has no permissions to run the 'multi' command|OK|2|orig|after"
    assert_eq "$want" "$(tr '\n' '|' <<<"$out" | sed 's/|$//')" "a MULTI the node refuses, then pipelined commands"
    assert_eq orig "$(dget "$t:k")" "$t:k on its master after a MULTI the node refused"
    assert_eq 2 "$(dget "$t:n")" "$t:n on its master: only the INCR after the EXEC ran"
    # Straight to the node, the same bytes run the queued commands one by
    # one (what redoubt must not let happen): the oracle for the test.
    out=$(owner "$t:k" pt; printf 'AUTH nomu %s\nMULTI\nSET %s direct\nEXEC\nGET %s\n' "$NOMU_PW" "$t:k" "$t:k" |
          timeout 20 redis-cli --tls --cert "$CLUSTER_CLIENT.crt" --key "$CLUSTER_CLIENT.key" \
              --cacert "$CLUSTER_CA/db-ca.crt" -h 127.0.0.1 -p "$pt" 2>&1 | sed '/^$/d')
    assert_eq "OK|NOPERM this user has no permissions to run the 'multi' command|OK|ERR EXEC without MULTI|direct" \
        "$(tr '\n' '|' <<<"$out" | sed 's/|$//')" "the same transaction straight to the node (the oracle)"
}

# --- 6 ---------------------------------------------------------------------------
# move_slot SLOT FROM TO [KEEP]: the whole slot from FROM to TO (all its
# keys, then SETSLOT NODE everywhere); with KEEP, only its keys move and
# the slot stays MIGRATING/IMPORTING.
move_slot() {
    local slot=$1 a=$2 b=$3 aid bid keys=() q out
    aid=$(cluster_node_id "$a")
    bid=$(cluster_node_id "$b")
    assert_eq OK "$(ccli "$b" CLUSTER SETSLOT "$slot" IMPORTING "$aid" 2>&1)" "SETSLOT IMPORTING on $b"
    assert_eq OK "$(ccli "$a" CLUSTER SETSLOT "$slot" MIGRATING "$bid" 2>&1)" "SETSLOT MIGRATING on $a"
    mapfile -t keys < <(ccli "$a" CLUSTER GETKEYSINSLOT "$slot" 1000)
    if [ "${#keys[@]}" -gt 0 ]; then
        out=$(ccli "$a" MIGRATE 127.0.0.1 "$b" "" 0 5000 AUTH2 alice "$PW" KEYS "${keys[@]}" 2>&1)
        assert_eq OK "$out" "MIGRATE from $a to $b"
    fi
    [ -n "${4:-}" ] && return 0
    for q in "$b" "$a" "${MASTERS[@]}"; do
        assert_eq OK "$(ccli "$q" CLUSTER SETSLOT "$slot" NODE "$bid" 2>&1)" "SETSLOT NODE on $q"
    done
    moved() { [[ $(ccli "$a" GET "$5" 2>&1) == "MOVED $1 127.0.0.1:$3" ]]; }
    wait_for 10 moved "$slot" "$a" "$b" "" "${5:-x}" || true
}
step6() {
    local S S2 t slot a b p out
    cluster_flushall
    load_slots
    # MOVED between MULTI and EXEC, no WATCH.
    t="{txnmig}"
    key_slot "$t" slot
    a=${SLOT_OWNER[slot]}
    for p in "${MASTERS[@]}"; do [ "$p" != "$a" ] && { b=$p; break; }; done
    dset "$t:c" 1
    asess S
    sess_expect "$S" "1" GET "$t:c"
    sess_expect "$S" "+OK" MULTI
    sess_expect "$S" "+QUEUED" SET "$t:k" new
    sess_expect "$S" "+QUEUED" INCR "$t:c"
    note "moving slot $slot ($t) from $a to $b between MULTI and EXEC"
    move_slot "$slot" "$a" "$b" "" "$t:c"
    sess_expect "$S" $'*2\n+OK\n:2' EXEC
    assert_eq new "$(ccli "$b" GET "$t:k" 2>&1)" "$t:k on the new owner $b"
    assert_eq 2 "$(ccli "$b" GET "$t:c" 2>&1)" "$t:c on the new owner $b"
    # ASK: the slot moves back; its keys already left, it is still
    # MIGRATING on b and IMPORTING on a.
    move_slot "$slot" "$b" "$a" keep
    sess_expect "$S" "+OK" MULTI
    sess_expect "$S" "+QUEUED" SET "$t:k" asked
    sess_expect "$S" "+QUEUED" INCR "$t:c"
    sess_expect "$S" $'*2\n+OK\n:3' EXEC
    assert_eq $'asked\n3' "$(printf 'ASKING\nGET %s\nASKING\nGET %s\n' "$t:k" "$t:c" | ccli "$a" 2>&1 | grep -v '^OK$')" "$t:k and $t:c on the importing node $a"
    for p in "$a" "$b" "${MASTERS[@]}"; do
        assert_eq OK "$(ccli "$p" CLUSTER SETSLOT "$slot" NODE "$(cluster_node_id "$a")" 2>&1)" "SETSLOT NODE on $p"
    done
    # With WATCH: the error goes to the client and nothing runs.
    load_slots
    sess_expect "$S" "asked" GET "$t:k"
    sess_expect "$S" "+OK" WATCH "$t:k"
    sess_expect "$S" "+OK" MULTI
    sess_expect "$S" "+QUEUED" SET "$t:k" watched
    move_slot "$slot" "$a" "$b" "" "$t:k"
    sess_cmd "$S" EXEC
    note "EXEC of a watched transaction whose slot moved: $REPLY"
    [[ $REPLY == "-MOVED "* || $REPLY == "-ERR redoubt:"* ]] || fail "EXEC of a watched transaction whose slot moved: '$REPLY'"
    assert_eq asked "$(ccli "$b" GET "$t:k" 2>&1)" "$t:k on $b after the watched transaction was refused"
    sess_expect "$S" "asked" GET "$t:k"
    sess_close "$S"
}

# --- 7 ---------------------------------------------------------------------------
step7() {
    local S t p
    cluster_flushall
    load_slots
    tags s7f
    t=${TAGS[2]}
    owner "$t" p
    dset "$t:k" orig
    asess S
    sess_expect "$S" "+OK" WATCH "$t:k"
    sess_expect "$S" "orig" GET "$t:k"
    out=$(ccli "$p" CLIENT KILL USER alice 2>&1)
    [[ $out =~ ^[1-9] ]] || fail "CLIENT KILL USER alice on $p: $out"
    sleep 0.3
    sess_expect "$S" "+OK" MULTI
    sess_expect "$S" "+QUEUED" SET "$t:k" unwatched
    sess_cmd "$S" EXEC
    assert_prefix "-ERR redoubt: a cluster node connection failed after WATCH" "$REPLY" "EXEC after the connection holding the WATCH was lost"
    assert_eq orig "$(dget "$t:k")" "$t:k after EXEC with a lost watch"
    # The next transaction runs.
    sess_expect "$S" "+OK" MULTI
    sess_expect "$S" "+QUEUED" SET "$t:k" later
    sess_expect "$S" $'*1\n+OK' EXEC
    assert_eq later "$(dget "$t:k")" "$t:k after the next transaction"
    # The session's connection to another master lost: the EXEC is refused
    # all the same, and the watch must not stay behind on the connection to
    # $p (a later EXEC there, WATCH or not, answered nil once the session
    # wrote the key).
    local o=${TAGS[0]} q
    owner "$o" q
    dset "$o:k" other
    dset "$t:k" orig
    sess_expect "$S" "+OK" WATCH "$t:k"
    sess_expect "$S" "other" GET "$o:k"
    out=$(ccli "$q" CLIENT KILL USER alice 2>&1)
    [[ $out =~ ^[1-9] ]] || fail "CLIENT KILL USER alice on $q: $out"
    sleep 0.3
    sess_expect "$S" "+OK" MULTI
    sess_expect "$S" "+QUEUED" SET "$t:k" unwatched
    sess_cmd "$S" EXEC
    assert_prefix "-ERR redoubt: a cluster node connection failed after WATCH" "$REPLY" "EXEC after another node's connection was lost"
    assert_eq orig "$(dget "$t:k")" "$t:k after EXEC with a lost connection"
    sess_expect "$S" "+OK" SET "$t:k" mine
    sess_expect "$S" "+OK" MULTI
    sess_expect "$S" "+QUEUED" SET "$t:k" later2
    sess_expect "$S" $'*1\n+OK' EXEC
    assert_eq later2 "$(dget "$t:k")" "$t:k after a transaction once the session wrote the key"
    sess_close "$S"
}

# --- 8 ---------------------------------------------------------------------------
step8() {
    local py out
    PY_REDIS=
    for py in python3 /usr/bin/python3; do
        if command -v "$py" >/dev/null && "$py" -c 'import redis' 2>/dev/null; then PY_REDIS=$py; break; fi
    done
    if [ -z "$PY_REDIS" ]; then note "redis-py not installed: step skipped"; return 0; fi
    cluster_flushall
    load_slots
    out=$(RD_PW=$PW "$PY_REDIS" - "$RD_PORT" <<'PY' 2>&1
import os, sys, redis
r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]), username="alice",
                password=os.environ["RD_PW"])
p = r.pipeline()
p.set("{py}a", "1").incr("{py}n").get("{py}a").rpush("{py}l", "x", "y")
print(p.execute())
with r.pipeline() as p:
    p.watch("{py}n")
    v = int(p.get("{py}n"))
    p.multi()
    p.set("{py}n", v + 10)
    print(p.execute())
try:
    r.pipeline().set("{py}a", "2").set("{other}b", "2").execute()
except redis.exceptions.ResponseError as e:
    print("error:", str(e).split(" ")[0])
print(r.get("{py}a"), r.get("{py}n"), r.get("{other}b"))
PY
)
    assert_eq $'[True, 1, b\'1\', 2]\n[True]\nerror: Command\nb\'1\' b\'11\' None' "$out" "redis-py's transactional pipelines"
}

step 1 "MULTI/EXEC on every master, DISCARD" step1
step 2 "WATCH" step2
step 3 "queue-time refusals" step3
step 4 "reply bytes of pipelined transactions vs a standalone redis-server" step4
step 5 "roles: NOPERM inside MULTI, a refused MULTI (cluster and standalone)" step5
step 6 "a slot moved between MULTI and EXEC" step6
step 7 "a connection lost between WATCH and EXEC" step7
step 8 "redis-py" step8
step 9 "a MULTI the nodes' ACL refuses" step9

[ "${#FAILED[@]}" -eq 0 ] || fail "failed steps: ${FAILED[*]}"
rd_stop
assert_eq 0 "$RD_LAST_RC" "redoubt's exit status"
for ((i = 1; i <= 6; i++)); do redis_stop "node$i"; done
redis_stop ref
redis_stop s
note "t_cluster_txn took $(( $(now_ms) - T_START )) ms"
pass
