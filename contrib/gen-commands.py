#!/usr/bin/env python3
"""gen-commands.py - write src/rd_commands.def from a running redis-server.

redoubt's command table (arity, flags, ACL categories, tips, key specs) is
not written by hand: this script asks a real Redis with COMMAND INFO (no
arguments: every command, with its subcommands nested) and writes one C
initializer row per command and per subcommand, sorted by name, for
src/rd_command.c to include. Commit the .def together with this script.

It starts nothing: point it at a redis-server you started, e.g.

    redis-server --port 17300 --bind 127.0.0.1 --save '' &
    contrib/gen-commands.py --port 17300

The RD_CMD_*, RD_CAT_*, RD_KS_* and RD_TIP_* names come from
src/rd_command.h; a flag Redis reports that the header does not define
stops the script with a message saying which line to add, so the table
never silently drops knowledge. Python 3 standard library only.
"""

import argparse
import os
import re
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
SCRIPT = "contrib/gen-commands.py"


class RespError(Exception):
    pass


class Resp2:
    """Just enough of a RESP2 client for COMMAND INFO and INFO."""

    def __init__(self, host, port, timeout):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.rd = self.sock.makefile("rb")

    def call(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            b = a.encode() if isinstance(a, str) else a
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        self.sock.sendall(b"".join(out))
        return self.read()

    def line(self):
        s = self.rd.readline()
        if not s.endswith(b"\r\n"):
            raise RespError("connection closed mid-reply")
        return s[:-2]

    def read(self):
        s = self.line()
        kind, rest = s[:1], s[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RespError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.rd.read(n + 2)
            if len(data) != n + 2:
                raise RespError("connection closed mid-bulk")
            return data[:-2].decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RespError("unexpected reply type %r" % kind)

    def close(self):
        self.rd.close()
        self.sock.close()


def header_names(path):
    """Which RD_<KIND>_<NAME> bits the header defines, per kind."""
    names = {"CMD": set(), "CAT": set(), "KS": set(), "TIP": set()}
    limits = {}
    pat = re.compile(r"#define\s+RD_(CMD|CAT|KS|TIP)_([A-Z0-9_]+)\s+\(UINT")
    lim = re.compile(r"#define\s+(RD_CMD_MAX_KEY_SPECS|RD_CMD_NAME_MAX)\s+(\d+)")
    with open(path) as f:
        for line in f:
            m = pat.match(line)
            if m:
                names[m.group(1)].add(m.group(2))
            m = lim.match(line)
            if m:
                limits[m.group(1)] = int(m.group(2))
    return names, limits


def pairs(flat):
    """A RESP2 flat [k1, v1, k2, v2, ...] list as a dict."""
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


def c_ident(s):
    return re.sub(r"[^A-Z0-9]", "_", s.upper())


def tip_name(tip):
    """request_policy:all_shards -> REQ_ALL_SHARDS, response_policy:agg_sum
    -> RESP_AGG_SUM, other tips -> their own name."""
    k, _, v = tip.partition(":")
    if k == "request_policy":
        return "REQ_" + c_ident(v)
    if k == "response_policy":
        return "RESP_" + c_ident(v)
    return c_ident(tip)


class Gen:
    def __init__(self, names, limits):
        self.names = names
        self.limits = limits
        self.errors = []
        self.missing = {}       # "RD_CMD_X" -> (Redis's word, [commands])

    def mask(self, kind, words, conv=c_ident, where=""):
        out = []
        for w in words:
            n = conv(w)
            if n not in self.names[kind]:
                c = "RD_%s_%s" % (kind, n)
                self.missing.setdefault(c, (w, []))[1].append(where)
                continue
            out.append("RD_%s_%s" % (kind, n))
        return " | ".join(out) if out else "0"

    def spec(self, name, raw):
        s = pairs(raw)
        bs, fk = pairs(s["begin_search"]), pairs(s["find_keys"])
        flags = self.mask("KS", s.get("flags", []), where=name)
        parts = [".flags = %s" % flags]
        bspec = pairs(bs.get("spec") or [])
        if bs["type"] == "index":
            parts.append(".bs_type = RD_BS_INDEX, .bs.index = %d" % bspec["index"])
        elif bs["type"] == "keyword":
            parts.append('.bs_type = RD_BS_KEYWORD, .bs.keyword = { "%s", %d }'
                         % (bspec["keyword"], bspec["startfrom"]))
        elif bs["type"] == "unknown":
            parts.append(".bs_type = RD_BS_UNKNOWN")
        else:
            self.errors.append("%s: unknown begin_search type %r" % (name, bs["type"]))
        fspec = pairs(fk.get("spec") or [])
        if fk["type"] == "range":
            parts.append(".fk_type = RD_FK_RANGE, .fk.range = { %d, %d, %d }"
                         % (fspec["lastkey"], fspec["keystep"], fspec["limit"]))
        elif fk["type"] == "keynum":
            parts.append(".fk_type = RD_FK_KEYNUM, .fk.keynum = { %d, %d, %d }"
                         % (fspec["keynumidx"], fspec["firstkey"], fspec["keystep"]))
        elif fk["type"] == "unknown":
            parts.append(".fk_type = RD_FK_UNKNOWN")
        else:
            self.errors.append("%s: unknown find_keys type %r" % (name, fk["type"]))
        return "{ " + ",\n              ".join(parts) + " }"

    def row(self, info, nsub):
        name = info[0].lower()
        arity, flags, cats, tips, specs = info[1], info[2], info[6], info[7], info[8]
        if len(name) + 1 > self.limits["RD_CMD_NAME_MAX"]:
            self.errors.append("%s: name longer than RD_CMD_NAME_MAX" % name)
        if len(specs) > self.limits["RD_CMD_MAX_KEY_SPECS"]:
            self.errors.append("%s: %d key specs, raise RD_CMD_MAX_KEY_SPECS"
                               % (name, len(specs)))
        cats = [c[1:] if c.startswith("@") else c for c in cats]
        out = ["    { .name = \"%s\", .arity = %d," % (name, arity),
               "      .flags = %s," % self.mask("CMD", flags, where=name),
               "      .acl = %s," % self.mask("CAT", cats, where=name),
               "      .tips = %s," % self.mask("TIP", tips, tip_name, name),
               "      .subcommands = %d, .nspecs = %d," % (nsub, len(specs))]
        if specs:
            out.append("      .specs = {")
            for sp in specs:
                out.append("            " + self.spec(name, sp) + ",")
            out.append("      } },")
        else:
            out.append("    },")
        return name, "\n".join(out)


def walk(infos):
    """Top-level COMMAND INFO entries and their nested subcommands, flat."""
    for info in infos:
        if info is None:
            continue
        subs = info[9] if len(info) > 9 and info[9] else []
        yield info, len(subs)
        for sub in subs:
            yield sub, 0


def redis_version(info_text):
    m = re.search(r"^redis_version:(\S+)", info_text, re.M)
    return m.group(1) if m else "unknown"


def render(version, rows):
    head = """/*
 * rd_commands.def - the Redis command table: one row per command and per
 * subcommand, sorted by name (strcmp order), for src/rd_command.c.
 *
 * GENERATED FILE - DO NOT EDIT BY HAND.
 * Written by %s from COMMAND INFO of Redis %s.
 * To change it, change the script (or src/rd_command.h) and run it again
 * against a redis-server; commit the script and this file together.
 *
 * %d rows.
 */
#define RD_COMMANDS_REDIS_VERSION "%s"

""" % (SCRIPT, version, len(rows), version)
    return head + "\n".join(text for _, text in rows) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=6379)
    ap.add_argument("--user", help="AUTH as this user (needs --password)")
    ap.add_argument("--password", default=os.environ.get("REDISCLI_AUTH"),
                    help="AUTH password (default: $REDISCLI_AUTH)")
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--header", default=os.path.join(TOP, "src", "rd_command.h"))
    ap.add_argument("--output", default=os.path.join(TOP, "src", "rd_commands.def"))
    args = ap.parse_args()

    names, limits = header_names(args.header)
    try:
        r = Resp2(args.host, args.port, args.timeout)
        if args.password:
            auth = [args.user, args.password] if args.user else [args.password]
            r.call("AUTH", *auth)
        version = redis_version(r.call("INFO", "server"))
        infos = r.call("COMMAND", "INFO")
        r.close()
    except (OSError, RespError) as e:
        sys.exit("gen-commands: %s:%d: %s" % (args.host, args.port, e))

    # Redis 7 added tips, key specs and subcommands as elements 7 to 9.
    if not infos or any(i is not None and len(i) < 10 for i in infos):
        sys.exit("gen-commands: Redis %s gives no key specs; need 7 or later"
                 % version)

    gen = Gen(names, limits)
    rows = sorted((gen.row(info, nsub) for info, nsub in walk(infos)),
                  key=lambda r: r[0].encode())
    for c, (word, cmds) in sorted(gen.missing.items()):
        gen.errors.append("Redis reports %r (%s%s): add %s to src/rd_command.h"
                          % (word, ", ".join(sorted(cmds)[:3]),
                             ", ..." if len(cmds) > 3 else "", c))
    if gen.errors:
        sys.exit("gen-commands:\n  " + "\n  ".join(gen.errors))
    seen = [n for n, _ in rows]
    if len(set(seen)) != len(seen):
        sys.exit("gen-commands: duplicate command names")

    tmp = args.output + ".tmp"
    with open(tmp, "w") as f:
        f.write(render(version, rows))
    os.replace(tmp, args.output)
    print("gen-commands: wrote %s: %d rows from Redis %s"
          % (args.output, len(rows), version))


if __name__ == "__main__":
    main()
