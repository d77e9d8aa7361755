#!/bin/bash
# t_basic: round trips through redoubt to one redis-server: SET/GET,
# binary-safe values, an error reply passed through, a 16 MiB value, QUIT,
# and the command line (-t, -v).
# shellcheck disable=SC2016,SC2119 # RESP literals; rd_start's CONF is optional
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
rd_init
need sha256sum cmp

redis_start a
rd_conf "${RD_REDIS_PORT[a]}" > "$T/redoubt.conf"
rd_start

# --- SET/GET round trip ------------------------------------------------
assert_eq OK "$(rcli SET greeting hello)" "SET through redoubt"
assert_eq hello "$(rcli GET greeting)" "GET through redoubt"
assert_eq hello "$(dcli a GET greeting)" "the value reached redis"
dcli a SET direct-key from-redis >/dev/null
assert_eq from-redis "$(rcli GET direct-key)" "GET of a key set directly in redis"
assert_eq "" "$(rcli GET no-such-key)" "GET of a missing key (nil)"
assert_eq PONG "$(rcli PING)" "PING"

# --- binary-safe values ------------------------------------------------
bin=$T/all-bytes
{
    for ((i = 0; i < 256; i++)); do
        # shellcheck disable=SC2059 # the format is the byte
        printf "\\x$(printf %02x "$i")"
    done
    printf '\r\n\0\r\n\0\0\n\r$-1\r\n*3\r\n'
    for ((i = 255; i >= 0; i--)); do
        # shellcheck disable=SC2059
        printf "\\x$(printf %02x "$i")"
    done
} > "$bin"
assert_eq 530 "$(wc -c < "$bin")" "size of the binary test value"

assert_eq OK "$(rcli -x SET bin1 < "$bin")" "SET of all 256 byte values through redoubt"
dcli a GET bin1 | head -c -1 > "$T/bin1.direct"       # redis-cli adds "\n"
cmp "$bin" "$T/bin1.direct" || fail "binary value written through redoubt and read directly differs"
rcli GET bin1 | head -c -1 > "$T/bin1.via"
cmp "$bin" "$T/bin1.via" || fail "binary value written and read through redoubt differs"

assert_eq OK "$(dcli a -x SET bin2 < "$bin")" "SET of the binary value directly"
rcli GET bin2 | head -c -1 > "$T/bin2.via"
cmp "$bin" "$T/bin2.via" || fail "binary value written directly and read through redoubt differs"
assert_eq 530 "$(rcli STRLEN bin2)" "STRLEN of the binary value through redoubt"

# Binary keys too, in raw RESP.
printf '*3\r\n$3\r\nSET\r\n$5\r\nk\0\r\n\xff\r\n$3\r\nv\0v\r\n*2\r\n$3\r\nGET\r\n$5\r\nk\0\r\n\xff\r\n*1\r\n$4\r\nQUIT\r\n' > "$T/binkey.in"
raw_exchange "$RD_PORT" "$T/binkey.in" "$T/binkey.out" 10 || fail "raw exchange with a binary key did not end with QUIT"
printf '+OK\r\n$3\r\nv\0v\r\n+OK\r\n' > "$T/binkey.want"
cmp "$T/binkey.want" "$T/binkey.out" || fail "binary key round trip: got $(od -c "$T/binkey.out" | head -5)"

# --- an error reply passed through -------------------------------------
rcli SET str abc >/dev/null
want=$(dcli a INCR str)
assert_prefix "ERR value is not an integer" "$want" "redis's own reply to INCR on a string"
assert_eq "$want" "$(rcli INCR str)" "INCR on a string through redoubt"
want=$(dcli a LPUSH str x)
assert_prefix WRONGTYPE "$want" "redis's own reply to LPUSH on a string"
assert_eq "$want" "$(rcli LPUSH str x)" "WRONGTYPE error through redoubt"
S=
sess_open S || fail "cannot connect to redoubt"
sess_expect "$S" "-$(dcli a INCR str)" INCR str
sess_expect "$S" ":1" INCR counter
sess_close "$S"

# --- a 16 MiB value ----------------------------------------------------
big=$T/big
head -c $((16 * 1024 * 1024)) /dev/urandom > "$big"
sum=$(sha256sum < "$big")
assert_eq OK "$(rcli -x SET big < "$big")" "SET of a 16 MiB value through redoubt"
assert_eq $((16 * 1024 * 1024)) "$(dcli a STRLEN big)" "STRLEN of the 16 MiB value in redis"
assert_eq "$sum" "$(dcli a GET big | head -c -1 | sha256sum)" "16 MiB value read directly"
assert_eq "$sum" "$(rcli GET big | head -c -1 | sha256sum)" "16 MiB value read through redoubt"
dcli a -x SET big2 < "$big" >/dev/null
assert_eq "$sum" "$(rcli GET big2 | head -c -1 | sha256sum)" "16 MiB value set directly, read through redoubt"
rm -f "$big"

# --- QUIT --------------------------------------------------------------
sess_open S || fail "cannot connect to redoubt"
sess_expect "$S" "+PONG" PING
sess_expect "$S" "+OK" QUIT
sess_wait_closed "$S" 5 || fail "connection still open 5 s after QUIT"
sess_close "$S"

# QUIT in a pipeline: replies before it, +OK, then close; nothing after.
printf 'PING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\nQUIT\r\nPING\r\n' > "$T/quit.in"
raw_exchange "$RD_PORT" "$T/quit.in" "$T/quit.out" 10 || fail "connection not closed after a pipelined QUIT"
printf '+PONG\r\n$2\r\nhi\r\n+OK\r\n' > "$T/quit.want"
cmp "$T/quit.want" "$T/quit.out" || fail "pipelined QUIT: got '$(tr '\r\n' '~|' < "$T/quit.out")'"

assert_eq PONG "$(rcli PING)" "PING after the QUIT tests"

# --- redoubt -t --------------------------------------------------------
out=$("$REDOUBT" -t -c "$T/redoubt.conf" 2>&1)
rc=$?
[ "$rc" -eq 0 ] || fail "-t on a good config exited $rc: $out"
assert_contains "test is successful" "$out" "-t on a good config"

# Line 8 of this file is the unknown directive.
rd_conf "${RD_REDIS_PORT[a]}" 'bogus_directive = 1;' > "$T/bad1.conf"
line=$(grep -n bogus_directive "$T/bad1.conf" | cut -d: -f1)
out=$("$REDOUBT" -t -c "$T/bad1.conf" 2>&1)
rc=$?
[ "$rc" -ne 0 ] || fail "-t on a config with an unknown directive exited 0: $out"
assert_contains "bad1.conf:$line:" "$out" "-t message names file:line of the unknown directive"
assert_contains "bogus_directive" "$out" "-t message names the unknown directive"

RD_SHUTDOWN_TIMEOUT="10 parsecs" rd_conf "${RD_REDIS_PORT[a]}" > "$T/bad2.conf"
line=$(grep -n worker_shutdown_timeout "$T/bad2.conf" | cut -d: -f1)
out=$("$REDOUBT" -t -c "$T/bad2.conf" 2>&1)
rc=$?
[ "$rc" -ne 0 ] || fail "-t on a config with a bad duration exited 0: $out"
assert_contains "bad2.conf:$line:" "$out" "-t message names file:line of the bad duration"
assert_contains "worker_shutdown_timeout" "$out" "-t message names the directive with the bad duration"

# Wrong type, and a missing required setting.
rd_conf "${RD_REDIS_PORT[a]}" 'limits = { max_array_length = "many"; };' > "$T/bad3.conf"
line=$(grep -n max_array_length "$T/bad3.conf" | cut -d: -f1)
out=$("$REDOUBT" -t -c "$T/bad3.conf" 2>&1)
rc=$?
[ "$rc" -ne 0 ] || fail "-t on a config with a wrong type exited 0: $out"
assert_contains "bad3.conf:$line:" "$out" "-t message names file:line of the wrong type"

out=$("$REDOUBT" -t -c "$T/no-such-file.conf" 2>&1)
rc=$?
[ "$rc" -ne 0 ] || fail "-t on a missing file exited 0: $out"

# The annotated sample must be accepted as shipped, with no certificate
# (a fresh install: its TLS parts are commented out). With the lines
# between its "# [TLS]" and "# [/TLS]" marks uncommented, as it tells the
# operator to do, it must be accepted next to the CAs and the certificate
# it names (made here with redoubtctl); without them -t must say which
# file is missing.
mkdir -p "$T/sample"
cp "$RD_SRCDIR/conf/redoubt.conf" "$T/sample/redoubt.conf"
out=$("$REDOUBT" -t -c "$T/sample/redoubt.conf" 2>&1)
rc=$?
[ "$rc" -eq 0 ] || fail "-t on conf/redoubt.conf as shipped exited $rc: $out"
awk '/^# \[TLS\]/ { tls = 1; print; next } /^# \[\/TLS\]/ { tls = 0; print; next }
     tls { if (!sub(/^#/, "")) { print "not commented out: " $0 > "/dev/stderr"; exit 1 } }
     { print }' "$RD_SRCDIR/conf/redoubt.conf" > "$T/sample/redoubt.conf" ||
    fail "the sample's [TLS] parts"
grep -q '^tls = {' "$T/sample/redoubt.conf" || fail "no tls group between the sample's [TLS] marks"
out=$("$REDOUBT" -t -c "$T/sample/redoubt.conf" 2>&1)
rc=$?
[ "$rc" -ne 0 ] || fail "-t on the sample with TLS on and without its certificates exited 0"
assert_contains "redoubt.crt" "$out" "-t names the missing certificate"
"$REDOUBTCTL" ca init "$T/sample" >/dev/null 2>&1 || fail "redoubtctl ca init"
"$REDOUBTCTL" cert server --ca-dir "$T/sample" --ca user --host localhost \
    --out "$T/sample/redoubt" >/dev/null 2>&1 || fail "redoubtctl cert server"
out=$("$REDOUBT" -t -c "$T/sample/redoubt.conf" 2>&1)
rc=$?
[ "$rc" -eq 0 ] || fail "-t on conf/redoubt.conf with TLS on exited $rc: $out"

# The running server was not disturbed by any of this.
assert_eq hello "$(rcli GET greeting)" "GET after the -t runs"

# --- redoubt -v --------------------------------------------------------
out=$("$REDOUBT" -v 2>&1)
rc=$?
[ "$rc" -eq 0 ] || fail "-v exited $rc: $out"
[[ $out =~ [0-9]+\.[0-9]+(\.[0-9]+)? ]] || fail "-v printed no version number: $out"
assert_contains redoubt "$out" "-v output"

pass
