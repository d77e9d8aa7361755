#!/bin/bash
# t_drain: a graceful stop answers every command it read. Clients pipeline
# INCRs (16 in flight each, plaintext and mutual TLS) against a Redis that
# is stopped (SIGSTOP) just before worker_shutdown_timeout runs out and
# continued (SIGCONT) after it, within worker_shutdown_grace:
#   - on SIGQUIT, and for the old workers on a reload (SIGHUP), idle
#     sessions close at the deadline, the pipelining ones stop being read
#     and close only once the replies of the commands already sent to
#     Redis have been written: every INCR Redis ran was answered (the
#     counter in Redis equals the replies the client got, which came in
#     order and whole), none after the deadline reached Redis;
#   - with Redis stopped for good, worker_shutdown_grace bounds the wait.
# shellcheck disable=SC2119,SC2317 # optional args; helpers called indirectly
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
rd_init
need_tls
need python3

CA=$T/ca
ctl ca init "$CA"
ctl cert server --ca-dir "$CA" --host localhost,127.0.0.1 --out "$T/redoubt"
ctl cert user --ca-dir "$CA" --user alice --roles access --db-users '*' --out "$T/alice"

redis_start a
TLS_PORT=$(free_port) || fail "no free port"
CONF=$T/redoubt.conf
# conf TIMEOUT [EXTRA]: the configuration, worker_shutdown_timeout TIMEOUT.
conf() {
    cat > "$CONF" <<EOF
worker_processes = $RD_WORKERS;
pid_file = "$T/redoubt.pid";
worker_shutdown_timeout = "$1";
${2:-}
error_log = { path = "$T/error.log"; level = "info"; };
tls = { certificate = "$T/redoubt.crt"; certificate_key = "$T/redoubt.key";
        client_ca = "$CA/user-ca.crt"; };
listen = ( { address = "127.0.0.1:$RD_PORT"; database = "db"; tls = false; },
           { address = "127.0.0.1:$TLS_PORT"; database = "db"; } );
databases = ( { name = "db"; uri = "redis://127.0.0.1:${RD_REDIS_PORT[a]}"; connect_timeout = "2s"; } );
roles = ( { name = "access";
            allow = { db_labels = { * = "*"; }; db_users = [ "{{internal.db_users}}" ]; }; } );
EOF
}

# The client: NPLAIN + NTLS sessions pipelining "INCR drain:PHASE:I" with
# WINDOW commands in flight, each reply checked (the i-th is :i); NIDLE
# idle sessions of each kind (one PING). It writes "ready" once every
# pipelining session has had 20 replies, logs "eof KIND I EPOCH" as
# sessions close, and prints one line per session at the end:
#   KIND I SENT REPLIES BAD TRUNCATED RESET EOF-EPOCH
cat > "$T/client.py" <<'PY'
import selectors, socket, ssl, sys, time

port, tls_port, phase, nplain, ntls, nidle, window, outdir, cafile, cert, key = sys.argv[1:]
nplain, ntls, nidle, window = int(nplain), int(ntls), int(nidle), int(window)

ctx = ssl.create_default_context(cafile=cafile)
ctx.load_cert_chain(cert, key)

class Sess:
    pass

sel = selectors.DefaultSelector()
sessions = []

def open_sess(kind, idx, tls, idle):
    s = Sess()
    s.kind, s.idx, s.tls, s.idle = kind, idx, tls, idle
    s.sent = s.replies = s.bad = s.truncated = s.reset = 0
    s.inbuf = b""
    s.out = b""
    s.eof_at = None
    s.can_send = True
    sock = socket.create_connection(("127.0.0.1", tls_port if tls else port), timeout=10)
    if tls:
        sock = ctx.wrap_socket(sock, server_hostname="localhost")
    sock.setblocking(False)
    s.sock = sock
    s.key = ("drain:%s:%s:%d" % (phase, kind, idx)).encode()
    if idle:
        s.out = b"*1\r\n$4\r\nPING\r\n"
        s.sent = 1
    sessions.append(s)
    sel.register(sock, selectors.EVENT_READ, s)

for i in range(nplain):
    open_sess("plain", i, False, False)
for i in range(ntls):
    open_sess("tls", i, True, False)
for i in range(nidle):
    open_sess("plain-idle", i, False, True)
    open_sess("tls-idle", i, True, True)

log = open(outdir + "/events", "a", buffering=1)
ready = False

def cmd(s):
    return b"*2\r\n$4\r\nINCR\r\n$%d\r\n%s\r\n" % (len(s.key), s.key)

def finish(s, reset=False):
    s.eof_at = time.time()
    s.reset = int(reset)
    if s.inbuf:
        s.truncated = 1
    log.write("eof %s %d %.3f\n" % (s.kind, s.idx, s.eof_at))
    sel.unregister(s.sock)
    s.sock.close()

def parse(s):
    while True:
        i = s.inbuf.find(b"\r\n")
        if i < 0:
            return
        line, s.inbuf = s.inbuf[:i], s.inbuf[i + 2:]
        s.replies += 1
        if s.idle:
            if line != b"+PONG":
                s.bad += 1
        elif line != b":%d" % s.replies:
            s.bad += 1
            log.write("bad %s %d %r (reply %d)\n" % (s.kind, s.idx, line, s.replies))

deadline = time.time() + 60
while time.time() < deadline:
    live = [s for s in sessions if s.eof_at is None]
    if not live:
        break
    for s in live:
        if not s.idle and s.can_send:
            while s.sent - s.replies < window:
                s.out += cmd(s)
                s.sent += 1
        ev = selectors.EVENT_READ | (selectors.EVENT_WRITE if s.out and s.can_send else 0)
        sel.modify(s.sock, ev, s)
    for k, ev in sel.select(0.2):
        s = k.data
        if ev & selectors.EVENT_WRITE and s.out:
            try:
                n = s.sock.send(s.out)
                s.out = s.out[n:]
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                pass
            except OSError:
                s.can_send = False      # the server is gone for writing
        if ev & selectors.EVENT_READ:
            while True:
                try:
                    data = s.sock.recv(65536)
                except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    break
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    data = b""
                except (ConnectionResetError, ssl.SSLError, OSError):
                    finish(s, reset=True)
                    break
                if not data:
                    finish(s)
                    break
                s.inbuf += data
                parse(s)
                if not (s.tls and s.sock.pending()):
                    break
    if not ready and all(s.replies >= 20 for s in sessions if not s.idle):
        ready = True
        open(outdir + "/ready", "w").close()
for s in sessions:
    print(s.kind, s.idx, s.sent, s.replies, s.bad, s.truncated, s.reset,
          "%.3f" % s.eof_at if s.eof_at else "-")
sys.exit(0 if all(s.eof_at for s in sessions) else 2)
PY

NPLAIN=6 NTLS=4 NIDLE=2 WINDOW=16
CLIENT_PID=
# client_start PHASE: start the client in the background, wait until the
# pipelines flow.
client_start() {
    local dir=$T/$1
    mkdir -p "$dir"
    python3 "$T/client.py" "$RD_PORT" "$TLS_PORT" "$1" "$NPLAIN" "$NTLS" "$NIDLE" \
        "$WINDOW" "$dir" "$CA/db-ca.crt" "$T/alice.crt" "$T/alice.key" \
        > "$dir/result" 2> "$dir/client.err" &
    CLIENT_PID=$!
    RD_PIDS+=("$CLIENT_PID")
    client_ready() { [ -e "$dir/ready" ]; }
    wait_for 15 client_ready || fail "$1: the pipelining clients did not get going: $(cat "$dir/client.err")"
}

now_s() { date +%s.%N; }
# since T0: seconds since epoch time T0.
since() { awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.2f", b - a }'; }
# sleep_until T0 SECS: until SECS after T0.
sleep_until() {
    local left
    left=$(awk -v a="$1" -v s="$2" -v b="$(now_s)" 'BEGIN { d = a + s - b; printf "%.3f", (d > 0 ? d : 0) }')
    sleep "$left"
}
# closed PHASE KIND-REGEX: how many such sessions have closed so far.
closed() { grep -cE "^eof $2 " "$T/$1/events" 2>/dev/null || true; }

# check_answers PHASE: every INCR that Redis ran was answered, in order.
check_answers() {
    local phase=$1 kind i sent replies bad trunc reset eof_at val lost=0 total=0
    while read -r kind i sent replies bad trunc reset eof_at; do
        [ "$bad" = 0 ] || fail "$phase: $kind session $i got $bad wrong replies: $(grep "^bad $kind $i " "$T/$phase/events" | head -n 3)"
        [ "$trunc" = 0 ] || fail "$phase: $kind session $i: a reply was cut off at the close"
        [ "$eof_at" != - ] || fail "$phase: $kind session $i was never closed"
        [ "$reset" = 0 ] || fail "$phase: $kind session $i was closed with a reset, not an orderly close"
        case $kind in *-idle) continue ;; esac
        val=$(dcli a GET "drain:$phase:$kind:$i")
        [ -n "$val" ] || val=0
        total=$((total + replies))
        lost=$((lost + val - replies))
        [ "$val" = "$replies" ] ||
            note "$phase: $kind session $i: Redis ran $val INCRs, the client got $replies replies (sent $sent)"
    done < "$T/$phase/result"
    note "$phase: $total replies, $lost commands run by Redis and not answered"
    assert_eq 0 "$lost" "$phase: commands Redis ran whose replies never reached the client"
}

# pipelines_at_deadline PHASE SIGNAL: the scenario for SIGQUIT and
# SIGHUP. worker_shutdown_timeout 2 s; Redis stopped at 1 s and continued
# at 3.5 s, well within the default worker_shutdown_grace (5 s).
pipelines_at_deadline() {
    local phase=$1 sig=$2 t0 n
    client_start "$phase"
    t0=$(now_s)
    kill "-$sig" "$RD_PID"
    sleep_until "$t0" 1
    kill -STOP "${RD_REDIS_PID[a]}"
    sleep_until "$t0" 3
    # Past the deadline: the idle sessions are closed, the pipelining ones
    # wait for Redis.
    n=$(closed "$phase" '(plain|tls)-idle')
    [ "$n" -eq $((2 * NIDLE)) ] || { kill -CONT "${RD_REDIS_PID[a]}"; fail "$phase: $n of $((2 * NIDLE)) idle sessions closed 1 s after worker_shutdown_timeout"; }
    n=$(closed "$phase" '(plain|tls)')
    [ "$n" -eq 0 ] || {
        kill -CONT "${RD_REDIS_PID[a]}"
        wait "$CLIENT_PID"
        check_answers "$phase"
        fail "$phase: $n pipelining sessions closed at worker_shutdown_timeout while their commands were still with Redis"
    }
    sleep_until "$t0" 3.5
    kill -CONT "${RD_REDIS_PID[a]}"
    client_done() { dead "$CLIENT_PID"; }
    wait_for 10 client_done || fail "$phase: sessions still open 10 s after Redis answered again"
    wait "$CLIENT_PID" || fail "$phase: the client failed: $(cat "$T/$phase/client.err")"
    note "$phase: last session closed $(since "$t0") s after SIG$sig (deadline at 2 s, Redis back at 3.5 s)"
    check_answers "$phase"
    grep -q 'answering the commands they read' "$T/error.log" ||
        fail "$phase: the error log does not say that sessions were answering the commands they read"
}

conf 2s
out=$("$REDOUBT" -t -c "$CONF" 2>&1) || fail "-t: $out"
rd_start "$CONF"

# --- SIGQUIT -----------------------------------------------------------------
master=$RD_PID
read -r -a workers <<<"$(rd_workers | tr '\n' ' ')"
pipelines_at_deadline quit QUIT
wait_for 10 dead "$master" || fail "quit: master still running after the last session closed"
wait "$master"; rc=$?
assert_eq 0 "$rc" "master's exit status after SIGQUIT"
for w in "${workers[@]}"; do dead "$w" || fail "quit: worker $w still running"; done

# --- SIGHUP: the old workers ----------------------------------------------
rd_start "$CONF"
read -r -a old_workers <<<"$(rd_workers | tr '\n' ' ')"
pipelines_at_deadline reload HUP
old_gone() { local w; for w in "${old_workers[@]}"; do dead "$w" || return 1; done; }
wait_for 10 old_gone || fail "reload: old workers still running after their last session closed"
wait_for 10 rd_has_workers "$RD_WORKERS" || fail "reload: expected $RD_WORKERS new workers"
assert_eq PONG "$(rcli PING 2>&1)" "a new session after the reload"
rd_stop QUIT
assert_eq 0 "$RD_LAST_RC" "master's exit status after SIGQUIT with no session"

# --- worker_shutdown_grace bounds the wait -----------------------------------
conf 1s 'worker_shutdown_grace = "1500ms";'
for bad in '"-1s"' '"2h"' '"soon"'; do
    sed "s|^worker_shutdown_grace = .*|worker_shutdown_grace = $bad;|" "$CONF" > "$T/bad.conf"
    "$REDOUBT" -t -c "$T/bad.conf" >/dev/null 2>&1 && fail "worker_shutdown_grace = $bad passes -t"
done
rd_start "$CONF"
master=$RD_PID
client_start grace
t0=$(now_s)
kill -STOP "${RD_REDIS_PID[a]}"
kill -QUIT "$master"
wait_for 10 dead "$master" || { kill -CONT "${RD_REDIS_PID[a]}"; fail "grace: master still running 10 s after SIGQUIT with Redis stopped"; }
took=$(since "$t0")
kill -CONT "${RD_REDIS_PID[a]}"
wait "$master"; rc=$?
assert_eq 0 "$rc" "master's exit status after SIGQUIT, grace expired"
note "grace: master exited $took s after SIGQUIT (timeout 1 s + grace 1.5 s)"
awk -v t="$took" 'BEGIN { exit !(t >= 2.3 && t < 5) }' ||
    fail "grace: the master exited $took s after SIGQUIT, expected about 2.5 s (worker_shutdown_timeout + worker_shutdown_grace)"
grep -q 'worker_shutdown_grace: closing' "$T/error.log" || fail "grace: no log line for the sessions closed at the end of the grace period"
wait "$CLIENT_PID"
pass
