#!/bin/bash
# t_pubsub_shard: Redis 7 counts shard channels apart from channels and
# patterns, so a (s)(un)subscribe confirmation may say 0 while the
# connection is still subscribed to the other kind. redoubt must go on
# delivering messages then: each sequence below, straight to Redis and
# through redoubt (standalone), must deliver the same message, and the
# upstream connection must never be taken for a protocol error.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
rd_init
need python3
redis_start a
RPORT=${RD_REDIS_PORT[a]}
rd_conf "$RPORT" > "$T/redoubt.conf"
rd_start
out=$(python3 - "$RD_PORT" "$RPORT" <<'EOF'
import socket, sys, time
rd, rp = int(sys.argv[1]), int(sys.argv[2])
def enc(*a):
    return b"*%d\r\n" % len(a) + b"".join(b"$%d\r\n%s\r\n" % (len(x.encode()), x.encode()) for x in a)
def run(port, seq, pubcmd):
    s = socket.create_connection(("127.0.0.1", port)); s.settimeout(2)
    for c in seq:
        s.sendall(enc(*c)); time.sleep(0.2); s.recv(4096)
    d = socket.create_connection(("127.0.0.1", rp)); d.sendall(enc(*pubcmd)); d.recv(100)
    try:
        return s.recv(4096)
    except socket.timeout:
        return b"(nothing)"
for seq, pub in [([("SUBSCRIBE","a"),("SSUBSCRIBE","s"),("SUNSUBSCRIBE","s")], ("PUBLISH","a","m1")),
                 ([("SUBSCRIBE","a"),("SUNSUBSCRIBE","x")], ("PUBLISH","a","m2")),
                 ([("SSUBSCRIBE","s"),("SUBSCRIBE","a"),("UNSUBSCRIBE","a")], ("SPUBLISH","s","m3"))]:
    want, got = run(rp, seq, pub), run(rd, seq, pub)
    print("%s %s: redis %r, redoubt %r" % ("ok" if want == got else "NOT OK", seq, want, got))
EOF
)
echo "$out"
n=$(grep -c "unexpected data" "$T/error.log")
[ "$n" -eq 0 ] || fail "the upstream connection was taken for a protocol error $n times"
grep -q "NOT OK" <<<"$out" && fail "messages lost after a confirmation with count 0"
pass
