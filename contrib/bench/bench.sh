#!/bin/bash
# bench.sh - requests per second straight to Redis and through redoubt, in
# one run on this machine.
#
# Starts a redis-server and a redoubt in front of it on free loopback ports
# (in a temp dir, all stopped again on exit), runs
#   redis-benchmark -q -t set,get -c CLIENTS -n REQUESTS -P 1   and -P 16
# first against Redis and then through redoubt, and prints a table with the
# ratio redoubt/direct. Both servers and the benchmark share the machine's
# cores, so the ratio is the figure to compare, not the absolute numbers.
# With -a, two more redoubts run the same rows with an audit log (in the
# temp dir, emptied after each run): audit.args = "full" and "none"; their
# ratios are against redoubt without audit (the cost of auditing).
#
# Usage: contrib/bench/bench.sh [-n REQUESTS] [-w WORKERS] [-c CLIENTS]
#                               [-r REPEATS] [-b PATH/TO/redoubt] [-a]
#   -n  requests per test (default 200000)
#   -w  redoubt worker_processes: a number or "auto" (default auto)
#   -c  parallel clients (default 50)
#   -r  run each test R times and keep the best (default 1)
#   -b  the redoubt binary (default: $REDOUBT, else ./redoubt, else
#       build/check/redoubt or build/demo/redoubt under the source tree)
#   -a  also measure redoubt with auditing (args = full and none)
set -u
set -o pipefail

REQUESTS=200000
WORKERS=auto
CLIENTS=50
REPEATS=1
BIN=${REDOUBT:-}
AUDIT=0
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

usage() { sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

while getopts "n:w:c:r:b:ah" opt; do
    case $opt in
        n) REQUESTS=$OPTARG ;;
        w) WORKERS=$OPTARG ;;
        c) CLIENTS=$OPTARG ;;
        r) REPEATS=$OPTARG ;;
        b) BIN=$OPTARG ;;
        a) AUDIT=1 ;;
        *) usage ;;
    esac
done
[[ $REQUESTS =~ ^[0-9]+$ ]] || { echo "bench.sh: -n needs a number" >&2; exit 2; }
[[ $WORKERS =~ ^([0-9]+|auto)$ ]] || { echo "bench.sh: -w needs a number or auto" >&2; exit 2; }
[[ $CLIENTS =~ ^[0-9]+$ ]] || { echo "bench.sh: -c needs a number" >&2; exit 2; }
[[ $REPEATS =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: -r needs a number" >&2; exit 2; }

if [ -z "$BIN" ]; then
    for b in ./redoubt "$ROOT/build/check/redoubt" "$ROOT/build/demo/redoubt" "$ROOT/redoubt"; do
        [ -x "$b" ] && { BIN=$b; break; }
    done
fi
if [ -z "$BIN" ] || [ ! -x "$BIN" ]; then
    echo "bench.sh: no redoubt binary found; build it or pass -b PATH" >&2
    exit 1
fi
for c in redis-server redis-cli redis-benchmark; do
    command -v "$c" >/dev/null || { echo "bench.sh: $c is not installed (apt-get install redis-server redis-tools)" >&2; exit 1; }
done

DIR=$(mktemp -d "${TMPDIR:-/tmp}/redoubt-bench.XXXXXX")
PIDS=()
# shellcheck disable=SC2317 # called from the trap
cleanup() {
    local p
    trap - EXIT INT TERM
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_free() {
    if command -v python3 >/dev/null; then
        python3 -c 'import socket, sys
s = socket.socket()
try: s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError: sys.exit(1)' "$1"
    else
        ! { exec 9<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null
    fi
}
free_port() {
    local p i
    for ((i = 0; i < 200; i++)); do
        p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 12000 ))
        [ "$p" = "${1:-}" ] && continue
        port_free "$p" && { echo "$p"; return 0; }
    done
    echo "bench.sh: no free port" >&2
    exit 1
}
wait_port() {
    local i
    for ((i = 0; i < 300; i++)); do
        { exec 9<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null && { exec 9>&-; return 0; }
        sleep 0.05
    done
    return 1
}

RPORT=$(free_port)
PORT=$(free_port "$RPORT")

redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --dir "$DIR" --logfile "$DIR/redis.log" &
PIDS+=("$!")
wait_port "$RPORT" || { echo "bench.sh: redis-server did not start" >&2; cat "$DIR/redis.log" >&2; exit 1; }

if [ "$WORKERS" = auto ]; then wp='"auto"'; else wp=$WORKERS; fi
# start_redoubt NAME PORT [EXTRA-CONF]: one redoubt in front of the redis.
start_redoubt() {
    cat > "$DIR/$1.conf" <<EOF
worker_processes = $wp;
pid_file = "$DIR/$1.pid";
worker_shutdown_timeout = "5s";
error_log = { path = "$DIR/$1.error.log"; level = "warn"; };
listen = ( { address = "127.0.0.1:$2"; database = "bench"; tls = false; } );
databases = ( { name = "bench"; uri = "redis://127.0.0.1:$RPORT"; } );
${3:-}
EOF
    "$BIN" -g -c "$DIR/$1.conf" 2> "$DIR/$1.stderr" &
    PIDS+=("$!")
    wait_port "$2" || { echo "bench.sh: redoubt ($1) did not start" >&2; cat "$DIR/$1.stderr" "$DIR/$1.error.log" >&2 2>/dev/null; exit 1; }
    [ "$(redis-cli -h 127.0.0.1 -p "$2" PING 2>&1)" = PONG ] ||
        { echo "bench.sh: PING through redoubt ($1) failed" >&2; cat "$DIR/$1.error.log" >&2; exit 1; }
}
start_redoubt redoubt "$PORT"
if [ "$AUDIT" = 1 ]; then
    FPORT=$(free_port "$PORT")
    NPORT=$(free_port "$FPORT")
    start_redoubt audit-full "$FPORT" \
        "audit = { path = \"$DIR/audit-full.log\"; args = \"full\"; };"
    start_redoubt audit-none "$NPORT" \
        "audit = { path = \"$DIR/audit-none.log\"; args = \"none\"; };"
fi

# rps PORT TEST PIPELINE: best requests/s over REPEATS runs.
rps() {
    local best=0 r i
    for ((i = 0; i < REPEATS; i++)); do
        r=$(redis-benchmark -h 127.0.0.1 -p "$1" -t "$2" -c "$CLIENTS" -n "$REQUESTS" -P "$3" --csv 2>/dev/null |
            awk -F, -v t="\"${2^^}\"" '$1 == t { gsub(/"/, "", $2); print $2 }')
        [ -n "$r" ] || { echo "bench.sh: redis-benchmark $2 -P $3 on port $1 failed" >&2; return 1; }
        # Audit logs only grow: keep the temp dir small.
        for f in "$DIR"/audit-*.log; do [ -f "$f" ] && : > "$f"; done
        best=$(awk -v a="$best" -v b="$r" 'BEGIN { print (b > a) ? b : a }')
    done
    echo "$best"
}

ncpu=$(nproc 2>/dev/null || echo '?')
echo "redoubt bench: $REQUESTS requests, $CLIENTS clients, worker_processes = $WORKERS, $ncpu CPUs, best of $REPEATS"
echo "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on 127.0.0.1:$RPORT, $("$BIN" -v 2>&1 | head -n 1) on 127.0.0.1:$PORT"
echo
ratio() { awk -v d="$1" -v g="$2" 'BEGIN { printf "%.2f", (d > 0) ? g / d : 0 }'; }
if [ "$AUDIT" = 1 ]; then
    printf '%-6s %8s %14s %14s %6s %14s %6s %14s %6s\n' test pipeline "direct req/s" \
        "redoubt req/s" ratio "audit=full" /rd "audit=none" /rd
else
    printf '%-6s %8s %16s %16s %8s\n' test pipeline "direct req/s" "redoubt req/s" ratio
fi
status=0
for p in 1 16; do
    for t in set get; do
        redis-cli -h 127.0.0.1 -p "$RPORT" FLUSHALL >/dev/null
        d=$(rps "$RPORT" "$t" "$p") || { status=1; continue; }
        redis-cli -h 127.0.0.1 -p "$RPORT" FLUSHALL >/dev/null
        g=$(rps "$PORT" "$t" "$p") || { status=1; continue; }
        if [ "$AUDIT" = 1 ]; then
            redis-cli -h 127.0.0.1 -p "$RPORT" FLUSHALL >/dev/null
            f=$(rps "$FPORT" "$t" "$p") || { status=1; continue; }
            redis-cli -h 127.0.0.1 -p "$RPORT" FLUSHALL >/dev/null
            n=$(rps "$NPORT" "$t" "$p") || { status=1; continue; }
            printf '%-6s %8s %14.0f %14.0f %6s %14.0f %6s %14.0f %6s\n' "${t^^}" "$p" \
                "$d" "$g" "$(ratio "$d" "$g")" "$f" "$(ratio "$g" "$f")" "$n" "$(ratio "$g" "$n")"
        else
            printf '%-6s %8s %16.0f %16.0f %8s\n' "${t^^}" "$p" "$d" "$g" "$(ratio "$d" "$g")"
        fi
    done
done
for f in "$DIR"/*error.log; do
    if grep -qiE 'error|crit' "$f" 2>/dev/null; then
        echo
        echo "redoubt's error log ($(basename "$f")):"
        tail -n 20 "$f"
    fi
done
exit "$status"
