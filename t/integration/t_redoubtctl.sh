#!/bin/bash
# t_redoubtctl: every redoubtctl command and its errors, on real files in
# the test's temp dir, checked with openssl(1): ca init (ECDSA and RSA,
# modes, refusal to overwrite, --force), ca export, cert server (SANs,
# both EKUs, chain to the db CA only), cert user (identity, TTL, chain to
# the user CA only, expired and not yet valid with --not-before-offset),
# cert show, and the one-line errors with exit status 1.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
rd_init
need openssl sha256sum stat date
: "${REDOUBTCTL:=$RD_BUILDDIR/redoubtctl}"
[ -x "$REDOUBTCTL" ] || fail "redoubtctl binary not found at $REDOUBTCTL (is it built?)"
umask 022

# --- helpers -----------------------------------------------------------

# ok WHAT ARGS...: redoubtctl succeeds, says nothing on stderr; its
# stdout is in $OUT.
ok() {
    local what=$1 rc; shift
    OUT=$("$REDOUBTCTL" "$@" 2> "$T/ctl.err"); rc=$?
    [ "$rc" -eq 0 ] || fail "$what: exit status $rc: $(cat "$T/ctl.err")"
    [ -s "$T/ctl.err" ] && fail "$what: unexpected stderr: $(cat "$T/ctl.err")"
    return 0
}

# refused WHAT NEEDLE ARGS...: redoubtctl exits 1 with nothing on stdout
# and exactly one line on stderr, "redoubtctl: ...NEEDLE...".
refused() {
    local what=$1 needle=$2 rc out err; shift 2
    out=$("$REDOUBTCTL" "$@" 2> "$T/ctl.err"); rc=$?
    err=$(cat "$T/ctl.err")
    assert_eq 1 "$rc" "$what: exit status (stderr: $err)"
    assert_eq "" "$out" "$what: stdout"
    assert_eq 1 "$(wc -l < "$T/ctl.err")" "$what: number of lines on stderr"
    assert_prefix "redoubtctl: " "$err" "$what: error line"
    assert_contains "$needle" "$err" "$what: error line"
}

mode_of() { stat -c %a "$1"; }
text_of() { openssl x509 -in "$1" -noout -text; }
sums() { sha256sum "$@" | awk '{ print $1 }' | tr '\n' ' '; }

# verifies CAFILE CERT [OPTS...]: openssl verify accepts CERT.
verifies() {
    local ca=$1 cert=$2; shift 2
    openssl verify "$@" -CAfile "$ca" "$cert" > "$T/verify.out" 2>&1
}

# seconds between notBefore and notAfter
lifetime() {
    local nb na
    nb=$(openssl x509 -in "$1" -noout -startdate | cut -d= -f2)
    na=$(openssl x509 -in "$1" -noout -enddate | cut -d= -f2)
    echo $(( $(date -u -d "$na" +%s) - $(date -u -d "$nb" +%s) ))
}

# show_field FIELD: the value of "FIELD:" in $OUT (redoubtctl cert show).
show_field() {
    local line
    line=$(grep "^$1:" <<<"$OUT") || fail "cert show: no '$1:' line in: $OUT"
    line=${line#"$1:"}
    echo "${line#"${line%%[! ]*}"}"
}

CA=$T/ca
serials=

# --- the command line --------------------------------------------------

ok "--help" --help
assert_contains "redoubtctl ca init DIR" "$OUT" "--help"
assert_contains "redoubtctl cert user" "$OUT" "--help"
ok "-h" -h
assert_prefix "usage: redoubtctl" "$OUT" "-h"
ok "cert user --help" cert user --help
assert_prefix "usage: redoubtctl" "$OUT" "cert user --help"
ok "-v" -v
[[ $OUT =~ ^redoubtctl\ [0-9]+\.[0-9]+\.[0-9]+ ]] || fail "-v printed '$OUT'"
ok "--version" --version

refused "no command" "missing command"
refused "unknown command" "unknown command 'frobnicate'" frobnicate
refused "ca without a command" "missing command" ca
refused "unknown ca command" "unknown command 'ca rotate'" ca rotate
refused "unknown cert command" "unknown command 'cert revoke'" cert revoke
refused "unknown global option" "unknown option '--bogus'" --bogus
refused "unknown option" "unknown option '--bogus'" ca init "$T/x" --bogus
refused "short option" "unknown option '-f'" ca init "$T/x" -f
refused "option without its value" "--rsa needs a value" ca init "$T/x" --rsa
refused "flag with a value" "--force takes no value" ca init "$T/x" --force=yes
refused "option twice" "--ttl given twice" cert user --ttl 1h --ttl 2h
refused "extra argument" "unexpected argument 'two'" ca init "$T/one" two
refused "ca init without DIR" "missing DIR" ca init
[ -e "$T/x" ] && fail "a refused ca init created its directory"

# --- ca init -----------------------------------------------------------

ok "ca init" ca init "$CA"
assert_contains "user CA: $CA/user-ca.crt" "$OUT" "ca init output"
assert_eq 700 "$(mode_of "$CA")" "mode of a new CA directory"
for ca in user db db-client; do
    crt=$CA/$ca-ca.crt key=$CA/$ca-ca.key
    { [ -f "$crt" ] && [ -f "$key" ]; } || fail "ca init did not write $ca-ca.{crt,key}"
    assert_eq 600 "$(mode_of "$key")" "mode of $ca-ca.key"
    assert_eq 644 "$(mode_of "$crt")" "mode of $ca-ca.crt"
    assert_eq "-----BEGIN PRIVATE KEY-----" "$(head -n 1 "$key")" "$ca-ca.key is an unencrypted PKCS#8 PEM key"
    txt=$(text_of "$crt") || fail "openssl cannot read $crt"
    assert_contains "Subject: CN = redoubt $ca CA" "$txt" "subject of the $ca CA"
    assert_contains "Issuer: CN = redoubt $ca CA" "$txt" "issuer of the $ca CA"
    assert_contains "ASN1 OID: prime256v1" "$txt" "the $ca CA key is ECDSA P-256"
    assert_contains "ecdsa-with-SHA256" "$txt" "signature of the $ca CA"
    grep -A1 "Basic Constraints: critical" <<<"$txt" | grep -q "CA:TRUE" \
        || fail "$ca CA: no critical basicConstraints CA:TRUE"
    grep -A1 "Key Usage: critical" <<<"$txt" | grep -q "Certificate Sign, CRL Sign" \
        || fail "$ca CA: no critical keyUsage keyCertSign, cRLSign"
    assert_contains "Subject Key Identifier" "$txt" "$ca CA has a subjectKeyIdentifier"
    verifies "$crt" "$crt" || fail "$ca CA does not verify as self-signed: $(cat "$T/verify.out")"
    openssl x509 -in "$crt" -noout -checkend $((9 * 365 * 86400)) >/dev/null \
        || fail "$ca CA expires within 9 years"
    openssl x509 -in "$crt" -noout -checkend $((11 * 365 * 86400)) >/dev/null \
        && fail "$ca CA is valid for more than 11 years"
    serial=$(openssl x509 -in "$crt" -noout -serial | cut -d= -f2)
    assert_eq 32 "${#serial}" "length in hex digits of the $ca CA's 128-bit serial ($serial)"
    serials+=" $serial"
    # the key belongs to the certificate
    assert_eq "$(openssl x509 -in "$crt" -noout -pubkey)" "$(openssl pkey -in "$key" -pubout)" \
        "public keys of $ca-ca.crt and $ca-ca.key"
done
# shellcheck disable=SC2086 # one serial a word
[ "$(printf '%s\n' $serials | sort -u | wc -l)" -eq 3 ] || fail "CA serials are not distinct:$serials"

# never overwritten without --force
before=$(sums "$CA"/*)
refused "ca init over an existing CA" "already exists" ca init "$CA"
assert_contains "--force" "$(cat "$T/ctl.err")" "the refusal names --force"
assert_eq "$before" "$(sums "$CA"/*)" "files after a refused ca init"
refused "ca init over an existing CA with --rsa" "already exists" ca init "$CA" --rsa 2048
assert_eq "$before" "$(sums "$CA"/*)" "files after a refused ca init --rsa"
mkdir -m 700 "$T/partial"
echo "not a key" > "$T/partial/db-client-ca.key"
refused "ca init over one existing file" "db-client-ca.key already exists" ca init "$T/partial"
assert_eq 1 "$(find "$T/partial" -type f | wc -l)" "files in the directory after the refusal"

# --force replaces all of them, atomically, with the same modes
cp -a "$CA" "$T/ca-old"
ok "ca init --force" ca init "$CA" --force
for f in user-ca.key user-ca.crt db-ca.key db-ca.crt db-client-ca.key db-client-ca.crt; do
    cmp -s "$CA/$f" "$T/ca-old/$f" && fail "ca init --force did not replace $f"
done
for ca in user db db-client; do
    assert_eq 600 "$(mode_of "$CA/$ca-ca.key")" "mode of $ca-ca.key after --force"
    assert_eq 644 "$(mode_of "$CA/$ca-ca.crt")" "mode of $ca-ca.crt after --force"
done
assert_eq 6 "$(find "$CA" -type f | wc -l)" "files in the CA dir after --force (no temp files left)"

# errors
refused "ca init --rsa 1024" "bad --rsa '1024'" ca init "$T/rsa1024" --rsa 1024
[ -e "$T/rsa1024" ] && fail "ca init --rsa 1024 created its directory"
: > "$T/plainfile"
refused "ca init on a file" "not a directory" ca init "$T/plainfile"
refused "ca init under a missing parent" "cannot create $T/no/such" ca init "$T/no/such"

# --- RSA CAs -----------------------------------------------------------

ok "ca init --rsa 2048" ca init "$T/rsa" --rsa 2048
for ca in user db db-client; do
    assert_contains "Private-Key: (2048 bit" "$(openssl pkey -in "$T/rsa/$ca-ca.key" -noout -text)" "$ca-ca.key is RSA 2048"
    assert_contains "rsaEncryption" "$(text_of "$T/rsa/$ca-ca.crt")" "$ca-ca.crt has an RSA key"
    assert_eq 600 "$(mode_of "$T/rsa/$ca-ca.key")" "mode of the RSA $ca-ca.key"
done
ok "cert server with an RSA CA" cert server --ca-dir "$T/rsa" --host rsa.example --out "$T/rsa-srv"
txt=$(text_of "$T/rsa-srv.crt")
assert_contains "Public-Key: (2048 bit)" "$txt" "server key follows the RSA CA"
assert_contains "Digital Signature, Key Encipherment" "$txt" "keyUsage of an RSA server certificate"
assert_contains "sha256WithRSAEncryption" "$txt" "signature of the RSA server certificate"
verifies "$T/rsa/db-ca.crt" "$T/rsa-srv.crt" || fail "RSA server certificate does not verify: $(cat "$T/verify.out")"
ok "cert user with an RSA CA" cert user --ca-dir "$T/rsa" --user alice --roles access --out "$T/rsa-alice"
assert_contains "Private-Key: (2048 bit" "$(openssl pkey -in "$T/rsa-alice.key" -noout -text)" "user key follows the RSA CA"
verifies "$T/rsa/user-ca.crt" "$T/rsa-alice.crt" || fail "RSA user certificate does not verify: $(cat "$T/verify.out")"
verifies "$CA/user-ca.crt" "$T/rsa-alice.crt" && fail "RSA user certificate verifies against another site's user CA"

# --- ca export ---------------------------------------------------------

for ca in user db db-client; do
    ok "ca export --type $ca" ca export --type "$ca" --dir "$CA"
    assert_eq "$(cat "$CA/$ca-ca.crt")" "$OUT" "ca export --type $ca"
done
REDOUBT_CA_DIR=$CA ok "ca export with \$REDOUBT_CA_DIR" ca export --type db
assert_eq "$(cat "$CA/db-ca.crt")" "$OUT" "ca export from \$REDOUBT_CA_DIR"
OUT=$(cd "$CA" && env -u REDOUBT_CA_DIR "$REDOUBTCTL" ca export --type=user) || fail "ca export from the current directory"
assert_eq "$(cat "$CA/user-ca.crt")" "$OUT" "ca export from the current directory"
# the bundle Redis trusts (the reference guide's pem-bundle.cas): the db CA
# for the other nodes, the db-client CA for redoubt; never the user CA
{ "$REDOUBTCTL" ca export --type db --dir "$CA" && "$REDOUBTCTL" ca export --type db-client --dir "$CA"; } > "$T/bundle.cas" \
    || fail "ca export into a bundle"
assert_eq "$(cat "$CA/db-ca.crt" "$CA/db-client-ca.crt")" "$(cat "$T/bundle.cas")" "the bundle of exported CAs"

refused "ca export without --type" "--type is required" ca export --dir "$CA"
refused "ca export --type bogus" "bad --type 'bogus'" ca export --type bogus --dir "$CA"
refused "ca export from a missing dir" "cannot use CA directory $T/nowhere" ca export --type user --dir "$T/nowhere"
refused "ca export of a missing CA" "cannot read user CA certificate $T/partial/user-ca.crt" ca export --type user --dir "$T/partial"
mkdir "$T/junk"
echo "garbage" > "$T/junk/db-ca.crt"
refused "ca export of a corrupt CA" "not a PEM certificate" ca export --type db --dir "$T/junk"

# --- cert server -------------------------------------------------------

ok "cert server" cert server --ca-dir "$CA" --host redis-1.example,localhost,127.0.0.1,::1,'[fe80::2]' --out "$T/srv"
assert_contains "$T/srv.crt" "$OUT" "cert server output"
assert_eq 600 "$(mode_of "$T/srv.key")" "mode of the server key"
assert_eq 644 "$(mode_of "$T/srv.crt")" "mode of the server certificate"
txt=$(text_of "$T/srv.crt")
assert_contains "Subject: CN = redis-1.example" "$txt" "CN of the server certificate is the first host"
assert_contains "Issuer: CN = redoubt db CA" "$txt" "issuer of the server certificate"
assert_contains "DNS:redis-1.example, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, IP Address:FE80:0:0:0:0:0:0:2" \
    "$txt" "subjectAltName of the server certificate"
assert_contains "TLS Web Server Authentication, TLS Web Client Authentication" "$txt" "both EKUs"
grep -A1 "Basic Constraints: critical" <<<"$txt" | grep -q "CA:FALSE" || fail "server certificate: no critical CA:FALSE"
grep -A1 "Key Usage: critical" <<<"$txt" | grep -q "Digital Signature" || fail "server certificate: no critical keyUsage digitalSignature"
assert_contains "Authority Key Identifier" "$txt" "server certificate has an authorityKeyIdentifier"
assert_contains "ASN1 OID: prime256v1" "$txt" "server key is P-256 like the CA"
assert_eq "$(openssl x509 -in "$T/srv.crt" -noout -pubkey)" "$(openssl pkey -in "$T/srv.key" -pubout)" "server key matches its certificate"
verifies "$CA/db-ca.crt" "$T/srv.crt" -purpose sslserver || fail "server certificate does not verify against the db CA for serverAuth: $(cat "$T/verify.out")"
verifies "$CA/db-ca.crt" "$T/srv.crt" -purpose sslclient || fail "server certificate does not verify against the db CA for clientAuth: $(cat "$T/verify.out")"
verifies "$CA/user-ca.crt" "$T/srv.crt" && fail "server certificate verifies against the user CA"
verifies "$CA/db-client-ca.crt" "$T/srv.crt" && fail "server certificate verifies against the db-client CA"
verifies "$T/ca-old/db-ca.crt" "$T/srv.crt" && fail "server certificate verifies against the replaced db CA"
verifies "$CA/db-ca.crt" "$T/srv.crt" -verify_hostname redis-1.example || fail "host name redis-1.example does not match"
verifies "$CA/db-ca.crt" "$T/srv.crt" -verify_ip 127.0.0.1 || fail "IP 127.0.0.1 does not match"
verifies "$CA/db-ca.crt" "$T/srv.crt" -verify_ip ::1 || fail "IP ::1 does not match"
verifies "$CA/db-ca.crt" "$T/srv.crt" -verify_hostname other.example && fail "host name other.example matches"
# default lifetime 8760h (+ the minute of clock skew)
assert_eq $((8760 * 3600 + 60)) "$(lifetime "$T/srv.crt")" "lifetime of a server certificate"

# a new one replaces the old files
old=$(sums "$T/srv.key" "$T/srv.crt")
ok "cert server again, --ttl 1h, --ca user" cert server --ca-dir="$CA" --host=127.0.0.1 --out "$T/srv" --ttl 1h --ca user
[ "$old" = "$(sums "$T/srv.key" "$T/srv.crt")" ] && fail "cert server did not replace the files"
assert_eq 600 "$(mode_of "$T/srv.key")" "mode of the replaced server key"
assert_eq $((3600 + 60)) "$(lifetime "$T/srv.crt")" "lifetime with --ttl 1h"
assert_contains "Subject: CN = 127.0.0.1" "$(text_of "$T/srv.crt")" "CN of an IP-only certificate"
verifies "$CA/user-ca.crt" "$T/srv.crt" || fail "--ca user: does not verify against the user CA: $(cat "$T/verify.out")"
verifies "$CA/db-ca.crt" "$T/srv.crt" && fail "--ca user: verifies against the db CA"
ok "cert server --ca db-client" cert server --ca-dir "$CA" --host redoubt.example --ca db-client --out "$T/dbc"
verifies "$CA/db-client-ca.crt" "$T/dbc.crt" -purpose sslclient || fail "--ca db-client: does not verify: $(cat "$T/verify.out")"
REDOUBT_CA_DIR=$CA ok "cert server with \$REDOUBT_CA_DIR" cert server --host a.example --out "$T/env-srv"
verifies "$CA/db-ca.crt" "$T/env-srv.crt" || fail "cert server with \$REDOUBT_CA_DIR: does not verify"

refused "bad host" "bad host 'bad_host!'" cert server --ca-dir "$CA" --host ok.example,bad_host! --out "$T/bad"
refused "bad host: an empty name" "empty value" cert server --ca-dir "$CA" --host a.example,,b.example --out "$T/bad"
refused "bad host: a broken IP" "bad host '10.0.0.300'" cert server --ca-dir "$CA" --host 10.0.0.300 --out "$T/bad"
refused "bad host: a leading dash" "bad host '-x.example'" cert server --ca-dir "$CA" --host -x.example --out "$T/bad"
refused "bad host: bracketed IPv4" "not an IPv6 address" cert server --ca-dir "$CA" --host '[127.0.0.1]' --out "$T/bad"
refused "bad host: too long a label" "bad host" cert server --ca-dir "$CA" --host "$(printf 'a%.0s' {1..64}).example" --out "$T/bad"
refused "cert server without --host" "--host is required" cert server --ca-dir "$CA" --out "$T/bad"
refused "cert server without --out" "--out PREFIX is required" cert server --ca-dir "$CA" --host a.example
refused "cert server, missing CA dir" "cannot use CA directory $T/nowhere" cert server --ca-dir "$T/nowhere" --host a.example --out "$T/bad"
refused "cert server, CA dir without the db CA" "cannot read db CA certificate" cert server --ca-dir "$T/partial" --host a.example --out "$T/bad"
refused "cert server, bad TTL" "bad --ttl '8x'" cert server --ca-dir "$CA" --host a.example --ttl 8x --out "$T/bad"
refused "cert server, zero TTL" "bad --ttl '0'" cert server --ca-dir "$CA" --host a.example --ttl 0 --out "$T/bad"
refused "cert server, TTL too long" "at most 3650d" cert server --ca-dir "$CA" --host a.example --ttl 4000d --out "$T/bad"
refused "cert server, bad --ca" "bad --ca 'bogus'" cert server --ca-dir "$CA" --host a.example --ca bogus --out "$T/bad"
refused "cert server, unwritable output" "cannot create $T/no/dir/srv.key" cert server --ca-dir "$CA" --host a.example --out "$T/no/dir/srv"
ls "$T"/bad* >/dev/null 2>&1 && fail "a refused cert server left files"

# a CA key that does not belong to the CA certificate
mkdir -m 700 "$T/mixed"
cp "$CA/db-ca.crt" "$T/mixed/db-ca.crt"
cp "$CA/user-ca.key" "$T/mixed/db-ca.key"
refused "cert server, mismatched CA key" "does not match" cert server --ca-dir "$T/mixed" --host a.example --out "$T/bad"
# a CA key file that is not a key
cp "$CA/db-ca.crt" "$T/mixed/user-ca.crt"
echo "-----BEGIN PRIVATE KEY-----" > "$T/mixed/user-ca.key"
refused "cert user, corrupt CA key" "not an unencrypted PEM private key" cert user --ca-dir "$T/mixed" --user a --roles r --out "$T/bad"
# a CA "certificate" that is a leaf
cp "$T/env-srv.crt" "$T/mixed/db-client-ca.crt"
cp "$T/env-srv.key" "$T/mixed/db-client-ca.key"
refused "cert server, leaf as CA" "is not a CA certificate" cert server --ca-dir "$T/mixed" --ca db-client --host a.example --out "$T/bad"

# --- cert user ---------------------------------------------------------

ok "cert user" cert user --ca-dir "$CA" --user alice --roles access,dev --db-users alice --out "$T/alice"
assert_eq 600 "$(mode_of "$T/alice.key")" "mode of the user key"
txt=$(text_of "$T/alice.crt")
assert_contains "Issuer: CN = redoubt user CA" "$txt" "issuer of the user certificate"
assert_contains "Subject: CN = alice, 2.25.93414321743527038502281803679313111139.1 = access, 2.25.93414321743527038502281803679313111139.1 = dev, 2.25.93414321743527038502281803679313111139.2 = alice" \
    "$txt" "subject of the user certificate (the identity encoding)"
grep -A1 "Extended Key Usage" <<<"$txt" | tail -n 1 | grep -qx " *TLS Web Client Authentication" \
    || fail "user certificate: EKU is not clientAuth only: $(grep -A1 'Extended Key Usage' <<<"$txt")"
grep -A1 "Basic Constraints: critical" <<<"$txt" | grep -q "CA:FALSE" || fail "user certificate: no critical CA:FALSE"
assert_contains "Authority Key Identifier" "$txt" "user certificate has an authorityKeyIdentifier"
assert_eq $((8 * 3600 + 60)) "$(lifetime "$T/alice.crt")" "default lifetime of a user certificate (8h and the skew minute)"
verifies "$CA/user-ca.crt" "$T/alice.crt" -purpose sslclient || fail "user certificate does not verify against the user CA: $(cat "$T/verify.out")"
verifies "$CA/db-ca.crt" "$T/alice.crt" && fail "user certificate verifies against the db CA"
verifies "$CA/db-client-ca.crt" "$T/alice.crt" && fail "user certificate verifies against the db-client CA"
verifies "$CA/user-ca.crt" "$T/alice.crt" -purpose sslserver && fail "user certificate is good for serverAuth"
assert_eq "$(openssl x509 -in "$T/alice.crt" -noout -pubkey)" "$(openssl pkey -in "$T/alice.key" -pubout)" "user key matches its certificate"

ok "cert show" cert show "$T/alice.crt"
assert_eq alice "$(show_field user)" "cert show: user"
assert_eq "access, dev" "$(show_field roles)" "cert show: roles"
assert_eq alice "$(show_field db_users)" "cert show: db_users"
assert_eq - "$(show_field db_names)" "cert show: db_names"
assert_eq - "$(show_field 'route db')" "cert show: route db"
assert_eq - "$(show_field 'route db user')" "cert show: route db user"
assert_eq "redoubt user CA" "$(show_field issuer)" "cert show: issuer"
assert_eq valid "$(show_field status)" "cert show: status"
nb=$(show_field 'not before') na=$(show_field 'not after')
[[ $nb =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$ ]] || fail "cert show: not before '$nb' is not RFC 3339 UTC"
[[ $na =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$ ]] || fail "cert show: not after '$na' is not RFC 3339 UTC"
assert_eq "$(date -u -d "$(openssl x509 -in "$T/alice.crt" -noout -enddate | cut -d= -f2)" +%Y-%m-%dT%H:%M:%SZ)" "$na" "cert show: not after"
assert_eq $((8 * 3600 + 60)) $(( $(date -u -d "$na" +%s) - $(date -u -d "$nb" +%s) )) "cert show: validity"

# traits with '*', a route, a TTL, UTF-8
ok "cert user with a route" cert user --ca-dir "$CA" --user 'jürgen' --roles access --db-users '*' \
    --db-names 'example-redis,cache' --db example-redis --db-user alice --ttl 30m --out "$T/route"
assert_eq $((1800 + 60)) "$(lifetime "$T/route.crt")" "lifetime with --ttl 30m"
ok "cert show with a route" cert show "$T/route.crt"
assert_eq 'jürgen' "$(show_field user)" "cert show: a UTF-8 user"
assert_eq '*' "$(show_field db_users)" "cert show: db_users *"
assert_eq 'example-redis, cache' "$(show_field db_names)" "cert show: db_names"
assert_eq example-redis "$(show_field 'route db')" "cert show: route db"
assert_eq alice "$(show_field 'route db user')" "cert show: route db user"
openssl asn1parse -in "$T/route.crt" | grep -A1 ':commonName$' | grep -q 'prim: UTF8STRING *:jürgen$' \
    || fail "the user is not a UTF8String: $(openssl asn1parse -in "$T/route.crt" | grep -A1 commonName)"
ok "cert user --ttl 366d" cert user --ca-dir "$CA" --user alice --roles access --ttl 366d --out "$T/long"
assert_eq $((366 * 86400 + 60)) "$(lifetime "$T/long.crt")" "lifetime with --ttl 366d"
ok "cert user --ttl 1d, options with =" cert user --ca-dir="$CA" --user=alice --roles=access --ttl=1d --out="$T/day"
assert_eq $((86400 + 60)) "$(lifetime "$T/day.crt")" "lifetime with --ttl 1d"

# expired and not yet valid, for tests
ok "cert user, expired" cert user --ca-dir "$CA" --user alice --roles access --not-before-offset -10h --out "$T/expired"
ok "cert show of an expired certificate" cert show "$T/expired.crt"
assert_eq expired "$(show_field status)" "cert show: status of an expired certificate"
verifies "$CA/user-ca.crt" "$T/expired.crt" && fail "an expired certificate verifies"
assert_contains "certificate has expired" "$(cat "$T/verify.out")" "openssl verify of the expired certificate"
ok "cert user, not yet valid" cert user --ca-dir "$CA" --user alice --roles access --not-before-offset +1h --out "$T/future"
ok "cert show of a not yet valid certificate" cert show "$T/future.crt"
assert_eq "not yet valid" "$(show_field status)" "cert show: status of a future certificate"
verifies "$CA/user-ca.crt" "$T/future.crt" && fail "a not yet valid certificate verifies"
assert_contains "certificate is not yet valid" "$(cat "$T/verify.out")" "openssl verify of the future certificate"

refused "cert user, bad TTL" "bad --ttl 'eight'" cert user --ca-dir "$CA" --user alice --roles access --ttl eight --out "$T/bad"
refused "cert user, negative TTL" "bad --ttl '-8h'" cert user --ca-dir "$CA" --user alice --roles access --ttl=-8h --out "$T/bad"
refused "cert user, TTL too long" "at most 366d" cert user --ca-dir "$CA" --user alice --roles access --ttl 367d --out "$T/bad"
refused "cert user, bad offset" "bad --not-before-offset '-10x'" cert user --ca-dir "$CA" --user alice --roles access --not-before-offset -10x --out "$T/bad"
refused "cert user without --user" "--user is required" cert user --ca-dir "$CA" --roles access --out "$T/bad"
refused "cert user without --roles" "--roles is required" cert user --ca-dir "$CA" --user alice --out "$T/bad"
refused "cert user without --out" "--out PREFIX is required" cert user --ca-dir "$CA" --user alice --roles access
refused "cert user, empty role" "bad --roles 'access,': empty value" cert user --ca-dir "$CA" --user alice --roles access, --out "$T/bad"
refused "cert user, empty --db" "must not be empty" cert user --ca-dir "$CA" --user alice --roles access --db= --out "$T/bad"
refused "cert user, invalid UTF-8" "not valid UTF-8" cert user --ca-dir "$CA" --user $'al\xffice' --roles access --out "$T/bad"
refused "cert user, too many roles" "more than 256 values" cert user --ca-dir "$CA" --user alice \
    --roles "$(printf 'r%d,' {1..257} | sed 's/,$//')" --out "$T/bad"
refused "cert user, missing CA dir" "cannot use CA directory $T/nowhere" cert user --ca-dir "$T/nowhere" --user alice --roles access --out "$T/bad"
refused "cert user, CA dir without the user CA" "cannot read user CA certificate" cert user --ca-dir "$T/partial" --user alice --roles access --out "$T/bad"
ls "$T"/bad* >/dev/null 2>&1 && fail "a refused cert user left files"

# --- cert show ---------------------------------------------------------

ok "cert show of a server certificate" cert show "$T/env-srv.crt"
assert_eq a.example "$(show_field user)" "cert show: CN of a server certificate"
assert_eq "redoubt db CA" "$(show_field issuer)" "cert show: issuer of a server certificate"
openssl x509 -in "$T/alice.crt" -outform DER -out "$T/alice.der" || fail "openssl x509 -outform DER"
ok "cert show of a DER file" cert show "$T/alice.der"
assert_eq alice "$(show_field user)" "cert show (DER): user"
# a certificate without a CN, made by openssl itself
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/O=No Name" \
    -days 1 -keyout "$T/nocn.key" -out "$T/nocn.crt" >/dev/null 2>&1 || fail "openssl req"
refused "cert show without a CN" "certificate has no user (CN)" cert show "$T/nocn.crt"
refused "cert show of a missing file" "cannot read certificate $T/none.crt: No such file or directory" cert show "$T/none.crt"
refused "cert show of a key" "not a certificate" cert show "$T/alice.key"
refused "cert show without FILE" "missing FILE" cert show
refused "cert show with two files" "unexpected argument" cert show "$T/alice.crt" "$T/route.crt"

pass
