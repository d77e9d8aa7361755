#!/bin/bash
# t_rbac: role-based access through redoubt to a real TLS redis-server
# with ACL users alice, bob and reader: a route user allowed and refused,
# AUTH pinned to the route user (also HELLO AUTH), AUTH selecting a
# permitted user without a route, commands before AUTH answered -NOAUTH
# when the roles do not allow "default", a role for env=dev refused on an env=prod database, a deny on
# labels beating an allow, a read-only role (SET refused, GET allowed), key
# rules on MGET and DEL, command denies; a reload that removes a role
# refuses new sessions while an open one keeps working; and the output of
# "redoubtctl db ls" and "redoubtctl access check".
# shellcheck disable=SC2317 # helpers called indirectly (wait_for)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
rd_init
need_tls

CA=$T/ca
ctl ca init "$CA"
CACERT=$CA/db-ca.crt    # what clients check redoubt's certificate with
ctl cert server --ca-dir "$CA" --host localhost,127.0.0.1 --out "$T/redoubt"
ctl cert server --ca-dir "$CA" --host localhost,127.0.0.1 --out "$T/redis"
ctl cert server --ca-dir "$CA" --ca db-client --host localhost --out "$T/direct"

redis_start_tls a "$T/redis.crt" "$T/redis.key" "$CA/db-client-ca.crt"

# dt ARGS...: redis-cli over TLS straight to redis (the default user).
dt() { tls_cli "${RD_REDIS_PORT[a]}" "$T/direct" "$CA/db-ca.crt" "$@"; }

for u in "alice >alicepw" "bob >bobpw" "reader >readerpw"; do
    read -r name pw <<<"$u"
    assert_eq OK "$(dt ACL SETUSER "$name" on "$pw" '~*' '&*' +@all 2>&1)" "ACL SETUSER $name"
done
for kv in "app:1 one" "app:2 two" "other:1 x" "secret:x s"; do
    read -r k v <<<"$kv"
    assert_eq OK "$(dt SET "$k" "$v" 2>&1)" "SET $k straight to redis"
done

CONF=$T/redoubt.conf
# write_conf [EXTRA-ROLE]: the configuration, with the role "temp" when
# asked (the reload removes it).
write_conf() {
    local temp=
    [ "${1:-}" = temp ] && temp='{ name = "temp";
    allow = { db_labels = { * = "*"; }; db_users = [ "*" ]; }; },'
    cat > "$CONF.tmp" <<EOF
# redoubt test configuration for $RD_TEST
worker_processes = $RD_WORKERS;
pid_file = "$T/redoubt.pid";
worker_shutdown_timeout = "30s";
error_log = { path = "$T/error.log"; level = "debug"; };
tls = { certificate = "$T/redoubt.crt"; certificate_key = "$T/redoubt.key";
        client_ca = "$CA/user-ca.crt"; };
upstream_tls = { ca_cert = "$CA/db-client-ca.crt"; ca_key = "$CA/db-client-ca.key";
                 server_ca = "$CA/db-ca.crt"; };
listen = ( { address = "127.0.0.1:$RD_PORT"; database = "cache"; } );
roles = (
  $temp
  { name = "access";
    allow = { db_labels = { * = "*"; }; db_users = [ "{{internal.db_users}}" ];
              db_names = [ "{{internal.db_names}}" ]; }; },
  { name = "dev-only";
    allow = { db_labels = { env = "dev"; }; db_users = [ "*" ]; }; },
  { name = "readonly";
    allow = { db_labels = { env = [ "prod", "^prod-[0-9]+\$", "stag*" ]; };
              db_users = [ "reader" ]; commands = [ "@read", "ping" ];
              keys = [ "app:*" ]; };
    options = { max_session_ttl = "1h"; client_idle_timeout = "10m"; }; },
  { name = "no-prod";
    deny = { db_labels = { env = "prod"; }; }; },
  { name = "no-flush";
    deny = { db_labels = { * = "*"; }; commands = [ "flushall", "flushdb" ];
             keys = [ "secret:*" ]; }; }
);
databases = (
  { name = "cache"; uri = "rediss://127.0.0.1:${RD_REDIS_PORT[a]}"; connect_timeout = "2s";
    labels = { env = "prod"; team = "web"; }; description = "Production cache"; },
  { name = "devdb"; uri = "rediss://127.0.0.1:${RD_REDIS_PORT[a]}"; connect_timeout = "2s";
    labels = { env = "dev"; }; description = "Development"; }
);
EOF
    mv "$CONF.tmp" "$CONF"
}
write_conf temp
out=$("$REDOUBT" -t -c "$CONF" 2>&1) || fail "-t on the rbac config: $out"
rd_start "$CONF"



# refused_start NAME PREFIX EXPECTED [S_CLIENT-ARGS...]: the session is
# refused at its start with EXPECTED and closed.
refused_start() {
    local name=$1 prefix=$2 want=$3
    shift 3
    tls_sess_open "$name" "$RD_PORT" "$prefix" "$CACERT" "$@"
    wait_for 10 tls_sess_closed "$name" || fail "$name: the refused session was not closed"
    assert_eq "$want" "$(tls_sess_output "$name" | tr -d '\r')" "$name: the refusal"
}

# log_has ERE: the error log has a line matching ERE.
log_has() { grep -qE -- "$1" "$T/error.log" 2>/dev/null; }

# A session held open across everything below, until the reload.
user "$T/temp" --user tom --roles temp
tls_sess_open keeper "$RD_PORT" "$T/temp" "$CACERT" -noservername
tls_sess_echo keeper || fail "the held-open session does not work: $(cat "$T/sess-keeper.err")"

# --- the route user -------------------------------------------------------
user "$T/alice" --user alice --roles access --db-users alice --db cache --db-user alice
out=$(rs "$T/alice" <<'EOF'
ACL WHOAMI
AUTH alicepw
ACL WHOAMI
GET app:1
EOF
)
# Before AUTH Redis runs the session as "default", route or not; the
# roles do not allow "default", so redoubt answers as Redis does.
assert_eq $'NOAUTH Authentication required.\nOK\nalice\none' "$out" "alice (route user alice): AUTH with the password only"

out=$(rs "$T/alice" <<'EOF'
AUTH bob bobpw
ACL WHOAMI
HELLO 2 AUTH bob bobpw
ACL WHOAMI
AUTH alice alicepw
ACL WHOAMI
EOF
)
want='ERR redoubt: this certificate allows only the database user "alice"'
assert_eq "$want"$'\nNOAUTH Authentication required.\n'"$want"$'\nNOAUTH Authentication required.\nOK\nalice' "$out" \
    "alice (route user alice): AUTH and HELLO AUTH as bob refused, nothing sent to redis"

# AUTH with no argument or more than two: Redis's own errors.
arity=$'ERR wrong number of arguments for \'auth\' command\nERR syntax error'
assert_eq "$arity" "$(printf 'AUTH\nAUTH alice alicepw x\n' | rs "$T/alice")" \
    "alice (route user alice): AUTH with 0 and 3 arguments"

user "$T/alice-as-bob" --user alice --roles access --db-users alice --db cache --db-user bob
refused_start as-bob "$T/alice-as-bob" \
    '-ERR redoubt: access to database "cache" as user "bob" denied' -noservername
wait_for 5 log_has 'access to database "cache" as user "bob" denied, client: 127\.0\.0\.1:[0-9]+, session: [0-9a-f]{32}, database: cache, user: alice' ||
    fail "the refusal as bob is not in the error log"

# --- AUTH selecting the user, without a route ------------------------------
user "$T/carol" --user carol --roles access --db-users alice,bob
out=$(rs "$T/carol" <<'EOF'
GET app:1
AUTH reader readerpw
AUTH bob wrongpw
GET app:1
AUTH bob bobpw
ACL WHOAMI
GET app:1
AUTH reader readerpw
ACL WHOAMI
HELLO 2 AUTH alice alicepw
ACL WHOAMI
EOF
)
hello=$(dt HELLO 2 2>&1 | head -n 1)
want=$'NOAUTH Authentication required.'
want+=$'\nERR redoubt: access to database "cache" as user "reader" denied'
want+=$'\nWRONGPASS invalid username-password pair or user is disabled.'
want+=$'\nNOAUTH Authentication required.'
want+=$'\nOK\nbob\none'
want+=$'\nERR redoubt: access to database "cache" as user "reader" denied'
want+=$'\nbob'
assert_eq "$want" "$(head -n 9 <<<"$out")" "carol (no route): commands before AUTH, AUTH as reader refused, as bob selected"
assert_eq "$hello" "$(sed -n 10p <<<"$out")" "carol: HELLO 2 AUTH alice"
assert_eq alice "$(tail -n 1 <<<"$out")" "carol: HELLO 2 AUTH alice selects alice"

assert_eq "$arity" "$(printf 'AUTH\nAUTH bob bobpw x\n' | rs "$T/carol")" \
    "carol (no route): AUTH with 0 and 3 arguments"

# Commands pipelined right behind an AUTH (in the same write, as
# redis-benchmark sends them) are checked as the user the AUTH selects
# once its reply is known: as bob after a good AUTH, as default after a
# bad one.
tls_sess_open pipe "$RD_PORT" "$T/carol" "$CACERT" -noservername
printf '*3\r\n$4\r\nAUTH\r\n$3\r\nbob\r\n$7\r\nwrongpw\r\n*2\r\n$3\r\nGET\r\n$5\r\napp:1\r\n*3\r\n$4\r\nAUTH\r\n$3\r\nbob\r\n$5\r\nbobpw\r\n*2\r\n$3\r\nGET\r\n$5\r\napp:1\r\n*2\r\n$3\r\nACL\r\n$6\r\nWHOAMI\r\n' \
    >&"${RD_TLS_SESS_FD[pipe]}"
pipe_done() { [ "$(tls_sess_output pipe | tr -d '\r' | grep -c .)" -ge 7 ]; }
wait_for 10 pipe_done || fail "pipelined AUTH: replies missing: $(tls_sess_output pipe)"
want=$'-WRONGPASS invalid username-password pair or user is disabled.'
want+=$'\n-NOAUTH Authentication required.'
want+=$'\n+OK\n$3\none\n$3\nbob'
assert_eq "$want" "$(tls_sess_output pipe | tr -d '\r')" "carol: commands pipelined behind AUTH run as the user it selects"
tls_sess_close pipe

# --- labels: env=dev only, and a deny beating an allow ----------------------
user "$T/dev" --user dave --roles dev-only
refused_start dev-on-prod "$T/dev" '-ERR redoubt: access to database "cache" denied' -noservername
assert_eq PONG "$(rs "$T/dev" --sni devdb PING)" "dev-only on the env=dev database"

user "$T/noprod" --user nora --roles access,no-prod --db-users '*'
refused_start deny-prod "$T/noprod" '-ERR redoubt: access to database "cache" denied' -noservername
assert_eq PONG "$(rs "$T/noprod" --sni devdb PING)" "access,no-prod on the env=dev database"

# --- read-only role, key rules, command denies --------------------------------
user "$T/reader" --user rita --roles readonly --db cache --db-user reader
out=$(rs "$T/reader" <<'EOF'
AUTH readerpw
GET app:1
SET app:1 changed
MGET app:1 app:2
MGET app:1 other:1 app:2
GET other:1
PING
EOF
)
want=$'OK\none'
want+=$'\nNOPERM redoubt: command \'set\' is not allowed on database "cache" as user "reader"'
want+=$'\none\ntwo'
want+=$'\nNOPERM redoubt: key \'other:1\' is not allowed on database "cache" as user "reader"'
want+=$'\nNOPERM redoubt: key \'other:1\' is not allowed on database "cache" as user "reader"'
want+=$'\nPONG'
assert_eq "$want" "$out" "the read-only role"
assert_eq one "$(dt GET app:1 2>&1)" "the refused SET did not reach redis"

user "$T/alice2" --user alice --roles access,no-flush --db-users alice --db cache --db-user alice
out=$(rs "$T/alice2" <<'EOF'
AUTH alicepw
MGET app:1 secret:x
DEL app:2 secret:x
FLUSHALL
flushdb
SET app:3 three
EOF
)
want=$'OK'
want+=$'\nNOPERM redoubt: key \'secret:x\' is not allowed on database "cache" as user "alice"'
want+=$'\nNOPERM redoubt: key \'secret:x\' is not allowed on database "cache" as user "alice"'
want+=$'\nNOPERM redoubt: command \'flushall\' is not allowed on database "cache" as user "alice"'
want+=$'\nNOPERM redoubt: command \'flushdb\' is not allowed on database "cache" as user "alice"'
want+=$'\nOK'
assert_eq "$want" "$out" "command and key denies"
assert_eq 1 "$(dt EXISTS app:2 2>&1)" "the refused DEL did not reach redis"
assert_eq s "$(dt GET secret:x 2>&1)" "secret:x is still there"
assert_eq three "$(dt GET app:3 2>&1)" "an allowed SET reached redis"

# --- redoubtctl db ls and access check ------------------------------------------
# ctl_out WANT_RC ARGS...: redoubtctl's stdout in OUT; its status must be
# WANT_RC and its stderr empty.
ctl_out() {
    local want=$1 rc
    shift
    OUT=$("$REDOUBTCTL" "$@" 2> "$T/ctl.err"); rc=$?
    [ "$rc" -eq "$want" ] || fail "redoubtctl $*: exit status $rc, expected $want: $(cat "$T/ctl.err")"
    [ -s "$T/ctl.err" ] && fail "redoubtctl $*: unexpected stderr: $(cat "$T/ctl.err")"
    return 0
}

user "$T/ls" --user lee --roles access,readonly,nosuch --db-users alice,bob
ctl_out 0 db ls --cert "$T/ls.crt" -c "$CONF"
want='NAME  DESCRIPTION      LABELS            DB USERS
----- ---------------- ----------------- ----------------
cache Production cache env=prod,team=web alice,bob,reader
devdb Development      env=dev           alice,bob'
assert_eq "$want" "$OUT" "db ls with access and readonly"
note "db ls:"$'\n'"$OUT"

ctl_out 0 db ls --cert "$T/dev.crt" -c "$CONF"
want='NAME  DESCRIPTION LABELS  DB USERS
----- ----------- ------- --------
devdb Development env=dev *'
assert_eq "$want" "$OUT" "db ls with dev-only"

ctl_out 0 db ls --cert "$T/noprod.crt" --config "$CONF"
assert_eq devdb "$(tail -n +3 <<<"$OUT" | awk '{ print $1 }')" "db ls with a deny on env=prod"

ctl_out 0 access check --cert "$T/reader.crt" -c "$CONF" --db cache --command get app:1
want='allowed
database:   cache
db user:    reader
command:    get app:1
decided by: role "readonly", allow rule
reason:     -'
assert_eq "$want" "$OUT" "access check: GET app:1 as reader"
note "access check, allowed:"$'\n'"$OUT"

ctl_out 1 access check --cert "$T/reader.crt" -c "$CONF" --db cache --command set app:1 v
want='denied
database:   cache
db user:    reader
command:    set app:1 v
decided by: no role allows
reason:     command '\''set'\'' is not allowed on database "cache" as user "reader"'
assert_eq "$want" "$OUT" "access check: SET as reader"
note "access check, denied:"$'\n'"$OUT"

ctl_out 1 access check --cert "$T/noprod.crt" -c "$CONF" --db cache --db-user alice
want='denied
database:   cache
db user:    alice
decided by: role "no-prod", deny rule
reason:     access to database "cache" as user "alice" denied'
assert_eq "$want" "$OUT" "access check: a deny on labels"

ctl_out 0 access check --cert "$T/carol.crt" -c "$CONF" --db cache --db-user bob
want='allowed
database:   cache
db user:    bob
decided by: role "access", allow rule
reason:     -
limits:     none'
assert_eq "$want" "$OUT" "access check: carol as bob"

ctl_out 1 access check --cert "$T/carol.crt" -c "$CONF" --db cache --db-user reader
assert_contains 'reason:     access to database "cache" as user "reader" denied' "$OUT" \
    "access check: carol as reader"
assert_prefix 'denied' "$OUT" "access check: carol as reader"

ctl_out 1 access check --cert "$T/alice2.crt" -c "$CONF" --db cache --command mget app:1 secret:x
assert_contains 'decided by: role "no-flush", deny rule' "$OUT" "access check: MGET with a denied key"

ctl_out 1 access check --cert "$T/alice.crt" -c "$CONF" --db cache --db-user bob
assert_contains 'reason:     this certificate allows only the database user "alice"' "$OUT" \
    "access check: another user than the route's"

out=$("$REDOUBTCTL" access check --cert "$T/alice.crt" -c "$CONF" --db nosuch 2>&1) &&
    fail "access check on an unknown database succeeded"
assert_contains 'no database "nosuch"' "$out" "access check on an unknown database"

# --- reload: a role removed ----------------------------------------------------
assert_eq PONG "$(rs "$T/temp" PING)" "the role temp before the reload"
write_conf
out=$("$REDOUBT" -t -c "$CONF" 2>&1) || fail "-t on the reloaded config: $out"
kill -HUP "$RD_PID"
temp_refused() { [ "$(rs "$T/temp" PING)" != PONG ]; }
wait_for 10 temp_refused || fail "after the reload without the role temp, new sessions still get in"
refused_start temp-after "$T/temp" '-ERR redoubt: access to database "cache" denied' -noservername
for _ in 1 2 3; do
    temp_refused || fail "a new session with the removed role got in after the reload"
done
tls_sess_echo keeper || fail "the session opened before the reload no longer works"
assert_eq alice "$(rs "$T/alice" --user alice --pass alicepw --no-auth-warning ACL WHOAMI)" \
    "alice after the reload"
tls_sess_close keeper

rd_stop TERM
assert_eq 0 "$RD_LAST_RC" "redoubt's exit status"
pass
