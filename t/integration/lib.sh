# shellcheck shell=bash
#
# lib.sh - shared code for redoubt's integration tests.
#
# Sourced by every t/integration/t_*.sh. It gives each test a private
# directory, free loopback ports, redis-server and redoubt processes that
# are always stopped again (also on failure and on signals), and small
# helpers to talk RESP from bash.
#
# Environment (set by "make check" through AM_TESTS_ENVIRONMENT):
#   REDOUBT      the redoubt binary under test
#   RD_SRCDIR    top of the source tree
#   RD_BUILDDIR  top of the build tree (temp dirs go to $RD_BUILDDIR/t/tmp)
# Run one test by hand from a build dir:
#   REDOUBT=$PWD/redoubt RD_SRCDIR=/path/to/src RD_BUILDDIR=$PWD \
#     bash /path/to/src/t/integration/t_basic.sh
# RD_KEEP_TMP=1 keeps the temp dir of a passing test too.
#
# Exit status of a test: 0 pass, 77 skip, anything else fail.

set -u
set -o pipefail
export LC_ALL=C

RD_TEST=$(basename "$0" .sh)
: "${RD_BUILDDIR:=$PWD}"
: "${RD_SRCDIR:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${REDOUBT:=$RD_BUILDDIR/redoubt}"
RD_WORKERS=${RD_WORKERS:-2}

RD_PIDS=()              # every process a test started (cleanup kills them)
RD_MASTERS=()           # redoubt masters among them (their workers too)
declare -A RD_REDIS_PID=() RD_REDIS_PORT=()
RD_PASSED=0
T=
RD_PORTS_FILE=

# --- reporting ---------------------------------------------------------

note() { printf '# %s\n' "$*" >&2; }

fail() {
    printf 'FAIL: %s: %s\n' "$RD_TEST" "$*" >&2
    exit 1
}

skip() {
    printf 'SKIP: %s: %s\n' "$RD_TEST" "$*" >&2
    exit 77
}

pass() {
    RD_PASSED=1
    printf 'PASS: %s\n' "$RD_TEST" >&2
    exit 0
}

# assert_eq EXPECTED GOT WHAT
assert_eq() {
    [ "$1" == "$2" ] && return 0
    fail "$3: expected '$(printf '%q' "$1")', got '$(printf '%q' "$2")'"
}

# assert_prefix PREFIX GOT WHAT
assert_prefix() {
    [[ $2 == "$1"* ]] && return 0
    fail "$3: expected a reply starting with '$(printf '%q' "$1")', got '$(printf '%q' "$2")'"
}

# assert_contains NEEDLE HAYSTACK WHAT
assert_contains() {
    [[ $2 == *"$1"* ]] && return 0
    fail "$3: expected '$(printf '%q' "$1")' in '$(printf '%q' "$2")'"
}

need() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || skip "$c is not installed"
    done
}

# --- time and polling --------------------------------------------------

now_ms() {
    local t=${EPOCHREALTIME/./}
    echo $((t / 1000))
}

# wait_for SECONDS COMMAND...: run COMMAND until it succeeds, at most
# SECONDS. Returns 1 on timeout.
wait_for() {
    local secs=$1; shift
    local deadline=$(( $(now_ms) + ${secs%.*} * 1000 ))
    local delay=0.02
    while :; do
        "$@" && return 0
        [ "$(now_ms)" -ge "$deadline" ] && return 1
        sleep "$delay"
        case $delay in 0.02) delay=0.05 ;; 0.05) delay=0.1 ;; esac
    done
}

alive() { kill -0 "$1" 2>/dev/null; }
dead() { ! kill -0 "$1" 2>/dev/null; }

# --- processes ---------------------------------------------------------

# rd_children PID: pids of PID's live (non-zombie) children, one a line.
rd_children() {
    local want=$1 f line rest state ppid pid
    for f in /proc/[0-9]*/stat; do
        line=
        { IFS= read -r line < "$f"; } 2>/dev/null || continue
        rest=${line##*) }
        read -r state ppid _ <<<"$rest"
        [ "$ppid" = "$want" ] || continue
        [ "$state" = Z ] && continue
        pid=${f#/proc/}; pid=${pid%/stat}
        echo "$pid"
    done
}

# rd_workers [MASTER]: the redoubt master's workers, sorted.
rd_workers() { rd_children "${1:-$RD_PID}" | rd__not_status | sort -n; }

rd_count_workers() { rd_workers "$@" | wc -l; }

# rss_kb PID: resident set size in KiB.
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }

# stop_pid PID [SIGNAL]: signal a child of ours and reap it, escalating
# to SIGKILL after 10 s. Sets RD_LAST_RC to its exit status.
stop_pid() {
    local pid=$1 sig=${2:-TERM} err
    RD_LAST_RC=
    # bash reports children killed by a signal ("Killed ...") on stderr
    # whenever it reaps them; that is expected here, so keep it quiet.
    exec {err}>&2 2>/dev/null
    alive "$pid" && kill "-$sig" "$pid"
    if ! wait_for 10 dead "$pid"; then
        echo "# pid $pid did not stop on SIG$sig in 10 s; killing it" >&"$err"
        kill -KILL "$pid"
    fi
    wait "$pid"
    # shellcheck disable=SC2034 # read by the tests
    RD_LAST_RC=$?
    exec 2>&"$err" {err}>&-
}

# --- temp dir and ports ------------------------------------------------

rd__setup_tmp() {
    mkdir -p "$RD_BUILDDIR/t/tmp" || { echo "FAIL: $RD_TEST: cannot create $RD_BUILDDIR/t/tmp" >&2; exit 1; }
    T=$(mktemp -d "$RD_BUILDDIR/t/tmp/$RD_TEST.XXXX") || { echo "FAIL: $RD_TEST: mktemp" >&2; exit 1; }
    RD_PORTS_FILE=$T/ports
    : > "$RD_PORTS_FILE"
}

# Ports are reserved across concurrently running tests (make -j) with an
# atomic mkdir, then checked by binding them. They come from below the
# kernel's ephemeral range so outgoing connections cannot take them.
RD_PORTDIR=${TMPDIR:-/tmp}/redoubt-test-ports-$(id -u)

port_bindable() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)' "$1" 2>/dev/null
    else
        # Nobody answers there: good enough without python3.
        ! { exec 9<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null
    fi
}

# free_port: print a free loopback port, reserved for this test.
free_port() {
    local i p
    mkdir -p "$RD_PORTDIR" 2>/dev/null
    for ((i = 0; i < 500; i++)); do
        p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 12000 ))
        mkdir "$RD_PORTDIR/$p" 2>/dev/null || continue
        if port_bindable "$p"; then
            echo "$p" >> "$RD_PORTS_FILE"
            echo "$p"
            return 0
        fi
        rmdir "$RD_PORTDIR/$p" 2>/dev/null
    done
    return 1
}

# --- redis-server ------------------------------------------------------

redis_ping() {
    [ "$(redis-cli -h 127.0.0.1 -p "$1" PING 2>/dev/null)" = PONG ]
}

# redis_start NAME [PORT]: start a redis-server, wait until it answers
# PING. Its port is in RD_REDIS_PORT[NAME] (a new free one unless given).
redis_start() {
    local name=$1 port=${2:-${RD_REDIS_PORT[$1]:-}} dir pid
    if [ -z "$port" ]; then
        port=$(free_port) || fail "no free port for redis $name"
    fi
    dir=$T/redis-$name
    mkdir -p "$dir"
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize no --dir "$dir" --logfile "$dir/redis.log" &
    pid=$!
    RD_PIDS+=("$pid")
    RD_REDIS_PID[$name]=$pid
    RD_REDIS_PORT[$name]=$port
    local deadline=$(( $(now_ms) + 10000 ))
    until redis_ping "$port"; do
        alive "$pid" || { tail -n 20 "$dir/redis.log" >&2; fail "redis-server $name exited at start (port $port)"; }
        [ "$(now_ms)" -ge "$deadline" ] && fail "redis-server $name does not answer PING on port $port"
        sleep 0.02
    done
}

# redis_stop NAME [SIGNAL]: stop it (TERM by default; KILL to crash it).
redis_stop() {
    local pid=${RD_REDIS_PID[$1]}
    stop_pid "$pid" "${2:-TERM}"
}

# dcli NAME ARGS...: redis-cli straight to redis NAME.
dcli() {
    local name=$1; shift
    redis-cli -h 127.0.0.1 -p "${RD_REDIS_PORT[$name]}" "$@"
}

# --- redoubt -----------------------------------------------------------

# rd_conf DBPORT [EXTRA]: print a test configuration (listener on RD_PORT,
# database "db" at 127.0.0.1:DBPORT); EXTRA is appended as is.
rd_conf() {
    cat <<EOF
# redoubt test configuration for $RD_TEST
worker_processes = $RD_WORKERS;
pid_file = "$T/redoubt.pid";
worker_shutdown_timeout = "${RD_SHUTDOWN_TIMEOUT:-10s}";
error_log = { path = "$T/error.log"; level = "${RD_LOG_LEVEL:-debug}"; };
listen = ( { address = "127.0.0.1:$RD_PORT"; database = "db"; tls = false; } );
databases = ( { name = "db"; uri = "redis://127.0.0.1:$1"; connect_timeout = "2s"; } );
${2:-}
EOF
}

rd_port_open() { { exec 9<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null && exec 9>&-; }

# rd_start [CONF]: start "redoubt -g -c CONF" (default $T/redoubt.conf) in
# the background and wait until its port accepts connections. RD_PID is
# the master's pid.
RD_START_N=0
rd_start() {
    local conf=${1:-$T/redoubt.conf}
    RD_START_N=$((RD_START_N + 1))
    RD_STDERR=$T/redoubt.$RD_START_N.stderr
    "$REDOUBT" -g -c "$conf" > "$T/redoubt.$RD_START_N.stdout" 2> "$RD_STDERR" &
    RD_PID=$!
    RD_PIDS+=("$RD_PID")
    RD_MASTERS+=("$RD_PID")
    local deadline=$(( $(now_ms) + 15000 ))
    until rd_port_open "$RD_PORT"; do
        if dead "$RD_PID"; then
            wait "$RD_PID"
            fail "redoubt exited at start with status $? (config $conf)"
        fi
        [ "$(now_ms)" -ge "$deadline" ] && fail "redoubt does not accept connections on port $RD_PORT"
        sleep 0.02
    done
    # The workers are forked after the listeners are bound; wait for them.
    wait_for 10 rd_has_workers "$RD_WORKERS" || fail "redoubt did not start $RD_WORKERS workers (has: $(rd_workers | tr '\n' ' '))"
}

rd_has_workers() { [ "$(rd_count_workers "$RD_PID")" -eq "$1" ]; }

# rd_stop [SIGNAL]: stop the current master (TERM by default) and wait.
rd_stop() { stop_pid "$RD_PID" "${1:-TERM}"; }

# rcli ARGS...: redis-cli through redoubt.
rcli() { redis-cli -h 127.0.0.1 -p "$RD_PORT" "$@"; }

# --- raw RESP sessions from bash ---------------------------------------
#
#   sess_open S            open a connection to redoubt, fd in $S
#   sess_send "$S" ARGS... send one command as a RESP array
#   sess_read "$S" [SECS]  read one reply into REPLY:
#                          "+OK", "-ERR ...", ":1", "(nil)", a bulk's text,
#                          or "*N" and the elements, one a line
#                          returns 0, 1 on EOF (connection closed), 2 on
#                          timeout
#   sess_cmd "$S" ARGS...  send and read
#   sess_close "$S"
# Bulk replies are read as text (no NUL bytes).

sess_open() {
    local __port=${2:-$RD_PORT} __fd
    { exec {__fd}<>"/dev/tcp/127.0.0.1/$__port"; } 2>/dev/null || return 1
    printf -v "$1" '%s' "$__fd"
}

resp_encode() {
    local a out="*$#"$'\r\n'
    for a in "$@"; do
        out+="\$${#a}"$'\r\n'"$a"$'\r\n'
    done
    printf '%s' "$out"
}

sess_send() {
    local fd=$1; shift
    resp_encode "$@" 2>/dev/null 1>&"$fd"
}

sess_send_raw() { printf '%s' "$2" 2>/dev/null 1>&"$1"; }

sess_read() {
    local fd=$1 t=${2:-10} line n i acc rc data
    REPLY=
    IFS= read -r -t "$t" -u "$fd" line
    rc=$?
    [ "$rc" -gt 128 ] && return 2
    [ "$rc" -ne 0 ] && { REPLY=$line; return 1; }
    line=${line%$'\r'}
    case $line in
        '$-1'|'*-1') REPLY='(nil)' ;;
        '$'*)
            n=${line#\$}
            IFS= read -r -t "$t" -N $((n + 2)) -u "$fd" data
            rc=$?
            [ "$rc" -gt 128 ] && return 2
            [ "$rc" -ne 0 ] && return 1
            REPLY=${data%$'\r\n'}
            ;;
        '*'*)
            n=${line#\*}
            acc="*$n"
            for ((i = 0; i < n; i++)); do
                sess_read "$fd" "$t" || return
                acc+=$'\n'"$REPLY"
            done
            REPLY=$acc
            ;;
        *) REPLY=$line ;;
    esac
    return 0
}

sess_cmd() {
    local fd=$1
    sess_send "$@" || return 1
    sess_read "$fd"
}

# sess_expect S EXPECTED ARGS...: one command, its reply must be EXPECTED.
sess_expect() {
    local fd=$1 want=$2 rc; shift 2
    sess_cmd "$fd" "$@"; rc=$?
    case $rc in
        1) fail "$* on session fd $fd: connection closed (expected '$want')" ;;
        2) fail "$* on session fd $fd: no reply within 10 s (expected '$want')" ;;
    esac
    assert_eq "$want" "$REPLY" "reply to '$*'"
}

# sess_wait_closed S [SECS]: the peer closes the connection (EOF or reset)
# within SECS, after any replies still in flight.
sess_wait_closed() {
    local fd=$1 t=${2:-5} rc deadline=$(( $(now_ms) + ${2:-5} * 1000 ))
    while :; do
        IFS= read -r -t "$t" -u "$fd" _ 2>/dev/null
        rc=$?
        [ "$rc" -gt 128 ] && return 1
        [ "$rc" -ne 0 ] && return 0
        [ "$(now_ms)" -ge "$deadline" ] && return 1
    done
}

sess_close() { local fd=$1; exec {fd}>&-; }

# raw_exchange PORT INFILE OUTFILE [SECS]: connect, write INFILE while
# reading everything the server sends into OUTFILE until it closes the
# connection. Returns 124 if it did not close within SECS (default 30).
raw_exchange() {
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout "${4:-30}" bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 3
        cat "$1" >&3 2>/dev/null &
        cat <&3 > "$2" 2>/dev/null
        wait' "$1" "$2" "$3"
}

# raw_exchange_n PORT INFILE OUTFILE NBYTES [SECS]: like raw_exchange but
# stop after NBYTES bytes of replies (the connection need not close).
raw_exchange_n() {
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout "${5:-30}" bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 3
        cat "$1" >&3 2>/dev/null &
        head -c "$3" <&3 > "$2"
        kill $! 2>/dev/null
        exit 0' "$1" "$2" "$3" "$4"
}

# --- TLS -----------------------------------------------------------------
#
# Helpers for the TLS tests; they need openssl and, for certificates,
# redoubtctl ($REDOUBTCTL).
#
#   redis_start_tls NAME CERT KEY CA [ARGS...]
#                          a TLS-only redis-server (port 0, tls-port) that
#                          requires client certificates chaining to CA
#   tls_cli PORT PREFIX CACERT ARGS...
#                          redis-cli over TLS to PORT with the client
#                          certificate PREFIX.crt/PREFIX.key ("-": none)
#   ossl_cert PREFIX CAPREFIX SUBJECT [EXTENSION...]
#                          an ECDSA P-256 key and a certificate made with the
#                          openssl CLI, signed by CAPREFIX.crt/CAPREFIX.key,
#                          valid for a day; SUBJECT may use rdRole, rdDbUser,
#                          rdDbName, rdRouteDb, rdRouteDbUser, e.g.
#                          "/CN=alice/rdRole=access"; the extensions default
#                          to a client certificate's
#   cert_serial FILE       the serial number of a PEM certificate
#   tls_served_serial PORT PREFIX CACERT [S_CLIENT-ARGS...]
#                          the serial of the certificate a server presents
#
# Held-open TLS sessions (openssl s_client, fed from a fifo):
#   tls_sess_open NAME PORT PREFIX CACERT [S_CLIENT-ARGS...]
#   tls_sess_send NAME ARGS...   send one command as a RESP array
#   tls_sess_echo NAME [SECS]    ECHO a fresh token; 0 when it came back
#   tls_sess_closed NAME         the server closed the session
#   tls_sess_output NAME         what the server sent so far
#   tls_sess_close NAME          stop it

: "${REDOUBTCTL:=$RD_BUILDDIR/redoubtctl}"

# ctl ARGS...: run redoubtctl quietly; a failure fails the test.
ctl() {
    local out
    out=$("$REDOUBTCTL" "$@" 2>&1) || fail "redoubtctl $*: $out"
}

need_tls() {
    need openssl
    [ -x "$REDOUBTCTL" ] || fail "redoubtctl not found at $REDOUBTCTL (is it built?)"
}

redis_start_tls() {
    local name=$1 cert=$2 key=$3 ca=$4 port dir pid logsize
    shift 4
    port=${RD_REDIS_PORT[$name]:-}
    if [ -z "$port" ]; then
        port=$(free_port) || fail "no free port for redis $name"
    fi
    dir=$T/redis-$name
    mkdir -p "$dir"
    logsize=0
    [ -f "$dir/redis.log" ] && logsize=$(wc -c < "$dir/redis.log")
    redis-server --port 0 --tls-port "$port" --bind 127.0.0.1 --save '' \
        --appendonly no --daemonize no --dir "$dir" --logfile "$dir/redis.log" \
        --tls-cert-file "$cert" --tls-key-file "$key" \
        --tls-ca-cert-file "$ca" --tls-auth-clients yes "$@" &
    pid=$!
    RD_PIDS+=("$pid")
    RD_REDIS_PID[$name]=$pid
    RD_REDIS_PORT[$name]=$port
    # A plain TCP probe would only make redis log TLS errors: wait for
    # its own word instead.
    local deadline=$(( $(now_ms) + 10000 ))
    until tail -c +$((logsize + 1)) "$dir/redis.log" 2>/dev/null | grep -q 'Ready to accept connections'; do
        alive "$pid" || { tail -n 20 "$dir/redis.log" >&2; fail "TLS redis-server $name exited at start (port $port)"; }
        [ "$(now_ms)" -ge "$deadline" ] && fail "TLS redis-server $name not ready on port $port"
        sleep 0.02
    done
}

tls_cli() {
    local port=$1 prefix=$2 ca=$3 certargs=()
    shift 3
    [ "$prefix" = - ] || certargs=(--cert "$prefix.crt" --key "$prefix.key")
    timeout 10 redis-cli --tls "${certargs[@]}" --cacert "$ca" \
        -h 127.0.0.1 -p "$port" "$@"
}

# user PREFIX ARGS...: a user certificate from the test's user CA ($CA),
# PREFIX.crt and PREFIX.key.
user() {
    local prefix=$1
    shift
    ctl cert user --ca-dir "$CA" --out "$prefix" "$@"
}

# rs PREFIX [REDIS-CLI-ARGS...]: one session through redoubt's TLS listener
# ($RD_PORT, server CA $CACERT), the commands from stdin, one a line;
# replies (errors too) one a line on stdout, less the empty lines
# redis-cli prints after an error.
rs() {
    local prefix=$1
    shift
    tls_cli "$RD_PORT" "$prefix" "$CACERT" "$@" 2>&1 | sed '/^$/d'
}

ossl_cert() {
    local prefix=$1 ca=$2 subj=$3 out
    shift 3
    local ext=("$@")
    [ "${#ext[@]}" -gt 0 ] || ext=("basicConstraints=critical,CA:FALSE"
                                   "keyUsage=critical,digitalSignature"
                                   "extendedKeyUsage=clientAuth")
    printf '%s\n' "${ext[@]}" > "$prefix.ext"
    # Names for the identity attributes (rd_identity.h), usable in SUBJECT.
    cat > "$prefix.cnf" <<CNF
oid_section = rd_oids
[rd_oids]
rdRole = 2.25.93414321743527038502281803679313111139.1
rdDbUser = 2.25.93414321743527038502281803679313111139.2
rdDbName = 2.25.93414321743527038502281803679313111139.3
rdRouteDb = 2.25.93414321743527038502281803679313111139.4
rdRouteDbUser = 2.25.93414321743527038502281803679313111139.5
[req]
distinguished_name = rd_dn
string_mask = utf8only
[rd_dn]
CNF
    out=$(openssl req -config "$prefix.cnf" -new \
              -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
              -nodes -keyout "$prefix.key" -out "$prefix.csr" \
              -subj "$subj" 2>&1) || fail "openssl req for $prefix: $out"
    out=$(openssl x509 -req -in "$prefix.csr" -CA "$ca.crt" -CAkey "$ca.key" \
              -set_serial "0x$(openssl rand -hex 8)" -days 1 -sha256 \
              -extfile "$prefix.ext" -out "$prefix.crt" 2>&1) ||
        fail "openssl x509 -req for $prefix: $out"
}

cert_serial() {
    openssl x509 -noout -serial -in "$1" 2>/dev/null | sed 's/^serial=//'
}

tls_served_serial() {
    local port=$1 prefix=$2 ca=$3
    shift 3
    timeout 10 openssl s_client -connect "127.0.0.1:$port" \
        -cert "$prefix.crt" -key "$prefix.key" -CAfile "$ca" "$@" \
        </dev/null 2>/dev/null |
        openssl x509 -noout -serial 2>/dev/null | sed 's/^serial=//'
}

declare -A RD_TLS_SESS_PID=() RD_TLS_SESS_FD=() RD_TLS_SESS_N=()

tls_sess_open() {
    local name=$1 port=$2 prefix=$3 ca=$4 fifo fd pid certargs=()
    shift 4
    [ "$prefix" = - ] || certargs=(-cert "$prefix.crt" -key "$prefix.key")
    fifo=$T/sess-$name.in
    rm -f "$fifo"
    mkfifo "$fifo" || fail "mkfifo $fifo"
    # Opened read-write so that neither side blocks on the open.
    exec {fd}<>"$fifo"
    openssl s_client -quiet -verify_return_error \
        -connect "127.0.0.1:$port" "${certargs[@]}" -CAfile "$ca" "$@" \
        < "$fifo" > "$T/sess-$name.out" 2> "$T/sess-$name.err" &
    pid=$!
    RD_PIDS+=("$pid")
    RD_TLS_SESS_PID[$name]=$pid
    RD_TLS_SESS_FD[$name]=$fd
    RD_TLS_SESS_N[$name]=0
}

tls_sess_send() {
    local name=$1
    shift
    resp_encode "$@" 2>/dev/null 1>&"${RD_TLS_SESS_FD[$name]}"
}

tls_sess_closed() { dead "${RD_TLS_SESS_PID[$1]}"; }

tls_sess_output() { cat "$T/sess-$1.out" 2>/dev/null; }

# tls__echoed TOKEN NAME: the token came back, or the session is gone.
tls__echoed() { grep -qF -- "$1" "$T/sess-$2.out" 2>/dev/null || tls_sess_closed "$2"; }

tls_sess_echo() {
    local name=$1 secs=${2:-10} tok
    RD_TLS_SESS_N[$name]=$(( ${RD_TLS_SESS_N[$name]} + 1 ))
    tok=$name-token-${RD_TLS_SESS_N[$name]}
    tls_sess_closed "$name" && return 1
    tls_sess_send "$name" ECHO "$tok" || return 1
    wait_for "$secs" tls__echoed "$tok" "$name" || return 1
    grep -qF -- "$tok" "$T/sess-$name.out"
}

tls_sess_close() {
    local name=$1 fd=${RD_TLS_SESS_FD[$1]}
    exec {fd}>&-
    alive "${RD_TLS_SESS_PID[$name]}" && stop_pid "${RD_TLS_SESS_PID[$name]}"
    return 0
}

# --- cleanup -----------------------------------------------------------

rd__show_logs() {
    local f
    for f in "$T"/*.log "$T"/*.log.* "$T"/redoubt.*.stderr "$T"/redoubt.*.stdout; do
        [ -s "$f" ] || continue
        printf '\n---- %s (last 150 lines) ----\n' "${f#"$T"/}" >&2
        tail -n 150 "$f" >&2
    done
    for f in "$T"/redis-*/redis.log; do
        [ -s "$f" ] || continue
        printf '\n---- %s (last 20 lines) ----\n' "${f#"$T"/}" >&2
        tail -n 20 "$f" >&2
    done
}

rd__cleanup() {
    local rc=$? pid m w workers=()
    trap - EXIT INT TERM HUP
    set +e
    # Workers first learn who they are, then masters stop them.
    for m in "${RD_MASTERS[@]}"; do
        alive "$m" || continue
        while read -r w; do [ -n "$w" ] && workers+=("$w"); done < <(rd_children "$m")
    done
    for m in "${RD_MASTERS[@]}"; do
        alive "$m" && kill -TERM "$m" 2>/dev/null
    done
    for pid in "${RD_PIDS[@]}"; do
        alive "$pid" && kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${RD_PIDS[@]}" "${workers[@]}"; do
        if ! wait_for 10 dead "$pid"; then
            echo "# pid $pid still running 10 s after SIGTERM; killing it" >&2
            kill -KILL "$pid" 2>/dev/null
        fi
        wait "$pid" 2>/dev/null
    done
    # Anything the sanitizers said fails the test.
    if [ -n "$T" ] && grep -lE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' \
            "$T"/redoubt.*.stderr >/dev/null 2>&1; then
        echo "FAIL: $RD_TEST: sanitizer report in redoubt's stderr" >&2
        if [ "$rc" -eq 0 ] || [ "$rc" -eq 77 ]; then rc=1; fi
    fi
    if [ "$rc" -eq 0 ] && [ "$RD_PASSED" -ne 1 ]; then
        echo "FAIL: $RD_TEST: test ended without reaching pass" >&2
        rc=1
    fi
    if [ -n "$T" ] && [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
        rd__show_logs
        echo "# files kept in $T" >&2
    fi
    if [ -n "$RD_PORTS_FILE" ] && [ -f "$RD_PORTS_FILE" ]; then
        while read -r pid; do rmdir "$RD_PORTDIR/$pid" 2>/dev/null; done < "$RD_PORTS_FILE"
    fi
    if [ -n "$T" ] && [ "$rc" -eq 0 ] && [ -z "${RD_KEEP_TMP:-}" ]; then
        rm -rf "$T"
    fi
    exit "$rc"
}

trap rd__cleanup EXIT
trap 'echo "FAIL: $RD_TEST: interrupted" >&2; exit 130' INT
trap 'echo "FAIL: $RD_TEST: terminated" >&2; exit 143' TERM
trap 'echo "FAIL: $RD_TEST: hangup" >&2; exit 129' HUP

# --- common start ------------------------------------------------------

# rd_init: checks and the temp dir; every test calls it first.
rd_init() {
    need redis-server redis-cli timeout
    [ -x "$REDOUBT" ] || fail "redoubt binary not found at $REDOUBT (is it built?)"
    rd__setup_tmp
    RD_PORT=$(free_port) || fail "no free port for redoubt"
}

# --- status server (t_status.sh) -----------------------------------------
#
# The status server (status.listen) is a child of the master like the
# workers, named "redoubt-status" in /proc/PID/comm; rd_workers leaves it
# out (rd__not_status), so the worker helpers above mean workers with or
# without it.
#
#   rd_status_pids [MASTER]  the master's status server(s), one a line
#   st_http PORT REQUEST     send REQUEST (printf format, \r\n written out)
#                            to the status port, print the whole response
#   st_get PORT PATH [METHOD]
#                            one request; ST_CODE is the status code,
#                            ST_BODY the body (trailing newlines removed)

rd__is_status() { [ "$(cat "/proc/$1/comm" 2>/dev/null)" = redoubt-status ]; }

# rd__not_status: the pids on stdin that are not a status server.
rd__not_status() {
    local p
    while read -r p; do
        rd__is_status "$p" || echo "$p"
    done
}

rd_status_pids() {
    local p
    for p in $(rd_children "${1:-$RD_PID}"); do
        rd__is_status "$p" && echo "$p"
    done
    return 0
}

st_http() {
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout 15 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 3
        printf "$1" >&3
        cat <&3' "$1" "$2"
}

st_get() {
    local out
    out=$(st_http "$1" "${3:-GET} $2 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"; echo x)
    out=${out%x}
    # shellcheck disable=SC2034 # read by the tests
    ST_CODE=$(head -n 1 <<<"$out" | awk '{ print $2 }')
    ST_BODY=${out#*$'\r\n\r\n'}
    ST_BODY=${ST_BODY%$'\n'}
}

# --- Redis Cluster (t_cluster.sh) ----------------------------------------
#
# A real 6-node Redis Cluster on loopback, TLS only, as in Teleport's
# "Database Access with Redis Cluster" guide and contrib/quickstart.sh:
# port 0 and a tls-port, tls-cluster and tls-replication, client
# certificates required (db-client CA) and node certificates from the db
# CA, all made with redoubtctl; users.acl with a SHA-256 password for
# alice, "user default off", a replicator user, and a "discovery" user
# that may only run CLUSTER SLOTS, CLUSTER SHARDS and PING. Three masters
# with a replica each; cluster-node-timeout 2 s so that a replica takes
# over within a few seconds of its master's death, and
# cluster-require-full-coverage no so that the other masters keep serving
# meanwhile.
#
#   cluster_start [ACL-LINE...]
#                          make the certificates, start the nodes, create
#                          the cluster, wait until it is ok with the
#                          replicas in sync; extra users.acl lines may be
#                          given (e.g. "user bob on >pw ~* +@all -cluster")
#   cluster_node_start I   (re)start node I (1..6) with its configuration;
#                          after redis_stop nodeI KILL it rejoins the
#                          cluster as a replica
#   ccli PORT ARGS...      redis-cli over TLS straight to the node on PORT,
#                          as alice (add -c to follow redirections; with no
#                          ARGS it runs the commands on stdin, one a line)
#   cluster_live_port      the port of a live node (queries go there)
#   cluster_nodes          CLUSTER NODES as a live node sees it
#   cluster_masters        the ports of the masters serving slots and not
#                          flagged failing, sorted
#   cluster_node_id PORT   the node's id
#   cluster_slot_owner SLOT  the port of the master of SLOT
#   cluster_wait_ok [SECS] [REPLICAS]
#                          until every live node says cluster_state:ok with
#                          all 16384 slots ok, and REPLICAS (default 3) live
#                          replicas have their master link up; 1 on timeout
#   cluster_flushall       FLUSHALL and SCRIPT FLUSH on every live master,
#                          directly
#   key_slot KEY [VAR]     the hash slot of KEY (CRC16 and hash tags, as
#                          Redis computes it), in bash; printed, or put in
#                          VAR
#   load_slots             SLOT_OWNER[slot] = its master's port, MASTERS
#                          the masters' ports (sorted), from CLUSTER NODES
#   owner KEY VAR          VAR = the port of KEY's master (load_slots first)
#   pick_keys PREFIX N     PICKED = N keys "PREFIX<j>" on each master
#   dset KEY VALUE...      SET straight on each key's master; dget KEY GET
#   asess VAR [PORT]       a session through redoubt that sent AUTH alice $PW
#   compare_stream WANT GOT WHAT  byte for byte, or fail showing where
#
# After cluster_start:
#   CLUSTER_PORTS CLUSTER_BUS_PORTS  arrays, node I at index I-1; node I is
#                          also redis "nodeI" (RD_REDIS_PORT, RD_REDIS_PID,
#                          redis_stop)
#   CLUSTER_PIDS           array of the nodes' pids as started (current:
#                          RD_REDIS_PID[nodeI])
#   CLUSTER_CA             the CA directory (redoubtctl ca init): upstream_tls
#                          for redoubt is CLUSTER_CA/db-client-ca.{crt,key}
#                          and server_ca CLUSTER_CA/db-ca.crt
#   CLUSTER_CLIENT         a client certificate prefix (.crt/.key) Redis
#                          accepts, from the db-client CA
#   CLUSTER_ALICE_PW CLUSTER_DISCOVERY_PW CLUSTER_REPL_PW  the passwords

CLUSTER_PORTS=()
CLUSTER_BUS_PORTS=()
CLUSTER_PIDS=()
CLUSTER_CA=
CLUSTER_CLIENT=
CLUSTER_ALICE_PW=
CLUSTER_DISCOVERY_PW=
CLUSTER_REPL_PW=

ccli() {
    local port=$1
    shift
    REDISCLI_AUTH=$CLUSTER_ALICE_PW timeout 20 redis-cli --tls \
        --cert "$CLUSTER_CLIENT.crt" --key "$CLUSTER_CLIENT.key" \
        --cacert "$CLUSTER_CA/db-ca.crt" --user alice --no-auth-warning \
        -h 127.0.0.1 -p "$port" "$@"
}

cluster_node_start() {
    local i=$1 dir=$T/cluster/node-$1 pid logsize=0
    [ -f "$dir/redis.log" ] && logsize=$(wc -c < "$dir/redis.log")
    redis-server "$dir/redis.conf" &
    pid=$!
    RD_PIDS+=("$pid")
    RD_REDIS_PID[node$i]=$pid
    local deadline=$(( $(now_ms) + 10000 ))
    until tail -c +$((logsize + 1)) "$dir/redis.log" 2>/dev/null | grep -q 'Ready to accept connections'; do
        alive "$pid" || { tail -n 20 "$dir/redis.log" >&2; fail "cluster node $i exited at start (port ${CLUSTER_PORTS[$((i - 1))]})"; }
        [ "$(now_ms)" -ge "$deadline" ] && fail "cluster node $i not ready on port ${CLUSTER_PORTS[$((i - 1))]}"
        sleep 0.02
    done
}

# cluster__sha TEXT: its SHA-256, in hex (users.acl's #... passwords).
cluster__sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

cluster_start() {
    local i p bus dir base=$T/cluster out acl_extra=("$@")
    need_tls
    need openssl sha256sum
    mkdir -p "$base"
    CLUSTER_CA=$base/ca
    CLUSTER_CLIENT=$base/client
    ctl ca init "$CLUSTER_CA"
    ctl cert server --ca-dir "$CLUSTER_CA" --ca db-client --host localhost --out "$CLUSTER_CLIENT"
    # The nodes present their db CA certificates to each other on the bus
    # and for replication; clients (redoubt, redis-cli) present db-client
    # ones: the nodes trust both.
    cat "$CLUSTER_CA/db-ca.crt" "$CLUSTER_CA/db-client-ca.crt" > "$base/trusted-cas.pem"
    CLUSTER_ALICE_PW=$(openssl rand -hex 16) || fail "openssl rand"
    CLUSTER_DISCOVERY_PW=$(openssl rand -hex 16) || fail "openssl rand"
    CLUSTER_REPL_PW=$(openssl rand -hex 16) || fail "openssl rand"
    {
        echo "user alice on #$(cluster__sha "$CLUSTER_ALICE_PW") allcommands allkeys allchannels"
        echo "user replicator on #$(cluster__sha "$CLUSTER_REPL_PW") +psync +replconf +ping"
        echo "user discovery on #$(cluster__sha "$CLUSTER_DISCOVERY_PW") +cluster|slots +cluster|shards +ping"
        echo "user default off"
        for i in "${acl_extra[@]}"; do echo "$i"; done
    } > "$base/users.acl"

    CLUSTER_PORTS=()
    CLUSTER_BUS_PORTS=()
    CLUSTER_PIDS=()
    for ((i = 1; i <= 6; i++)); do
        p=$(free_port) || fail "no free port for cluster node $i"
        bus=$(free_port) || fail "no free bus port for cluster node $i"
        CLUSTER_PORTS+=("$p")
        CLUSTER_BUS_PORTS+=("$bus")
        RD_REDIS_PORT[node$i]=$p
        dir=$base/node-$i
        mkdir -p "$dir"
        ctl cert server --ca-dir "$CLUSTER_CA" --host localhost,127.0.0.1 --out "$dir/node"
        cat > "$dir/redis.conf" <<CONF
port 0
tls-port $p
cluster-port $bus
bind 127.0.0.1
dir $dir
logfile $dir/redis.log
daemonize no
save ""
appendonly no
cluster-enabled yes
cluster-config-file nodes.conf
cluster-node-timeout 2000
cluster-require-full-coverage no
repl-diskless-sync yes
repl-diskless-sync-delay 0
tls-cluster yes
tls-replication yes
tls-auth-clients yes
tls-protocols "TLSv1.2 TLSv1.3"
tls-cert-file $dir/node.crt
tls-key-file $dir/node.key
tls-ca-cert-file $base/trusted-cas.pem
aclfile $base/users.acl
masteruser replicator
masterauth $CLUSTER_REPL_PW
CONF
    done
    for ((i = 1; i <= 6; i++)); do
        cluster_node_start "$i"
        CLUSTER_PIDS+=("${RD_REDIS_PID[node$i]}")
    done

    local nodes=()
    for p in "${CLUSTER_PORTS[@]}"; do nodes+=("127.0.0.1:$p"); done
    out=$(ccli "${CLUSTER_PORTS[0]}" --cluster create "${nodes[@]}" \
              --cluster-replicas 1 --cluster-yes 2>&1) ||
        { printf '%s\n' "$out" >&2; fail "redis-cli --cluster create failed"; }
    printf '%s\n' "$out" > "$base/create.out"
    cluster_wait_ok 30 3 ||
        fail "the cluster did not reach cluster_state:ok with 3 replicas in sync in 30 s"
}

cluster_live_port() {
    local i
    for ((i = 1; i <= ${#CLUSTER_PORTS[@]}; i++)); do
        alive "${RD_REDIS_PID[node$i]}" && { echo "${CLUSTER_PORTS[$((i - 1))]}"; return 0; }
    done
    return 1
}

cluster_nodes() {
    local p
    p=$(cluster_live_port) || return 1
    ccli "$p" CLUSTER NODES
}

cluster_masters() {
    cluster_nodes | awk '$3 ~ /master/ && $3 !~ /fail/ && NF > 8 {
        a = $2; sub(/@.*/, "", a); sub(/.*:/, "", a); print a }' | sort -n
}

cluster_node_id() { ccli "$1" CLUSTER MYID; }

cluster_slot_owner() {
    cluster_nodes | awk -v s="$1" '$3 ~ /master/ {
        a = $2; sub(/@.*/, "", a); sub(/.*:/, "", a)
        for (i = 9; i <= NF; i++) {
            if ($i ~ /^\[/) continue
            n = split($i, r, "-")
            lo = r[1]; hi = (n > 1) ? r[2] : r[1]
            if (s + 0 >= lo + 0 && s + 0 <= hi + 0) { print a; exit }
        } }'
}

# cluster__ok REPLICAS: the condition cluster_wait_ok waits for.
cluster__ok() {
    local want=$1 i p info up=0
    for ((i = 1; i <= ${#CLUSTER_PORTS[@]}; i++)); do
        alive "${RD_REDIS_PID[node$i]}" || continue
        p=${CLUSTER_PORTS[$((i - 1))]}
        info=$(ccli "$p" CLUSTER INFO 2>/dev/null | tr -d '\r')
        grep -qx 'cluster_state:ok' <<<"$info" || return 1
        grep -qx 'cluster_slots_ok:16384' <<<"$info" || return 1
        grep -qx 'cluster_slots_pfail:0' <<<"$info" || return 1
        grep -qx 'cluster_slots_fail:0' <<<"$info" || return 1
        ccli "$p" INFO replication 2>/dev/null | grep -q '^master_link_status:up' && up=$((up + 1))
    done
    [ "$up" -ge "$want" ]
}

cluster_wait_ok() { wait_for "${1:-30}" cluster__ok "${2:-3}"; }

cluster_flushall() {
    local p out
    for p in $(cluster_masters); do
        out=$(ccli "$p" FLUSHALL 2>&1)
        [ "$out" = OK ] || fail "FLUSHALL on the master at $p: $out"
        out=$(ccli "$p" SCRIPT FLUSH 2>&1)
        [ "$out" = OK ] || fail "SCRIPT FLUSH on the master at $p: $out"
    done
}

RD_CRC16_TAB=()
key_slot() {
    local __k=$1 __r __t __i __b __crc=0 __c __j
    if [ "${#RD_CRC16_TAB[@]}" -eq 0 ]; then
        for ((__i = 0; __i < 256; __i++)); do
            __c=$((__i << 8))
            for ((__j = 0; __j < 8; __j++)); do
                if ((__c & 0x8000)); then __c=$(( ((__c << 1) ^ 0x1021) & 0xffff )); else __c=$(( (__c << 1) & 0xffff )); fi
            done
            RD_CRC16_TAB[__i]=$__c
        done
    fi
    # The part between the first '{' and the next '}', when not empty.
    if [[ $__k == *'{'* ]]; then
        __r=${__k#*'{'}
        if [[ $__r == *'}'* ]]; then
            __t=${__r%%'}'*}
            [ -n "$__t" ] && __k=$__t
        fi
    fi
    for ((__i = 0; __i < ${#__k}; __i++)); do
        printf -v __b '%d' "'${__k:__i:1}"
        __crc=$(( ((__crc << 8) & 0xffff) ^ RD_CRC16_TAB[((__crc >> 8) ^ __b) & 0xff] ))
    done
    if [ -n "${2:-}" ]; then
        printf -v "$2" '%d' $((__crc & 16383))
    else
        echo $((__crc & 16383))
    fi
}

# --- cluster tests' shared helpers (after cluster_start; PW = alice's
# password, RD_PORT redoubt's plaintext listener) -----------------------

# asess VAR [PORT]: a session through redoubt (sess_open) that has sent
# AUTH alice.
asess() {
    sess_open "$1" "${2:-$RD_PORT}" || fail "cannot connect to redoubt on ${2:-$RD_PORT}"
    sess_expect "${!1}" "+OK" AUTH alice "$PW"
}

SLOT_OWNER=()
MASTERS=()
PICKED=()
load_slots() {
    local port lo hi s
    SLOT_OWNER=()
    while read -r port lo hi; do
        for ((s = lo; s <= hi; s++)); do SLOT_OWNER[s]=$port; done
    done < <(cluster_nodes | awk '$3 ~ /master/ && $3 !~ /fail/ {
        a = $2; sub(/@.*/, "", a); sub(/.*:/, "", a)
        for (i = 9; i <= NF; i++) {
            if ($i ~ /^\[/) continue
            n = split($i, r, "-"); print a, r[1], (n > 1 ? r[2] : r[1]) } }')
    mapfile -t MASTERS < <(cluster_masters)
    [ "${#MASTERS[@]}" -eq 3 ] || fail "expected 3 masters, CLUSTER NODES shows: ${MASTERS[*]}"
    [ "${#SLOT_OWNER[@]}" -eq 16384 ] || fail "the slot map covers ${#SLOT_OWNER[@]} slots"
}

# owner KEY VAR: VAR = the port of KEY's master.
owner() { local __s; key_slot "$1" __s; printf -v "$2" '%s' "${SLOT_OWNER[__s]}"; }

pick_keys() {
    local prefix=$1 n=$2 j=0 k p m i
    local -A lists=() count=()
    for p in "${MASTERS[@]}"; do count[$p]=0; lists[$p]=; done
    while :; do
        k=$prefix$j
        j=$((j + 1))
        owner "$k" p
        [ "${count[$p]}" -lt "$n" ] || continue
        lists[$p]+="$k "
        count[$p]=$((count[$p] + 1))
        for m in "${MASTERS[@]}"; do [ "${count[$m]}" -lt "$n" ] && continue 2; done
        break
    done
    PICKED=()
    for p in "${MASTERS[@]}"; do
        for i in ${lists[$p]}; do PICKED+=("$i"); done
    done
}

# dset KEY VALUE...: SET straight on the cluster (each key on its master).
dset() {
    local p out
    while [ $# -ge 2 ]; do
        owner "$1" p
        out=$(ccli "$p" SET "$1" "$2" 2>&1)
        [ "$out" = OK ] || fail "SET $1 straight to the master at $p: $out"
        shift 2
    done
}

# dget KEY: GET straight from its master.
dget() { local p; owner "$1" p; ccli "$p" GET "$1" 2>&1; }

# compare_stream WANT GOT WHAT: byte for byte, or fail showing where the
# streams part and which errors redoubt answered.
compare_stream() {
    local off from
    cmp -s "$1" "$2" && return 0
    off=$(cmp "$1" "$2" 2>&1 | sed -n 's/.* \(byte\|char\) \([0-9][0-9]*\).*/\2/p')
    note "$3: sizes: $(wc -c < "$1") expected vs $(wc -c < "$2") through redoubt; first difference at byte ${off:-?}"
    if [ -n "$off" ]; then
        from=$((off > 120 ? off - 120 : 0))
        note "expected:"; tail -c +"$((from + 1))" "$1" | head -c 240 | od -c | head -12 >&2
        note "through redoubt:"; tail -c +"$((from + 1))" "$2" | head -c 240 | od -c | head -12 >&2
    fi
    note "error replies through redoubt (count, text):"
    grep -a '^-' "$2" | tr -d '\r' | sed 's/[0-9][0-9]*/N/g' | sort | uniq -c | sort -rn | head -n 8 >&2
    fail "$3: redoubt's replies differ from the expected ones"
}
