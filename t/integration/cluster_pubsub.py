"""Drive Pub/Sub through redoubt in front of a Redis Cluster
(t_cluster_pubsub.sh). Each step is a function; the script's first
argument names it. Environment: RD_PORT (redoubt, plaintext), PW (alice's
password), NODES (the masters' ports, space separated), CA, CLIENT (the
certificate prefix the nodes accept)."""
import os, socket, ssl, sys, time, threading

RD = int(os.environ["RD_PORT"])
PW = os.environ["PW"]
NODES = [int(p) for p in os.environ.get("NODES", "").split()]


def enc(*a):
    out = b"*%d\r\n" % len(a)
    for x in a:
        x = x if isinstance(x, bytes) else str(x).encode()
        out += b"$%d\r\n%s\r\n" % (len(x), x)
    return out


class Conn:
    """A RESP connection that reads whole frames."""

    def __init__(self, port, tls=False, auth=True, timeout=20, cert=None):
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls:
            ctx = ssl.create_default_context(cafile=os.environ["CA"])
            ctx.check_hostname = False
            cert = cert or os.environ["CLIENT"]
            ctx.load_cert_chain(cert + ".crt", cert + ".key")
            s = ctx.wrap_socket(s)
        self.s = s
        self.buf = b""
        if auth:
            assert self.cmd("AUTH", "alice", PW) == b"+OK\r\n"

    def send(self, *a):
        self.s.sendall(enc(*a))

    def _fill(self):
        d = self.s.recv(1 << 16)
        if not d:
            raise EOFError("connection closed")
        self.buf += d

    def _line(self, pos):
        while True:
            i = self.buf.find(b"\r\n", pos)
            if i >= 0:
                return i
            self._fill()

    def _frame_end(self, pos):
        i = self._line(pos)
        t = self.buf[pos:pos + 1]
        if t in (b"+", b"-", b":"):
            return i + 2
        n = int(self.buf[pos + 1:i])
        if t == b"$":
            if n < 0:
                return i + 2
            while len(self.buf) < i + 2 + n + 2:
                self._fill()
            return i + 2 + n + 2
        p = i + 2
        for _ in range(max(n, 0)):
            p = self._frame_end(p)
        return p

    def frame(self):
        end = self._frame_end(0)
        f, self.buf = self.buf[:end], self.buf[end:]
        return f

    def frames(self, n):
        return b"".join(self.frame() for _ in range(n))

    def cmd(self, *a):
        self.send(*a)
        return self.frame()

    def close(self):
        self.s.close()


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def same(want, got, what):
    if want != got:
        fail("%s:\n  redis:   %r\n  redoubt: %r" % (what, want, got))


def slot_owner(name):
    """The master (port) of name's slot, as the cluster says."""
    for p in NODES:
        d = Conn(p, tls=True)
        r = d.cmd("SSUBSCRIBE", name)
        d.close()
        if r.startswith(b"*"):
            return p
    fail("no master accepts SSUBSCRIBE %s" % name)


def shard_names():
    """One shard channel name per master."""
    names, seen = [], set()
    for j in range(1000):
        n = "sch:%d" % j
        p = slot_owner(n)
        if p not in seen:
            seen.add(p)
            names.append((n, p))
        if len(names) == len(NODES):
            return names
    fail("no shard channel names for every master")


def step_bytes():
    """The subscribe family, subscribed mode and leaving it, byte for byte
    as a node answers the same sequence."""
    sname = "bytes:shard"
    node = slot_owner(sname)
    seq = [
        ("SUBSCRIBE",), ("SUBSCRIBE", "a", "b", "a"), ("PSUBSCRIBE", "p*", "q?"),
        ("SSUBSCRIBE", sname), ("GET", "x"), ("CLIENT", "ID"), ("MULTI",),
        ("PING",), ("PING", "hi"), ("PING", "a", "b"),
        ("UNSUBSCRIBE", "a", "zz"), ("UNSUBSCRIBE",), ("PUNSUBSCRIBE", "p*"),
        ("PUNSUBSCRIBE",), ("GET", "x"), ("SUNSUBSCRIBE", "nope"),
        ("SUNSUBSCRIBE",), ("UNSUBSCRIBE",), ("PUNSUBSCRIBE",),
        ("SUNSUBSCRIBE",), ("PING",), ("SSUBSCRIBE", "{a}1", "{b}1"),
        ("SUBSCRIBE", "again"), ("UNSUBSCRIBE", "again"), ("ECHO", "out"),
    ]
    r, d = Conn(RD), Conn(node, tls=True)
    # One command at a time, and then all of them pipelined.
    for pipelined in (False, True):
        want, got = [], []
        mr, md = Model(), Model()
        for c in seq:
            if pipelined:
                r.send(*c)
            else:
                got.append(replies(r, c, mr))
            want.append(replies(d, c, md))
        if pipelined:
            got = []
            for c in seq:
                try:
                    got.append(replies(r, c, mr, send=False))
                except Exception as e:
                    fail("pipelined: no whole reply to %s (%r) after %r; "
                         "unread: %r" % (" ".join(c), e, got, r.buf))
        for c, w, g in zip(seq, want, got):
            if c == ("SSUBSCRIBE", "{a}1", "{b}1"):
                # A node answers for itself; redoubt as the cluster does.
                same(b"-CROSSSLOT Keys in request don't hash to the same "
                     b"slot\r\n", g, "SSUBSCRIBE across slots")
                continue
            same(w, g, "%s (pipelined: %s)" % (" ".join(c), pipelined))
    r.close()
    d.close()


class Model:
    """What a connection is subscribed to, to know how many frames a
    command is answered with (one per channel)."""

    KIND = {"SUBSCRIBE": 0, "PSUBSCRIBE": 1, "SSUBSCRIBE": 2,
            "UNSUBSCRIBE": 0, "PUNSUBSCRIBE": 1, "SUNSUBSCRIBE": 2}

    def __init__(self):
        self.sets = [set(), set(), set()]

    def nframes(self, c):
        name = c[0].upper()
        if name not in self.KIND:
            return 1
        k = self.KIND[name]
        if name.startswith(("SUB", "PSUB", "SSUB")):
            if len(c) < 2:
                return 1                    # an arity error
            if k == 2 and len(set(Conn_slot(x) for x in c[1:])) > 1:
                return 1                    # CROSSSLOT or MOVED
            self.sets[k].update(c[1:])
            return len(c) - 1
        if len(c) > 1:
            self.sets[k].difference_update(c[1:])
            return len(c) - 1
        n = max(len(self.sets[k]), 1)
        self.sets[k] = set()
        return n


def Conn_slot(name):
    h = name
    i = name.find("{")
    if i >= 0:
        j = name.find("}", i + 1)
        if j > i + 1:
            h = name[i + 1:j]
    crc = 0
    for b in h.encode():
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xffff
    return crc % 16384


def replies(conn, c, model, send=True):
    if send:
        conn.send(*c)
    return conn.frames(model.nframes(c))


def step_messages():
    """Publishers on every master, straight and through redoubt, a pattern
    and a channel: every message arrives, in order per publisher."""
    sub = Conn(RD)
    same(b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n", sub.cmd("SUBSCRIBE", "ch"), "SUBSCRIBE ch")
    same(b"*3\r\n$10\r\npsubscribe\r\n$6\r\nnews.*\r\n:2\r\n", sub.cmd("PSUBSCRIBE", "news.*"), "PSUBSCRIBE news.*")
    want = []
    for p in NODES:
        d = Conn(p, tls=True)
        d.cmd("PUBLISH", "ch", "from-%d" % p)
        d.close()
        want.append(b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n" + enc("from-%d" % p)[4:])
    pub = Conn(RD)
    pub.cmd("PUBLISH", "news.today", "hello")
    want.append(b"*4\r\n$8\r\npmessage\r\n$6\r\nnews.*\r\n$10\r\nnews.today\r\n$5\r\nhello\r\n")
    got = [sub.frame() for _ in want]
    for w, g in zip(want, got):
        same(w, g, "a message")
    pub.close()
    sub.close()


def home_of(channel):
    """The master a channel's subscriber is on (PUBSUB NUMSUB straight)."""
    for p in NODES:
        d = Conn(p, tls=True)
        r = d.cmd("PUBSUB", "NUMSUB", channel)
        d.close()
        if r.endswith(b":1\r\n"):
            return p
    fail("no master has a subscriber of %s" % channel)


def step_order():
    """10,000 messages arrive in order, none lost, while a pipelining
    client shares the worker: on a shard channel published through
    redoubt, and on a channel published straight on the master the
    subscription is on. (Not on a channel published on another master:
    the cluster bus itself drops some of such a burst, straight to the
    nodes as well.)"""
    n = 10000
    sub = Conn(RD)
    if sys.argv[2] == "shard":
        sub.cmd("SSUBSCRIBE", "order")
        pub = Conn(RD)
        verb, kind = "SPUBLISH", b"smessage"
    else:
        sub.cmd("SUBSCRIBE", "order")
        pub = Conn(home_of("order"), tls=True)
        verb, kind = "PUBLISH", b"message"
    stop = threading.Event()
    errors = []

    def pipeliner():
        c = Conn(RD)
        i = 0
        while not stop.is_set():
            batch = b"".join(enc("SET", "pl:%d" % (i + k), i + k) + enc("GET", "pl:%d" % (i + k)) for k in range(32))
            c.s.sendall(batch)
            for k in range(32):
                if c.frame() != b"+OK\r\n":
                    errors.append("SET")
                v = c.frame()
                if v != enc(str(i + k))[4:]:
                    errors.append("GET %r" % v)
            i += 32
        c.close()

    t = threading.Thread(target=pipeliner)
    t.start()
    for base in range(0, n, 500):
        pub.s.sendall(b"".join(enc(verb, "order", i) for i in range(base, base + 500)))
        for _ in range(500):
            if pub.frame() != b":1\r\n":
                fail("%s did not reach exactly one subscriber" % verb)
    for i in range(n):
        try:
            f = sub.frame()
        except Exception as e:
            fail("message %d of %d not delivered (%r); unread: %r"
                 % (i, n, e, sub.buf[:200]))
        same(b"*3\r\n$%d\r\n%s\r\n$5\r\norder\r\n" % (len(kind), kind) + enc(str(i))[4:], f, "message %d" % i)
    stop.set()
    t.join()
    if errors:
        fail("the pipelining client got wrong replies: %s" % errors[:3])
    pub.close()
    sub.close()


def step_shard():
    """Shard channels on every master: SSUBSCRIBE each, SPUBLISH through
    redoubt and straight to the owner."""
    names = shard_names()
    sub = Conn(RD)
    for k, (n, p) in enumerate(names):
        same(b"*3\r\n$10\r\nssubscribe\r\n" + enc(n)[4:] + b":%d\r\n" % (k + 1),
             sub.cmd("SSUBSCRIBE", n), "SSUBSCRIBE %s" % n)
    pub = Conn(RD)
    for n, p in names:
        same(b":1\r\n", pub.cmd("SPUBLISH", n, "via-redoubt"), "SPUBLISH %s through redoubt (the owner counts it)" % n)
        d = Conn(p, tls=True)
        d.cmd("SPUBLISH", n, "direct")
        d.close()
    # In order per channel (each from its own master).
    got = {}
    for _ in range(2 * len(names)):
        f = sub.frame()
        got.setdefault(f.split(b"\r\n")[4].decode(), []).append(f)
    for n, p in names:
        same([b"*3\r\n$8\r\nsmessage\r\n" + enc(n)[4:] + enc(m)[4:]
              for m in ("via-redoubt", "direct")], got.get(n), "smessages on %s" % n)
    pub.close()
    sub.close()


def step_keyspace():
    """Keyspace notifications from keys on every master, one PSUBSCRIBE."""
    keys = os.environ["KEYS"].split()
    sub = Conn(RD)
    same(b"*3\r\n$10\r\npsubscribe\r\n$16\r\n__keyspace@0__:*\r\n:1\r\n",
         sub.cmd("PSUBSCRIBE", "__keyspace@0__:*"), "PSUBSCRIBE keyspace")
    c = Conn(RD)
    for k in keys:
        assert c.cmd("SET", k, "v") == b"+OK\r\n"
    got = set()
    for _ in keys:
        f = sub.frame()
        parts = f.split(b"\r\n")
        if parts[2] != b"pmessage" or parts[8] != b"set":
            fail("unexpected notification %r" % f)
        got.add(parts[6].decode().split(":", 1)[1])
    same(sorted(keys), sorted(got), "keys notified")
    c.close()
    sub.close()


def step_hold():
    """A subscriber that stays open across a node event (run by the
    shell): it subscribes, prints READY, then waits for a message on each
    channel named in argv[2:] (published until it answers)."""
    sub = Conn(RD, timeout=60)
    for ch in sys.argv[2:]:
        if ch.startswith("s:"):
            sub.cmd("SSUBSCRIBE", ch[2:])
        else:
            sub.cmd("SUBSCRIBE", ch)
    print("READY", flush=True)
    want = set(ch[2:] if ch.startswith("s:") else ch for ch in sys.argv[2:])
    while want:
        f = sub.frame()
        parts = f.split(b"\r\n")
        if parts[2] in (b"message", b"smessage") and parts[6] == b"after":
            want.discard(parts[4].decode())
    print("GOT", flush=True)


def step_nopublish():
    """The channels a user's Redis ACL forbids: the node's NOPERM, nothing
    subscribed."""
    c = Conn(RD, auth=False)
    assert c.cmd("AUTH", "chan", os.environ["CHAN_PW"]) == b"+OK\r\n"
    d = Conn(NODES[0], tls=True, auth=False)
    assert d.cmd("AUTH", "chan", os.environ["CHAN_PW"]) == b"+OK\r\n"
    for cmd in (("SUBSCRIBE", "secret"), ("SUBSCRIBE", "ok:1", "secret"), ("PSUBSCRIBE", "*")):
        same(d.cmd(*cmd), c.cmd(*cmd), " ".join(cmd))
    same(d.cmd("SUBSCRIBE", "ok:1"), c.cmd("SUBSCRIBE", "ok:1"), "SUBSCRIBE ok:1")
    c.close()
    d.close()
    # The subscriber connections outlive the subscriptions for a while,
    # not a new AUTH: alice's connection does not serve chan.
    c = Conn(RD)
    c.cmd("SUBSCRIBE", "secret")
    c.cmd("UNSUBSCRIBE", "secret")
    assert c.cmd("AUTH", "chan", os.environ["CHAN_PW"]) == b"+OK\r\n"
    g = c.cmd("SUBSCRIBE", "secret")
    if not g.startswith(b"-NOPERM"):
        fail("SUBSCRIBE secret after AUTH chan (once alice's): %r" % g)
    c.close()


def step_redispy():
    import redis
    r = redis.Redis(host="127.0.0.1", port=RD, username="alice", password=PW)
    p = r.pubsub()
    p.subscribe("py")
    p.psubscribe("py.*")
    got = []
    deadline = time.time() + 10
    while len(got) < 2 and time.time() < deadline:
        m = p.get_message(timeout=1)
        if m:
            got.append(m["type"])
    same(["subscribe", "psubscribe"], got, "redis-py confirmations")
    r.publish("py", "one")
    r.publish("py.x", "two")
    msgs = []
    for m in p.listen():
        msgs.append((m["type"], m["data"]))
        if len(msgs) == 2:
            break
    same([("message", b"one"), ("pmessage", b"two")], msgs, "redis-py listen()")
    p.close()


def step_reset():
    """RESET leaves subscribed mode, drops MULTI, the name and the AUTH
    (the cluster's default user is off: NOAUTH after it), as a node
    answers the same sequence; nothing of the old subscriptions arrives
    after it."""
    node = slot_owner("rk")
    seq = [("CLIENT", "SETNAME", "n1"), ("SUBSCRIBE", "ra"), ("PSUBSCRIBE", "rp*"),
           ("GET", "rk"), ("RESET",), ("GET", "rk"), ("AUTH", "alice", PW),
           ("CLIENT", "GETNAME"), ("MULTI",), ("SET", "rk", "v"), ("RESET",),
           ("AUTH", "alice", PW), ("EXEC",), ("GET", "rk"), ("SSUBSCRIBE", "rk"),
           ("RESET",), ("AUTH", "alice", PW), ("PING",)]
    r, d = Conn(RD), Conn(node, tls=True)
    for c in seq:
        same(d.cmd(*c), r.cmd(*c), " ".join(c))
    pub = Conn(RD)
    for ch in ("ra", "rpx"):
        pub.cmd("PUBLISH", ch, "late")
    pub.cmd("SPUBLISH", "rk", "late")
    time.sleep(0.5)
    same(b"+PONG\r\n", r.cmd("PING"), "PING after RESET (no message of the old subscriptions)")
    same(b"$-1\r\n", r.cmd("GET", "rk"), "GET after RESET and AUTH")
    r.close()
    d.close()
    pub.close()


def step_roles():
    """A role allowed channels "news.*" on a TLS listener: every other
    channel is refused (-NOPERM), a command with one refused channel
    whole, and nothing refused is subscribed on any master."""
    m = Conn(int(os.environ["TL_PORT"]), tls=True, auth=False,
             cert=os.environ["ROLE_CERT"])
    same(b"+OK\r\n", m.cmd("AUTH", "alice", PW), "AUTH through the role")
    for c in (("SUBSCRIBE", "other"), ("SUBSCRIBE", "news.a", "other"),
              ("SSUBSCRIBE", "other"), ("PSUBSCRIBE", "*"),
              ("PSUBSCRIBE", "news*"), ("PUBLISH", "other", "x"),
              ("SPUBLISH", "other", "x")):
        g = m.cmd(*c)
        if not g.startswith(b"-NOPERM"):
            fail("%s through the role: %r" % (" ".join(c), g))
    same(b"*3\r\n$9\r\nsubscribe\r\n$6\r\nnews.a\r\n:1\r\n",
         m.cmd("SUBSCRIBE", "news.a"), "SUBSCRIBE news.a through the role")
    for p in NODES:
        d = Conn(p, tls=True)
        for ch in ("other",):
            r = d.cmd("PUBSUB", "NUMSUB", ch)
            same(b"*2\r\n$5\r\nother\r\n:0\r\n", r, "NUMSUB other on %d" % p)
        r = d.cmd("PUBSUB", "NUMPAT")
        same(b":0\r\n", r, "NUMPAT on %d" % p)
        d.close()
    pub = Conn(RD)
    pub.cmd("PUBLISH", "other", "no")
    pub.cmd("PUBLISH", "news.a", "yes")
    same(b"*3\r\n$7\r\nmessage\r\n$6\r\nnews.a\r\n$3\r\nyes\r\n", m.frame(),
         "the only message through the role")
    pub.close()
    m.close()


def step_limit():
    """limits.max_subscriptions (50 in the test): past it, the error, and
    nothing of the command subscribed."""
    c = Conn(RD)
    chans = ["lim:%d" % i for i in range(50)]
    c.send("SUBSCRIBE", *chans)
    c.frames(50)
    g = c.cmd("PSUBSCRIBE", "lim:x*")
    if not g.startswith(b"-ERR redoubt: too many subscriptions"):
        fail("the 51st subscription: %r" % g)
    same(b"*3\r\n$9\r\nsubscribe\r\n$6\r\nlim:49\r\n:50\r\n",
         c.cmd("SUBSCRIBE", "lim:49"), "a channel already subscribed")
    same(b"*3\r\n$11\r\nunsubscribe\r\n$5\r\nlim:0\r\n:49\r\n",
         c.cmd("UNSUBSCRIBE", "lim:0"), "UNSUBSCRIBE lim:0")
    same(b"*3\r\n$10\r\npsubscribe\r\n$6\r\nlim:x*\r\n:50\r\n",
         c.cmd("PSUBSCRIBE", "lim:x*"), "PSUBSCRIBE once there is room")
    c.close()


if __name__ == "__main__":
    globals()["step_" + sys.argv[1]]()
