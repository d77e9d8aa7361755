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
# With -C, the same table for a Redis Cluster instead: a 6-node TLS-only
# cluster (3 masters, 3 replicas; tls-cluster, tls-replication,
# tls-auth-clients; certificates from redoubtctl and a users.acl with alice,
# "user default off" and a replicator user, as in quickstart.sh's demo) and
# redoubt in front of it with mutual TLS (alice's user certificate) and
# uri = "rediss://NODE-1?mode=cluster". "direct" is
#   redis-benchmark --cluster --tls (node 1's certificate) -p NODE-1
# and "redoubt" is redis-benchmark --tls (alice's certificate) --sni demo
# -p REDOUBT, both as --user alice and with random keys (-r KEYSPACE), so
# the keys spread over all slots. Every command must answer without error:
# a row whose run printed errors is marked "ERR" and the errors are shown.
#
# Usage: contrib/bench/bench.sh [-n REQUESTS] [-w WORKERS] [-c CLIENTS]
#                               [-r REPEATS] [-b PATH/TO/redoubt] [-a]
#                               [-C [-k KEYSPACE]]
#   -n  requests per test (default 200000)
#   -w  redoubt worker_processes: a number or "auto" (default auto)
#   -c  parallel clients (default 50)
#   -r  run each test R times and keep the best (default 1)
#   -b  the redoubt binary (default: $REDOUBT, else ./redoubt, else
#       build/check/redoubt or build/demo/redoubt under the source tree)
#   -a  also measure redoubt with auditing (args = full and none)
#   -C  Redis Cluster (needs redoubtctl next to the redoubt binary, or
#       $REDOUBTCTL, and openssl); not with -a
#   -k  with -C: random keys from a keyspace of K (default 100000)
set -u
set -o pipefail

REQUESTS=200000
WORKERS=auto
CLIENTS=50
REPEATS=1
BIN=${REDOUBT:-}
AUDIT=0
CLUSTER=0
KEYSPACE=100000
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=contrib/tls-cluster.sh
. "$ROOT/contrib/tls-cluster.sh"

usage() { sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

while getopts "n:w:c:r:b:aCk:h" opt; do
    case $opt in
        n) REQUESTS=$OPTARG ;;
        w) WORKERS=$OPTARG ;;
        c) CLIENTS=$OPTARG ;;
        r) REPEATS=$OPTARG ;;
        b) BIN=$OPTARG ;;
        a) AUDIT=1 ;;
        C) CLUSTER=1 ;;
        k) KEYSPACE=$OPTARG ;;
        *) usage ;;
    esac
done
[[ $REQUESTS =~ ^[0-9]+$ ]] || { echo "bench.sh: -n needs a number" >&2; exit 2; }
[[ $WORKERS =~ ^([0-9]+|auto)$ ]] || { echo "bench.sh: -w needs a number or auto" >&2; exit 2; }
[[ $CLIENTS =~ ^[0-9]+$ ]] || { echo "bench.sh: -c needs a number" >&2; exit 2; }
[[ $REPEATS =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: -r needs a number" >&2; exit 2; }
[[ $KEYSPACE =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: -k needs a number" >&2; exit 2; }
[ "$CLUSTER" = 1 ] && [ "$AUDIT" = 1 ] && { echo "bench.sh: -a does not go with -C" >&2; exit 2; }

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
    trap - EXIT
    trap "" INT TERM              # a second Ctrl-C must not cut the cleanup short
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

# --- Redis Cluster (-C) ----------------------------------------------------
if [ "$CLUSTER" = 1 ]; then
    CTL=${REDOUBTCTL:-$(dirname "$BIN")/redoubtctl}
    [ -x "$CTL" ] || { echo "bench.sh: no redoubtctl at $CTL; set REDOUBTCTL" >&2; exit 1; }
    command -v openssl >/dev/null || { echo "bench.sh: openssl is not installed" >&2; exit 1; }

    base=$(tc_cluster_ports "") || exit 1
    PORT=$(tc_free_port "$base" $((base + 1)) $((base + 2)) $((base + 3)) $((base + 4)) $((base + 5)) \
                     $((base + 10000)) $((base + 10001)) $((base + 10002)) $((base + 10003)) \
                     $((base + 10004)) $((base + 10005)))
    tc_cluster_up "$DIR" "$CTL" "$base" || { echo "bench.sh: the Redis Cluster did not start" >&2; exit 1; }
    ports=("${TC_PORTS[@]}") nodes=("${TC_NODES[@]}") masters=("${TC_MASTERS[@]}") pw=$TC_PW
    # Straight to the nodes: node 1's certificate (signed by the db CA,
    # which the nodes trust), as alice.
    ntls=(--tls --cert "$DIR/certs/node-1.crt" --key "$DIR/certs/node-1.key" --cacert "$DIR/ca/db-ca.crt")
    ncli() { tc_cli "$@"; }

    cat > "$DIR/redoubt.conf" <<CONF
worker_processes = $wp;
pid_file = "$DIR/redoubt.pid";
worker_shutdown_timeout = "5s";
error_log = { path = "$DIR/redoubt.error.log"; level = "warn"; };
tls = { certificate = "$DIR/certs/redoubt.crt"; certificate_key = "$DIR/certs/redoubt.key";
        client_ca = "$DIR/ca/user-ca.crt"; };
upstream_tls = { ca_cert = "$DIR/ca/db-client-ca.crt"; ca_key = "$DIR/ca/db-client-ca.key";
                 server_ca = "$DIR/ca/db-ca.crt"; cert_ttl = "1h"; };
listen = ( { address = "127.0.0.1:$PORT"; database = "demo"; } );
databases = ( { name = "demo"; uri = "rediss://${nodes[0]}?mode=cluster"; labels = { env = "demo"; }; } );
roles = ( { name = "access";
            allow = { db_labels = { env = "demo"; };
                      db_users = [ "{{internal.db_users}}" ]; }; } );
CONF
    "$BIN" -t -c "$DIR/redoubt.conf" > "$DIR/redoubt-t.log" 2>&1 ||
        { cat "$DIR/redoubt-t.log" >&2; echo "bench.sh: the configuration does not pass redoubt -t" >&2; exit 1; }
    "$BIN" -g -c "$DIR/redoubt.conf" 2> "$DIR/redoubt.stderr" &
    pid=$!
    PIDS=("$pid" "${PIDS[@]}")
    rtls=(--tls --cert "$DIR/alice.crt" --key "$DIR/alice.key" --cacert "$DIR/ca/db-ca.crt" --sni demo)
    # Wait for redoubt with a first round trip as alice (a bare TCP probe
    # would only make it log a failed TLS handshake).
    out=
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        out=$(REDISCLI_AUTH=$pw redis-cli "${rtls[@]}" -p "$PORT" --user alice --no-auth-warning SET bench:hello world 2>&1)
        [ "$out" = OK ] && break
        sleep 0.1
    done
    if [ "$out" != OK ]; then
        echo "bench.sh: SET through redoubt as alice failed: $out" >&2
        cat "$DIR/redoubt.stderr" "$DIR/redoubt.error.log" >&2 2>/dev/null
        exit 1
    fi

    flush() { local p; for p in "${masters[@]}"; do ncli -p "$p" FLUSHALL >/dev/null 2>&1; done; }
    # crps NAME TEST PIPELINE REDIS-BENCHMARK-ARGS...: best requests/s over
    # REPEATS runs; lines other than the CSV (errors) go to $DIR/NAME.errors.
    crps() {
        local name=$1 t=$2 pl=$3 best=0 r i out
        shift 3
        for ((i = 0; i < REPEATS; i++)); do
            flush
            out=$DIR/run.out
            redis-benchmark "$@" -t "$t" -c "$CLIENTS" -n "$REQUESTS" -P "$pl" -r "$KEYSPACE" --csv > "$out" 2>&1
            # Not errors: the cluster's node list (--cluster) and the CONFIG
            # GET that redis-benchmark tries first (redoubt may refuse it).
            grep -v -e '^"' -e '^Cluster has [0-9]* master nodes' -e '^Master [0-9]*: ' \
                -e '^WARNING: Could not fetch server CONFIG' -e '^$' "$out" |
                sed "s/^/${t^^} -P $pl: /" >> "$DIR/$name.errors"
            r=$(awk -F, -v t="\"${t^^}\"" '$1 == t { gsub(/"/, "", $2); print $2 }' "$out")
            [ -n "$r" ] || { echo "bench.sh: redis-benchmark $t -P $pl ($name) failed (its output is below)" >&2; return 1; }
            best=$(awk -v a="$best" -v b="$r" 'BEGIN { print (b > a) ? b : a }')
        done
        echo "$best"
    }
    : > "$DIR/direct.errors"
    : > "$DIR/redoubt.errors"

    ncpu=$(nproc 2>/dev/null || echo '?')
    echo "redoubt bench, Redis Cluster: $REQUESTS requests, $CLIENTS clients, keyspace $KEYSPACE, worker_processes = $WORKERS, $ncpu CPUs, best of $REPEATS"
    echo "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p'): 6 nodes (TLS) on 127.0.0.1:${ports[0]}-${ports[5]}, masters ${masters[*]}; $("$BIN" -v 2>&1 | head -n 1) (TLS) on 127.0.0.1:$PORT"
    echo
    printf '%-6s %8s %16s %16s %8s\n' test pipeline "direct req/s" "redoubt req/s" ratio
    num() { if [ -n "$1" ]; then printf '%.0f' "$1"; else printf failed; fi; }
    status=0
    for p in 1 16; do
        for t in set get; do
            de=$(wc -l < "$DIR/direct.errors") ge=$(wc -l < "$DIR/redoubt.errors")
            d=$(crps direct "$t" "$p" --cluster "${ntls[@]}" -h 127.0.0.1 -p "${ports[0]}" --user alice -a "$pw") || d=
            g=$(crps redoubt "$t" "$p" "${rtls[@]}" -h 127.0.0.1 -p "$PORT" --user alice -a "$pw") || g=
            mark=
            [ "$(wc -l < "$DIR/direct.errors")" -gt "$de" ] && mark="$mark direct:ERR"
            [ "$(wc -l < "$DIR/redoubt.errors")" -gt "$ge" ] && mark="$mark redoubt:ERR"
            [ -n "$mark" ] && status=1
            if [ -n "$d" ] && [ -n "$g" ]; then
                printf '%-6s %8s %16.0f %16.0f %8s%s\n' "${t^^}" "$p" "$d" "$g" "$(ratio "$d" "$g")" "$mark"
            else
                status=1
                printf '%-6s %8s %16s %16s %8s%s\n' "${t^^}" "$p" "$(num "$d")" "$(num "$g")" - "$mark"
            fi
        done
    done
    for n in direct redoubt; do
        if [ -s "$DIR/$n.errors" ]; then
            echo
            echo "errors from redis-benchmark ($n; first 20 of $(wc -l < "$DIR/$n.errors") lines):"
            head -n 20 "$DIR/$n.errors"
        fi
    done
    if grep -qiE 'error|crit|alert|emerg' "$DIR/redoubt.error.log" 2>/dev/null || [ "$status" != 0 ]; then
        echo
        echo "redoubt's error log (tail):"
        tail -n 20 "$DIR/redoubt.error.log" 2>/dev/null
        tail -n 5 "$DIR/redoubt.stderr" 2>/dev/null
    fi
    exit "$status"
fi

RPORT=$(tc_free_port)
PORT=$(tc_free_port "$RPORT")

redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --dir "$DIR" --logfile "$DIR/redis.log" &
PIDS+=("$!")
wait_port "$RPORT" || { echo "bench.sh: redis-server did not start" >&2; cat "$DIR/redis.log" >&2; exit 1; }

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
    FPORT=$(tc_free_port "$PORT")
    NPORT=$(tc_free_port "$FPORT")
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
