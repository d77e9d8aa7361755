#!/bin/bash
# t_cluster_pubsub: Pub/Sub through redoubt in front of a real 6-node TLS
# Redis Cluster (clients on a plaintext listener, AUTH alice, one worker);
# the nodes' own answers are the oracle (cluster_pubsub.py):
#   1  the subscribe family, several channels a command, UNSUBSCRIBE
#      without arguments, subscribed mode (Redis's error, PING, MULTI),
#      leaving it, one command at a time and pipelined, byte for byte
#      as a node answers the same sequence; SSUBSCRIBE across slots
#   2  RESET: subscribed mode, MULTI, the name and the AUTH end, as on
#      a node; no message of the old subscriptions after it
#   2b publishers on every master (straight) and through redoubt; a
#      pattern
#   3  10,000 messages in order while a pipelining client shares the
#      worker: a shard channel (SPUBLISH through redoubt), a channel
#      published on the master the subscription is on (the cluster bus
#      drops part of such a burst published on another master, straight
#      to the nodes too)
#   4  shard channels on all three masters (SPUBLISH through redoubt and
#      straight to the owner)
#   5  keyspace notifications from keys on all three masters, one
#      PSUBSCRIBE (notify-keyspace-events set on the masters)
#   6  a user whose Redis ACL forbids a channel: the node's NOPERM; a
#      redoubt role allowed "news.*" only (TLS listener): NOPERM, and
#      nothing refused is subscribed on any master; max_subscriptions
#   7  redis-py's pubsub() and listen()
#   8  a subscriber that never reads is closed at
#      limits.pubsub_output_limit; a reading one gets every message
#   9  a shard channel's slot moves to another master: the subscriber
#      still gets its messages
#  10  the master a subscriber's channel lives on is killed: after the
#      failover the subscription goes on
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
rd_init
need_tls
need python3
RD_WORKERS=1

CHAN_PW=$(openssl rand -hex 12) || fail "openssl rand"
cluster_start "user chan on >$CHAN_PW ~* resetchannels &ok:* +@all"
PW=$CLUSTER_ALICE_PW
N1=${CLUSTER_PORTS[0]}
N2=${CLUSTER_PORTS[1]}
TL_PORT=$(free_port) || fail "no free port"
ctl cert server --ca-dir "$CLUSTER_CA" --host localhost,127.0.0.1 --out "$T/redoubt"
CONF=$T/redoubt.conf
cat > "$CONF" <<EOC
worker_processes = $RD_WORKERS;
pid_file = "$T/redoubt.pid";
error_log = { path = "$T/error.log"; level = "${RD_LOG_LEVEL:-info}"; };
limits = { max_subscriptions = 50;
           pubsub_output_limit = { hard = "1mb"; soft = "512kb"; soft_seconds = 60; }; };
tls = { certificate = "$T/redoubt.crt"; certificate_key = "$T/redoubt.key";
        client_ca = "$CLUSTER_CA/user-ca.crt"; };
upstream_tls = { ca_cert = "$CLUSTER_CA/db-client-ca.crt"; ca_key = "$CLUSTER_CA/db-client-ca.key";
                 server_ca = "$CLUSTER_CA/db-ca.crt"; };
listen = ( { address = "127.0.0.1:$RD_PORT"; database = "c"; tls = false; },
           { address = "127.0.0.1:$TL_PORT"; database = "c"; } );
roles = (
  { name = "news";
    allow = { db_labels = { * = "*"; }; db_users = [ "alice" ]; channels = [ "news.*" ]; }; }
);
databases = (
  { name = "c"; uri = "rediss://127.0.0.1:$N1?mode=cluster"; connect_timeout = "2s";
    labels = { env = "test"; };
    cluster = { seeds = [ "127.0.0.1:$N2" ]; }; }
);
EOC
rd_start "$CONF"
CA=$CLUSTER_CA user "$T/mallory" --user mallory --roles news

load_slots
export RD_PORT PW CHAN_PW CA=$CLUSTER_CA/db-ca.crt CLIENT=$CLUSTER_CLIENT
export TL_PORT ROLE_CERT=$T/mallory
export NODES="${MASTERS[*]}"
PYT=$(dirname "$0")/cluster_pubsub.py
step() { note "step: $*"; timeout 120 python3 "$PYT" "$@" || fail "step $1 failed"; }

step bytes
note "ok: subscribe family and subscribed mode as a node answers them"
step reset
note "ok: RESET as a node answers it"
step messages
note "ok: messages from publishers on every master, a pattern"
step order shard
step order home
note "ok: 10,000 messages in order beside a pipelining client (twice)"
step shard
note "ok: shard channels on all three masters"

for p in "${MASTERS[@]}"; do
    assert_eq OK "$(ccli "$p" CONFIG SET notify-keyspace-events KA)" "notify-keyspace-events on $p"
done
pick_keys ks: 2
KEYS="${PICKED[*]}" step keyspace
note "ok: keyspace notifications from all three masters"
step nopublish
note "ok: a channel the user's Redis ACL forbids: NOPERM"
step roles
note "ok: a role's channel rules: NOPERM, nothing refused subscribed"
step limit
note "ok: limits.max_subscriptions"
PYR=
for py in python3 /usr/bin/python3; do
    if command -v "$py" > /dev/null && "$py" -c 'import redis' 2>/dev/null; then PYR=$py; break; fi
done
if [ -n "$PYR" ]; then
    note "step: redispy ($PYR)"
    timeout 60 "$PYR" "$PYT" redispy || fail "step redispy failed"
    note "ok: redis-py pubsub() and listen()"
else
    note "python3-redis missing: redis-py step skipped"
fi

# --- 8: a subscriber that never reads --------------------------------------
# (A shard channel: both subscribers on the channel's master, and none of
# the cluster bus's losses.)
cat > "$T/slow.py" <<'EOP'
import os, socket, sys, time
sys.path.insert(0, os.path.dirname(sys.argv[1]))
from cluster_pubsub import Conn
which = sys.argv[2]
c = Conn(int(os.environ["RD_PORT"]))
c.cmd("SSUBSCRIBE", "flood")
if which == "slow":
    c.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    print("READY", flush=True)
    time.sleep(60)
else:
    print("READY", flush=True)
    n = 0
    try:
        while n < 3000:
            c.frame()
            n += 1
    except Exception:
        pass
    print("GOT", n, flush=True)
EOP
python3 "$T/slow.py" "$PYT" slow > "$T/slow.out" 2>&1 &
SLOW=$!
RD_PIDS+=("$SLOW")
python3 "$T/slow.py" "$PYT" fast > "$T/fast.out" 2>&1 &
FAST=$!
RD_PIDS+=("$FAST")
wait_for 10 grep -qs READY "$T/slow.out" || fail "slow subscriber not ready"
wait_for 10 grep -qs READY "$T/fast.out" || fail "fast subscriber not ready"
python3 - "$PYT" <<'EOP' || fail "publishing the flood"
import os, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
from cluster_pubsub import Conn, enc
c = Conn(int(os.environ["RD_PORT"]))
payload = "x" * 8192
for base in range(0, 3000, 100):
    c.s.sendall(b"".join(enc("SPUBLISH", "flood", payload) for _ in range(100)))
    c.frames(100)
EOP
wait_for 30 grep -q "GOT" "$T/fast.out" || fail "the reading subscriber: $(cat "$T/fast.out")"
if ! grep -q "GOT 3000" "$T/fast.out"; then
    # Messages are lost only while a subscriber connection to the node is
    # being made again (documented); about one run in ten a node ended
    # the reading subscriber's connection during the flood (not yet
    # understood): then it must have been subscribed again, and never
    # closed by redoubt.
    grep -q "upstream connection lost, subscriber upstream" "$T/error.log" \
        || fail "the reading subscriber did not get all 3000 messages: $(cat "$T/fast.out")"
    note "NOTE: the reading subscriber's node connection was lost during the flood: $(cat "$T/fast.out")"
fi
[ "$(grep -c "pubsub_output_limit) exceeded" "$T/error.log")" -le 1 ] || fail "the reading subscriber was closed at the limit too"
wait_for 10 grep -q "pubsub_output_limit) exceeded" "$T/error.log" || fail "the subscriber that never reads was not closed at the limit"
stop_pid "$SLOW" KILL
sess_open Q || fail connect
sess_expect "$Q" "+OK" AUTH alice "$PW"
sess_expect "$Q" "+PONG" PING
note "ok: a subscriber that never reads closed at the limit, the others unaffected"

# --- 9: a shard channel's slot moves ---------------------------------------
SCH=move:0
key_slot "$SCH" SSLOT
FROM=${SLOT_OWNER[$SSLOT]}
for p in "${MASTERS[@]}"; do [ "$p" != "$FROM" ] && { TO=$p; break; }; done
python3 "$PYT" hold "s:$SCH" > "$T/hold1.out" 2>&1 &
H1=$!
RD_PIDS+=("$H1")
wait_for 10 grep -qs READY "$T/hold1.out" || fail "shard subscriber not ready: $(cat "$T/hold1.out")"
TOID=$(cluster_node_id "$TO")
for p in "$TO" "$FROM" "${MASTERS[@]}"; do
    assert_eq OK "$(ccli "$p" CLUSTER SETSLOT "$SSLOT" NODE "$TOID" 2>&1)" "SETSLOT $SSLOT NODE on $p"
done
note "slot $SSLOT of $SCH moved from $FROM to $TO"
for ((k = 0; k < 100; k++)); do
    grep -q GOT "$T/hold1.out" && break
    ccli "$TO" SPUBLISH "$SCH" after > /dev/null 2>&1
    sleep 0.2
done
grep -q GOT "$T/hold1.out" || fail "no message on $SCH after its slot moved: $(cat "$T/hold1.out")"
grep -q "left its node" "$T/error.log" || fail "redoubt did not see the sunsubscribe of the slot move"
stop_pid "$H1"
note "ok: a shard channel's slot moved: the subscription followed it"

# --- 10: the subscriber's node fails ----------------------------------------
python3 "$PYT" hold failover > "$T/hold2.out" 2>&1 &
H2=$!
RD_PIDS+=("$H2")
wait_for 10 grep -qs READY "$T/hold2.out" || fail "subscriber not ready: $(cat "$T/hold2.out")"
HOME_PORT=
for p in "${MASTERS[@]}"; do
    n=$(ccli "$p" PUBSUB NUMSUB failover | sed -n 2p)
    [ "$n" = 1 ] && HOME_PORT=$p
done
[ -n "$HOME_PORT" ] || fail "the subscription is on no master"
for ((i = 1; i <= 6; i++)); do [ "${CLUSTER_PORTS[$((i - 1))]}" = "$HOME_PORT" ] && HOME_I=$i; done
note "subscriber's home: node $HOME_I (port $HOME_PORT): killing it"
redis_stop "node$HOME_I" KILL
for ((k = 0; k < 150; k++)); do
    grep -q GOT "$T/hold2.out" && break
    for p in "${MASTERS[@]}"; do
        [ "$p" = "$HOME_PORT" ] || ccli "$p" PUBLISH failover after > /dev/null 2>&1
    done
    sleep 0.2
done
grep -q GOT "$T/hold2.out" || fail "no message after the home node died: $(cat "$T/hold2.out")"
stop_pid "$H2"
note "ok: the subscriber's node died: the subscription went on on another master"
pass
