#!/bin/bash
# t_dbconfig: what a user needs to reach a database through redoubt with
# strict TLS clients (issue 16). "cert server --databases-from" and a
# wildcard name the databases' server names in redoubt's certificate;
# "db connect" runs redis-cli with the right flags (a fake redis-cli that
# prints its arguments, then the real one through a running redoubt in
# front of two TLS-only redis-servers); "db config" prints settings that
# python3's ssl module (check_hostname on), node's tls.connect (default
# hostname checks) and redis-py (when installed, ssl_check_hostname) use
# to PING through redoubt, with SNI routing to the right database; "db ls"
# against the running gateway prints what "db ls -c CONFIG" prints, for
# several identities (before AUTH, a role with command rules, a route),
# is answered by redoubt without reaching Redis, and is audited.
# shellcheck disable=SC2317,SC2016 # helpers called indirectly; RESP in single quotes
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
rd_init
need_tls
need python3
# node (Debian's nodejs, in contrib/quickstart.sh's packages) for the
# node checks; without it they are left out and said so.
HAVE_NODE=
command -v node >/dev/null 2>&1 && HAVE_NODE=1

CA=$T/ca
ctl ca init "$CA"
CACERT=$CA/db-ca.crt
ctl cert server --ca-dir "$CA" --host localhost,127.0.0.1 --out "$T/redis"
ctl cert server --ca-dir "$CA" --ca db-client --host localhost --out "$T/direct"
redis_start_tls a "$T/redis.crt" "$T/redis.key" "$CA/db-client-ca.crt"
redis_start_tls b "$T/redis.crt" "$T/redis.key" "$CA/db-client-ca.crt"
dt() { local n=$1; shift; tls_cli "${RD_REDIS_PORT[$n]}" "$T/direct" "$CACERT" "$@"; }
assert_eq OK "$(dt a SET whoami a 2>&1)" "SET straight to redis a"
assert_eq OK "$(dt b SET whoami b 2>&1)" "SET straight to redis b"

PORT2=$(free_port) || fail "no free port"
PORT3=$(free_port) || fail "no free port"
CONF=$T/redoubt.conf
cat > "$CONF" <<EOF
worker_processes = $RD_WORKERS;
pid_file = "$T/redoubt.pid";
worker_shutdown_timeout = "10s";
error_log = { path = "$T/error.log"; level = "debug"; };
tls = { certificate = "$T/redoubt.crt"; certificate_key = "$T/redoubt.key";
        client_ca = "$CA/user-ca.crt"; };
upstream_tls = { ca_cert = "$CA/db-client-ca.crt"; ca_key = "$CA/db-client-ca.key";
                 server_ca = "$CA/db-ca.crt"; };
audit = { path = "$T/audit.log"; flush_interval = "100ms"; };
# cache is the first listener's default; the second has none (SNI or a
# route picks the database); the third is plaintext.
listen = ( { address = "127.0.0.1:$RD_PORT"; database = "cache"; },
           { address = "127.0.0.1:$PORT2"; },
           { address = "127.0.0.1:$PORT3"; database = "cache"; tls = false; } );
databases = (
  { name = "cache"; uri = "rediss://127.0.0.1:${RD_REDIS_PORT[a]}"; connect_timeout = "2s";
    labels = { env = "prod"; team = "web"; }; description = "Production cache"; },
  { name = "app"; uri = "rediss://127.0.0.1:${RD_REDIS_PORT[b]}"; connect_timeout = "2s";
    labels = { env = "dev"; }; },
  { name = "odd_db"; uri = "rediss://127.0.0.1:${RD_REDIS_PORT[b]}"; connect_timeout = "2s";
    labels = { env = "dev"; }; description = "not a DNS label"; },
  { name = "secret"; uri = "rediss://127.0.0.1:${RD_REDIS_PORT[a]}"; connect_timeout = "2s";
    labels = { env = "secret"; }; }
);
roles = (
  { name = "access";
    allow = { db_labels = { env = [ "prod", "dev" ]; }; db_users = [ "{{internal.db_users}}" ]; }; },
  # Only GET, on env=dev, as default: PING is refused, REDOUBT DATABASES
  # is not a command the roles decide.
  { name = "ro";
    allow = { db_labels = { env = "dev"; }; db_users = [ "default" ]; commands = [ "get" ]; }; }
);
EOF

# --- cert server: the databases' server names ------------------------------
out=$("$REDOUBTCTL" cert server --ca-dir "$CA" --host localhost,127.0.0.1,'*.redoubt.local' \
          --databases-from "$CONF" --out "$T/redoubt" 2>&1 >/dev/null) ||
    fail "cert server --databases-from: $out"
assert_contains 'note: the database "odd_db" is not named like a DNS label' "$out" \
    "cert server --databases-from: the note for odd_db"
sans=$(openssl x509 -in "$T/redoubt.crt" -noout -ext subjectAltName | tail -n +2 | tr -d ' ')
assert_eq "DNS:localhost,IPAddress:127.0.0.1,DNS:*.redoubt.local,DNS:cache,DNS:cache.redoubt.local,DNS:app,DNS:app.redoubt.local,DNS:secret,DNS:secret.redoubt.local" \
    "$sans" "the subjectAltNames of redoubt's certificate"
ctl cert server --ca-dir "$CA" --databases-from "$CONF" --domain db.example --out "$T/only-dbs"
sans=$(openssl x509 -in "$T/only-dbs.crt" -noout -ext subjectAltName | tail -n +2 | tr -d ' ')
assert_eq "DNS:cache,DNS:cache.db.example,DNS:app,DNS:app.db.example,DNS:secret,DNS:secret.db.example" \
    "$sans" "--databases-from with --domain and no --host"
assert_eq "subject=CN = cache" "$(openssl x509 -in "$T/only-dbs.crt" -noout -subject)" \
    "the CN without --host: the first database"
openssl verify -CAfile "$CACERT" "$T/redoubt.crt" >/dev/null 2>&1 || fail "redoubt's certificate does not verify"

# ctl_err WHAT NEEDLE ARGS...: redoubtctl exits 1, one line on stderr
# containing NEEDLE, nothing on stdout.
# The command is $CTL (default redoubtctl), e.g. a function that changes
# the environment.
ctl_err() {
    local what=$1 needle=$2 rc out; shift 2
    out=$("${CTL:-$REDOUBTCTL}" "$@" 2> "$T/ctl.err"); rc=$?
    assert_eq 1 "$rc" "$what: exit status (stderr: $(cat "$T/ctl.err"))"
    assert_eq "" "$out" "$what: stdout"
    assert_eq 1 "$(wc -l < "$T/ctl.err")" "$what: lines on stderr: $(cat "$T/ctl.err")"
    assert_contains "$needle" "$(cat "$T/ctl.err")" "$what"
}
ctl_err "--domain without --databases-from" "--domain goes with --databases-from" \
    cert server --ca-dir "$CA" --host x --domain a.b --out "$T/x"
ctl_err "a bad --domain" "bad --domain" \
    cert server --ca-dir "$CA" --databases-from "$CONF" --domain 'a..b' --out "$T/x"
ctl_err "no names at all" "--host is required (or --databases-from CONFIG)" \
    cert server --ca-dir "$CA" --out "$T/x"

out=$("$REDOUBT" -t -c "$CONF" 2>&1) || fail "-t: $out"
rd_start "$CONF"

# --- identities ------------------------------------------------------------
user() { local u=$1; shift; ctl cert user --ca-dir "$CA" --user "$u" --out "$T/$u" "$@"; }
user alice --roles access --db-users alice,default
user carol --roles access --db-users carol           # NOAUTH before AUTH
user rob --roles ro                                  # command rules
user routed --roles access --db-users default --db app --db-user default
user nobody --roles none
user old --roles access --db-users default --not-before-offset -10h

# The gateway's settings, as a user has them.
export REDOUBT_PROXY=127.0.0.1:$PORT2 REDOUBT_CA=$CACERT REDOUBT_CERT=$T/alice.crt
unset REDOUBT_KEY REDOUBT_DOMAIN REDISCLI_AUTH

# --- db connect, with a fake redis-cli ---------------------------------------
mkdir -p "$T/fakebin"
cat > "$T/fakebin/redis-cli" <<'SH'
#!/bin/sh
for a in "$@"; do printf '%s\n' "$a"; done
SH
chmod +x "$T/fakebin/redis-cli"
fake() { PATH=$T/fakebin:$PATH "$REDOUBTCTL" "$@" 2> "$T/fake.err"; }
args() { printf '%s\n' "$@"; }

got=$(fake db connect app) || fail "db connect app (fake): $(cat "$T/fake.err")"
assert_eq "$(args --tls --cert "$T/alice.crt" --key "$T/alice.key" --cacert "$CACERT" \
                --sni app.redoubt.local -h 127.0.0.1 -p "$PORT2")" "$got" \
    "db connect app: redis-cli's arguments (settings from the environment)"
got=$(fake db connect cache --db-user alice --proxy localhost:"$RD_PORT" -- GET 'a key') ||
    fail "db connect cache (fake): $(cat "$T/fake.err")"
assert_eq "$(args --tls --cert "$T/alice.crt" --key "$T/alice.key" --cacert "$CACERT" \
                --sni cache.redoubt.local -h localhost -p "$RD_PORT" --user alice --askpass GET 'a key')" \
    "$got" "db connect with --db-user, --proxy and redis-cli arguments"
got=$(REDISCLI_AUTH=pw fake db connect cache --db-user alice --sni cache --domain x.y) ||
    fail "db connect --sni (fake): $(cat "$T/fake.err")"
assert_eq "$(args --tls --cert "$T/alice.crt" --key "$T/alice.key" --cacert "$CACERT" \
                --sni cache -h 127.0.0.1 -p "$PORT2" --user alice)" "$got" \
    "db connect with --sni and REDISCLI_AUTH set (no --askpass)"
got=$(REDOUBT_DOMAIN=db.example fake db connect --cert "$T/routed.crt" --key "$T/routed.key" --proxy '[::1]:7000') ||
    fail "db connect with a routed certificate (fake): $(cat "$T/fake.err")"
assert_eq "$(args --tls --cert "$T/routed.crt" --key "$T/routed.key" --cacert "$CACERT" \
                --sni app.db.example -h ::1 -p 7000 --user default --askpass)" "$got" \
    "db connect: the route's database and user, \$REDOUBT_DOMAIN, an IPv6 --proxy"
ctl_err "db connect to another database than the route's" 'is routed to the database "app"' \
    db connect cache --cert "$T/routed.crt"
ctl_err "db connect without a database" "missing DATABASE" db connect
noproxy() { env -u REDOUBT_PROXY "$REDOUBTCTL" "$@"; }
CTL=noproxy ctl_err "db connect without a gateway" "--proxy HOST:PORT (or \$REDOUBT_PROXY) is required" \
    db connect app
ctl_err "db connect with a bad port" "the port must be a number" db connect app --proxy 127.0.0.1:99999
ctl_err "db connect without a CA" "--ca FILE (or \$REDOUBT_CA) is required" \
    db connect app --ca ''
ctl_err "db connect with an expired certificate" "expired at" db connect app --cert "$T/old.crt"
ctl_err "db connect with a missing key" "cannot read key" db connect app --key "$T/nope.key"
nocli() { PATH=/nonexistent "$REDOUBTCTL" "$@"; }
CTL=nocli ctl_err "db connect without redis-cli" "cannot run redis-cli" db connect app

# --- db connect, with the real redis-cli ---------------------------------------
assert_eq b "$("$REDOUBTCTL" db connect app -- GET whoami 2>&1)" \
    "db connect app on the listener without a default: SNI picks redis b"
assert_eq a "$("$REDOUBTCTL" db connect cache -- GET whoami 2>&1)" "db connect cache: redis a"
assert_eq b "$("$REDOUBTCTL" db connect --cert "$T/routed.crt" -- GET whoami 2>&1)" \
    "db connect with a routed certificate"
out=$("$REDOUBTCTL" db connect app --cert "$T/carol.crt" -- GET whoami 2>&1)
assert_prefix "NOAUTH" "$out" "carol before AUTH"

# --- db config ----------------------------------------------------------------
conf_env() { "$REDOUBTCTL" db config "$@" --format env 2>&1; }
out=$(conf_env app) || fail "db config app --format env: $out"
want="export REDOUBT_DB_NAME=app
export REDOUBT_DB_HOST=127.0.0.1
export REDOUBT_DB_PORT=$PORT2
export REDOUBT_DB_SERVER_NAME=app.redoubt.local
export REDOUBT_DB_CA=$CACERT
export REDOUBT_DB_CERT=$T/alice.crt
export REDOUBT_DB_KEY=$T/alice.key"
assert_eq "$want" "$out" "db config app --format env"
out=$(conf_env --cert "$T/routed.crt") || fail "db config (routed) --format env: $out"
assert_contains "export REDOUBT_DB_USER=default" "$out" "db config with a routed certificate: the route user"
assert_contains "export REDOUBT_DB_NAME=app" "$out" "db config with a routed certificate: the route"
out=$(cd "$T" && REDOUBT_CERT=alice.crt REDOUBT_CA=ca/db-ca.crt conf_env app) || fail "relative paths: $out"
assert_contains "export REDOUBT_DB_CA=$CACERT" "$out" "db config prints absolute paths"
ctl_err "db config --format nope" "bad --format 'nope'" db config app --format nope

out=$("$REDOUBTCTL" db config app 2>&1) || fail "db config app: $out"
text_field() { sed -n "s/^$1: *//p" <<<"$out"; }
assert_eq app.redoubt.local "$(text_field 'server name')" "db config app: server name"
assert_eq "$PORT2" "$(text_field port)" "db config app: port"
assert_eq "$T/alice.key" "$(text_field key)" "db config app: key"
assert_eq "$("$REDOUBTCTL" db config app --format uri)" "$(text_field uri)" "db config app: uri"
assert_eq "$("$REDOUBTCTL" db config app --format cmd)" "$(text_field redis-cli)" "db config app: redis-cli"

# The printed redis-cli line, run as printed.
cmdline=$("$REDOUBTCTL" db config app --format cmd) || fail "db config --format cmd"
assert_eq b "$(eval "$cmdline GET whoami" 2>&1)" "the redis-cli line of db config"

# ssl_ping VAR-FILE [SERVER-NAME]: python3's ssl module, check_hostname on,
# with only what "db config --format env" printed.
cat > "$T/ssl_ping.py" <<'PY'
import os, socket, ssl, sys
e = os.environ
name = sys.argv[1] if len(sys.argv) > 1 else e["REDOUBT_DB_SERVER_NAME"]
ctx = ssl.create_default_context(cafile=e["REDOUBT_DB_CA"])
assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
ctx.load_cert_chain(e["REDOUBT_DB_CERT"], e["REDOUBT_DB_KEY"])
try:
    with socket.create_connection((e["REDOUBT_DB_HOST"], int(e["REDOUBT_DB_PORT"])), 10) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$6\r\nwhoami\r\n")
            got = b""
            while got.count(b"\r\n") < 3:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
            sys.stdout.write(got.decode().replace("\r\n", " ").strip())
except ssl.SSLCertVerificationError as err:
    sys.stdout.write("verify failed: %s" % err.verify_message)
PY
py_ssl() { ( eval "$(conf_env "$1")"; python3 "$T/ssl_ping.py" "${@:2}" ) 2>&1; }
assert_eq '+PONG $1 b' "$(py_ssl app)" "python3 ssl, check_hostname, app through the listener without a default"
assert_eq '+PONG $1 a' "$(py_ssl cache)" "python3 ssl, check_hostname, cache"
assert_contains "verify failed: Hostname mismatch" "$(py_ssl app app.other.example)" \
    "python3 ssl refuses a server name that is not in redoubt's certificate"

# node's tls.connect, default checkServerIdentity.
cat > "$T/tls_ping.js" <<'JS'
const fs = require('fs');
const tls = require('tls');
const e = process.env;
const s = tls.connect({
  host: e.REDOUBT_DB_HOST, port: Number(e.REDOUBT_DB_PORT),
  servername: process.argv[2] || e.REDOUBT_DB_SERVER_NAME,
  ca: fs.readFileSync(e.REDOUBT_DB_CA),
  cert: fs.readFileSync(e.REDOUBT_DB_CERT), key: fs.readFileSync(e.REDOUBT_DB_KEY),
}, () => s.write('*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$6\r\nwhoami\r\n'));
let got = '';
s.setTimeout(10000, () => { console.log('timeout: ' + got); s.destroy(); });
s.on('data', (d) => {
  got += d;
  if (got.split('\r\n').length > 3) { console.log(got.replace(/\r\n/g, ' ').trim()); s.end(); }
});
s.on('error', (err) => console.log('error: ' + err.code));
JS
node_tls() { ( eval "$(conf_env "$1")"; node "$T/tls_ping.js" "${@:2}" ) 2>&1; }
if [ -n "$HAVE_NODE" ]; then
    assert_eq '+PONG $1 b' "$(node_tls app)" "node tls.connect, app"
    assert_eq '+PONG $1 a' "$(node_tls cache)" "node tls.connect, cache"
    assert_eq 'error: ERR_TLS_CERT_ALTNAME_INVALID' "$(node_tls app app.other.example)" \
        "node refuses a server name that is not in redoubt's certificate"
    # The bare database name is in the certificate too (--databases-from).
    out=$( ( eval "$(conf_env app --sni app)"; node "$T/tls_ping.js" ) 2>&1)
    assert_eq '+PONG $1 b' "$out" "node tls.connect with the server name \"app\""
else
    note "node is not installed: the node checks are left out"
fi

# The snippets: valid code always; run when the library is there.
"$REDOUBTCTL" db config app --format python --db-user default > "$T/snippet.py" || fail "--format python"
"$REDOUBTCTL" db config app --format node > "$T/snippet-node.js" || fail "--format node"
"$REDOUBTCTL" db config app --format ioredis > "$T/snippet-ioredis.js" || fail "--format ioredis"
python3 -m py_compile "$T/snippet.py" || fail "the python snippet does not compile"
if [ -n "$HAVE_NODE" ]; then
    node --check "$T/snippet-node.js" || fail "the node-redis snippet is not valid JavaScript"
    node --check "$T/snippet-ioredis.js" || fail "the ioredis snippet is not valid JavaScript"
fi
assert_contains 'ssl_check_hostname=True' "$(cat "$T/snippet.py")" "the python snippet checks host names"
assert_contains "servername: 'app.redoubt.local'" "$(cat "$T/snippet-node.js")" "the node-redis snippet's server name"
for mod in redis ioredis; do
    f=$T/snippet-node.js; [ "$mod" = ioredis ] && f=$T/snippet-ioredis.js
    if [ -n "$HAVE_NODE" ] && (cd "$T" && node -e "require('$mod')") >/dev/null 2>&1; then
        assert_eq PONG "$(cd "$T" && REDISCLI_AUTH='' node "$f" 2>&1)" "the $mod snippet"
    else
        note "node module $mod not installed: its snippet is only syntax-checked"
    fi
done

# redis-py: the first python3 on PATH, or Debian's, that has it.
PY_REDIS=
for py in python3 /usr/bin/python3; do
    if command -v "$py" >/dev/null && "$py" -c 'import redis' 2>/dev/null; then PY_REDIS=$py; break; fi
done
if [ -n "$PY_REDIS" ]; then
    assert_eq True "$(REDISCLI_AUTH=unused "$PY_REDIS" "$T/snippet.py" 2>&1)" \
        "the redis-py snippet (ssl_check_hostname) through the listener without a default"
    # The URI, with redis-py's from_url; the server name reaches the
    # gateway as DNS or /etc/hosts would make it.
    uri=$("$REDOUBTCTL" db config app --format uri) || fail "--format uri"
    out=$("$PY_REDIS" - "$uri" 127.0.0.1 <<'PY' 2>&1
import socket, sys
import redis
uri, gateway = sys.argv[1], sys.argv[2]
_gai = socket.getaddrinfo
socket.getaddrinfo = lambda h, *a, **k: _gai(gateway if h.endswith(".redoubt.local") else h, *a, **k)
r = redis.Redis.from_url(uri)
assert r.connection_pool.connection_kwargs["ssl_check_hostname"] is True
print(r.ping(), r.get("whoami").decode())
PY
)
    assert_eq "True b" "$out" "redis-py from_url with the URI of db config"
else
    note "python3-redis is not installed: redis-py is not tested"
fi

# --- db ls against the running gateway ----------------------------------------------
offline() { "$REDOUBTCTL" db ls --cert "$1" -c "$CONF" 2>&1; }
online() { "$REDOUBTCTL" db ls --cert "$@" 2>&1; }
want='NAME   DESCRIPTION      LABELS            DB USERS
------ ---------------- ----------------- -------------
cache  Production cache env=prod,team=web alice,default
app    -                env=dev           alice,default
odd_db not a DNS label  env=dev           alice,default'
want_alice=$want
assert_eq "$want" "$(offline "$T/alice.crt")" "db ls -c for alice"
assert_eq "$want" "$(online "$T/alice.crt" --proxy 127.0.0.1:"$RD_PORT")" \
    "db ls against the gateway (listener with a default database) for alice"
assert_eq "$want" "$(online "$T/alice.crt" --db app)" "db ls --db app against the listener without a default"
for who in carol rob routed; do
    assert_eq "$(offline "$T/$who.crt")" "$(online "$T/$who.crt" --db app)" "db ls against the gateway for $who"
done
assert_eq app "$(online "$T/routed.crt" | tail -n +3 | awk '{ print $1 }')" "db ls for a routed certificate"
assert_eq "app odd_db" "$(online "$T/rob.crt" --db app | tail -n +3 | awk '{ print $1 }' | xargs)" \
    "db ls for a role with command rules"
ctl_err "db ls without a database on a listener without a default" \
    "no database selected: this listener has no default database (the gateway opens a session on a database first: name one you may reach with --db NAME)" \
    db ls
ctl_err "db ls for an identity whose roles reach nothing" 'access to database "cache" denied' \
    db ls --cert "$T/nobody.crt" --proxy 127.0.0.1:"$RD_PORT"
ctl_err "db ls --db with a server name not in the certificate" \
    "the gateway's certificate does not name app.other.example" db ls --db app --domain other.example
ctl_err "db ls with another CA" "cannot verify the gateway's certificate" db ls --db app --ca "$CA/user-ca.crt"
ctl ca init "$T/ca2"
ctl cert user --ca-dir "$T/ca2" --user mallory --roles access --db-users '*' --out "$T/mallory"
ctl_err "db ls with a certificate the gateway does not trust" "the gateway refused your certificate" \
    db ls --db app --cert "$T/mallory.crt"
ctl_err "db ls -c with gateway options" "-c CONFIG reads the roles here" db ls -c "$CONF" --proxy x:1
ctl_err "db ls with an expired certificate" "expired at" db ls --cert "$T/old.crt"

# Answered by redoubt: Redis sees no connection and no command.
# Two INFOs with nothing between them, then with two db ls between them:
# the same differences.
redis_counts() {
    dt b INFO stats | tr -d '\r' |
        awk -F: '$1 == "total_connections_received" || $1 == "total_commands_processed" { printf "%s ", $2 }'
}
delta() { local a b; read -r -a a <<<"$1"; read -r -a b <<<"$2"; echo "$((b[0] - a[0])) $((b[1] - a[1]))"; }
r0=$(redis_counts); r1=$(redis_counts)
online "$T/alice.crt" --db app >/dev/null
online "$T/rob.crt" --db app >/dev/null
r2=$(redis_counts)
assert_eq "$(delta "$r0" "$r1")" "$(delta "$r1" "$r2")" \
    "REDOUBT DATABASES reaches Redis (connections and commands, before: $r0 $r1, after: $r2)"

# The wire: inside MULTI, a bad subcommand, the plaintext listener.
out=$(printf 'MULTI\nREDOUBT DATABASES\nSET x 1\nEXEC\nREDOUBT NOPE\nREDOUBT DATABASES x\n' |
      "$REDOUBTCTL" db connect cache 2>&1 | grep -v '^$')
want='OK
ERR redoubt: REDOUBT DATABASES is not allowed inside MULTI
QUEUED
EXECABORT Transaction discarded because of previous errors.
ERR redoubt: unknown REDOUBT subcommand: REDOUBT DATABASES lists the databases this certificate reaches
ERR wrong number of arguments for '\''redoubt|databases'\'' command'
assert_eq "$want" "$out" "REDOUBT inside MULTI and with bad arguments"
assert_eq "ERR redoubt: REDOUBT DATABASES needs a client certificate (this listener is plaintext)" \
    "$(redis-cli -h 127.0.0.1 -p "$PORT3" REDOUBT DATABASES 2>&1)" "REDOUBT DATABASES on a plaintext listener"

# Audited like any command.
audited() {
    grep '"event":"session.query"' "$T/audit.log" 2>/dev/null |
        grep '"user":"rob"' | grep -c '"command":"redoubt".*"outcome":"ok"'
}
audit_ok() { [ "$(audited)" -ge 2 ]; }
wait_for 5 audit_ok ||
    fail "REDOUBT DATABASES is not in the audit log as rob's command: $(grep rob "$T/audit.log")"

# --- the issue's certificate, then a wildcard alone ---------------------------------
# reissue HOSTS: a new certificate for redoubt, and a reload that serves it.
reissue() {
    local serial
    ctl cert server --ca-dir "$CA" --host "$1" --out "$T/redoubt"
    serial=$(cert_serial "$T/redoubt.crt")
    kill -HUP "$RD_PID"
    wait_for 10 served_is "$serial" || fail "redoubt does not serve the certificate for $1 after a reload"
}
served_is() { [ "$(tls_served_serial "$RD_PORT" "$T/alice" "$CACERT")" = "$1" ]; }
reissue localhost,127.0.0.1
assert_contains "verify failed: Hostname mismatch" "$(py_ssl app)" \
    "python3 ssl with a certificate for localhost,127.0.0.1 only"
if [ -n "$HAVE_NODE" ]; then
    assert_eq 'error: ERR_TLS_CERT_ALTNAME_INVALID' "$(node_tls app)" \
        "node with a certificate for localhost,127.0.0.1 only"
fi
ctl_err "db ls --db app with that certificate" "does not name app.redoubt.local" db ls --db app
reissue 'localhost,127.0.0.1,*.redoubt.local'
assert_eq '+PONG $1 b' "$(py_ssl app)" "python3 ssl with the wildcard *.redoubt.local"
if [ -n "$HAVE_NODE" ]; then
    assert_eq '+PONG $1 b' "$(node_tls app)" "node with the wildcard *.redoubt.local"
fi
assert_eq "$want_alice" "$(online "$T/alice.crt" --db app)" "db ls --db app with the wildcard"

pass
