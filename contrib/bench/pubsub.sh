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
# Usage: contrib/bench/pubsub.sh [-s SUBSCRIBERS] [-n MESSAGES]
#                                [-p PUBLISHERS] [-P PIPELINE] [-d DATA]
#                                [-w WORKERS] [-r REPEATS] [-b PATH/TO/redoubt]
#   -s  subscribers (default 10)
#   -n  messages published, in all (default 200000)
#   -p  publishing connections (redis-benchmark -c; default 1)
#   -P  PUBLISH commands pipelined per connection (default 16)
#   -d  bytes per message (default 16)
#   -w  redoubt worker_processes: a number or "auto" (default auto)
#   -r  run each side R times and keep the best (default 1)
#   -b  the redoubt binary (default: $REDOUBT, else ./redoubt, else
#       build/check/redoubt or build/demo/redoubt under the source tree)
set -u
set -o pipefail

SUBS=10
MESSAGES=200000
PUBS=1
PIPELINE=16
DATA=16
WORKERS=auto
REPEATS=1
BIN=${REDOUBT:-}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=contrib/tls-cluster.sh
. "$ROOT/contrib/tls-cluster.sh"

usage() { sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

while getopts "s:n:p:P:d:w:r:b:h" opt; do
    case $opt in
        s) SUBS=$OPTARG ;;
        n) MESSAGES=$OPTARG ;;
        p) PUBS=$OPTARG ;;
        P) PIPELINE=$OPTARG ;;
        d) DATA=$OPTARG ;;
        w) WORKERS=$OPTARG ;;
        r) REPEATS=$OPTARG ;;
        b) BIN=$OPTARG ;;
        *) usage ;;
    esac
done
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
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
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

RPORT=$(tc_free_port)
PORT=$(tc_free_port "$RPORT")

redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --dir "$DIR" --logfile "$DIR/redis.log" &
PIDS+=("$!")
wait_port "$RPORT" || { echo "pubsub.sh: redis-server did not start" >&2; cat "$DIR/redis.log" >&2; exit 1; }

cat > "$DIR/redoubt.conf" <<EOF
worker_processes = $wp;
pid_file = "$DIR/redoubt.pid";
worker_shutdown_timeout = "5s";
error_log = { path = "$DIR/redoubt.error.log"; level = "warn"; };
listen = ( { address = "127.0.0.1:$PORT"; database = "bench"; tls = false; } );
databases = ( { name = "bench"; uri = "redis://127.0.0.1:$RPORT"; } );
EOF
"$BIN" -g -c "$DIR/redoubt.conf" 2> "$DIR/redoubt.stderr" &
PIDS+=("$!")
wait_port "$PORT" || { echo "pubsub.sh: redoubt did not start" >&2; cat "$DIR/redoubt.stderr" "$DIR/redoubt.error.log" >&2 2>/dev/null; exit 1; }
[ "$(redis-cli -h 127.0.0.1 -p "$PORT" PING 2>&1)" = PONG ] ||
    { echo "pubsub.sh: PING through redoubt failed" >&2; cat "$DIR/redoubt.error.log" >&2; exit 1; }

# The subscribers and the publisher, for one run against PORT: prints the
# messages delivered per second, or fails.
cat > "$DIR/run.py" <<'PY'
import selectors, socket, subprocess, sys, time

port, subs, n, pubs, pipeline, data = map(int, sys.argv[1:7])
payload = b"x" * data
chan = b"bench"
frame = b"*3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
    len(chan), chan, len(payload), payload)
want = n * len(frame)

socks = []
for i in range(subs):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$5\r\nbench\r\n")
    socks.append(s)
confirm = b"*3\r\n$9\r\nsubscribe\r\n$5\r\nbench\r\n:1\r\n"
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

pub = subprocess.Popen(
    ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(pubs),
     "-P", str(pipeline), "-n", str(n), "-q", "PUBLISH", "bench", payload],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

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
        try:
            b = v[0].recv(1 << 20)
        except BlockingIOError:
            continue
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
last = max(v[2] for v in state.values())
pub.wait()
for v in state.values():
    if len(v[1]) != want or v[1].count(frame) != n:
        sys.exit("a subscriber's stream is not %d messages" % n)
    v[0].close()
print("%.0f" % (subs * n / (last - first)))
PY

# mps PORT: the best messages/s over REPEATS runs.
mps() {
    local best=0 r i
    for ((i = 0; i < REPEATS; i++)); do
        r=$(python3 "$DIR/run.py" "$1" "$SUBS" "$MESSAGES" "$PUBS" "$PIPELINE" "$DATA" 2> "$DIR/run.err") ||
            { echo "pubsub.sh: the run on port $1 failed: $(cat "$DIR/run.err")" >&2; return 1; }
        best=$(awk -v a="$best" -v b="$r" 'BEGIN { print (b > a) ? b : a }')
    done
    echo "$best"
}

ncpu=$(nproc 2>/dev/null || echo '?')
echo "redoubt pubsub bench: $SUBS subscribers, $MESSAGES messages of $DATA bytes, $PUBS publisher(s) pipelining $PIPELINE, worker_processes = $WORKERS, $ncpu CPUs, best of $REPEATS"
echo "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on 127.0.0.1:$RPORT, $("$BIN" -v 2>&1 | head -n 1) on 127.0.0.1:$PORT"
echo
printf '%-10s %18s %18s %8s\n' test "direct msg/s" "redoubt msg/s" ratio
status=0
d=$(mps "$RPORT") || status=1
g=$(mps "$PORT") || status=1
if [ "$status" = 0 ]; then
    printf '%-10s %18.0f %18.0f %8s\n' delivered "$d" "$g" "$(ratio "$d" "$g")"
fi
if grep -qiE 'error|crit' "$DIR/redoubt.error.log" 2>/dev/null; then
    echo
    echo "redoubt's error log:"
    tail -n 20 "$DIR/redoubt.error.log"
fi
exit "$status"
