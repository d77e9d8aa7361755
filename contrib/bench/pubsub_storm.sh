#!/bin/bash
# pubsub_storm.sh - does a Pub/Sub storm on a busy cluster starve the other
# sessions of redoubt's worker? A measurement, on this machine.
#
# Starts the 6-node TLS-only Redis Cluster of bench.sh -C
# (contrib/tls-cluster.sh) and one redoubt in front of it with
# worker_processes = 1, a plaintext listener (the clients send AUTH alice)
# and mutual TLS to the nodes; all in a temp dir, stopped again on exit.
# A "victim" client does GET/SET round trips on one key (pipeline 1, one
# command at a time) for SECONDS and reports its ops/s and p50/p99 latency:
#   (a) alone;
#   (b) while another session loops as fast as it can: SUBSCRIBE x,
#       UNSUBSCRIBE x, SUBSCRIBE of 100 channels, UNSUBSCRIBE (each waits
#       for its confirmations; redoubt closes its subscriber connections
#       whenever nothing is subscribed, so every cycle also opens them
#       again: TLS handshakes and AUTH to a node);
#   (c) while a third session has PSUBSCRIBE * and SSUBSCRIBE of a shard
#       channel, and two redis-benchmark publishers flood PUBLISH and
#       SPUBLISH straight to the nodes (so redoubt's worker only delivers).
# The publishers go to another master than the victim's key's (the
# shard channel is chosen there), so that the victim's node is not the
# one saturated by the flood. The "load" column is what the other session
# got done meanwhile: storm cycles per second in (b), messages per second
# received in (c). Ratios are to (a). The same three cases run straight
# to the nodes (TLS, node 1's certificate) for reference: the victim and
# the storm of (b) on the key's master, the subscriber of (c) on the
# flooded master. Everything shares the machine's cores, so part of any
# slowdown is plain CPU contention; compare the redoubt rows with the
# direct ones.
#
# Usage: contrib/bench/pubsub_storm.sh [-t SECONDS] [-d DATA] [-b PATH/TO/redoubt]
#   -t  seconds per case (default 10)
#   -d  bytes per flood message (default 16)
#   -b  the redoubt binary (default: $REDOUBT, else ./redoubt, else
#       build/check/redoubt or build/demo/redoubt under the source tree);
#       redoubtctl next to it, or $REDOUBTCTL
set -u
set -o pipefail

SECS=10
DATA=16
BIN=${REDOUBT:-}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=contrib/tls-cluster.sh
. "$ROOT/contrib/tls-cluster.sh"

usage() { sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

while getopts "t:d:b:h" opt; do
    case $opt in
        t) SECS=$OPTARG ;;
        d) DATA=$OPTARG ;;
        b) BIN=$OPTARG ;;
        *) usage ;;
    esac
done
for v in SECS DATA; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "pubsub_storm.sh: $v (${!v}) must be a number above 0" >&2; exit 2; }
done
if [ -z "$BIN" ]; then
    for b in ./redoubt "$ROOT/build/check/redoubt" "$ROOT/build/demo/redoubt" "$ROOT/redoubt"; do
        [ -x "$b" ] && { BIN=$b; break; }
    done
fi
if [ -z "$BIN" ] || [ ! -x "$BIN" ]; then
    echo "pubsub_storm.sh: no redoubt binary found; build it or pass -b PATH" >&2
    exit 1
fi
CTL=${REDOUBTCTL:-$(dirname "$BIN")/redoubtctl}
[ -x "$CTL" ] || { echo "pubsub_storm.sh: no redoubtctl at $CTL; set REDOUBTCTL" >&2; exit 1; }
for c in redis-server redis-cli redis-benchmark python3 openssl; do
    command -v "$c" >/dev/null || { echo "pubsub_storm.sh: $c is not installed" >&2; exit 1; }
done

DIR=$(mktemp -d "${TMPDIR:-/tmp}/redoubt-storm.XXXXXX")
PIDS=()     # redoubt
LOAD=()     # the storm sessions and publishers of the case running
# shellcheck disable=SC2317 # called from the trap
cleanup() {
    local p
    trap - EXIT
    trap "" INT TERM
    for p in "${LOAD[@]}" "${PIDS[@]}" "${TC_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${LOAD[@]}" "${PIDS[@]}" "${TC_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

base=$(tc_cluster_ports "") || exit 1
PORT=$(tc_free_port "$base" $((base + 1)) $((base + 2)) $((base + 3)) $((base + 4)) $((base + 5)) \
                 $((base + 10000)) $((base + 10001)) $((base + 10002)) $((base + 10003)) \
                 $((base + 10004)) $((base + 10005)))
tc_cluster_up "$DIR" "$CTL" "$base" || { echo "pubsub_storm.sh: the Redis Cluster did not start" >&2; exit 1; }
ports=("${TC_PORTS[@]}") nodes=("${TC_NODES[@]}") masters=("${TC_MASTERS[@]}") pw=$TC_PW
# tls-cluster.sh's alice has no channels (Redis 7's acl-pubsub-default is
# resetchannels): every channel, on every node.
for p in "${ports[@]}"; do
    [ "$(tc_cli -p "$p" ACL SETUSER alice allchannels 2>&1)" = OK ] ||
        { echo "pubsub_storm.sh: ACL SETUSER alice allchannels failed on $p" >&2; exit 1; }
done
KEY=storm:victim
M=
for m in "${masters[@]}"; do
    [ "$(tc_cli -p "$m" SET "$KEY" v 2>&1)" = OK ] && { M=$m; break; }
done
[ -n "$M" ] || { echo "pubsub_storm.sh: no master takes $KEY" >&2; exit 1; }
# The flood goes to another master, F, where the shard channel lives: M,
# which serves the victim, only gets the PUBLISH messages over the bus.
F=
for m in "${masters[@]}"; do [ "$m" != "$M" ] && { F=$m; break; }; done
SHARD=
for ((i = 0; i < 200; i++)); do
    [[ $(tc_cli -p "$F" SPUBLISH "storm:shard:$i" x 2>&1) =~ ^[0-9]+$ ]] && { SHARD=storm:shard:$i; break; }
done
[ -n "$SHARD" ] || { echo "pubsub_storm.sh: no shard channel on $F" >&2; exit 1; }

cat > "$DIR/redoubt.conf" <<CONF
worker_processes = 1;
pid_file = "$DIR/redoubt.pid";
worker_shutdown_timeout = "5s";
error_log = { path = "$DIR/redoubt.error.log"; level = "warn"; };
upstream_tls = { ca_cert = "$DIR/ca/db-client-ca.crt"; ca_key = "$DIR/ca/db-client-ca.key";
                 server_ca = "$DIR/ca/db-ca.crt"; cert_ttl = "1h"; };
listen = ( { address = "127.0.0.1:$PORT"; database = "storm"; tls = false; } );
databases = ( { name = "storm"; uri = "rediss://${nodes[0]}?mode=cluster"; } );
CONF
"$BIN" -g -c "$DIR/redoubt.conf" 2> "$DIR/redoubt.stderr" &
pid=$!
PIDS=("$pid")
out=
for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    out=$(REDISCLI_AUTH=$pw redis-cli -h 127.0.0.1 -p "$PORT" --user alice --no-auth-warning GET "$KEY" 2>&1)
    [ "$out" = v ] && break
    sleep 0.1
done
if [ "$out" != v ]; then
    echo "pubsub_storm.sh: GET through redoubt as alice failed: $out" >&2
    cat "$DIR/redoubt.stderr" "$DIR/redoubt.error.log" >&2 2>/dev/null
    exit 1
fi

# storm.py ROLE PORT SECONDS [CHANNEL]; environment ST_USER, ST_PW (AUTH)
# and ST_TLS "CERT KEY CA". Roles:
#   victim  GET/SET round trips on storm:victim; prints ops/s p50 p99 (microseconds)
#   churn   the SUBSCRIBE/UNSUBSCRIBE loop; prints cycles/s
#   psub    PSUBSCRIBE * and SSUBSCRIBE CHANNEL, reads; prints messages/s
cat > "$DIR/storm.py" <<'PY'
import os, socket, ssl, sys, time

role, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
user, pw = os.environ.get("ST_USER", ""), os.environ.get("ST_PW", "")
tls = os.environ.get("ST_TLS", "").split()

def bulk(b):
    return b"$%d\r\n%s\r\n" % (len(b), b)

def cmd(*args):
    return b"*%d\r\n" % len(args) + b"".join(bulk(a) for a in args)

def connect():
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls:
        ctx = ssl.create_default_context(cafile=tls[2])
        ctx.load_cert_chain(tls[0], tls[1])
        s = ctx.wrap_socket(s, server_hostname="127.0.0.1")
    s.settimeout(10)
    if user:
        s.sendall(cmd(b"AUTH", user.encode(), pw.encode()))
        expect(s, b"+OK\r\n")
    return s

def expect(s, want):
    got = bytearray()
    while len(got) < len(want):
        b = s.recv(len(want) - len(got))
        if not b:
            sys.exit("%s: closed after %r" % (role, bytes(got)))
        got += b
    if got != want:
        sys.exit("%s: got %r, not %r" % (role, bytes(got)[:200], want[:200]))

def confirm(kind, chan, count):
    return b"*3\r\n" + bulk(kind) + bulk(chan) + b":%d\r\n" % count

s = connect()
end = time.monotonic() + secs
if role == "victim":
    ops = [(cmd(b"SET", b"storm:victim", b"v"), b"+OK\r\n"),
           (cmd(b"GET", b"storm:victim"), b"$1\r\nv\r\n")]
    lat = []
    start = time.monotonic()
    while True:
        for req, rep in ops:
            t = time.perf_counter()
            s.sendall(req)
            expect(s, rep)
            lat.append(time.perf_counter() - t)
        now = time.monotonic()
        if now >= end:
            break
    lat.sort()
    print("%.0f %.0f %.0f" % (len(lat) / (now - start), lat[len(lat) // 2] * 1e6,
                             lat[min(len(lat) - 1, len(lat) * 99 // 100)] * 1e6))
elif role == "churn":
    chans = [b"c%d" % i for i in range(100)]
    sub100 = cmd(b"SUBSCRIBE", *chans)
    conf100 = b"".join(confirm(b"subscribe", c, i + 1) for i, c in enumerate(chans))
    # UNSUBSCRIBE without channels: one frame each (counts 99 to 0), in
    # Redis's order; the byte count does not depend on it.
    unsub100 = sum(len(confirm(b"unsubscribe", c, i)) for i, c in enumerate(chans))
    cycles = 0
    start = time.monotonic()
    while time.monotonic() < end:
        s.sendall(cmd(b"SUBSCRIBE", b"x"))
        expect(s, confirm(b"subscribe", b"x", 1))
        s.sendall(cmd(b"UNSUBSCRIBE", b"x"))
        expect(s, confirm(b"unsubscribe", b"x", 0))
        s.sendall(sub100)
        expect(s, conf100)
        s.sendall(cmd(b"UNSUBSCRIBE"))
        got = 0
        while got < unsub100:
            b = s.recv(unsub100 - got)
            if not b:
                sys.exit("churn: closed")
            got += len(b)
        cycles += 1
    print("%.0f" % (cycles / (time.monotonic() - start)))
elif role == "psub":
    chan = sys.argv[4].encode()
    s.sendall(cmd(b"PSUBSCRIBE", b"*"))
    expect(s, confirm(b"psubscribe", b"*", 1))
    # Messages of the pattern may come before the shard channel's
    # confirmation: they count.
    s.sendall(cmd(b"SSUBSCRIBE", chan))
    want = confirm(b"ssubscribe", chan, 1)
    got = b""
    while want not in got:
        b = s.recv(1 << 20)
        if not b:
            sys.exit("psub: closed before the SSUBSCRIBE confirmation")
        got += b
    pat = b"message\r\n"     # "pmessage" and "smessage" frames
    n = got.count(pat)
    tail = got[-(len(pat) - 1):]
    s.settimeout(0.5)
    start = time.monotonic()
    while time.monotonic() < end:
        try:
            b = s.recv(1 << 20)
        except socket.timeout:
            continue
        if not b:
            sys.exit("psub: closed after %d messages" % n)
        data = tail + b
        n += data.count(pat)
        tail = data[-(len(pat) - 1):]
    print("%.0f" % (n / (time.monotonic() - start)))
PY

payload=$(printf "%${DATA}s" "" | tr ' ' x)
ntls="$DIR/certs/node-1.crt $DIR/certs/node-1.key $DIR/ca/db-ca.crt"
export ST_USER=alice ST_PW=$pw

# one_case TARGET CASE: runs the load of CASE (a, b or c) and the victim
# against TARGET (redoubt or direct); prints "ops p50 p99 load".
one_case() {
    local vport vtls pport r load=- f
    if [ "$1" = redoubt ]; then vport=$PORT vtls=; else vport=$M vtls=$ntls; fi
    LOAD=()
    rm -f "$DIR"/load.*
    case $2 in
    b)
        ST_TLS=$vtls python3 "$DIR/storm.py" churn "$vport" $((SECS + 2)) > "$DIR/load.churn" 2> "$DIR/load.err" &
        LOAD+=("$!")
        ;;
    c)
        if [ "$1" = redoubt ]; then pport=$PORT; else pport=$F; fi
        ST_TLS=$vtls python3 "$DIR/storm.py" psub "$pport" $((SECS + 2)) "$SHARD" > "$DIR/load.psub" 2> "$DIR/load.err" &
        LOAD+=("$!")
        sleep 1
        # Publishers straight to F: PUBLISH (the cluster bus takes it to
        # every node) and SPUBLISH of the shard channel.
        for c in "PUBLISH storm:p" "SPUBLISH $SHARD"; do
            # shellcheck disable=SC2086 # the command and its channel
            redis-benchmark --tls --cert "$DIR/certs/node-1.crt" --key "$DIR/certs/node-1.key" \
                --cacert "$DIR/ca/db-ca.crt" -h 127.0.0.1 -p "$F" --user alice -a "$pw" \
                -c 1 -P 32 -n 1000000000 -q $c "$payload" > /dev/null 2>&1 &
            LOAD+=("$!")
        done
        ;;
    esac
    sleep 1
    r=$(ST_TLS=$vtls python3 "$DIR/storm.py" victim "$vport" "$SECS" 2> "$DIR/victim.err") ||
        { echo "pubsub_storm.sh: the victim ($1, $2) failed: $(cat "$DIR/victim.err")" >&2; r=; }
    if [ "$2" = c ]; then
        for p in "${LOAD[@]:1}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    fi
    for p in "${LOAD[@]}"; do wait "$p" 2>/dev/null; done
    LOAD=()
    for f in "$DIR"/load.churn "$DIR"/load.psub; do
        [ -f "$f" ] && load=$(cat "$f")
    done
    [ -n "$load" ] || load="failed: $(head -c 200 "$DIR/load.err")"
    [ -n "$r" ] || return 1
    echo "$r $load"
}

ratio() { awk -v d="$1" -v g="$2" 'BEGIN { printf "%.2f", (d > 0) ? g / d : 0 }'; }
declare -A names loads
names=([a]="alone" [b]="SUBSCRIBE/UNSUBSCRIBE storm" [c]="PSUBSCRIBE * + flood")
loads=([a]="" [b]="cycles/s" [c]="msg/s")

echo "redoubt pubsub storm: victim GET/SET round trips (pipeline 1), $SECS s a case, flood messages of $DATA bytes, worker_processes = 1, $(nproc 2>/dev/null || echo '?') CPUs"
echo "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p'): 6 nodes (TLS) on 127.0.0.1:${ports[0]}-${ports[5]}, key $KEY on master $M, flood and shard channel $SHARD on master $F; $("$BIN" -v 2>&1 | head -n 1) (plaintext to clients) on 127.0.0.1:$PORT"
echo
printf '%-8s %-30s %9s %8s %8s %8s %8s %8s  %s\n' target case "ops/s" "p50 us" "p99 us" "ops/(a)" "p50/(a)" "p99/(a)" load
status=0
for t in redoubt direct; do
    a=
    for c in a b c; do
        if ! r=$(one_case "$t" "$c"); then
            status=1
            printf '%-8s %-30s %9s\n' "$t" "($c) ${names[$c]}" failed
            continue
        fi
        read -r ops p50 p99 load <<< "$r"
        [[ $load == failed* ]] && status=1
        [ -z "$a" ] && [ "$c" = a ] && a="$ops $p50 $p99"
        read -r aops ap50 ap99 <<< "${a:-0 0 0}"
        [ "$c" = a ] && load= || load="$load ${loads[$c]}"
        printf '%-8s %-30s %9s %8s %8s %8s %8s %8s  %s\n' "$t" "($c) ${names[$c]}" "$ops" "$p50" "$p99" \
            "$(ratio "$aops" "$ops")" "$(ratio "$ap50" "$p50")" "$(ratio "$ap99" "$p99")" "$load"
    done
done
if grep -qiE 'error|crit|alert|emerg' "$DIR/redoubt.error.log" 2>/dev/null || [ "$status" != 0 ]; then
    echo
    echo "redoubt's error log (tail):"
    tail -n 20 "$DIR/redoubt.error.log" 2>/dev/null
fi
exit "$status"
