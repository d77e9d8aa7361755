#!/bin/bash
# t_upstream_tls: mutual TLS from redoubt to TLS-only redis-servers that
# require client certificates. A server certificate from an untrusted CA is
# refused in verify-full and verify-ca; a host-name mismatch only in
# verify-full; insecure takes anything; per-database CA files, server_name
# and static client certificates; the minted client certificate is renewed
# before it expires, and sessions keep working after the first one has.
# shellcheck disable=SC2119,SC2317 # optional args; helpers called indirectly
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
rd_init
need_tls

CA=$T/ca                # the CAs redoubt and the Redis servers trust
CA2=$T/ca2              # somebody else's
ctl ca init "$CA"
ctl ca init "$CA2"

# Three Redis servers, all trusting client certificates from CA's
# db-client CA: one with a good certificate, one whose certificate comes
# from CA2, one whose certificate names "otherhost" only.
ctl cert server --ca-dir "$CA" --host localhost,127.0.0.1 --out "$T/good"
ctl cert server --ca-dir "$CA2" --host localhost,127.0.0.1 --out "$T/untrusted"
ctl cert server --ca-dir "$CA" --host otherhost --out "$T/other"
declare -A SRVCA=([good]=$CA/db-ca.crt [untrusted]=$CA2/db-ca.crt [other]=$CA/db-ca.crt)
for r in good untrusted other; do
    redis_start_tls "$r" "$T/$r.crt" "$T/$r.key" "$CA/db-client-ca.crt"
done

# Client certificates for Redis, not minted by redoubt: from the db-client
# CA (good), and from CA2's (not trusted by Redis).
ctl cert server --ca-dir "$CA" --ca db-client --host localhost --out "$T/direct"
ctl cert server --ca-dir "$CA2" --ca db-client --host localhost --out "$T/direct-bad"

# dt NAME ARGS...: redis-cli over TLS straight to redis NAME.
dt() {
    local name=$1
    shift
    tls_cli "${RD_REDIS_PORT[$name]}" "$T/direct" "${SRVCA[$name]}" "$@"
}
for r in good untrusted other; do
    assert_eq PONG "$(dt "$r" PING 2>&1)" "PING straight to redis $r"
done
# Redis itself refuses client certificates it does not trust.
out=$(tls_cli "${RD_REDIS_PORT[good]}" "$T/direct-bad" "$CA/db-ca.crt" PING 2>&1)
[ "$out" != PONG ] || fail "redis accepts a client certificate from an untrusted CA (test setup)"
out=$(tls_cli "${RD_REDIS_PORT[good]}" - "$CA/db-ca.crt" PING 2>&1)
[ "$out" != PONG ] || fail "redis accepts clients without a certificate (test setup)"

# --- one plaintext listener per database ---------------------------------
declare -A LPORT=()
DBS=
LISTEN=
# db NAME REDIS TLS-SETTINGS: a database at redis REDIS with a listener of
# its own (plaintext: this test is about the upstream side).
db() {
    local port
    if [ "$1" = full_good ]; then
        port=$RD_PORT
    else
        port=$(free_port) || fail "no free port"
    fi
    LPORT[$1]=$port
    DBS+="${DBS:+,
}  { name = \"$1\"; uri = \"rediss://127.0.0.1:${RD_REDIS_PORT[$2]}\"; connect_timeout = \"2s\";
    tls = { $3 }; }"
    LISTEN+="${LISTEN:+,
}  { address = \"127.0.0.1:$port\"; database = \"$1\"; tls = false; }"
}
db full_good           good      'mode = "verify-full";'
db ca_good             good      'mode = "verify-ca";'
db full_untrusted      untrusted 'mode = "verify-full";'
db ca_untrusted        untrusted 'mode = "verify-ca";'
db insecure_untrusted  untrusted 'mode = "insecure";'
db full_own_ca         untrusted "ca_cert_file = \"$CA2/db-ca.crt\";"
db full_other          other     ''
db ca_other            other     'mode = "verify-ca";'
db insecure_other      other     'mode = "insecure";'
db full_other_named    other     'server_name = "otherhost";'
db full_other_wrong    other     'server_name = "localhost";'
db static_good         good      "certificate = \"$T/direct.crt\"; certificate_key = \"$T/direct.key\";"
db static_bad          good      "certificate = \"$T/direct-bad.crt\"; certificate_key = \"$T/direct-bad.key\";"

# upstream_conf TTL WORKERS LOG: the configuration.
upstream_conf() {
    cat <<EOF
# redoubt test configuration for $RD_TEST
worker_processes = $2;
pid_file = "$T/redoubt.pid";
worker_shutdown_timeout = "10s";
error_log = { path = "$3"; level = "debug"; };
upstream_tls = { ca_cert = "$CA/db-client-ca.crt"; ca_key = "$CA/db-client-ca.key";
                 server_ca = "$CA/db-ca.crt"; cert_ttl = "$1"; };
listen = (
$LISTEN
);
databases = (
$DBS
);
EOF
}
CONF=$T/redoubt.conf
LOG=$T/error.log
upstream_conf 1h "$RD_WORKERS" "$LOG" > "$CONF"
out=$("$REDOUBT" -t -c "$CONF" 2>&1) || fail "-t on the upstream TLS config: $out"
rd_start "$CONF"

# via NAME ARGS...: redis-cli to the listener of database NAME.
via() {
    local name=$1
    shift
    timeout 10 redis-cli -h 127.0.0.1 -p "${LPORT[$name]}" "$@"
}

# accepted DB REDIS: a session to database DB reaches redis REDIS.
accepted() {
    local key=key-$1
    assert_eq PONG "$(via "$1" PING 2>&1)" "PING through $1"
    assert_eq OK "$(via "$1" SET "$key" "$1" 2>&1)" "SET through $1"
    assert_eq "$1" "$(dt "$2" GET "$key" 2>&1)" "the value written through $1 in redis $2"
    assert_eq "$1" "$(via "$1" GET "$key" 2>&1)" "GET through $1"
}

# refused DB REDIS REASON: the command gets the upstream error with
# REASON, and nothing reaches redis REDIS.
refused() {
    local key=key-$1 out
    out=$(via "$1" SET "$key" "$1" 2>&1)
    assert_prefix "ERR redoubt: upstream unavailable: $3" "$out" "SET through $1"
    note "$1: $out"
    assert_eq 0 "$(dt "$2" EXISTS "$key" 2>&1)" "$1: the command must not reach redis $2"
    # The session stays usable for the error replies, and the next
    # session is refused the same way.
    out=$(via "$1" PING 2>&1)
    assert_prefix "ERR redoubt: upstream unavailable: $3" "$out" "PING through $1"
}

accepted full_good good
accepted ca_good good
grep -qF 'minted a client certificate for database user "default"' "$LOG" ||
    fail "the error log does not say a client certificate was minted for \"default\""

# An untrusted CA: refused when verifying, accepted when not.
UNTRUSTED="server certificate refused: (unable to get local issuer certificate|self-signed certificate in certificate chain)"
for d in full_untrusted ca_untrusted; do
    out=$(via "$d" SET "key-$d" 1 2>&1)
    [[ $out =~ ^"ERR redoubt: upstream unavailable: "$UNTRUSTED ]] ||
        fail "$d: expected 'ERR redoubt: upstream unavailable: $UNTRUSTED', got '$out'"
    note "$d: $out"
    assert_eq 0 "$(dt untrusted EXISTS "key-$d" 2>&1)" "$d: the command must not reach redis"
done
accepted insecure_untrusted untrusted
# Said at start-up (on stderr, before the error log is open) or on reload.
cat "$LOG" "$RD_STDERR" | grep -q 'database "insecure_untrusted": tls.mode = "insecure"' ||
    fail "no warning about tls.mode = \"insecure\" for insecure_untrusted"
accepted full_own_ca untrusted

# A host-name mismatch: refused by verify-full only.
refused full_other other "server certificate refused: IP address mismatch"
accepted ca_other other
accepted insecure_other other
accepted full_other_named other
refused full_other_wrong other "server certificate refused: hostname mismatch"

# Static client certificates instead of minted ones.
accepted static_good good
out=$(via static_bad SET key-static_bad 1 2>&1)
assert_prefix "ERR redoubt: upstream" "$out" "SET with a client certificate redis does not trust"
note "static_bad: $out"
assert_eq 0 "$(dt good EXISTS key-static_bad 2>&1)" "static_bad: the command must not reach redis"

# Refusals leave the others alone.
accepted full_good good
rd_stop
assert_eq 0 "$RD_LAST_RC" "redoubt's exit status"

# --- the minted certificate is renewed before it expires -------------------
# One worker, so that every session shares one minted certificate.
RD_WORKERS=1
LOG=$T/error-renew.log
upstream_conf 3s 1 "$LOG" > "$CONF"
rd_start "$CONF"

# An expired client certificate from the db-client CA (redoubtctl signs
# user certificates with DIR/user-ca.*): Redis refuses it, so sessions that
# work after the first minted certificate has expired prove the renewal.
mkdir -p "$T/as-db-client"
cp "$CA/db-client-ca.crt" "$T/as-db-client/user-ca.crt"
cp "$CA/db-client-ca.key" "$T/as-db-client/user-ca.key"
ctl cert user --ca-dir "$T/as-db-client" --user default --roles none \
    --not-before-offset -10s --ttl 5s --out "$T/direct-expired"
out=$(tls_cli "${RD_REDIS_PORT[good]}" "$T/direct-expired" "$CA/db-ca.crt" PING 2>&1)
[ "$out" != PONG ] || fail "redis accepts an expired client certificate (test setup)"

S=
sess_open S || fail "cannot connect to redoubt"
sess_expect "$S" "+OK" SET renew-0 0
t1=$(now_ms)
minted=$(grep -cF 'minted a client certificate for database user "default"' "$LOG")
assert_eq 1 "$minted" "certificates minted for the first session"
grep -qF 'renewed the client certificate' "$LOG" && fail "a certificate was renewed before two thirds of its life"

# After 2.5 s (past two thirds of 3 s) a new upstream connection gets a
# fresh certificate.
until_ms() { while [ "$(now_ms)" -lt "$1" ]; do sleep 0.05; done; }
until_ms $((t1 + 2500))
assert_eq OK "$(rcli SET renew-1 1 2>&1)" "a new session after 2.5 s"
assert_eq 1 "$(dt good GET renew-1 2>&1)" "renew-1 reached redis"
grep -qF 'renewed the client certificate for database user "default"' "$LOG" ||
    fail "no 'renewed the client certificate for database user \"default\"' in the error log after 2.5 s"
assert_eq 1 "$(grep -cF 'minted a client certificate' "$LOG")" "certificates minted (the renewal is no new mint)"

# Past the first certificate's end (it was valid for 3 s from at most t1),
# new sessions keep working, renewal after renewal.
until_ms $((t1 + 4500))
i=2
while [ "$(now_ms)" -lt $((t1 + 8500)) ]; do
    assert_eq OK "$(rcli SET "renew-$i" "$i" 2>&1)" "a new session $(( ($(now_ms) - t1) / 1000 )) s after the first"
    assert_eq "$i" "$(dt good GET "renew-$i" 2>&1)" "renew-$i reached redis"
    i=$((i + 1))
    sleep 0.3
done
renewed=$(grep -cF 'renewed the client certificate for database user "default"' "$LOG")
[ "$renewed" -ge 2 ] || fail "expected at least 2 renewals in 8.5 s with cert_ttl = 3s, got $renewed"
note "$((i - 2)) sessions after the first certificate expired; $renewed renewals"

# The first session's upstream connection was made with the first
# certificate; TLS checked it once, at the handshake.
sess_expect "$S" "0" GET renew-0
sess_close "$S"
rd_stop
assert_eq 0 "$RD_LAST_RC" "redoubt's exit status"
pass
