#!/bin/bash
# pubsub.sh - Pub/Sub messages per second delivered to subscribers,
# straight from Redis and through redoubt, in one run on this machine.
#
# Starts a redis-server and a redoubt in front of it (plaintext, standalone)
# on free loopback ports in a temp dir; everything is stopped again on exit.
# Each run, first straight to Redis and then through redoubt:
#   1. S subscribers (one Python process, sockets in an epoll loop) send
#      SUBSCRIBE bench and wait for the confirmation;
#   2. redis-benchmark -c PUBLISHERS -P PIPELINE -n MESSAGES publishes
#      MESSAGES messages of DATA bytes to the channel (PUBLISH bench ...);
#   3. every subscriber reads until it has every message (the frames have
#      one length, so it counts bytes; afterwards each stream is checked to
#      be exactly MESSAGES "message" frames of the channel).
# The figure is S * MESSAGES over the time from the first message any
# subscriber received to the last one: messages delivered per second. The
# publishers go through redoubt too in the redoubt run. Both servers, the
# publisher and the subscribers share the machine's cores, so the ratio
# redoubt/direct is the figure to compare, not the absolute numbers. A run
# in which a subscriber misses a message (closed at an output limit, for
# one) fails instead of printing a figure.
#
# With -C, the same for a Redis Cluster: the 6-node TLS-only cluster of
# bench.sh -C (contrib/tls-cluster.sh) and redoubt in front of it with a
# plaintext listener (tls = false; the clients send AUTH alice, who gets
# allchannels on the nodes for the run) and mutual
# TLS to the nodes (upstream_tls, uri = "rediss://NODE-1?mode=cluster").
# The channel is a shard channel: the subscribers SSUBSCRIBE it and
# redis-benchmark publishes with SPUBLISH (a plain PUBLISH burst published
# on another node than the subscriber's loses messages on the cluster bus,
# straight to the nodes too). "direct" is subscribers and publisher
# straight to the master of the channel's slot over TLS (node 1's
# certificate, as alice); "redoubt" is the same through redoubt, which
# holds each subscriber's SSUBSCRIBE on that master (over TLS) and the
# publisher's connections on its own. The direct subscribers decrypt TLS
# themselves, the redoubt ones read plaintext: redoubt does their TLS.
#
# Usage: contrib/bench/pubsub.sh [-s SUBSCRIBERS] [-n MESSAGES]
#                                [-p PUBLISHERS] [-P PIPELINE] [-d DATA]
#                                [-w WORKERS] [-r REPEATS] [-b PATH/TO/redoubt]
#                                [-C]
#   -s  subscribers (default 10)
#   -n  messages published, in all (default 200000; 100000 with -C)
#   -p  publishing connections (redis-benchmark -c; default 1)
#   -P  PUBLISH commands pipelined per connection (default 16)
#   -d  bytes per message (default 16)
#   -w  redoubt worker_processes: a number or "auto" (default auto)
#   -r  run each side R times and keep the best (default 1)
#   -b  the redoubt binary (default: $REDOUBT, else ./redoubt, else
#       build/check/redoubt or build/demo/redoubt under the source tree)
#   -C  Redis Cluster, shard channels (needs redoubtctl next to the redoubt
#       binary, or $REDOUBTCTL, and openssl)
set -u
set -o pipefail

SUBS=10
MESSAGES=
PUBS=1
PIPELINE=16
DATA=16
WORKERS=auto
REPEATS=1
CLUSTER=0
BIN=${REDOUBT:-}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=contrib/tls-cluster.sh
. "$ROOT/contrib/tls-cluster.sh"

usage() { sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

while getopts "s:n:p:P:d:w:r:b:Ch" opt; do
    case $opt in
        s) SUBS=$OPTARG ;;
        n) MESSAGES=$OPTARG ;;
        p) PUBS=$OPTARG ;;
        P) PIPELINE=$OPTARG ;;
        d) DATA=$OPTARG ;;
        w) WORKERS=$OPTARG ;;
        r) REPEATS=$OPTARG ;;
        b) BIN=$OPTARG ;;
        C) CLUSTER=1 ;;
        *) usage ;;
    esac
done
if [ -z "$MESSAGES" ]; then
    if [ "$CLUSTER" = 1 ]; then MESSAGES=100000; else MESSAGES=200000; fi
fi
for v in SUBS MESSAGES PUBS PIPELINE DATA REPEATS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "pubsub.sh: $v (${!v}) must be a number above 0" >&2; exit 2; }
done
[[ $WORKERS =~ ^([0-9]+|auto)$ ]] || { echo "pubsub.sh: -w needs a number or auto" >&2; exit 2; }

if [ -z "$BIN" ]; then
    for b in ./redoubt "$ROOT/build/check/redoubt" "$ROOT/build/demo/redoubt" "$ROOT/redoubt"; do
        [ -x "$b" ] && { BIN=$b; break; }
    done
fi
if [ -z "$BIN" ] || [ ! -x "$BIN" ]; then
    echo "pubsub.sh: no redoubt binary found; build it or pass -b PATH" >&2
    exit 1
fi
for c in redis-server redis-cli redis-benchmark python3; do
    command -v "$c" >/dev/null || { echo "pubsub.sh: $c is not installed" >&2; exit 1; }
done

DIR=$(mktemp -d "${TMPDIR:-/tmp}/redoubt-pubsub.XXXXXX")
PIDS=()
# shellcheck disable=SC2317 # called from the trap
cleanup() {
    local p
    trap - EXIT
    trap "" INT TERM
    for p in "${PIDS[@]}" "${TC_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}" "${TC_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_port() {
    local i
    for ((i = 0; i < 300; i++)); do
        { exec 9<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null && { exec 9>&-; return 0; }
        sleep 0.05
    done
    return 1
}

ratio() { awk -v d="$1" -v g="$2" 'BEGIN { printf "%.2f", (d > 0) ? g / d : 0 }'; }
if [ "$WORKERS" = auto ]; then wp='"auto"'; else wp=$WORKERS; fi
payload=$(printf "%${DATA}s" "" | tr ' ' x)
CHAN=bench

if [ "$CLUSTER" = 1 ]; then
    CTL=${REDOUBTCTL:-$(dirname "$BIN")/redoubtctl}
    [ -x "$CTL" ] || { echo "pubsub.sh: no redoubtctl at $CTL; set REDOUBTCTL" >&2; exit 1; }
    command -v openssl >/dev/null || { echo "pubsub.sh: openssl is not installed" >&2; exit 1; }
    base=$(tc_cluster_ports "") || exit 1
    PORT=$(tc_free_port "$base" $((base + 1)) $((base + 2)) $((base + 3)) $((base + 4)) $((base + 5)) \
                     $((base + 10000)) $((base + 10001)) $((base + 10002)) $((base + 10003)) \
                     $((base + 10004)) $((base + 10005)))
    tc_cluster_up "$DIR" "$CTL" "$base" || { echo "pubsub.sh: the Redis Cluster did not start" >&2; exit 1; }
    ports=("${TC_PORTS[@]}") nodes=("${TC_NODES[@]}") masters=("${TC_MASTERS[@]}") pw=$TC_PW
    # tls-cluster.sh's alice has no channels (Redis 7's acl-pubsub-default
    # is resetchannels): every channel, on every node.
    for p in "${ports[@]}"; do
        [ "$(tc_cli -p "$p" ACL SETUSER alice allchannels 2>&1)" = OK ] ||
            { echo "pubsub.sh: ACL SETUSER alice allchannels failed on $p" >&2; exit 1; }
    done
    # The master of the channel's slot: the one that does not answer MOVED.
    RPORT=
    for m in "${masters[@]}"; do
        [[ $(tc_cli -p "$m" SPUBLISH "$CHAN" hello 2>&1) =~ ^[0-9]+$ ]] && { RPORT=$m; break; }
    done
    [ -n "$RPORT" ] || { echo "pubsub.sh: no master owns the slot of $CHAN" >&2; exit 1; }
    cat > "$DIR/redoubt.conf" <<CONF
worker_processes = $wp;
pid_file = "$DIR/redoubt.pid";
worker_shutdown_timeout = "5s";
error_log = { path = "$DIR/redoubt.error.log"; level = "warn"; };
upstream_tls = { ca_cert = "$DIR/ca/db-client-ca.crt"; ca_key = "$DIR/ca/db-client-ca.key";
                 server_ca = "$DIR/ca/db-ca.crt"; cert_ttl = "1h"; };
listen = ( { address = "127.0.0.1:$PORT"; database = "bench"; tls = false; } );
databases = ( { name = "bench"; uri = "rediss://${nodes[0]}?mode=cluster"; } );
CONF
    "$BIN" -g -c "$DIR/redoubt.conf" 2> "$DIR/redoubt.stderr" &
    pid=$!
    PIDS=("$pid" "${PIDS[@]}")
    # Wait for redoubt with a first round trip as alice.
    out=
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        out=$(REDISCLI_AUTH=$pw redis-cli -h 127.0.0.1 -p "$PORT" --user alice --no-auth-warning \
                  SPUBLISH "$CHAN" hello 2>&1)
        [[ $out =~ ^[0-9]+$ ]] && break
        sleep 0.1
    done
    if ! [[ $out =~ ^[0-9]+$ ]]; then
        echo "pubsub.sh: SPUBLISH through redoubt as alice failed: $out" >&2
        cat "$DIR/redoubt.stderr" "$DIR/redoubt.error.log" >&2 2>/dev/null
        exit 1
    fi
    # run.py's settings for both sides: a shard channel, AUTH alice; TLS
    # (node 1's certificate) straight to the nodes only.
    export PS_KIND=s PS_USER=alice PS_PW=$pw
    ntls="$DIR/certs/node-1.crt $DIR/certs/node-1.key $DIR/ca/db-ca.crt"
    dpub=(redis-benchmark --tls --cert "$DIR/certs/node-1.crt" --key "$DIR/certs/node-1.key"
          --cacert "$DIR/ca/db-ca.crt" -h 127.0.0.1 -p "$RPORT" --user alice -a "$pw")
    gpub=(redis-benchmark -h 127.0.0.1 -p "$PORT" --user alice -a "$pw")
    pubcmd=SPUBLISH
    title="redoubt pubsub bench, Redis Cluster (SSUBSCRIBE/SPUBLISH)"
    where="redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p'): 6 nodes (TLS) on 127.0.0.1:${ports[0]}-${ports[5]}, shard channel $CHAN on master $RPORT; $("$BIN" -v 2>&1 | head -n 1) (plaintext to clients) on 127.0.0.1:$PORT"
else
    RPORT=$(tc_free_port)
    PORT=$(tc_free_port "$RPORT")

    redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize no --dir "$DIR" --logfile "$DIR/redis.log" &
    PIDS+=("$!")
    wait_port "$RPORT" || { echo "pubsub.sh: redis-server did not start" >&2; cat "$DIR/redis.log" >&2; exit 1; }

    cat > "$DIR/redoubt.conf" <<CONF
worker_processes = $wp;
pid_file = "$DIR/redoubt.pid";
worker_shutdown_timeout = "5s";
error_log = { path = "$DIR/redoubt.error.log"; level = "warn"; };
listen = ( { address = "127.0.0.1:$PORT"; database = "bench"; tls = false; } );
databases = ( { name = "bench"; uri = "redis://127.0.0.1:$RPORT"; } );
CONF
    "$BIN" -g -c "$DIR/redoubt.conf" 2> "$DIR/redoubt.stderr" &
    PIDS+=("$!")
    wait_port "$PORT" || { echo "pubsub.sh: redoubt did not start" >&2; cat "$DIR/redoubt.stderr" "$DIR/redoubt.error.log" >&2 2>/dev/null; exit 1; }
    [ "$(redis-cli -h 127.0.0.1 -p "$PORT" PING 2>&1)" = PONG ] ||
        { echo "pubsub.sh: PING through redoubt failed" >&2; cat "$DIR/redoubt.error.log" >&2; exit 1; }
    export PS_KIND='' PS_USER='' PS_PW=''
    ntls=
    dpub=(redis-benchmark -h 127.0.0.1 -p "$RPORT")
    gpub=(redis-benchmark -h 127.0.0.1 -p "$PORT")
    pubcmd=PUBLISH
    title="redoubt pubsub bench"
    where="redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on 127.0.0.1:$RPORT, $("$BIN" -v 2>&1 | head -n 1) on 127.0.0.1:$PORT"
fi

# The subscribers and the publisher, for one run against PORT: prints the
# messages delivered per second, or fails. run.py PORT SUBS MESSAGES
# CHANNEL -- PUBLISHER-COMMAND... (its last argument is the payload).
# Environment: PS_KIND "s" for a shard channel (SSUBSCRIBE, "smessage"
# frames), PS_USER and PS_PW for an AUTH first, PS_TLS "CERT KEY CA" for
# TLS.
cat > "$DIR/run.py" <<'PY'
import os, selectors, socket, ssl, subprocess, sys, time

port, subs, n = map(int, sys.argv[1:4])
chan = sys.argv[4].encode()
pubcmd = sys.argv[sys.argv.index("--") + 1:]
payload = pubcmd[-1].encode()
kind = os.environ.get("PS_KIND", "").encode()
user, pw = os.environ.get("PS_USER", ""), os.environ.get("PS_PW", "")
tls = os.environ.get("PS_TLS", "").split()

def bulk(b):
    return b"$%d\r\n%s\r\n" % (len(b), b)

def cmd(*args):
    return b"*%d\r\n" % len(args) + b"".join(bulk(a) for a in args)

frame = b"*3\r\n" + bulk(kind + b"message") + bulk(chan) + bulk(payload)
want = n * len(frame)
hello = cmd(kind.upper() + b"SUBSCRIBE", chan)
confirm = b"*3\r\n" + bulk(kind + b"subscribe") + bulk(chan) + b":1\r\n"
if user:
    hello = cmd(b"AUTH", user.encode(), pw.encode()) + hello
    confirm = b"+OK\r\n" + confirm

ctx = None
if tls:
    ctx = ssl.create_default_context(cafile=tls[2])
    ctx.load_cert_chain(tls[0], tls[1])

socks = []
for i in range(subs):
    s = socket.create_connection(("127.0.0.1", port))
    if ctx:
        s = ctx.wrap_socket(s, server_hostname="127.0.0.1")
    s.sendall(hello)
    socks.append(s)
for s in socks:
    got = b""
    s.settimeout(10)
    while len(got) < len(confirm):
        b = s.recv(len(confirm) - len(got))
        if not b:
            sys.exit("a subscriber was closed before its confirmation")
        got += b
    if got != confirm:
        sys.exit("unexpected confirmation %r" % got)
    s.setblocking(False)

sel = selectors.DefaultSelector()
state = {}
for s in socks:
    state[s.fileno()] = [s, bytearray(), None]
    sel.register(s, selectors.EVENT_READ)

pub = subprocess.Popen(pubcmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

first = None
left = subs
deadline = time.monotonic() + 120
while left > 0:
    if time.monotonic() > deadline:
        pub.kill()
        sys.exit("timed out: %d subscribers still wait (%s)" % (
            left, ", ".join("%d of %d bytes" % (len(v[1]), want)
                            for v in state.values() if v[2] is None)))
    for key, _ in sel.select(timeout=1):
        v = state[key.fd]
        while True:             # a TLS socket may hold more than it said
            try:
                b = v[0].recv(1 << 20)
            except (BlockingIOError, ssl.SSLWantReadError):
                break
            if not b:
                sys.exit("a subscriber was closed after %d of %d bytes" % (len(v[1]), want))
            now = time.monotonic()
            if first is None:
                first = now
            v[1] += b
            if len(v[1]) >= want:
                v[2] = now
                sel.unregister(v[0])
                left -= 1
                break
last = max(v[2] for v in state.values())
pub.wait()
for v in state.values():
    if len(v[1]) != want or v[1].count(frame) != n:
        sys.exit("a subscriber's stream is not %d messages" % n)
    v[0].close()
print("%.0f" % (subs * n / (last - first)))
PY

# mps PORT TLS REDIS-BENCHMARK-CONNECTION-ARGS...: the best messages/s
# over REPEATS runs.
mps() {
    local best=0 r i port=$1 tls=$2
    shift 2
    for ((i = 0; i < REPEATS; i++)); do
        r=$(PS_TLS=$tls python3 "$DIR/run.py" "$port" "$SUBS" "$MESSAGES" "$CHAN" -- "$@" \
                -c "$PUBS" -P "$PIPELINE" -n "$MESSAGES" -q "$pubcmd" "$CHAN" "$payload" 2> "$DIR/run.err") ||
            { echo "pubsub.sh: the run on port $port failed: $(cat "$DIR/run.err")" >&2; return 1; }
        best=$(awk -v a="$best" -v b="$r" 'BEGIN { print (b > a) ? b : a }')
    done
    echo "$best"
}

ncpu=$(nproc 2>/dev/null || echo '?')
echo "$title: $SUBS subscribers, $MESSAGES messages of $DATA bytes, $PUBS publisher(s) pipelining $PIPELINE, worker_processes = $WORKERS, $ncpu CPUs, best of $REPEATS"
echo "$where"
echo
printf '%-10s %18s %18s %8s\n' test "direct msg/s" "redoubt msg/s" ratio
status=0
d=$(mps "$RPORT" "$ntls" "${dpub[@]}") || status=1
g=$(mps "$PORT" "" "${gpub[@]}") || status=1
if [ "$status" = 0 ]; then
    printf '%-10s %18.0f %18.0f %8s\n' delivered "$d" "$g" "$(ratio "$d" "$g")"
fi
if grep -qiE 'error|crit|alert|emerg' "$DIR/redoubt.error.log" 2>/dev/null || [ "$status" != 0 ]; then
    echo
    echo "redoubt's error log (tail):"
    tail -n 20 "$DIR/redoubt.error.log" 2>/dev/null
fi
exit "$status"
