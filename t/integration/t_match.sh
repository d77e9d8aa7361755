#!/bin/bash
# t_match: rd_glob_match() (src/rd_match.c) against a real redis-server,
# which is the oracle: a generated corpus of patterns and subjects over a
# small alphabet of the bytes that matter (* ? [ ] ^ - \ NUL newline,
# a few letters and two high bytes). Every subject is a key in one
# database; for every pattern, KEYS (and, for a sample, SCAN MATCH) gives
# the keys Redis matches, and t/match_tool gives rd_glob_match's answer
# for every subject. Any difference fails the test and is printed.
#
# RD_MATCH_SEED (default 10) picks the corpus; RD_MATCH_PATTERNS (default
# 3000) and RD_MATCH_SUBJECTS (default 1500 random ones, on top of every
# short string over a smaller alphabet) size it.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
rd_init
need python3

TOOL=$RD_BUILDDIR/t/match_tool
[ -x "$TOOL" ] || fail "t/match_tool not found at $TOOL (is it built? make check builds it)"

redis_start a

python3 - "${RD_REDIS_PORT[a]}" "$TOOL" "${RD_MATCH_SEED:-10}" \
    "${RD_MATCH_PATTERNS:-3000}" "${RD_MATCH_SUBJECTS:-1500}" <<'EOF' || fail "rd_glob_match and redis-server disagree (see above)"
import itertools
import random
import socket
import subprocess
import sys

port, tool, seed = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
npat, nsubj = int(sys.argv[4]), int(sys.argv[5])
rnd = random.Random(seed)

# --- a binary-safe RESP client ------------------------------------------

sock = socket.create_connection(("127.0.0.1", port), timeout=120)
rfile = sock.makefile("rb")

def enc(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)

def reply():
    line = rfile.readline()
    if not line.endswith(b"\r\n"):
        raise EOFError("connection to redis closed")
    t, rest = line[:1], line[1:-2]
    if t == b"+" or t == b":":
        return rest
    if t == b"-":
        raise RuntimeError("redis error: %r" % rest)
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = rfile.read(n + 2)
        return data[:-2]
    if t == b"*":
        n = int(rest)
        return None if n < 0 else [reply() for _ in range(n)]
    raise RuntimeError("bad reply %r" % line)

def pipeline(cmds):
    """Sends the commands in batches, returns the replies in order."""
    out = []
    for i in range(0, len(cmds), 200):
        batch = cmds[i:i + 200]
        sock.sendall(b"".join(enc(*c) for c in batch))
        out.extend(reply() for _ in batch)
    return out

# --- the corpus ---------------------------------------------------------

SPECIAL = [b"*", b"?", b"[", b"]", b"^", b"-", b"\\"]
ORDINARY = [b"a", b"b", b"c", b"z", b"\0", b"\n", b"\x80", b"\xff"]
SUBJ_ALPHA = [b"a", b"b", b"c", b"z", b"-", b"]", b"^", b"\\", b"*", b"?",
              b"[", b"\0", b"\n", b"\x80", b"\xff"]
SMALL_ALPHA = [b"a", b"b", b"-", b"]", b"\\", b"*", b"\0", b"\n"]

subjects = {b""}
for n in range(1, 3):
    for t in itertools.product(SMALL_ALPHA, repeat=n):
        subjects.add(b"".join(t))
while len(subjects) < len(SMALL_ALPHA) ** 2 + len(SMALL_ALPHA) + 1 + nsubj:
    n = rnd.choice([1, 2, 3, 3, 4, 4, 5, 6, 7, 8, 10, 12])
    subjects.add(b"".join(rnd.choice(SUBJ_ALPHA) for _ in range(n)))
# For Redis's depth limit (1000 nested stars).
subjects.update([b"a" * 1001, b"a" * 1002 + b"b"])
subjects = sorted(subjects)
short = [s for s in subjects if len(s) <= 12]

def rand_bytes():
    n = rnd.randint(0, 8)
    pool = SPECIAL * 2 + ORDINARY
    return b"".join(rnd.choice(pool) for _ in range(n))

def rand_class():
    out = b"["
    if rnd.random() < 0.3:
        out += b"^"
    for _ in range(rnd.randint(0, 4)):
        r = rnd.random()
        if r < 0.35:
            out += rnd.choice(SUBJ_ALPHA) + b"-" + rnd.choice(SUBJ_ALPHA)
        elif r < 0.5:
            out += b"\\" + rnd.choice(SUBJ_ALPHA)
        else:
            out += rnd.choice(SUBJ_ALPHA)
    if rnd.random() < 0.85:
        out += b"]"
    return out

def rand_tokens():
    out = b""
    for _ in range(rnd.randint(1, 6)):
        r = rnd.random()
        if r < 0.25:
            out += rnd.choice([b"*", b"*", b"**"])
        elif r < 0.4:
            out += b"?"
        elif r < 0.6:
            out += rand_class()
        elif r < 0.7:
            out += b"\\" + rnd.choice(SUBJ_ALPHA + [b""])
        else:
            out += rnd.choice(SUBJ_ALPHA)
    return out

def from_subject():
    """A subject with some bytes turned into wildcards: many matches."""
    s = list(rnd.choice(short))
    out = []
    for c in s:
        b = bytes([c])
        r = rnd.random()
        if r < 0.15:
            out.append(b"*")
        elif r < 0.3:
            out.append(b"?")
        elif r < 0.4:
            out.append(b"[" + b + rnd.choice(SUBJ_ALPHA) + b"]")
        elif r < 0.5 and b in (b"*", b"?", b"[", b"\\"):
            out.append(b"\\" + b)
        else:
            out.append(b)
    if rnd.random() < 0.2:
        out.insert(rnd.randint(0, len(out)), b"*")
    return b"".join(out)

patterns = [
    b"", b"*", b"**", b"***", b"?", b"[", b"[^", b"]", b"\\", b"\\\\",
    b"[]", b"[^]", b"[]]", b"[]a]", b"[a-]", b"[a-", b"[ab-]", b"[-a]",
    b"[z-a]", b"[a-\xff]", b"[\x80-\xff]", b"[\xff-a]", b"[\0-a]",
    b"[\\]]", b"[\\", b"[a\\", b"a\\", b"\\*", b"*\\", b"[^a-z]",
    b"secret:*", b"*\0*", b"*\n*", b"?\0?", b"[\0]", b"[^\0]",
    b"*a" * 1000, b"*a" * 1001, b"*a" * 1000 + b"*", b"*a" * 1001 + b"*",
    b"*?" * 1000 + b"*", b"*?" * 1001, b"a*" * 999 + b"a", b"a*" * 1001 + b"b",
]
makers = [rand_bytes, rand_tokens, rand_tokens, from_subject, from_subject]
while len(patterns) < npat:
    patterns.append(rnd.choice(makers)())

# --- Redis's answers -----------------------------------------------------

pipeline([["FLUSHALL"]])
assert pipeline([["SET", s, b"1"] for s in subjects]) == [b"OK"] * len(subjects)
assert int(pipeline([["DBSIZE"]])[0]) == len(subjects)
keys = pipeline([["KEYS", p] for p in patterns])
redis = [set(k) for k in keys]

# SCAN MATCH, for a sample, must say the same as KEYS.
def scan(p):
    cursor, out = b"0", set()
    while True:
        cursor, batch = pipeline([["SCAN", cursor, "MATCH", p, "COUNT", "100000"]])[0]
        out.update(batch)
        if cursor == b"0":
            return out
for i in range(0, len(patterns), 15):
    if scan(patterns[i]) != redis[i]:
        print("# SCAN MATCH and KEYS disagree on %r" % patterns[i])
        sys.exit(1)

# --- rd_glob_match's answers --------------------------------------------

feed = "".join("s %s\n" % s.hex() for s in subjects)
feed += "".join("p %s\n" % p.hex() for p in patterns)
run = subprocess.run([tool], input=feed.encode(), stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE)
if run.returncode != 0:
    sys.stderr.write(run.stderr.decode(errors="replace"))
    print("# match_tool exited %d" % run.returncode)
    sys.exit(1)
rows = run.stdout.decode().split("\n")[:-1]
if len(rows) != len(patterns):
    print("# match_tool printed %d rows for %d patterns" % (len(rows), len(patterns)))
    sys.exit(1)

def show(b):
    return repr(b) if len(b) <= 60 else repr(b[:40]) + "...(%d bytes)" % len(b)

bad = shown = 0
matches = 0
some = none = 0
for p, row, want in zip(patterns, rows, redis):
    got = {s for s, c in zip(subjects, row) if c == "1"}
    matches += len(want)
    if want:
        some += 1
    if len(want) < len(subjects):
        none += 1
    diff = sorted(got ^ want)
    for s in diff[:3]:
        if shown < 30:
            print("# pattern %s subject %s: redis %d, rd_glob_match %d"
                  % (show(p), show(s), s in want, s in got))
            shown += 1
    bad += len(diff)

pairs = len(patterns) * len(subjects)
print("# seed %d: %d patterns x %d subjects = %d pairs, %d matches; "
      "%d patterns match some subject, %d miss some; %d differences"
      % (seed, len(patterns), len(subjects), pairs, matches, some, none, bad))
if bad:
    sys.exit(1)
# The corpus must exercise both answers, or the comparison says little.
if some < len(patterns) // 3 or none < len(patterns) // 2 or matches < 5000:
    print("# corpus too one-sided")
    sys.exit(1)
EOF

pass
