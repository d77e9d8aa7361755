#!/bin/bash
# t_audit: the audit log, through redoubt to real redis-servers (one over
# TLS with ACL users, one plaintext).
#   - every event type with its documented fields: session.start allowed,
#     refused by a role and failed in the TLS handshake; session.auth ok
#     and WRONGPASS (AUTH pinned to the route user, AUTH selecting a user,
#     HELLO AUTH); session.query ok, NOPERM (a FLUSHALL denied by a role),
#     Redis errors, arguments cut at max_arg_bytes, binary bytes escaped,
#     secrets redacted; session.end with counts; passwords never written;
#   - secrets, with Redis as the oracle: AUTH, HELLO AUTH (every option,
#     also malformed ones), ACL SETUSER >pw <pw #hash !hash, CONFIG SET of
#     secret parameters in any case and any pair, MIGRATE AUTH/AUTH2,
#     unknown and malformed commands, secrets quoted in error texts: the
#     same commands go to a redis-server of their own with SLOWLOG on, and
#     every argument Redis shows as "(redacted)" must be "(redacted)" in
#     the audit line too (args = full, and the default args = names);
#   - seq: numbered lines per worker, no gap while nothing is lost, a gap
#     where lines were dropped;
#   - lines of 2 workers under concurrent load (plain and pipelined
#     clients) are all valid JSON, none interleaved, none lost;
#   - USR1 rotation: rename, USR1, new events in the new file, none lost;
#   - on_failure = block and continue with a file that cannot grow
#     (RLIMIT_FSIZE set on the workers with prlimit): block refuses
#     commands until the limit is raised, continue drops and goes on;
#   - audit.args = names and none (after reloads);
#   - events buffered when the workers stop are written.
# shellcheck disable=SC2317 # helpers called indirectly (wait_for)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
rd_init
need_tls
need python3 prlimit

CA=$T/ca
ctl ca init "$CA"
CACERT=$CA/db-ca.crt
ctl cert server --ca-dir "$CA" --host localhost,127.0.0.1 --out "$T/redoubt"
ctl cert server --ca-dir "$CA" --host localhost,127.0.0.1 --out "$T/redis"
ctl cert server --ca-dir "$CA" --ca db-client --host localhost --out "$T/direct"

redis_start_tls a "$T/redis.crt" "$T/redis.key" "$CA/db-client-ca.crt"
redis_start p
redis_start o           # the oracle: which arguments does Redis redact?
dt() { tls_cli "${RD_REDIS_PORT[a]}" "$T/direct" "$CA/db-ca.crt" "$@"; }
for u in "alice >alicepw-s3cr3t" "bob >bobpw-s3cr3t"; do
    read -r name pw <<<"$u"
    assert_eq OK "$(dt ACL SETUSER "$name" on "$pw" '~*' '&*' +@all 2>&1)" "ACL SETUSER $name"
done
assert_eq OK "$(dt SET app:1 one 2>&1)" "SET app:1 straight to redis"
# Every password and secret the test sends; none may reach the audit log.
# (Each ends in "-s3cr3t": no part of one may show, see secrets.py.)
HASH=$(printf '%s' hashpw-s3cr3t | sha256sum | cut -d' ' -f1)
SECRETS=(alicepw-s3cr3t bobpw-s3cr3t wrongpw-s3cr3t sekritpw-s3cr3t
         carolpw-s3cr3t "$HASH" nopw-s3cr3t onlypw-s3cr3t authpw3-s3cr3t
         hellopw-s3cr3t hellopw2-s3cr3t hellopw3-s3cr3t hellopw4-s3cr3t
         hellopw5-s3cr3t hellopw6-s3cr3t mapw-s3cr3t reqpw-s3cr3t
         mapw2-s3cr3t mu-s3cr3t tkpw-s3cr3t tckpw-s3cr3t reqpw2-s3cr3t
         modpw-s3cr3t migpw-s3cr3t miguser-s3cr3t migpw2-s3cr3t
         migpw3-s3cr3t unkpw-s3cr3t cfgpw-s3cr3t getpw-s3cr3t)

PPORT=$(free_port) || fail "no free port for the plaintext listener"
AUDIT=$T/audit.log
CONF=$T/redoubt.conf
# write_conf ON_FAILURE [ARGS]: the configuration (ARGS "default": no
# audit.args line).
write_conf() {
    local args="args = \"${2:-full}\";"
    [ "${2:-}" = default ] && args="# args: the default"
    cat > "$CONF.tmp" <<EOF
# redoubt test configuration for $RD_TEST
worker_processes = $RD_WORKERS;
pid_file = "$T/redoubt.pid";
worker_shutdown_timeout = "10s";
error_log = { path = "$T/error.log"; level = "info"; };
tls = { certificate = "$T/redoubt.crt"; certificate_key = "$T/redoubt.key";
        client_ca = "$CA/user-ca.crt"; };
upstream_tls = { ca_cert = "$CA/db-client-ca.crt"; ca_key = "$CA/db-client-ca.key";
                 server_ca = "$CA/db-ca.crt"; };
listen = ( { address = "127.0.0.1:$RD_PORT"; database = "cache"; },
           { address = "127.0.0.1:$PPORT"; database = "plain"; tls = false; } );
roles = (
  { name = "access";
    allow = { db_labels = { * = "*"; }; db_users = [ "{{internal.db_users}}" ]; }; },
  { name = "no-flush";
    deny = { db_labels = { * = "*"; }; commands = [ "flushall", "flushdb" ]; }; }
);
databases = (
  { name = "cache"; uri = "rediss://127.0.0.1:${RD_REDIS_PORT[a]}"; connect_timeout = "2s";
    labels = { env = "prod"; }; },
  { name = "plain"; uri = "redis://127.0.0.1:${RD_REDIS_PORT[p]}"; connect_timeout = "2s"; }
);
audit = {
    path = "audit.log";            # relative: next to this file
    $args
    max_arg_bytes = "1kb";
    flush_interval = "200ms";
    buffer = "64kb";
    on_failure = "$1";
};
EOF
    mv "$CONF.tmp" "$CONF"
}
write_conf block
out=$("$REDOUBT" -t -c "$CONF" 2>&1) || fail "-t on the audit config: $out"

# A bad audit directive is a configuration error with file and line.
sed 's/args = "full"/args = "everything"/' "$CONF" > "$T/bad.conf"
out=$("$REDOUBT" -t -c "$T/bad.conf" 2>&1) && fail "-t accepted audit.args = \"everything\""
assert_contains 'audit.args: must be one of "full", "names", "none"' "$out" "the error for a bad audit.args"
sed "s|path = \"audit.log\"|path = \"$T/nosuch/audit.log\"|" "$CONF" > "$T/bad.conf"
out=$("$REDOUBT" -t -c "$T/bad.conf" 2>&1) && fail "-t accepted an audit.path in a missing directory"
assert_contains "audit.path: the directory \"$T/nosuch\" does not exist" "$out" "the error for a bad audit.path"

rd_start "$CONF"

# --- helpers ---------------------------------------------------------------

# aq.py: "check [--complete] FILE..." validates every line (JSON, the
# documented fields and their types, no secret); with --complete also
# that every session has one start first and one end last, with one
# query/auth event per command. "select WHERE PRINT FILE...": for each
# event e where the Python expression WHERE holds, print PRINT.
cat > "$T/aq.py" <<'PY'
import json, os, re, signal, sys
signal.signal(signal.SIGPIPE, signal.SIG_DFL)

COMMON = ["time", "event", "sid", "user", "roles", "db", "db_user",
          "client", "worker", "seq", "redoubt"]
REQUIRED = {
    "session.start": ["result", "listener"],
    "session.auth": ["command", "auth_user", "outcome", "node", "latency_us"],
    "session.query": ["command", "nkeys", "node", "outcome", "latency_us"],
    "session.subscribe": ["command", "nkeys", "node", "outcome", "latency_us"],
    "session.end": ["duration_us", "bytes_in", "bytes_out", "commands",
                    "errors", "messages", "reason"],
}
OPTIONAL = {
    "session.start": ["reason"],
    "session.auth": ["error"],
    "session.query": ["subcommand", "error", "args", "keys"],
    "session.subscribe": ["error", "channels"],
    "session.end": [],
}
STR_OR_NULL = (str, type(None))

def events(files):
    for f in files:
        data = open(f, "rb").read()
        if data and not data.endswith(b"\n"):
            yield f, 0, None, "the file does not end with a line break"
        for i, raw in enumerate(data.split(b"\n")[:-1], 1):
            yield f, i, raw, None

def check(files, complete):
    secrets = [s.encode() for s in os.environ.get("AUDIT_SECRETS", "").split()]
    errs, sessions, n, seqs = [], {}, 0, {}
    for f, i, raw, err in events(files):
        where = "%s:%d" % (os.path.basename(f), i)
        if err:
            errs.append("%s: %s" % (where, err))
            continue
        for s in secrets:
            if s in raw:
                errs.append("%s: a secret is in the audit log" % where)
        try:
            e = json.loads(raw)
        except ValueError as x:
            errs.append("%s: not JSON (%s): %r" % (where, x, raw[:300]))
            continue
        n += 1
        bad = lambda why: errs.append("%s: %s: %s" % (where, why, raw[:300]))
        if list(e)[:len(COMMON)] != COMMON:
            bad("common fields missing or out of order")
            continue
        if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", e["time"]):
            bad("bad time")
        if not re.fullmatch(r"[0-9a-f]{32}", e["sid"]):
            bad("bad sid")
        if not isinstance(e["user"], STR_OR_NULL) or not isinstance(e["db"], STR_OR_NULL) \
                or not isinstance(e["db_user"], STR_OR_NULL):
            bad("user, db, db_user must be strings or null")
        if not isinstance(e["roles"], list) or not all(isinstance(r, str) for r in e["roles"]):
            bad("roles must be an array of strings")
        if not re.fullmatch(r"127\.0\.0\.1:\d+", e["client"]):
            bad("bad client")
        if not isinstance(e["worker"], int) or e["worker"] <= 1:
            bad("bad worker")
        if not isinstance(e["redoubt"], str) or not e["redoubt"]:
            bad("bad redoubt version")
        # seq: per worker, rising from file to file; with --complete
        # without a gap, from 1.
        if not isinstance(e["seq"], int) or e["seq"] < 1:
            bad("bad seq")
        else:
            last = seqs.get(e["worker"])
            if last is not None and e["seq"] <= last:
                bad("seq %d after %d" % (e["seq"], last))
            elif complete and e["seq"] != (last or 0) + 1:
                bad("seq %d after %s: a line is missing" % (e["seq"], last))
            seqs[e["worker"]] = e["seq"]
        ev = e["event"]
        if ev not in REQUIRED:
            bad("unknown event")
            continue
        for k in REQUIRED[ev]:
            if k not in e:
                bad("no %s" % k)
        for k in e:
            if k not in COMMON and k not in REQUIRED[ev] and k not in OPTIONAL[ev]:
                bad("unexpected field %s" % k)
        if ev == "session.start":
            if e.get("result") not in ("allowed", "refused"):
                bad("bad result")
            if (e.get("result") == "refused") != ("reason" in e):
                bad("reason iff refused")
        if ev in ("session.auth", "session.query", "session.subscribe"):
            if not isinstance(e.get("outcome"), str) or not re.fullmatch(r"ok|unanswered|[A-Z]+", e["outcome"]):
                bad("bad outcome")
            if not isinstance(e.get("latency_us"), int) or e["latency_us"] < 0:
                bad("bad latency_us")
            if not isinstance(e.get("node"), STR_OR_NULL):
                bad("bad node")
            if "error" in e and e["outcome"] in ("ok", "unanswered"):
                bad("an error with outcome ok")
        if ev in ("session.query", "session.subscribe"):
            if e.get("command") is not None and not isinstance(e.get("command"), str):
                bad("bad command")
            if e.get("nkeys") is not None and not isinstance(e.get("nkeys"), int):
                bad("bad nkeys")
            for k in ("args", "keys", "channels"):
                if k in e and (not isinstance(e[k], list) or not all(isinstance(a, str) for a in e[k])):
                    bad("%s must be an array of strings" % k)
        if ev == "session.end":
            for k in REQUIRED[ev][:6]:
                if not isinstance(e.get(k), int) or e[k] < 0:
                    bad("bad %s" % k)
        sessions.setdefault(e["sid"], []).append(e)
    if complete:
        for sid, evs in sessions.items():
            names = [x["event"] for x in evs]
            if names.count("session.start") != 1 or names.count("session.end") != 1 \
                    or names[0] != "session.start" or names[-1] != "session.end":
                errs.append("session %s: events %s" % (sid, names))
                continue
            same = [(x["user"], x["roles"], x["db"], x["client"], x["worker"]) for x in evs]
            if len(set(json.dumps(x) for x in same)) != 1:
                errs.append("session %s: common fields change" % sid)
            end = evs[-1]
            cmds = [x for x in evs if x["event"] in ("session.query", "session.auth",
                                                     "session.subscribe")]
            if end["commands"] != len(cmds):
                errs.append("session %s: %d commands but %d query/auth events"
                            % (sid, end["commands"], len(cmds)))
            nerr = sum(1 for x in cmds if x["outcome"] not in ("ok", "unanswered"))
            if end["errors"] != nerr:
                errs.append("session %s: errors %d, error events %d" % (sid, end["errors"], nerr))
    for x in errs[:20]:
        print(x)
    if errs:
        print("%d problems in %d events" % (len(errs), n))
        sys.exit(1)
    print("%d events, %d sessions: all valid" % (n, len(sessions)))

if sys.argv[1] == "check":
    complete = sys.argv[2] == "--complete"
    check(sys.argv[3 if complete else 2:], complete)
elif sys.argv[1] == "select":
    where, what = sys.argv[2], sys.argv[3]
    for f, i, raw, err in events(sys.argv[4:]):
        if raw is None:
            continue
        e = json.loads(raw)
        try:
            hit = eval(where, {"e": e})
        except (KeyError, IndexError, TypeError, AttributeError):
            hit = False         # a field this event does not have
        if hit:
            v = eval(what, {"e": e, "json": json})
            print(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
PY
export AUDIT_SECRETS="${SECRETS[*]}"

# audit_check [--complete] FILE...: all lines valid (see aq.py).
audit_check() {
    local out
    out=$(python3 "$T/aq.py" check "$@" 2>&1) || fail "audit log check: $out"
    note "$out"
}
# aq WHERE PRINT [FILE...]: select events (default: the audit log).
aq() {
    local where=$1 what=$2
    shift 2
    [ $# -gt 0 ] || set -- "$AUDIT"
    python3 "$T/aq.py" select "$where" "$what" "$@"
}
# aq_count WHERE [FILE...]
aq_count() {
    local where=$1
    shift
    aq "$where" 1 "$@" | wc -l
}
# has_event WHERE: wait until an event matching WHERE is in the file.
has_event() { [ "$(aq_count "$1")" -ge 1 ]; }
wait_event() { wait_for 10 has_event "$1" || fail "no audit event where $1 (file: $(tail -n 5 "$AUDIT"))"; }

log_count() { grep -cE -- "$1" "$T/error.log" 2>/dev/null; }
log_has() { grep -qE -- "$1" "$T/error.log" 2>/dev/null; }

Q='e["event"]=="session.query"'

# --- TLS sessions: start, auth, query, end -----------------------------------
user "$T/alice" --user alice --roles access,no-flush --db-users alice --db cache --db-user alice
out=$(rs "$T/alice" <<'EOF'
AUTH alicepw-s3cr3t
GET app:1
FLUSHALL
AUTH wrongpw-s3cr3t
HELLO 2 AUTH alice alicepw-s3cr3t
GET nosuch
EOF
)
assert_contains 'NOPERM redoubt: command '\''flushall'\'' is not allowed' "$out" "alice: FLUSHALL refused"
assert_contains 'WRONGPASS' "$out" "alice: a wrong password"
wait_event 'e["event"]=="session.end" and e["user"]=="alice"'

sid=$(aq 'e["event"]=="session.start" and e["user"]=="alice"' 'e["sid"]')
[ "$(wc -l <<<"$sid")" -eq 1 ] || fail "alice: expected one session, got: $sid"
S="e[\"sid\"]==\"$sid\""
# (Redis runs the connection as "default" until the AUTH: so does db_user.)
assert_eq '"allowed" ["access", "no-flush"] "cache" "default" "127.0.0.1:'"$RD_PORT"'"' \
    "$(aq "$S and e['event']=='session.start'" '" ".join(json.dumps(x) for x in (e["result"], e["roles"], e["db"], e["db_user"], e["listener"]))')" \
    "alice: session.start"
# AUTH password (sent as AUTH alice password: the route user), a wrong
# password, HELLO AUTH.
want=$'auth alice ok\nauth alice WRONGPASS\nhello alice ok'
assert_eq "$want" "$(aq "$S and e['event']=='session.auth'" '" ".join((e["command"], e["auth_user"], e["outcome"]))')" \
    "alice: session.auth events"
assert_eq "127.0.0.1:${RD_REDIS_PORT[a]}" "$(aq "$S and e['event']=='session.auth' and e['outcome']=='ok'" 'e["node"]' | head -n 1)" \
    "alice: AUTH went to redis"
want='get 1 ok ["app:1"] 127.0.0.1:'"${RD_REDIS_PORT[a]}"
assert_eq "$want" "$(aq "$S and $Q and e['command']=='get' and e['args']==['app:1']" \
    '" ".join((e["command"], str(e["nkeys"]), e["outcome"], json.dumps(e["args"]), e["node"]))')" \
    "alice: GET app:1"
# The error's first line, as much of it as the reply head holds (63 bytes).
want="flushall NOPERM null NOPERM redoubt: command 'flushall' is not allowed on database"
assert_prefix "$want" "$(aq "$S and $Q and e['command']=='flushall'" \
    '" ".join((e["command"], e["outcome"], json.dumps(e["node"]), e["error"]))')" \
    "alice: FLUSHALL denied (NOPERM, answered by redoubt)"
# (redis-cli may send COMMAND DOCS first, refused before the AUTH; the TLS
# client closes without close_notify, which is an orderly close.)
nq=$(aq_count "$S and e['event'] in ('session.query','session.auth')")
nerr=$(aq_count "$S and e['event'] in ('session.query','session.auth') and e['outcome']!='ok'")
[ "$nerr" -ge 2 ] || fail "alice: $nerr error events, expected FLUSHALL and the wrong AUTH at least"
assert_eq "$nq $nerr 1" \
    "$(aq "$S and e['event']=='session.end'" '"%d %d %d" % (e["commands"], e["errors"], e["reason"] == "client closed the connection")')" \
    "alice: session.end counts, and a client closing without close_notify is no error"
# The error log names the session by the audit's sid, with nginx's context.
grep -qE "closed: client closed the connection \(in [0-9]+, out [0-9]+, commands [0-9]+\), client: 127\.0\.0\.1:[0-9]+, session: $sid, database: cache, user: alice, db user: alice\$" "$T/error.log" ||
    fail "alice: no 'closed' line with the audit's sid in the error log: $(grep -F "$sid" "$T/error.log" | tail -n 3)"
grep -qE "session: $sid" "$T/error.log" && ! grep -q 'closed: read error' "$T/error.log" ||
    fail "a normal disconnect was logged as a read error"
# "who ran FLUSHALL" as the README tells it.
if command -v jq >/dev/null 2>&1; then
    out=$(jq -r 'select(.event=="session.query" and .command=="flushall") | [.user,.db,.db_user,.outcome] | @tsv' "$AUDIT")
    assert_eq $'alice\tcache\talice\tNOPERM' "$out" "the README's jq one-liner"
fi

# AUTH selecting the database user (no route user): db_user follows.
user "$T/carol" --user carol --roles access --db-users alice,bob
out=$(rs "$T/carol" <<'EOF'
GET app:1
AUTH bob bobpw-s3cr3t
GET app:1
AUTH alice wrongpw-s3cr3t
GET app:1
EOF
)
assert_prefix "NOAUTH Authentication required." "$out" "carol: GET before AUTH"
assert_eq $'OK\none' "$(sed -n 2,3p <<<"$out")" "carol: AUTH bob, GET"
assert_contains 'WRONGPASS' "$(sed -n 4p <<<"$out")" "carol: AUTH alice with a wrong password"
assert_eq one "$(sed -n 5p <<<"$out")" "carol: GET, still as bob"
wait_event 'e["event"]=="session.end" and e["user"]=="carol"'
# (db_user is the one in force when the event is written: after the
# AUTH's reply, the new one.)
# session.auth: the user asked for (auth_user), the user in effect after
# the reply (db_user), the outcome.
want=$'session.query default\nsession.auth bob bob ok\nsession.query bob\nsession.auth bob alice WRONGPASS\nsession.query bob'
assert_eq NOAUTH "$(aq 'e["user"]=="carol" and e.get("command")=="get"' 'e["outcome"]' | head -n 1)" \
    "carol: GET before AUTH refused"
assert_eq "$want" "$(aq 'e["user"]=="carol" and (e["event"]=="session.auth" or e.get("command")=="get")' \
    '" ".join([e["event"], e["db_user"]] + ([e["auth_user"], e["outcome"]] if e["event"]=="session.auth" else []))')" \
    "carol: the database user in each event"

# A session refused by the roles: session.start refused, then session.end.
user "$T/alice-as-bob" --user alice --roles access --db-users alice --db cache --db-user bob
tls_sess_open as-bob "$RD_PORT" "$T/alice-as-bob" "$CACERT" -noservername
wait_for 10 tls_sess_closed as-bob || fail "the refused session was not closed"
W='e["event"]=="session.start" and e["result"]=="refused" and e["user"]=="alice"'
wait_event "$W"
assert_eq 'access to database "cache" as user "bob" denied|cache|bob|["access"]' \
    "$(aq "$W" '"|".join((e["reason"], e["db"], e["db_user"], json.dumps(e["roles"])))')" \
    "the refused session's session.start"
sid=$(aq "$W" 'e["sid"]')
wait_event "e['sid']=='$sid' and e['event']=='session.end'"
assert_eq 'refused 0' "$(aq "e['sid']=='$sid' and e['event']=='session.end'" '"%s %d" % (e["reason"], e["commands"])')" \
    "the refused session's session.end"

# A failed TLS handshake (no client certificate): refused, nobody known.
timeout 10 openssl s_client -connect "127.0.0.1:$RD_PORT" -CAfile "$CACERT" \
    </dev/null >/dev/null 2>&1
W='e["event"]=="session.start" and e["reason"]=="TLS handshake failed"'
wait_event "$W"
assert_eq 'null null null []' "$(aq "$W" '" ".join(json.dumps(x) for x in (e["user"], e["db"], e["db_user"], e["roles"]))' | head -n 1)" \
    "session.start after a failed handshake"

# --- plaintext: arguments ------------------------------------------------------
sess_open P "$PPORT" || fail "cannot connect to the plaintext listener"
big=$(printf 'x%.0s' $(seq 1 2000))
sess_expect "$P" +OK SET big "$big"
# Binary bytes: 0xff, 0x01, a NUL-free mix, sent raw.
sess_send_raw "$P" $'*3\r\n$3\r\nSET\r\n$3\r\nbin\r\n$6\r\n\xff\x01"\\\xc3\xa9\r\n'
sess_read "$P"
assert_eq +OK "$REPLY" "SET bin"
sess_expect "$P" +OK ACL SETUSER tmpuser on '>sekritpw-s3cr3t' '~*' +@all
sess_expect "$P" "(nil)" GET nosuch
sess_cmd "$P" CLIENT SETNAME auditor
assert_eq +OK "$REPLY" "CLIENT SETNAME"
sess_cmd "$P" HGETALL big
assert_prefix "-WRONGTYPE" "$REPLY" "HGETALL on a string"
sess_cmd "$P" NOSUCHCOMMAND a b
assert_prefix "-ERR unknown command" "$REPLY" "an unknown command"
sess_close "$P"
wait_event "e['event']=='session.end' and e['db']=='plain' and e['commands']==7"
want=$(printf 'x%.0s' $(seq 1 1024))$'\xe2\x80\xa6(+976 bytes)'
assert_eq "$want" "$(aq "$Q and e['command']=='set' and e['args'][0]=='big'" 'e["args"][1]')" \
    "a big argument cut at max_arg_bytes"
line=$(grep -F '"args":["bin"' "$AUDIT")
# shellcheck disable=SC1003 # a backslash inside single quotes, as meant
assert_contains '"args":["bin","\u00ff\u0001\"\\'$'\xc3\xa9''"]' "$line" "binary bytes escaped, UTF-8 kept"
# (Redis redacts the user name too.)
assert_eq '["(redacted)", "(redacted)", "(redacted)", "(redacted)", "(redacted)"] acl setuser' \
    "$(aq "$Q and e.get('subcommand')=='setuser'" '"%s %s %s" % (json.dumps(e["args"]), e["command"], e["subcommand"])')" \
    "ACL SETUSER redacted"
assert_eq 'client setname ["auditor"] 0' \
    "$(aq "$Q and e.get('subcommand')=='setname'" '"%s %s %s %d" % (e["command"], e["subcommand"], json.dumps(e["args"]), e["nkeys"])')" \
    "a container command"
assert_eq 'WRONGTYPE' "$(aq "$Q and e['command']=='hgetall'" 'e["outcome"]')" "a Redis error's class"
assert_eq 'nosuchcommand null ERR ["(redacted)", "(redacted)"]' \
    "$(aq "$Q and e['command']=='nosuchcommand'" '"%s %s %s %s" % (e["command"], json.dumps(e["nkeys"]), e["outcome"], json.dumps(e["args"]))')" \
    "an unknown command: the name and the count of its arguments"

# --- secrets, with Redis as the oracle -----------------------------------------
# secrets.py MODE RDPORT ORACLEPORT CMDS AUDIT: sends every command of CMDS
# (JSON lines: "cmd", and what the audit must say) to redoubt's plaintext
# listener and, on a connection of its own, to the oracle redis-server
# with SLOWLOG on (reset before each command, read after it). Then checks
# the session's events, in order, one per command:
#   - every argument the oracle's SLOWLOG shows as "(redacted)" is
#     "(redacted)" in "args" (or the event is a session.auth, which lists
#     none);
#   - the expectations of the line: "args" (full), "keys" (names),
#     "auth" (a session.auth event with that auth_user), "outcome",
#     "error" (a substring of the error text), "reply" (a prefix of
#     redoubt's reply), "values" (present in full, absent in names);
#   - no line of the session holds any part of a secret ("s3cr"), nor
#     any of $AUDIT_SECRETS.
cat > "$T/secrets.py" <<'PY'
import json, os, socket, sys, time

mode, rdport, oport, cmdfile, audit = sys.argv[1:6]
cmds = [json.loads(l) for l in open(cmdfile) if l.strip()]
R = "(redacted)"

def connect(port):
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
    return s, s.makefile("rb")

def send(s, args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    s.sendall(out)

def read(f):
    line = f.readline()
    if not line:
        raise EOFError("connection closed")
    t, rest = line[:1], line[1:-2].decode("utf-8", "replace")
    if t in b"+-:":
        return t.decode() + rest
    if t == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2].decode("utf-8", "replace")
    if t == b"*":
        return [read(f) for _ in range(max(int(rest), 0))]
    raise ValueError("unexpected reply %r" % line)

def show(reply):
    if isinstance(reply, list):
        return "*"
    if reply is None:
        return "$-1"
    return reply if reply[:1] in ("+", "-", ":") else "$" + reply

def call(conn, args):
    send(conn[0], args)
    return read(conn[1])

rd, orc = connect(rdport), connect(oport)
me = b'"client":"127.0.0.1:%d"' % rd[0].getsockname()[1]
call(orc, ["CONFIG", "SET", "slowlog-log-slower-than", "0"])
replies, oracle = [], []
for c in cmds:
    replies.append(show(call(rd, c["cmd"])))
    call(orc, ["SLOWLOG", "RESET"])
    call(orc, c["cmd"])
    logged = [x[3] for x in call(orc, ["SLOWLOG", "GET", "10"])
              if x[3][0].upper() != "SLOWLOG"]
    oracle.append([j for j, a in enumerate(logged[0]) if a == R] if logged else [])
rd[1].close()
rd[0].close()           # (both: the file keeps the socket open)

def lines():
    # Whole lines only: a worker may be writing.
    return [l for l in open(audit, "rb").read().split(b"\n")[:-1] if l]

sid, evs, deadline = None, [], time.time() + 10
while time.time() < deadline:
    starts = [json.loads(l) for l in lines() if me in l]
    starts = [e for e in starts if e["event"] == "session.start"]
    if starts:
        sid = starts[-1]["sid"]
        raw = [l for l in lines() if sid.encode() in l]
        evs = [json.loads(l) for l in raw]
        if evs and evs[-1]["event"] == "session.end":
            break
    time.sleep(0.1)
else:
    sys.exit("FAIL: no session.end for %s (sid %s)" % (me, sid))

errs = []
secrets = [s.encode() for s in os.environ.get("AUDIT_SECRETS", "").split()]
for l in raw:
    for s in secrets + [b"s3cr"]:
        if s in l:
            errs.append("a secret (%r) in %r" % (s, l[:400]))
q = [e for e in evs if e["event"] in ("session.query", "session.auth")]
if len(q) != len(cmds):
    sys.exit("FAIL: %d commands, %d events" % (len(cmds), len(q)))
nred = 0
for c, e, rep, red in zip(cmds, q, replies, oracle):
    name = " ".join(c["cmd"])[:70]
    bad = lambda why: errs.append("%s: %s: %s" % (name, why, json.dumps(e)[:600]))
    if "reply" in c and not rep.startswith(c["reply"]):
        bad("reply %r, not %r..." % (rep, c["reply"]))
    if "auth" in c:
        if e["event"] != "session.auth" or e["auth_user"] != c["auth"]:
            bad("not a session.auth of %r" % c["auth"])
        if "args" in e or "keys" in e:
            bad("a session.auth with arguments")
    elif e["event"] != "session.query" or e["command"] != c["cmd"][0].lower():
        bad("not the session.query of this command")
        continue
    if "outcome" in c and e["outcome"] != c["outcome"]:
        bad("outcome %s, not %s" % (e["outcome"], c["outcome"]))
    if "error" in c and c["error"] not in e.get("error", ""):
        bad("the error does not contain %r" % c["error"])
    nred += len(red)
    if mode == "full" and e["event"] == "session.query":
        first = 2 if "subcommand" in e else 1
        args = e.get("args")
        if args is None:
            bad("no args")
            continue
        for j in red:
            if j < first or j - first >= len(args) or args[j - first] != R:
                bad("redis redacts argument %d, the audit does not" % j)
        if "args" in c and args != c["args"]:
            bad("args %s, not %s" % (json.dumps(args), json.dumps(c["args"])))
        for v in c.get("values", []):
            if not any(v in a for a in args):
                bad("the value %r is not listed" % v)
    if mode == "names":
        if "args" in e:
            bad("arguments with args = names")
        if "keys" in c and e.get("keys") != c["keys"]:
            bad("keys %s, not %s" % (json.dumps(e.get("keys")), json.dumps(c["keys"])))
        for v in c.get("values", []):
            if any(v.encode() in l for l in raw):
                bad("the value %r is in the audit log" % v)
    print("ok %-72s redis redacts %s" % (name, red or "-"))
if nred < 20:
    errs.append("the oracle redacted only %d arguments: is SLOWLOG working?" % nred)
for x in errs:
    print("FAIL: " + x)
print("sid=" + sid)
sys.exit(1 if errs else 0)
PY
OP=${RD_REDIS_PORT[o]}
R='(redacted)'
# The commands; "args" as written with args = full.
cat > "$T/secrets.jsonl" <<EOF
{"cmd": ["ACL", "SETUSER", "tmpuser", "on", ">sekritpw-s3cr3t", "~*", "+@all"], "reply": "+OK", "args": ["$R", "$R", "$R", "$R", "$R"], "keys": []}
{"cmd": ["ACL", "SETUSER", "carol2", "on", ">carolpw-s3cr3t", "#$HASH", "<carolpw-s3cr3t", "!$HASH", "~*", "+@all"], "reply": "+OK", "args": ["$R", "$R", "$R", "$R", "$R", "$R", "$R", "$R"]}
{"cmd": ["acl", "setuser", "carol2", "<nopw-s3cr3t"], "reply": "-ERR", "outcome": "ERR", "error": "modifier '$R'", "args": ["$R", "$R"]}
{"cmd": ["AUTH", "onlypw-s3cr3t"], "auth": "default", "reply": "-ERR", "outcome": "ERR"}
{"cmd": ["AUTH", "tmpuser", "wrongpw-s3cr3t"], "auth": "tmpuser", "reply": "-WRONGPASS", "outcome": "WRONGPASS"}
{"cmd": ["AUTH", "tmpuser", "authpw3-s3cr3t", "extra"], "auth": null, "reply": "-ERR syntax error", "outcome": "ERR"}
{"cmd": ["HELLO", "2", "AUTH", "tmpuser", "hellopw-s3cr3t"], "auth": "tmpuser", "reply": "-WRONGPASS", "outcome": "WRONGPASS"}
{"cmd": ["HELLO", "2", "AUTH", "tmpuser", "sekritpw-s3cr3t"], "auth": "tmpuser", "reply": "*", "outcome": "ok"}
{"cmd": ["HELLO", "2", "FOO", "AUTH", "tmpuser", "hellopw2-s3cr3t"], "reply": "-ERR Syntax error in HELLO option", "error": "option '$R'", "args": ["2", "$R", "$R", "$R", "$R"], "keys": []}
{"cmd": ["hello", "2", "auth", "nobody", "hellopw3-s3cr3t", "auth", "tmpuser", "hellopw4-s3cr3t"], "auth": "tmpuser", "reply": "-ERR", "outcome": "ERR"}
{"cmd": ["HELLO", "2", "SETNAME", "AUTH", "AUTH", "tmpuser", "sekritpw-s3cr3t"], "auth": "tmpuser", "reply": "*", "outcome": "ok"}
{"cmd": ["HELLO", "x", "AUTH", "tmpuser", "hellopw5-s3cr3t"], "reply": "-ERR Protocol version", "args": ["$R", "$R", "$R", "$R"]}
{"cmd": ["HELLO", "2", "hellopw6-s3cr3t"], "reply": "-ERR Syntax error in HELLO option", "error": "option '$R'", "args": ["2", "$R"]}
{"cmd": ["config", "set", "MasterAuth", "mapw-s3cr3t", "requirepass", "reqpw-s3cr3t"], "reply": "+OK", "args": ["MasterAuth", "$R", "requirepass", "$R"], "keys": []}
{"cmd": ["CONFIG", "SET", "maxmemory-policy", "noeviction", "MASTERAUTH", "mapw2-s3cr3t"], "reply": "+OK", "args": ["maxmemory-policy", "noeviction", "MASTERAUTH", "$R"]}
{"cmd": ["CONFIG", "SET", "masteruser", "mu-s3cr3t", "tls-key-file-pass", "tkpw-s3cr3t", "tls-client-key-file-pass", "tckpw-s3cr3t"], "args": ["masteruser", "$R", "tls-key-file-pass", "$R", "tls-client-key-file-pass", "$R"]}
{"cmd": ["CONFIG", "SET", "nosuch-param", "x", "RequirePass", "reqpw2-s3cr3t"], "reply": "-ERR", "args": ["nosuch-param", "x", "RequirePass", "$R"]}
{"cmd": ["CONFIG", "SET", "mymodule.secret", "modpw-s3cr3t"], "reply": "-ERR", "args": ["mymodule.secret", "$R"]}
{"cmd": ["CONFIG", "SET", "requirepass", "", "masterauth", "", "masteruser", "", "tls-key-file-pass", "", "tls-client-key-file-pass", ""], "reply": "+OK", "args": ["requirepass", "$R", "masterauth", "$R", "masteruser", "$R", "tls-key-file-pass", "$R", "tls-client-key-file-pass", "$R"]}
{"cmd": ["MIGRATE", "127.0.0.1", "$OP", "", "0", "1000", "AUTH", "migpw-s3cr3t", "KEYS", "nokey:1"], "reply": "+NOKEY", "args": ["127.0.0.1", "$OP", "", "0", "1000", "AUTH", "$R", "KEYS", "nokey:1"], "keys": ["nokey:1"]}
{"cmd": ["migrate", "127.0.0.1", "$OP", "", "0", "1000", "copy", "auth2", "miguser-s3cr3t", "migpw2-s3cr3t", "replace", "keys", "nokey:1"], "reply": "+NOKEY", "args": ["127.0.0.1", "$OP", "", "0", "1000", "copy", "auth2", "$R", "$R", "replace", "keys", "nokey:1"], "keys": ["nokey:1"]}
{"cmd": ["MIGRATE", "127.0.0.1", "$OP", "", "0", "1000", "AUTH", "KEYS", "KEYS", "nokey:1"], "reply": "+NOKEY", "args": ["127.0.0.1", "$OP", "", "0", "1000", "AUTH", "$R", "KEYS", "nokey:1"]}
{"cmd": ["MIGRATE", "127.0.0.1", "$OP", "", "0", "1000", "FOO", "AUTH", "migpw3-s3cr3t", "KEYS", "nokey:1"], "reply": "-ERR", "args": ["127.0.0.1", "$OP", "", "0", "1000", "$R", "$R", "$R", "$R", "$R"]}
{"cmd": ["NOSUCHCMD", "password", "unkpw-s3cr3t"], "reply": "-ERR unknown command", "outcome": "ERR", "error": "with args beginning with: '$R", "args": ["$R", "$R"], "keys": []}
{"cmd": ["CONFIG", "SETT", "requirepass", "cfgpw-s3cr3t"], "reply": "-ERR", "error": "'$R'", "args": ["$R", "$R", "$R"]}
{"cmd": ["GET", "app:1", "getpw-s3cr3t"], "reply": "-ERR", "args": ["$R", "$R"]}
{"cmd": ["EVAL", "return 'scriptbody-visible'", "0"], "reply": "\$scriptbody-visible", "args": ["return 'scriptbody-visible'", "0"], "keys": [], "values": ["scriptbody-visible"]}
{"cmd": ["SET", "sec:1", "value-visible"], "reply": "+OK", "args": ["sec:1", "value-visible"], "keys": ["sec:1"], "values": ["value-visible"]}
EOF
# secrets MODE WHAT: run secrets.py (see above).
secrets() {
    local out
    out=$(python3 "$T/secrets.py" "$1" "$PPORT" "$OP" "$T/secrets.jsonl" "$AUDIT" 2>&1) ||
        fail "$2: $(grep -v '^ok ' <<<"$out")"
    note "$2: $(grep -c '^ok ' <<<"$out") commands, redacted as Redis does and more"
    SECRETS_OUT=$out
    printf '%s\n' "$out" > "$T/secrets.$1.out"
}

secrets full "args = full"
S="e['sid']=='${SECRETS_OUT##*sid=}'"
# Spot checks, as the issue names them.
assert_eq '["MasterAuth", "(redacted)", "requirepass", "(redacted)"]' \
    "$(aq "$S and e.get('subcommand')=='set' and e['args'][0]=='MasterAuth'" 'e["args"]')" \
    "CONFIG SET MasterAuth ... requirepass ..., mixed case, both pairs"
assert_eq '["maxmemory-policy", "noeviction", "MASTERAUTH", "(redacted)"]' \
    "$(aq "$S and e.get('subcommand')=='set' and e['args'][0]=='maxmemory-policy'" 'e["args"]')" \
    "CONFIG SET: the secret in the second pair"
assert_eq 'hello tmpuser ok' \
    "$(aq "$S and e['event']=='session.auth' and e['command']=='hello' and e['outcome']=='ok'" '" ".join((e["command"], e["auth_user"], e["outcome"]))' | head -n 1)" \
    "HELLO 2 AUTH: a session.auth event"
for s in "${SECRETS[@]}"; do
    grep -qF -- "$s" "$AUDIT" && fail "args = full: the secret $s is in the audit log"
done
grep -q 's3cr' "$AUDIT" && fail "args = full: part of a secret is in the audit log: $(grep 's3cr' "$AUDIT" | head -n 3)"
assert_eq "$(grep -oF '"(redacted)"' "$T/secrets.jsonl" | wc -l)" \
    "$(grep -F "${SECRETS_OUT##*sid=}" "$AUDIT" | grep -oF '"(redacted)"' | wc -l)" \
    "args = full: the \"(redacted)\" markers"
assert_eq 1 "$(grep -F "${SECRETS_OUT##*sid=}" "$AUDIT" | grep -cF '"args":["return '\''scriptbody-visible'\''","0"]')" \
    "args = full: a script's body is logged"

# --- concurrent load over 2 workers ---------------------------------------------
N=300
CLIENTS=16
pids=()
for ((c = 0; c < CLIENTS; c++)); do
    if ((c % 2)); then
        # Pipelined: redis-cli --pipe sends everything at once.
        for ((i = 0; i < N; i++)); do
            k=load:$c:$i
            # shellcheck disable=SC2016 # RESP's $, not a variable
            printf '*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\nv\r\n' "${#k}" "$k"
        done > "$T/load.$c"
        timeout 60 redis-cli -h 127.0.0.1 -p "$PPORT" --pipe < "$T/load.$c" > "$T/load.$c.out" 2>&1 &
    else
        for ((i = 0; i < N; i++)); do echo "SET load:$c:$i v"; done > "$T/load.$c"
        timeout 60 redis-cli -h 127.0.0.1 -p "$PPORT" < "$T/load.$c" > "$T/load.$c.out" 2>&1 &
    fi
    pids+=("$!")
done
for p in "${pids[@]}"; do wait "$p" || fail "a load client failed: $(cat "$T"/load.*.out | tail -n 5)"; done
L="$Q and e['command']=='set' and e['args'][0].startswith('load:')"
loaded() { [ "$(aq_count "$L")" -ge $((N * CLIENTS)) ]; }
wait_for 10 loaded || fail "load: $(aq_count "$L") of $((N * CLIENTS)) SETs audited"
assert_eq $((N * CLIENTS)) "$(aq_count "$L")" "load: every SET audited once"
assert_eq $((N * CLIENTS)) "$(aq "$L" 'e["args"][0]' | sort -u | wc -l)" "load: every key once"
nworkers=$(aq "$L" 'e["worker"]' | sort -u | wc -l)
[ "$nworkers" -ge 2 ] || fail "load: all sessions landed on one worker ($nworkers)"
audit_check --complete "$AUDIT"

# --- USR1 rotation ---------------------------------------------------------------
sess_open R "$PPORT" || fail "connect"
sess_expect "$R" +OK SET rot:1 v
before=$(log_count 'audit: reopened')
mv "$AUDIT" "$AUDIT.1"
kill -USR1 "$RD_PID"
reopened() { [ "$(log_count 'audit: reopened')" -ge $((before + RD_WORKERS)) ]; }
wait_for 10 reopened || fail "the workers did not reopen the audit log on USR1"
[ -f "$AUDIT" ] || fail "no new audit log after USR1"
sess_expect "$R" +OK SET rot:2 v
for i in 3 4 5 6; do
    assert_eq OK "$(rcli -p "$PPORT" SET "rot:$i" v 2>&1)" "SET rot:$i"
done
sess_close "$R"
RQ="$Q and e['command']=='set' and e['args'][0].startswith('rot:')"
rotated() { [ "$(aq_count "$RQ" "$AUDIT")" -ge 5 ]; }
wait_for 10 rotated || fail "rotation: events after USR1 missing from the new file"
assert_eq "rot:1" "$(aq "$RQ" 'e["args"][0]' "$AUDIT.1")" "rotation: the old file has the event before USR1"
assert_eq $'rot:2\nrot:3\nrot:4\nrot:5\nrot:6' "$(aq "$RQ" 'e["args"][0]' "$AUDIT" | sort)" \
    "rotation: the new file has the events after USR1"
audit_check --complete "$AUDIT.1" "$AUDIT"

# --- disk trouble: on_failure = block ----------------------------------------------
# RLIMIT_FSIZE on the workers, just above the audit log's size: the next
# write is cut short, then refused (EFBIG). The error log is smaller than
# the limit, so it still works.
limit_workers() {
    local w
    for w in $(rd_workers); do
        prlimit --pid "$w" --fsize="$1": || fail "prlimit --pid $w --fsize=$1:"
    done
}
# Grow the (new) audit log past the error log's size first.
for ((i = 0; i < 600; i++)); do echo "SET fill:$i v"; done |
    rcli -p "$PPORT" > /dev/null || fail "filling the audit log"
filled() { [ "$(stat -c %s "$AUDIT")" -gt $(( $(stat -c %s "$T/error.log") + 4096 )) ]; }
wait_for 10 filled || fail "the error log is bigger than the audit log"
size=$(stat -c %s "$AUDIT")
[ "$size" -gt "$(stat -c %s "$T/error.log")" ] || fail "the error log is bigger than the audit log"
limit_workers $((size + 100))
sess_open B "$PPORT" || fail "connect"
sess_expect "$B" +OK SET blk:1 v
refused() { sess_cmd "$B" SET blk:x v && [ "$REPLY" = "-ERR redoubt: audit unavailable" ]; }
wait_for 10 refused || fail "block: commands are not refused while the audit log cannot be written (last reply: $REPLY)"
sess_expect "$B" "-ERR redoubt: audit unavailable" GET app:1
wait_for 5 log_has 'audit: cannot write ".*audit.log": .*refusing commands .*on_failure = block' ||
    fail "block: the error is not in the error log"
assert_eq "$size" "$(stat -c %s "$AUDIT")" "block: the cut line was taken back"
audit_check "$AUDIT"
limit_workers unlimited
works() { sess_cmd "$B" SET blk:ok v && [ "$REPLY" = +OK ]; }
wait_for 10 works || fail "block: commands still refused after the limit was raised (last reply: $REPLY)"
wait_for 5 log_has 'audit: writing ".*audit.log" works again' || fail "block: no recovery in the error log"
sess_close "$B"
wait_event "$Q and e['command']=='set' and e['args'][0]=='blk:ok'"
wait_event "e['event']=='session.end' and e['commands']>=4 and e['db']=='plain' and e['errors']>=2"
assert_eq "1" "$(aq_count "$Q and e['command']=='set' and e['args'][0]=='blk:1' and e['outcome']=='ok'")" \
    "block: the event written before the failure was kept and written"
n=$(aq_count "$Q and e['outcome']=='ERR' and e['error']=='ERR redoubt: audit unavailable' and e['node'] is None")
[ "$n" -ge 2 ] || fail "block: the refused commands are not audited ($n)"
audit_check --complete "$AUDIT.1" "$AUDIT"

# --- disk trouble: on_failure = continue, args = names (after a reload) --------------
new_workers() {
    local w
    [ "$(rd_count_workers)" -eq "$RD_WORKERS" ] || return 1
    for w in $(rd_workers); do [[ " $old " == *" $w "* ]] && return 1; done
    return 0
}
# reload ON_FAILURE ARGS: rewrite the configuration, HUP, new workers.
reload() {
    old=$(rd_workers | tr '\n' ' ')
    write_conf "$1" "$2"
    kill -HUP "$RD_PID"
    wait_for 20 new_workers || fail "the reload did not replace the workers ($old -> $(rd_workers | tr '\n' ' '))"
}
reload continue names
size=$(stat -c %s "$AUDIT")
limit_workers $((size + 100))
sess_open C "$PPORT" || fail "connect"
sess_expect "$C" +OK SET cont:1 v
wait_for 10 log_has 'audit: cannot write ".*audit.log": .*events dropped \(audit.on_failure = continue\)' ||
    fail "continue: the dropped events are not in the error log"
sess_expect "$C" +OK SET cont:2 v
sleep 0.3
sess_expect "$C" +OK SET cont:3 v
limit_workers unlimited
sess_expect "$C" +OK SET cont:last v
sess_close "$C"
wait_for 5 log_has 'audit: writing ".*audit.log" works again \([1-9][0-9]* events dropped' ||
    fail "continue: no recovery in the error log"
wait_event "$Q and e['command']=='set' and e['keys']==['cont:last']"
assert_eq 0 "$(aq_count "$Q and e['command']=='set' and e['keys'][0]=='cont:1'")" "continue: the event written while failing was dropped"
assert_eq 0 "$(aq_count "$Q and 'keys' in e and 'args' in e")" "args = names: no arguments"
audit_check "$AUDIT.1" "$AUDIT"
# The dropped lines left a gap in the worker's numbers (its lines are
# numbered from 1, and fewer than that are in the file).
W=$(aq "$Q and e['command']=='set' and e['keys']==['cont:last']" 'e["worker"]')
seqs=$(aq "e['worker']==$W" 'e["seq"]')
last=$(tail -n 1 <<<"$seqs")
nlines=$(wc -l <<<"$seqs")
[ "$last" -gt "$nlines" ] || fail "seq: no gap where lines were dropped (worker $W: $nlines lines, the last seq $last)"
note "seq: worker $W wrote $nlines lines up to seq $last: $((last - nlines)) lost"

# --- the default: args = names ------------------------------------------------------
reload block default
secrets names "args = names (the default)"
S="e['sid']=='${SECRETS_OUT##*sid=}'"
assert_eq '["sec:1"]' "$(aq "$S and $Q and e['command']=='set'" 'e["keys"]')" "args = names: the key of SET"
assert_eq 0 "$(aq_count "$S and 'args' in e")" "args = names: no arguments"
assert_prefix "ERR Error in ACL SETUSER modifier '(redacted)'" \
    "$(aq "$S and e.get('subcommand')=='setuser' and e['outcome']=='ERR'" 'e["error"]')" \
    "args = names: a secret quoted in an error is redacted"
for s in "${SECRETS[@]}" value-visible scriptbody-visible s3cr; do
    grep -F -- "${SECRETS_OUT##*sid=}" "$AUDIT" | grep -qF -- "$s" &&
        fail "args = names: $s is in the audit log"
done

# --- events buffered at worker exit (args = none) -----------------------------------
reload block none
sess_open X "$PPORT" || fail "connect"
sess_expect "$X" +OK SET exit:1 v
sess_cmd "$X" HGETALL exit:1
assert_prefix "-WRONGTYPE" "$REPLY" "HGETALL on a string"
rd_stop TERM
assert_eq 0 "$RD_LAST_RC" "redoubt's exit status"
N="$Q and 'args' not in e and 'keys' not in e"
sid=$(aq "$N and e['command']=='set'" 'e["sid"]')
[ -n "$sid" ] || fail "the event buffered at exit was not written"
assert_eq "WRONGTYPE False" "$(aq "$N and e['command']=='hgetall'" '"%s %s" % (e["outcome"], "error" in e)')" \
    "args = none: the error class without its message"
assert_eq "worker stopping" "$(aq "e['sid']=='$sid' and e['event']=='session.end'" 'e["reason"]')" \
    "the session closed at exit has its session.end"
sess_close "$X"

audit_check "$AUDIT.1" "$AUDIT"
for s in "${SECRETS[@]}"; do
    grep -qF -- "$s" "$AUDIT" "$AUDIT.1" && fail "the secret $s is in the audit log"
done
note "three audit lines:"
grep -E '"event":"session.start".*"user":"alice"' "$AUDIT.1" | head -n 1 >&2
grep -F '"args":["app:1"]' "$AUDIT.1" | head -n 1 >&2
grep -F '"command":"flushall"' "$AUDIT.1" >&2
pass
