#!/bin/bash
# t_pubsub_audit: Pub/Sub in the audit log and in /metrics, through redoubt
# to a standalone redis-server. Every SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE,
# UNSUBSCRIBE, PUNSUBSCRIBE, SUNSUBSCRIBE is one session.subscribe line
# (and no session.query line) with exactly the channels sent, the ones a
# role refuses (channels "news.*") with outcome NOPERM; session.end's
# "messages" is the number of messages each of two subscribers counted
# (message, pmessage, smessage from 500 pipelined PUBLISH and SPUBLISH), 0
# for the publisher; the error log's "closed:" line says it too;
# redoubt_pubsub_messages_total is the sum. After a reload to audit.args
# = "none", session.subscribe lists no channels (and no error text).
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
SPORT=$(free_port) || fail "no free port for the status listener"
AUDIT=$T/audit.log
CONF=$T/redoubt.conf

# write_conf ARGS: the configuration ("default": no audit.args line).
write_conf() {
    local args="args = \"$1\";"
    [ "$1" = default ] && args="# args: the default (names)"
    cat > "$CONF.tmp" <<EOF
# redoubt test configuration for $RD_TEST
worker_processes = $RD_WORKERS;
pid_file = "$T/redoubt.pid";
worker_shutdown_timeout = "10s";
error_log = { path = "$T/error.log"; level = "info"; };
tls = { certificate = "$T/redoubt.crt"; certificate_key = "$T/redoubt.key";
        client_ca = "$CA/user-ca.crt"; };
listen = ( { address = "127.0.0.1:$RD_PORT"; database = "db"; } );
databases = ( { name = "db"; uri = "redis://127.0.0.1:$RPORT";
                connect_timeout = "2s"; labels = { env = "test"; }; } );
roles = (
  { name = "news";
    allow = { db_labels = { * = "*"; }; db_users = [ "default" ];
              channels = [ "news.*" ]; }; }
);
status = { listen = "127.0.0.1:$SPORT"; };
audit = { path = "$AUDIT"; flush_interval = "100ms";
          $args
};
EOF
    mv "$CONF.tmp" "$CONF"
}
write_conf default
out=$("$REDOUBT" -t -c "$CONF" 2>&1) || fail "-t on the configuration: $out"
rd_start "$CONF"

user "$T/alice" --user alice --roles news      # subscriber
user "$T/carol" --user carol --roles news      # another subscriber
user "$T/bob" --user bob --roles news          # publisher

PY=$T/pa.py
cat > "$PY" <<'EOF'
import json, socket, ssl, sys, time, urllib.request

mode, rd, sport, ca, tdir, audit = sys.argv[1:7]
rd, sport = int(rd), int(sport)

def enc(*a):
    out = b"*%d\r\n" % len(a)
    for x in a:
        x = x if isinstance(x, bytes) else str(x).encode()
        out += b"$%d\r\n%s\r\n" % (len(x), x)
    return out

class Conn:
    def __init__(self, cert):
        s = socket.create_connection(("127.0.0.1", rd))
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
        """A reply: "+OK", "-ERR ...", ":1", a str, None, or a list (an
        array, a push, a map's keys and values, a set)."""
        l = self.line()
        t, rest = l[:1], l[1:]
        if t in (b"+", b"-", b":"):
            return (t + rest).decode()
        if t == b"_":
            return None
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.fill()
            v, self.buf = self.buf[:n], self.buf[n + 2:]
            return v.decode()
        if t in (b"*", b">", b"~"):
            return [self.read() for _ in range(int(rest))]
        if t == b"%":
            return [self.read() for _ in range(2 * int(rest))]
        raise ValueError("bad reply %r" % l)

    def cmd(self, *a):
        self.s.sendall(enc(*a))
        return self.read()

    def quiet(self, secs=0.3):
        """Nothing more arrives within secs."""
        if self.buf:
            return False
        self.s.settimeout(secs)
        try:
            self.fill()
            return False
        except socket.timeout:
            return True
        finally:
            self.s.settimeout(10)

    def close(self):
        self.s.close()

bad = 0
def check(want, got, what):
    global bad
    if want != got:
        bad += 1
        print("not ok: %s\n  want %r\n  got  %r" % (what, want, got))

NOPERM = ('-NOPERM redoubt: channel \'%s\' is not allowed on database '
          '"db" as user "default"')

def events():
    out = []
    for l in open(audit, "rb").read().split(b"\n"):
        if l:
            out.append(json.loads(l))     # every line valid JSON
    return out

def ended(users, skip=0):
    """The events after the first skip ones, and the session.end events of
    users among them, once each has one."""
    deadline = time.time() + 10
    while True:
        ev = events()[skip:]
        ends = {e["user"]: e for e in ev if e["event"] == "session.end"
                and e["user"] in users}
        if len(ends) == len(users) or time.time() > deadline:
            return ev, ends
        time.sleep(0.05)

def metric(name):
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % sport,
                                  timeout=10).read().decode()
    for l in body.split("\n"):
        if l.startswith(name + " "):
            return int(float(l.split()[1]))
    return None

def subscribe_events(ev, user):
    return [e for e in ev if e["user"] == user
            and e["event"] == "session.subscribe"]

if mode == "main":
    NA, NB, NS = 300, 100, 100      # PUBLISH news.a, news.b, SPUBLISH news.s
    alice = Conn(tdir + "/alice")
    carol = Conn(tdir + "/carol")
    bob = Conn(tdir + "/bob")

    # alice (RESP2): every kind of subscription, one command refused.
    sent = []       # (command, channels, outcome) in order
    def sub(c, cmd, chans, replies, outcome="ok"):
        c.s.sendall(enc(cmd, *chans))
        got = [c.read() for _ in range(replies)]
        sent.append((cmd.lower(), chans, outcome))
        return got
    check([["subscribe", "news.a", ":1"], ["subscribe", "news.b", ":2"]],
          sub(alice, "SUBSCRIBE", ["news.a", "news.b"], 2), "SUBSCRIBE news.a news.b")
    check([NOPERM % "other"], sub(alice, "SUBSCRIBE", ["other"], 1, "NOPERM"),
          "SUBSCRIBE other (refused)")
    check([NOPERM % "secret"],
          sub(alice, "SUBSCRIBE", ["news.x", "secret"], 1, "NOPERM"),
          "SUBSCRIBE news.x secret (refused whole)")
    check([["psubscribe", "news.*", ":3"]],
          sub(alice, "PSUBSCRIBE", ["news.*"], 1), "PSUBSCRIBE news.*")
    check([NOPERM % "*"], sub(alice, "PSUBSCRIBE", ["*"], 1, "NOPERM"),
          "PSUBSCRIBE * (refused)")
    check([["ssubscribe", "news.s", ":1"]],
          sub(alice, "SSUBSCRIBE", ["news.s"], 1), "SSUBSCRIBE news.s")

    # carol: one channel (redoubt speaks RESP2: no RESP3 pushes).
    check(["subscribe", "news.a", ":1"], carol.cmd("SUBSCRIBE", "news.a"),
          "carol: SUBSCRIBE news.a")

    # bob pipelines the messages; each PUBLISH reaches alice twice
    # (channel and pattern) and carol once for news.a.
    out = b"".join([enc("PUBLISH", "news.a", "a%d" % i) for i in range(NA)]
                   + [enc("PUBLISH", "news.b", "b%d" % i) for i in range(NB)]
                   + [enc("SPUBLISH", "news.s", "s%d" % i) for i in range(NS)])
    bob.s.sendall(out)
    replies = [bob.read() for _ in range(NA + NB + NS)]
    check([":3"] * NA + [":2"] * NB + [":1"] * NS, replies, "PUBLISH replies")
    check(NOPERM % "other", bob.cmd("PUBLISH", "other", "x"),
          "PUBLISH other (refused)")

    # Count what arrived, by kind.
    def count(c, n):
        kinds = {}
        for _ in range(n):
            m = c.read()
            k = (m[0], m[1]) if m[0] != "pmessage" else (m[0], m[1], m[2])
            kinds[k] = kinds.get(k, 0) + 1
        check(True, c.quiet(), "nothing more than %d messages" % n)
        return kinds, sum(kinds.values())
    akinds, agot = count(alice, 2 * NA + 2 * NB + NS)
    check({("message", "news.a"): NA, ("pmessage", "news.*", "news.a"): NA,
           ("message", "news.b"): NB, ("pmessage", "news.*", "news.b"): NB,
           ("smessage", "news.s"): NS}, akinds, "alice's messages")
    ckinds, cgot = count(carol, NA)
    check({("message", "news.a"): NA}, ckinds, "carol's messages")

    # Leaving: one line per command, the channels as sent (none, too).
    check([["unsubscribe", "news.a", ":2"]],
          sub(alice, "UNSUBSCRIBE", ["news.a"], 1), "UNSUBSCRIBE news.a")
    check([["punsubscribe", "news.*", ":1"]],
          sub(alice, "PUNSUBSCRIBE", [], 1), "PUNSUBSCRIBE")
    check([["sunsubscribe", "news.s", ":0"]],
          sub(alice, "SUNSUBSCRIBE", ["news.s"], 1), "SUNSUBSCRIBE news.s")
    check([["unsubscribe", "news.b", ":0"]],
          sub(alice, "UNSUBSCRIBE", [], 1), "UNSUBSCRIBE")
    check([["unsubscribe", None, ":0"]],
          sub(alice, "UNSUBSCRIBE", [], 1), "UNSUBSCRIBE, none left")
    check("+PONG", alice.cmd("PING"), "PING after leaving subscribed mode")
    # (no session.subscribe)
    for c in (alice, carol, bob):
        c.close()

    ev, ends = ended(["alice", "bob", "carol"])
    check(["alice", "bob", "carol"], sorted(ends), "session.end events")
    if len(ends) == 3:
        check(agot, ends["alice"]["messages"], "alice's session.end messages")
        check(cgot, ends["carol"]["messages"], "carol's session.end messages")
        check(0, ends["bob"]["messages"], "bob's session.end messages")
        # Exactly one line per command.
        for u in ("alice", "bob", "carol"):
            lines = [e for e in ev if e["user"] == u
                     and e["event"] in ("session.query", "session.subscribe",
                                        "session.auth")]
            check(ends[u]["commands"], len(lines), u + ": a line per command")
    got = [(e["command"], e["channels"], e["outcome"])
           for e in subscribe_events(ev, "alice")]
    check(sent, got, "alice's session.subscribe events")
    for e in subscribe_events(ev, "alice"):
        check(False, "keys" in e or "args" in e, "no keys/args in %r" % e)
        check(True, e["node"] is None if e["outcome"] == "NOPERM"
              else e["node"] is not None, "node of %r" % e)
        check(True, "latency_us" in e and "nkeys" in e, "fields of %r" % e)
        if e["outcome"] == "NOPERM":
            check(True, e["error"].startswith("NOPERM redoubt: channel"),
                  "error of %r" % e)
    check([("subscribe", ["news.a"], "ok")],
          [(e["command"], e["channels"], e["outcome"])
           for e in subscribe_events(ev, "carol")], "carol's session.subscribe")
    q = [e for e in ev if e["event"] == "session.query"
         and e["command"].endswith("subscribe")]
    check([], q, "no session.query for the subscribe family")
    check(NA + NB + NS + 1, len([e for e in ev if e["user"] == "bob"
                                 and e["event"] == "session.query"
                                 and e["command"] in ("publish", "spublish")]),
          "bob's PUBLISH events")
    check(agot + cgot, metric('redoubt_pubsub_messages_total{database="db"}'),
          "redoubt_pubsub_messages_total")
    print("alice %d carol %d" % (agot, cgot))

elif mode == "none":
    skip = len(events())            # the lines of the first part
    alice = Conn(tdir + "/alice")
    check(["subscribe", "news.a", ":1"], alice.cmd("SUBSCRIBE", "news.a"),
          "SUBSCRIBE news.a")
    check(NOPERM % "other", alice.cmd("SUBSCRIBE", "other"), "SUBSCRIBE other")
    alice.close()
    ev, ends = ended(["alice"], skip)
    check(["alice"], sorted(ends), "args none: session.end")
    last = [e for e in ev if e["sid"] == ends["alice"]["sid"]] if ends else []
    subs = [e for e in last if e["event"] == "session.subscribe"]
    check([("subscribe", "ok"), ("subscribe", "NOPERM")],
          [(e["command"], e["outcome"]) for e in subs], "args none: events")
    for e in subs:
        check(False, "channels" in e or "error" in e or "keys" in e,
              "args none: no channels nor error in %r" % e)
    check(0, ends.get("alice", {}).get("messages"), "args none: messages")

sys.exit(1 if bad else 0)
EOF

out=$(python3 "$PY" main "$RD_PORT" "$SPORT" "$CACERT" "$T" "$AUDIT" 2>&1) ||
    fail "the audit of Pub/Sub: $out"
note "$out"
read -r _ agot _ cgot <<<"$out"

# The error log's "closed:" line of each subscriber has the count.
grep -q "closed: .*commands [0-9]*, messages $agot)" "$T/error.log" ||
    fail "no 'closed: ... messages $agot' in the error log: $(grep 'closed:' "$T/error.log" | tail -n 3)"
grep -q "closed: .*commands [0-9]*, messages $cgot)" "$T/error.log" ||
    fail "no 'closed: ... messages $cgot' in the error log"

# --- audit.args = none: no channels -----------------------------------------
old=$(rd_workers | tr '\n' ' ')
# shellcheck disable=SC2317 # called through wait_for
new_workers() {
    local w
    [ "$(rd_count_workers)" -eq "$RD_WORKERS" ] || return 1
    for w in $(rd_workers); do [[ " $old " == *" $w "* ]] && return 1; done
    return 0
}
write_conf none
kill -HUP "$RD_PID"
wait_for 20 new_workers || fail "the reload did not replace the workers"
out=$(python3 "$PY" none "$RD_PORT" "$SPORT" "$CACERT" "$T" "$AUDIT" 2>&1) ||
    fail "audit.args = none: $out"

pass
