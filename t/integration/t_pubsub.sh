#!/bin/bash
# t_pubsub: Pub/Sub through redoubt to a standalone redis-server.
# SUBSCRIBE/PSUBSCRIBE/UNSUBSCRIBE sequences answered byte for byte as
# redis-server answers them (several channels per command, UNSUBSCRIBE
# without arguments, commands refused in subscribed mode, PING there,
# RESET, leaving subscribed mode); messages and pmessages from PUBLISH
# through redoubt and straight to Redis; 10,000 messages in order while
# another client pipelines on the same worker; a subscriber that never
# reads disconnected at limits.pubsub_output_limit while another session
# goes on; limits.max_subscriptions; the subscription surviving a restart
# of redis-server (redoubt subscribes again); redis-py's pubsub().
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
rd_init
need python3

redis_start a
RPORT=${RD_REDIS_PORT[a]}
rd_conf "$RPORT" 'limits = { max_subscriptions = 50;
  pubsub_output_limit = { hard = "1mb"; soft = "512kb"; soft_seconds = 60; }; };' > "$T/redoubt.conf"
rd_start

PY=$T/ps.py
cat > "$PY" <<'EOF'
import socket, sys, time, threading

def enc(*a):
    out = b"*%d\r\n" % len(a)
    for x in a:
        x = x if isinstance(x, bytes) else str(x).encode()
        out += b"$%d\r\n%s\r\n" % (len(x), x)
    return out

def conn(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(20)
    return s

def until_eof(s):
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            return data
        data += b

def readn(s, n):
    data = b""
    while len(data) < n:
        b = s.recv(n - len(data))
        if not b:
            raise EOFError("closed after %d of %d bytes" % (len(data), n))
        data += b
    return data

def script(port, cmds):
    s = conn(port)
    s.sendall(b"".join(enc(*c) for c in cmds))
    d = until_eof(s)
    s.close()
    return d

mode = sys.argv[1]
rd, rp = int(sys.argv[2]), int(sys.argv[3])

if mode == "compare":
    seqs = [
        [("SUBSCRIBE", "a", "b", "c"), ("PSUBSCRIBE", "p*", "q*"),
         ("SUBSCRIBE", "a"), ("GET", "x"), ("SET", "x", "1"), ("PING",),
         ("PING", "hello"), ("UNSUBSCRIBE", "b"), ("UNSUBSCRIBE",),
         ("PUNSUBSCRIBE",), ("UNSUBSCRIBE",), ("PUNSUBSCRIBE", "nope"),
         ("GET", "x"), ("PING",), ("QUIT",)],
        [("SUBSCRIBE", "z"), ("MULTI",), ("RESET",), ("GET", "x"),
         ("PING",), ("QUIT",)],
        [("UNSUBSCRIBE",), ("SUBSCRIBE",), ("SSUBSCRIBE", "s1", "s2"),
         ("SUNSUBSCRIBE",), ("PING",), ("QUIT",)],
    ]
    bad = 0
    for i, seq in enumerate(seqs):
        want = script(rp, seq)
        got = script(rd, seq)
        if want != got:
            bad += 1
            print("sequence %d differs:\nredis:   %r\nredoubt: %r" % (i, want, got))
    sys.exit(1 if bad else 0)

if mode == "messages":
    # a subscriber; PUBLISH through redoubt and straight to redis
    sub = conn(rd)
    sub.sendall(enc("SUBSCRIBE", "news") + enc("PSUBSCRIBE", "ev.*"))
    hdr = readn(sub, len(b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n"
                        b"*3\r\n$10\r\npsubscribe\r\n$4\r\nev.*\r\n:2\r\n"))
    pub = conn(rd)
    pub.sendall(enc("PUBLISH", "news", "via-redoubt"))
    assert readn(pub, 4) == b":1\r\n", "PUBLISH through redoubt: one receiver"
    d = conn(rp)
    d.sendall(enc("PUBLISH", "ev.x", "direct"))
    assert readn(d, 4) == b":1\r\n"
    want = (b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$11\r\nvia-redoubt\r\n"
            b"*4\r\n$8\r\npmessage\r\n$4\r\nev.*\r\n$4\r\nev.x\r\n$6\r\ndirect\r\n")
    got = readn(sub, len(want))
    assert got == want, "messages: %r" % got
    pub.sendall(enc("PUBSUB", "NUMSUB", "news") + enc("PUBSUB", "NUMPAT"))
    want = b"*2\r\n$4\r\nnews\r\n:1\r\n:1\r\n"
    got = readn(pub, len(want))
    assert got == want, "PUBSUB NUMSUB/NUMPAT: %r" % got
    print("ok")

if mode == "inorder":
    # 10,000 messages in order while another session pipelines
    N = 10000
    sub = conn(rd)
    sub.sendall(enc("SUBSCRIBE", "seq"))
    readn(sub, len(b"*3\r\n$9\r\nsubscribe\r\n$3\r\nseq\r\n:1\r\n"))
    stop = []
    res = {}
    def pipeliner():
        p = conn(rd)
        k = 0
        while not stop:
            p.sendall(b"".join(enc("INCR", "pipe") for _ in range(200)))
            got = b""
            while got.count(b"\r\n") < 200:
                got += p.recv(65536)
            k += 200
        res["pipe"] = k
    t = threading.Thread(target=pipeliner)
    t.start()
    d = conn(rp)
    d.sendall(b"".join(enc("PUBLISH", "seq", "m%d" % i) for i in range(N)))
    expect = b"".join(b"*3\r\n$7\r\nmessage\r\n$3\r\nseq\r\n$%d\r\nm%d\r\n"
                      % (len(b"m%d" % i), i) for i in range(N))
    got = readn(sub, len(expect))
    stop.append(1)
    t.join()
    assert got == expect, "10,000 messages out of order or lost"
    print("ok pipelined %d" % res["pipe"])

if mode == "slow":
    # a subscriber that never reads: closed at the hard limit (1 MB);
    # another session on the worker keeps its answers
    sub = conn(rd)
    sub.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sub.sendall(enc("SUBSCRIBE", "flood"))
    time.sleep(0.3)
    other = conn(rd)
    d = conn(rp)
    big = "x" * 10000
    closed = False
    # Until redoubt closed it, at most 20 s: the kernel's socket buffers
    # take a few MB first, and a slow (sanitizer, loaded) worker reads
    # the messages from Redis at its own pace (one pause every 50 lets it
    # keep up, so that Redis's own limit on redoubt's connection is not
    # what ends the subscription).
    deadline = time.time() + 20
    i = 0
    while time.time() < deadline:
        d.sendall(enc("PUBLISH", "flood", big))
        r = readn(d, 4)
        if r == b":0\r\n":
            closed = True
            break
        i += 1
        if i % 50 == 0:
            time.sleep(0.01)
    assert closed, "the slow subscriber was never disconnected"
    other.sendall(enc("PING"))
    assert readn(other, 7) == b"+PONG\r\n", "the other session"
    print("ok after %d messages" % i)

if mode == "maxsubs":
    s = conn(rd)
    s.sendall(enc("SUBSCRIBE", *["c%d" % i for i in range(50)]))
    readn(s, sum(len(b"*3\r\n$9\r\nsubscribe\r\n$%d\r\nc%d\r\n:%d\r\n"
                     % (len(b"c%d" % i), i, i + 1)) for i in range(50)))
    s.sendall(enc("SUBSCRIBE", "c1", "c2") + enc("PSUBSCRIBE", "more"))
    want = (b"*3\r\n$9\r\nsubscribe\r\n$2\r\nc1\r\n:50\r\n"
            b"*3\r\n$9\r\nsubscribe\r\n$2\r\nc2\r\n:50\r\n")
    got = readn(s, len(want))
    assert got == want, "already subscribed channels count: %r" % got
    line = b""
    while not line.endswith(b"\r\n"):
        line += s.recv(1)
    assert line.startswith(b"-ERR redoubt: too many subscriptions"), line
    print("ok")

if mode == "restart-sub":
    s = conn(rd)
    s.sendall(enc("SUBSCRIBE", "after") + enc("PSUBSCRIBE", "pa*"))
    readn(s, len(b"*3\r\n$9\r\nsubscribe\r\n$5\r\nafter\r\n:1\r\n"
                 b"*3\r\n$10\r\npsubscribe\r\n$3\r\npa*\r\n:2\r\n"))
    print("subscribed", flush=True)
    sys.stdin.readline()          # redis restarted meanwhile
    d = conn(rp)
    for _ in range(100):
        d.sendall(enc("PUBSUB", "NUMPAT"))
        if readn(d, 4) == b":1\r\n":
            break
        time.sleep(0.1)
    d.sendall(enc("PUBLISH", "after", "one") + enc("PUBLISH", "pax", "two"))
    want = (b"*3\r\n$7\r\nmessage\r\n$5\r\nafter\r\n$3\r\none\r\n"
            b"*4\r\n$8\r\npmessage\r\n$3\r\npa*\r\n$3\r\npax\r\n$3\r\ntwo\r\n")
    got = readn(s, len(want))
    assert got == want, "after the restart: %r" % got
    print("ok")
EOF

py() { timeout 60 python3 "$PY" "$@" "$RD_PORT" "$RPORT"; }

out=$(py compare 2>&1) || fail "replies differ from redis-server's: $out"
note "(P|S)SUBSCRIBE/UNSUBSCRIBE sequences, refused commands, PING, RESET: byte for byte as redis-server"

out=$(py messages 2>&1) || fail "messages: $out"
note "message and pmessage, PUBLISH through redoubt and direct, PUBSUB NUMSUB/NUMPAT"

out=$(py inorder 2>&1) || fail "in order: $out"
note "10,000 messages in order, none lost, while a session pipelines on the worker ($out)"

out=$(py slow 2>&1) || fail "slow subscriber: $out"
grep -q 'subscriber output limit (hard' "$T/error.log" || fail "no error log line for the slow subscriber"
note "a subscriber that never reads is disconnected at the limit, the other session answered ($out)"

out=$(py maxsubs 2>&1) || fail "max_subscriptions: $out"
note "limits.max_subscriptions"

coproc RS { timeout 60 python3 "$PY" restart-sub "$RD_PORT" "$RPORT" 2>&1; }
read -r -t 20 line <&"${RS[0]}"
assert_eq subscribed "$line" "subscribed before the restart"
redis_stop a
redis_start a "$RPORT"
echo go >&"${RS[1]}"
read -r -t 40 line <&"${RS[0]}"
assert_eq ok "$line" "messages after redis-server restarted"
grep -q 'subscribed again to 2 channels and patterns' "$T/error.log" || fail "no log line for the resubscription"
note "redis-server restarted: redoubt subscribes again, messages arrive"

pick_py() {
    local py
    for py in python3 /usr/bin/python3; do
        if command -v "$py" >/dev/null && "$py" -c 'import redis' 2>/dev/null; then
            echo "$py"; return 0
        fi
    done
    return 1
}
if pyr=$(pick_py); then
    out=$(timeout 30 "$pyr" - "$RD_PORT" <<'EOF' 2>&1
import sys, redis
r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]))
p = r.pubsub()
p.subscribe("py")
p.psubscribe("py.*")
seen = []
# the confirmations first: a message published before Redis has the
# subscription reaches nobody
for _ in range(2):
    m = p.get_message(timeout=10)
    seen.append((m["type"], m["channel"], m["data"]))
r.publish("py", "hello")
r.publish("py.x", "world")
for m in p.listen():
    seen.append((m["type"], m["channel"], m["data"]))
    if len(seen) == 4:
        break
p.close()
print(seen)
EOF
)
    assert_eq "[('subscribe', b'py', 1), ('psubscribe', b'py.*', 2), ('message', b'py', b'hello'), ('pmessage', b'py.x', b'world')]" "$out" "redis-py pubsub() and listen()"
    note "redis-py pubsub() and listen()"
else
    note "redis-py not found: its check skipped"
fi

rd_stop
pass
