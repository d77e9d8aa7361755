#!/bin/bash
# t_cli: the command line as nginx's: -V (version, OpenSSL built with and
# running with, PCRE2, libconfig, configure arguments); -t messages for
# files the modules load (a missing certificate, key, CA; a key of another
# certificate; a file that is not PEM) and for bad uris (a database number
# on a cluster, user:password@) as "redoubt: FILE:LINE: directive: what",
# with no time, pid or OpenSSL code, and a last "configuration file FILE
# test failed" / "test is successful" line; -T prints the configuration
# with @include expanded, and its output passes -t and prints the same
# again; a uri "/2" selects database 2 of a real redis-server (SET through
# redoubt, GET straight from redis), also after the session's own AUTH and
# after the upstream connection was killed, while the client's own SELECT
# still works; process titles in /proc/PID/cmdline ("redoubt: master
# process ...", "worker process", "status process", "worker process is
# shutting down") with /proc/PID/comm kept.
# shellcheck disable=SC2119,SC2317 # rd_start's CONF is optional; helpers called indirectly
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
rd_init
need openssl

# --- redoubt -V --------------------------------------------------------------
out=$("$REDOUBT" -V 2>&1) || fail "-V exited $?: $out"
ver=$(sed -n 's/^AC_INIT(\[redoubt\], \[\([^]]*\)\].*/\1/p' "$RD_SRCDIR/configure.ac")
[ -n "$ver" ] || fail "no version in configure.ac (test bug)"
assert_eq "redoubt version $ver" "$(head -n 1 <<<"$out")" "-V first line"
lib=$(openssl version)
[[ $lib == *"(Library: "* ]] && { lib=${lib##*(Library: }; lib=${lib%)}; }
assert_contains "running with $lib" "$out" "-V: the OpenSSL redoubt runs with"
grep -qE '^built with OpenSSL [0-9]+\.[0-9]+\.[0-9]+' <<<"$out" || fail "-V: no OpenSSL built-with line: $out"
if command -v pkg-config >/dev/null 2>&1; then
    v=$(pkg-config --modversion openssl 2>/dev/null) &&
        assert_contains "built with OpenSSL $v" "$out" "-V: the OpenSSL headers"
    v=$(pkg-config --modversion libconfig 2>/dev/null) &&
        assert_contains "built with libconfig $v" "$out" "-V: the libconfig headers"
fi
if command -v pcre2-config >/dev/null 2>&1; then
    assert_contains "running with PCRE2 $(pcre2-config --version)" "$out" "-V: the PCRE2 library"
fi
grep -q '^command table from Redis [0-9]' <<<"$out" || fail "-V: no command table line: $out"
# The configure arguments, as config.status says them (it quotes them
# only sometimes: compare without the quotes).
if [ -x "$RD_BUILDDIR/config.status" ]; then
    args=$("$RD_BUILDDIR/config.status" --config | tr -d "'")
    assert_eq "configure arguments: $args" "$(grep '^configure arguments:' <<<"$out" | tr -d "'")" "-V: configure arguments"
else
    grep -q '^configure arguments:' <<<"$out" || fail "-V: no configure arguments"
fi

# --- redoubt -t: what the modules find when they start ---------------------------
redis_start a
SPORT=$(free_port) || fail "no free port"

# A certificate and key, a second key, and a file that is not PEM.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$T/srv.key" -out "$T/srv.crt" -days 1 -subj /CN=localhost \
    >/dev/null 2>&1 || fail "openssl req"
openssl ecparam -name prime256v1 -genkey -noout -out "$T/other.key" 2>/dev/null || fail "openssl ecparam"
echo "not a certificate" > "$T/junk.crt"

# tconf FILE CERT KEY CA [EXTRA]: a TLS configuration: tls.certificate on
# line 3, certificate_key on line 4, client_ca on line 5, the uri on 8.
tconf() {
    cat > "$1" <<EOF
listen = ( { address = "127.0.0.1:$RD_PORT"; database = "db"; } );
tls = {
  certificate = "$2";
  certificate_key = "$3";
  client_ca = "$4";
};
databases = ( { name = "db";
  uri = "redis://127.0.0.1:${RD_REDIS_PORT[a]}"; } );
${5:-}
EOF
}

# check_t FILE: run -t; OUT, RC; every line is "redoubt: ..." with no time
# or pid, and the last one is the verdict.
check_t() {
    local f
    f=$(realpath "$1")
    OUT=$("$REDOUBT" -t -c "$1" 2>&1)
    RC=$?
    while IFS= read -r line; do
        [[ $line == "redoubt: "* ]] || fail "-t on $1: a line that is not \"redoubt: ...\": $line"
        [[ $line =~ [0-9]{4}-[0-9]{2}-[0-9]{2}T|\]\ [0-9]+: ]] && fail "-t on $1: a log line with a time or pid: $line"
        [[ $line =~ error:[0-9A-Fa-f]{8} ]] && fail "-t on $1: an OpenSSL error code: $line"
        [[ $line == *"could not start"* ]] && fail "-t on $1: a message without its directive: $line"
    done <<<"$OUT"
    if [ "$RC" -eq 0 ]; then
        assert_eq "redoubt: configuration file $f test is successful" "$(tail -n 1 <<<"$OUT")" "-t on $1: last line"
    else
        assert_eq 1 "$RC" "-t on $1: exit status"
        assert_eq "redoubt: configuration file $f test failed" "$(tail -n 1 <<<"$OUT")" "-t on $1: last line"
    fi
}

# expect_t FILE MESSAGE: -t fails with exactly "redoubt: FILE:MESSAGE" as
# the line before the verdict.
expect_t() {
    check_t "$1"
    [ "$RC" -ne 0 ] || fail "-t accepted $1: $OUT"
    assert_eq "redoubt: $(realpath "$1"):$2" "$(tail -n 2 <<<"$OUT" | head -n 1)" "-t message for $1"
}

tconf "$T/good.conf" "$T/srv.crt" "$T/srv.key" "$T/srv.crt"
check_t "$T/good.conf"
assert_eq 0 "$RC" "-t on a good TLS configuration: $OUT"
assert_eq "redoubt: the configuration file $(realpath "$T/good.conf") syntax is ok" "$(tail -n 2 <<<"$OUT" | head -n 1)" "-t: syntax is ok"

tconf "$T/nocert.conf" "$T/nosuch.crt" "$T/srv.key" "$T/srv.crt"
expect_t "$T/nocert.conf" "3: tls.certificate: cannot open \"$T/nosuch.crt\": No such file or directory"
# Starting the server says the same, and nothing starts.
timeout 20 "$REDOUBT" -g -c "$T/nocert.conf" > "$T/nocert.out" 2>&1 && fail "redoubt started without its certificate"
assert_contains "nocert.conf:3: tls.certificate: cannot open" "$(cat "$T/nocert.out")" "start without the certificate"

tconf "$T/nokey.conf" "$T/srv.crt" "$T/nosuch.key" "$T/srv.crt"
expect_t "$T/nokey.conf" "4: tls.certificate_key: cannot open \"$T/nosuch.key\": No such file or directory"

tconf "$T/noca.conf" "$T/srv.crt" "$T/srv.key" "$T/nosuch-ca.crt"
expect_t "$T/noca.conf" "5: tls.client_ca: cannot open \"$T/nosuch-ca.crt\": No such file or directory"

tconf "$T/otherkey.conf" "$T/srv.crt" "$T/other.key" "$T/srv.crt"
check_t "$T/otherkey.conf"
[ "$RC" -ne 0 ] || fail "-t accepted the key of another certificate"
assert_contains "otherkey.conf:4: tls.certificate_key: \"$T/other.key\" is not the key of tls.certificate \"$T/srv.crt\"" "$OUT" "-t: the key of another certificate"

tconf "$T/junk.conf" "$T/junk.crt" "$T/srv.key" "$T/srv.crt"
check_t "$T/junk.conf"
[ "$RC" -ne 0 ] || fail "-t accepted a certificate file that is not PEM"
assert_contains "junk.conf:3: tls.certificate: cannot load the certificate chain from \"$T/junk.crt\": no start line" "$OUT" "-t: a file that is not PEM"

# A key without its certificate: at the directive that is there.
cat > "$T/half.conf" <<EOF
listen = ( { address = "127.0.0.1:$RD_PORT"; database = "db"; tls = false; } );
tls = {
  certificate_key = "$T/srv.key";
};
databases = ( { name = "db"; uri = "redis://127.0.0.1:${RD_REDIS_PORT[a]}"; } );
EOF
expect_t "$T/half.conf" "3: tls.certificate_key: tls.certificate and tls.certificate_key go together"

# The upstream_tls CA: its own line.
tconf "$T/noupca.conf" "$T/srv.crt" "$T/srv.key" "$T/srv.crt" \
    "upstream_tls = { ca_cert = \"$T/srv.crt\";
  ca_key = \"$T/nosuch-ca.key\"; };"
expect_t "$T/noupca.conf" "10: upstream_tls.ca_key: cannot open \"$T/nosuch-ca.key\": No such file or directory"

# A TLS listener without any of it: at the listener.
cat > "$T/nothing.conf" <<EOF
listen = (
  { address = "127.0.0.1:$RD_PORT"; database = "db"; } );
databases = ( { name = "db"; uri = "redis://127.0.0.1:${RD_REDIS_PORT[a]}"; } );
EOF
expect_t "$T/nothing.conf" "2: listen: a TLS listener needs tls.certificate, tls.certificate_key and tls.client_ca (or tls = false on the listener, for tests only)"

# --- redoubt -t: uris ---------------------------------------------------------------
# uconf FILE URI: the uri on line 3.
uconf() {
    cat > "$1" <<EOF
listen = ( { address = "127.0.0.1:$RD_PORT"; database = "db"; tls = false; } );
databases = ( { name = "db";
  uri = "$2"; } );
EOF
}
uconf "$T/u1.conf" "redis://127.0.0.1:7000/3?mode=cluster"
expect_t "$T/u1.conf" "3: uri: a Redis Cluster has only database 0: remove the \"/N\" after host:port, or use a standalone database"
uconf "$T/u2.conf" "redis://127.0.0.1:7000/0?mode=cluster"
check_t "$T/u2.conf"
assert_eq 0 "$RC" "-t on a cluster uri with /0: $OUT"
uconf "$T/u3.conf" "redis://alice:Sup3rSecret@127.0.0.1:7000"
expect_t "$T/u3.conf" "3: uri: must not hold a user or password (\"user:password@\"): each session authenticates to Redis with its own AUTH (or HELLO ... AUTH), passed through, or with the client certificate minted for its database user on rediss://; a cluster database reads its slot map as cluster.discovery_user with cluster.discovery_password"
[[ $OUT == *Sup3rSecret* ]] && fail "-t repeats the password of a uri: $OUT"
uconf "$T/u4.conf" "rediss://:Sup3rSecret@127.0.0.1:7000/1"
check_t "$T/u4.conf"
assert_contains "u4.conf:3: uri: must not hold a user or password" "$OUT" "-t on a uri with a password only"
uconf "$T/u5.conf" "redis://127.0.0.1:7000/db2"
expect_t "$T/u5.conf" "3: uri: the path after host:port must be a database number, such as \"/2\" (SELECT 2 when a session connects)"
uconf "$T/u6.conf" "redis://127.0.0.1/15"
check_t "$T/u6.conf"
assert_eq 0 "$RC" "-t on a uri with a database number and no port: $OUT"

# --- redoubt -T ----------------------------------------------------------------------
mkdir -p "$T/tconf"
cat > "$T/tconf/main.conf" <<EOF
# a comment that -T does not keep
worker_processes = 1;
listen = ( { address = "127.0.0.1:$RD_PORT"; database = "db"; tls = false; } );
@include "more.conf"
databases = ( { name = "db"; uri = "redis://127.0.0.1:${RD_REDIS_PORT[a]}/4";
  labels = { team = "a \"quoted\" \\\\ name"; }; connect_timeout = "1500ms"; } );
EOF
cat > "$T/tconf/more.conf" <<'EOF'
limits = { max_pipeline = 77; idle_timeout = "5m"; };
EOF
"$REDOUBT" -T -c "$T/tconf/main.conf" > "$T/tconf/dump.conf" 2> "$T/tconf/dump.err" || fail "-T exited $?: $(cat "$T/tconf/dump.err")"
assert_eq "redoubt: configuration file $(realpath "$T/tconf/main.conf") test is successful" "$(tail -n 1 "$T/tconf/dump.err")" "-T: the verdict on stderr"
assert_eq "# configuration file $(realpath "$T/tconf/main.conf"):" "$(head -n 1 "$T/tconf/dump.conf")" "-T: first line"
grep -q 'max_pipeline = 77;' "$T/tconf/dump.conf" || fail "-T does not show the included file's settings: $(cat "$T/tconf/dump.conf")"
grep -q 'more.conf' "$T/tconf/dump.conf" || fail "-T does not name the included file"
grep -q '^@include' "$T/tconf/dump.conf" && fail "-T kept an @include"
grep -q 'a comment' "$T/tconf/dump.conf" && fail "-T kept a comment (test assumption)"
# What -T prints is a configuration: it passes -t and prints the same.
check_t "$T/tconf/dump.conf"
assert_eq 0 "$RC" "-t on the output of -T: $OUT"
"$REDOUBT" -T -c "$T/tconf/dump.conf" 2>/dev/null > "$T/tconf/dump2.conf" || fail "-T on the output of -T"
diff <(grep -v '^#' "$T/tconf/dump.conf") <(grep -v '^#' "$T/tconf/dump2.conf") > "$T/tconf/diff" ||
    fail "-T of the output of -T differs: $(cat "$T/tconf/diff")"
grep -qF 'team = "a \"quoted\" \\ name";' "$T/tconf/dump.conf" || fail "-T: the escaped label: $(grep team "$T/tconf/dump.conf")"
# A broken configuration: the reason, and nothing on stdout.
tconf "$T/tconf/bad.conf" "$T/nosuch.crt" "$T/srv.key" "$T/srv.crt"
"$REDOUBT" -T -c "$T/tconf/bad.conf" > "$T/tconf/bad.out" 2> "$T/tconf/bad.err" && fail "-T accepted a missing certificate"
[ -s "$T/tconf/bad.out" ] && fail "-T printed a configuration that failed its test"
assert_contains "bad.conf:3: tls.certificate: cannot open" "$(cat "$T/tconf/bad.err")" "-T: the reason"

# --- uri "/2" on a real redis-server ---------------------------------------------
A=${RD_REDIS_PORT[a]}
rd_conf "$A/2" "status = { listen = \"127.0.0.1:$SPORT\"; };" > "$T/redoubt.conf"
rd_start
rd__has_status() { [ -n "$(rd_status_pids)" ]; }
wait_for 10 rd__has_status || fail "no status process"

assert_eq OK "$(rcli SET k2 via-redoubt)" "SET through redoubt"
assert_eq via-redoubt "$(dcli a -n 2 GET k2)" "the key is in database 2"
assert_eq "" "$(dcli a -n 0 GET k2)" "not in database 0"
dcli a -n 2 SET direct2 in-db2 >/dev/null
assert_eq in-db2 "$(rcli GET direct2)" "GET through redoubt reads database 2"

# The client's own SELECT moves the session; a new session starts in 2.
S=
sess_open S || fail "cannot connect to redoubt"
sess_expect "$S" "+OK" SELECT 5
sess_expect "$S" "+OK" SET k5 five
assert_eq five "$(dcli a -n 5 GET k5)" "SET after the client's SELECT 5"
assert_eq "" "$(dcli a -n 2 GET k5)" "not in database 2"
assert_eq via-redoubt "$(rcli GET k2)" "a new session starts in database 2 again"
S0=
sess_open S0 || fail "cannot connect to redoubt"
sess_expect "$S0" "+OK" SELECT 0
sess_expect "$S0" "(nil)" GET k2
sess_close "$S0"

# After the upstream connections were killed, each session is where it
# was: database 2 for one that never selected, 5 for the other.
S2=
sess_open S2 || fail "cannot connect to redoubt"
sess_expect "$S2" "+OK" SET before-kill 1
dcli a CLIENT KILL TYPE normal >/dev/null
# set_retry S KEY VALUE: the first command after the kill may get
# redoubt's "upstream" error; the next one reconnects.
set_retry() {
    local i
    for i in 1 2 3; do
        sess_cmd "$1" SET "$2" "$3" || fail "session closed after the upstream was killed"
        [ "$REPLY" = "+OK" ] && return 0
        assert_prefix "-ERR redoubt: upstream" "$REPLY" "reply after the upstream was killed"
    done
    fail "SET $2 never succeeded after the upstream was killed"
}
set_retry "$S2" after-kill 2
assert_eq 2 "$(dcli a -n 2 GET after-kill)" "after a reconnect, still database 2"
set_retry "$S" after-kill5 5
assert_eq 5 "$(dcli a -n 5 GET after-kill5)" "after a reconnect, still the client's database 5"
sess_close "$S2"

# On a server with a password the session's AUTH goes first, then SELECT 2.
dcli a CONFIG SET requirepass s3cret >/dev/null
S3=
sess_open S3 || fail "cannot connect to redoubt"
sess_expect "$S3" "+OK" AUTH s3cret
sess_expect "$S3" "+OK" SET after-auth yes
assert_eq yes "$(dcli a --no-auth-warning -a s3cret -n 2 GET after-auth)" "SET after AUTH lands in database 2"
sess_close "$S3"
dcli a --no-auth-warning -a s3cret CONFIG SET requirepass "" >/dev/null

# --- process titles ------------------------------------------------------------------
cmdline() { tr '\0' ' ' < "/proc/$1/cmdline" | sed 's/ *$//'; }
assert_eq "redoubt: master process $REDOUBT -g -c $T/redoubt.conf" "$(cmdline "$RD_PID")" "the master's title"
assert_eq "$(basename "$REDOUBT" | cut -c1-15)" "$(cat "/proc/$RD_PID/comm")" "the master's comm is its name"
n=0
for w in $(rd_workers); do
    assert_eq "redoubt: worker process" "$(cmdline "$w")" "worker $w's title"
    n=$((n + 1))
done
assert_eq "$RD_WORKERS" "$n" "workers seen"
st=$(rd_status_pids)        # found by /proc/PID/comm = redoubt-status
[ -n "$st" ] || fail "no status process"
assert_eq "redoubt: status process" "$(cmdline "$st")" "the status process's title"

# A reload: the old worker that still has a session says so.
sess_expect "$S" "+PONG" PING
old=$(rd_workers | tr '\n' ' ')
kill -HUP "$RD_PID"
shutting() {
    local p
    for p in $(rd_children "$RD_PID"); do
        [ "$(cmdline "$p")" = "redoubt: worker process is shutting down" ] && return 0
    done
    return 1
}
wait_for 10 shutting || fail "no old worker titled \"worker process is shutting down\" (old workers: $old)"
sess_close "$S"
wait_for 15 eval '! shutting' || fail "the old worker did not exit after its session closed"

pass
