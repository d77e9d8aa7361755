#!/bin/bash
# t_cluster_pubsub_info: PUBSUB CHANNELS / NUMSUB / NUMPAT / SHARDCHANNELS /
# SHARDNUMSUB through redoubt in front of a real 6-node TLS Redis Cluster
# (clients on a plaintext listener, AUTH alice). Each master knows only
# the subscribers connected to it, so redoubt asks every master and
# merges. The subscribers are made straight on the nodes (TLS sockets of
# a python3 helper, held open while it asks): channels on one master and
# on two (the same channel), a pattern per master, shard channels on
# every master (each SSUBSCRIBEd on the owner of its slot), one shard
# channel with two subscribers, and a channel subscribed on a replica
# only (not counted: redoubt asks masters). The same subscriptions are
# made on a standalone redis-server too. Checked, byte for byte:
#   1  CHANNELS, CHANNELS pattern, SHARDCHANNELS, SHARDCHANNELS pattern:
#      the union of the masters' answers without duplicates, in the
#      order first seen over the masters in some order; as a set, what
#      the standalone server answers
#   2  NUMSUB (a channel on two masters, one nobody subscribes, one
#      repeated, none at all), SHARDNUMSUB (a non-owner answers 0 for a
#      shard channel), NUMPAT: the masters' counts added up, and the
#      standalone server's reply
#   3  the errors the nodes give (a CHANNELS with two patterns) come
#      through as they are
# shellcheck disable=SC2119 # cluster_start without extra ACL users
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
rd_init
need_tls
need python3

T_START=$(now_ms)
cluster_start
PW=$CLUSTER_ALICE_PW
note "cluster up in $(( $(now_ms) - T_START )) ms"
redis_start solo

N1=${CLUSTER_PORTS[0]}
N2=${CLUSTER_PORTS[1]}
CONF=$T/redoubt.conf
cat > "$CONF" <<EOF
worker_processes = $RD_WORKERS;
pid_file = "$T/redoubt.pid";
error_log = { path = "$T/error.log"; level = "${RD_LOG_LEVEL:-info}"; };
upstream_tls = { ca_cert = "$CLUSTER_CA/db-client-ca.crt"; ca_key = "$CLUSTER_CA/db-client-ca.key";
                 server_ca = "$CLUSTER_CA/db-ca.crt"; };
listen = ( { address = "127.0.0.1:$RD_PORT"; database = "c"; tls = false; } );
databases = (
  { name = "c"; uri = "rediss://127.0.0.1:$N1?mode=cluster"; connect_timeout = "2s";
    cluster = { seeds = [ "127.0.0.1:$N2" ]; }; }
);
EOF
rd_start "$CONF"

mapfile -t MASTERS < <(cluster_masters)
[ "${#MASTERS[@]}" -eq 3 ] || fail "expected 3 masters: ${MASTERS[*]}"
REPLICA=$(cluster_nodes | awk '$3 ~ /slave/ && $3 !~ /fail/ {
    a = $2; sub(/@.*/, "", a); sub(/.*:/, "", a); print a; exit }')
[ -n "$REPLICA" ] || fail "no replica in CLUSTER NODES"

out=$(python3 - "$RD_PORT" "${RD_REDIS_PORT[solo]}" "$REPLICA" "$PW" \
          "$CLUSTER_CLIENT" "$CLUSTER_CA/db-ca.crt" "${MASTERS[@]}" <<'EOF'
import itertools, socket, ssl, sys, time

rd_port, solo_port, replica = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
pw, client, ca = sys.argv[4], sys.argv[5], sys.argv[6]
masters = [int(p) for p in sys.argv[7:]]
ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(client + ".crt", client + ".key")
ctx.check_hostname = False
bad = 0

def enc(*a):
    out = b"*%d\r\n" % len(a)
    for x in a:
        x = x.encode() if isinstance(x, str) else x
        out += b"$%d\r\n%s\r\n" % (len(x), x)
    return out

class Conn:
    def __init__(self, port, tls, auth=True):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.s = ctx.wrap_socket(s, server_hostname="localhost") if tls else s
        self.buf = b""
        if auth:
            assert self.cmd("AUTH", "alice", pw) == b"+OK\r\n"
    def fill(self):
        d = self.s.recv(65536)
        if not d:
            raise EOFError("connection closed")
        self.buf += d
    def line(self, at):
        while True:
            i = self.buf.find(b"\r\n", at)
            if i >= 0:
                return i
            self.fill()
    # The end offset of the reply starting at offset at (the whole of it
    # read into buf).
    def skip(self, at):
        e = self.line(at)
        t, n = self.buf[at:at + 1], self.buf[at + 1:e]
        at = e + 2
        if t == b"$" and int(n) >= 0:
            while len(self.buf) < at + int(n) + 2:
                self.fill()
            return at + int(n) + 2
        if t == b"*":
            for _ in range(max(int(n), 0)):
                at = self.skip(at)
        return at
    def reply(self):
        e = self.skip(0)
        r, self.buf = self.buf[:e], self.buf[e:]
        return r
    def cmd(self, *a):
        self.s.sendall(enc(*a))
        return self.reply()

def parse(b):
    """A reply's value: bytes, int, list, or ('err', text)."""
    def go(at):
        e = b.index(b"\r\n", at)
        t, n = b[at:at + 1], b[at + 1:e]
        at = e + 2
        if t == b"+":
            return n, at
        if t == b"-":
            return ("err", n), at
        if t == b":":
            return int(n), at
        if t == b"$":
            if int(n) < 0:
                return None, at
            return b[at:at + int(n)], at + int(n) + 2
        v = []
        for _ in range(int(n)):
            x, at = go(at)
            v.append(x)
        return v, at
    return go(0)[0]

def array(elems):
    return b"*%d\r\n" % len(elems) + b"".join(b"$%d\r\n%s\r\n" % (len(e), e) for e in elems)

def check(what, want, got):
    global bad
    ok = want == got
    bad += not ok
    print("%s %s: want %r, got %r" % ("ok" if ok else "NOT OK", what, want, got))

# Where each shard channel goes: the master serving its slot.
node = Conn(masters[0], True)
owner = {}
for lo, hi, m, *_ in parse(node.cmd("CLUSTER", "SLOTS")):
    for s in range(lo, hi + 1):
        owner[s] = m[1]
def slot_owner(ch):
    return owner[parse(node.cmd("CLUSTER", "KEYSLOT", ch))]
shard = {m: [] for m in masters}
for i in itertools.count():
    ch = "sh:%d" % i
    o = slot_owner(ch)
    if len(shard[o]) < 2:
        shard[o].append(ch)
    if all(len(v) == 2 for v in shard.values()):
        break

# The subscriptions: (port, command, args). The same ones go to the
# standalone server (solo), but for the replica's.
a, b, c = masters
subs = [
    (a, "SUBSCRIBE", ["news", "both", "only-a"]),
    (b, "SUBSCRIBE", ["both", "sports"]),
    (b, "SUBSCRIBE", ["sports"]),
    (c, "SUBSCRIBE", ["weather"]),
    (a, "PSUBSCRIBE", ["pa:*"]),
    (b, "PSUBSCRIBE", ["pb:*", "pb:?"]),
    (c, "PSUBSCRIBE", ["pc:*"]),
]
for m in masters:
    subs.append((m, "SSUBSCRIBE", shard[m][:1]))
    subs.append((m, "SSUBSCRIBE", shard[m][1:]))
twice = shard[c][0]
subs.append((c, "SSUBSCRIBE", [twice]))
held = []
for port, verb, chans in subs:
    for target in (port, "solo"):
        cn = Conn(solo_port, False, auth=False) if target == "solo" else Conn(port, True)
        cn.s.sendall(enc(verb, *chans))
        for ch in chans:
            r = parse(cn.reply())
            assert r[1] == ch.encode(), (verb, ch, r)
        held.append(cn)
# Only on a replica: redoubt asks the masters, not it.
rep = Conn(replica, True)
rep.s.sendall(enc("SUBSCRIBE", "on-replica"))
assert parse(rep.reply())[1] == b"on-replica"
held.append(rep)

gw = Conn(rd_port, False)
solo = Conn(solo_port, False, auth=False)
nodes = [Conn(m, True) for m in masters]

# 1: the union, as first seen over the masters in one of their orders.
def unions(parts):
    out = []
    for order in itertools.permutations(parts):
        seen, elems = set(), []
        for p in order:
            for e in p:
                if e not in seen:
                    seen.add(e)
                    elems.append(e)
        out.append(array(elems))
    return out
for q in (["CHANNELS"], ["CHANNELS", "*o*"], ["CHANNELS", "nothing*"],
          ["SHARDCHANNELS"], ["SHARDCHANNELS", "sh:[0-4]*"]):
    parts = [parse(n.cmd("PUBSUB", *q)) for n in nodes]
    got = gw.cmd("PUBSUB", *q)
    ok = got in unions(parts)
    bad += not ok
    print("%s PUBSUB %s: the union of %r, got %r" % ("ok" if ok else "NOT OK", " ".join(q), parts, got))
    check("PUBSUB %s as a set, against one redis" % " ".join(q),
          sorted(parse(solo.cmd("PUBSUB", *q))), sorted(parse(got)))
check("CHANNELS: both once", 1, parse(gw.cmd("PUBSUB", "CHANNELS")).count(b"both"))

# 2: the counts added up, channel by channel.
def sums(parts):
    n = parts[0]
    out = b"*%d\r\n" % len(n)
    for k in range(0, len(n), 2):
        out += b"$%d\r\n%s\r\n" % (len(n[k]), n[k])
        out += b":%d\r\n" % sum(p[k + 1] for p in parts)
    return out
allshard = [ch for m in masters for ch in shard[m]]
for q in (["NUMSUB", "both", "nobody", "sports", "news", "both", "weather", "only-a", "on-replica"],
          ["NUMSUB"], ["NUMSUB", "pa:*"],
          ["SHARDNUMSUB"] + allshard + [twice, "sh:nobody"], ["SHARDNUMSUB"]):
    parts = [parse(n.cmd("PUBSUB", *q)) for n in nodes]
    got = gw.cmd("PUBSUB", *q)
    check("PUBSUB %s: the sum" % " ".join(q), sums(parts), got)
    check("PUBSUB %s: as one redis" % " ".join(q), solo.cmd("PUBSUB", *q), got)
for m, n in zip(masters, nodes):
    counts = parse(n.cmd("PUBSUB", "SHARDNUMSUB", *allshard))
    want = [x for ch in allshard
            for x in (ch.encode(), (2 if ch == twice else 1) if ch in shard[m] else 0)]
    check("SHARDNUMSUB straight to %d: 0 for other masters' shard channels" % m, want, counts)
parts = [parse(n.cmd("PUBSUB", "NUMPAT")) for n in nodes]
check("NUMPAT: the sum", b":%d\r\n" % sum(parts), gw.cmd("PUBSUB", "NUMPAT"))
check("NUMPAT: as one redis", solo.cmd("PUBSUB", "NUMPAT"), gw.cmd("PUBSUB", "NUMPAT"))
check("NUMSUB on-replica: not counted", [b"on-replica", 0],
      parse(gw.cmd("PUBSUB", "NUMSUB", "on-replica")))

# 3: errors as the nodes give them.
for q in (["CHANNELS", "a", "b"], ["SHARDCHANNELS", "a", "b"]):
    check("PUBSUB %s: the node's error" % " ".join(q), nodes[0].cmd("PUBSUB", *q),
          gw.cmd("PUBSUB", *q))
# Still one session, still in order.
check("PING after", b"+PONG\r\n", gw.cmd("PING"))
print("bad", bad)
EOF
) || { printf '%s\n' "$out" >&2; fail "the python3 helper failed"; }
printf '%s\n' "$out" | sed 's/^/# /' >&2
grep -q "NOT OK" <<<"$out" && fail "PUBSUB through redoubt differs: $(grep "NOT OK" <<<"$out")"
grep -qx "bad 0" <<<"$out" || fail "the helper did not finish"
note "total $(( $(now_ms) - T_START )) ms"
pass
