#!/bin/bash
# t_tls: client-facing mutual TLS. A user certificate works end to end
# against TLS-only redis-servers that require client certificates; no
# certificate, one from another CA (also the db and db-client CAs), an
# expired, a not yet valid and an identity-less one are refused while an
# open session carries on; SNI and the certificate's route select the
# database (the route wins); no database at all is a clear error; a session
# ends when its certificate expires; a reload picks up a renewed server
# certificate and a broken one leaves the old one serving.
# shellcheck disable=SC2119,SC2317 # optional args; helpers called indirectly
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
rd_init
need_tls

CA=$T/ca                # the CAs redoubt trusts
CA2=$T/ca2              # somebody else's
ctl ca init "$CA"
ctl ca init "$CA2"
CACERT=$CA/db-ca.crt    # what clients check redoubt's certificate with

# redoubt's own certificate, and the Redis servers': from the db CA.
ctl cert server --ca-dir "$CA" --host localhost,127.0.0.1 --out "$T/redoubt"
ctl cert server --ca-dir "$CA" --host localhost,127.0.0.1 --out "$T/redis"
# Straight to Redis, for the test's own checks: from the db-client CA.
ctl cert server --ca-dir "$CA" --ca db-client --host localhost --out "$T/direct"

redis_start_tls a "$T/redis.crt" "$T/redis.key" "$CA/db-client-ca.crt"
redis_start_tls b "$T/redis.crt" "$T/redis.key" "$CA/db-client-ca.crt"

# dt NAME ARGS...: redis-cli over TLS straight to redis NAME.
dt() {
    local name=$1
    shift
    tls_cli "${RD_REDIS_PORT[$name]}" "$T/direct" "$CA/db-ca.crt" "$@"
}
assert_eq OK "$(dt a SET whoami a 2>&1)" "SET straight to TLS redis a"
assert_eq OK "$(dt b SET whoami b 2>&1)" "SET straight to TLS redis b"

PORT2=$(free_port) || fail "no free port"
RD_SHUTDOWN_TIMEOUT=30s
CONF=$T/redoubt.conf
cat > "$CONF" <<EOF
# redoubt test configuration for $RD_TEST
worker_processes = $RD_WORKERS;
pid_file = "$T/redoubt.pid";
worker_shutdown_timeout = "$RD_SHUTDOWN_TIMEOUT";
error_log = { path = "$T/error.log"; level = "debug"; };
tls = { certificate = "$T/redoubt.crt"; certificate_key = "$T/redoubt.key";
        client_ca = "$CA/user-ca.crt"; };
upstream_tls = { ca_cert = "$CA/db-client-ca.crt"; ca_key = "$CA/db-client-ca.key";
                 server_ca = "$CA/db-ca.crt"; };
listen = ( { address = "127.0.0.1:$RD_PORT"; database = "db1"; },
           { address = "127.0.0.1:$PORT2"; } );
databases = (
  { name = "db1"; uri = "rediss://127.0.0.1:${RD_REDIS_PORT[a]}"; connect_timeout = "2s";
    labels = { redis = "a"; }; },
  { name = "db2"; uri = "rediss://127.0.0.1:${RD_REDIS_PORT[b]}"; connect_timeout = "2s";
    labels = { redis = "b"; }; }
);
# Every database, as the database users the certificate names; db1 only.
roles = ( { name = "access";
            allow = { db_labels = { * = "*"; }; db_users = [ "{{internal.db_users}}" ]; }; },
          { name = "db1-only";
            allow = { db_labels = { redis = "a"; }; db_users = [ "{{internal.db_users}}" ]; }; } );
EOF
out=$("$REDOUBT" -t -c "$CONF" 2>&1) || fail "-t on the TLS config: $out"
rd_start "$CONF"

# rt PREFIX ARGS...: redis-cli through redoubt (first listener, default
# database db1) with the client certificate PREFIX ("-": none).
rt() {
    local prefix=$1
    shift
    tls_cli "$RD_PORT" "$prefix" "$CACERT" "$@"
}
# rt2 PREFIX ARGS...: the same on the listener without a default database.
rt2() {
    local prefix=$1
    shift
    tls_cli "$PORT2" "$prefix" "$CACERT" "$@"
}

# log_count ERE: lines of the error log matching ERE.
log_count() { grep -cE -- "$1" "$T/error.log" 2>/dev/null || true; }
log_grew() { [ "$(log_count "$1")" -gt "$2" ]; }

user() {        # user PREFIX ARGS...: a user certificate from our user CA
    local prefix=$1
    shift
    ctl cert user --ca-dir "$CA" --roles access --db-users '*' --out "$prefix" "$@"
}

# --- a valid certificate, end to end -----------------------------------
user "$T/alice" --user alice
assert_eq PONG "$(rt "$T/alice" PING 2>&1)" "PING with alice's certificate"
assert_eq OK "$(rt "$T/alice" SET greeting hello 2>&1)" "SET through redoubt over TLS"
assert_eq hello "$(dt a GET greeting 2>&1)" "the value reached redis a (db1)"
assert_eq a "$(rt "$T/alice" GET whoami 2>&1)" "the listener's default database"
grep -q 'alice roles=\[access\] db_users=\[\*\]' "$T/error.log" ||
    fail "the error log does not show the identity read from alice's certificate"

# The same identity in a certificate made by the openssl CLI: accepted, so
# that the refusals below are about the issuer, not the tool.
ossl_cert "$T/ossl-alice" "$CA/user-ca" "/CN=alice/rdRole=access/rdDbUser=*"
assert_eq PONG "$(rt "$T/ossl-alice" PING 2>&1)" "an openssl-made certificate from the user CA"

# A session held open across all the refusals below.
user "$T/keeper" --user keeper
tls_sess_open keeper "$RD_PORT" "$T/keeper" "$CACERT" -noservername
tls_sess_echo keeper || fail "the held-open session does not work: $(cat "$T/sess-keeper.err")"

# --- refusals ----------------------------------------------------------
# refused WHAT PREFIX REASON: a session with PREFIX's certificate gets
# nowhere, the error log says REASON (an ERE), the held-open session and
# new sessions still work.
refused() {
    local what=$1 prefix=$2 reason=$3 n out
    n=$(log_count "$reason")
    out=$(rt "$prefix" SET "refused-$what" 1 2>&1)
    [ "$out" != OK ] || fail "$what: accepted"
    assert_eq 0 "$(dt a EXISTS "refused-$what" 2>&1)" "$what: the command must not reach redis"
    wait_for 5 log_grew "$reason" "$n" ||
        fail "$what: the error log does not say '$reason' (redis-cli said: $out)"
    out=$(grep -E -- "$reason" "$T/error.log" | tail -n 1)
    note "refused $what: ${out#*: client }"
    tls_sess_echo keeper || fail "the held-open session no longer works after refusing $what"
    assert_eq PONG "$(rt "$T/alice" PING 2>&1)" "a new session after refusing $what"
}

refused "no client certificate" - "TLS handshake failed: .*peer did not return a certificate"

# The issuer is unknown; OpenSSL clients append what they can of the chain
# from their own CA file, so the root they send may be there, self-signed.
UNTRUSTED="client certificate refused: (unable to get local issuer certificate|self-signed certificate in certificate chain)"

ctl cert user --ca-dir "$CA2" --user alice --roles access --db-users '*' --out "$T/other-ca"
refused "a certificate from another user CA" "$T/other-ca" \
    "$UNTRUSTED"

ossl_cert "$T/by-db-ca" "$CA/db-ca" "/CN=alice/rdRole=access/rdDbUser=*"
refused "a user certificate signed by the db CA" "$T/by-db-ca" \
    "$UNTRUSTED"

ossl_cert "$T/by-db-client-ca" "$CA/db-client-ca" "/CN=alice/rdRole=access/rdDbUser=*"
refused "a user certificate signed by the db-client CA" "$T/by-db-client-ca" \
    "$UNTRUSTED"

# A Redis server certificate from redoubt's db CA is no user certificate.
refused "a server certificate from the db CA" "$T/redis" \
    "$UNTRUSTED"

user "$T/expired" --user alice --not-before-offset -10h --ttl 1h
refused "an expired certificate" "$T/expired" \
    "client certificate refused: certificate has expired"

user "$T/future" --user alice --not-before-offset +1h --ttl 8h
refused "a certificate that is not yet valid" "$T/future" \
    "client certificate refused: certificate is not yet valid"

# No CN: the chain is fine, the identity is not. A clear -ERR, then close.
ossl_cert "$T/no-cn" "$CA/user-ca" "/O=redoubt-test/rdRole=access/rdDbUser=*"
n=$(log_count "no usable identity")
tls_sess_open nocn "$RD_PORT" "$T/no-cn" "$CACERT" -noservername
wait_for 10 tls_sess_closed nocn || fail "a certificate without CN: the session was not closed"
assert_contains "-ERR redoubt: the client certificate carries no usable identity: " \
    "$(tls_sess_output nocn)" "reply to a certificate without CN"
assert_contains "CN" "$(tls_sess_output nocn)" "the reply names the missing CN"
wait_for 5 log_grew "no usable identity" "$n" || fail "a certificate without CN: nothing in the error log"
out=$(rt "$T/no-cn" SET refused-nocn 1 2>&1)
[ "$out" != OK ] || fail "a certificate without CN: accepted by redis-cli"
assert_eq 0 "$(dt a EXISTS refused-nocn 2>&1)" "no CN: the command must not reach redis"
tls_sess_echo keeper || fail "the held-open session no longer works after refusing a certificate without CN"

# --- SNI and the certificate's route -------------------------------------
assert_eq b "$(rt "$T/alice" --sni db2 GET whoami 2>&1)" "SNI db2"
assert_eq b "$(rt "$T/alice" --sni db2.redoubt.example GET whoami 2>&1)" "SNI db2.<anything>"
assert_eq a "$(rt "$T/alice" --sni db1 GET whoami 2>&1)" "SNI db1"
assert_eq a "$(rt "$T/alice" --sni nosuch.example GET whoami 2>&1)" "an SNI naming no database: the listener's default"
assert_eq OK "$(rt "$T/alice" --sni db2 SET via-sni 1 2>&1)" "SET with SNI db2"
assert_eq 1 "$(dt b EXISTS via-sni 2>&1)" "the SNI db2 session's key landed in redis b"
assert_eq 0 "$(dt a EXISTS via-sni 2>&1)" "the SNI db2 session's key is not in redis a"

user "$T/route-db2" --user alice --db db2
assert_eq b "$(rt "$T/route-db2" GET whoami 2>&1)" "route db2 on a listener whose default is db1"
assert_eq b "$(rt "$T/route-db2" --sni db1 GET whoami 2>&1)" "route db2 beats SNI db1"
assert_eq b "$(rt2 "$T/route-db2" GET whoami 2>&1)" "route db2 on the listener without default"

# The listener without a default database.
assert_eq a "$(rt2 "$T/alice" --sni db1 GET whoami 2>&1)" "SNI db1 on the listener without default"
assert_eq b "$(rt2 "$T/alice" --sni db2 GET whoami 2>&1)" "SNI db2 on the listener without default"
tls_sess_open nodb "$PORT2" "$T/alice" "$CACERT" -noservername
wait_for 10 tls_sess_closed nodb || fail "no database selected: the session was not closed"
assert_contains "-ERR redoubt: no database selected" "$(tls_sess_output nodb)" \
    "no SNI, no route, no default database"
tls_sess_open nodb2 "$PORT2" "$T/alice" "$CACERT" -servername nosuch
wait_for 10 tls_sess_closed nodb2 || fail "SNI of no database on the listener without default: the session was not closed"
assert_contains '-ERR redoubt: access to database "nosuch" denied' "$(tls_sess_output nodb2)" \
    "an SNI naming no database, no route, no default database"

user "$T/route-nosuch" --user alice --db nosuch
tls_sess_open nosuch "$RD_PORT" "$T/route-nosuch" "$CACERT" -noservername
wait_for 10 tls_sess_closed nosuch || fail "a route to an unknown database: the session was not closed"
assert_contains '-ERR redoubt: the database "nosuch" named by the certificate is not served here' \
    "$(tls_sess_output nosuch)" "a route to an unknown database"
tls_sess_echo keeper || fail "the held-open session no longer works after the routing tests"

# --- an SNI the roles do not allow and one naming no database ----------------
# On the listener without a default database, a client must not tell a
# database that exists but its roles do not reach from one that does not
# exist: both get the same reply (the error log says which it was). The
# same name is asked for once more at the end, after a reload has removed
# that database, and must get the very same bytes.
ctl cert user --ca-dir "$CA" --user carol --roles db1-only --db-users '*' --out "$T/db1only"
assert_eq a "$(rt2 "$T/db1only" --sni db1 GET whoami 2>&1)" "db1-only: SNI db1"
# sni_refusal NAME SNI: the reply to db1only's session on the listener
# without default that asks for SNI, saved in $T/sni-NAME.reply.
sni_refusal() {
    local name=$1 sni=$2
    tls_sess_open "$name" "$PORT2" "$T/db1only" "$CACERT" -servername "$sni"
    wait_for 10 tls_sess_closed "$name" || fail "SNI $sni refused: the session was not closed"
    tls_sess_output "$name" > "$T/sni-$name.reply"
}
n=$(log_count 'access to database "db2" denied')
sni_refusal denied db2
wait_for 5 log_grew 'access to database "db2" denied' "$n" ||
    fail "SNI db2 refused by the roles: not in the error log"
assert_eq '-ERR redoubt: access to database "db2" denied' "$(tr -d '\r' < "$T/sni-denied.reply")" \
    "SNI naming a database the roles do not reach"
n=$(log_count 'server name "nosuch" names no database')
sni_refusal nosuch nosuch
assert_eq '-ERR redoubt: access to database "nosuch" denied' "$(tr -d '\r' < "$T/sni-nosuch.reply")" \
    "SNI naming no database (listener without default): the roles' refusal"
wait_for 5 log_grew 'server name "nosuch" names no database' "$n" ||
    fail "SNI naming no database: the error log does not say so"
sni_refusal nosuch2 nosuch.redoubt.example
assert_eq '-ERR redoubt: access to database "nosuch" denied' "$(tr -d '\r' < "$T/sni-nosuch2.reply")" \
    "SNI nosuch.<anything> naming no database"
tls_sess_echo keeper || fail "the held-open session no longer works after the SNI refusals"

# --- TLS session resumption: refused cleanly, a full handshake each time ----
# redoubt keeps no session cache and issues no tickets (TLS 1.2 or 1.3), so
# a client is never handed a session it could resume; one that offers a
# saved session anyway (TLS 1.2: session ID and ticket; TLS 1.3: PSK) falls
# back to a full handshake, in which its certificate is verified again, and
# its commands go through. (A TLS 1.2 ticket that redoubt used to issue
# made the reconnect fail with an internal-error alert: "session id context
# uninitialized".)
# s_ping OUT VERSION PORT PREFIX [S_CLIENT-ARGS...]: PING and QUIT over
# openssl s_client with PREFIX's certificate; everything it says in OUT.
s_ping() {
    local out=$1 v=$2 port=$3 prefix=$4
    shift 4
    printf 'PING\r\nQUIT\r\n' |
        timeout 10 openssl s_client -ign_eof -verify_return_error \
            -connect "127.0.0.1:$port" -cert "$prefix.crt" -key "$prefix.key" \
            -CAfile "$CACERT" -noservername "-$v" "$@" > "$out" 2>&1
}
# resumable FILE: the saved session has a session ID or a ticket.
resumable() {
    [ -s "$1" ] || return 1
    openssl sess_id -in "$1" -noout -text 2>/dev/null |
        grep -qE '^ *(Session-ID: *[0-9A-F]+|TLS session ticket:)'
}
# reconnect WHAT VERSION SESS: s_client to redoubt offering SESS: a full
# handshake, +PONG, no handshake failure in the error log.
reconnect() {
    local what=$1 v=$2 sess=$3 out=$T/resume-$1-$2.out n
    n=$(log_count 'TLS handshake failed')
    s_ping "$out" "$v" "$RD_PORT" "$T/alice" -sess_in "$sess" ||
        fail "$v, $what: the reconnect offering it failed: $(grep -iE 'alert|error' "$out" | head -n 3)"
    grep -q '^+PONG' "$out" ||
        fail "$v, $what: no +PONG on the reconnect offering it: $(grep -iE 'alert|error' "$out" | head -n 3)"
    grep -q '^New, ' "$out" ||
        fail "$v, $what: the reconnect was not a full handshake: $(grep -E '^(New|Reused), ' "$out")"
    assert_eq "$n" "$(log_count 'TLS handshake failed')" "$v, $what: handshake failures in the error log"
    note "$v reconnect offering $what: $(grep -E '^(New|Reused), ' "$out")"
}
for v in tls1_2 tls1_3; do
    # redoubt's own session: nothing to resume in it, and offering it
    # anyway is a full handshake.
    sess=$T/resume-own-$v.sess
    rm -f "$sess"
    s_ping "$T/resume-own-$v.1" "$v" "$RD_PORT" "$T/alice" -sess_out "$sess" ||
        fail "$v: the first connection failed: $(tail -n 5 "$T/resume-own-$v.1")"
    grep -q '^+PONG' "$T/resume-own-$v.1" || fail "$v: no +PONG on the first connection"
    if resumable "$sess"; then
        fail "$v: redoubt handed out a resumable session: $(openssl sess_id -in "$sess" -noout -text 2>&1 |
            grep -E 'Session-ID:|ticket' | tr '\n' ' ')"
    fi
    if [ -s "$sess" ]; then
        reconnect "redoubt's own session" "$v" "$sess"
    else
        note "$v: redoubt handed out no session that s_client could save"
    fi
    # A session from another server (redis a issues tickets), as a client
    # with a session cache might offer.
    sess=$T/resume-redis-$v.sess
    rm -f "$sess"
    s_ping "$T/resume-redis-$v.1" "$v" "${RD_REDIS_PORT[a]}" "$T/direct" -sess_out "$sess" ||
        fail "$v: the connection to redis a failed: $(tail -n 5 "$T/resume-redis-$v.1")"
    resumable "$sess" || fail "$v: redis a handed out no resumable session (the test needs one)"
    reconnect "a session redis a issued" "$v" "$sess"
done
! grep -q 'session id context' "$T/error.log" || fail "the error log says: $(grep 'session id context' "$T/error.log" | tail -n 1)"
tls_sess_echo keeper || fail "the held-open session no longer works after the reconnects"

# --- a session ends with its certificate ---------------------------------
user "$T/short" --user alice --ttl 3s
not_after=$(date -d "$(openssl x509 -noout -enddate -in "$T/short.crt" | sed 's/^notAfter=//')" +%s) ||
    fail "cannot read the short certificate's notAfter"
tls_sess_open short "$RD_PORT" "$T/short" "$CACERT" -noservername
tls_sess_echo short 2 || fail "a session with a 3 s certificate does not work: $(cat "$T/sess-short.err")"
wait_for 10 tls_sess_closed short || fail "the session was not closed when its certificate expired"
closed_at=$(( $(now_ms) / 1000 ))
[ "$closed_at" -ge $((not_after - 1)) ] ||
    fail "the session was closed at $closed_at, before its certificate expired ($not_after)"
grep -q 'certificate expired' "$T/error.log" || fail "the error log does not say the certificate expired"
tls_sess_echo keeper || fail "the held-open session no longer works after another session expired"

# --- reload with a renewed server certificate ------------------------------
serial1=$(cert_serial "$T/redoubt.crt")
[ -n "$serial1" ] || fail "cannot read the serial of redoubt's certificate"
assert_eq "$serial1" "$(tls_served_serial "$RD_PORT" "$T/alice" "$CACERT")" "the serial redoubt presents"

# The renewed certificate comes from another CA, so that redis-cli's own
# verification tells old from new as well.
ctl cert server --ca-dir "$CA2" --host localhost,127.0.0.1 --out "$T/redoubt-new"
serial2=$(cert_serial "$T/redoubt-new.crt")
cp "$T/redoubt-new.key" "$T/redoubt.key.tmp" && mv "$T/redoubt.key.tmp" "$T/redoubt.key"
cp "$T/redoubt-new.crt" "$T/redoubt.crt.tmp" && mv "$T/redoubt.crt.tmp" "$T/redoubt.crt"
read -r -a workers <<<"$(rd_workers | tr '\n' ' ')"
kill -HUP "$RD_PID"
serves() { [ "$(tls_served_serial "$RD_PORT" "$T/alice" "$CA2/db-ca.crt")" = "$1" ]; }
wait_for 10 serves "$serial2" || fail "after SIGHUP new sessions do not see the renewed certificate (serial $serial2)"
for _ in 1 2 3 4; do
    assert_eq "$serial2" "$(tls_served_serial "$RD_PORT" "$T/alice" "$CA2/db-ca.crt")" "serial after the reload"
done
assert_eq PONG "$(tls_cli "$RD_PORT" "$T/alice" "$CA2/db-ca.crt" PING 2>&1)" \
    "redis-cli checking the renewed certificate's CA"
out=$(rt "$T/alice" PING 2>&1)
[ "$out" != PONG ] || fail "redis-cli still accepts redoubt's certificate with the old CA after the reload"
tls_sess_echo keeper || fail "the session opened before the reload no longer works"
# Closing it lets its old worker finish.
tls_sess_close keeper

# A broken certificate file: the reload fails, the old one keeps serving.
wait_for 10 rd_has_workers "$RD_WORKERS" || fail "expected $RD_WORKERS workers after the reload, have: $(rd_workers | tr '\n' ' ')"
sleep 0.2
read -r -a workers <<<"$(rd_workers | tr '\n' ' ')"
# shellcheck disable=SC2016 # a sed expression, not a shell one
crt_re=$(printf '%s' "$T/redoubt.crt" | sed 's/[][\\.*^$(){}+?|]/\\&/g')
n=$(log_count "$crt_re")
printf -- '-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n' > "$T/redoubt.crt.tmp"
mv "$T/redoubt.crt.tmp" "$T/redoubt.crt"
"$REDOUBT" -t -c "$CONF" >/dev/null 2>&1 && fail "-t accepts a broken certificate file"
kill -HUP "$RD_PID"
wait_for 10 log_grew "$crt_re" "$n" || fail "a reload with a broken certificate: the error log does not name the file"
note "log: $(grep -F -- "$T/redoubt.crt" "$T/error.log" | tail -n 1)"
sleep 0.3
alive "$RD_PID" || fail "the master died on a reload with a broken certificate"
assert_eq "${workers[*]}" "$(rd_workers | tr '\n' ' ' | sed 's/ $//')" "workers after a failed reload"
for _ in 1 2 3 4; do
    assert_eq "$serial2" "$(tls_served_serial "$RD_PORT" "$T/alice" "$CA2/db-ca.crt")" "serial after a failed reload"
    assert_eq a "$(tls_cli "$RD_PORT" "$T/alice" "$CA2/db-ca.crt" GET whoami 2>&1)" "a new session after a failed reload"
done

# --- the same SNI once its database is gone ----------------------------------
# db2 renamed away: SNI "db2" now names no database, and the reply must be
# byte for byte the one it got while db2 existed and the roles refused it.
cp "$T/redoubt-new.crt" "$T/redoubt.crt.tmp" && mv "$T/redoubt.crt.tmp" "$T/redoubt.crt"
sed 's/name = "db2";/name = "gone";/' "$CONF" > "$T/redoubt-nodb2.conf"
out=$("$REDOUBT" -t -c "$T/redoubt-nodb2.conf" 2>&1) || fail "-t on the config without db2: $out"
cp "$T/redoubt-nodb2.conf" "$CONF.tmp" && mv "$CONF.tmp" "$CONF"
kill -HUP "$RD_PID"
CACERT=$CA2/db-ca.crt   # the renewed certificate's CA, since the reload above
db2_gone() { [ "$(rt2 "$T/alice" --sni gone GET whoami 2>&1)" = b ]; }
wait_for 10 db2_gone || fail "after the reload SNI gone does not reach redis b"
sni_refusal gone db2
cmp "$T/sni-denied.reply" "$T/sni-gone.reply" >/dev/null ||
    fail "SNI db2: the reply differs between db2 refused by the roles ($(od -c "$T/sni-denied.reply" | head -n 3)) and db2 gone ($(od -c "$T/sni-gone.reply" | head -n 3))"
note "SNI db2, refused by the roles and gone: $(tr -d '\r' < "$T/sni-gone.reply")"

rd_stop
assert_eq 0 "$RD_LAST_RC" "redoubt's exit status"
pass
