#!/usr/bin/env python3
"""order_check.py - a small Jepsen-style checker of redoubt's ordering
invariant, for t_order.sh.

Many sessions pipeline SET / INCR / APPEND / GET through redoubt (raw RESP
over plain sockets, AUTH as the given user) while the test injects faults
in the cluster behind it (kill -9 of masters, failovers, stalled masters,
slot migrations). Each session keeps its own window of commands in flight
(1 to 4096: the large ones paced, so that they go on sending while a node
holds their earlier commands) over two keys in each test slot, focusing on
a few keys at a time. Every key is written by one session only, so the
order in which that session sent its commands defines the key's history;
each reply is checked against a sequential model of the key as it comes
back, and the final values are read once the faults are over.

The model keeps, per key, the set of states the key may be in. A write
answered with an error may or may not have run (in its place: the faults
never let a command run later than the commands sent after it): the state
set becomes "not applied" plus "applied". An OK reply means applied in
order; a GET must return one of the possible states (and the set collapses
to it); INCR and APPEND replies must be what one of the states gives.
Anything else is an anomaly, reported with the key's history.

Two sessions in three also send, mixed into the same pipeline (6 % of
their pipeline entries, each one place in the window; about a tenth of
all commands), over the keys of --mix-tags' slots:
  transactions over one slot's keys of the session: [WATCH k] MULTI, one
    to four commands, EXEC (sometimes DISCARD; sometimes just WATCH k
    UNWATCH). MULTI must be answered +OK and each queued command +QUEUED
    (redoubt answers them); an EXEC array means every command ran, in
    order, at that place of the session's order for the slot: each element
    is checked against the model as the command's own reply would be;
    -EXECABORT and DISCARD mean none ran; another error (-ERR redoubt: ...,
    MOVED/ASK/TRYAGAIN passed on, CLUSTERDOWN) or no reply means all or
    none ran, which is not known; a nil EXEC is an anomaly: the watched key
    (which the transaction also uses, so that a slot migration of it gets
    ASK, not nil) is written by this session only, nothing between the
    WATCH and the EXEC, and without WATCH nothing can make an EXEC nil.
  split commands over the session's keys of two or three slots: MSET (+OK
    means every key set), DEL/UNLINK and EXISTS/TOUCH (the count must be
    one the model allows: it knows which keys may exist); after an error
    each slot's part ran or not, independently.
"All or none, not known" is kept exactly: a slot's two keys of a session
form a Group whose state may be a set of joint tuples (both as before, or
both as after) until replies pin it down; a half-run transaction is then
an anomaly at the next reply that sees it.

Phases, driven by files in --dir:
  the initial SETs done                 -> writes DIR/ready
  DIR/stop appears (or --deadline)      -> every session stops sending,
                                           reads what is in flight, runs
                                           the final GETs (transient
                                           errors retried), then
  DIR/final.tsv (key, value or "(nil)") and DIR/summary.json are written
  (with the counts of transactions, split commands and their outcomes).
With --trace DIR every session writes each checked command and its reply
(send time, check time) to DIR/trace.s<session>.
Exit status: 0 no anomaly, 1 anomalies, 2 setup failure.

The password comes from the environment (RD_ORDER_PASSWORD).
Python 3 standard library only.
"""

import argparse
import collections
import json
import os
import random
import socket
import sys
import threading
import time

# --- RESP ---------------------------------------------------------------


def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Closed(Exception):
    pass


class Conn:
    """A blocking RESP2 connection with a read buffer."""

    def __init__(self, port, timeout):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.settimeout(timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.pos = 0

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise Closed("send: %s" % e)

    def _fill(self):
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise
        except OSError as e:
            raise Closed("recv: %s" % e)
        if not chunk:
            raise Closed("connection closed by redoubt")
        if self.pos:
            self.buf = self.buf[self.pos:]
            self.pos = 0
        self.buf += chunk

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n", self.pos)
            if i >= 0:
                line = self.buf[self.pos:i]
                self.pos = i + 2
                return line
            self._fill()

    def _bytes(self, n):
        while len(self.buf) - self.pos < n + 2:
            self._fill()
        data = self.buf[self.pos:self.pos + n]
        self.pos += n + 2
        return data

    def read(self):
        """One reply: ('+', text) ('-', text) (':', int) ('$', bytes|None)
        ('*', list|None)."""
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return ("+", rest.decode(errors="replace"))
        if t == b"-":
            return ("-", rest.decode(errors="replace"))
        if t == b":":
            return (":", int(rest))
        if t == b"$":
            n = int(rest)
            return ("$", None if n < 0 else self._bytes(n).decode(errors="replace"))
        if t == b"*":
            n = int(rest)
            if n < 0:
                return ("*", None)
            return ("*", [self.read() for _ in range(n)])
        raise Closed("protocol error: %r" % line[:80])


def show(reply):
    if reply is None:
        return "(no reply)"
    t, v = reply
    if t == "*":
        return "(nil array)" if v is None else \
            "[" + ", ".join(show(e) for e in v) + "]"
    if t == "$":
        return "(nil)" if v is None else repr(v)
    if t == ":":
        return ":%d" % v
    return "%s%s" % (t, v)


# Errors after which a command may or may not have run. Anything else is
# an anomaly (the keys are only ever given values these commands accept).
TRANSIENT = ("ERR redoubt:", "CLUSTERDOWN", "TRYAGAIN", "MOVED", "ASK",
             "LOADING", "MASTERDOWN", "READONLY")


def error_class(text):
    for p in TRANSIENT:
        if text.startswith(p):
            if p == "ERR redoubt:":
                # "ERR redoubt: upstream unavailable: Connection refused
                # (node ...)" -> "ERR redoubt: upstream unavailable"
                rest = text[len(p):].strip()
                return p + " " + rest.split(":")[0].split("(")[0].strip()
            return p
    return None


# --- the model ------------------------------------------------------------

HISTORY = 30            # entries of a key's history kept for reports
ANY = "<any>"           # the state set grew too large: unknown until the
MAX_STATES = 2048       # next reply that pins the value down


def as_int(v):
    if v is None:
        return 0
    try:
        if v != str(int(v)):
            return None
        return int(v)
    except ValueError:
        return None


class Key:
    def __init__(self, name, kind, owner):
        self.name = name
        self.kind = kind            # "counter" or "string"
        self.owner = owner
        self.states = {None}        # None: the key does not exist
        self.hist = collections.deque(maxlen=HISTORY)
        self.ops = 0
        self.group = None           # its Group (the session's keys of its slot)
        self.idx = 0                # its place in the group's tuples


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.commands = 0
        self.by_op = collections.Counter()
        self.ok = 0
        self.errors = collections.Counter()
        self.indeterminate = 0
        self.widened = 0
        self.anomalies = 0
        self.reconnects = 0
        self.batches = 0
        self.max_states = 1
        self.outcomes = collections.Counter()   # transactions, split commands
        self.reports = []

    def anomaly(self, text):
        with self.lock:
            self.anomalies += 1
            if len(self.reports) < 8:
                self.reports.append(text)
            print("ANOMALY:\n" + text, file=sys.stderr, flush=True)


def states_text(states):
    if states == ANY:
        return "{any}"
    vals = sorted(("(nil)" if s is None else repr(s)) for s in states)
    if len(vals) > 6:
        vals = vals[:6] + ["... %d in all" % len(states)]
    return "{" + ", ".join(vals) + "}"


def apply(key, op, arg, reply):
    """Check reply against key's states and advance them. Returns None, or
    an explanation of the anomaly."""
    t, v = reply
    st = key.states
    if t == "-":
        cls = error_class(v)
        if cls is None:
            return "unexpected error reply"
        if op == "GET":
            return None
        if st == ANY:
            return None
        if op == "SET":
            new = set(st) | {arg}
        elif op == "INCR":
            new = set(st)
            for s in st:
                i = as_int(s)
                if i is not None:
                    new.add(str(i + 1))
        else:
            new = set(st) | {(s or "") + arg for s in st}
        key.states = new if len(new) <= MAX_STATES else ANY
        return None

    if op == "SET":
        if reply != ("+", "OK"):
            return "SET not answered +OK"
        key.states = {arg}
        return None
    if op == "GET":
        if t != "$":
            return "GET not answered with a bulk string"
        if st != ANY and v not in st:
            return "GET returned a value the model does not allow"
        key.states = {v}
        return None
    if op == "INCR":
        if t != ":":
            return "INCR not answered with an integer"
        if st != ANY:
            if not any(as_int(s) is not None and as_int(s) + 1 == v for s in st):
                return "INCR returned a value no possible state gives"
        key.states = {str(v)}
        return None
    if op == "APPEND":
        if t != ":":
            return "APPEND not answered with an integer"
        if st == ANY:
            return None
        new = {(s or "") + arg for s in st if len(s or "") + len(arg) == v}
        if not new:
            return "APPEND returned a length no possible state gives"
        key.states = new
        return None
    return "unknown operation"


# --- the joint model of a slot's keys ----------------------------------------
#
# A transaction, or a split command's part, runs all or nothing on one
# slot: after one answered with an error the keys of its slot are either
# all as before or all as after, never half. Independent state sets per
# key cannot say so; a Group (one session's keys of one slot) then keeps
# the set of possible tuples of its keys' values (joint), until a reply
# pins the correlation away (the tuples form a product again: back to
# independent sets) or the set grows too large (projected: a sound
# superset). key.states is always the projection, so a key of a joint
# group shows its possible values as before.

IMPOSSIBLE = object()


def blind(v, op, arg):
    """The value after op ran on v, its reply unknown."""
    if op == "SET":
        return arg
    if op == "INCR":
        i = as_int(v)
        return IMPOSSIBLE if i is None else str(i + 1)
    if op == "APPEND":
        return (v or "") + arg
    if op == "DEL":
        return None
    return v                            # GET, EXISTS


class _Tmp:
    __slots__ = ("states",)


class Group:
    def __init__(self, keys):
        self.keys = keys
        self.joint = None               # None: independent key.states
        for i, k in enumerate(keys):
            k.group = self
            k.idx = i

    def tuples(self):
        """The possible tuples, or None when they cannot be listed (a key
        is unknown, or the product is too large)."""
        if self.joint is not None:
            return self.joint
        n = 1
        for k in self.keys:
            if k.states == ANY:
                return None
            n *= len(k.states)
        if n > MAX_STATES:
            return None
        out = {()}
        for k in self.keys:
            out = {t + (v,) for t in out for v in k.states}
        return out

    def set_tuples(self, tuples):
        proj = [{t[i] for t in tuples} for i in range(len(self.keys))]
        n = 1
        for p in proj:
            n *= len(p)
        for k, p in zip(self.keys, proj):
            k.states = p if len(p) <= MAX_STATES else ANY
        if len(tuples) > MAX_STATES or n == len(tuples):
            self.joint = None           # too large, or a product again
        else:
            self.joint = set(tuples)

    def text(self):
        if self.joint is None:
            return ", ".join("%s %s" % (k.name, states_text(k.states))
                             for k in self.keys)
        vals = sorted("(" + ", ".join("(nil)" if v is None else repr(v)
                                      for v in t) + ")" for t in self.joint)
        if len(vals) > 6:
            vals = vals[:6] + ["... %d in all" % len(self.joint)]
        return "(%s) jointly in {%s}" % (", ".join(k.name for k in self.keys),
                                         ", ".join(vals))


def op1(key, op, arg, reply):
    """apply() through the key's group: the same rule, per tuple when the
    group is joint."""
    g = key.group
    if g is None or g.joint is None:
        return apply(key, op, arg, reply)
    i = key.idx
    parts = collections.defaultdict(set)
    for t in g.joint:
        parts[t[:i] + t[i + 1:]].add(t[i])
    new = set()
    why = None
    for rest, vals in parts.items():
        tmp = _Tmp()
        tmp.states = vals
        w = apply(tmp, op, arg, reply)
        if w:
            why = why or w
            continue
        if tmp.states == ANY:
            g.joint = None              # key.states is the projection
            return apply(key, op, arg, reply)
        for v in tmp.states:
            new.add(rest[:i] + (v,) + rest[i:])
    if not new:
        return why
    g.set_tuples(new)
    return None


def assign(key, value):
    """The key's value is known (a DEL that answered)."""
    g = key.group
    if g is None or g.joint is None:
        key.states = {value}
        return
    i = key.idx
    g.set_tuples({t[:i] + (value,) + t[i + 1:] for t in g.joint})


def unknown_all_or_nothing(g, ops):
    """ops (key, op, arg) of one slot's group ran all, in order, or none:
    which is not known."""
    tuples = g.tuples()
    if tuples is None:
        # Per key (weaker, sound): each key as before or as after.
        for k in g.keys:
            mine = [(op, arg) for kk, op, arg in ops if kk is k]
            if not mine or k.states == ANY:
                continue
            new = set(k.states)
            for v in k.states:
                for op, arg in mine:
                    v = blind(v, op, arg)
                    if v is IMPOSSIBLE:
                        break
                else:
                    new.add(v)
            k.states = new if len(new) <= MAX_STATES else ANY
        return
    new = set(tuples)
    for t in tuples:
        u = list(t)
        for k, op, arg in ops:
            u[k.idx] = blind(u[k.idx], op, arg)
            if u[k.idx] is IMPOSSIBLE:
                break
        else:
            new.add(tuple(u))
    g.set_tuples(new)


def existing_counts(keys):
    """The numbers of keys among keys (distinct) that may exist now."""
    total = {0}
    bygroup = collections.OrderedDict()
    for k in keys:
        bygroup.setdefault(id(k.group), (k.group, []))[1].append(k)
    for g, ks in bygroup.values():
        if g is not None and g.joint is not None:
            c = {sum(t[k.idx] is not None for k in ks) for t in g.joint}
        else:
            c = {0}
            for k in ks:
                e = {0, 1} if k.states == ANY else \
                    {int(s is not None) for s in k.states}
                c = {a + b for a in c for b in e}
        total = {a + b for a in total for b in c}
    return total


# --- transactions and split commands -----------------------------------------

TXN_OPS = ("WATCH", "MULTI", "QUEUED", "EXEC", "DISCARD", "UNWATCH")
SPLIT_OPS = ("MSET", "DEL", "UNLINK", "EXISTS", "TOUCH")


def cmd_text(op, key, arg):
    return "%s %s%s" % (op, key.name, "" if arg is None else " " + repr(arg))


class Txn:
    """[WATCH k] MULTI, commands over one slot's keys, EXEC or DISCARD; or
    WATCH k UNWATCH. Its replies are gathered in order."""

    def __init__(self, group, watch, ops, end):
        self.group = group
        self.watch = watch              # a Key, or None
        self.ops = ops                  # [(key, op, arg)]
        self.end = end                  # "EXEC", "DISCARD" or "UNWATCH"
        self.n0 = 0
        self.replies = []

    def commands(self):
        """(op, key, arg, text) of each command, in the order sent."""
        out = []
        if self.watch is not None:
            out.append(("WATCH", self.watch, None, "WATCH " + self.watch.name))
        if self.end != "UNWATCH":
            out.append(("MULTI", None, None, "MULTI"))
            for i, (k, op, arg) in enumerate(self.ops):
                out.append(("QUEUED", k, (self, i), cmd_text(op, k, arg)))
        out.append((self.end, None, None, self.end))
        return out

    def encode(self):
        data = []
        for op, k, x, _ in self.commands():
            if op == "WATCH":
                data.append(encode("WATCH", k.name))
            elif op == "QUEUED":
                kk, o, a = self.ops[x[1]]
                data.append(encode(o, kk.name) if a is None
                            else encode(o, kk.name, a))
            else:
                data.append(encode(op))
        return b"".join(data)

    def text(self):
        parts = []
        for j, (_, _, _, t) in enumerate(self.commands()):
            r = self.replies[j] if j < len(self.replies) else "(pending)"
            parts.append("%s -> %s" % (t, r if isinstance(r, str) else show(r)))
        return " | ".join(parts)


class Split:
    """A multi-key command over keys of two or three slots (split by
    redoubt, one part a slot)."""

    def __init__(self, op, keys, values=None):
        self.op = op
        self.keys = keys
        self.values = values            # MSET's

    def encode(self):
        if self.op == "MSET":
            args = []
            for k, v in zip(self.keys, self.values):
                args += [k.name, v]
            return encode("MSET", *args)
        return encode(self.op, *[k.name for k in self.keys])

    def text(self):
        if self.op == "MSET":
            return "MSET " + " ".join("%s %r" % (k.name, v)
                                      for k, v in zip(self.keys, self.values))
        return self.op + " " + " ".join(k.name for k in self.keys)


def describe(key, op, arg):
    if op in SPLIT_OPS:
        return arg.text()
    if op == "QUEUED":
        txn, i = arg
        k, o, a = txn.ops[i]
        return "(queued) " + cmd_text(o, k, a)
    if op == "WATCH":
        return "WATCH " + key.name
    return op


# --- sessions ---------------------------------------------------------------


class Session(threading.Thread):
    """One client session. It starts and ends with plain request/reply
    batches (the initial SETs, the final GETs); in between, a writer thread
    keeps up to `window` commands in flight without waiting for replies
    (so later commands reach redoubt while earlier ones are being
    redirected or wait for a map), and this thread reads the replies in
    order and checks each against the model."""

    # Small windows go as fast as replies come; large ones are paced, so
    # that they keep sending while a node holds their earlier commands.
    WINDOWS = (1, 4, 16, 64, 256, 1024, 4096)

    def __init__(self, sid, args, keys, stats, stop, rng_seed):
        super().__init__(daemon=True)
        self.sid = sid
        self.args = args
        self.keys = keys
        self.stats = stats
        self.stop_ev = stop
        self.rng = random.Random(rng_seed)
        self.wrng = random.Random(rng_seed * 7 + 1)   # the writer's
        self.window = self.WINDOWS[sid % len(self.WINDOWS)]
        # Two sessions in three also send transactions and split commands.
        self.mix = sid % 3 != 2
        # (Only the groups of --mix-tags' slots.)
        self.groups = []
        for k in keys:
            if k.group is not None and k.group not in self.groups and \
                    k.name[1:k.name.index("}")] in args.mix_tags:
                self.groups.append(k.group)
        self.conn = None
        self.seq = 0
        self.n = 0                          # commands sent, numbered
        self.failed = None
        self.ready = threading.Event()
        self.final = {}
        self.recent = collections.deque(maxlen=HISTORY)
        self.trace = None
        self.stale_watch = False            # a WATCHed EXEC failed
        if args.trace:
            self.trace = open(os.path.join(args.trace, "trace.s%d" % sid), "w")
        # the window
        # (n, key, op, arg, t_sent, frees a place in the window)
        self.pending = collections.deque()
        self.plock = threading.Lock()
        self.slots = threading.Semaphore(self.window)
        self.send_lock = threading.Lock()
        self.backoff_until = 0.0
        self.writer_done = threading.Event()
        self.wstop = threading.Event()

    # --- connection

    def connect(self):
        while True:
            try:
                self.conn = Conn(self.args.port, self.args.reply_timeout)
                self.conn.send(encode("AUTH", self.args.user, self.args.password))
                r = self.conn.read()
                if r == ("+", "OK"):
                    return
                raise Closed("AUTH answered %s" % show(r))
            except (OSError, Closed) as e:
                if self.conn:
                    self.conn.close()
                if time.time() > self.args.hard_deadline:
                    raise
                print("# session %d: cannot connect: %s; again in 1 s"
                      % (self.sid, e), file=sys.stderr, flush=True)
                time.sleep(1)

    # --- commands

    def token(self):
        self.seq += 1
        return "s%d.%d" % (self.sid, self.seq)

    def gen_op(self, key, rng):
        r = rng.random()
        if key.kind == "counter":
            if r < 0.5:
                return ("INCR", None)
            if r < 0.8:
                return ("GET", None)
            return ("SET", str(rng.randrange(1000)))
        if r < 0.25:
            return ("SET", self.token())
        if r < 0.6:
            self.seq += 1
            return ("APPEND", "+%d" % (self.seq % 100))
        return ("GET", None)

    @staticmethod
    def line(n, key, op, arg, reply):
        if op in TXN_OPS or op in SPLIT_OPS:
            return "#%d %s -> %s" % (n, describe(key, op, arg), show(reply))
        return "#%d %s %s%s -> %s" % (n, op, key.name,
                                      "" if arg is None else " " + repr(arg),
                                      show(reply))

    def note(self, t_sent, text):
        """A checked command, for reports (and the trace, with --trace)."""
        self.recent.append("%.3f %s" % (t_sent, text))
        if self.trace:
            self.trace.write("%.3f %.3f %s\n" % (t_sent, time.time(), text))

    def inflight(self):
        with self.plock:
            return [self.line(e[0], e[1], e[2], e[3], None) + " (in flight)"
                    for e in list(self.pending)[:10]]

    def check(self, n, key, op, arg, reply, t_sent):
        """Apply one reply (None: never answered) to the model."""
        if op in TXN_OPS:
            return self.check_txn(n, key, op, arg, reply, t_sent)
        if op in SPLIT_OPS:
            return self.check_split(n, op, arg, reply, t_sent)
        if reply is None:
            # Like an error reply: it may or may not have run.
            reply = ("-", "ERR redoubt: (no reply: connection lost)")
        before = key.states
        gbefore = key.group.text() if key.group and key.group.joint else None
        why = op1(key, op, arg, reply)
        key.ops += 1
        text = self.line(n, key, op, arg, reply)
        key.hist.append("%s  (states before %s)" % (text, states_text(before)))
        self.note(t_sent, text)
        with self.stats.lock:
            self.stats.commands += 1
            self.stats.by_op[op] += 1
            if reply[0] == "-":
                self.stats.errors[error_class(reply[1]) or reply[1][:40]] += 1
                if op != "GET":
                    self.stats.indeterminate += 1
            else:
                self.stats.ok += 1
            if key.states == ANY and before != ANY:
                self.stats.widened += 1
            if key.states != ANY:
                self.stats.max_states = max(self.stats.max_states,
                                            len(key.states))
        if why:
            self.stats.anomaly(
                "session %d (window %d), key %s (%s): %s\n"
                "  the command: %s\n"
                "  possible states before it: %s%s\n"
                "  the key's history (this session's order, oldest first):\n%s\n"
                "  the session's last commands (send time, number, reply):\n%s%s"
                % (self.sid, self.window, key.name, key.kind, why, text,
                   states_text(before),
                   "" if gbefore is None else "\n    (the slot's keys: %s)" % gbefore,
                   "\n".join("    " + h for h in key.hist),
                   "\n".join("    " + h for h in self.recent),
                   "".join("\n    " + h for h in self.inflight())))
        if reply[0] == "-":
            self.backoff_until = time.time() + 0.02 + self.rng.random() * 0.03

    def count(self, op, reply, outcome=None):
        with self.stats.lock:
            self.stats.commands += 1
            self.stats.by_op[op] += 1
            if reply is not None and reply[0] == "-":
                self.stats.errors[error_class(reply[1]) or reply[1][:40]] += 1
            elif reply is not None:
                self.stats.ok += 1
            if outcome:
                self.stats.outcomes[outcome] += 1

    def multi_anomaly(self, why, what, keys, before, t_sent):
        """An anomaly of a transaction or a split command."""
        self.stats.anomaly(
            "session %d (window %d): %s\n"
            "  the command: %s\n"
            "  possible states before it: %s\n"
            "  the keys' histories (this session's order, oldest first):\n%s\n"
            "  the session's last commands (send time, number, reply):\n%s%s"
            % (self.sid, self.window, why, what, before,
               "\n".join("   %s:\n%s" % (k.name, "\n".join("    " + h for h in k.hist))
                         for k in keys),
               "\n".join("    " + h for h in self.recent),
               "".join("\n    " + h for h in self.inflight())))

    def check_txn(self, n, key, op, txn, reply, t_sent):
        """A reply of a transaction's WATCH, MULTI, queued command, or its
        end (EXEC, DISCARD, UNWATCH): the model moves at the end."""
        if isinstance(txn, tuple):          # a queued command: (txn, i)
            txn, i = txn
        txn.replies.append(reply)
        if op in ("WATCH", "UNWATCH"):
            # +OK, or an error (WATCH: then it may or may not hold).
            ok = reply is None or reply == ("+", "OK") or \
                (reply[0] == "-" and error_class(reply[1]))
            self.count(op, reply, op.lower() + ("_ok" if reply == ("+", "OK")
                                                else "_error"))
            if op == "UNWATCH":
                self.txn_done(txn, t_sent)
            if not ok:
                self.txn_anomaly(txn, "%s not answered +OK" % op, t_sent, None)
            return
        if op == "MULTI" or op == "QUEUED":
            want = ("+", "OK") if op == "MULTI" else ("+", "QUEUED")
            self.count(op, reply)
            if reply is not None and reply != want:
                self.txn_anomaly(txn, "%s not answered %s"
                                 % ("MULTI" if op == "MULTI" else "a queued command",
                                    show(want)), t_sent, None)
            return
        g = txn.group
        before = g.text()
        why = None
        if op == "DISCARD":
            # Nothing of it was ever sent (+OK, or an error of the UNWATCH
            # sent for a watch).
            outcome = "discarded"
            if reply is not None and reply != ("+", "OK") and \
                    not (reply[0] == "-" and error_class(reply[1])):
                why = "DISCARD not answered +OK"
        elif reply is None or (reply[0] == "-" and error_class(reply[1])):
            # All or nothing, which is not known.
            outcome = "exec_lost" if reply is None else "exec_error"
            unknown_all_or_nothing(g, txn.ops)
        elif reply[0] == "-" and reply[1].startswith("EXECABORT"):
            outcome = "exec_abort"          # nothing ran
        elif reply == ("*", None):
            outcome = "exec_nil"
            why = ("EXEC answered nil: %s" %
                   ("a WATCHed key only this session writes 'changed' "
                    "(a stale watch, or a command of the session reordered "
                    "around the WATCH)" if txn.watch else
                   "nothing is WATCHed (a stale watch left on a node "
                    "connection?)"))
        elif reply[0] == "*" and len(reply[1]) == len(txn.ops):
            outcome = "exec_ran"
            for j, ((k, o, a), r) in enumerate(zip(txn.ops, reply[1])):
                if r[0] == "-":
                    why = "element %d of the EXEC array is an error" % (j + 1)
                else:
                    w = op1(k, o, a, r)
                    if w:
                        why = "element %d of the EXEC array (%s %s): %s" \
                              % (j + 1, o, k.name, w)
                if why:
                    break
        else:
            outcome = "exec_other"
            why = ("unexpected EXEC reply (an array of %d expected)"
                   % len(txn.ops))
            unknown_all_or_nothing(g, txn.ops)
        self.count(op, reply, outcome + ("_watched" if txn.watch else ""))
        self.txn_done(txn, t_sent)
        if why:
            self.txn_anomaly(txn, why, t_sent, before)
        if reply is not None and reply[0] == "-":
            self.backoff_until = time.time() + 0.02 + self.rng.random() * 0.03

    def txn_done(self, txn, t_sent):
        text = "#%d %s" % (txn.n0, txn.text())
        self.note(t_sent, text)
        for k in txn.group.keys:
            if any(kk is k for kk, _, _ in txn.ops) or k is txn.watch:
                k.hist.append(text)
                k.ops += 1

    def txn_anomaly(self, txn, why, t_sent, before):
        self.multi_anomaly("a transaction on the slot of %s: %s"
                           % (txn.group.keys[0].name, why),
                           "#%d %s" % (txn.n0, txn.text()),
                           txn.group.keys,
                           before or txn.group.text(), t_sent)

    def check_split(self, n, op, sp, reply, t_sent):
        """A multi-key command split over two or three slots."""
        groups = collections.OrderedDict()
        for k in sp.keys:
            groups.setdefault(id(k.group), (k.group, []))[1].append(k)
        before = "; ".join(g.text() for g, _ in groups.values())
        why = None
        transient = reply is None or (reply[0] == "-" and error_class(reply[1]))
        if reply is not None and reply[0] == "-" and not transient:
            why = "unexpected error reply"
        if op == "MSET":
            if reply == ("+", "OK"):
                for k, v in zip(sp.keys, sp.values):
                    w = op1(k, "SET", v, ("+", "OK"))
                    why = why or w
            elif transient or why:
                # Each slot's part ran or not, independently.
                for g, ks in groups.values():
                    unknown_all_or_nothing(g, [(k, "SET", v) for k, v
                                               in zip(sp.keys, sp.values)
                                               if k.group is g])
            else:
                why = "MSET not answered +OK"
        elif op in ("DEL", "UNLINK", "EXISTS", "TOUCH"):
            write = op in ("DEL", "UNLINK")
            if reply is not None and reply[0] == ":":
                possible = existing_counts(sp.keys)
                if reply[1] not in possible:
                    why = ("%s counted %d, the model allows %s"
                           % (op, reply[1], sorted(possible)))
                if write:
                    for k in sp.keys:
                        assign(k, None)
            elif transient or why:
                if write:
                    for g, ks in groups.values():
                        unknown_all_or_nothing(g, [(k, "DEL", None) for k in ks])
            else:
                why = "%s not answered with an integer" % op
        text = self.line(n, None, op, sp, reply)
        for k in sp.keys:
            k.hist.append(text)
            k.ops += 1
        self.note(t_sent, text)
        self.count(op, reply, "split_" + ("lost" if reply is None else
                                         "error" if reply[0] == "-" else "ok"))
        if why:
            self.multi_anomaly("a split %s: %s" % (op, why), text, sp.keys,
                               before, t_sent)
        if reply is not None and reply[0] == "-":
            self.backoff_until = time.time() + 0.02 + self.rng.random() * 0.03

    def run_batch(self, ops):
        """Send ops (key, op, arg) in one pipeline, read and check the
        replies. Returns them (fewer when the connection was lost)."""
        data = []
        numbered = []
        t0 = time.time()
        for key, op, arg in ops:
            self.n += 1
            numbered.append((self.n, key, op, arg))
            data.append(encode(op, key.name) if arg is None
                        else encode(op, key.name, arg))
        replies = []
        err = None
        try:
            self.conn.send(b"".join(data))
            for _ in ops:
                replies.append(self.conn.read())
        except socket.timeout:
            err = "no reply within %d s" % self.args.reply_timeout
        except Closed as e:
            err = str(e)
        for i, (n, key, op, arg) in enumerate(numbered):
            self.check(n, key, op, arg, replies[i] if i < len(replies) else None, t0)
        with self.stats.lock:
            self.stats.batches += 1
        if err:
            self.lost(err)
        return replies

    def lost(self, err):
        if "no reply within" in err:
            self.stats.anomaly("session %d: %s (a hung session)" % (self.sid, err))
            raise Closed(err)
        with self.stats.lock:
            self.stats.reconnects += 1
        print("# session %d: %s; reconnecting" % (self.sid, err),
              file=sys.stderr, flush=True)
        self.conn.close()
        time.sleep(1)
        self.connect()

    # --- transactions and split commands (a fraction of the mix sessions'
    # traffic; each takes one place in the window)

    P_TXN = 0.03
    P_SPLIT = 0.03

    def gen_txn(self, g, rng, t):
        """Queue a transaction's commands in self.pending (under plock);
        returns its bytes."""
        ops = []
        for _ in range(rng.choice((1, 2, 2, 3, 4))):
            k = rng.choice(g.keys)
            op, arg = self.gen_op(k, rng)
            ops.append((k, op, arg))
        watch = None
        end = "EXEC"
        r = rng.random()
        if r < 0.3:
            # WATCH k, a key only this session writes, and a command of
            # the transaction on k (see the top: no "change" of k by a
            # slot migration can then go unnoticed as a nil EXEC).
            watch = rng.choice(g.keys)
            if not any(k is watch for k, _, _ in ops):
                ops.insert(rng.randrange(len(ops) + 1), (watch, "GET", None))
            if r < 0.02:
                end = "UNWATCH"
                ops = []
        if end == "EXEC" and rng.random() < 0.08:
            end = "DISCARD"
        txn = Txn(g, watch, ops, end)
        cmds = txn.commands()
        txn.n0 = self.n + 1
        for j, (op, k, x, _) in enumerate(cmds):
            self.n += 1
            self.pending.append((self.n, k, op, txn if x is None else x, t,
                                 j == len(cmds) - 1))
        return txn.encode()

    def gen_split(self, rng, t):
        groups = rng.sample(self.groups, min(len(self.groups),
                                             rng.choice((2, 2, 3))))
        keys = []
        for g in groups:
            keys += rng.sample(g.keys, rng.choice((1, 2)))
        r = rng.random()
        if r < 0.45:
            sp = Split("MSET", keys, [str(rng.randrange(1000)) if k.kind == "counter"
                                      else self.token() for k in keys])
        elif r < 0.7:
            sp = Split(rng.choice(("DEL", "UNLINK")), keys)
        else:
            sp = Split(rng.choice(("EXISTS", "TOUCH")), keys)
        self.n += 1
        self.pending.append((self.n, None, sp.op, sp, t, True))
        return sp.encode()

    # --- the windowed load

    def writer(self):
        rng = self.wrng
        focus, left = [], 0
        try:
            while not self.stop_ev.is_set() and not self.wstop.is_set():
                if not self.slots.acquire(timeout=0.2):
                    continue
                burst = [None]
                want = rng.choice((1, 1, 2, 3, 4, 8))
                while len(burst) < want and self.slots.acquire(blocking=False):
                    burst.append(None)
                if left <= 0:
                    focus = rng.sample(self.keys, min(len(self.keys),
                                                      rng.choice((1, 2, 3, 4))))
                    left = rng.randrange(4, 60)
                data = []
                with self.send_lock:
                    wait = self.backoff_until - time.time()
                    if wait > 0:
                        time.sleep(wait)
                    t = time.time()
                    with self.plock:
                        for _ in burst:
                            key = rng.choice(focus)
                            r = rng.random() if self.mix and \
                                key.group in self.groups else 1.0
                            if r < self.P_TXN:
                                data.append(self.gen_txn(key.group, rng, t))
                                continue
                            if r < self.P_TXN + self.P_SPLIT:
                                data.append(self.gen_split(rng, t))
                                continue
                            op, arg = self.gen_op(key, rng)
                            self.n += 1
                            self.pending.append((self.n, key, op, arg, t, True))
                            data.append(encode(op, key.name) if arg is None
                                        else encode(op, key.name, arg))
                    left -= len(burst)
                    try:
                        self.conn.send(b"".join(data))
                    except Closed:
                        pass            # the reader sees it too
                if self.window >= 256:
                    time.sleep(0.001 + rng.random() * 0.003)
                elif rng.random() < 0.05:
                    time.sleep(rng.random() * 0.005)
        finally:
            self.writer_done.set()

    def reader(self):
        """Read and check replies until the writer stopped and every
        command sent was answered."""
        while True:
            with self.plock:
                if not self.pending:
                    if self.writer_done.is_set():
                        return
                    item = None
                else:
                    item = self.pending[0]
            if item is None:
                time.sleep(0.001)
                continue
            try:
                reply = self.conn.read()
            except socket.timeout:
                self.stats.anomaly("session %d (window %d): no reply within "
                                   "%d s to %s (a hung session)"
                                   % (self.sid, self.window,
                                      self.args.reply_timeout,
                                      self.line(item[0], item[1], item[2],
                                                item[3], None)))
                raise Closed("hung")
            except Closed as e:
                # Whatever was in flight may or may not have run.
                with self.send_lock:
                    with self.plock:
                        lostops = list(self.pending)
                        self.pending.clear()
                    for n, key, op, arg, t, rel in lostops:
                        self.check(n, key, op, arg, None, t)
                        if rel:
                            self.slots.release()
                    self.lost(str(e))
                continue
            with self.plock:
                n, key, op, arg, t, rel = self.pending.popleft()
            self.check(n, key, op, arg, reply, t)
            if rel:
                self.slots.release()

    def run(self):
        try:
            self.connect()
            # Known starting values: one SET each, retried until OK.
            for key in self.keys:
                while True:
                    v = "0" if key.kind == "counter" else self.token()
                    r = self.run_batch([(key, "SET", v)])
                    if r and r[0] == ("+", "OK"):
                        break
                    time.sleep(0.1)
            self.ready.set()
            w = threading.Thread(target=self.writer, daemon=True)
            w.start()
            try:
                self.reader()
            finally:
                self.wstop.set()
                w.join(5)
            self.final_reads()
        except Exception as e:      # reported, never silent
            self.failed = "%s: %s" % (type(e).__name__, e)
            self.ready.set()
            self.writer_done.set()

    def final_reads(self):
        deadline = time.time() + self.args.final_timeout
        for key in self.keys:
            while True:
                r = self.run_batch([(key, "GET", None)])
                if r and r[0][0] == "$":
                    self.final[key.name] = r[0][1]
                    break
                if time.time() > deadline:
                    self.stats.anomaly("session %d: final GET %s: no value within "
                                       "%d s: %s" % (self.sid, key.name,
                                                     self.args.final_timeout,
                                                     key.hist[-1]))
                    break
                time.sleep(0.2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", default="alice")
    ap.add_argument("--dir", required=True)
    ap.add_argument("--tags", required=True, help="comma-separated hash tags")
    ap.add_argument("--sessions", type=int, default=12)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--deadline", type=float, default=600,
                    help="seconds: stop even without DIR/stop")
    ap.add_argument("--reply-timeout", type=int, default=60)
    ap.add_argument("--final-timeout", type=int, default=30)
    ap.add_argument("--mix-tags", help="comma-separated hash tags whose "
                    "keys transactions and split commands use (default: "
                    "--tags)")
    ap.add_argument("--trace", help="a directory: every session's checked "
                    "commands and replies, one file a session")
    args = ap.parse_args()
    args.password = os.environ.get("RD_ORDER_PASSWORD", "")
    t_start = time.time()
    args.hard_deadline = t_start + args.deadline + args.final_timeout + 60

    tags = [t for t in args.tags.split(",") if t]
    args.mix_tags = set(t for t in (args.mix_tags or args.tags).split(",") if t)
    stats = Stats()
    stop = threading.Event()
    sessions = []
    allkeys = []
    for sid in range(args.sessions):
        keys = []
        for tag in tags:
            keys.append(Key("{%s}:s%d:c" % (tag, sid), "counter", sid))
            keys.append(Key("{%s}:s%d:x" % (tag, sid), "string", sid))
            Group(keys[-2:])
        allkeys += keys
        sessions.append(Session(sid, args, keys, stats, stop,
                                args.seed * 1000003 + sid))
    for s in sessions:
        s.start()
    for s in sessions:
        s.ready.wait()
    bad = [s for s in sessions if s.failed]
    if bad:
        for s in bad:
            print("session %d failed at start: %s" % (s.sid, s.failed),
                  file=sys.stderr)
        stop.set()
        sys.exit(2)
    with stats.lock:
        start_commands = stats.commands
    open(os.path.join(args.dir, "ready"), "w").close()
    print("# %d sessions, %d keys over %d tags: ready after %.1f s"
          % (len(sessions), len(allkeys), len(tags), time.time() - t_start),
          file=sys.stderr, flush=True)

    stopfile = os.path.join(args.dir, "stop")
    t_load = time.time()
    last = t_load
    while not os.path.exists(stopfile) and time.time() - t_start < args.deadline:
        time.sleep(0.1)
        if time.time() - last >= 10:
            last = time.time()
            with stats.lock:
                print("# %.0f s: %d commands, %d errors, %d anomalies"
                      % (last - t_load, stats.commands,
                         sum(stats.errors.values()), stats.anomalies),
                      file=sys.stderr, flush=True)
        if any(s.failed for s in sessions):
            break
    t_stop = time.time()
    stop.set()
    for s in sessions:
        s.join(args.final_timeout + args.reply_timeout + 30)

    for s in sessions:
        if s.trace:
            s.trace.flush()
    failed = [s for s in sessions if s.failed or s.is_alive()]
    for s in failed:
        stats.anomaly("session %d did not finish: %s"
                      % (s.sid, s.failed or "still running"))
    with open(os.path.join(args.dir, "final.tsv"), "w") as f:
        for s in sessions:
            for k, v in sorted(s.final.items()):
                f.write("%s\t%s\n" % (k, "(nil)" if v is None else v))
    summary = {
        "sessions": len(sessions),
        "keys": len(allkeys),
        "tags": tags,
        "seed": args.seed,
        "load_seconds": round(t_stop - t_load, 1),
        "commands": stats.commands,
        "commands_under_load": stats.commands - start_commands,
        "sync_batches": stats.batches,
        "by_op": dict(stats.by_op),
        "ok_replies": stats.ok,
        "error_replies": dict(stats.errors),
        "indeterminate_writes": stats.indeterminate,
        "widened_keys": stats.widened,
        "max_states": stats.max_states,
        "reconnects": stats.reconnects,
        "final_values": sum(len(s.final) for s in sessions),
        "transactions": sum(stats.by_op[o] for o in ("EXEC", "DISCARD", "UNWATCH")),
        "split_commands": sum(stats.by_op[o] for o in SPLIT_OPS),
        "outcomes": dict(stats.outcomes),
        "anomalies": stats.anomalies,
    }
    with open(os.path.join(args.dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)
    print(json.dumps(summary, sort_keys=True))
    sys.exit(1 if stats.anomalies else 0)


if __name__ == "__main__":
    main()
