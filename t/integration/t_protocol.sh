#!/bin/bash
# t_protocol: malformed RESP is answered with "-ERR Protocol error: ..."
# and the connection closed, as redis-server does, without disturbing other
# sessions; a client that never reads its replies is disconnected once
# they pass client_output_limit, and the worker's memory stays bounded.
# shellcheck disable=SC2016,SC2119,SC2317 # RESP literals; optional args; helpers called indirectly
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
rd_init
need python3 cmp

redis_start a

# --- a client that never reads ------------------------------------------
rd_conf "${RD_REDIS_PORT[a]}" 'limits = { client_output_limit = "1mb"; };' > "$T/slow.conf"
rd_start "$T/slow.conf"
workers0=$(rd_workers)
S=
sess_open S || fail "cannot connect to redoubt"
sess_expect "$S" "+OK" SET keeper alive

value_size=$((256 * 1024))
gets=400                                   # 100 MiB of replies
head -c "$value_size" /dev/zero | tr '\0' v > "$T/value"
dcli a -x SET bigvalue < "$T/value" >/dev/null
assert_eq "$value_size" "$(dcli a STRLEN bigvalue)" "big value stored"

rss_sum() {
    local w sum=0 r
    for w in $workers0; do
        r=$(rss_kb "$w"); sum=$((sum + ${r:-0}))
    done
    echo "$sum"
}
clients_before=$(dcli a INFO clients | tr -d '\r' | sed -n 's/^connected_clients://p')
rss0=$(rss_sum)

python3 - "$RD_PORT" "$gets" bigvalue 20 "$((value_size * gets))" > "$T/slow.out" 2>&1 <<'PY' &
import select, socket, sys, threading, time
port, n, key, secs, total = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)   # before connect: a small window
s.connect(("127.0.0.1", port))
cmd = b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key.encode())
def writer():
    try:
        s.sendall(cmd * n)
    except OSError:
        pass
threading.Thread(target=writer, daemon=True).start()
p = select.poll()
p.register(s, select.POLLRDHUP | select.POLLHUP | select.POLLERR)   # not POLLIN: we never read
# A server that closes while its send queue is full cannot deliver its FIN
# to a client that does not read, so also look at the server's end of this
# connection in /proc/net/tcp: it leaves ESTABLISHED (01) when closed.
me = "0100007F:%04X" % s.getsockname()[1]
srv = "0100007F:%04X" % port
def server_end_closed():
    for f in ("/proc/net/tcp",):
        try:
            lines = open(f).read().splitlines()[1:]
        except OSError:
            return False
        for l in lines:
            fields = l.split()
            if fields[1] == srv and fields[2] == me:
                return fields[3] != "01"
    return True        # gone altogether
t0 = time.time()
while time.time() - t0 < secs:
    if p.poll(100) or server_end_closed():
        break
else:
    print("still connected after %.0f s without reading" % secs)
    sys.exit(1)
closed_after = time.time() - t0
got = 0
s.settimeout(10)
try:
    while True:
        b = s.recv(1 << 20)
        if not b:
            break
        got += len(b)
except OSError as e:
    print("recv: %s" % e)
print("disconnected after %.2f s; %d of %d reply bytes had been sent" % (closed_after, got, total))
sys.exit(0 if got < total else 2)
PY
slow=$!
RD_PIDS+=("$slow")

# While that client hogs its worker, other sessions are served.
peak=$rss0
deadline=$(( $(now_ms) + 25000 ))
n=0
while alive "$slow"; do
    assert_eq "v$n" "$(rcli ECHO "v$n")" "another session while a client does not read"
    n=$((n + 1))
    r=$(rss_sum); [ "$r" -gt "$peak" ] && peak=$r
    [ "$(now_ms)" -ge "$deadline" ] && fail "slow-reader client still running after 25 s"
    sleep 0.05
done
wait "$slow"
rc=$?
r=$(rss_sum); [ "$r" -gt "$peak" ] && peak=$r
note "slow reader: $(cat "$T/slow.out")"
case $rc in
    0) ;;
    1) fail "a client that never reads was not disconnected (client_output_limit = 1mb, $((value_size * gets / 1048576)) MiB of replies)" ;;
    *) fail "slow-reader client: $(cat "$T/slow.out")" ;;
esac
sess_expect "$S" "alive" GET keeper
assert_eq "$workers0" "$(rd_workers)" "worker pids after the slow reader (a worker crashed?)"
grow=$(( (peak - rss0) / 1024 ))
note "workers' RSS: $((rss0 / 1024)) MiB before, $((peak / 1024)) MiB at the peak"
[ "$grow" -lt 48 ] || fail "workers' RSS grew by $grow MiB for a client that does not read (limit 1mb)"

# Its upstream connection was closed too.
clients_now() { [ "$(dcli a INFO clients | tr -d '\r' | sed -n 's/^connected_clients://p')" -le "$clients_before" ]; }
wait_for 5 clients_now || fail "redis still has more clients than before the slow reader: $(dcli a CLIENT LIST)"

sess_close "$S"
rd_stop
assert_eq 0 "$RD_LAST_RC" "exit status of redoubt after SIGTERM"

# --- malformed input ------------------------------------------------------
rd_conf "${RD_REDIS_PORT[a]}" 'limits = {
  max_bulk_length = "1kb";
  max_inline_length = "1kb";
};' > "$T/redoubt.conf"
rd_start
workers0=$(rd_workers)

# A session that lives through everything below.
sess_open S || fail "cannot connect to redoubt"
sess_expect "$S" "+OK" SET keeper alive

# protocol_case NAME BYTES [EXACT]: BYTES sent to redoubt must be answered
# by "-ERR Protocol error..." and the connection closed. With EXACT=redis
# the reply must be byte for byte what redis-server answers to BYTES.
protocol_case() {
    local name=$1 bytes=$2 exact=${3:-} rc
    printf '%s' "$bytes" > "$T/$name.in"
    raw_exchange "$RD_PORT" "$T/$name.in" "$T/$name.out" 5
    rc=$?
    [ "$rc" -eq 124 ] && fail "$name: connection not closed within 5 s (got '$(tr '\r\n' '~|' < "$T/$name.out")')"
    [ "$rc" -eq 3 ] && fail "$name: cannot connect to redoubt"
    local got
    got=$(tr -d '\r' < "$T/$name.out" | grep -a -m1 -- '^-')
    assert_prefix "-ERR Protocol error" "$got" "$name"
    if [ "$exact" = redis ]; then
        raw_exchange "${RD_REDIS_PORT[a]}" "$T/$name.in" "$T/$name.redis" 5 ||
            fail "$name: redis-server itself did not close (test bug)"
        cmp -s "$T/$name.redis" "$T/$name.out" ||
            fail "$name: redoubt answered '$(tr '\r\n' '~|' < "$T/$name.out")', redis-server answers '$(tr '\r\n' '~|' < "$T/$name.redis")'"
    fi
    # The server goes on serving other sessions.
    assert_eq PONG "$(rcli PING)" "PING on a new session after $name"
}

protocol_case bad-bulk-length $'*1\r\n$blabla\r\n' redis
protocol_case huge-multibulk $'*3000000000\r\n' redis
protocol_case negative-bulk $'*2\r\n$4\r\nECHO\r\n$-5\r\n' redis
protocol_case not-a-bulk $'*1\r\nfoo\r\n' redis
protocol_case unbalanced-quotes $'SET "abc def\r\n' redis
protocol_case unbalanced-single $'SET \'abc\r\n' redis
protocol_case after-good-replies $'PING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nok\r\n*1\r\n$x\r\nPING\r\n' redis

# Over the configured limits (redis's own limits are larger, so only the
# prefix is compared).
big=$(printf '%*s' 2000 '' | tr ' ' x)
protocol_case bulk-over-limit $'*2\r\n$4\r\nECHO\r\n$2000\r\n'"$big"$'\r\n'
protocol_case bulk-header-only $'*2\r\n$4\r\nECHO\r\n$1025\r\n'
protocol_case inline-over-limit "$big"
# Within the limits the same commands work.
ok=$(printf '%*s' 1000 '' | tr ' ' y)
assert_eq "$ok" "$(rcli ECHO "$ok")" "ECHO of a 1000-byte bulk (under max_bulk_length)"
printf 'ECHO %s\r\nQUIT\r\n' "$ok" > "$T/inline-ok.in"
raw_exchange "$RD_PORT" "$T/inline-ok.in" "$T/inline-ok.out" 5 || fail "inline command under max_inline_length: no close after QUIT"
assert_eq "\$1000|$ok|+OK|" "$(tr -d '\r' < "$T/inline-ok.out" | tr '\n' '|')" "inline ECHO under max_inline_length"

# The long-lived session and the workers survived all of it.
sess_expect "$S" "alive" GET keeper
assert_eq "$workers0" "$(rd_workers)" "worker pids after the malformed input (a worker crashed?)"

# max_bulk_length limits what clients send, not what Redis answers: a value
# set directly in Redis, larger than the limit, can be read through redoubt.
sess_expect "$S" ":$value_size" STRLEN bigvalue
rcli GET bigvalue | head -c -1 > "$T/value.via"
cmp -s "$T/value" "$T/value.via" ||
    fail "GET of a $value_size-byte value with max_bulk_length = 1kb: got '$(head -c 200 "$T/value.via")' (the limit must apply to client requests only)"
sess_expect "$S" "alive" GET keeper

sess_close "$S"
pass
