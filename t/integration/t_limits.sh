#!/bin/bash
# t_limits: resource exhaustion. A worker out of file descriptors
# (worker_rlimit_nofile = 64, more connections than that) stops accepting
# for a moment instead of spinning: its CPU stays low, the error log gets
# at most about a line a second, redoubt_accept_errors_total{reason=
# "emfile"} counts the failures, and once connections close new sessions
# are accepted again. worker_rlimit_nofile is the workers' RLIMIT_NOFILE;
# one that cannot be set is a configuration error; "redoubt -t" warns
# when limits.max_sessions needs more descriptors than the workers have
# (worker_rlimit_nofile, or the limit inherited, here set with prlimit).
# limits.request_timeout: a client that sends half a command is answered
# "-ERR redoubt: request timed out ..." and closed after the timeout, also
# when it trickles bytes that keep the idle timer quiet; a client that
# pipelines without pause, or sits idle between commands, is not;
# request_timeout = 0 switches it off. limits.idle_timeout closes a silent
# session.
# shellcheck disable=SC2119,SC2317 # optional args; helpers called indirectly
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
rd_init
need python3 prlimit getconf

redis_start a
SPORT=$(free_port) || fail "no free port for the status server"
DB=${RD_REDIS_PORT[a]}

# --- redoubt -t: the descriptor limit ------------------------------------
rd_conf "$DB" 'worker_rlimit_nofile = 64; limits = { max_sessions = 100; };' > "$T/warn.conf"
out=$("$REDOUBT" -t -c "$T/warn.conf" 2>&1) || fail "-t with worker_rlimit_nofile = 64: $out"
assert_contains "test is successful" "$out" "-t with a small worker_rlimit_nofile"
assert_contains "limits.max_sessions = 100 per worker may need" "$out" "-t warning about max_sessions"
assert_contains "worker_rlimit_nofile is 64" "$out" "-t warning names the limit"
assert_contains "counting 2 per session" "$out" "-t warning says what it assumes"

rd_conf "$DB" 'worker_rlimit_nofile = 4096; limits = { max_sessions = 1000; };' > "$T/enough.conf"
out=$("$REDOUBT" -t -c "$T/enough.conf" 2>&1) || fail "-t with worker_rlimit_nofile = 4096: $out"
[[ $out == *"may need"* ]] && fail "-t warns although 4096 descriptors hold 1000 sessions: $out"

# Without worker_rlimit_nofile the workers keep the limit redoubt was
# started with (the default max_sessions is 10000).
rd_conf "$DB" > "$T/plain.conf"
out=$(prlimit --nofile=256 "$REDOUBT" -t -c "$T/plain.conf" 2>&1) || fail "-t under prlimit --nofile=256: $out"
assert_contains "limits.max_sessions = 10000 per worker may need" "$out" "-t under prlimit --nofile=256"
assert_contains "(RLIMIT_NOFILE) is 256" "$out" "-t under prlimit names the inherited limit"
assert_contains "set worker_rlimit_nofile" "$out" "-t under prlimit says what to do"

# A limit that cannot be set: past fs.nr_open (even root cannot), or, for
# another user, past the hard limit.
nr_open=$(cat /proc/sys/fs/nr_open)
if [ "$nr_open" -lt 1073741816 ]; then
    rd_conf "$DB" "worker_rlimit_nofile = $((nr_open + 1));" > "$T/toobig.conf"
    out=$("$REDOUBT" -t -c "$T/toobig.conf" 2>&1) && fail "-t accepts worker_rlimit_nofile = $((nr_open + 1)) > fs.nr_open: $out"
    assert_contains "worker_rlimit_nofile = $((nr_open + 1)): cannot set the open files limit" "$out" "-t error for a limit past fs.nr_open"
    # The server itself does not start with it either (and says why).
    timeout 20 "$REDOUBT" -g -c "$T/toobig.conf" > "$T/toobig.out" 2>&1 && fail "redoubt started with worker_rlimit_nofile past fs.nr_open"
    assert_contains "cannot set the open files limit" "$(cat "$T/toobig.out")" "start with a limit past fs.nr_open"
fi
if [ "$(id -u)" -ne 0 ]; then
    rd_conf "$DB" 'worker_rlimit_nofile = 2048;' > "$T/hard.conf"
    out=$(prlimit --nofile=1024:1024 "$REDOUBT" -t -c "$T/hard.conf" 2>&1) && fail "-t accepts worker_rlimit_nofile over the hard limit: $out"
    assert_contains "the hard limit is 1024" "$out" "-t error for a limit over the hard limit"
fi
rd_conf "$DB" 'worker_rlimit_nofile = 8;' > "$T/tiny.conf"
out=$("$REDOUBT" -t -c "$T/tiny.conf" 2>&1) && fail "-t accepts worker_rlimit_nofile = 8"
assert_contains "worker_rlimit_nofile" "$out" "-t error for worker_rlimit_nofile = 8"

# --- out of descriptors ----------------------------------------------------
RD_WORKERS=1
RD_LOG_LEVEL=info
rd_conf "$DB" "worker_rlimit_nofile = 64;
limits = { max_sessions = 1000; };
status = { listen = \"127.0.0.1:$SPORT\"; };" > "$T/emfile.conf"
rd_start "$T/emfile.conf"
W=$(rd_workers)
[ -n "$W" ] || fail "no worker"
soft=$(awk '/^Max open files/ { print $4 }' "/proc/$W/limits")
assert_eq 64 "$soft" "the worker's soft open files limit with worker_rlimit_nofile = 64"
assert_eq PONG "$(rcli PING)" "PING before the descriptors run out"

metric() {
    st_get "$SPORT" /metrics
    [ "$ST_CODE" = 200 ] || return 1
    awk -v n="$1" '$1 == n { print $2; f = 1 } END { if (!f) print 0 }' <<<"$ST_BODY"
}
EMFILE='redoubt_accept_errors_total{reason="emfile"}'
e0=$(metric "$EMFILE") || fail "/metrics: $ST_CODE"
assert_eq 0 "$e0" "accept errors before the descriptors run out"

# Hold 120 connections open: the worker has 64 descriptors, the rest of
# the connections wait in the listen queue.
mkfifo "$T/hold.ctl"
python3 - "$RD_PORT" 120 "$T/hold.ctl" > "$T/hold.out" 2>&1 <<'PY' &
import socket, sys
port, n, ctl = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
socks = []
for i in range(n):
    s = socket.socket()
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    socks.append(s)
print("connected %d" % len(socks), flush=True)
open(ctl).read()            # until the test says so
for s in socks:
    s.close()
print("closed", flush=True)
PY
HOLD=$!
RD_PIDS+=("$HOLD")
exec {HOLDCTL}>"$T/hold.ctl"
held() { grep -q '^connected' "$T/hold.out"; }
wait_for 10 held || fail "could not open 120 connections: $(cat "$T/hold.out")"
emfile_seen() { [ "$(metric "$EMFILE")" -gt 0 ]; }
wait_for 10 emfile_seen || fail "$EMFILE did not move with 120 connections and 64 descriptors"
grep -q 'Too many open files' "$T/error.log" || fail "no 'Too many open files' in the error log"

# Two seconds out of descriptors: the worker sleeps, the log stays short.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
lines0=$(wc -l < "$T/error.log")
emf0=$(grep -c 'Too many open files' "$T/error.log")
bytes0=$(wc -c < "$T/error.log")
c0=$(ticks "$W")
t0=$(now_ms)
sleep 2
c1=$(ticks "$W")
t1=$(now_ms)
lines1=$(wc -l < "$T/error.log")
emf1=$(grep -c 'Too many open files' "$T/error.log")
bytes1=$(wc -c < "$T/error.log")
cpu=$(( (c1 - c0) * 100000 / hz / (t1 - t0) ))      # percent of a core
note "out of descriptors for $((t1 - t0)) ms: worker CPU ${cpu}% of a core, $((lines1 - lines0)) log lines ($((emf1 - emf0)) 'Too many open files', $((bytes1 - bytes0)) bytes)"
[ "$cpu" -lt 10 ] || fail "the worker used ${cpu}% of a core while out of descriptors (expected it to sleep)"
[ $((emf1 - emf0)) -le 3 ] || fail "$((emf1 - emf0)) 'Too many open files' lines in 2 s (at most one a second)"
[ $((lines1 - lines0)) -le 6 ] || fail "the error log grew by $((lines1 - lines0)) lines in 2 s while out of descriptors"
e1=$(metric "$EMFILE")
[ "$e1" -gt 0 ] || fail "$EMFILE is $e1"
# Each pause is 100 ms: a few dozen failed accepts, not millions.
[ "$e1" -lt 1000 ] || fail "$EMFILE = $e1 after a few seconds: accept is retried too often"
tail -n 1 "$T/error.log" | grep -q 'Too many open files' &&
    assert_contains "not accepting for 100 ms" "$(grep 'Too many open files' "$T/error.log" | tail -n 1)" "the EMFILE log line"

# The connections close: the queued ones are accepted (and closed), and
# new sessions are served again.
exec {HOLDCTL}>&-
wait "$HOLD"
grep -q '^closed' "$T/hold.out" || fail "holder: $(cat "$T/hold.out")"
pong() { [ "$(timeout 5 redis-cli -h 127.0.0.1 -p "$RD_PORT" PING 2>/dev/null)" = PONG ]; }
wait_for 10 pong || fail "no PONG after the connections holding the descriptors closed"
assert_eq "$W" "$(rd_workers)" "the worker survived running out of descriptors"
rd_stop
assert_eq 0 "$RD_LAST_RC" "exit status of redoubt after SIGTERM"

# --- request_timeout and idle_timeout ------------------------------------
rd_conf "$DB" 'limits = { request_timeout = "1s"; idle_timeout = "3s"; };' > "$T/timeout.conf"
rd_start "$T/timeout.conf"

# rt_client MODE: a python client; prints what happened, one line.
#   half      send half a command, then wait for the server
#   trickle   send a long command one byte every 200 ms
#   pipeline  for 3 s, each write ends one command and starts the next
#   quiet     PING, 2 s of nothing, PING
#   silent    connect and send nothing
rt_client() {
    timeout 20 python3 - "$RD_PORT" "$1" <<'PY'
import socket, sys, time
port, mode = int(sys.argv[1]), sys.argv[2]
s = socket.socket()
s.connect(("127.0.0.1", port))
t0 = time.time()
def wait_close(limit):
    got = b""
    s.settimeout(limit)
    try:
        while True:
            b = s.recv(4096)
            if not b:
                return got, True
            got += b
    except socket.timeout:
        return got, False
    except ConnectionResetError:
        return got, True
def report(got, closed):
    print("%s %.2f %r" % ("closed" if closed else "open", time.time() - t0, got.decode(errors="replace")))
if mode == "half":
    s.sendall(b"*2\r\n$4\r\nECHO\r\n$5\r\nhel")
    report(*wait_close(5))
elif mode == "trickle":
    cmd = b"*2\r\n$4\r\nECHO\r\n$20\r\n" + b"x" * 20 + b"\r\n"
    s.setblocking(False)
    got, closed = b"", False
    for c in cmd:
        try:
            s.send(bytes([c]))
        except OSError:
            closed = True
            break
        time.sleep(0.2)
        try:
            b = s.recv(4096)
            if not b:
                closed = True
                break
            got += b
        except BlockingIOError:
            pass
        except OSError:
            closed = True
            break
    if not closed:
        g, closed = wait_close(2)
        got += g
    report(got, closed)
elif mode == "pipeline":
    def cmd(i):
        v = b"v%d" % i
        return b"*2\r\n$4\r\nECHO\r\n$%d\r\n%s\r\n" % (len(v), v)
    n = 0
    try:
        s.sendall(cmd(0)[:10])
        rest = cmd(0)[10:]
        while time.time() - t0 < 3:
            time.sleep(0.3)
            n += 1
            s.sendall(rest + cmd(n)[:10])  # the end of one, half the next
            rest = cmd(n)[10:]
        s.sendall(rest)
    except OSError as e:
        print("cut off after %.2f s, %d commands: %s" % (time.time() - t0, n, e))
        sys.exit(0)
    want = b"".join(b"$%d\r\nv%d\r\n" % (len(b"v%d" % i), i) for i in range(n + 1))
    s.settimeout(5)
    got = b""
    try:
        while len(got) < len(want):
            b = s.recv(4096)
            if not b:
                break
            got += b
    except socket.timeout:
        pass
    print("%s %d %s" % ("ok" if got == want else "bad", n + 1, got[-40:]))
elif mode == "quiet":
    s.sendall(b"PING\r\n")
    a = s.recv(100)
    time.sleep(2)
    s.sendall(b"PING\r\n")
    s.settimeout(5)
    print("%r %r" % (a, s.recv(100)))
elif mode == "silent":
    report(*wait_close(10))
PY
}

out=$(rt_client half)
note "half a command: $out"
read -r state secs reply <<<"$out"
assert_eq closed "$state" "a session with half a command after request_timeout = 1s ($out)"
assert_contains "-ERR redoubt: request timed out" "$reply" "the reply to half a command"
awk -v t="$secs" 'BEGIN { exit !(t >= 0.9 && t <= 3) }' || fail "half a command closed after $secs s (request_timeout = 1s)"

out=$(rt_client trickle)
note "a command trickled a byte every 200 ms: $out"
read -r state secs reply <<<"$out"
assert_eq closed "$state" "a session that trickles a command ($out)"
assert_contains "request timed out" "$reply" "the reply to a trickled command"
awk -v t="$secs" 'BEGIN { exit !(t <= 3) }' || fail "a trickled command closed after $secs s (request_timeout = 1s)"
grep -q 'request incomplete after 1000 ms (limits.request_timeout)' "$T/error.log" || fail "no request timeout line in the error log"

out=$(rt_client pipeline)
note "pipelining for 3 s, a partial command at every write: $out"
assert_prefix "ok " "$out" "a client that pipelines without pause is not cut off by request_timeout"

out=$(rt_client quiet)
assert_eq "b'+PONG\\r\\n' b'+PONG\\r\\n'" "$out" "a session idle between commands for 2 s (request_timeout = 1s, idle_timeout = 3s)"

out=$(rt_client silent)
note "a silent session: $out"
read -r state secs _ <<<"$out"
assert_eq closed "$state" "a session that sends nothing, idle_timeout = 3s ($out)"
awk -v t="$secs" 'BEGIN { exit !(t >= 2.5 && t <= 6) }' || fail "a silent session closed after $secs s (idle_timeout = 3s)"
rd_stop

# request_timeout = 0: no deadline.
rd_conf "$DB" 'limits = { request_timeout = "0"; };' > "$T/notimeout.conf"
rd_start "$T/notimeout.conf"
out=$(rt_client half)
read -r state _ <<<"$out"
assert_eq open "$state" "half a command with request_timeout = 0 ($out)"
rd_stop

pass
