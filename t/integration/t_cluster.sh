#!/bin/bash
# t_cluster: redoubt in front of a real 6-node Redis Cluster (3 masters, 3
# replicas, TLS only, users.acl with "user default off"), as
# "rediss://...?mode=cluster", clients on a plaintext listener sending
# AUTH alice. Each step checks redoubt's answers against the cluster
# itself (redis-cli -c straight to the nodes) or against a plain
# redis-server given the same bytes:
#   1  10,000 random keys (some with {hash tags}) SET and read back in one
#      pipelined connection each; sampled GET -c on the nodes; DBSIZE sum
#   2  5,000 mixed pipelined commands over keys on every master, replies
#      byte for byte those of a standalone redis-server; the data too
#   3  MGET across masters with missing keys (order and nulls), pipelined
#   4  DBSIZE, KEYS, FLUSHALL, FLUSHDB, SCRIPT LOAD/EVALSHA/EXISTS/FLUSH
#   5  the cluster-mode command refusals
#   6  CROSSSLOT from RENAME across slots; RENAME within a hash tag
#   7  live resharding of a slot (IMPORTING/MIGRATING, MIGRATE ... AUTH2):
#      ASK followed while half the keys moved, MOVED after; SET during it
#   9  cluster.discovery_user: the map is learned for a user who may not
#      run CLUSTER SLOTS (and, as a control, not without a discovery
#      user); a wrong discovery password reaches Redis as the discovery
#      user; a session that never AUTHs gets NOAUTH, then AUTH works
#   10 a standalone rediss:// database still allows MULTI/EXEC
#   8  (last, it changes the cluster) kill -9 of a master while a session
#      pipelines: errors for its slots only, MGET fails with ERR, the
#      replica takes over; on the first try the same session, new
#      sessions on the worker that saw nothing of the outage (three with
#      keyless commands only, so that AUTH meets every master of its old
#      map) and any new session reach it; the node rejoins as a replica;
#      redoubt's workers never change (three workers, one per role);
#      barriers: in sessions whose worker still has the map from before
#      the failover, a SET to the dead master's slot parks (waiting for a
#      new map), and a pipelined AUTH (as "ro", who may only GET) and
#      FLUSHALL wait for it: the SET runs as alice, before the FLUSHALL
# Steps 1-7, 9 and 10 each run in a subshell: a failed one is reported
# and the next one runs; the test fails at the end if any failed.
# RD_CLUSTER_STEPS="1 5 8" runs only those steps (for debugging).
# shellcheck disable=SC2016,SC2119,SC2317 # RESP literals; optional args; steps called indirectly
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
rd_init
need_tls
need cmp od sort sha1sum
# Three workers: step 8 keeps one of them away from the failure.
RD_WORKERS=3

T_START=$(now_ms)
BOB_PW=$(openssl rand -hex 12) || fail "openssl rand"
RO_PW=$(openssl rand -hex 12) || fail "openssl rand"
# bob may do everything but CLUSTER: he cannot read the cluster map; ro
# may only read (step 8).
cluster_start "user bob on >$BOB_PW ~* &* +@all -cluster" "user ro on >$RO_PW ~* -@all +get +auth +ping"
PW=$CLUSTER_ALICE_PW
note "cluster up in $(( $(now_ms) - T_START )) ms: nodes ${CLUSTER_PORTS[*]}"

# --- the cluster itself (checks of the harness) --------------------------
mapfile -t M0 < <(cluster_masters)
assert_eq 3 "${#M0[@]}" "masters in the new cluster"
for k in a b '{user1000}.following' 'x{}y' '{a}b' 'ab{c}d{e}' 'abc{'; do
    assert_eq "$(ccli "${M0[0]}" CLUSTER KEYSLOT "$k")" "$(key_slot "$k")" "key_slot $k (bash) vs CLUSTER KEYSLOT"
done
out=$(REDISCLI_AUTH=$CLUSTER_DISCOVERY_PW timeout 10 redis-cli --tls --cert "$CLUSTER_CLIENT.crt" \
        --key "$CLUSTER_CLIENT.key" --cacert "$CLUSTER_CA/db-ca.crt" --user discovery \
        --no-auth-warning -p "${M0[0]}" CLUSTER SLOTS 2>&1 | head -n 1)
[[ $out =~ ^[0-9]+$ ]] || fail "the discovery user cannot read CLUSTER SLOTS: $out"
out=$(REDISCLI_AUTH=$CLUSTER_DISCOVERY_PW timeout 10 redis-cli --tls --cert "$CLUSTER_CLIENT.crt" \
        --key "$CLUSTER_CLIENT.key" --cacert "$CLUSTER_CA/db-ca.crt" --user discovery \
        --no-auth-warning -p "${M0[0]}" GET a 2>&1)
assert_prefix NOPERM "$out" "GET as the discovery user (test setup)"
out=$(tls_cli "${M0[0]}" "$CLUSTER_CLIENT" "$CLUSTER_CA/db-ca.crt" GET a 2>&1)
assert_prefix NOAUTH "$out" "GET without AUTH straight to a node (user default is off)"
out=$(printf 'SET harness:a 1\nSET harness:b 2\nGET harness:a\nGET harness:b\n' |
      ccli "${M0[0]}" -c 2>&1 | grep -v '^-> Redirected')
assert_eq $'OK\nOK\n1\n2' "$out" "SET and GET -c straight to the cluster"
# The replicas replicate.
wait_for 10 cluster__ok 3 || fail "replicas not in sync"

# A standalone TLS redis (step 10) and a plain one, the reference replies
# for step 2 (alice exists there too).
ctl cert server --ca-dir "$CLUSTER_CA" --host localhost,127.0.0.1 --out "$T/standalone"
redis_start_tls s "$T/standalone.crt" "$T/standalone.key" "$CLUSTER_CA/db-client-ca.crt"
redis_start ref
assert_eq OK "$(dcli ref ACL SETUSER alice on ">$PW" '~*' '&*' +@all 2>&1)" "ACL SETUSER alice on the reference redis"

# --- redoubt -------------------------------------------------------------
CD_PORT=$(free_port) || fail "no free port"
CDBAD_PORT=$(free_port) || fail "no free port"
CB_PORT=$(free_port) || fail "no free port"
S_PORT=$(free_port) || fail "no free port"
C2_PORT=$(free_port) || fail "no free port"
C3_PORT=$(free_port) || fail "no free port"
N1=${CLUSTER_PORTS[0]}
N2=${CLUSTER_PORTS[1]}
CONF=$T/redoubt.conf
cat > "$CONF" <<EOF
# redoubt test configuration for $RD_TEST
worker_processes = $RD_WORKERS;
pid_file = "$T/redoubt.pid";
worker_shutdown_timeout = "10s";
error_log = { path = "$T/error.log"; level = "${RD_LOG_LEVEL:-debug}"; };
upstream_tls = { ca_cert = "$CLUSTER_CA/db-client-ca.crt"; ca_key = "$CLUSTER_CA/db-client-ca.key";
                 server_ca = "$CLUSTER_CA/db-ca.crt"; };
listen = (
  { address = "127.0.0.1:$RD_PORT"; database = "c"; tls = false; },
  { address = "127.0.0.1:$CD_PORT"; database = "cd"; tls = false; },
  { address = "127.0.0.1:$CDBAD_PORT"; database = "cdbad"; tls = false; },
  { address = "127.0.0.1:$CB_PORT"; database = "cb"; tls = false; },
  { address = "127.0.0.1:$S_PORT"; database = "s"; tls = false; },
  { address = "127.0.0.1:$C2_PORT"; database = "c2"; tls = false; },
  { address = "127.0.0.1:$C3_PORT"; database = "c3"; tls = false; }
);
databases = (
  { name = "c"; uri = "rediss://127.0.0.1:$N1?mode=cluster"; connect_timeout = "2s";
    cluster = { seeds = [ "127.0.0.1:$N2" ]; refresh_interval = "60s";
                max_redirects = 5; tryagain_delay = "100ms"; }; },
  { name = "cd"; uri = "rediss://127.0.0.1:$N1?mode=cluster"; connect_timeout = "2s";
    cluster = { seeds = [ "127.0.0.1:$N2" ];
                discovery_user = "discovery"; discovery_password = "$CLUSTER_DISCOVERY_PW"; }; },
  { name = "cdbad"; uri = "rediss://127.0.0.1:$N1?mode=cluster"; connect_timeout = "2s";
    cluster = { discovery_user = "discovery"; discovery_password = "not-the-password"; }; },
  { name = "cb"; uri = "rediss://127.0.0.1:$N1?mode=cluster"; connect_timeout = "2s"; },
  { name = "s"; uri = "rediss://127.0.0.1:${RD_REDIS_PORT[s]}"; connect_timeout = "2s"; },
  { name = "c2"; uri = "rediss://127.0.0.1:$N1?mode=cluster"; connect_timeout = "2s";
    cluster = { seeds = [ "127.0.0.1:$N2" ]; refresh_interval = "60s"; }; },
  { name = "c3"; uri = "rediss://127.0.0.1:$N1?mode=cluster"; connect_timeout = "2s";
    cluster = { seeds = [ "127.0.0.1:$N2" ]; refresh_interval = "60s"; }; }
);
EOF
out=$("$REDOUBT" -t -c "$CONF" 2>&1) || fail "redoubt -t on the cluster configuration: $out"
rd_start "$CONF"
WORKERS0=$(rd_workers | tr '\n' ' ')
note "redoubt master $RD_PID, workers $WORKERS0"

# --- helpers ---------------------------------------------------------------

# via PORT ARGS...: redis-cli through redoubt's listener PORT, as alice.
via() {
    local port=$1
    shift
    REDISCLI_AUTH=$PW timeout 20 redis-cli --user alice --no-auth-warning -h 127.0.0.1 -p "$port" "$@"
}
rx() { via "$RD_PORT" "$@"; }


# load_slots: SLOT_OWNER[slot] = port of its master, from CLUSTER NODES;
# MASTERS = the masters' ports, sorted.




# no_redirects FILE WHAT: no MOVED/ASK/TRYAGAIN reached the client.
no_redirects() {
    if grep -aqE '^-(MOVED|ASK|TRYAGAIN) ' "$1"; then
        fail "$2: a redirection reached the client: $(grep -aE '^-(MOVED|ASK|TRYAGAIN) ' "$1" | head -n 1 | tr -d '\r')"
    fi
}

# rd_conns: "PEERPORT WORKER" for each established connection to redoubt's
# RD_PORT (from /proc: which worker holds the socket).
rd_conns() {
    local w l ino hexport _sl loc rem st _q _t _r _u _to rest
    local -A holder=()
    for w in $(rd_workers); do
        while read -r l; do
            [[ $l == 'socket:['*']' ]] || continue
            ino=${l#socket:[}
            holder[${ino%]}]=$w
        done < <(find "/proc/$w/fd" -mindepth 1 -maxdepth 1 -printf '%l\n' 2>/dev/null)
    done
    printf -v hexport '%04X' "$RD_PORT"
    while read -r _sl loc rem st _q _t _r _u _to ino rest; do
        if [ "$st" != 01 ] || [ "${loc#*:}" != "$hexport" ]; then continue; fi
        [ -n "${holder[$ino]:-}" ] && echo "$((16#${rem#*:})) ${holder[$ino]}"
    done < /proc/net/tcp
    return 0
}

# sess_worker S: the worker that holds session S (empty until one
# accepted it).
sess_worker() {
    local l ino lport="" _sl loc rem st _q _t _r _u _to i rest
    l=$(readlink "/proc/$BASHPID/fd/$1" 2>/dev/null) || return 1
    ino=${l#socket:[}
    ino=${ino%]}
    while read -r _sl loc rem st _q _t _r _u _to i rest; do
        [ "$i" = "$ino" ] && { lport=$((16#${loc#*:})); break; }
    done < /proc/net/tcp
    [ -n "$lport" ] || return 1
    rd_conns | awk -v p="$lport" '$1 == p { print $2 }'
}

# sess_on VAR WORKER...: open a session (VAR) that one of the WORKERs
# holds, trying new connections as long as needed (at most 60).
sess_on() {
    local __v=$1 __i __w __x
    shift
    for ((__i = 0; __i < 60; __i++)); do
        sess_open "$__v" || fail "cannot connect to redoubt"
        __w=
        for ((__x = 0; __x < 100 && ${#__w} == 0; __x++)); do
            __w=$(sess_worker "${!__v}")
            [ -n "$__w" ] || sleep 0.02
        done
        [[ " $* " == *" $__w "* ]] && { SESS_WORKER=$__w; return 0; }
        sess_close "${!__v}"
    done
    fail "60 connections and none reached worker(s) $*"
}

workers_unchanged() {
    alive "$RD_PID" || fail "redoubt's master $RD_PID is gone"
    assert_eq "$WORKERS0" "$(rd_workers | tr '\n' ' ')" "redoubt's workers (a change means one died)"
}

FAILED_STEPS=()
# step N TITLE FUNCTION: run FUNCTION in a subshell, record a failure.
step() {
    local n=$1 title=$2 fn=$3 t0 rc
    if [ -n "${RD_CLUSTER_STEPS:-}" ] && [[ " $RD_CLUSTER_STEPS " != *" $n "* ]]; then
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

# --- 1: 10,000 keys --------------------------------------------------------
step1() {
    local n=10000 i r k hex keys=() vals=() tags=0 p sum total out t0
    cluster_flushall
    load_slots
    hex=$(openssl rand -hex $((n * 6))) || fail "openssl rand"
    for ((i = 0; i < n; i++)); do
        r=${hex:i*12:12}
        case $((i % 10)) in
            0|5) k="{tag$((i % 7))}:${r:0:6}:$i"; tags=$((tags + 1)) ;;
            3) k="u${r:0:4}{${r:4:5}}-$i" ;;
            7) k="${r:2:3}.$i.${r:7:5}" ;;
            *) k="k:$r:$i" ;;
        esac
        keys+=("$k")
        vals+=("v$i-${r:3:6}")
    done
    {
        resp_encode AUTH alice "$PW"
        for ((i = 0; i < n; i++)); do resp_encode SET "${keys[i]}" "${vals[i]}"; done
        resp_encode QUIT
    } > "$T/s1.set.in"
    for ((i = 0; i < n + 2; i++)); do printf '+OK\r\n'; done > "$T/s1.set.want"
    t0=$(now_ms)
    raw_exchange "$RD_PORT" "$T/s1.set.in" "$T/s1.set.got" 90 ||
        note "SET pipeline: the connection was not closed after QUIT in 90 s"
    no_redirects "$T/s1.set.got" "10,000 SETs"
    compare_stream "$T/s1.set.want" "$T/s1.set.got" "10,000 SETs"
    note "10,000 SETs through redoubt in $(( $(now_ms) - t0 )) ms"

    {
        resp_encode AUTH alice "$PW"
        for ((i = 0; i < n; i++)); do resp_encode GET "${keys[i]}"; done
        resp_encode QUIT
    } > "$T/s1.get.in"
    {
        printf '+OK\r\n'
        for ((i = 0; i < n; i++)); do printf '$%d\r\n%s\r\n' "${#vals[i]}" "${vals[i]}"; done
        printf '+OK\r\n'
    } > "$T/s1.get.want"
    t0=$(now_ms)
    raw_exchange "$RD_PORT" "$T/s1.get.in" "$T/s1.get.got" 90 ||
        note "GET pipeline: the connection was not closed after QUIT in 90 s"
    no_redirects "$T/s1.get.got" "10,000 GETs"
    compare_stream "$T/s1.get.want" "$T/s1.get.got" "10,000 GETs"
    note "10,000 GETs through redoubt in $(( $(now_ms) - t0 )) ms"

    # Straight on the cluster: 500 keys with GET -c, and the key count.
    : > "$T/s1.sample.in"
    : > "$T/s1.sample.want"
    for ((i = 0; i < n; i += 20)); do
        printf 'GET %s\n' "${keys[i]}" >> "$T/s1.sample.in"
        printf '%s\n' "${vals[i]}" >> "$T/s1.sample.want"
    done
    ccli "${MASTERS[0]}" -c < "$T/s1.sample.in" 2>&1 | grep -v '^-> Redirected' > "$T/s1.sample.got"
    cmp -s "$T/s1.sample.want" "$T/s1.sample.got" ||
        fail "GET -c of 500 of the keys straight on the cluster: $(diff "$T/s1.sample.want" "$T/s1.sample.got" | head -n 6 | tr '\n' ' ')"
    sum=0
    for p in "${MASTERS[@]}"; do
        out=$(ccli "$p" DBSIZE 2>&1)
        [[ $out =~ ^[0-9]+$ ]] || fail "DBSIZE on master $p: $out"
        [ "$out" -gt 2000 ] || fail "master $p holds only $out of the 10,000 keys"
        sum=$((sum + out))
    done
    assert_eq "$n" "$sum" "DBSIZE summed over the masters"
    # A hash tag keeps its keys in one slot, on one master.
    local want got slot
    key_slot "{tag3}" slot
    want=$(for ((i = 0; i < n; i++)); do [[ ${keys[i]} == '{tag3}'* ]] && echo "${keys[i]}"; done | sort)
    got=$(ccli "${SLOT_OWNER[slot]}" CLUSTER GETKEYSINSLOT "$slot" 5000 | sort)
    total=$(comm -23 <(echo "$want") <(echo "$got") | wc -l)
    assert_eq 0 "$total" "{tag3} keys missing from slot $slot on master ${SLOT_OWNER[slot]}"
}

# --- 2: a 5,000-command pipeline -------------------------------------------
step2() {
    local n=5000 i j s c l big
    cluster_flushall
    load_slots
    pick_keys "p2:s:" 2; local S2=("${PICKED[@]}")
    pick_keys "p2:c:" 2; local C2=("${PICKED[@]}")
    pick_keys "p2:l:" 2; local L2=("${PICKED[@]}")
    pick_keys "p2:m:" 1; local MISS=("${PICKED[@]}")
    big=$(printf '%*s' 70000 '' | tr ' ' 'z')
    {
        resp_encode AUTH alice "$PW"
        for ((i = 0; i < n; i++)); do
            j=$(( (i / 13 + i) % 6 ))
            s=${S2[j]} c=${C2[j]} l=${L2[j]}
            if ((i % 1000 == 500)); then resp_encode SET "$s:big" "$big"; continue; fi
            if ((i % 1000 == 501)); then resp_encode GET "$s:big"; continue; fi
            case $((i % 13)) in
                0) resp_encode SET "$s" "v$i" ;;
                1) resp_encode GET "$s" ;;
                2) resp_encode INCR "$c" ;;
                3) resp_encode LPUSH "$l" "a$i" "b$i" ;;
                4) resp_encode LRANGE "$l" 0 4 ;;
                5) resp_encode DEL "$s" ;;
                6) resp_encode PING ;;
                7) resp_encode ECHO "echo $i" ;;
                8) resp_encode GET "${MISS[i % 3]}" ;;          # null bulk
                9) resp_encode INCR "$l" ;;                     # WRONGTYPE
                10) resp_encode APPEND "$s" "+$i" ;;
                11) resp_encode EXISTS "$c" ;;
                12) resp_encode INCRBY "$c" notanumber ;;       # ERR not an integer
            esac
        done
        resp_encode QUIT
    } > "$T/s2.in"
    dcli ref FLUSHALL >/dev/null
    raw_exchange "${RD_REDIS_PORT[ref]}" "$T/s2.in" "$T/s2.want" 60 ||
        fail "the reference redis-server did not finish the pipeline"
    grep -aq WRONGTYPE "$T/s2.want" || fail "the pipeline produced no error replies (test bug)"
    t0=$(now_ms)
    raw_exchange "$RD_PORT" "$T/s2.in" "$T/s2.got" 90 ||
        note "pipeline: the connection was not closed after QUIT in 90 s"
    no_redirects "$T/s2.got" "5,000-command pipeline"
    compare_stream "$T/s2.want" "$T/s2.got" "5,000-command pipeline over keys on every master"
    note "5,000 pipelined commands through redoubt in $(( $(now_ms) - t0 )) ms, $(wc -c < "$T/s2.got") reply bytes identical"
    # The data is where it belongs, as in the reference.
    {
        for s in "${S2[@]}"; do printf 'GET %s\nSTRLEN %s:big\n' "$s" "$s"; done
        for c in "${C2[@]}"; do printf 'GET %s\n' "$c"; done
        for l in "${L2[@]}"; do printf 'LRANGE %s 0 -1\n' "$l"; done
    } > "$T/s2.check"
    REDISCLI_AUTH=$PW redis-cli --user alice --no-auth-warning -p "${RD_REDIS_PORT[ref]}" < "$T/s2.check" > "$T/s2.check.want" 2>&1
    ccli "${MASTERS[0]}" -c < "$T/s2.check" 2>&1 | grep -v '^-> Redirected' > "$T/s2.check.got"
    cmp -s "$T/s2.check.want" "$T/s2.check.got" ||
        fail "the keys on the cluster differ from the reference's: $(diff "$T/s2.check.want" "$T/s2.check.got" | head -n 6 | tr '\n' ' ')"
}

# --- 3: MGET -----------------------------------------------------------------
step3() {
    local S a b c ma mb mc
    cluster_flushall
    load_slots
    pick_keys "p3:k:" 1; a=${PICKED[0]} b=${PICKED[1]} c=${PICKED[2]}
    pick_keys "p3:none:" 1; ma=${PICKED[0]} mb=${PICKED[1]} mc=${PICKED[2]}
    dset "$a" va "$b" vb "$c" vc
    asess S
    sess_expect "$S" $'*7\nva\n(nil)\nvb\n(nil)\nvc\n(nil)\nva' MGET "$a" "$ma" "$b" "$mb" "$c" "$mc" "$a"
    sess_expect "$S" $'*3\nvc\nvb\nva' MGET "$c" "$b" "$a"
    sess_expect "$S" $'*3\n(nil)\n(nil)\n(nil)' MGET "$mc" "$ma" "$mb"
    sess_expect "$S" $'*1\nvb' MGET "$b"
    # Pipelined, in one write, between commands for single nodes.
    {
        resp_encode GET "$a"
        resp_encode MGET "$c" "$mb" "$b" "$a"
        resp_encode GET "$mc"
        resp_encode MGET "$ma" "$b"
        resp_encode SET "$mc" now
        resp_encode MGET "$mc" "$c" "$a"
        resp_encode ECHO "done"
    } > "$T/s3.in"
    cat "$T/s3.in" >&"$S"
    local want=("va" $'*4\nvc\n(nil)\nvb\nva' "(nil)" $'*2\n(nil)\nvb' "+OK" $'*3\nnow\nvc\nva' "done") i rc
    for ((i = 0; i < ${#want[@]}; i++)); do
        sess_read "$S"; rc=$?
        [ "$rc" -eq 0 ] || fail "pipelined MGETs: reply $((i + 1)) missing (rc $rc)"
        assert_eq "${want[i]}" "$REPLY" "pipelined MGETs: reply $((i + 1))"
    done
    sess_close "$S"
    assert_eq now "$(dget "$mc")" "the SET between the MGETs, straight on the cluster"
}

# --- 4: commands on every master ----------------------------------------------
step4() {
    local S p sum out i k want got sha sha2 keys=()
    cluster_flushall
    load_slots
    pick_keys "p4:" 100
    keys=("${PICKED[@]}")
    for p in "${MASTERS[@]}"; do
        for k in "${keys[@]}"; do
            local o; owner "$k" o
            [ "$o" = "$p" ] && printf 'SET %s x\n' "$k"
        done | ccli "$p" > "$T/s4.set.$p" 2>&1
        [ "$(grep -c '^OK$' "$T/s4.set.$p")" -eq 100 ] || fail "SET of 100 keys straight on master $p: $(grep -v '^OK$' "$T/s4.set.$p" | head -n 2)"
    done
    asess S
    sum=0
    for p in "${MASTERS[@]}"; do sum=$((sum + $(ccli "$p" DBSIZE))); done
    assert_eq 300 "$sum" "DBSIZE summed over the masters (test setup)"
    sess_expect "$S" ":$sum" DBSIZE
    # KEYS * is the union over the masters.
    for p in "${MASTERS[@]}"; do ccli "$p" KEYS '*'; done | sort > "$T/s4.keys.want"
    sess_cmd "$S" KEYS '*' || fail "KEYS * through redoubt: no reply"
    [ "$(head -n 1 <<<"$REPLY")" = '*300' ] || fail "KEYS * through redoubt: expected 300 keys, got '$(head -c 200 <<<"$REPLY")'"
    tail -n +2 <<<"$REPLY" | sort > "$T/s4.keys.got"
    cmp -s "$T/s4.keys.want" "$T/s4.keys.got" || fail "KEYS * through redoubt differs from the union over the masters: $(diff "$T/s4.keys.want" "$T/s4.keys.got" | head -n 4 | tr '\n' ' ')"
    sess_cmd "$S" KEYS 'p4:1*' || fail "KEYS p4:1* through redoubt: no reply"
    assert_eq "$(grep '^p4:1' "$T/s4.keys.want" | tr '\n' ' ')" "$(tail -n +2 <<<"$REPLY" | sort | tr '\n' ' ')" "KEYS p4:1* through redoubt"
    # FLUSHALL and FLUSHDB empty every master.
    sess_expect "$S" "+OK" FLUSHALL
    for p in "${MASTERS[@]}"; do assert_eq 0 "$(ccli "$p" DBSIZE)" "DBSIZE on master $p after FLUSHALL through redoubt"; done
    sess_expect "$S" ":0" DBSIZE
    dset "${keys[0]}" 1 "${keys[100]}" 2 "${keys[200]}" 3
    sess_expect "$S" ":3" DBSIZE
    sess_expect "$S" "+OK" FLUSHDB
    for p in "${MASTERS[@]}"; do assert_eq 0 "$(ccli "$p" DBSIZE)" "DBSIZE on master $p after FLUSHDB through redoubt"; done
    # SCRIPT LOAD reaches every master: EVALSHA works for keys anywhere.
    local script="return redis.call('INCRBY', KEYS[1], ARGV[1])"
    want=$(printf '%s' "$script" | sha1sum | cut -d' ' -f1)
    sess_expect "$S" "$want" SCRIPT LOAD "$script"
    sha=$want
    for p in "${MASTERS[@]}"; do assert_eq 1 "$(ccli "$p" SCRIPT EXISTS "$sha")" "SCRIPT EXISTS on master $p after SCRIPT LOAD through redoubt"; done
    for i in 0 100 200; do
        sess_expect "$S" ":5" EVALSHA "$sha" 1 "${keys[i]}" 5
        sess_expect "$S" ":7" EVALSHA "$sha" 1 "${keys[i]}" 2
        assert_eq 7 "$(dget "${keys[i]}")" "${keys[i]} after EVALSHA through redoubt, straight on its master"
    done
    sess_expect "$S" $'*1\n:1' SCRIPT EXISTS "$sha"
    # A script only one master has does not exist for the cluster.
    sha2=$(ccli "${MASTERS[1]}" SCRIPT LOAD "return 'only on one node'")
    assert_eq 1 "$(ccli "${MASTERS[1]}" SCRIPT EXISTS "$sha2")" "SCRIPT EXISTS straight on the master that has it"
    sess_expect "$S" $'*1\n:0' SCRIPT EXISTS "$sha2"
    sess_expect "$S" $'*3\n:1\n:0\n:1' SCRIPT EXISTS "$sha" "$sha2" "$sha"
    sess_expect "$S" "+OK" SCRIPT FLUSH
    sess_expect "$S" $'*2\n:0\n:0' SCRIPT EXISTS "$sha" "$sha2"
    for p in "${MASTERS[@]}"; do assert_eq $'0\n0' "$(ccli "$p" SCRIPT EXISTS "$sha" "$sha2")" "SCRIPT EXISTS on master $p after SCRIPT FLUSH through redoubt"; done
    out=$(rx EVALSHA "$sha" 1 "${keys[0]}" 1 2>&1)
    assert_prefix NOSCRIPT "$out" "EVALSHA after SCRIPT FLUSH through redoubt"
    sess_close "$S"
}

# --- 5: refused commands -------------------------------------------------------
step5() {
    local S line rc bad=() c
    local cmds=(
        "ASKING"
        "CLUSTER INFO"
        "DEBUG SLEEP 0"
        "MIGRATE 127.0.0.1 1 k5 0 1000"
        "MODULE LIST"
        "MONITOR"
        "PFDEBUG GETREG k5"
        "PFSELFTEST"
        "PSYNC ? -1"
        "REPLCONF listening-port 1"
        "REPLICAOF NO ONE"
        "ROLE"
        "SCRIPT DEBUG yes"
        "SHUTDOWN ABORT"
        "SLAVEOF NO ONE"
        "SYNC"
        "WAIT 0 0"
    )
    asess S
    for line in "${cmds[@]}"; do
        read -ra c <<<"$line"
        sess_cmd "$S" "${c[@]}"; rc=$?
        if [ "$rc" -ne 0 ] || [ "$REPLY" != "-ERR redoubt: command not supported" ]; then
            bad+=("$line -> $( [ "$rc" -ne 0 ] && echo "(no reply, rc $rc)" || printf '%q' "$(head -c 120 <<<"$REPLY")")")
            # The session may be in a state of its own now: a new one.
            sess_close "$S"
            asess S
        fi
    done
    sess_expect "$S" "+PONG" PING
    sess_expect "$S" "+OK" SET k5 after
    sess_expect "$S" "after" GET k5
    sess_close "$S"
    [ "${#bad[@]}" -eq 0 ] || fail "not refused with '-ERR redoubt: command not supported' (${#bad[@]} of ${#cmds[@]}): $(printf '[%s] ' "${bad[@]}")"
    # HELLO 3: the client falls back to RESP2.
    out=$(rx HELLO 3 2>&1)
    assert_eq "NOPROTO unsupported protocol version" "$out" "HELLO 3 through redoubt"
}

# --- 6: CROSSSLOT ----------------------------------------------------------------
step6() {
    local S sa sb
    cluster_flushall
    load_slots
    key_slot p6a sa; key_slot p6b sb
    [ "$sa" != "$sb" ] || fail "p6a and p6b hash to one slot (test bug)"
    dset p6a one
    asess S
    sess_expect "$S" "-CROSSSLOT Keys in request don't hash to the same slot" RENAME p6a p6b
    assert_eq one "$(dget p6a)" "p6a after the refused RENAME, straight on its master"
    sess_expect "$S" "+OK" SET '{t}a' two
    sess_expect "$S" "+OK" RENAME '{t}a' '{t}b'
    sess_expect "$S" "two" GET '{t}b'
    sess_expect "$S" ":0" EXISTS '{t}a'
    assert_eq two "$(dget '{t}b')" "{t}b after RENAME through redoubt, straight on its master"
    sess_close "$S"
}

# --- 7: live resharding ------------------------------------------------------------
step7() {
    local S S2 slot a b aid bid i k out want=() keys=() rest p
    cluster_flushall
    load_slots
    key_slot '{mig}' slot
    a=${SLOT_OWNER[slot]}
    for p in "${MASTERS[@]}"; do [ "$p" != "$a" ] && { b=$p; break; }; done
    aid=$(cluster_node_id "$a")
    bid=$(cluster_node_id "$b")
    note "moving slot $slot ({mig}) from $a to $b"
    for ((i = 1; i <= 20; i++)); do keys+=("{mig}:$i"); want+=("m$i"); done
    asess S
    for ((i = 0; i < 20; i++)); do sess_expect "$S" "+OK" SET "${keys[i]}" "${want[i]}"; done
    assert_eq m1 "$(ccli "$a" GET '{mig}:1')" "{mig}:1 on its master $a (test setup)"

    # Half the keys move; the slot is MIGRATING on a, IMPORTING on b.
    assert_eq OK "$(ccli "$b" CLUSTER SETSLOT "$slot" IMPORTING "$aid" 2>&1)" "SETSLOT IMPORTING on $b"
    assert_eq OK "$(ccli "$a" CLUSTER SETSLOT "$slot" MIGRATING "$bid" 2>&1)" "SETSLOT MIGRATING on $a"
    out=$(ccli "$a" MIGRATE 127.0.0.1 "$b" "" 0 5000 AUTH2 alice "$PW" KEYS "${keys[@]:0:10}" 2>&1)
    assert_eq OK "$out" "MIGRATE of 10 keys from $a to $b over TLS"
    assert_prefix "ASK $slot 127.0.0.1:$b" "$(ccli "$a" GET '{mig}:1' 2>&1)" "GET of a moved key straight on $a"
    assert_eq m15 "$(ccli "$a" GET '{mig}:15' 2>&1)" "GET of a key not moved yet straight on $a"

    # Through redoubt: the old session (its map says a) and a new one.
    asess S2
    for ((i = 0; i < 20; i++)); do
        sess_expect "$S" "${want[i]}" GET "${keys[i]}"
        sess_expect "$S2" "${want[i]}" GET "${keys[i]}"
    done
    # Writes during the migration: a new key (Redis: ASK to b), a moved
    # key (ASK), a key still on a.
    sess_cmd "$S" SET '{mig}:new' fresh
    note "SET of a new key in the MIGRATING slot through redoubt: $REPLY"
    assert_eq "+OK" "$REPLY" "SET of a new key in the MIGRATING slot through redoubt"
    assert_eq $'OK\nfresh' "$(printf 'ASKING\nGET {mig}:new\n' | ccli "$b" 2>&1)" "{mig}:new on the importing node $b"
    sess_expect "$S" "+OK" SET '{mig}:5' u5
    sess_expect "$S" "+OK" SET '{mig}:15' u15
    want[4]=u5 want[14]=u15
    sess_expect "$S" "u5" GET '{mig}:5'
    sess_expect "$S" "u15" GET '{mig}:15'
    sess_expect "$S" "fresh" GET '{mig}:new'
    # A multi-key command over moved and unmoved keys: Redis says TRYAGAIN
    # for as long as the migration lasts.
    sess_cmd "$S" MGET '{mig}:1' '{mig}:15'
    note "MGET over moved and unmoved keys during the migration: $(tr '\n' ' ' <<<"$REPLY")"
    case $REPLY in
        $'*2\nm1\nu15'|'-TRYAGAIN'*|'-ERR redoubt'*) ;;
        *) fail "MGET during the migration: expected the values, -TRYAGAIN or -ERR redoubt, got '$REPLY'" ;;
    esac
    sess_expect "$S" "+PONG" PING

    # The rest moves; the slot is b's on every master.
    mapfile -t rest < <(ccli "$a" CLUSTER GETKEYSINSLOT "$slot" 100)
    [ "${#rest[@]}" -ge 10 ] || fail "keys left on $a: ${rest[*]}"
    out=$(ccli "$a" MIGRATE 127.0.0.1 "$b" "" 0 5000 AUTH2 alice "$PW" KEYS "${rest[@]}" 2>&1)
    assert_eq OK "$out" "MIGRATE of the other keys from $a to $b"
    assert_eq OK "$(ccli "$b" CLUSTER SETSLOT "$slot" NODE "$bid" 2>&1)" "SETSLOT NODE on $b"
    assert_eq OK "$(ccli "$a" CLUSTER SETSLOT "$slot" NODE "$bid" 2>&1)" "SETSLOT NODE on $a"
    for p in "${MASTERS[@]}"; do
        [ "$p" = "$a" ] || [ "$p" = "$b" ] && continue
        assert_eq OK "$(ccli "$p" CLUSTER SETSLOT "$slot" NODE "$bid" 2>&1)" "SETSLOT NODE on $p"
    done
    slot_moved() {
        local q i
        for ((i = 1; i <= 6; i++)); do
            q=${CLUSTER_PORTS[$((i - 1))]}
            [ "$q" = "$b" ] && continue
            [[ $(ccli "$q" GET '{mig}:1' 2>&1) == "MOVED $slot 127.0.0.1:$b" ]] || return 1
        done
    }
    wait_for 10 slot_moved || fail "not every node sends slot $slot to $b"
    assert_eq m1 "$(ccli "$b" GET '{mig}:1' 2>&1)" "{mig}:1 straight on $b after the move"

    # Through redoubt: stale maps follow MOVED.
    for ((i = 0; i < 20; i++)); do
        sess_expect "$S" "${want[i]}" GET "${keys[i]}"
        sess_expect "$S2" "${want[i]}" GET "${keys[i]}"
    done
    sess_expect "$S" "fresh" GET '{mig}:new'
    sess_expect "$S2" "+OK" SET '{mig}:after' "done"
    assert_eq "done" "$(ccli "$b" GET '{mig}:after' 2>&1)" "{mig}:after on $b"
    sess_close "$S"
    sess_close "$S2"
    out=$(rx GET '{mig}:20' 2>&1)
    assert_eq m20 "$out" "GET in a new session after the move"
    workers_unchanged
}

# --- 9: the discovery user ---------------------------------------------------------
# acl_log: every live node's ACL LOG as "reason username" lines.
acl_log() {
    local i
    for ((i = 1; i <= 6; i++)); do
        alive "${RD_REDIS_PID[node$i]}" || continue
        ccli "${CLUSTER_PORTS[$((i - 1))]}" ACL LOG 100 2>/dev/null
    done | awk 'prev == "reason" { r = $0 } prev == "username" { print r, $0 } { prev = $0 }'
}
acl_reset() {
    local i
    for ((i = 1; i <= 6; i++)); do
        alive "${RD_REDIS_PID[node$i]}" || continue
        ccli "${CLUSTER_PORTS[$((i - 1))]}" ACL LOG RESET >/dev/null 2>&1
    done
}
step9() {
    local S i j keys out
    cluster_flushall
    load_slots
    pick_keys "p9:" 1; keys=("${PICKED[@]}")
    dset "${keys[0]}" x0 "${keys[1]}" x1 "${keys[2]}" x2
    acl_reset
    # bob cannot run CLUSTER SLOTS: the map must come from the discovery
    # user, and bob must not have been tried. His are the first sessions
    # on "cd" (several, to reach both workers), so no other session's
    # credentials can have read the map before.
    for ((j = 0; j < 6; j++)); do
        sess_open S "$CD_PORT" || fail "cannot connect to redoubt"
        sess_expect "$S" "+OK" AUTH bob "$BOB_PW"
        for i in 2 1 0; do sess_expect "$S" "x$i" GET "${keys[i]}"; done
        sess_expect "$S" "+OK" SET p9:bob "bob$j"
        sess_close "$S"
    done
    assert_eq bob5 "$(dget p9:bob)" "the SETs as bob, straight on the master"
    out=$(acl_log)
    if grep -q ' bob$' <<<"$out"; then
        fail "bob was refused something on the database with a discovery user (ACL LOG: $(tr '\n' ';' <<<"$out"))"
    fi
    # The control: on "cb" (no discovery user), bob's first session cannot
    # read the map, and Redis logs his CLUSTER SLOTS or SHARDS.
    sess_open S "$CB_PORT" || fail "cannot connect to redoubt"
    sess_expect "$S" "+OK" AUTH bob "$BOB_PW"
    sess_cmd "$S" GET "${keys[0]}" || fail "GET as bob on a database without a discovery user: no reply"
    note "GET as bob (no CLUSTER rights) on a database without a discovery user: $REPLY"
    assert_prefix "-" "$REPLY" "GET as bob (who may not read the map) on a database without a discovery user"
    sess_close "$S"
    bob_refused() { grep -q '^command bob$' <<<"$(acl_log)"; }
    wait_for 5 bob_refused || fail "no refused command of bob in the ACL LOG (got: $(acl_log | tr '\n' ';'))"
    # A session whose first command after AUTH has a key, on every master.
    asess S "$CD_PORT"
    for i in 0 1 2; do sess_expect "$S" "x$i" GET "${keys[i]}"; done
    sess_close "$S"
    # Without AUTH: Redis's NOAUTH, then AUTH and the same session works.
    sess_open S "$CD_PORT" || fail "cannot connect to redoubt"
    sess_cmd "$S" GET "${keys[0]}" || fail "GET without AUTH on the discovery database: no reply"
    assert_prefix "-NOAUTH" "$REPLY" "GET without AUTH on the discovery database"
    sess_cmd "$S" GET "${keys[2]}"
    assert_prefix "-NOAUTH" "$REPLY" "second GET without AUTH on the discovery database"
    sess_expect "$S" "+OK" AUTH alice "$PW"
    sess_expect "$S" "x2" GET "${keys[2]}"
    sess_close "$S"
    # A wrong discovery password reaches Redis as "discovery".
    acl_reset
    sess_open S "$CDBAD_PORT" || fail "cannot connect to redoubt"
    sess_expect "$S" "+OK" AUTH alice "$PW"
    sess_cmd "$S" GET "${keys[0]}"
    note "GET on the database with a wrong discovery password: $REPLY"
    sess_close "$S"
    discovery_refused() { grep -qx 'auth discovery' <<<"$(acl_log)"; }
    wait_for 5 discovery_refused || fail "no failed AUTH of user discovery in the nodes' ACL LOG (got: $(acl_log | tr '\n' ';'))"
    # No discovery user, no AUTH: an error, then AUTH and it works.
    sess_open S || fail "cannot connect to redoubt"
    sess_cmd "$S" GET "${keys[0]}" || fail "GET without AUTH (no discovery user): no reply"
    note "GET without AUTH, no discovery user: $REPLY"
    assert_prefix "-" "$REPLY" "GET without AUTH, no discovery user"
    sess_expect "$S" "+OK" AUTH alice "$PW"
    sess_expect "$S" "x0" GET "${keys[0]}"
    sess_close "$S"
    workers_unchanged
}

# --- 10: standalone ----------------------------------------------------------------
step10() {
    local S
    sess_open S "$S_PORT" || fail "cannot connect to redoubt"
    sess_expect "$S" "+OK" MULTI
    sess_expect "$S" "+QUEUED" SET sa one
    sess_expect "$S" "+QUEUED" INCR sn
    sess_expect "$S" $'*2\n+OK\n:1' EXEC
    sess_close "$S"
    assert_eq one "$(tls_cli "${RD_REDIS_PORT[s]}" "$CLUSTER_CLIENT" "$CLUSTER_CA/db-ca.crt" GET sa 2>&1)" "sa on the standalone redis"
}

step 1 "10,000 keys SET and GET through redoubt, checked on the cluster" step1
step 2 "5,000 pipelined mixed commands, replies as a standalone redis gives" step2
step 3 "MGET across masters" step3
step 4 "DBSIZE, KEYS, FLUSHALL, FLUSHDB, SCRIPT across masters" step4
step 5 "cluster-mode refusals" step5
step 6 "CROSSSLOT" step6
step 7 "live resharding: ASK and MOVED" step7
step 9 "cluster.discovery_user" step9
step 10 "standalone MULTI/EXEC" step10

# --- 8: a master dies while a session pipelines ------------------------------------
# In the main shell: it kills and restarts processes of the test.
step8() {
    local S i k w victim vi out p rc keys=() vkeys=() okeys=() fkeys=() feeder t_kill t_ok wf ws wi
    local SA SB bkeys=()
    cluster_flushall
    load_slots
    # The master of the uri node's slots dies (uri = node 1, a master):
    # redoubt must learn the map from the seed and the others.
    victim=${SLOT_OWNER[0]}
    for ((i = 1; i <= 6; i++)); do [ "${CLUSTER_PORTS[$((i - 1))]}" = "$victim" ] && vi=$i; done
    # Keys for this session (two a master) and for the pipelining one.
    pick_keys "p8:s:" 2
    keys=("${PICKED[@]}")
    pick_keys "p8:f:" 1
    fkeys=("${PICKED[@]}")
    for k in "${keys[@]}"; do
        owner "$k" p
        if [ "$p" = "$victim" ]; then vkeys+=("$k"); else okeys+=("$k"); fi
    done
    assert_eq 2 "${#vkeys[@]}" "keys on the victim master (test setup)"
    for k in "${keys[@]}" "${fkeys[@]}"; do dset "$k" "init"; done
    # Keys on the victim for the barrier checks.
    pick_keys "p8:b:" 2
    for k in "${PICKED[@]}"; do
        owner "$k" p
        [ "$p" = "$victim" ] && bkeys+=("$k")
    done
    assert_eq 2 "${#bkeys[@]}" "barrier keys on the victim master (test setup)"
    # Two sessions (databases c2 and c3: maps of their own) learn the map
    # now and then keep quiet: their workers still have this map after
    # the failover.
    sess_open SA "$C2_PORT" || fail "cannot connect to redoubt on $C2_PORT"
    sess_expect "$SA" "+OK" AUTH alice "$PW"
    sess_expect "$SA" "init" GET "${okeys[0]}"
    sess_open SB "$C3_PORT" || fail "cannot connect to redoubt on $C3_PORT"
    sess_expect "$SB" "+OK" AUTH alice "$PW"
    sess_expect "$SB" "init" GET "${okeys[0]}"

    # The loop: batches of SETs over a key on each master every 50 ms, in
    # one session, until told to stop (at most 60 s).
    rm -f "$T/loop.stop"
    loop_feed() {
        local b=0 e=0 k
        resp_encode AUTH alice "$PW"
        while :; do
            for k in "${fkeys[@]}"; do resp_encode SET "$k" "b$b"; done
            b=$((b + 1))
            echo "$b $(now_ms)" >> "$T/loop.batches"
            if [ -e "$T/loop.stop" ]; then
                e=$((e + 1))
                [ "$e" -ge 10 ] && break
            fi
            [ "$b" -ge 1200 ] && break
            sleep 0.05
        done
        resp_encode QUIT
    }
    : > "$T/loop.batches"
    loop_feed | timeout 90 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 3
        exec 4<&0
        cat <&4 >&3 2>/dev/null &
        cat <&3 > "$1" 2>/dev/null
        wait' "$RD_PORT" "$T/loop.out" &
    feeder=$!
    RD_PIDS+=("$feeder")

    # Three workers: the pipelining session's (wf), this session's (ws),
    # and one that no session uses until the failover is over (wi).
    one_conn() { [ "$(rd_conns | wc -l)" -eq 1 ]; }
    wait_for 10 one_conn || fail "the pipelining session is not the one connection to redoubt: $(rd_conns | tr '\n' ';')"
    wf=$(rd_conns | awk '{ print $2 }')
    local others=()
    mapfile -t others < <(rd_workers | grep -vx "$wf")
    sess_on S "${others[@]}"
    ws=$SESS_WORKER
    wi=$(rd_workers | grep -vx "$wf" | grep -vx "$ws")
    note "workers: pipelining session on $wf, this session on $ws, none on $wi"
    sess_expect "$S" "+OK" AUTH alice "$PW"
    for k in "${keys[@]}"; do sess_expect "$S" "init" GET "$k"; done
    sleep 0.5

    note "kill -9 of the master at $victim (node $vi); keys on it: ${vkeys[*]}"
    t_kill=$(now_ms)
    redis_stop "node$vi" KILL
    # Right away, before any failover: errors for its slots only.
    for k in "${vkeys[@]}"; do
        sess_cmd "$S" GET "$k"; rc=$?
        [ "$rc" -eq 0 ] || fail "GET $k (dead master) through redoubt: no reply (rc $rc)"
        note "GET $k with its master dead: $REPLY"
        [[ $REPLY == "-ERR redoubt:"* || $REPLY == "-CLUSTERDOWN"* ]] ||
            fail "GET $k with its master dead: expected '-ERR redoubt: ...' or '-CLUSTERDOWN ...', got '$REPLY'"
    done
    for k in "${okeys[@]}"; do sess_expect "$S" "init" GET "$k"; done
    sess_cmd "$S" MGET "${keys[@]}"
    note "MGET over every master with one dead: $REPLY"
    assert_prefix "-ERR" "$REPLY" "MGET over every master with one dead"
    for k in "${okeys[@]}"; do sess_expect "$S" "+OK" SET "$k" during; done
    for k in "${okeys[@]}"; do sess_expect "$S" "during" GET "$k"; done
    [ $(( $(now_ms) - t_kill )) -lt 2000 ] ||
        note "the checks with the master dead took $(( $(now_ms) - t_kill )) ms (a failover may have started)"

    # The replica takes over.
    failed_over() { local o; o=$(cluster_slot_owner 0); [ -n "$o" ] && [ "$o" != "$victim" ]; }
    wait_for 30 failed_over || fail "no replica took over the slots of $victim in 30 s"
    cluster_wait_ok 30 2 || fail "the cluster is not ok 30 s after the failover"
    t_ok=$(now_ms)
    note "failover done $((t_ok - t_kill)) ms after the kill: slot 0 is on $(cluster_slot_owner 0)"

    # Barriers. A SET to the dead master parks (its node cannot be
    # reached; it waits for a new map); AUTH as ro and GET are pipelined
    # behind it. The SET must run as alice, before the AUTH.
    local got=() want
    # (one write: the three arrive together, while the SET is parked)
    out=$(resp_encode SET "${bkeys[0]}" v1; resp_encode AUTH ro "$RO_PW"; resp_encode GET "${bkeys[0]}"; echo .)
    sess_send_raw "$SA" "${out%.}"
    for i in 0 1 2; do
        sess_read "$SA" 20 || fail "barrier AUTH: reply $((i + 1)) missing (rc $?)"
        got+=("$REPLY")
    done
    note "SET (parked), AUTH ro, GET pipelined: ${got[*]}"
    assert_eq "+OK|+OK|v1" "$(IFS='|'; echo "${got[*]}")" "SET parked for a new map, then AUTH as ro, then GET"
    out=$(ccli "$(cluster_slot_owner "$(key_slot "${bkeys[0]}")")" GET "${bkeys[0]}" 2>&1)
    assert_eq v1 "$out" "${bkeys[0]} straight from the cluster after the barrier AUTH"
    sess_cmd "$SA" SET "${bkeys[0]}" v2
    assert_prefix "-NOPERM" "$REPLY" "SET as ro after the barrier AUTH"
    sess_close "$SA"
    # A FLUSHALL behind a parked SET runs after it: the key is gone.
    got=()
    out=$(resp_encode SET "${bkeys[1]}" v1; resp_encode FLUSHALL; resp_encode EXISTS "${bkeys[1]}"; echo .)
    sess_send_raw "$SB" "${out%.}"
    for i in 0 1 2; do
        sess_read "$SB" 20 || fail "barrier FLUSHALL: reply $((i + 1)) missing (rc $?)"
        got+=("$REPLY")
    done
    note "SET (parked), FLUSHALL, EXISTS pipelined: ${got[*]}"
    assert_eq "+OK|+OK|:0" "$(IFS='|'; echo "${got[*]}")" "SET parked for a new map, then FLUSHALL, then EXISTS"
    out=$(ccli "$(cluster_slot_owner "$(key_slot "${bkeys[1]}")")" EXISTS "${bkeys[1]}" 2>&1)
    assert_eq 0 "$out" "${bkeys[1]} straight on the cluster after SET and FLUSHALL"
    sess_close "$SB"
    # What the rest of the step expects (the pipelining session keeps
    # writing its own keys), on the masters of now.
    for k in "${okeys[@]}" "${vkeys[@]}"; do
        want=init
        [[ " ${okeys[*]} " == *" $k "* ]] && want=during
        out=$(ccli "$(cluster_slot_owner "$(key_slot "$k")")" SET "$k" "$want" 2>&1)
        assert_eq OK "$out" "SET $k $want straight to its master after the FLUSHALL"
    done

    # First try, each: this session (its worker last read the map before
    # the failover), a new session on the worker no session used during
    # it, a new session on this session's worker. A failure is retried
    # (to tell a slow recovery from none), and reported after all three.
    local N bad=()
    first_try() {
        local fd=$1 what=$2 expect=$3 first n=0
        shift 3
        sess_cmd "$fd" "$@"
        [ "$REPLY" = "$expect" ] && return 0
        first=$REPLY
        while [ "$n" -lt 10 ]; do
            n=$((n + 1)); sleep 0.2
            sess_cmd "$fd" "$@"
            [ "$REPLY" = "$expect" ] && break
        done
        bad+=("$what: '$(tr '\n' ' ' <<<"$first")' (then '$(tr '\n' ' ' <<<"$REPLY")' after $n more tries)")
    }
    first_try "$S" "GET ${vkeys[0]} in the same session (worker $ws)" init GET "${vkeys[0]}"
    first_try "$S" "GET ${vkeys[1]} in the same session (worker $ws)" init GET "${vkeys[1]}"
    # Keyless commands (AUTH, PING) of new sessions go round robin over the
    # masters of the worker's map: three sessions with no keyed command
    # reach every master a map from before the failover names.
    for i in 1 2 3; do
        sess_on N "$wi"
        first_try "$N" "AUTH in new session $i on the worker no session used during the outage ($wi)" "+OK" AUTH alice "$PW"
        first_try "$N" "PING in that session" "+PONG" PING
        sess_close "$N"
    done
    sess_on N "$wi"
    first_try "$N" "AUTH in new session 4 on worker $wi" "+OK" AUTH alice "$PW"
    first_try "$N" "GET ${vkeys[1]} in that session" init GET "${vkeys[1]}"
    sess_close "$N"
    sess_on N "$ws"
    first_try "$N" "AUTH in a new session on worker $ws" "+OK" AUTH alice "$PW"
    first_try "$N" "GET ${vkeys[1]} in that session" init GET "${vkeys[1]}"
    sess_close "$N"
    # (checked at the end of the step, so that the rest runs too)
    for k in "${okeys[@]}"; do sess_expect "$S" "during" GET "$k"; done
    sess_expect "$S" "+OK" SET "${vkeys[0]}" after
    sess_expect "$S" "after" GET "${vkeys[0]}"
    local mw='*6'
    for k in "${keys[@]}"; do
        case $k in
            "${vkeys[0]}") mw+=$'\nafter' ;;
            "${vkeys[1]}") mw+=$'\ninit' ;;
            *) mw+=$'\nduring' ;;
        esac
    done
    sess_expect "$S" "$mw" MGET "${keys[@]}"
    for i in 1 2 3 4 5 6; do
        out=$(rx GET "${vkeys[0]}" 2>&1)
        [ "$out" = after ] || bad+=("redis-cli GET ${vkeys[0]} in new session $i (any worker): '$(tr '\n' ' ' <<<"$out")'")
    done
    workers_unchanged

    # The loop ends; every command had a reply, the live masters' all OK.
    touch "$T/loop.stop"
    wait_for 30 dead "$feeder" || fail "the pipelining session did not end within 30 s of its QUIT"
    wait "$feeder"
    local nb nk=${#fkeys[@]} line j kk ok=0 errs=0 fails=0 last=() lines=()
    nb=$(wc -l < "$T/loop.batches")
    mapfile -t lines < <(tr -d '\r' < "$T/loop.out")
    assert_eq $((nb * nk + 2)) "${#lines[@]}" "replies in the pipelining session ($nb batches of $nk SETs, AUTH and QUIT)"
    assert_eq "+OK" "${lines[0]}" "AUTH in the pipelining session"
    assert_eq "+OK" "${lines[-1]}" "QUIT in the pipelining session"
    for ((j = 0; j < nb * nk; j++)); do
        line=${lines[j + 1]}
        kk=${fkeys[j % nk]}
        owner "$kk" p
        if [ "$p" = "$victim" ]; then
            case $line in
                +OK) ok=$((ok + 1)) ;;
                "-ERR redoubt:"*|-CLUSTERDOWN*) errs=$((errs + 1)); [ "$errs" -eq 1 ] && note "first error in the pipelining session: $line" ;;
                *) fail "pipelining session, SET $kk (dead master), batch $((j / nk + 1)): '$line'" ;;
            esac
        else
            [ "$line" = "+OK" ] || { fails=$((fails + 1)); [ "$fails" -eq 1 ] && note "SET $kk (live master), batch $((j / nk + 1)): '$line'"; }
        fi
    done
    note "pipelining session: $nb batches; dead master's keys: $ok OK, $errs errors; live masters' keys: $fails not OK"
    assert_eq 0 "$fails" "SETs on the live masters that failed in the pipelining session"
    # Only what was in flight on the dead master's connection errs; what
    # never reached it waits for the new map and runs on the promoted
    # replica, in order (the ordering invariant). So errors may be none;
    # what must hold is that the session overlapped the outage.
    [ "$(( ok + errs ))" -gt 0 ] || fail "no SETs for the dead master's keys in the pipelining session"
    local during
    during=$(awk -v a="$t_kill" -v b="$t_ok" '$2 >= a && $2 <= b' "$T/loop.batches" | wc -l)
    [ "$during" -gt 0 ] || fail "the pipelining session sent no batch between the kill and the failover"
    note "pipelining session: $during batches sent while the master was down"
    last=("${lines[@]: -$((nk * 3 + 1)):$((nk * 3))}")
    for line in "${last[@]}"; do
        assert_eq "+OK" "$line" "the last three batches of the pipelining session (after the failover)"
    done
    for k in "${fkeys[@]}"; do
        assert_eq "b$((nb - 1))" "$(ccli "$(cluster_slot_owner "$(key_slot "$k")")" GET "$k" 2>&1)" "$k straight on its master after the pipelining session"
    done

    # The dead node comes back as a replica; redoubt does not mind.
    cluster_node_start "$vi"
    cluster_wait_ok 30 3 || fail "the restarted node did not rejoin as a replica in 30 s"
    out=$(ccli "$victim" INFO replication 2>&1 | tr -d '\r' | grep '^role:')
    assert_eq "role:slave" "$out" "the restarted node's role"
    for k in "${fkeys[@]}"; do
        out=$(rx GET "$k" 2>&1)
        assert_eq "b$((nb - 1))" "$out" "GET $k through redoubt with the old master back as a replica"
    done
    sess_expect "$S" "+PONG" PING
    sess_close "$S"
    workers_unchanged
    [ "${#bad[@]}" -eq 0 ] || fail "after the failover (cluster ok everywhere), not on the first try: $(printf '[%s] ' "${bad[@]}")"
}
if [ -z "${RD_CLUSTER_STEPS:-}" ] || [[ " $RD_CLUSTER_STEPS " == *" 8 "* ]]; then
    note "--- step 8: a master dies while a session pipelines; failover"
    t8=$(now_ms)
    step8
    note "--- step 8 passed ($(( $(now_ms) - t8 )) ms)"
fi

# --- the end -------------------------------------------------------------------------
workers_unchanged
[ "${#FAILED_STEPS[@]}" -eq 0 ] || fail "failed steps: ${FAILED_STEPS[*]} (see the FAIL lines above)"
rd_stop
assert_eq 0 "$RD_LAST_RC" "redoubt's exit status"
for w in $WORKERS0; do
    wait_for 10 dead "$w" || fail "worker $w still runs after redoubt stopped"
done
for ((i = 1; i <= 6; i++)); do redis_stop "node$i"; done
redis_stop s
redis_stop ref
for pid in "${RD_PIDS[@]}"; do
    dead "$pid" || fail "process $pid of the test still runs"
done
note "t_cluster took $(( $(now_ms) - T_START )) ms"
pass
