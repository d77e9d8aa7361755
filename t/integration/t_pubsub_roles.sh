#!/bin/bash
# t_pubsub_roles: a role's channel rules (modules/rbac, rd_rbac_find_channel)
# on Pub/Sub through redoubt to a standalone redis-server. A role allowed
# channels "news.*": SUBSCRIBE/PUBLISH/SSUBSCRIBE/SPUBLISH of news.* pass;
# any other channel is refused (-NOPERM), and a command with one refused
# channel is refused whole (nothing subscribed: PUBSUB NUMSUB straight on
# Redis); PSUBSCRIBE passes only with the rule's own pattern, literally
# (not "*", "news*", nor the narrower "news.a"); UNSUBSCRIBE & co. always
# pass; EVAL, MULTI and RESET do not get around the rule. A role with deny
# channels "secret" refuses SUBSCRIBE secret, PUBLISH secret and every
# PSUBSCRIBE. Redis is the oracle: a subscriber straight on Redis to
# every channel ("*") sees only what the roles allowed to be published.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
rd_init
need_tls
need python3

CA=$T/ca
ctl ca init "$CA"
CACERT=$CA/db-ca.crt
ctl cert server --ca-dir "$CA" --host localhost,127.0.0.1 --out "$T/redoubt"

redis_start a
RPORT=${RD_REDIS_PORT[a]}

CONF=$T/redoubt.conf
cat > "$CONF" <<EOF
# redoubt test configuration for $RD_TEST
worker_processes = $RD_WORKERS;
pid_file = "$T/redoubt.pid";
worker_shutdown_timeout = "10s";
error_log = { path = "$T/error.log"; level = "debug"; };
tls = { certificate = "$T/redoubt.crt"; certificate_key = "$T/redoubt.key";
        client_ca = "$CA/user-ca.crt"; };
listen = ( { address = "127.0.0.1:$RD_PORT"; database = "db"; } );
databases = ( { name = "db"; uri = "redis://127.0.0.1:$RPORT";
                connect_timeout = "2s"; labels = { env = "test"; }; } );
roles = (
  { name = "news";
    allow = { db_labels = { * = "*"; }; db_users = [ "default" ];
              channels = [ "news.*" ]; }; },
  { name = "no-secret";
    allow = { db_labels = { * = "*"; }; db_users = [ "default" ];
              channels = [ "*" ]; };
    deny = { channels = [ "secret" ]; }; }
);
EOF
out=$("$REDOUBT" -t -c "$CONF" 2>&1) || fail "-t on the configuration: $out"
rd_start "$CONF"

user "$T/news" --user mallory --roles news
user "$T/nosecret" --user eve --roles no-secret

PY=$T/roles.py
cat > "$PY" <<'EOF'
import socket, ssl, sys, time

rd, rp, ca, tdir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]

def enc(*a):
    out = b"*%d\r\n" % len(a)
    for x in a:
        x = x if isinstance(x, bytes) else str(x).encode()
        out += b"$%d\r\n%s\r\n" % (len(x), x)
    return out

class Conn:
    def __init__(self, port, cert=None):
        s = socket.create_connection(("127.0.0.1", port))
        if cert:
            ctx = ssl.create_default_context(cafile=ca)
            ctx.check_hostname = False
            ctx.load_cert_chain(cert + ".crt", cert + ".key")
            s = ctx.wrap_socket(s)
        s.settimeout(10)
        self.s, self.buf = s, b""

    def fill(self):
        b = self.s.recv(65536)
        if not b:
            raise EOFError("connection closed")
        self.buf += b

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        l, self.buf = self.buf.split(b"\r\n", 1)
        return l

    def read(self):
        l = self.line()
        t, rest = l[:1], l[1:]
        if t in (b"+", b"-", b":"):
            return (t + rest).decode()
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.fill()
            v, self.buf = self.buf[:n], self.buf[n + 2:]
            return v.decode()
        if t == b"*":
            return [self.read() for _ in range(int(rest))]
        raise ValueError("bad reply %r" % l)

    def cmd(self, *a):
        self.s.sendall(enc(*a))
        return self.read()

    def quiet(self, secs=0.3):
        """Nothing more arrives within secs."""
        self.s.settimeout(secs)
        try:
            self.fill()
            return False
        except socket.timeout:
            return True
        finally:
            self.s.settimeout(10)

bad = 0
def check(want, got, what):
    global bad
    if want != got:
        bad += 1
        print("not ok: %s\n  want %r\n  got  %r" % (what, want, got))

def noperm(ch, user="default"):
    return ('-NOPERM redoubt: channel \'%s\' is not allowed on database '
            '"db" as user "%s"' % (ch, user))

direct = lambda *a: Conn(rp).cmd(*a)

# The oracle: straight on Redis, every message published anywhere.
spy = Conn(rp)
check(["psubscribe", "*", ":1"], spy.cmd("PSUBSCRIBE", "*"), "spy")

news = tdir + "/news"
sub = Conn(rd, news)
pub = Conn(rd, news)

# --- allowed channels -------------------------------------------------
check(["subscribe", "news.a", ":1"], sub.cmd("SUBSCRIBE", "news.a"), "SUBSCRIBE news.a")
check(":2", pub.cmd("PUBLISH", "news.a", "m1"), "PUBLISH news.a (and the spy)")
check(["message", "news.a", "m1"], sub.read(), "news.a's message")

# --- refused channels, the whole command ------------------------------
check(noperm("other"), sub.cmd("SUBSCRIBE", "other"), "SUBSCRIBE other")
check(noperm("other"), sub.cmd("SUBSCRIBE", "news.b", "other"),
      "SUBSCRIBE news.b other")
check(noperm("other"), sub.cmd("subscribe", "other", "news.c"),
      "subscribe other news.c")
fresh = Conn(rd, news)     # not yet subscribed
check(noperm("other"), fresh.cmd("SUBSCRIBE", "news.a", "other"),
      "SUBSCRIBE news.a other (fresh session)")
check("+PONG", fresh.cmd("PING"), "the fresh session is not subscribed")
check(["news.b", ":0", "other", ":0", "news.c", ":0", "news.a", ":1"],
      direct("PUBSUB", "NUMSUB", "news.b", "other", "news.c", "news.a"),
      "PUBSUB NUMSUB straight on Redis: nothing of a refused command")
check(":1", direct("PUBLISH", "other", "x0"), "PUBLISH other straight: the spy only")
check(":1", direct("PUBLISH", "news.b", "x1"), "PUBLISH news.b straight: the spy only")
check(True, sub.quiet(), "nothing for the subscriber of news.a")

# --- patterns: the rule's own pattern, literally ----------------------
for p in ["*", "news*", "news.a", "news.?", "news.**", "new[s].*"]:
    check(noperm(p), sub.cmd("PSUBSCRIBE", p), "PSUBSCRIBE " + p)
check(noperm("*"), sub.cmd("PSUBSCRIBE", "news.*", "*"), "PSUBSCRIBE news.* *")
check(":1", direct("PUBSUB", "NUMPAT"), "NUMPAT straight: the spy's only")
check(["psubscribe", "news.*", ":2"], sub.cmd("PSUBSCRIBE", "news.*"),
      "PSUBSCRIBE news.*")
check(":2", direct("PUBSUB", "NUMPAT"), "NUMPAT straight: the spy's and news.*")
check(":2", pub.cmd("PUBLISH", "news.z", "m2"), "PUBLISH news.z (and the spy)")
check(["pmessage", "news.*", "news.z", "m2"], sub.read(), "news.z's pmessage")

# --- shard channels (a session of their own) -------------------------
ssub = Conn(rd, news)
check(noperm("other"), ssub.cmd("SSUBSCRIBE", "other"), "SSUBSCRIBE other")
check(noperm("other"), ssub.cmd("SSUBSCRIBE", "news.s", "other"),
      "SSUBSCRIBE news.s other")
check(["ssubscribe", "news.s", ":1"], ssub.cmd("SSUBSCRIBE", "news.s"),
      "SSUBSCRIBE news.s")
check(noperm("other"), pub.cmd("SPUBLISH", "other", "x2"), "SPUBLISH other")
check(":1", pub.cmd("SPUBLISH", "news.s", "m3"), "SPUBLISH news.s")
check(["smessage", "news.s", "m3"], ssub.read(), "news.s's smessage")
check(["sunsubscribe", "other", ":1"], ssub.cmd("SUNSUBSCRIBE", "other"),
      "SUNSUBSCRIBE other")
check(["sunsubscribe", "news.s", ":0"], ssub.cmd("SUNSUBSCRIBE", "news.s"),
      "SUNSUBSCRIBE news.s")
check("+PONG", ssub.cmd("PING"), "out of subscribed mode")

# --- leaving is always allowed ----------------------------------------
check(["unsubscribe", "other", ":2"], sub.cmd("UNSUBSCRIBE", "other"),
      "UNSUBSCRIBE other")
check(["punsubscribe", "*", ":2"], sub.cmd("PUNSUBSCRIBE", "*"), "PUNSUBSCRIBE *")

# --- publishing elsewhere, and the ways around it ---------------------
check(noperm("other"), pub.cmd("PUBLISH", "other", "x3"), "PUBLISH other")
check(noperm("other"), pub.cmd("publish", "other", "x4"), "publish other")
e = pub.cmd("EVAL", "return redis.call('publish','other','x5')", "0")
check(True, e.startswith("-NOPERM redoubt:"), "EVAL publishing to other: %s" % e)
check("+OK", pub.cmd("MULTI"), "MULTI")
check(noperm("other"), pub.cmd("PUBLISH", "other", "x6"), "PUBLISH other queued")
e = pub.cmd("EXEC")
check(True, e.startswith("-EXECABORT"), "EXEC after a refused PUBLISH: %s" % e)
check(":3", pub.cmd("PUBLISH", "news.a", "m4"), "PUBLISH news.a (both subscriptions, the spy)")
got = sorted(map(tuple, [sub.read(), sub.read()]))
check([("message", "news.a", "m4"), ("pmessage", "news.*", "news.a", "m4")],
      got, "news.a's message and pmessage")

# RESET: back to "default", checked by the same roles.
check("+RESET", sub.cmd("RESET"), "RESET")
check(noperm("other"), sub.cmd("SUBSCRIBE", "other"), "SUBSCRIBE other after RESET")
check(["subscribe", "news.r", ":1"], sub.cmd("SUBSCRIBE", "news.r"), "SUBSCRIBE news.r after RESET")

# --- a deny on channel "secret" ---------------------------------------
ns = Conn(rd, tdir + "/nosecret")
check(noperm("secret"), ns.cmd("SUBSCRIBE", "secret"), "deny: SUBSCRIBE secret")
check(noperm("secret"), ns.cmd("SUBSCRIBE", "public", "secret"),
      "deny: SUBSCRIBE public secret")
check(noperm("secret"), ns.cmd("PUBLISH", "secret", "x7"), "deny: PUBLISH secret")
check(noperm("secret"), ns.cmd("SPUBLISH", "secret", "x8"), "deny: SPUBLISH secret")
for p in ["*", "sec*", "pub*"]:
    check(noperm(p), ns.cmd("PSUBSCRIBE", p), "deny: PSUBSCRIBE " + p)
check(["subscribe", "public", ":1"], ns.cmd("SUBSCRIBE", "public"), "deny: SUBSCRIBE public")
check(["subscribe", "other", ":2"], ns.cmd("SUBSCRIBE", "other"), "deny: SUBSCRIBE other")
check(["unsubscribe", "secret", ":2"], ns.cmd("UNSUBSCRIBE", "secret"), "deny: UNSUBSCRIBE secret")
check(["secret", ":0", "public", ":1", "other", ":1"],
      direct("PUBSUB", "NUMSUB", "secret", "public", "other"), "NUMSUB straight")
check(":2", direct("PUBLISH", "other", "m5"), "PUBLISH other straight: eve and the spy")
check(["message", "other", "m5"], ns.read(), "eve's message on other")

# --- what Redis saw published: only what the roles allowed ------------
# (SPUBLISH reaches shard subscribers only, not the pattern spy.)
want = [("news.a", "m1"), ("other", "x0"), ("news.b", "x1"),
        ("news.z", "m2"), ("news.a", "m4"), ("other", "m5")]
seen = [tuple(spy.read()[2:]) for _ in want]
check(want, seen, "everything Redis saw published")
check(True, spy.quiet(0.5) and not spy.buf, "nothing else published: %r" % spy.buf)

sys.exit(1 if bad else 0)
EOF
out=$(timeout 30 python3 "$PY" "$RD_PORT" "$RPORT" "$CACERT" "$T" 2>&1) || fail "channel rules:
$out"
pass
