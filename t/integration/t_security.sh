#!/bin/bash
# t_security: the ways around the roles that issue 10 lists, tried as an
# attacker with a valid certificate would, against a real TLS redis-server
# and a real 6-node TLS Redis Cluster. Redis is the oracle: every attack
# is followed by what Redis itself says (ACL WHOAMI, the key's value,
# straight to the server, or the reply of a Redis user restricted by
# Redis's own ACL).
#   1  the database user: HELLO with two AUTH options, HELLO SETNAME AUTH
#      AUTH, HELLO whose SETNAME fails after its AUTH, AUTH queued inside
#      MULTI, RESET, commands before AUTH (-NOAUTH), failed AUTH limit
#   2  transactions: a refused MULTI never lets its commands run one by
#      one; a command refused inside MULTI aborts the EXEC (-EXECABORT, as
#      Redis's ACL does)
#   3  rules that cannot see what a command touches fail closed: EVAL,
#      SCRIPT LOAD + EVALSHA, FUNCTION LOAD + FCALL, FUNCTION FLUSH, SWAPDB
#      past a deny on FLUSHALL; keys passed to EVAL, SORT BY/GET, DEBUG
#      OBJECT, GEORADIUS ... STORE a STORE b, CONFIG, CLIENT, ACL SETUSER,
#      unknown commands, PUBLISH past key rules; "unchecked" lets them
#      through; channel rules
#   4  patterns match bytes: NUL and newline in keys against deny globs
#      and regexes
#   5  a deny block without db_labels applies to every database
#   6  the cluster: the same attacks through a cluster database
# shellcheck disable=SC2016,SC2317 # RESP literals; helpers called indirectly
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
rd_init
need_tls

# --- the servers -------------------------------------------------------------
PW_B=$(openssl rand -hex 12) || fail "openssl rand"
PW_R=$(openssl rand -hex 12) || fail "openssl rand"
PW_N=$(openssl rand -hex 12) || fail "openssl rand"
# The same users on the standalone server and the cluster; "nodel" may
# not DEL by Redis's own ACL (the oracle for a refused queued command).
ACL_LINES=("user bob on >$PW_B ~* &* +@all"
           "user reader on >$PW_R ~* &* +@all"
           "user nodel on >$PW_N ~* &* +@all -del")
cluster_start "${ACL_LINES[@]}"     # alice comes with the cluster
PW_A=$CLUSTER_ALICE_PW
ACL_LINES+=("user alice on >$PW_A ~* &* +@all")
CA=$CLUSTER_CA
CACERT=$CA/db-ca.crt
ctl cert server --ca-dir "$CA" --host localhost,127.0.0.1 --out "$T/redoubt"
ctl cert server --ca-dir "$CA" --host localhost,127.0.0.1 --out "$T/redis"
redis_start_tls s "$T/redis.crt" "$T/redis.key" "$CA/db-client-ca.crt"

# ds ARGS...: straight to the standalone server (as alice).
ds() {
    REDISCLI_AUTH=$PW_A tls_cli "${RD_REDIS_PORT[s]}" "$CLUSTER_CLIENT" "$CACERT" \
        --user alice --no-auth-warning "$@"
}
# The standalone server keeps "default" on (nopass), as a careless
# deployment would: redoubt must not let a session run as it.
for l in "${ACL_LINES[@]}"; do
    read -r -a words <<<"${l#user }"
    assert_eq OK "$(tls_cli "${RD_REDIS_PORT[s]}" "$CLUSTER_CLIENT" "$CACERT" ACL SETUSER "${words[@]}" 2>&1)" \
        "ACL SETUSER ${words[0]} on the standalone server"
done

C_PORT=$(free_port) || fail "no free port"
CONF=$T/redoubt.conf
cat > "$CONF" <<EOF
# redoubt test configuration for $RD_TEST
worker_processes = $RD_WORKERS;
pid_file = "$T/redoubt.pid";
worker_shutdown_timeout = "10s";
error_log = { path = "$T/error.log"; level = "debug"; };
tls = { certificate = "$T/redoubt.crt"; certificate_key = "$T/redoubt.key";
        client_ca = "$CA/user-ca.crt"; };
upstream_tls = { ca_cert = "$CA/db-client-ca.crt"; ca_key = "$CA/db-client-ca.key";
                 server_ca = "$CA/db-ca.crt"; };
limits = { max_auth_failures = 3; };
listen = ( { address = "127.0.0.1:$RD_PORT"; database = "s"; },
           { address = "127.0.0.1:$C_PORT"; database = "c"; } );
databases = (
  { name = "s"; uri = "rediss://127.0.0.1:${RD_REDIS_PORT[s]}"; connect_timeout = "2s";
    labels = { env = "prod"; }; },
  { name = "c"; uri = "rediss://127.0.0.1:${CLUSTER_PORTS[0]}?mode=cluster"; connect_timeout = "2s";
    labels = { env = "prod"; }; }
);
roles = (
  { name = "access";
    allow = { db_labels = { * = "*"; }; db_users = [ "{{internal.db_users}}" ]; }; },
  { name = "no-bob";          # no db_labels: every database
    deny = { db_users = [ "bob" ]; }; },
  { name = "ro-alice";
    allow = { db_labels = { * = "*"; }; db_users = [ "alice" ];
              commands = [ "@read", "ping", "acl|whoami" ]; }; },
  { name = "rw-bob";
    allow = { db_labels = { * = "*"; }; db_users = [ "bob" ]; }; },
  { name = "no-flush";        # no db_labels: every database
    deny = { commands = [ "flushall" ]; }; },
  { name = "no-txn";
    allow = { db_labels = { * = "*"; }; db_users = [ "alice" ];
              commands = [ "@read", "@write", "acl|whoami" ]; }; },
  { name = "no-del";
    allow = { db_labels = { * = "*"; }; db_users = [ "alice" ];
              commands = [ "@read", "@write", "@transaction", "acl|whoami" ];
              keys = [ "*" ]; };
    deny = { commands = [ "del" ]; }; },
  { name = "app-keys";
    allow = { db_labels = { * = "*"; }; db_users = [ "alice" ]; keys = [ "app:*" ]; }; },
  { name = "app-keys-eval";
    allow = { db_labels = { * = "*"; }; db_users = [ "alice" ]; keys = [ "app:*" ];
              unchecked = [ "eval" ]; channels = [ "news.*" ]; }; },
  { name = "secrets";
    allow = { db_labels = { * = "*"; }; db_users = [ "alice" ]; };
    deny = { keys = [ "secret:*", "^private:.*\$" ]; }; }
);
EOF
out=$("$REDOUBT" -t -c "$CONF" 2>&1) || fail "-t on the configuration: $out"
rd_start "$CONF"

# rs PREFIX [PORT]: lib.sh's rs, on another listener when PORT is given.
rs() {
    tls_cli "${2:-$RD_PORT}" "$1" "$CACERT" 2>&1 | sed '/^$/d'
}
# raw PREFIX RESP [PORT]: RESP bytes through redoubt in one write; the
# replies, CRs removed, once NREPLIES lines came back or the session ended.
raw() {
    local prefix=$1 bytes=$2 port=${3:-$RD_PORT}
    printf '%s' "$bytes" | timeout 10 openssl s_client -quiet -connect "127.0.0.1:$port" \
        -cert "$prefix.crt" -key "$prefix.key" -CAfile "$CACERT" -ign_eof 2>/dev/null |
        tr -d '\r'
}

run_tests() {
    local db=$1 port=$2 tag=$1 d
    if [ "$db" = s ]; then d=ds; else d=dc; fi

    # --- 1. the database user ------------------------------------------------
    user "$T/pin-$tag" --user mallory --roles access --db-users alice,bob --db "$db" --db-user alice
    out=$(rs "$T/pin-$tag" "$port" <<EOF
HELLO 2 AUTH alice $PW_A AUTH bob $PW_B
ACL WHOAMI
AUTH $PW_A
ACL WHOAMI
EOF
)
    assert_eq $'ERR redoubt: HELLO with more than one AUTH option is not supported\nNOAUTH Authentication required.\nOK\nalice' \
        "$out" "$tag: HELLO AUTH alice AUTH bob on a route pinned to alice"

    user "$T/nobob-$tag" --user mallory --roles access,no-bob --db-users alice,bob
    out=$(rs "$T/nobob-$tag" "$port" <<EOF
AUTH alice $PW_A
HELLO 2 SETNAME AUTH AUTH bob $PW_B
ACL WHOAMI
EOF
)
    assert_eq $'OK\nERR redoubt: access to database "'"$db"$'" as user "bob" denied\nalice' \
        "$out" "$tag: HELLO SETNAME AUTH AUTH bob past a deny on bob"

    # Redis 7.0 applies HELLO's AUTH before a bad SETNAME fails: never
    # forwarded, so the session stays as it was (Redis's own error text).
    user "$T/ab-$tag" --user mallory --roles ro-alice,rw-bob --db-users alice,bob
    out=$(rs "$T/ab-$tag" "$port" <<EOF
AUTH alice $PW_A
HELLO 2 AUTH bob $PW_B SETNAME "a b"
ACL WHOAMI
HELLO 2 AUTH bob $PW_B SETNAME
ACL WHOAMI
SET app:w 1
EOF
)
    want=$'OK\nERR Client names cannot contain spaces, newlines or special characters.\nalice'
    want+=$'\nERR Syntax error in HELLO option \'SETNAME\'\nalice'
    want+=$'\nNOPERM redoubt: command \'set\' is not allowed on database "'"$db"$'" as user "alice"'
    assert_eq "$want" "$out" "$tag: HELLO whose SETNAME fails after its AUTH"

    # AUTH queued inside MULTI: +QUEUED is no successful AUTH.
    [ "$db" = s ] && {
        out=$(rs "$T/ab-$tag" "$port" <<EOF
AUTH alice $PW_A
MULTI
AUTH bob wrongpw
DISCARD
ACL WHOAMI
SET app:w 1
EOF
)
        # ro-alice may not MULTI: the transaction is refused as a whole.
        want=$'OK\nNOPERM redoubt: command \'multi\' is not allowed on database "s" as user "alice"'
        want+=$'\nERR redoubt: not run: the MULTI of this transaction was refused\nOK\nalice'
        want+=$'\nNOPERM redoubt: command \'set\' is not allowed on database "s" as user "alice"'
        assert_eq "$want" "$out" "$tag: MULTI; AUTH bob wrong; DISCARD (MULTI refused)"
        user "$T/abt-$tag" --user mallory --roles no-del,rw-bob --db-users alice,bob
        out=$(rs "$T/abt-$tag" "$port" <<EOF
AUTH alice $PW_A
MULTI
AUTH bob wrongpw
DISCARD
ACL WHOAMI
MULTI
AUTH bob $PW_B
EXEC
ACL WHOAMI
EOF
)
        want=$'OK\nOK\nERR redoubt: AUTH and HELLO are not allowed inside MULTI\nOK\nalice'
        want+=$'\nOK\nERR redoubt: AUTH and HELLO are not allowed inside MULTI'
        want+=$'\nEXECABORT Transaction discarded because of previous errors.\nalice'
        assert_eq "$want" "$out" "$tag: AUTH inside MULTI is refused and aborts the EXEC"
        assert_eq alice "$(printf 'AUTH alice %s\nMULTI\nAUTH bob %s\nEXEC\nACL WHOAMI\n' "$PW_A" "$PW_B" | rs "$T/abt-$tag" "$port" | tail -n 1)" \
            "$tag: after MULTI; AUTH bob; EXEC the session still runs as alice"
    }

    # RESET: Redis runs the connection as "default" again.
    out=$(rs "$T/nobob-$tag" "$port" <<EOF
AUTH alice $PW_A
ACL WHOAMI
RESET
ACL WHOAMI
GET app:1
EOF
)
    if [ "$db" = s ]; then
        assert_eq $'OK\nalice\nRESET\nNOAUTH Authentication required.\nNOAUTH Authentication required.' \
            "$out" "$tag: after RESET the session is \"default\" again"
    fi

    # Before AUTH: Redis's -NOAUTH, not a NOPERM naming "default".
    assert_eq "NOAUTH Authentication required." "$(printf 'PING\n' | rs "$T/nobob-$tag" "$port")" \
        "$tag: PING before AUTH"

    # Failed AUTH attempts: the session is closed after the third.
    # (In one write: redis-cli would reconnect after the close.)
    out=$(raw "$T/nobob-$tag" "$(resp_encode AUTH alice x; resp_encode AUTH alice y; resp_encode AUTH bob z
                                  resp_encode AUTH alice "$PW_A"; resp_encode PING)" "$port")
    want=$'-WRONGPASS invalid username-password pair or user is disabled.\n-WRONGPASS invalid username-password pair or user is disabled.'
    want+=$'\n-ERR redoubt: access to database "'"$db"$'" as user "bob" denied'
    assert_eq "$want" "$out" "$tag: three failed AUTHs, then the session is closed"


    # --- 2. transactions ------------------------------------------------------
    "$d" SET txn:k old >/dev/null
    user "$T/notxn-$tag" --user mallory --roles no-txn --db-users alice
    out=$(rs "$T/notxn-$tag" "$port" <<EOF
AUTH alice $PW_A
MULTI
SET txn:k new
DISCARD
MULTI
SET txn:k new
EXEC
GET txn:k
EOF
)
    want=$'OK\nNOPERM redoubt: command \'multi\' is not allowed on database "'"$db"$'" as user "alice"'
    want+=$'\nERR redoubt: not run: the MULTI of this transaction was refused\nOK'
    want+=$'\nNOPERM redoubt: command \'multi\' is not allowed on database "'"$db"$'" as user "alice"'
    want+=$'\nERR redoubt: not run: the MULTI of this transaction was refused'
    want+=$'\nEXECABORT Transaction discarded because of previous errors.\nold'
    assert_eq "$want" "$out" "$tag: a refused MULTI: its commands never run one by one"
    assert_eq old "$("$d" GET txn:k)" "$tag: the key, straight from Redis"
}

run_tests s "$RD_PORT"

# A command refused inside MULTI aborts the EXEC, as Redis's own ACL does:
# the same bytes straight to Redis as "nodel" (Redis's ACL refuses DEL)
# and through redoubt as alice under a role that denies DEL.
ds SET txn:k old >/dev/null
txn=$'MULTI\nSET txn:k new\nDEL txn:k\nEXEC\nGET txn:k\n'
want=$( { printf 'AUTH nodel %s\n' "$PW_N"; printf '%s' "$txn"; } |
        tls_cli "${RD_REDIS_PORT[s]}" "$CLUSTER_CLIENT" "$CACERT" 2>&1 | sed '/^$/d' | tail -n +2 |
        sed 's/^NOPERM .*/NOPERM/')
user "$T/nodel" --user mallory --roles no-del --db-users alice
got=$( { printf 'AUTH alice %s\n' "$PW_A"; printf '%s' "$txn"; } | rs "$T/nodel" | tail -n +2 |
       sed 's/^NOPERM .*/NOPERM/')
assert_eq $'OK\nQUEUED\nNOPERM\nEXECABORT Transaction discarded because of previous errors.\nold' "$want" \
    "s: Redis's own ACL: a refused queued command aborts the EXEC"
assert_eq "$want" "$got" "s: a command redoubt refuses inside MULTI aborts the EXEC as Redis does"
assert_eq old "$(ds GET txn:k)" "s: the key is unchanged"

# --- 3. rules that cannot see what a command touches -------------------------
ds SET other:1 secret-value >/dev/null
ds SET app:1 one >/dev/null
user "$T/noflush" --user mallory --roles access,no-flush --db-users alice
out=$(rs "$T/noflush" <<EOF
AUTH alice $PW_A
FLUSHALL
EVAL "return redis.call('flushall')" 0
SCRIPT LOAD "return redis.call('flushall')"
FUNCTION LOAD "#!lua name=lib\nredis.register_function('f', function() return redis.call('flushall') end)"
FCALL f 0
FUNCTION FLUSH
SWAPDB 0 1
DBSIZE
EOF
)
pre="NOPERM redoubt: what command"
want=$'OK\nNOPERM redoubt: command \'flushall\' is not allowed on database "s" as user "alice"'
assert_eq "$want" "$(head -n 2 <<<"$out")" "s: FLUSHALL denied"
n=$(tail -n +3 <<<"$out" | head -n 6 | grep -c "^$pre")
assert_eq 6 "$n" "s: EVAL, SCRIPT LOAD, FUNCTION LOAD, FCALL, FUNCTION FLUSH, SWAPDB refused past a deny on FLUSHALL: $(tail -n +3 <<<"$out")"
[ "$(ds DBSIZE)" -gt 0 ] || fail "s: the database was flushed"
pass "s: the database still has its keys"

user "$T/appkeys" --user mallory --roles app-keys --db-users alice
out=$(rs "$T/appkeys" <<EOF
AUTH alice $PW_A
GET app:1
GET other:1
EVAL "return redis.call('get', ARGV[1])" 0 other:1
SORT app:list BY other:*
SORT_RO app:list GET other:*->f
DEBUG OBJECT other:1
GEORADIUS app:geo 0 0 1 km STORE app:ok STORE other:x
CONFIG GET requirepass
CLIENT LIST
ACL SETUSER mallory on >x +@all ~*
PUBLISH news.1 hi
NOSUCHCOMMAND app:1
EOF
)
assert_eq $'OK\none' "$(head -n 2 <<<"$out")" "s: app-keys reads app:1"
assert_prefix "NOPERM redoubt: key 'other:1'" "$(sed -n 3p <<<"$out")" "s: app-keys GET other:1"
n=$(tail -n +4 <<<"$out" | grep -c '^NOPERM redoubt')
assert_eq 10 "$n" "s: app-keys: EVAL with a key in ARGV, SORT BY/GET, DEBUG OBJECT, GEORADIUS STORE STORE, CONFIG, CLIENT LIST, ACL SETUSER, PUBLISH, an unknown command all refused: $(tail -n +4 <<<"$out")"
assert_contains "key 'other:x'" "$(sed -n 8p <<<"$out")" "s: GEORADIUS: the last STORE is the key checked"
assert_eq 0 "$(ds EXISTS other:x)" "s: other:x was not written"

user "$T/appeval" --user mallory --roles app-keys-eval --db-users alice
out=$(rs "$T/appeval" <<EOF
AUTH alice $PW_A
EVAL "return 'ran'" 0
PUBLISH news.1 hi
PUBLISH other hi
SPUBLISH news.2 hi
EOF
)
want=$'OK\nran\n0'
want+=$'\nNOPERM redoubt: channel \'other\' is not allowed on database "s" as user "alice"\n0'
assert_eq "$want" "$out" "s: unchecked = [ eval ] and channels = [ news.* ]"

# --- 4. patterns match bytes ----------------------------------------------------
user "$T/secrets" --user mallory --roles secrets --db-users alice
out=$(rs "$T/secrets" <<EOF
AUTH alice $PW_A
SET "secret:\\x00x" 1
SET "private:a\\nb" 1
SET "secret:" 1
SET "public:1" 1
EOF
)
want=$'OK\nNOPERM redoubt: key \'secret:?x\' is not allowed on database "s" as user "alice"'
want+=$'\nNOPERM redoubt: key \'private:a?b\' is not allowed on database "s" as user "alice"'
want+=$'\nNOPERM redoubt: key \'secret:\' is not allowed on database "s" as user "alice"\nOK'
assert_eq "$want" "$out" "s: deny globs and regexes match NUL and newline"
assert_eq 0 "$(ds EXISTS "secret:" )" "s: secret: not written"

# --- 5. a deny block without db_labels ------------------------------------------
out=$("$REDOUBTCTL" access check --cert "$T/nobob-s.crt" -c "$CONF" --db s --db-user bob 2>&1)
assert_contains 'decided by: role "no-bob", deny rule (every database: no db_labels)' "$out" \
    "redoubtctl access check explains a deny without db_labels"

# --- 6. the cluster ---------------------------------------------------------------
dc() { ccli "$(cluster_slot_owner "$2")" "$@"; }
run_tests c "$C_PORT"

out=$(rs "$T/noflush" "$C_PORT" <<EOF
AUTH alice $PW_A
EVAL "return redis.call('flushall')" 0
FUNCTION FLUSH
EOF
)
assert_eq 2 "$(tail -n +2 <<<"$out" | grep -c "^$pre")" "c: EVAL and FUNCTION FLUSH refused past a deny on FLUSHALL: $out"
out=$(rs "$T/appkeys" "$C_PORT" <<EOF
AUTH alice $PW_A
EVAL "return redis.call('get', ARGV[1])" 0 other:1
GEORADIUS app:geo 0 0 1 km STORE app:ok STORE other:x
EOF
)
assert_eq 2 "$(tail -n +2 <<<"$out" | grep -c '^NOPERM redoubt')" "c: EVAL with a key in ARGV, GEORADIUS STORE STORE: $out"

rd_stop
pass "t_security done"
