#!/bin/bash
# t_getkeys: the command table's key positions (rd_command_keys_ex(), driven
# by t/getkeys_tool) against a real redis-server's COMMAND GETKEYSANDFLAGS,
# over a corpus generated from the server's own COMMAND INFO and COMMAND
# DOCS: every command with key specs, with optional arguments left out,
# repeated and moved (GEORADIUS ... STORE a STORE b, XREADGROUP COUNT 1
# GROUP ...), numkeys right and wrong (EVAL, FCALL, Z*STORE, *MPOP,
# *INTERCARD), SORT BY/GET/STORE, MIGRATE KEYS, XREAD(GROUP) STREAMS,
# arguments replaced by keywords ("STORE", "streams", "keys", "01", ""),
# truncated vectors; hand-written families on top; and every command
# without keys, which Redis must answer "no key arguments".
#
# How the answers must correspond (rd_command.h's contract):
#   Redis's keys K (not empty)   ours: the same keys (as argv values, in
#                                order), with Redis's flags where it reports
#                                any and the spec's flags do not vary (SET,
#                                BITFIELD: we state the worst case); or -1
#                                when Redis refuses to run the command
#                                (COMMAND GETKEYS falls back to getkeys
#                                procedures that read counts with atoi:
#                                "EVAL s 01 k" gives [k], EVAL refuses "01")
#   Redis's [] (EVAL, FCALL: no mandatory keys)
#                                ours: no keys, or -1
#   "Invalid arguments specified for command"
#                                ours: -1, no keys, or keys ("ZUNIONSTORE d
#                                0 a": we name the destination anyway), and
#                                Redis refuses to run the command; except
#                                "PFMERGE d", which Redis runs (it creates
#                                d) though its spec walk names no key: ours
#                                names d
#   "The command has no key arguments"
#                                ours: no keys (or -1 for a wrong argc)
#   "Invalid number of arguments specified for command"
#                                ours: -1
#   "Invalid command specified"  ours: unknown, or the container's own row
#                                (an unknown subcommand) with no keys
# and, for every vector of a command with keys, run on the server (inside
# MULTI/EXEC, so nothing blocks, on a flushed database with the vector's
# keys made of the command's type):
#   ours -1                      Redis refuses it (an error reply other
#                                than a data error such as WRONGTYPE, or
#                                EXECABORT at queue time)
#   keys the command wrote (keyspace notifications)
#                                all among RD_KEYS_TOUCHED's keys
# Writes of keys COMMAND GETKEYS does not name are printed as notes: the
# cases RD_KEYS_TOUCHED exists for (GEORADIUS STORE a STORE b, SORT STORE
# get STORE d, XREADGROUP with GROUP after COUNT and a consumer named
# "streams", PFMERGE d); the hand-written ones must stay among them. Last,
# reads of keys COMMAND GETKEYS does not name: SORT's BY/GET patterns
# (which RD_KEYS_TOUCHED cannot name either), DEBUG OBJECT and DIGEST-VALUE
# (on a second server, with DEBUG enabled; RD_KEYS_TOUCHED names them).
#
# RD_GETKEYS_SEED=N picks another corpus (default 1); RD_GETKEYS_PER_COMMAND
# the number of generated vectors per command (default 24, each also
# mutated twice).
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
rd_init
need python3

tool=$RD_BUILDDIR/t/getkeys_tool
[ -x "$tool" ] || fail "getkeys_tool not found at $tool (is it built? make check builds it)"

redis_start a
want=$("$tool" -V) || fail "getkeys_tool -V"
have=$(dcli a INFO server | tr -d '\r' | sed -n 's/^redis_version://p')
# A different minor release has other commands and key specs: the table
# would have to be regenerated first (contrib/gen-commands.py).
[ "${have%.*}" = "${want%.*}" ] ||
    skip "redis-server is $have, the command table is from Redis $want"

python3 - "${RD_REDIS_PORT[a]}" "$tool" "$T" > "$T/driver.out" 2>&1 <<'PY'
import os
import random
import socket
import subprocess
import sys
import threading

PORT, TOOL, TMP = int(sys.argv[1]), sys.argv[2], sys.argv[3]
SEED = int(os.environ.get("RD_GETKEYS_SEED", "1"))
PER_COMMAND = int(os.environ.get("RD_GETKEYS_PER_COMMAND", "24"))
rng = random.Random(SEED)


# --- RESP ------------------------------------------------------------------

class Err(str):
    pass


def encode(cmds):
    out = bytearray()
    for c in cmds:
        out += b"*%d\r\n" % len(c)
        for a in c:
            b = a.encode("latin-1")
            out += b"$%d\r\n%s\r\n" % (len(b), b)
    return bytes(out)


class Conn:
    def __init__(self, timeout=20):
        self.sock = socket.create_connection(("127.0.0.1", PORT), timeout=timeout)
        self.f = self.sock.makefile("rb", buffering=1 << 16)

    def read(self):
        line = self.f.readline()
        if not line.endswith(b"\r\n"):
            raise EOFError("connection closed")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode("latin-1")
        if kind == b"-":
            return Err(rest.decode("latin-1"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            return data[:-2].decode("latin-1")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ValueError("unexpected reply %r" % line)

    def pipeline(self, cmds, chunk=2000):
        replies = []
        for i in range(0, len(cmds), chunk):
            part = cmds[i:i + chunk]
            self.sock.sendall(encode(part))
            replies.extend(self.read() for _ in part)
        return replies

    def call(self, *args):
        return self.pipeline([list(args)])[0]


def flat(m):
    return {m[i]: m[i + 1] for i in range(0, len(m), 2)} if m else {}


# --- what the server knows ---------------------------------------------------

conn = Conn()
infos = {}
for info in conn.call("COMMAND", "INFO"):
    if info is None:
        continue
    infos[info[0].lower()] = info
    for sub in info[9] or []:
        infos[sub[0].lower()] = sub
# Something for EVALSHA and FCALL to run, so that they get as far as their
# counts.
SHA1 = conn.call("SCRIPT", "LOAD", "return 1")
conn.call("FUNCTION", "LOAD", "REPLACE", "#!lua name=rdgk\n"
          "redis.register_function{function_name='f', "
          "callback=function(keys, args) return 1 end, flags={'no-writes'}}")
docs = {}
for name, doc in flat(conn.call("COMMAND", "DOCS")).items():
    doc = flat(doc)
    docs[name.lower()] = doc
    for sname, sdoc in flat(doc.get("subcommands")).items():
        docs[sname.lower()] = flat(sdoc)


def specs(name):
    return [flat(s) for s in infos[name][8]]


def has_keys(name):
    return any("not_key" not in s.get("flags", []) for s in specs(name))


def argdoc(a):
    d = flat(a)
    d["flags"] = d.get("flags") or []
    d["arguments"] = [argdoc(x) for x in d.get("arguments") or []]
    return d


# --- the corpus ---------------------------------------------------------------

TRICKY = ["STORE", "STOREDIST", "store", "STREAMS", "streams", "KEYS", "keys",
          "GET", "get", "BY", "by", "LIMIT", "limit", "COUNT", "GROUP",
          "AUTH", "AUTH2", "COPY", "WEIGHTS", "NOACK", "BLOCK", ""]
NUMBERS = ["0", "1", "2", "3", "-1", "01", "+1", "x"]
WORDS = ["m1", "m2", "g", "c", "f", "v", "x"]
TRICKY_KEYS = ["STORE", "STOREDIST", "store", "streams", "STREAMS", "keys",
               "get", "by", "limit"]


class Vec:
    """One generated command: its words, and which of them are keys."""

    def __init__(self, name, words):
        self.name = name
        self.words = list(words)
        self.keys = []
        self.spans = []     # (start, end, argdoc) of tokened arguments
        self.n = 0

    def key(self):
        if rng.random() < 0.12:
            k = rng.choice(TRICKY_KEYS)
        else:
            self.n += 1
            k = "k%d" % self.n
        self.keys.append(k)
        return k


def tok(t):
    r = rng.random()
    return t.lower() if r < 0.2 else t.capitalize() if r < 0.25 else t


def value(a, v):
    n, t = a["name"], a["type"]
    if t == "key":
        return [v.key()]
    if t == "pure-token":
        return []
    if t == "oneof":
        return one(rng.choice(a["arguments"]), v, force=True)
    if t == "block":
        return gen(a["arguments"], v)
    if n == "host":
        return ["127.0.0.1"]
    if n == "port":
        return ["1"]
    if n == "script":
        return [rng.choice(["return 1", "x"])]
    if n == "sha1":
        return [SHA1]
    if n == "function":
        return ["f"]
    if n in ("longitude", "latitude"):
        return [{"longitude": "13.36", "latitude": "38.11"}[n]]
    if t == "integer":
        return [rng.choice(["0", "1", "2", "5"]) if rng.random() < 0.9
                else rng.choice(NUMBERS)]
    if t == "double":
        return [rng.choice(["0", "1.5", "200"])]
    if t == "unix-time":
        return ["1700000000"]
    if t == "pattern":
        return [rng.choice(["p_*", "*", "#", "p_*->f", "nosort"])]
    return [rng.choice(WORDS) if rng.random() < 0.75 else rng.choice(TRICKY)]


def one(a, v, force=False):
    """An argument's words (its token and value), once or repeated."""
    if not force and "optional" in a["flags"] and rng.random() < 0.5:
        return []
    reps = rng.choice([1, 1, 1, 2, 3]) if "multiple" in a["flags"] else 1
    out = []
    for r in range(reps):
        if a.get("token") is not None and (r == 0 or "multiple_token" in a["flags"]):
            out.append(tok(a["token"]))
        out.extend(value(a, v))
    return out


def count_word(n):
    if rng.random() < 0.85:
        return str(n)
    return rng.choice([str(n + 1), str(max(n - 1, 0)), "0", "-1", "01", "x",
                       "99999999999999999999"])


def gen(args, v):
    out = []
    i = 0
    while i < len(args):
        a = args[i]
        nxt = args[i + 1] if i + 1 < len(args) else None
        start = len(v.words) + len(out)
        if (a["type"] == "integer" and a.get("token") is None and nxt is not None
                and nxt["type"] == "key" and "multiple" in nxt["flags"]):
            # numkeys and its keys (EVAL, ZUNIONSTORE, LMPOP, ...)
            n = rng.choice([1, 1, 2, 3] + ([0] if "optional" in nxt["flags"] else []))
            ks = [v.key() for _ in range(n)]
            out += [count_word(n)] + ks
            i += 2
            continue
        if (a["type"] == "block" and len(a["arguments"]) == 2
                and all("multiple" in x["flags"] for x in a["arguments"])):
            # STREAMS key... id...: as many IDs as keys, mostly
            n = rng.choice([1, 1, 2, 3])
            m = n if rng.random() < 0.85 else rng.choice([n + 1, max(n - 1, 0)])
            w = [tok(a["token"])] if a.get("token") is not None else []
            w += [v.key() for _ in range(n)]
            w += [rng.choice(["0", ">", "$", "0-0"]) for _ in range(m)]
            out += w
            i += 1
            continue
        w = one(a, v)
        out += w
        if w and a.get("token") is not None:
            v.spans.append((start, start + len(w), a))
        i += 1
    return out


def command_words(name):
    if "|" in name:
        c, s = name.split("|", 1)
        return [tok(c.upper()), tok(s.upper())]
    return [tok(name.upper())]


def generate(name):
    d = docs.get(name, {})
    args = [argdoc(a) for a in d.get("arguments") or []]
    v = Vec(name, command_words(name))
    v.words += gen(args, v)
    return v


def mutate(v):
    w = list(v.words)
    head = len(command_words(v.name))
    kinds = ["tricky", "truncate", "extra"]
    if v.spans:
        kinds += ["repeat", "repeat", "move"]
    k = rng.choice(kinds)
    m = Vec(v.name, [])
    m.keys = list(v.keys)
    m.n = v.n + 100
    if k == "repeat":
        s, e, a = rng.choice(v.spans)
        again = one(a, m, force=True)
        at = e if rng.random() < 0.5 else len(w)
        w[at:at] = again
    elif k == "move":
        s, e, a = rng.choice(v.spans)
        part = w[s:e]
        del w[s:e]
        at = rng.randint(min(x[0] for x in v.spans), len(w)) if len(w) > s else s
        at = max(head, min(at, len(w)))
        w[at:at] = part
    elif k == "tricky" and len(w) > head:
        w[rng.randrange(head, len(w))] = rng.choice(TRICKY + NUMBERS)
    elif k == "truncate" and len(w) > head:
        del w[len(w) - rng.choice([1, 1, 2]):]
    else:
        w.append(rng.choice(TRICKY + NUMBERS + ["k9"]))
        if w[-1] == "k9":
            m.keys.append("k9")
    m.words = w
    return m


# Hand-written families, on top of the generated ones; "" is an empty word.
FAMILIES = """
GEORADIUS g 13.36 38.11 200 km STORE a STORE b
GEORADIUS g 13.36 38.11 200 km STOREDIST a STOREDIST b
GEORADIUS g 13.36 38.11 200 km STORE a STOREDIST b
GEORADIUS g 13.36 38.11 200 km STOREDIST a STORE b
GEORADIUS g 13.36 38.11 200 km STORE storedist STOREDIST b
GEORADIUS g 13.36 38.11 200 km STORE STORE STORE b
GEORADIUS g 13.36 38.11 200 km COUNT 1 STORE a WITHDIST
GEORADIUS g 13.36 38.11 200 km STORE
GEORADIUS_RO g 13.36 38.11 200 km STORE a
GEORADIUSBYMEMBER g m1 200 km STORE a STORE b
GEORADIUSBYMEMBER g m1 200 km STOREDIST a STORE b
GEORADIUSBYMEMBER_RO g m1 200 km
GEOSEARCHSTORE d g FROMMEMBER m1 BYRADIUS 200 km STOREDIST
GEOSEARCH g FROMLONLAT 13.36 38.11 BYBOX 1 1 km ASC COUNT 1 ANY
GEOADD g 13.36 38.11 m1
GEODIST g m1 m2 km
GEOPOS g m1 m2
GEOHASH g m1
EVAL "return 1" 0
EVAL "return 1" 2 a b c
EVAL "return 1" 3 a b
EVAL "return 1" 01 a
EVAL "return 1" +1 a
EVAL "return 1" -1 a
EVAL "return 1" x a
EVALSHA e0e1f9fabfc9d4800c877a703b823ac0578ff8db 1 a
EVAL_RO "return 1" 1 a
EVALSHA_RO e0e1f9fabfc9d4800c877a703b823ac0578ff8db 2 a b
EVALSHA e0e1f9fabfc9d4800c877a703b823ac0578ff8db 01 a
PFMERGE d
FCALL f 0
FCALL f 2 a b c
FCALL f 3 a b
FCALL_RO f 1 a
ZUNIONSTORE d 2 a b WEIGHTS 1 2 AGGREGATE MAX
ZUNIONSTORE d 0 a
ZUNIONSTORE d 3 a b
ZINTERSTORE d 1 a
ZDIFFSTORE d 2 a b
ZUNION 2 a b WITHSCORES
ZINTER 1 a
ZDIFF 3 a b
ZINTERCARD 2 a b LIMIT 5
ZINTERCARD 0 a
SINTERCARD 2 a b LIMIT 1
SINTERCARD 0 a
SINTERCARD 3 a b
SINTERSTORE d a b
SUNIONSTORE d a
SDIFFSTORE d a b c
LMPOP 2 a b LEFT COUNT 2
LMPOP 0 a LEFT
LMPOP 3 a b LEFT
BLMPOP 0 2 a b RIGHT
BLMPOP 0 x a LEFT
ZMPOP 1 a MIN
ZMPOP 2 a b MAX COUNT 1
BZMPOP 0 1 a MIN
BZMPOP 0 01 a MIN
SORT s
SORT s STORE d
SORT s BY w_* GET o_* GET # STORE d
SORT s STORE d1 STORE d2
SORT s STORE get STORE d
SORT s STORE by STORE d
SORT s STORE limit STORE d
SORT s GET store STORE d
SORT s LIMIT 0 1 STORE d
SORT s STORE
SORT_RO s BY w_* GET o_*
SORT_RO s STORE d
MIGRATE 127.0.0.1 1 a 0 10
MIGRATE 127.0.0.1 1 "" 0 10 KEYS a b
MIGRATE 127.0.0.1 1 "" 0 10 COPY REPLACE KEYS a
MIGRATE 127.0.0.1 1 "" 0 10 AUTH keys KEYS a
MIGRATE 127.0.0.1 1 "" 0 10 AUTH2 keys keys KEYS a b
MIGRATE 127.0.0.1 1 a 0 10 KEYS b
MIGRATE 127.0.0.1 1 "" 0 10 KEYS
MIGRATE 127.0.0.1 1 "" 0 10 KEYS a KEYS b
MIGRATE 127.0.0.1 1 "" 0 10
XREAD STREAMS a 0
XREAD COUNT 1 BLOCK 0 STREAMS a b 0 0
XREAD STREAMS streams 0
XREAD STREAMS a
XREAD STREAMS a b 0
XREAD COUNT 1 STREAMS
XREAD COUNT streams STREAMS a 0
XREADGROUP GROUP g c STREAMS a >
XREADGROUP GROUP g c COUNT 1 NOACK STREAMS a b > >
XREADGROUP GROUP streams streams STREAMS a >
XREADGROUP COUNT 1 GROUP g streams STREAMS a >
XREADGROUP COUNT 1 GROUP streams c STREAMS a >
XREADGROUP NOACK GROUP g streams STREAMS a b > >
XREADGROUP GROUP g c STREAMS a
SET a v GET
SET a v EX 10 GET
SET a v NX
GETEX a PERSIST
BITFIELD a GET u8 0
BITFIELD a SET u8 0 1 GET u8 0
BITFIELD a OVERFLOW SAT INCRBY u8 0 1
BITFIELD_RO a GET u8 0
BITOP AND d a b
BITOP NOT d a
OBJECT ENCODING a
OBJECT FREQ a
OBJECT HELP
OBJECT NOSUCH a
MEMORY USAGE a SAMPLES 5
MEMORY USAGE a
MEMORY DOCTOR
XINFO STREAM a FULL
XINFO GROUPS a
XGROUP CREATE a g $ MKSTREAM
XGROUP CREATECONSUMER a g c
DEBUG OBJECT a
DEBUG DIGEST-VALUE a b
PFDEBUG GETREG a
PFMERGE d a b
PFCOUNT a b
MSET a 1 b 2
MSET a 1 b
MSETNX a 1 b 2
BLPOP a b 0
BRPOPLPUSH a b 0
BLMOVE a b LEFT RIGHT 0
LMOVE a b LEFT RIGHT
COPY a b DB 1 REPLACE
RENAME a b
SMOVE a b m
LCS a b LEN
ZRANGESTORE d a 0 -1
OBJECT ENCODING
SPUBLISH ch m
SSUBSCRIBE ch
PUBLISH ch m
WATCH a b
EXISTS a a
SUBSTR a 0 1
RESTORE a 0 x REPLACE
GET
MGET
"""


def family_vectors():
    out = []
    for line in FAMILIES.strip().splitlines():
        words, cur, q = [], "", False
        for ch in line + " ":
            if ch == '"':
                q = not q
                if not q:
                    words.append(cur)
                    cur = None
                continue
            if ch == " " and not q:
                if cur:
                    words.append(cur)
                cur = ""
                continue
            cur = (cur or "") + ch
        name = words[0].lower()
        if name in infos and infos[name][9] and len(words) > 1 \
                and (name + "|" + words[1].lower()) in infos:
            name += "|" + words[1].lower()
        v = Vec(name if name in infos else None, words)
        v.keys = [x for x in words[1:] if x]
        v.family = True
        out.append(v)
    return out


keyed = sorted(n for n in infos if has_keys(n))
corpus = family_vectors()
for name in keyed:
    for _ in range(PER_COMMAND):
        v = generate(name)
        corpus.append(v)
        corpus.append(mutate(v))
        corpus.append(mutate(v))
# Commands without keys: their fewest arguments, and one more.
for name in sorted(n for n in infos if not has_keys(n)):
    if infos[name][9]:
        continue            # a container: its subcommands are rows of their own
    base = command_words(name)
    arity = infos[name][1]
    for extra in (0, 1):
        words = base + ["a"] * max(abs(arity) - len(base) + extra, 0)
        corpus.append(Vec(name, words))
# COMMAND GETKEYS needs at least the command's name and one more word.
corpus = [v for v in corpus if len(v.words) >= 2]


# --- the two answers -------------------------------------------------------------

def tool(opts, vecs):
    p = subprocess.run([TOOL] + opts, input=encode([v.words for v in vecs]),
                       stdout=subprocess.PIPE, check=True)
    lines = p.stdout.decode("latin-1").splitlines()
    assert len(lines) == len(vecs), "tool gave %d lines for %d" % (len(lines), len(vecs))
    out = []
    for line in lines:
        parts = line.split(" ")
        if parts == ["unknown"]:
            out.append((None, "unknown", None))
        elif parts[1] == "error":
            out.append((parts[0], "error", None))
        else:
            ks = [(int(p.split(":")[0]), int(p.split(":")[1], 16)) for p in parts[2:]]
            out.append((parts[0], "ok", ks))
    return out


KS = {"RO": 1 << 0, "RW": 1 << 1, "OW": 1 << 2, "RM": 1 << 3, "access": 1 << 4,
      "update": 1 << 5, "insert": 1 << 6, "delete": 1 << 7, "not_key": 1 << 8,
      "incomplete": 1 << 9, "variable_flags": 1 << 10}


def ks_mask(names):
    return sum(KS[n] for n in names)


ours = tool([], corpus)
touched = tool(["-t"], corpus)
redis = conn.pipeline([["COMMAND", "GETKEYSANDFLAGS"] + v.words for v in corpus])


def show(v):
    return " ".join('""' if w == "" else ('"%s"' % w if " " in w else w) for w in v.words)


failures = []
notes = []
must_refuse = set()     # corpus indexes Redis must refuse to run


def fail(v, why):
    failures.append("%s: %s" % (show(v), why))


def redis_misses(v, row, ks):
    """Where Redis's spec walk names no key though the command runs: PFMERGE
    dest with no source key writes dest, but the walk gives up on the empty
    range of sources and, with no getkeys procedure to fall back on, names
    nothing (Redis's own ACL then checks no key). Ours names dest."""
    return row == "pfmerge" and len(v.words) == 2 and ks and [p for p, _ in ks] == [1]


stats = {}
for i, (v, (row, st, ks), r) in enumerate(zip(corpus, ours, redis)):
    names = None if ks is None else [v.words[p] for p, _ in ks]
    if isinstance(r, Err):
        kind = r
        if "Invalid arguments specified" in r:
            if st == "unknown":
                fail(v, "Redis: %s; ours: unknown command" % r)
            elif st == "ok" and not redis_misses(v, row, ks):
                must_refuse.add(i)
        elif "has no key arguments" in r:
            if st == "unknown" or (st == "ok" and names) or has_keys(row):
                fail(v, "Redis: %s; ours: %s %s %s" % (r, row, st, names))
        elif "Invalid number of arguments" in r:
            if st != "error":
                fail(v, "Redis: %s; ours: %s %s" % (r, st, names))
        elif "Invalid command specified" in r:
            if not (st == "unknown" or (st == "ok" and not names and "|" not in row
                                        and infos[row][9])):
                fail(v, "Redis: %s; ours: %s %s %s" % (r, row, st, names))
        else:
            fail(v, "unexpected reply from Redis: %s" % r)
    else:
        rnames = [k for k, _ in r]
        kind = "keys" if rnames else "[]"
        if st == "unknown":
            fail(v, "Redis: %s; ours: unknown command" % rnames)
        elif st == "error":
            pass            # checked below: Redis must refuse to run it
        elif names != rnames:
            fail(v, "Redis: %s; ours (%s): %s" % (rnames, row, names))
        elif not (infos[row][8] and any("variable_flags" in flat(s).get("flags", [])
                                        for s in infos[row][8])):
            for (p, f), (k, rf) in zip(ks, r):
                if rf and f != ks_mask(rf):
                    fail(v, "key %s: Redis's flags %s, ours %#x" % (k, rf, f))
    if st == "error":
        must_refuse.add(i)
    stats[kind] = stats.get(kind, 0) + 1


# --- running them -----------------------------------------------------------------

GROUP_TYPE = {"string": "string", "bitmap": "string", "list": "list",
              "set": "set", "sorted-set": "zset", "geo": "geo", "hash": "hash",
              "stream": "stream", "hyperloglog": "hll", "generic": "list",
              "scripting": "string"}


def populate(key, kind):
    if kind == "string":
        return [["SET", key, "10"]]
    if kind == "list":
        return [["RPUSH", key, "3", "1", "2"]]
    if kind == "set":
        return [["SADD", key, "m1", "m2", "3"]]
    if kind == "zset":
        return [["ZADD", key, "1", "m1", "2", "m2"]]
    if kind == "geo":
        return [["GEOADD", key, "13.36", "38.11", "m1", "13.37", "38.12", "m2"]]
    if kind == "hash":
        return [["HSET", key, "f", "1", "m1", "2"]]
    if kind == "hll":
        return [["PFADD", key, "m1", "m2"]]
    if kind == "stream":
        out = [["XADD", key, "1-1", "f", "v"]]
        for g in WORDS + TRICKY:
            out.append(["XGROUP", "CREATE", key, g, "0"])
        return out
    return []


events = []
ev_lock = threading.Lock()


def subscriber(sub):
    while True:
        try:
            m = sub.read()
        except (EOFError, OSError, ValueError):
            return
        if isinstance(m, list) and m and m[0] in ("message", "pmessage"):
            with ev_lock:
                events.append((m[-2], m[-1]))
            if m[-2] == "rd-mark" and m[-1] == "done":
                return


conn.call("CONFIG", "SET", "notify-keyspace-events", "EA")
conn.call("CONFIG", "SET", "client-output-buffer-limit", "pubsub 0 0 0")
sub = Conn(timeout=None)
sub.sock.sendall(encode([["PSUBSCRIBE", "__keyevent@*__:*"], ["SUBSCRIBE", "rd-mark"]]))
sub.read()
sub.read()
th = threading.Thread(target=subscriber, args=(sub,), daemon=True)
th.start()

runnable = []
for i, v in enumerate(corpus):
    row = ours[i][0]
    if row is None or not has_keys(row):
        continue
    if "pubsub" in infos[row][2]:
        continue
    runnable.append(i)

cmds = []
multi_at = {}
for i in runnable:
    v = corpus[i]
    group = docs.get(v.name, {}).get("group") if v.name else None
    kind = GROUP_TYPE.get(group, "string")
    cmds.append(["FLUSHALL", "SYNC"])
    for k in dict.fromkeys(v.keys):
        cmds.extend(populate(k, kind))
    cmds.append(["PUBLISH", "rd-mark", "b%d" % i])
    multi_at[i] = len(cmds)
    cmds.append(["MULTI"])
    cmds.append(list(v.words))
    cmds.append(["EXEC"])
    cmds.append(["PUBLISH", "rd-mark", "e%d" % i])
replies = conn.pipeline(cmds, chunk=500)
conn.call("PUBLISH", "rd-mark", "done")
th.join(30)
if th.is_alive():
    failures.append("the keyspace notifications did not all arrive in 30 s")

# The command's own reply: EXEC's one element, or EXECABORT.
result = {}
for i, pos in multi_at.items():
    execr = replies[pos + 2]
    result[i] = execr if isinstance(execr, Err) else execr[0] if execr else None

written = {}
cur = None
for ch, payload in events:
    if ch == "rd-mark":
        if payload == "done":
            break
        cur = int(payload[1:]) if payload[0] == "b" else None
        continue
    if cur is not None:
        written.setdefault(cur, []).append((ch.split(":", 1)[1], payload))

# Errors that come after the arguments were read: the command ran. (The
# script and function the corpus names exist: NOSCRIPT or "Function not
# found" is for a word put in their place.)
DATA_ERRORS = ("WRONGTYPE", "NOGROUP", "NOKEY", "ERR no such key", "BUSYKEY")
refused = 0
for i in sorted(must_refuse):
    v = corpus[i]
    if i not in result:
        continue
    r = result[i]
    if not isinstance(r, Err) or r.startswith(DATA_ERRORS):
        fail(v, "ours %s, Redis %s; but Redis runs it: %r"
             % (ours[i][1] if ours[i][1] == "error" else ours[i][2],
                redis[i] if isinstance(redis[i], Err) else [k for k, _ in redis[i]], r))
    else:
        refused += 1

missed = {}
for i, ws in sorted(written.items()):
    v = corpus[i]
    tk = touched[i]
    tnames = set() if tk[2] is None else {v.words[p] for p, _ in tk[2]}
    pk = ours[i]
    pnames = set() if pk[2] is None else {v.words[p] for p, _ in pk[2]}
    r = redis[i]
    rnames = r if isinstance(r, Err) else sorted({k for k, _ in r})
    for ev, key in ws:
        if key not in tnames:
            fail(v, "wrote %s (%s), RD_KEYS_TOUCHED gives %s" % (key, ev, sorted(tnames)))
        elif isinstance(r, Err) or key not in rnames:
            missed.setdefault(show(v), set()).add(key)
            notes.append("%s: writes %s (%s); COMMAND GETKEYS: %s; ours: %s, %s with RD_KEYS_TOUCHED"
                         % (show(v), key, ev, rnames, sorted(pnames), sorted(tnames)))

# The hand-written cases where COMMAND GETKEYS misses the key written: they
# must still miss it (else this list, and rd_command.h's, is out of date).
for cmd, key in [
        ("GEORADIUS g 13.36 38.11 200 km STORE a STORE b", "b"),
        ("GEORADIUS g 13.36 38.11 200 km STOREDIST a STOREDIST b", "b"),
        ("GEORADIUS g 13.36 38.11 200 km STORE storedist STOREDIST b", "b"),
        ("GEORADIUS g 13.36 38.11 200 km STORE STORE STORE b", "b"),
        ("GEORADIUSBYMEMBER g m1 200 km STORE a STORE b", "b"),
        ("SORT s STORE get STORE d", "d"),
        ("SORT s STORE by STORE d", "d"),
        ("SORT s STORE limit STORE d", "d"),
        ("XREADGROUP COUNT 1 GROUP g streams STREAMS a >", "a"),
        ("XREADGROUP COUNT 1 GROUP streams c STREAMS a >", "a"),
        ("XREADGROUP NOACK GROUP g streams STREAMS a b > >", "b"),
        ("PFMERGE d", "d")]:
    if key not in missed.get(cmd, ()):
        failures.append("%s: expected it to write %s, a key COMMAND GETKEYS does not name"
                        % (cmd, key))

print("corpus: %d vectors (%d generated for %d commands with keys, %d hand-written), seed %d"
      % (len(corpus), sum(1 for v in corpus if not getattr(v, "family", False)),
         len(keyed), sum(1 for v in corpus if getattr(v, "family", False)), SEED))
print("Redis's answers: %s" % ", ".join("%s %d" % kv for kv in sorted(stats.items())))
print("run on the server: %d; refused where ours says -1 or differs: %d; with writes: %d"
      % (len(runnable), refused, len(written)))
with open(os.path.join(TMP, "corpus.txt"), "w", encoding="latin-1") as f:
    for i, v in enumerate(corpus):
        r = redis[i]
        f.write("%s\n  redis: %s\n  ours: %s\n  touched: %s\n  run: %r, wrote %s\n"
                % (show(v), r if isinstance(r, Err) else [k for k, _ in r],
                   ours[i], touched[i], result.get(i, "-"),
                   sorted({k for _, k in written.get(i, [])})))
for n in sorted(set(notes)):
    print("note: " + n)
for f in failures:
    print("FAIL: " + f)
sys.exit(1 if failures else 0)
PY
rc=$?
cat "$T/driver.out" >&2
[ "$rc" -eq 0 ] || fail "key positions differ from Redis's (driver status $rc; see above)"

# tkeys ARGS...: what getkeys_tool -t says for one command.
tkeys() { resp_encode "$@" | "$tool" -t; }

# --- reads of keys COMMAND GETKEYS does not name -------------------------
# SORT's BY and GET patterns read keys no argument names (and no option of
# rd_command_keys_ex() can): a caller must refuse them by command.
dcli a FLUSHALL >/dev/null
dcli a RPUSH sl 1 2 >/dev/null
dcli a MSET w_1 2 w_2 1 o_1 one o_2 two >/dev/null
assert_eq "two one" "$(dcli a SORT sl BY 'w_*' GET 'o_*' | tr '\n' ' ' | sed 's/ $//')" \
    "SORT BY w_* GET o_* reads w_1, w_2, o_1, o_2"
assert_eq sl "$(dcli a COMMAND GETKEYS SORT sl BY 'w_*' GET 'o_*')" "COMMAND GETKEYS SORT ... BY ... GET"
assert_eq "sort ok 1:11" "$(tkeys SORT sl BY 'w_*' GET 'o_*')" "RD_KEYS_TOUCHED for SORT ... BY ... GET"

# DEBUG OBJECT and DIGEST-VALUE read the keys they name, with no key specs
# (on a server that allows DEBUG).
dport=$(free_port) || fail "no free port for the DEBUG redis-server"
mkdir -p "$T/redis-debug"
redis-server --port "$dport" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --enable-debug-command yes --dir "$T/redis-debug" \
    --logfile "$T/redis-debug/redis.log" &
RD_PIDS+=("$!")
wait_for 10 redis_ping "$dport" || fail "the redis-server with DEBUG enabled does not answer on $dport"
dbg() { redis-cli -h 127.0.0.1 -p "$dport" "$@"; }
dbg SET dk v >/dev/null
assert_prefix "Value at:" "$(dbg DEBUG OBJECT dk)" "DEBUG OBJECT dk reads dk"
assert_prefix "ERR no such key" "$(dbg DEBUG OBJECT nokey)" "DEBUG OBJECT of a missing key"
assert_contains "no key arguments" "$(dbg COMMAND GETKEYS DEBUG OBJECT dk)" "COMMAND GETKEYS DEBUG OBJECT"
assert_eq "debug ok 2:11" "$(tkeys DEBUG OBJECT dk)" "RD_KEYS_TOUCHED for DEBUG OBJECT"
digests=$(dbg DEBUG DIGEST-VALUE dk nokey | tr '\n' ' ')
[[ $digests =~ ^[0-9a-f]{40}\ 0{40}\ $ && $digests != 0000* ]] ||
    fail "DEBUG DIGEST-VALUE dk nokey: expected dk's digest and zeros, got '$digests'"
assert_eq "debug ok 2:11 3:11" "$(tkeys DEBUG DIGEST-VALUE dk nokey)" "RD_KEYS_TOUCHED for DEBUG DIGEST-VALUE"
pass
