#!/bin/bash
# t_cluster_replica: cluster.read_from, replica reads, against a real
# 6-node Redis Cluster (3 masters, 3 replicas, TLS, AUTH alice). Three
# cluster databases in front of the same cluster: "m" (the default,
# read_from = "master"), "r" (read_from = "replica") and "p"
# (read_from = "prefer-replica"). The nodes' own counters (INFO
# commandstats, straight to each node, after CONFIG RESETSTAT) say which
# node served what:
#   1  GETs of keys on all three masters: through "r" and "p" served by
#      the replicas (no rejected call: READONLY was sent), through "m" by
#      the masters; the values equal the masters' after WAIT 1 1000
#   2  a split MGET through "r": each slot's part on a replica, in order
#   3  writes through "r" land on the masters (SET, then GET on the
#      master), none reaches a replica (no rejected_calls there)
#   4  pipelines, what the lane rule guarantees: through "p", SET k v and
#      GET k written at once (the GET routed while the SET is in flight)
#      read v from the master; through "r" the GET waits for the SET and
#      reads from a replica (old or new value: the price of replica
#      reads), replies in order either way
#   5  redoubt -t refuses a bad value, and read_from outside mode=cluster
#   6  (last, it changes the cluster) a replica killed: a new session's
#      read through "r" is served by its master
# shellcheck disable=SC2016,SC2119 # RESP literals; optional args
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
rd_init
need_tls

T_START=$(now_ms)
cluster_start
PW=$CLUSTER_ALICE_PW
note "cluster up in $(( $(now_ms) - T_START )) ms: nodes ${CLUSTER_PORTS[*]}"
# Every node must list every range's replica in CLUSTER SLOTS, which is
# what redoubt reads: a node lists a replica only once gossip told it the
# replica's master and a non-zero replication offset, a moment after
# CLUSTER NODES already shows the replica (a CI run read a map without
# one replica and sent that master's GETs to the master).
replicas_known() {
    local p n
    for p in "${CLUSTER_PORTS[@]}"; do
        n=$(ccli "$p" --json -2 CLUSTER SLOTS 2>/dev/null |
            python3 -c 'import json, sys; print(sum(1 for r in json.load(sys.stdin) if len(r) > 3))' 2>/dev/null)
        [ "${n:-0}" -eq 3 ] || return 1
    done
}
wait_for 30 replicas_known || fail "not every node lists the three replicas with their masters"

R_PORT=$(free_port) || fail "no free port"
P_PORT=$(free_port) || fail "no free port"
N1=${CLUSTER_PORTS[0]}
N2=${CLUSTER_PORTS[1]}
CONF=$T/redoubt.conf
conf_head() {
    cat <<EOF
worker_processes = $RD_WORKERS;
pid_file = "$T/redoubt.pid";
error_log = { path = "$T/error.log"; level = "${RD_LOG_LEVEL:-debug}"; };
upstream_tls = { ca_cert = "$CLUSTER_CA/db-client-ca.crt"; ca_key = "$CLUSTER_CA/db-client-ca.key";
                 server_ca = "$CLUSTER_CA/db-ca.crt"; };
EOF
}
{
    conf_head
    cat <<EOF
listen = (
  { address = "127.0.0.1:$RD_PORT"; database = "m"; tls = false; },
  { address = "127.0.0.1:$R_PORT"; database = "r"; tls = false; },
  { address = "127.0.0.1:$P_PORT"; database = "p"; tls = false; }
);
databases = (
  { name = "m"; uri = "rediss://127.0.0.1:$N1?mode=cluster"; connect_timeout = "2s";
    cluster = { seeds = [ "127.0.0.1:$N2" ]; }; },
  { name = "r"; uri = "rediss://127.0.0.1:$N1?mode=cluster"; connect_timeout = "2s";
    cluster = { seeds = [ "127.0.0.1:$N2" ]; read_from = "replica"; }; },
  { name = "p"; uri = "rediss://127.0.0.1:$N1?mode=cluster"; connect_timeout = "2s";
    cluster = { read_from = "prefer-replica"; }; }
);
EOF
} > "$CONF"
out=$("$REDOUBT" -t -c "$CONF" 2>&1) || fail "redoubt -t: $out"
rd_start "$CONF"

via() {
    local port=$1
    shift
    REDISCLI_AUTH=$PW timeout 20 redis-cli --user alice --no-auth-warning -h 127.0.0.1 -p "$port" "$@"
}

load_slots
# REPLICA[master port] = its replica's port (one each).
declare -A REPLICA=()
declare -A ID_PORT=()
while read -r id addr _; do
    a=${addr%@*}
    ID_PORT[$id]=${a##*:}
done < <(cluster_nodes)
while read -r addr master; do
    a=${addr%@*}
    REPLICA[${ID_PORT[$master]}]=${a##*:}
done < <(cluster_nodes | awk '$3 ~ /slave/ { print $2, $4 }')
for m in "${MASTERS[@]}"; do
    [ -n "${REPLICA[$m]:-}" ] || fail "no replica for the master at $m"
done
note "masters ${MASTERS[*]}; replicas ${REPLICA[*]}"

# stat PORT CMD FIELD: cmdstat_CMD's FIELD (calls, rejected_calls) on a node.
stat() {
    ccli "$1" INFO commandstats | tr -d '\r' |
        sed -n "s/^cmdstat_$2:/,/p" | tr ',' '\n' | sed -n "s/^$3=//p" | grep . || echo 0
}
resetstat() {
    local p
    for p in "${CLUSTER_PORTS[@]}"; do
        assert_eq OK "$(ccli "$p" CONFIG RESETSTAT 2>&1)" "CONFIG RESETSTAT at $p"
    done
}
# wait_repl: every master's writes are on its replica.
wait_repl() {
    local m
    for m in "${MASTERS[@]}"; do
        assert_eq 1 "$(ccli "$m" WAIT 1 1000 2>&1)" "WAIT 1 1000 on the master at $m"
    done
}
# per_node CMD FIELD: "port=value" for each master and replica.
per_node() {
    local m s=""
    for m in "${MASTERS[@]}"; do
        s+="$m=$(stat "$m" "$1" "$2") ${REPLICA[$m]}=$(stat "${REPLICA[$m]}" "$1" "$2") "
    done
    printf '%s' "${s% }"
}
# expect_nodes CMD FIELD ON_MASTER ON_REPLICA WHAT
expect_nodes() {
    local m want=""
    for m in "${MASTERS[@]}"; do want+="$m=$3 ${REPLICA[$m]}=$4 "; done
    assert_eq "${want% }" "$(per_node "$1" "$2")" "$5 (cmdstat_$1 $2, master=replica pairs)"
}

# --- 1: GETs of keys on every master -------------------------------------
pick_keys g 3
VAL=v$RANDOM$RANDOM
args=()
for k in "${PICKED[@]}"; do args+=("$k" "$VAL-$k"); done
dset "${args[@]}"
wait_repl
want=""
for k in "${PICKED[@]}"; do want+="$VAL-$k"$'\n'; done
gets() { local k; for k in "${PICKED[@]}"; do printf 'GET %s\n' "$k"; done; }

for db in r p m; do
    case $db in r) port=$R_PORT ;; p) port=$P_PORT ;; m) port=$RD_PORT ;; esac
    resetstat
    out=$(gets | via "$port" 2>&1)
    assert_eq "${want%$'\n'}" "$out" "GETs through \"$db\" (the masters' values after WAIT)"
    if [ "$db" = m ]; then
        expect_nodes get calls 3 0 "GETs through the default database"
    else
        expect_nodes get calls 0 3 "GETs through \"$db\""
        expect_nodes get rejected_calls 0 0 "GETs through \"$db\": READONLY was sent"
    fi
done
# A key that does not exist: nil from the replica as from the master.
assert_eq "" "$(via "$R_PORT" GET nosuchkey:1 2>&1)" "GET of a missing key through \"r\""

# --- 2: MGET split over the slots ----------------------------------------
# With a missing key in the first key's slot (nil in its place): one
# part per slot, each on the replica of its slot's master.
resetstat
out=$(via "$R_PORT" MGET "${PICKED[@]}" "{${PICKED[0]}}missing" 2>&1)
assert_eq "${want}" "$out"$'\n' "MGET through \"r\""
declare -A NSLOTS=()
declare -A seen=()
for k in "${PICKED[@]}"; do
    key_slot "$k" s
    owner "$k" p
    [ -n "${seen[$s]:-}" ] && continue
    seen[$s]=1
    NSLOTS[$p]=$(( ${NSLOTS[$p]:-0} + 1 ))
done
wantm=""
for m in "${MASTERS[@]}"; do wantm+="$m=0 ${REPLICA[$m]}=${NSLOTS[$m]} "; done
assert_eq "${wantm% }" "$(per_node mget calls)" "MGET through \"r\": one part per slot, on the replicas"

# --- 3: writes go to the masters -----------------------------------------
resetstat
pick_keys_w() { PICKED=(); pick_keys w 1; }
pick_keys_w
for k in "${PICKED[@]}"; do
    assert_eq OK "$(via "$R_PORT" SET "$k" "w-$k" 2>&1)" "SET $k through \"r\""
    assert_eq "w-$k" "$(dget "$k")" "SET $k through \"r\": on its master"
done
expect_nodes set rejected_calls 0 0 "SET through \"r\": never sent to a replica"
for m in "${MASTERS[@]}"; do
    assert_eq 1 "$(stat "$m" set calls)" "SETs on the master at $m"
done
# INCR (a write) and a read of it, one after the other.
k=${PICKED[0]}
assert_eq 5 "$(via "$R_PORT" INCRBY "cnt:{$k}" 5 2>&1)" "INCRBY through \"r\""

# --- 4: pipelines -----------------------------------------------------------
# pipe_ CMD ARGS -- CMD ARGS ...: the commands in RESP, one string (for one
# write); the output ends with "x" so that $(...) keeps the last CRLF
# until the caller strips the x.
pipe_() {
    local a=()
    while [ $# -gt 0 ]; do
        if [ "$1" = -- ]; then resp_encode "${a[@]}"; a=(); else a+=("$1"); fi
        shift
    done
    resp_encode "${a[@]}"
    printf x
}
# One write(2) each: redoubt routes the GET while the SET is in flight.
PICKED=()
pick_keys q 1
wait_repl
resetstat
for k in "${PICKED[@]}"; do
    sess_open S "$P_PORT" || fail "connect to \"p\""
    sess_expect "$S" "+OK" AUTH alice "$PW"
    b=$(pipe_ SET "$k" a1 -- GET "$k" -- SET "$k" a2 -- GET "$k" -- GET "$k"); sess_send_raw "$S" "${b%x}"
    got=""
    for _ in 1 2 3 4 5; do sess_read "$S" || fail "pipeline through \"p\": no reply"; got+="$REPLY "; done
    assert_eq "+OK a1 +OK a2 a2 " "$got" "SET/GET pipeline on $k through \"p\" (reads behind the writes)"
    sess_close "$S"
done
expect_nodes get calls 3 0 "the pipelined GETs through \"p\" followed the SETs to the masters"
# Once the writes are back (WAIT), a read through "p" goes to a replica.
wait_repl
resetstat
for k in "${PICKED[@]}"; do
    assert_eq a2 "$(via "$P_PORT" GET "$k" 2>&1)" "GET $k through \"p\" after WAIT"
done
expect_nodes get calls 0 1 "GETs through \"p\" with nothing in flight"

resetstat
for k in "${PICKED[@]}"; do
    sess_open S "$R_PORT" || fail "connect to \"r\""
    sess_expect "$S" "+OK" AUTH alice "$PW"
    b=$(pipe_ SET "$k" b1 -- GET "$k" -- SET "$k" b2 -- GET "$k" -- DEL "$k" -- EXISTS "$k"); sess_send_raw "$S" "${b%x}"
    got=()
    for _ in 1 2 3 4 5 6; do sess_read "$S" || fail "pipeline through \"r\": no reply"; got+=("$REPLY"); done
    assert_eq "+OK" "${got[0]}" "pipeline through \"r\": SET"
    [[ ${got[1]} == a2 || ${got[1]} == b1 ]] || fail "pipeline through \"r\": GET after SET b1 read '${got[1]}' (a2 or b1)"
    assert_eq "+OK" "${got[2]}" "pipeline through \"r\": second SET"
    [[ ${got[3]} == a2 || ${got[3]} == b1 || ${got[3]} == b2 ]] || fail "pipeline through \"r\": GET after SET b2 read '${got[3]}' (a2, b1 or b2)"
    assert_eq ":1" "${got[4]}" "pipeline through \"r\": DEL"
    [[ ${got[5]} == :0 || ${got[5]} == :1 ]] || fail "pipeline through \"r\": EXISTS read '${got[5]}'"
    sess_close "$S"
done
expect_nodes get calls 0 2 "the pipelined GETs through \"r\" waited for the SETs and went to the replicas"
expect_nodes exists calls 0 1 "the pipelined EXISTS through \"r\""
for m in "${MASTERS[@]}"; do
    assert_eq 2 "$(stat "$m" set calls)" "the pipelined SETs through \"r\" on the master at $m"
done
expect_nodes set rejected_calls 0 0 "the pipelined SETs through \"r\""

# --- 5: configuration errors ------------------------------------------------
{
    conf_head
    cat <<EOF
listen = ( { address = "127.0.0.1:$R_PORT"; database = "x"; tls = false; } );
databases = (
  { name = "x"; uri = "rediss://127.0.0.1:$N1?mode=cluster"; cluster = { read_from = "slave"; }; }
);
EOF
} > "$T/bad.conf"
out=$("$REDOUBT" -t -c "$T/bad.conf" 2>&1) && fail "redoubt -t accepted read_from = \"slave\""
assert_contains 'must be "master", "replica" or "prefer-replica"' "$out" "redoubt -t, read_from = \"slave\""
sed -i 's/"slave"/3/' "$T/bad.conf"
out=$("$REDOUBT" -t -c "$T/bad.conf" 2>&1) && fail "redoubt -t accepted read_from = 3"
assert_contains 'must be "master", "replica" or "prefer-replica"' "$out" "redoubt -t, read_from = 3"
sed -i 's/?mode=cluster//; s/read_from = 3/read_from = "replica"/' "$T/bad.conf"
out=$("$REDOUBT" -t -c "$T/bad.conf" 2>&1) && fail "redoubt -t accepted read_from outside mode=cluster"
assert_contains 'mode=cluster' "$out" "redoubt -t, read_from on a standalone database"

# --- 6: a replica down --------------------------------------------------------
M=${MASTERS[0]}
V=${REPLICA[$M]}
PICKED=()
pick_keys g 1
k=${PICKED[0]}
vi=0
for ((i = 1; i <= 6; i++)); do [ "${CLUSTER_PORTS[$((i - 1))]}" = "$V" ] && vi=$i; done
[ "$vi" -gt 0 ] || fail "replica $V not found"
note "kill -9 of the replica at $V (node $vi)"
stop_pid "${RD_REDIS_PID[node$vi]}" KILL
resetstat_live() {
    local m
    for m in "${MASTERS[@]}"; do ccli "$m" CONFIG RESETSTAT >/dev/null 2>&1; done
}
resetstat_live
assert_eq "$VAL-$k" "$(via "$R_PORT" GET "$k" 2>&1)" "GET $k through \"r\" with its master's replica down"
assert_eq 1 "$(stat "$M" get calls)" "the read went to the master at $M"

note "done in $(( $(now_ms) - T_START )) ms"
pass
