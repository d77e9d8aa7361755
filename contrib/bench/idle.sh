#!/bin/bash
# idle.sh - what an idle, authenticated mutual-TLS session costs redoubt in
# memory, next to what the same connection costs a redis-server, and whether
# the memory goes back to the system once the sessions have closed.
#
# Starts two TLS-only redis-servers (tls-auth-clients, a users.acl with
# alice and "user default off") and a redoubt in front of one, mutual TLS
# on both sides (certificates from redoubtctl, as in contrib/tls-cluster.sh),
# on free loopback ports in a temp dir; everything is stopped again on exit.
# A Python client (asyncio + ssl, one process) then
#   1. opens N sessions through redoubt with alice's user certificate, each
#      "AUTH alice <password>" and then idle (each also holds its own TLS
#      connection from redoubt to Redis, opened for the AUTH);
#   2. closes them all;
#   3. opens N connections straight to the other redis-server over TLS (a
#      client certificate from the db-client CA), AUTH, idle, and closes
#      them.
# and the script prints the resident set size (VmRSS) of redoubt's workers
# (summed) and of redis-server at each step: per session is the RSS delta
# over N, and "ratio" is redoubt's per-session cost over redis-server's
# per-connection cost in the same run. "after close" is measured SETTLE
# seconds after the last session closed, and "kept" is what the workers
# did not give back (after close - before).
#
# Usage: contrib/bench/idle.sh [-n SESSIONS] [-w WORKERS] [-p PARALLEL]
#                              [-s SETTLE] [-b PATH/TO/redoubt]
#   -n  sessions (default 10000; the client and each redis-server need
#       about N + 100 descriptors: the script raises "ulimit -n" to the
#       hard limit)
#   -w  redoubt worker_processes (default 2)
#   -p  handshakes in flight at a time (default 200)
#   -s  seconds to wait after the close before measuring (default 3)
#   -b  the redoubt binary (default: $REDOUBT, else ./redoubt, else
#       build/check/redoubt under the source tree); redoubtctl is taken
#       from next to it, or $REDOUBTCTL
#
# What redoubt does for idle sessions (issue 11): OpenSSL's read and write
# buffers are released while a connection has nothing in flight
# (SSL_MODE_RELEASE_BUFFERS, on the client side and towards Redis); the
# session's and the Redis connection's input and output buffers are freed
# when they drain; and a worker hands the heap that closed sessions freed
# back to the kernel (malloc_trim(0), RD_TRIM_* in src/rd_worker.c, shortly
# after a burst of closes) so that a worker's RSS follows its sessions down.
#
# Planning for 100,000 sessions on one machine
# --------------------------------------------
# Descriptors. A session holds two (the client's connection and its own
# connection to Redis; with shared node connections, one and a few per
# node). 100,000 sessions over W workers need 2 x 100,000 / W + ~40 per
# worker: set worker_rlimit_nofile (each worker raises its RLIMIT_NOFILE;
# raising the hard limit needs the master to run as root, or systemd's
# LimitNOFILE=) and limits.max_sessions (per worker) to match; "redoubt -t"
# warns when max_sessions needs more descriptors than a worker has. The
# system-wide fs.file-max (and fs.nr_open, the ceiling of RLIMIT_NOFILE)
# must cover the workers, the Redis servers and the clients together;
# redis-server needs maxclients and its own ulimit -n of 100,000 + 32.
# Ephemeral ports. Each connection from redoubt to one Redis address takes
# a local port: net.ipv4.ip_local_port_range (32768-60999 by default, 28,232
# ports) caps the connections to one ip:port. 100,000 sessions to one Redis
# need a wider range (e.g. "1024 65535", minus reserved ports:
# ip_local_reserved_ports), several Redis addresses or source addresses, or
# the shared node connections, which take the per-session connection away.
# A test on one machine has the same limit on its client side: open the
# sessions from several loopback source addresses (127.0.0.2, ...) or
# several listeners; the test helpers take their listening ports from below
# the ephemeral range (lib.sh's free_port), so that outgoing connections
# never collide with them.
# Timers. Every session arms an idle timer and, with a client certificate,
# an expiry timer in the worker's binary heap: O(log n) to arm, re-arm or
# remove, embedded in the session (no allocation); at 50,000 sessions per
# worker a re-arm is ~16 comparisons. The idle timer is re-armed on every
# read, which stays cheap at that depth; limits.idle_timeout (default 10m)
# bounds how long an abandoned session holds its descriptors.
# epoll. One level-triggered epoll set per worker, one registration per
# descriptor; an idle session costs nothing per loop iteration (epoll_wait
# returns ready descriptors only, at most 512 a call), and the listeners
# are shared with EPOLLEXCLUSIVE so that a connection wakes one worker.
# /proc/sys/fs/epoll/max_user_watches (about 4% of low memory / 90 bytes
# per watch by default, millions on a 24 GB machine) bounds the
# registrations of one user across all workers.
# Memory. Measured with this script (README, "Benchmarks": 43 kB per
# idle session with its own TLS connection to Redis, 2026-12): 100,000
# sessions take about 4.3 GB in the workers, plus the kernel's socket
# buffers (tcp_rmem/tcp_wmem, not in RSS; small while idle) and as much
# again in redis-server for the per-session connections.
set -u
set -o pipefail

N=10000
WORKERS=2
PAR=200
SETTLE=3
BIN=${REDOUBT:-}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=contrib/tls-cluster.sh
. "$ROOT/contrib/tls-cluster.sh"

usage() { sed -n '2,/^# What redoubt does/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

while getopts "n:w:p:s:b:h" opt; do
    case $opt in
        n) N=$OPTARG ;;
        w) WORKERS=$OPTARG ;;
        p) PAR=$OPTARG ;;
        s) SETTLE=$OPTARG ;;
        b) BIN=$OPTARG ;;
        *) usage ;;
    esac
done
[[ $N =~ ^[1-9][0-9]*$ ]] || { echo "idle.sh: -n needs a number" >&2; exit 2; }
[[ $WORKERS =~ ^[1-9][0-9]*$ ]] || { echo "idle.sh: -w needs a number" >&2; exit 2; }
[[ $PAR =~ ^[1-9][0-9]*$ ]] || { echo "idle.sh: -p needs a number" >&2; exit 2; }
[[ $SETTLE =~ ^[0-9]+$ ]] || { echo "idle.sh: -s needs a number" >&2; exit 2; }

if [ -z "$BIN" ]; then
    for b in ./redoubt "$ROOT/build/check/redoubt" "$ROOT/redoubt"; do
        [ -x "$b" ] && { BIN=$b; break; }
    done
fi
if [ -z "$BIN" ] || [ ! -x "$BIN" ]; then
    echo "idle.sh: no redoubt binary found; build it or pass -b PATH" >&2
    exit 1
fi
CTL=${REDOUBTCTL:-$(dirname "$BIN")/redoubtctl}
[ -x "$CTL" ] || { echo "idle.sh: no redoubtctl at $CTL; set REDOUBTCTL" >&2; exit 1; }
for c in redis-server redis-cli python3 openssl; do
    command -v "$c" >/dev/null || { echo "idle.sh: $c is not installed" >&2; exit 1; }
done

# The client, redis-server and the workers each need N descriptors and more.
ulimit -n "$(ulimit -Hn)" 2>/dev/null
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((N + 100)) ]; then
    echo "idle.sh: $N sessions need an open files limit of $((N + 100)); ulimit -n is $(ulimit -n) (hard $(ulimit -Hn))" >&2
    exit 1
fi

DIR=$(mktemp -d "${TMPDIR:-/tmp}/redoubt-idle.XXXXXX")
PIDS=()
CPID=
# shellcheck disable=SC2317 # called from the trap
cleanup() {
    local p
    trap - EXIT
    trap "" INT TERM
    [ -n "$CPID" ] && kill -TERM "$CPID" 2>/dev/null
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "$CPID" "${PIDS[@]}"; do [ -n "$p" ] && wait "$p" 2>/dev/null; done
    rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM


# --- certificates, Redis, redoubt --------------------------------------------
"$CTL" ca init "$DIR/ca" >/dev/null || { echo "idle.sh: redoubtctl ca init failed" >&2; exit 1; }
if ! { "$CTL" cert server --ca-dir "$DIR/ca" --host localhost,127.0.0.1 --out "$DIR/redis" &&
        "$CTL" cert server --ca-dir "$DIR/ca" --host localhost,127.0.0.1 --out "$DIR/redoubt" &&
        "$CTL" cert server --ca-dir "$DIR/ca" --ca db-client --host localhost --out "$DIR/direct" &&
        "$CTL" cert user --ca-dir "$DIR/ca" --user alice --roles access --db-users alice \
            --ttl 8h --out "$DIR/alice"; } >/dev/null; then
    echo "idle.sh: redoubtctl cert failed" >&2
    exit 1
fi
PW=$(openssl rand -hex 16)
cat > "$DIR/users.acl" <<ACL
user alice on #$(printf '%s' "$PW" | sha256sum | cut -d' ' -f1) allcommands allkeys
user default off
ACL

# redis_start NAME PORT: a TLS-only redis-server; its pid in RPID.
redis_start() {
    mkdir -p "$DIR/$1"
    redis-server --port 0 --tls-port "$2" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize no --dir "$DIR/$1" --logfile "$DIR/$1/redis.log" --maxclients $((N + 64)) \
        --tls-cert-file "$DIR/redis.crt" --tls-key-file "$DIR/redis.key" \
        --tls-ca-cert-file "$DIR/ca/db-client-ca.crt" --tls-auth-clients yes \
        --aclfile "$DIR/users.acl" &
    RPID=$!
    PIDS+=("$RPID")
    tc__wait_log "$DIR/$1/redis.log" 'Ready to accept connections' "$RPID" ||
        { tail -n 20 "$DIR/$1/redis.log" >&2; echo "idle.sh: redis-server ($1) did not start" >&2; exit 1; }
}
# One behind redoubt, and a fresh one for the direct clients (memory a
# server has used once is not all given back, and would be reused).
RPORT=$(tc_free_port)
DPORT=$(tc_free_port "$RPORT")
PORT=$(tc_free_port "$RPORT" "$DPORT")
redis_start redis-direct "$DPORT"
DPID=$RPID
redis_start redis "$RPORT"

cat > "$DIR/redoubt.conf" <<CONF
worker_processes = $WORKERS;
pid_file = "$DIR/redoubt.pid";
worker_shutdown_timeout = "5s";
error_log = { path = "$DIR/redoubt.error.log"; level = "warn"; };
limits = { max_sessions = $((N + 100)); idle_timeout = "1h"; };
tls = { certificate = "$DIR/redoubt.crt"; certificate_key = "$DIR/redoubt.key";
        client_ca = "$DIR/ca/user-ca.crt"; };
upstream_tls = { ca_cert = "$DIR/ca/db-client-ca.crt"; ca_key = "$DIR/ca/db-client-ca.key";
                 server_ca = "$DIR/ca/db-ca.crt"; cert_ttl = "1h"; };
listen = ( { address = "127.0.0.1:$PORT"; database = "bench"; backlog = 4096; } );
databases = ( { name = "bench"; uri = "rediss://127.0.0.1:$RPORT"; labels = { env = "bench"; }; } );
roles = ( { name = "access";
            allow = { db_labels = { env = "bench"; }; db_users = [ "{{internal.db_users}}" ]; }; } );
CONF
"$BIN" -t -c "$DIR/redoubt.conf" > "$DIR/redoubt-t.log" 2>&1 ||
    { cat "$DIR/redoubt-t.log" >&2; echo "idle.sh: the configuration does not pass redoubt -t" >&2; exit 1; }
"$BIN" -g -c "$DIR/redoubt.conf" 2> "$DIR/redoubt.stderr" &
MPID=$!
PIDS=("$MPID" "${PIDS[@]}")
out=
for ((i = 0; i < 100; i++)); do
    kill -0 "$MPID" 2>/dev/null || break
    out=$(REDISCLI_AUTH=$PW redis-cli --tls --cert "$DIR/alice.crt" --key "$DIR/alice.key" \
          --cacert "$DIR/ca/db-ca.crt" -p "$PORT" --user alice --no-auth-warning PING 2>&1)
    [ "$out" = PONG ] && break
    sleep 0.1
done
[ "$out" = PONG ] || { echo "idle.sh: PING through redoubt as alice failed: $out" >&2; cat "$DIR/redoubt.stderr" "$DIR/redoubt.error.log" >&2 2>/dev/null; exit 1; }

# --- measuring -------------------------------------------------------------
workers() {
    local f line rest ppid pid
    for f in /proc/[0-9]*/stat; do
        { IFS= read -r line < "$f"; } 2>/dev/null || continue
        rest=${line##*) }
        read -r _ ppid _ <<<"$rest"
        [ "$ppid" = "$MPID" ] || continue
        pid=${f#/proc/}; pid=${pid%/stat}
        [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = redoubt-status ] && continue
        echo "$pid"
    done
}
read -r -a WPIDS <<<"$(workers | tr '\n' ' ')"
[ "${#WPIDS[@]}" -eq "$WORKERS" ] || { echo "idle.sh: expected $WORKERS workers, found ${#WPIDS[@]}" >&2; exit 1; }
rss() { local p s=0 r; for p in "$@"; do r=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null); s=$((s + ${r:-0})); done; echo "$s"; }
# rss_anon PIDS...: the anonymous part (heap, stacks; not the libraries'
# pages the sessions' code paths brought in).
rss_anon() { local p s=0 r; for p in "$@"; do r=$(awk '/^RssAnon:/ { print $2 }' "/proc/$p/status" 2>/dev/null); s=$((s + ${r:-0})); done; echo "$s"; }
nfds() { local p s=0; for p in "$@"; do s=$((s + $(find "/proc/$p/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l))); done; echo "$s"; }
# settle_fds BASE PIDS...: until the processes hold no more than BASE descriptors (60 s).
settle_fds() {
    local base=$1 i
    shift
    for ((i = 0; i < 600; i++)); do
        [ "$(nfds "$@")" -le "$base" ] && return 0
        sleep 0.1
    done
    return 1
}

cat > "$DIR/idle.py" <<'PY'
import asyncio, ssl, sys

port, n, par, cafile, cert, key, user, pw = sys.argv[1:]
port, n, par = int(port), int(n), int(par)
ctx = ssl.create_default_context(cafile=cafile)
ctx.load_cert_chain(cert, key)
auth = b"*3\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
    len(user), user.encode(), len(pw), pw.encode())
conns = []

async def one(sem):
    async with sem:
        r, w = await asyncio.wait_for(asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname="localhost"), 30)
        w.write(auth)
        await w.drain()
        line = await asyncio.wait_for(r.readline(), 30)
        if line != b"+OK\r\n":
            w.close()
            raise RuntimeError("AUTH answered %r" % line)
        conns.append(w)

async def main():
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(par)
    res = await asyncio.gather(*(one(sem) for _ in range(n)), return_exceptions=True)
    errs = [e for e in res if isinstance(e, BaseException)]
    print("open %d %d %s" % (len(conns), len(errs), repr(errs[0]) if errs else "-"), flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    for w in conns:
        w.close()
    await asyncio.gather(*(asyncio.wait_for(w.wait_closed(), 10) for w in conns),
                         return_exceptions=True)
    print("closed", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)

asyncio.run(main())
PY

# sessions NAME PORT CERT-PREFIX: run the client against PORT and measure.
# Sets OPEN_KB (RSS with the sessions open) and AFTER_KB (after the close)
# for WATCH (the pids to measure), and NOPEN.
sessions() {
    local name=$1 port=$2 prefix=$3 line base t0 t1
    base=$(nfds "${WATCH[@]}")
    coproc CLIENT { python3 "$DIR/idle.py" "$port" "$N" "$PAR" "$DIR/ca/db-ca.crt" \
                        "$prefix.crt" "$prefix.key" alice "$PW" 2> "$DIR/client-$name.err"; }
    CPID=$CLIENT_PID
    t0=$(date +%s.%N)
    IFS= read -r line <&"${CLIENT[0]}" || { echo "idle.sh: the client failed ($name): $(tail -n 5 "$DIR/client-$name.err")" >&2; exit 1; }
    t1=$(date +%s.%N)
    read -r _ NOPEN nerr firsterr <<<"$line"
    [ "$nerr" = 0 ] || echo "idle.sh: $name: $nerr of $N sessions failed, first: $firsterr" >&2
    [ "$NOPEN" -gt 0 ] || exit 1
    OPEN_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    sleep 1
    OPEN_KB=$(rss "${WATCH[@]}")
    [ -n "${WATCH2:-}" ] && OPEN2_KB=$(rss "$WATCH2")
    echo >&"${CLIENT[1]}"
    IFS= read -r line <&"${CLIENT[0]}"
    settle_fds "$base" "${WATCH[@]}" || echo "idle.sh: $name: the sessions did not all close within 60 s" >&2
    sleep "$SETTLE"
    AFTER_KB=$(rss "${WATCH[@]}")
    AFTER_ANON_KB=$(rss_anon "${WATCH[@]}")
    echo >&"${CLIENT[1]}"
    wait "$CPID" 2>/dev/null
    CPID=
}

kb() { awk -v k="$1" 'BEGIN { printf "%.1f MB", k / 1024 }'; }
per() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.1f", (b - a) / n }'; }

# Through redoubt: the workers, and redis-server's side of their connections.
W_BEFORE=$(rss "${WPIDS[@]}")
W_BEFORE_ANON=$(rss_anon "${WPIDS[@]}")
R_BEFORE=$(rss "$RPID")
WATCH=("${WPIDS[@]}") WATCH2=$RPID
sessions redoubt "$PORT" "$DIR/alice"
W_OPEN=$OPEN_KB W_AFTER=$AFTER_KB W_AFTER_ANON=$AFTER_ANON_KB R_OPEN=$OPEN2_KB N_RD=$NOPEN RD_SECS=$OPEN_SECS
R_AFTER_RD=$(rss "$RPID")

# Straight to (the other) redis-server.
D_BEFORE=$(rss "$DPID")
WATCH=("$DPID") WATCH2=
sessions direct "$DPORT" "$DIR/direct"
D_OPEN=$OPEN_KB D_AFTER=$AFTER_KB N_D=$NOPEN D_SECS=$OPEN_SECS

W_PER=$(per "$W_BEFORE" "$W_OPEN" "$N_RD")
D_PER=$(per "$D_BEFORE" "$D_OPEN" "$N_D")
echo "redoubt idle sessions: $N sessions (mutual TLS, AUTH, idle), worker_processes = $WORKERS, $(nproc 2>/dev/null || echo '?') CPUs"
echo "$("$BIN" -v 2>&1 | head -n 1); redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') ($(redis-server --version | sed -n 's/.*malloc=\([^ ]*\).*/\1/p')), TLS; $(openssl version | cut -d' ' -f1-2)"
echo
printf '%-34s %10s %12s %12s %12s %12s\n' "" opened "RSS before" "RSS open" "per session" "after close"
printf '%-34s %10s %12s %12s %9s kB %12s\n' "redoubt workers (sum)" "$N_RD" "$(kb "$W_BEFORE")" "$(kb "$W_OPEN")" "$W_PER" "$(kb "$W_AFTER")"
printf '%-34s %10s %12s %12s %9s kB %12s\n' "redis-server (redoubt's conns)" "$N_RD" "$(kb "$R_BEFORE")" "$(kb "$R_OPEN")" "$(per "$R_BEFORE" "$R_OPEN" "$N_RD")" "$(kb "$R_AFTER_RD")"
printf '%-34s %10s %12s %12s %9s kB %12s\n' "redis-server (direct clients)" "$N_D" "$(kb "$D_BEFORE")" "$(kb "$D_OPEN")" "$D_PER" "$(kb "$D_AFTER")"
echo
awk -v w="$W_PER" -v d="$D_PER" 'BEGIN { printf "per session, redoubt / direct redis-server connection: %.2f\n", (d > 0) ? w / d : 0 }'
awk -v b="$W_BEFORE" -v o="$W_OPEN" -v a="$W_AFTER" -v s="$SETTLE" 'BEGIN {
    printf "redoubt workers kept after close (%s s): %.1f MB of the %.1f MB the sessions took (%.0f%%)\n",
        s, (a - b) / 1024, (o - b) / 1024, (o > b) ? 100 * (a - b) / (o - b) : 0 }'
echo "redoubt workers' anonymous memory (heap) before and after: $(kb "$W_BEFORE_ANON"), $(kb "$W_AFTER_ANON")"
echo "opening took ${RD_SECS} s through redoubt, ${D_SECS} s direct"
if grep -qiE '\[(error|crit|alert|emerg)\]' "$DIR/redoubt.error.log" 2>/dev/null; then
    echo
    echo "redoubt's error log (tail):"
    grep -iE '\[(error|crit|alert|emerg)\]' "$DIR/redoubt.error.log" | tail -n 10
fi
