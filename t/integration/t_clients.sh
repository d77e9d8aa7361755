#!/bin/bash
# t_clients: stock client libraries, with their default options, through
# redoubt in front of the real 6-node TLS Redis Cluster (clients on a
# plaintext listener, AUTH alice), and a standalone database; and the
# reply limits. Redis is the oracle: values are read back straight from
# the nodes, replies compared byte for byte with a direct connection's.
#   1  deep replies: EVAL returning a Lua table nested 100, 1000 and 8000
#      deep (Redis answers the last with 7995 levels and an error inside)
#      through redoubt, cluster and standalone, byte for byte what the
#      node answers directly; limits.max_nesting_depth (here 4) does not
#      bound replies
#   2  redis-py (Debian's python3-redis): client_name= (connect, CLIENT
#      GETNAME), the default transactional pipeline() (MULTI/EXEC: the
#      values on the node; a transaction with a key in another slot
#      applies nothing), scan_iter over keys of all three masters (each
#      key exactly once); the same client against the standalone database
#   3  ioredis (npm): new Redis(port) becomes ready (its ready check sends
#      INFO), connectionName, a pipeline across masters, multi().exec(),
#      GET/SET on every master
#   4  node-redis (npm "redis", a major that speaks RESP2 by default):
#      createClient connects (it may send HELLO and CLIENT SETINFO), name,
#      multi().exec(), scanIterator over all three masters
#   5  prometheus-redis-exporter (Debian): one scrape through redoubt,
#      redis_up 1, no scrape error, a keyspace metric
# A client that is not installed skips its step with a note, unless
# RD_CLIENTS_REQUIRED=1 (contrib/quickstart.sh test installs them all and
# sets it): then a missing client fails the test (the exporter not when
# RD_CLIENTS_NO_EXPORTER=1: the distribution has none). The npm modules
# are found in $RD_NODE_MODULES (default build/npm/node_modules of the
# source tree, where quickstart.sh installs them), or wherever node finds
# them.
# Each step runs in a subshell: a failed one is reported and the next one
# runs; the test fails at the end if any failed. RD_CLIENTS_STEPS="1 3"
# runs only those steps.
# shellcheck disable=SC2016,SC2119,SC2317 # Lua and JS literals; optional args; steps called indirectly
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
rd_init
need_tls
need python3 redis-cli

T_START=$(now_ms)
REQUIRED=${RD_CLIENTS_REQUIRED:-0}
NODE_MODULES=${RD_NODE_MODULES:-$RD_SRCDIR/build/npm/node_modules}

cluster_start
PW=$CLUSTER_ALICE_PW
note "cluster up in $(( $(now_ms) - T_START )) ms: nodes ${CLUSTER_PORTS[*]}"

# One hash tag per master: {b}, {c} and {a} are in slots 3300, 7365 and
# 15495, one in each third of the slots as the cluster was created.
declare -A TAG_OWNER=()
for tag in a b c; do
    TAG_OWNER[$tag]=$(cluster_slot_owner "$(key_slot "{$tag}")")
done
[ "$(printf '%s\n' "${TAG_OWNER[@]}" | sort -u | wc -l)" -eq 3 ] ||
    fail "the tags {a} {b} {c} are not on three masters: ${TAG_OWNER[*]} (test setup)"

# A standalone database, plaintext (alice exists there too).
redis_start s
assert_eq OK "$(dcli s ACL SETUSER alice on ">$PW" '~*' '&*' +@all 2>&1)" "ACL SETUSER alice on the standalone redis"

S_PORT=$(free_port) || fail "no free port"
N1=${CLUSTER_PORTS[0]}
N2=${CLUSTER_PORTS[1]}
CONF=$T/redoubt.conf
cat > "$CONF" <<EOF
# redoubt test configuration for $RD_TEST
worker_processes = $RD_WORKERS;
pid_file = "$T/redoubt.pid";
worker_shutdown_timeout = "10s";
error_log = { path = "$T/error.log"; level = "${RD_LOG_LEVEL:-debug}"; };
# Not a bound on replies (step 1); kept so that old configurations load.
limits = { max_nesting_depth = 4; };
upstream_tls = { ca_cert = "$CLUSTER_CA/db-client-ca.crt"; ca_key = "$CLUSTER_CA/db-client-ca.key";
                 server_ca = "$CLUSTER_CA/db-ca.crt"; };
listen = (
  { address = "127.0.0.1:$RD_PORT"; database = "c"; tls = false; },
  { address = "127.0.0.1:$S_PORT"; database = "s"; tls = false; }
);
databases = (
  { name = "c"; uri = "rediss://127.0.0.1:$N1?mode=cluster"; connect_timeout = "2s";
    cluster = { seeds = [ "127.0.0.1:$N2" ]; }; },
  { name = "s"; uri = "redis://127.0.0.1:${RD_REDIS_PORT[s]}"; connect_timeout = "2s"; }
);
EOF
out=$("$REDOUBT" -t -c "$CONF" 2>&1) || fail "redoubt -t: $out"
rd_start "$CONF"
note "redoubt master $RD_PID on $RD_PORT (cluster) and $S_PORT (standalone)"

# via PORT ARGS...: redis-cli through redoubt, as alice.
via() {
    local port=$1
    shift
    REDISCLI_AUTH=$PW timeout 20 redis-cli --user alice --no-auth-warning -h 127.0.0.1 -p "$port" "$@"
}

# missing WHAT [OPTIONAL]: a client is not installed: fail when it should
# be, else skip the step. OPTIONAL=1: the distribution does not have it.
missing() {
    if [ "$REQUIRED" = 1 ] && [ "${2:-0}" != 1 ]; then
        fail "$1 is not installed, but RD_CLIENTS_REQUIRED=1 (contrib/quickstart.sh test installs it)"
    fi
    note "step $STEP skipped: $1 is not installed (contrib/quickstart.sh test installs it)"
    exit 0
}

# raw.py: sends commands as RESP arrays and prints each reply's exact
# bytes (after AUTH alice), framed with one count of the elements still
# expected; over TLS with a client certificate when given one.
cat > "$T/raw.py" <<'PY'
import socket, ssl, sys

host, port, tls, user, pw, out = sys.argv[1:7]
cmds = [c.split("\x1f") for c in sys.argv[7:]]
s = socket.create_connection((host, int(port)), timeout=20)
if tls != "-":
    cert, key, ca = tls.split(",")
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    ctx.load_cert_chain(cert, key)
    s = ctx.wrap_socket(s)
f = s.makefile("rb")

def send(args):
    b = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode()
        b += b"$%d\r\n%s\r\n" % (len(a), a)
    s.sendall(b)

def reply():
    buf, expect = bytearray(), 1
    while expect:
        line = f.readline()
        if not line.endswith(b"\r\n"):
            raise SystemExit("connection closed inside a reply: %r" % bytes(buf[-60:] + line))
        buf += line
        expect -= 1
        n = int(line[1:-2]) if line[:1] in (b"$", b"*") else 0
        if line[:1] == b"$" and n >= 0:
            buf += f.read(n + 2)
        elif line[:1] == b"*" and n > 0:
            expect += n
    return bytes(buf)

send(["AUTH", user, pw])
a = reply()
if a != b"+OK\r\n":
    raise SystemExit("AUTH: %r" % a)
with open(out, "wb") as o:
    for c in cmds:
        send(c)
        o.write(reply())
PY

# pick_py: the first python3 on PATH, or Debian's, that has redis-py.
pick_py() {
    local py
    for py in python3 /usr/bin/python3; do
        if command -v "$py" >/dev/null && "$py" -c 'import redis' 2>/dev/null; then
            echo "$py"
            return 0
        fi
    done
    return 1
}

# node_has MODULE: node can load MODULE (from NODE_MODULES or its path).
node_has() {
    command -v node >/dev/null &&
        NODE_PATH=$NODE_MODULES${NODE_PATH:+:$NODE_PATH} node -e "require('$1')" >/dev/null 2>&1
}

# js FILE ARGS...: run a node script with the modules found; each script
# prints its checks' results and exits non-zero on the first failure.
js() {
    NODE_PATH=$NODE_MODULES${NODE_PATH:+:$NODE_PATH} RD_PW=$PW timeout 60 node "$@" 2>&1
}

# node_get KEY: GET straight from the cluster (-c follows MOVED).
node_get() { ccli "${CLUSTER_PORTS[0]}" -c GET "$1" 2>&1 | grep -v '^-> Redirected'; }

LUA_DEEP='local t = 1; for i = 1, tonumber(ARGV[1]) do t = {t} end; return t'

# --- 1: deep replies -----------------------------------------------------
step1() {
    local tls="$CLUSTER_CLIENT.crt,$CLUSTER_CLIENT.key,$CLUSTER_CA/db-ca.crt"
    local n key='deep{a}' owner=${TAG_OWNER[a]} levels
    for n in 100 1000 8000; do
        local cmd="EVAL"$'\x1f'"$LUA_DEEP"$'\x1f'"1"$'\x1f'"$key"$'\x1f'"$n"
        python3 "$T/raw.py" 127.0.0.1 "$owner" "$tls" alice "$PW" "$T/deep-direct-$n" "$cmd" ||
            fail "EVAL nested $n straight to the node"
        python3 "$T/raw.py" 127.0.0.1 "$RD_PORT" - alice "$PW" "$T/deep-cluster-$n" "$cmd" ||
            fail "EVAL nested $n through redoubt (cluster): the connection broke"
        python3 "$T/raw.py" 127.0.0.1 "${RD_REDIS_PORT[s]}" - alice "$PW" "$T/deep-sdirect-$n" "$cmd" ||
            fail "EVAL nested $n straight to the standalone redis"
        python3 "$T/raw.py" 127.0.0.1 "$S_PORT" - alice "$PW" "$T/deep-standalone-$n" "$cmd" ||
            fail "EVAL nested $n through redoubt (standalone): the connection broke"
        levels=$(grep -c '^\*1' "$T/deep-direct-$n")
        case $n in
            8000) if [ "$levels" -lt 1000 ] || ! grep -q 'reached lua stack limit' "$T/deep-direct-$n"; then
                      fail "the node's answer to a table nested $n deep: $levels levels (test setup)"
                  fi ;;
            *) assert_eq "$n" "$levels" "levels in the node's answer to a table nested $n deep (test setup)" ;;
        esac
        cmp -s "$T/deep-direct-$n" "$T/deep-cluster-$n" ||
            fail "EVAL nested $n: redoubt (cluster) answered $(head -c 200 "$T/deep-cluster-$n" | od -c | tail -n 3), not the node's $levels levels"
        cmp -s "$T/deep-sdirect-$n" "$T/deep-standalone-$n" ||
            fail "EVAL nested $n: redoubt (standalone) answered $(head -c 200 "$T/deep-standalone-$n" | od -c | tail -n 3)"
        cmp -s "$T/deep-direct-$n" "$T/deep-sdirect-$n" ||
            fail "EVAL nested $n: the cluster node and the standalone redis differ (test setup)"
    done
    note "deepest reply passed through: $(grep -c '^\*1' "$T/deep-direct-8000") levels"
    # The sessions are fine afterwards.
    assert_eq PONG "$(via "$RD_PORT" PING 2>&1)" "PING through redoubt after the deep replies"
    if grep -q 'nesting too deep' "$T/error.log"; then
        fail "redoubt logged a nesting error: $(grep 'nesting too deep' "$T/error.log" | head -n 1)"
    fi
}

# --- 2: redis-py ---------------------------------------------------------
step2() {
    local py out
    py=$(pick_py) || missing "python3-redis (redis-py)"
    note "redis-py $("$py" -c 'import redis; print(redis.__version__)') ($py)"
    # Keys for scan_iter on every master (written straight to the nodes).
    local tag i
    for tag in a b c; do
        for ((i = 0; i < 40; i++)); do echo "SET {$tag}pyscan:$i v"; done
    done | ccli "${CLUSTER_PORTS[0]}" -c > /dev/null 2>&1
    for tag in a b c; do
        assert_eq 40 "$(ccli "${TAG_OWNER[$tag]}" EVAL "return #redis.call('KEYS', ARGV[1])" 0 "{$tag}pyscan:*")" \
            "the keys {$tag}pyscan:* on their master (test setup)"
    done
    assert_eq OK "$(ccli "${TAG_OWNER[b]}" SET '{b}py:keep' old 2>&1)" "SET {b}py:keep on its node"
    out=$("$py" - 127.0.0.1 "$RD_PORT" "$PW" <<'PY' 2>&1
import sys
import redis
host, port, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def check(what, f):
    # One line per check; a failed one says why and the next one runs.
    try:
        print(what, f())
    except Exception as e:
        print(what, "error", type(e).__name__, str(e).splitlines()[0] if str(e) else "")

def transaction():
    p = r.pipeline()             # transaction=True: MULTI ... EXEC
    p.set("{b}py:x", "1").incr("{b}py:n").set("{b}py:y", "2").get("{b}py:x")
    return p.execute()

def crossslot():
    # A key in another slot: the whole transaction is off.
    p = r.pipeline()
    p.set("{b}py:keep", "new").set("{c}py:other", "x")
    try:
        return p.execute()
    except redis.exceptions.ResponseError as e:
        # EXEC's EXECABORT, or (redis-py raises the first queued error)
        # the queued command's CROSSSLOT.
        return "refused" if "EXECABORT" in str(e) or "CROSSSLOT" in str(e) else e

def scan():
    keys = list(r.scan_iter(match="*pyscan:*", count=25))
    return "%d %d %s" % (len(keys), len(set(keys)), sorted(keys) == sorted(
        "{%s}pyscan:%d" % (t, i) for t in "abc" for i in range(40)))

r = redis.Redis(host=host, port=port, username="alice", password=pw,
                client_name="t-clients-py", decode_responses=True)
check("ping", r.ping)
check("name", r.client_getname)
check("pipeline", transaction)
check("crossslot", crossslot)
check("scan", scan)
PY
)
    local want="ping True
name t-clients-py
pipeline [True, 1, True, '1']
crossslot refused
scan 120 120 True"
    # Whatever redoubt answered, a refused transaction must not have run.
    assert_eq old "$(node_get '{b}py:keep')" "redis-py: the aborted transaction changed nothing"
    assert_eq "" "$(node_get '{c}py:other')" "redis-py: the aborted transaction changed nothing ({c})"
    assert_eq "$want" "$out" "redis-py through the cluster"
    assert_eq 1 "$(node_get '{b}py:x')" "redis-py pipeline: {b}py:x on the node"
    assert_eq 1 "$(node_get '{b}py:n')" "redis-py pipeline: {b}py:n on the node"
    assert_eq 2 "$(node_get '{b}py:y')" "redis-py pipeline: {b}py:y on the node"

    # The standalone database passes everything through.
    out=$("$py" - 127.0.0.1 "$S_PORT" "$PW" <<'PY' 2>&1
import sys
import redis
r = redis.Redis(host=sys.argv[1], port=int(sys.argv[2]), username="alice",
                password=sys.argv[3], client_name="t-py-s", decode_responses=True)
p = r.pipeline()
p.set("x", "1").incr("n")
print(r.client_getname(), p.execute(), sorted(r.scan_iter()))
PY
)
    assert_eq "t-py-s [True, 1] ['n', 'x']" "$out" "redis-py through the standalone database"
}

# --- 3: ioredis ----------------------------------------------------------
step3() {
    node_has ioredis || missing "ioredis (npm)"
    cat > "$T/ioredis.js" <<'JS'
const Redis = require('ioredis');
const [port, ka, kb, kc] = process.argv.slice(2);
const auth = { username: 'alice', password: process.env.RD_PW };
// One line per check; a failed one says why and the next one runs.
const check = async (what, f) => {
    try { console.log(what, await f()); } catch (e) { console.log(what, 'error', e.message); }
};
const ready = (r, what) => new Promise((res, rej) => {
    let last = 'no error';
    const t = setTimeout(() => rej(new Error(what + ': not ready after 10 s (' + last + ')')), 10000);
    r.on('error', (e) => { last = e.message; });
    r.once('ready', () => { clearTimeout(t); res(r.status); });
});
(async () => {
    console.log('version', require('ioredis/package.json').version.split('.')[0]);
    // The default options, as the README's first example (the ready
    // check sends INFO and waits for loading:0).
    const r = new Redis(+port, '127.0.0.1', auth);
    await check('ready', () => ready(r, 'new Redis(port)'));
    const n = new Redis({ port: +port, host: '127.0.0.1', ...auth, connectionName: 't-io' });
    await check('name', async () => { await ready(n, 'connectionName'); return n.client('GETNAME'); });
    await check('pipeline', async () => JSON.stringify(await r.pipeline()
        .set(ka, 'A').set(kb, 'B').set(kc, 'C').get(ka).get(kb).get(kc).exec()));
    await check('multi', async () => JSON.stringify(await r.multi()
        .set('{b}io:m1', 'x').incr('{b}io:n').get('{b}io:m1').exec()));
    await check('get', async () => {
        await r.set(ka, 'A2'); await r.set(kb, 'B2'); await r.set(kc, 'C2');
        return [await r.get(ka), await r.get(kb), await r.get(kc)].join(' ');
    });
    r.disconnect(); n.disconnect();
})().catch((e) => { console.log('error', e.message); process.exit(1); });
JS
    local out want
    out=$(js "$T/ioredis.js" "$RD_PORT" '{a}io:k' '{b}io:k' '{c}io:k')
    note "ioredis ${out%%$'\n'*}"
    want='ready ready
name t-io
pipeline [[null,"OK"],[null,"OK"],[null,"OK"],[null,"A"],[null,"B"],[null,"C"]]
multi [[null,"OK"],[null,1],[null,"x"]]
get A2 B2 C2'
    assert_eq "$want" "$(printf '%s\n' "$out" | sed 1d)" "ioredis through the cluster"
    assert_eq "A2 B2 C2" "$(node_get '{a}io:k') $(node_get '{b}io:k') $(node_get '{c}io:k')" "ioredis: the values on the nodes"
    assert_eq "x 1" "$(node_get '{b}io:m1') $(node_get '{b}io:n')" "ioredis multi: the values on the node"
}

# --- 4: node-redis -------------------------------------------------------
step4() {
    node_has redis || missing "node-redis (npm redis)"
    local tag i
    for tag in a b c; do
        for ((i = 0; i < 30; i++)); do echo "SET {$tag}nrscan:$i v"; done
    done | ccli "${CLUSTER_PORTS[0]}" -c > /dev/null 2>&1
    cat > "$T/node-redis.js" <<'JS'
const { createClient } = require('redis');
const port = +process.argv[2];
let last = 'no error';
const within = (p, what) => Promise.race([p, new Promise((_, rej) =>
    setTimeout(() => rej(new Error(what + ': no answer in 10 s (' + last + ')')), 10000).unref())]);
// One line per check; a failed one says why and the next one runs.
const check = async (what, f) => {
    try { console.log(what, await within(f(), what)); } catch (e) { console.log(what, 'error', e.message); }
};
(async () => {
    console.log('version', require('redis/package.json').version.split('.')[0]);
    const opts = { socket: { host: '127.0.0.1', port, reconnectStrategy: false },
                   username: 'alice', password: process.env.RD_PW };
    // The default options (RESP2 in this major; HELLO and CLIENT SETINFO
    // on connect as the library decides).
    const c = createClient(opts);
    c.on('error', (e) => { last = e.message; });
    await check('ping', async () => { await c.connect(); return c.ping(); });
    const n = createClient({ ...opts, name: 't-nr' });
    n.on('error', (e) => { last = e.message; });
    await check('name', async () => { await n.connect(); return n.clientGetName(); });
    await check('multi', async () => JSON.stringify(await c.multi()
        .set('{c}nr:m1', 'x').incr('{c}nr:n').get('{c}nr:m1').exec()));
    await check('scan', async () => {
        const keys = [];
        for await (const k of c.scanIterator({ MATCH: '*nrscan:*', COUNT: 20 })) {
            keys.push(...(Array.isArray(k) ? k : [k]));   // v5: batches, v4: keys
        }
        const want = [];
        for (const t of 'abc') for (let i = 0; i < 30; i++) want.push('{' + t + '}nrscan:' + i);
        return [keys.length, new Set(keys).size,
                JSON.stringify(keys.sort()) === JSON.stringify(want.sort())].join(' ');
    });
    for (const x of [c, n]) if (x.isOpen) await (x.close ? x.close() : x.quit());
})().catch((e) => { console.log('error', e.message); process.exit(1); });
JS
    local out want
    out=$(js "$T/node-redis.js" "$RD_PORT")
    note "node-redis ${out%%$'\n'*}"
    want='ping PONG
name t-nr
multi ["OK",1,"x"]
scan 90 90 true'
    assert_eq "$want" "$(printf '%s\n' "$out" | sed 1d)" "node-redis through the cluster"
    assert_eq "x 1" "$(node_get '{c}nr:m1') $(node_get '{c}nr:n')" "node-redis multi: the values on the node"
}

# --- 5: prometheus-redis-exporter ----------------------------------------
step5() {
    command -v prometheus-redis-exporter >/dev/null ||
        missing "prometheus-redis-exporter (Debian)" "${RD_CLIENTS_NO_EXPORTER:-0}"
    local eport pid out m
    eport=$(free_port) || fail "no free port"
    prometheus-redis-exporter -redis.addr "redis://127.0.0.1:$RD_PORT" -redis.user alice \
        -redis.password "$PW" -web.listen-address "127.0.0.1:$eport" > "$T/exporter.log" 2>&1 &
    pid=$!
    # shellcheck disable=SC2064 # this pid, now
    trap "stop_pid $pid" EXIT
    wait_for 10 rd_port_open "$eport" || fail "the exporter does not listen: $(tail -n 3 "$T/exporter.log")"
    out=$(python3 - "$eport" <<'PY' 2>&1
import sys, urllib.request
print(urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=30).read().decode())
PY
)
    printf '%s\n' "$out" > "$T/metrics.txt"
    m=$(grep -E '^redis_up |^redis_exporter_last_scrape_error' "$T/metrics.txt")
    assert_eq 'redis_exporter_last_scrape_error{err=""} 0
redis_up 1' "$m" "the exporter's scrape through redoubt (see $T/exporter.log)"
    grep -qE '^redis_db_keys\{db="db0"\} [1-9]' "$T/metrics.txt" ||
        fail "no keyspace metric (redis_db_keys db0) in the scrape: $(grep '^redis_db_keys' "$T/metrics.txt" | head -n 3)"
    if grep -q 'level=error' "$T/exporter.log"; then
        fail "the exporter logged errors: $(grep 'level=error' "$T/exporter.log" | head -n 3)"
    fi
}

# --- run -----------------------------------------------------------------
FAILED=()
for STEP in ${RD_CLIENTS_STEPS:-1 2 3 4 5}; do
    t0=$(now_ms)
    if ( "step$STEP" ); then
        note "step $STEP done in $(( $(now_ms) - t0 )) ms"
    else
        FAILED+=("$STEP")
        note "step $STEP FAILED"
    fi
done
note "total $(( $(now_ms) - T_START )) ms"
[ "${#FAILED[@]}" -eq 0 ] || fail "steps failed: ${FAILED[*]}"
pass
