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

Phases, driven by files in --dir:
  the initial SETs done                 -> writes DIR/ready
  DIR/stop appears (or --deadline)      -> every session stops sending,
                                           reads what is in flight, runs
                                           the final GETs (transient
                                           errors retried), then
  DIR/final.tsv (key, value or "(nil)") and DIR/summary.json are written.
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
        self.conn = None
        self.seq = 0
        self.n = 0                          # commands sent, numbered
        self.failed = None
        self.ready = threading.Event()
        self.final = {}
        self.recent = collections.deque(maxlen=HISTORY)
        # the window
        self.pending = collections.deque()  # (n, key, op, arg, t_sent)
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
        return "#%d %s %s%s -> %s" % (n, op, key.name,
                                      "" if arg is None else " " + repr(arg),
                                      show(reply))

    def check(self, n, key, op, arg, reply, t_sent):
        """Apply one reply (None: never answered) to the model."""
        if reply is None:
            # Like an error reply: it may or may not have run.
            reply = ("-", "ERR redoubt: (no reply: connection lost)")
        before = key.states
        why = apply(key, op, arg, reply)
        key.ops += 1
        text = self.line(n, key, op, arg, reply)
        key.hist.append("%s  (states before %s)" % (text, states_text(before)))
        self.recent.append("%.3f %s" % (t_sent, text))
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
            with self.plock:
                inflight = [self.line(m, k, o, a, None) + " (in flight)"
                            for m, k, o, a, _ in list(self.pending)[:10]]
            self.stats.anomaly(
                "session %d (window %d), key %s (%s): %s\n"
                "  the command: %s\n"
                "  possible states before it: %s\n"
                "  the key's history (this session's order, oldest first):\n%s\n"
                "  the session's last commands (send time, number, reply):\n%s%s"
                % (self.sid, self.window, key.name, key.kind, why, text,
                   states_text(before),
                   "\n".join("    " + h for h in key.hist),
                   "\n".join("    " + h for h in self.recent),
                   "".join("\n    " + h for h in inflight)))
        if reply[0] == "-":
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
                            op, arg = self.gen_op(key, rng)
                            self.n += 1
                            self.pending.append((self.n, key, op, arg, t))
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
                    for n, key, op, arg, t in lostops:
                        self.check(n, key, op, arg, None, t)
                        self.slots.release()
                    self.lost(str(e))
                continue
            with self.plock:
                n, key, op, arg, t = self.pending.popleft()
            self.check(n, key, op, arg, reply, t)
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
    args = ap.parse_args()
    args.password = os.environ.get("RD_ORDER_PASSWORD", "")
    t_start = time.time()
    args.hard_deadline = t_start + args.deadline + args.final_timeout + 60

    tags = [t for t in args.tags.split(",") if t]
    stats = Stats()
    stop = threading.Event()
    sessions = []
    allkeys = []
    for sid in range(args.sessions):
        keys = []
        for tag in tags:
            keys.append(Key("{%s}:s%d:c" % (tag, sid), "counter", sid))
            keys.append(Key("{%s}:s%d:x" % (tag, sid), "string", sid))
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
        "anomalies": stats.anomalies,
    }
    with open(os.path.join(args.dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)
    print(json.dumps(summary, sort_keys=True))
    sys.exit(1 if stats.anomalies else 0)


if __name__ == "__main__":
    main()
