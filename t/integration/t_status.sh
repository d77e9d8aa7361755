#!/bin/bash
# t_status: the status server. /metrics passes a Prometheus text-format
# checker (names, labels and their escaping, values, TYPE before samples,
# families contiguous, counters named _total, histograms cumulative and
# ending in +Inf, _count equal to the +Inf bucket) and its counters move
# exactly as the test's commands are sent: commands by database, command
# and result, sessions (ok, refused, open), bytes, upstream connections,
# failures and latency, refusals (TLS handshake, access denied, NOPERM,
# max_sessions), audit events written (as many as lines in the audit
# log); certificate expiry gauges match the certificates; a killed
# worker is replaced without totals going back and its sessions are no
# longer open; reloads (ok and failed) are counted and keep the counters; a
# reload moves the status listener to a new port; process_* metrics of the
# master, the workers and the status process agree with /proc (open
# files and their limit, resident memory, start time, CPU time); /healthz
# is 200 with workers and 503 while the master has none (workers killed
# until their restart is delayed); 404, 405, 400 and 431 for the rest.
# shellcheck disable=SC2119,SC2317 # optional args; helpers called indirectly
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
rd_init
need_tls
need python3

CA=$T/ca
ctl ca init "$CA"
CACERT=$CA/db-ca.crt
ctl cert server --ca-dir "$CA" --host localhost,127.0.0.1 --out "$T/redoubt"
ctl cert server --ca-dir "$CA" --host localhost,127.0.0.1 --out "$T/redis"
user "$T/alice" --user alice --roles access
user "$T/bob" --user bob --roles access,noflush
user "$T/eve" --user eve --roles nosuch

redis_start plain
redis_start_tls sec "$T/redis.crt" "$T/redis.key" "$CA/db-client-ca.crt"

TPORT=$(free_port) || fail "no free port"      # TLS listener, database db
SECPORT=$(free_port) || fail "no free port"    # plaintext, database sec
SPORT=$(free_port) || fail "no free port"      # status
CONF=$T/redoubt.conf
# write_conf [WORKERS [EXTRA]]: the configuration.
write_conf() {
    cat > "$CONF.tmp" <<EOF
# redoubt test configuration for $RD_TEST
worker_processes = ${1:-$RD_WORKERS};
pid_file = "$T/redoubt.pid";
worker_shutdown_timeout = "10s";
error_log = { path = "$T/error.log"; level = "debug"; };
tls = { certificate = "$T/redoubt.crt"; certificate_key = "$T/redoubt.key";
        client_ca = "$CA/user-ca.crt"; };
upstream_tls = { ca_cert = "$CA/db-client-ca.crt"; ca_key = "$CA/db-client-ca.key";
                 server_ca = "$CA/db-ca.crt"; cert_ttl = "1h"; };
listen = ( { address = "127.0.0.1:$RD_PORT"; database = "db"; tls = false; },
           { address = "127.0.0.1:$TPORT"; database = "db"; },
           { address = "127.0.0.1:$SECPORT"; database = "sec"; tls = false; } );
databases = (
  { name = "db"; uri = "redis://127.0.0.1:${RD_REDIS_PORT[plain]}"; connect_timeout = "2s"; },
  { name = "sec"; uri = "rediss://127.0.0.1:${RD_REDIS_PORT[sec]}"; connect_timeout = "2s"; },
  { name = "we\"ird\\\\name"; uri = "redis://127.0.0.1:${RD_REDIS_PORT[plain]}"; }
);
roles = (
  { name = "access"; allow = { db_labels = { * = "*"; }; db_users = [ "*" ]; }; },
  { name = "noflush"; deny = { db_labels = { * = "*"; }; commands = [ "flushall" ]; }; }
);
status = { listen = "127.0.0.1:$SPORT"; };
audit = { path = "$T/audit.log"; };
${2:-}
EOF
    mv "$CONF.tmp" "$CONF"
}
write_conf
out=$("$REDOUBT" -t -c "$CONF" 2>&1) || fail "-t on the status config: $out"
rd_start "$CONF"
rd__has_status() { [ -n "$(rd_status_pids)" ]; }
wait_for 10 rd__has_status || fail "no status server"

# --- the checker ------------------------------------------------------------
# promcheck.py RESPONSE-FILE: check the HTTP response and its body in the
# Prometheus text format 0.0.4; print every sample as
# name{sorted labels}<TAB>value.
cat > "$T/promcheck.py" <<'PY'
import math, re, sys

raw = open(sys.argv[1], 'rb').read()
def die(msg, line=None):
    sys.stderr.write('promcheck: %s%s\n' % (msg, '' if line is None else ': %r' % line))
    sys.exit(1)

head, sep, body = raw.partition(b'\r\n\r\n')
if not sep:
    die('no end of the HTTP headers')
lines = head.decode('latin-1').split('\r\n')
if not re.fullmatch(r'HTTP/1\.1 200 OK', lines[0]):
    die('status line', lines[0])
hdr = {}
for l in lines[1:]:
    k, _, v = l.partition(':')
    hdr[k.strip().lower()] = v.strip()
if not hdr.get('content-type', '').startswith('text/plain; version=0.0.4'):
    die('content type', hdr.get('content-type'))
if int(hdr.get('content-length', '-1')) != len(body):
    die('content length %s, body %d bytes' % (hdr.get('content-length'), len(body)))
if hdr.get('connection') != 'close':
    die('connection header', hdr.get('connection'))
try:
    text = body.decode('utf-8')
except UnicodeDecodeError:
    die('body is not UTF-8')
if not text.endswith('\n'):
    die('body does not end with a newline')

NAME = re.compile(r'[a-zA-Z_:][a-zA-Z0-9_:]*')
LNAME = re.compile(r'[a-zA-Z_][a-zA-Z0-9_]*')
VALUE = re.compile(r'[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?Inf|NaN')
TYPES = ('counter', 'gauge', 'histogram', 'summary', 'untyped')

types, helps = {}, {}
closed, current = set(), None
samples = {}            # (name, labels tuple) -> value
order = []
def switch(family, line):
    global current
    if family == current:
        return
    if family in closed:
        die('lines of family %s are not together' % family, line)
    if current is not None:
        closed.add(current)
    current = family

def parse_labels(s, line):
    # s starts after '{'; returns (labels, rest after '}')
    labels, i = {}, 0
    while True:
        if s[i:i + 1] == '}':
            return labels, s[i + 1:]
        m = LNAME.match(s, i)
        if not m:
            die('bad label name', line)
        k = m.group(0)
        i = m.end()
        if s[i:i + 2] != '="':
            die('label without ="', line)
        i += 2
        v = []
        while True:
            if i >= len(s):
                die('unterminated label value', line)
            c = s[i]
            if c == '\\':
                e = s[i + 1:i + 2]
                if e not in ('\\', '"', 'n'):
                    die('bad escape in a label value', line)
                v.append('\n' if e == 'n' else e)
                i += 2
            elif c == '"':
                i += 1
                break
            else:
                v.append(c)
                i += 1
        if k in labels:
            die('label %s twice' % k, line)
        labels[k] = ''.join(v)
        if s[i:i + 1] == ',':
            i += 1
        elif s[i:i + 1] != '}':
            die('expected , or } after a label', line)

for line in text.split('\n')[:-1]:
    if line == '':
        continue
    if line.startswith('#'):
        parts = line.split(None, 3)
        if len(parts) >= 3 and parts[1] in ('HELP', 'TYPE'):
            name = parts[2]
            if not NAME.fullmatch(name):
                die('bad metric name in ' + parts[1], line)
            if parts[1] == 'TYPE':
                t = parts[3] if len(parts) > 3 else ''
                if t not in TYPES:
                    die('bad type', line)
                if name in types:
                    die('second TYPE for ' + name, line)
                if any(f == name for f, _ in order):
                    die('TYPE after samples of ' + name, line)
                types[name] = t
            else:
                if name in helps:
                    die('second HELP for ' + name, line)
                helps[name] = parts[3] if len(parts) > 3 else ''
            switch(name, line)
        continue
    m = NAME.match(line)
    if not m:
        die('bad sample name', line)
    name, rest = m.group(0), line[m.end():]
    labels = {}
    if rest.startswith('{'):
        labels, rest = parse_labels(rest[1:], line)
    if not rest.startswith(' '):
        die('no space before the value', line)
    fields = rest.split()
    if len(fields) not in (1, 2) or not VALUE.fullmatch(fields[0]):
        die('bad value', line)
    if len(fields) == 2 and not re.fullmatch(r'-?[0-9]+', fields[1]):
        die('bad timestamp', line)
    value = float(fields[0].replace('Inf', 'inf'))
    family = name
    for suf in ('_bucket', '_sum', '_count'):
        if name.endswith(suf) and types.get(name[:-len(suf)]) == 'histogram':
            family = name[:-len(suf)]
    if family not in types:
        die('sample without a TYPE before it', line)
    switch(family, line)
    t = types[family]
    if t == 'counter':
        if not name.endswith('_total'):
            die('counter not named _total', line)
        if value < 0 or math.isnan(value):
            die('negative counter', line)
    if t == 'histogram' and family == name:
        die('histogram sample without _bucket/_sum/_count', line)
    if name.endswith('_bucket') and t == 'histogram' and 'le' not in labels:
        die('bucket without le', line)
    key = (name, tuple(sorted(labels.items())))
    if key in samples:
        die('duplicate sample', line)
    samples[key] = value
    order.append((family, key))

# Histograms: per label set, le increasing, counts cumulative, +Inf last,
# _count equal to the +Inf bucket, a _sum.
for fam, t in types.items():
    if t != 'histogram':
        continue
    series = {}
    for f, key in order:
        if f != fam or key[0] != fam + '_bucket':
            continue
        labels = dict(key[1])
        le = labels.pop('le')
        series.setdefault(tuple(sorted(labels.items())), []).append((le, samples[key]))
    for ls, buckets in series.items():
        les = [float(le.replace('Inf', 'inf')) for le, _ in buckets]
        if les != sorted(les) or len(set(les)) != len(les):
            die('%s%s: le not increasing' % (fam, ls))
        if buckets[-1][0] != '+Inf':
            die('%s%s: last bucket is not +Inf' % (fam, ls))
        counts = [c for _, c in buckets]
        if any(b < a for a, b in zip(counts, counts[1:])):
            die('%s%s: buckets not cumulative' % (fam, ls))
        cnt = samples.get((fam + '_count', ls))
        if cnt != counts[-1]:
            die('%s%s: _count %s != +Inf bucket %s' % (fam, ls, cnt, counts[-1]))
        if (fam + '_sum', ls) not in samples:
            die('%s%s: no _sum' % (fam, ls))

def esc(v):
    return v.replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n')
for (name, ls), v in samples.items():
    lab = ','.join('%s="%s"' % (k, esc(x)) for k, x in ls)
    print('%s%s\t%s' % (name, '{%s}' % lab if lab else '', repr(v) if v != int(v) else int(v)))
PY

# The checker itself must catch what it is there for.
printf 'HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s' \
    27 $'x_total 1\n# TYPE x_total counter\n' > "$T/bad1"
python3 "$T/promcheck.py" "$T/bad1" 2>/dev/null && fail "the checker accepts a sample before its TYPE"
bad=$'# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n'
printf 'HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s' \
    "${#bad}" "$bad" > "$T/bad2"
python3 "$T/promcheck.py" "$T/bad2" 2>/dev/null && fail "the checker accepts buckets that are not cumulative"

# scrape: fetch /metrics, check it, keep the samples in $T/metrics.
SCRAPES=0
scrape() {
    SCRAPES=$((SCRAPES + 1))
    st_http "$SPORT" 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' > "$T/metrics.$SCRAPES.http"
    python3 "$T/promcheck.py" "$T/metrics.$SCRAPES.http" > "$T/metrics" 2> "$T/promcheck.err" ||
        fail "/metrics (scrape $SCRAPES) fails the checker: $(cat "$T/promcheck.err")"
}
# m KEY: the value of sample KEY (name{labels in name order}) in the last
# scrape, 0 when absent.
m() { awk -F'\t' -v k="$1" '$1 == k { v = $2 } END { print (v == "" ? 0 : v) }' "$T/metrics"; }
# mm KEY: scrape, then m KEY.
mm() { scrape; m "$1"; }
# expect_delta WHAT BEFORE KEY DELTA: after a fresh scrape, KEY moved by DELTA.
expect_delta() {
    local got
    scrape
    got=$(m "$3")
    assert_eq "$(( $2 + $4 ))" "$got" "$1 ($3: was $2)"
}
# wait_metric SECS KEY VALUE: scrape until KEY has VALUE.
metric_is() { scrape; [ "$(m "$1")" = "$2" ]; }
wait_metric() { wait_for "$1" metric_is "$2" "$3" || fail "$2 is $(m "$2"), expected $3"; }

[ "$(rd_status_pids | wc -l)" -eq 1 ] || fail "expected one status server, have: $(rd_status_pids | tr '\n' ' ')"

CMD_SET='redoubt_commands_total{command="set",database="db",result="ok"}'
CMD_INCR_ERR='redoubt_commands_total{command="incr",database="db",result="error"}'
SESS_OK='redoubt_sessions_total{database="db",result="ok"}'
SESS_REFUSED='redoubt_sessions_total{database="db",result="refused"}'
SESS_OPEN='redoubt_sessions_open{database="db"}'
LAT_COUNT='redoubt_upstream_latency_seconds_count{database="db"}'
UP_OK='redoubt_upstream_connections_total{database="db",result="ok"}'
UP_FAILED='redoubt_upstream_connections_total{database="db",result="failed"}'
UP_ERR='redoubt_upstream_errors_total{database="db"}'
BYTES_IN='redoubt_client_received_bytes_total'
BYTES_OUT='redoubt_client_sent_bytes_total'
refusal() { echo "redoubt_refusals_total{reason=\"$1\"}"; }

# --- the first scrape -----------------------------------------------------------
scrape
for f in redoubt_build_info redoubt_worker_processes redoubt_reloads_total \
         redoubt_sessions_total redoubt_sessions_open redoubt_refusals_total \
         redoubt_upstream_latency_seconds redoubt_client_received_bytes_total \
         redoubt_audit_events_total redoubt_upstream_connections_total \
         redoubt_upstream_errors_total redoubt_redirections_total; do
    grep -q "^# TYPE $f " "$T/metrics.$SCRAPES.http" || fail "no family $f in /metrics"
done
assert_eq "$RD_WORKERS" "$(m 'redoubt_worker_processes{state="current"}')" "workers alive"
assert_eq 0 "$(m 'redoubt_reloads_total{result="ok"}')" "reloads at start"
# Every configured database has its series from the start, its name escaped.
assert_eq 0 "$(m 'redoubt_sessions_total{database="we\"ird\\name",result="ok"}')" "the escaped database label"
grep -qF 'database="we\"ird\\name"' "$T/metrics.$SCRAPES.http" || fail "label value not escaped in /metrics"
# The listener certificate's expiry, to the second.
want=$(date -u -d "$(openssl x509 -noout -enddate -in "$T/redoubt.crt" | sed 's/^notAfter=//')" +%s)
assert_eq "$want" "$(m redoubt_listener_certificate_expiry_timestamp_seconds)" "listener certificate expiry"
assert_eq 0 "$(m redoubt_upstream_certificate_expiry_timestamp_seconds)" "no minted certificate yet"

# --- process_* metrics: every redoubt process, checked against /proc -------------
# pm FAMILY ROLE PID: the sample of one process.
pm() { m "$1{pid=\"$3\",role=\"$2\"}"; }
# near A B TOLERANCE: |A - B| <= TOLERANCE (decimals allowed).
near() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t) }'; }
scrape
for f in process_cpu_seconds_total:counter process_resident_memory_bytes:gauge \
         process_virtual_memory_bytes:gauge process_open_fds:gauge \
         process_max_fds:gauge process_start_time_seconds:gauge; do
    grep -q "^# TYPE ${f%%:*} ${f#*:}\$" "$T/metrics.$SCRAPES.http" || fail "no family ${f%%:*} of type ${f#*:} in /metrics"
done
procs="master:$RD_PID"
for w in $(rd_workers); do procs+=" worker:$w"; done
procs+=" status:$(rd_status_pids)"
tck=$(getconf CLK_TCK)
btime=$(awk '/^btime / { print $2 }' /proc/stat)
for p in $procs; do
    role=${p%%:*} pid=${p#*:}
    # The open files limit and the open descriptors, as /proc says.
    want=$(awk '/^Max open files/ { print $4 }' "/proc/$pid/limits")
    assert_eq "$want" "$(pm process_max_fds "$role" "$pid")" "process_max_fds of the $role ($pid)"
    got=$(pm process_open_fds "$role" "$pid")
    fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 | wc -l)
    { [ "$got" -gt 2 ] && near "$got" "$fds" 2; } || fail "process_open_fds of the $role ($pid) is $got, /proc/$pid/fd has $fds"
    # Resident memory near VmRSS, start time from /proc/PID/stat.
    rss=$(( $(rss_kb "$pid") * 1024 ))
    got=$(pm process_resident_memory_bytes "$role" "$pid")
    { [ "$got" -gt 1000000 ] && near "$got" "$rss" $((rss / 4)); } || fail "process_resident_memory_bytes of the $role ($pid) is $got, VmRSS $rss"
    [ "$(pm process_virtual_memory_bytes "$role" "$pid")" -ge "$got" ] || fail "process_virtual_memory_bytes of the $role below its resident size"
    stat=$(sed 's/.*) //' "/proc/$pid/stat")
    start=$(awk -v b="$btime" -v t="$tck" '{ printf "%.2f", b + $20 / t }' <<<"$stat")
    near "$(pm process_start_time_seconds "$role" "$pid")" "$start" 0.02 || fail "process_start_time_seconds of the $role ($pid) is $(pm process_start_time_seconds "$role" "$pid"), /proc says $start"
    near "$start" "$(date +%s)" 600 || fail "start time of the $role ($pid) is $start (test bug?)"
    cpu=$(awk -v t="$tck" '{ printf "%.2f", ($12 + $13) / t }' <<<"$stat")
    near "$(pm process_cpu_seconds_total "$role" "$pid")" "$cpu" 0.5 || fail "process_cpu_seconds_total of the $role ($pid) is $(pm process_cpu_seconds_total "$role" "$pid"), /proc says $cpu"
done
# One series per process, and no process that is not redoubt's.
assert_eq "$(wc -w <<<"$procs")" "$(grep -c '^process_start_time_seconds{' "$T/metrics")" "process_start_time_seconds series"
# A busy worker's CPU time grows.
w=$(rd_workers | head -n 1)
c0=$(pm process_cpu_seconds_total worker "$w")
for ((i = 0; i < 20; i++)); do
    printf 'SET big%d %s\n' "$i" "$(head -c 300000 /dev/zero | tr '\0' x)"
done > "$T/busy"
for ((i = 0; i < 10; i++)); do rcli < "$T/busy" > /dev/null; done
scrape
c1=$(awk -v a="$(pm process_cpu_seconds_total worker "$w")" -v b="$c0" 'BEGIN { print (a >= b) }')
assert_eq 1 "$c1" "process_cpu_seconds_total of worker $w does not go back"
cpus=$(awk -F'\t' '$1 ~ /^process_cpu_seconds_total\{.*role="worker"/ { s += $2 } END { printf "%.2f", s }' "$T/metrics")
near "$cpus" 0 0.001 && fail "the workers used no CPU time at all after 200 large SETs"

# --- commands, sessions, bytes, latency -------------------------------------------
scrape
set0=$(m "$CMD_SET"); ok0=$(m "$SESS_OK"); lat0=$(m "$LAT_COUNT")
# redis-cli asks for COMMAND DOCS first.
cc0=$(m 'redoubt_commands_total{command="command",database="db",result="ok"}')
in0=$(m "$BYTES_IN"); out0=$(m "$BYTES_OUT"); up0=$(m "$UP_OK")
N=25
for ((i = 0; i < N; i++)); do echo "SET k$i v$i"; done > "$T/sets"
out=$(rcli < "$T/sets" | sort | uniq -c | awk '{ print $1, $2 }')
assert_eq "$N OK" "$out" "$N SETs through redoubt"
scrape
assert_eq $((set0 + N)) "$(m "$CMD_SET")" "commands_total for set after $N SETs"
assert_eq $((ok0 + 1)) "$(m "$SESS_OK")" "sessions_total ok after one redis-cli session"
cc=$(( $(m 'redoubt_commands_total{command="command",database="db",result="ok"}') - cc0 ))
assert_eq $((lat0 + N + cc)) "$(m "$LAT_COUNT")" "latency histogram count after $N SETs (and $cc COMMAND)"
assert_eq $((up0 + 1)) "$(m "$UP_OK")" "upstream connections after one session"
[ "$(m "$BYTES_IN")" -gt "$in0" ] || fail "bytes in did not move"
[ "$(m "$BYTES_OUT")" -ge $((out0 + N * 5)) ] || fail "bytes out did not move by at least $N x +OK"

# Error replies: INCR on a string, three times; and a GET pipeline.
err0=$(m "$CMD_INCR_ERR")
printf 'INCR k1\nINCR k2\nINCR k3\nGET k1\nGET k2\n' | rcli > /dev/null
scrape
assert_eq $((err0 + 3)) "$(m "$CMD_INCR_ERR")" "commands_total for incr, result error"
assert_eq 2 "$(m 'redoubt_commands_total{command="get",database="db",result="ok"}')" "commands_total for get"
assert_eq 0 "$(m 'redoubt_commands_total{command="incr",database="db",result="ok"}')" "no incr ok"
# A subcommand counts as its container.
rcli CONFIG GET maxmemory > /dev/null
assert_eq 1 "$(mm 'redoubt_commands_total{command="config",database="db",result="ok"}')" "CONFIG GET counts as config"

# Sessions open: three held open, then closed.
open0=$(mm "$SESS_OPEN")
for v in S1 S2 S3; do sess_open "$v" || fail "cannot open session $v"; done
for s in "$S1" "$S2" "$S3"; do sess_expect "$s" +PONG PING; done
assert_eq $((open0 + 3)) "$(mm "$SESS_OPEN")" "sessions open with three held"
sess_close "$S1"; sess_close "$S2"; sess_close "$S3"
wait_metric 10 "$SESS_OPEN" "$open0"

# Audit events: the count follows the audit file (copied every second).
audit_synced() {
    local n
    scrape
    n=$(wc -l < "$T/audit.log" 2>/dev/null || echo 0)
    [ "$n" -gt 0 ] && [ "$(m 'redoubt_audit_events_total{result="written"}')" = "$n" ]
}
wait_for 10 audit_synced || fail "audit events written: $(m 'redoubt_audit_events_total{result="written"}'), lines in the audit log: $(wc -l < "$T/audit.log")"
assert_eq 0 "$(m redoubt_audit_failing_workers)" "workers failing to audit"

# Upstream failures: the database goes away, and comes back.
scrape
f0=$(m "$UP_FAILED"); e0=$(m "$UP_ERR")
redis_stop plain
out=$(rcli PING 2>&1)
assert_prefix "ERR redoubt: upstream unavailable" "$out" "PING with redis down"
scrape
assert_eq $((f0 + 1)) "$(m "$UP_FAILED")" "upstream connections failed"
assert_eq $((e0 + 1)) "$(m "$UP_ERR")" "upstream errors"
redis_start plain "${RD_REDIS_PORT[plain]}"
assert_eq PONG "$(rcli PING 2>&1)" "PING with redis back"

# --- refusals -----------------------------------------------------------------------------
scrape
hs0=$(m "$(refusal tls_handshake)"); ad0=$(m "$(refusal access_denied)")
np0=$(m "$(refusal noperm)"); ref0=$(m "$SESS_REFUSED")
none0=$(m 'redoubt_sessions_total{database="",result="refused"}')
tok0=$(m "$SESS_OK")
# Plaintext on the TLS listener: the handshake fails.
printf 'PING\r\n' > "$T/plain-on-tls"
raw_exchange "$TPORT" "$T/plain-on-tls" "$T/plain-on-tls.out" 10
wait_metric 10 "$(refusal tls_handshake)" $((hs0 + 1))
assert_eq $((none0 + 1)) "$(m 'redoubt_sessions_total{database="",result="refused"}')" "a failed handshake is a refused session without a database"
# A certificate whose roles reach nothing.
out=$(tls_cli "$TPORT" "$T/eve" "$CACERT" PING 2>&1)
assert_contains "access" "$out" "eve's session is refused"
wait_metric 10 "$(refusal access_denied)" $((ad0 + 1))
assert_eq $((ref0 + 1)) "$(m "$SESS_REFUSED")" "the refused session, database db"
# NOPERM on a command, in a session that is let in.
out=$(printf 'PING\nFLUSHALL\n' | tls_cli "$TPORT" "$T/bob" "$CACERT" 2>&1)
assert_contains "NOPERM" "$out" "bob's FLUSHALL"
scrape
assert_eq $((np0 + 1)) "$(m "$(refusal noperm)")" "noperm refusals"
assert_eq 1 "$(m 'redoubt_commands_total{command="flushall",database="db",result="error"}')" "the refused FLUSHALL is an error reply"
assert_eq $((tok0 + 1)) "$(m "$SESS_OK")" "bob's session was let in"

# --- minted upstream certificate --------------------------------------------------------------
now=$(date +%s)
assert_eq PONG "$(redis-cli -h 127.0.0.1 -p "$SECPORT" PING 2>&1)" "PING to the rediss:// database"
scrape
exp=$(m redoubt_upstream_certificate_expiry_timestamp_seconds)
[ "$exp" -ge $((now + 3600 - 5)) ] || fail "minted certificate expiry $exp, expected about $((now + 3600))"
[ "$exp" -le $((now + 3600 + 5)) ] ||
    fail "minted certificate expiry $exp, expected about $((now + 3600))"
assert_eq 1 "$(m 'redoubt_upstream_connections_total{database="sec",result="ok"}')" "TLS upstream connection"

# --- HTTP ---------------------------------------------------------------------------------------
st_get "$SPORT" /healthz
assert_eq "200 ok" "$ST_CODE $ST_BODY" "/healthz with workers"
st_get "$SPORT" '/metrics?x=1'
assert_eq 200 "$ST_CODE" "/metrics with a query string"
st_get "$SPORT" /nothing
assert_eq 404 "$ST_CODE" "an unknown path"
st_get "$SPORT" /metrics POST
assert_eq 405 "$ST_CODE" "POST /metrics"
out=$(st_http "$SPORT" 'HEAD /healthz HTTP/1.1\r\n\r\n')
assert_contains $'Allow: GET\r\n' "$out" "HEAD is 405 with Allow"
out=$(st_http "$SPORT" 'garbage\r\n\r\n')
assert_prefix "HTTP/1.1 400 " "$out" "a request line that is not HTTP"
long=$(head -c 5000 /dev/zero | tr '\0' a)
out=$(st_http "$SPORT" "GET /metrics HTTP/1.1\r\nX: $long\r\n\r\n")
assert_prefix "HTTP/1.1 431 " "$out" "an oversized request"
# Bare LF line ends and HTTP/1.0 are fine.
out=$(st_http "$SPORT" 'GET /healthz HTTP/1.0\n\n')
assert_prefix "HTTP/1.1 200 OK" "$out" "HTTP/1.0 with bare LFs"

# --- a killed worker --------------------------------------------------------------------------
sess_open K || fail "cannot open a session"
sess_expect "$K" +PONG PING
scrape
before=$(m "$CMD_SET"); sok=$(m "$SESS_OK"); open1=$(m "$SESS_OPEN")
assert_eq 1 "$open1" "the held session is open"
old=$(rd_workers | tr '\n' ' ')
for w in $old; do kill -KILL "$w"; done
sess_wait_closed "$K" 10 || fail "the session of a killed worker is still open"
sess_close "$K"
rd__replaced() { [ "$(rd_count_workers)" -eq "$RD_WORKERS" ] && [ "$(rd_workers | tr '\n' ' ')" != "$old" ]; }
wait_for 15 rd__replaced || fail "killed workers were not replaced (now: $(rd_workers | tr '\n' ' '))"
wait_metric 10 'redoubt_worker_processes{state="current"}' "$RD_WORKERS"
assert_eq "$before" "$(m "$CMD_SET")" "commands_total after the workers were killed"
assert_eq "$sok" "$(m "$SESS_OK")" "sessions_total after the workers were killed"
assert_eq 0 "$(m "$SESS_OPEN")" "the killed worker's session is no longer open"
rcli < "$T/sets" > /dev/null
assert_eq $((before + N)) "$(mm "$CMD_SET")" "commands_total counts on in the new workers"

# --- reloads ------------------------------------------------------------------------------------
scrape
rok=$(m 'redoubt_reloads_total{result="ok"}'); rfail=$(m 'redoubt_reloads_total{result="failed"}')
before=$(m "$CMD_SET")
# max_sessions = 1 in each worker: of 3 sessions, at least one is refused.
write_conf "$RD_WORKERS" 'limits = { max_sessions = 1; };'
kill -HUP "$RD_PID"
wait_metric 15 'redoubt_reloads_total{result="ok"}' $((rok + 1))
# The new workers (and status server) are up once the old ones are gone.
wait_for 15 rd_has_workers "$RD_WORKERS" || fail "no $RD_WORKERS workers after the reload"
wait_metric 10 'redoubt_worker_processes{state="retiring"}' 0
assert_eq "$before" "$(m "$CMD_SET")" "commands_total across a reload"
ms0=$(m "$(refusal max_sessions)")
for v in A B C; do sess_open "$v" || fail "cannot open session $v"; done
# A refused session gets its error at once; a session let in says nothing
# until asked.
refused=0
for s in "$A" "$B" "$C"; do
    sess_read "$s" 1
    case $?/$REPLY in
        "0/-ERR max number of clients reached"*) refused=$((refused + 1)) ;;
        2/*) sess_expect "$s" +PONG PING ;;
        *) fail "a session with max_sessions = 1: $REPLY" ;;
    esac
done
[ "$refused" -ge 1 ] || fail "3 sessions on $RD_WORKERS workers with max_sessions = 1: none refused"
assert_eq $((ms0 + refused)) "$(mm "$(refusal max_sessions)")" "max_sessions refusals"
for s in "$A" "$B" "$C"; do sess_close "$s"; done
rcli < "$T/sets" > /dev/null
assert_eq $((before + N)) "$(mm "$CMD_SET")" "commands_total counts on after a reload"

# A broken configuration: a failed reload, counted.
echo 'this is not a configuration' > "$CONF"
kill -HUP "$RD_PID"
wait_metric 15 'redoubt_reloads_total{result="failed"}' $((rfail + 1))
assert_eq $((rok + 1)) "$(m 'redoubt_reloads_total{result="ok"}')" "a failed reload is not ok"

# The status listener moves to another port.
SPORT_OLD=$SPORT
SPORT=$(free_port) || fail "no free port"
write_conf
kill -HUP "$RD_PID"
st_ok() { st_get "$1" /healthz 2>/dev/null; [ "$ST_CODE" = 200 ]; }
wait_for 15 st_ok "$SPORT" || fail "no status server on the new port after a reload"
wait_metric 15 'redoubt_reloads_total{result="ok"}' $((rok + 2))
st_gone() { ! rd_port_open "$1"; }
wait_for 15 st_gone "$SPORT_OLD" || fail "the old status port still accepts connections"
assert_eq $((before + N)) "$(m "$CMD_SET")" "commands_total after moving the status listener"
[ "$(rd_status_pids | wc -l)" -eq 1 ] || fail "expected one status server, have: $(rd_status_pids | tr '\n' ' ')"

# --- /healthz 503: no live worker ------------------------------------------------------
# One worker, killed as soon as it appears: from the third quick death on,
# the master waits before starting it again, and meanwhile has no worker.
write_conf 1
kill -HUP "$RD_PID"
RD_WORKERS=1
wait_for 15 rd_has_workers 1 || fail "no single worker after the reload"
got503=
for ((i = 0; i < 12; i++)); do
    [ -n "$got503" ] && break
    wait_for 40 rd_has_workers 1 || fail "the worker was not restarted"
    for w in $(rd_workers); do kill -KILL "$w" 2>/dev/null; done
    for ((j = 0; j < 10; j++)); do
        st_get "$SPORT" /healthz
        if [ "$ST_CODE" = 503 ]; then
            got503=$ST_BODY
            break
        fi
        sleep 0.02
    done
done
[ -n "$got503" ] || fail "/healthz never said 503 while the worker was being killed"
assert_eq "no live worker processes" "$got503" "the 503 reason"
wait_for 40 rd_has_workers 1 || fail "the worker was not restarted after the kills"
wait_for 10 st_ok "$SPORT" || fail "/healthz is not 200 again once the worker is back"

rd_stop QUIT
assert_eq 0 "$RD_LAST_RC" "redoubt exit status after QUIT"
pass
