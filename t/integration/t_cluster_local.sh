#!/bin/bash
# t_cluster_local: the commands client libraries send on connect and the
# administrative commands, through redoubt in front of a real 6-node TLS
# Redis Cluster (clients on a plaintext listener, AUTH alice). The
# cluster's own answers (straight to the nodes, ccli) are the oracle:
#   1  HELLO / HELLO 2: the map (version = the nodes' redis_version, id =
#      CLIENT ID, mode standalone, role master); HELLO 3 -NOPROTO
#   2  HELLO 2 AUTH right and wrong (WRONGPASS as Redis's, the session's
#      user after it by ACL WHOAMI), HELLO 2 SETNAME then CLIENT GETNAME;
#      the HELLO's AUTH reaches the masters the session connects to later
#   3  CLIENT SETNAME/GETNAME/ID/INFO/LIST/SETINFO: ids unique over many
#      sessions (both workers) and stable in one, CLIENT LIST this session
#      only, Redis's errors
#   4  CLIENT NO-EVICT on/off on every node connection of the session,
#      also those it opens later (flag e in the nodes' CLIENT LIST)
#   5  SELECT 0/1, READONLY, READWRITE, TIME, COMMAND COUNT, ACL WHOAMI,
#      the refused ACL and CLIENT subcommands
#   6  INFO: keyspace sum = DBSIZE = the nodes' sum, stats counters
#      summed, clients = the gateway's sessions, server/replication/
#      cluster sections, several sections, "everything"
#   7  CONFIG GET from a master, CONFIG SET on every master (and back),
#      SLOWLOG LEN/GET/RESET against the nodes' slow logs
#   8  MEMORY USAGE/STATS/DOCTOR, LATENCY LATEST/HISTORY/RESET against
#      the nodes' latency events
#   9  a database user whose Redis ACL forbids CONFIG gets the node's
#      NOPERM
# shellcheck disable=SC2016,SC2317 # Lua text; functions called indirectly
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
rd_init
need_tls
RD_WORKERS=2

T_START=$(now_ms)
NC_PW=$(openssl rand -hex 12) || fail "openssl rand"
cluster_start "user noconf on >$NC_PW ~* &* +@all -config"
PW=$CLUSTER_ALICE_PW
note "cluster up in $(( $(now_ms) - T_START )) ms"

N1=${CLUSTER_PORTS[0]}
N2=${CLUSTER_PORTS[1]}
CONF=$T/redoubt.conf
cat > "$CONF" <<EOF
worker_processes = $RD_WORKERS;
pid_file = "$T/redoubt.pid";
error_log = { path = "$T/error.log"; level = "${RD_LOG_LEVEL:-info}"; };
upstream_tls = { ca_cert = "$CLUSTER_CA/db-client-ca.crt"; ca_key = "$CLUSTER_CA/db-client-ca.key";
                 server_ca = "$CLUSTER_CA/db-ca.crt"; };
listen = ( { address = "127.0.0.1:$RD_PORT"; database = "c"; tls = false; } );
databases = (
  { name = "c"; uri = "rediss://127.0.0.1:$N1?mode=cluster"; connect_timeout = "2s";
    cluster = { seeds = [ "127.0.0.1:$N2" ]; }; }
);
EOF
rd_start "$CONF"

mapfile -t MASTERS < <(cluster_masters)
[ "${#MASTERS[@]}" -eq 3 ] || fail "expected 3 masters: ${MASTERS[*]}"

# ucli USER PASS PORT ARGS...: redis-cli straight to a node as USER.
ucli() {
    local u=$1 p=$2 port=$3
    shift 3
    REDISCLI_AUTH=$p timeout 20 redis-cli --tls --cert "$CLUSTER_CLIENT.crt" \
        --key "$CLUSTER_CLIENT.key" --cacert "$CLUSTER_CA/db-ca.crt" --user "$u" \
        --no-auth-warning -h 127.0.0.1 -p "$port" "$@"
}
# field NAME TEXT: the value of NAME:value in an INFO text.
field() { tr -d '\r' <<<"$2" | sed -n "s/^$1://p" | head -n 1; }
# nodes_sum SECTION NAME: NAME summed over the masters' INFO SECTION.
nodes_sum() {
    local p s=0 v
    for p in "${MASTERS[@]}"; do
        v=$(field "$2" "$(ccli "$p" INFO "$1")")
        s=$((s + v))
    done
    echo "$s"
}
# one key per master: KEYS_ON[i] lives on MASTERS[i].
KEYS_ON=()
for ((i = 0; i < 3; i++)); do
    j=0
    while :; do
        k="local:$i:$j"
        # Not this master's key: MOVED.
        if [ "$(ccli "${MASTERS[$i]}" SET "$k" x 2>&1)" = OK ]; then KEYS_ON+=("$k"); break; fi
        j=$((j + 1))
    done
done
note "keys: ${KEYS_ON[*]}"
VERSION=$(field redis_version "$(ccli "${MASTERS[0]}" INFO server)")

# --- 1: HELLO -------------------------------------------------------------
asess S
sess_cmd "$S" CLIENT ID
ID=$REPLY
[[ $ID =~ ^:[0-9]+$ ]] || fail "CLIENT ID: $ID"
ID=${ID#:}
want=$(printf '%s\n' '*14' server redis version "$VERSION" proto :2 id ":$ID" mode standalone role master modules '*0')
sess_expect "$S" "$want" HELLO 2
sess_expect "$S" "$want" HELLO
sess_expect "$S" "$want" HELLO 2 SETNAME by-hello
sess_expect "$S" "by-hello" CLIENT GETNAME
sess_expect "$S" "-NOPROTO unsupported protocol version" HELLO 3
sess_expect "$S" "-NOPROTO unsupported protocol version" HELLO 4
sess_expect "$S" "+PONG" PING

# --- 2: HELLO AUTH, SETNAME -----------------------------------------------
wrong=$(tls_cli "${MASTERS[0]}" "$CLUSTER_CLIENT" "$CLUSTER_CA/db-ca.crt" HELLO 2 AUTH alice not-the-password 2>&1)
assert_prefix WRONGPASS "$wrong" "HELLO AUTH with a wrong password, straight to a node"
sess_open H || fail "connect"
sess_expect "$H" "-$wrong" HELLO 2 AUTH alice not-the-password
sess_cmd "$H" ACL WHOAMI
assert_prefix "-NOAUTH" "$REPLY" "ACL WHOAMI after a refused HELLO AUTH"
sess_cmd "$H" HELLO 2 AUTH alice "$PW" SETNAME app-one
hid=$(sess_cmd "$H" CLIENT ID; echo "${REPLY#:}")
want=$(printf '%s\n' '*14' server redis version "$VERSION" proto :2 id ":$hid" mode standalone role master modules '*0')
sess_expect "$H" "$want" HELLO 2 AUTH alice "$PW" SETNAME app-one
sess_expect "$H" "alice" ACL WHOAMI
sess_expect "$H" "app-one" CLIENT GETNAME
# The HELLO's AUTH is what new node connections send first.
for k in "${KEYS_ON[@]}"; do sess_expect "$H" "x" GET "$k"; done
sess_expect "$H" "-$wrong" HELLO 2 AUTH noconf not-the-password
sess_expect "$H" "alice" ACL WHOAMI
sess_cmd "$H" HELLO 2 AUTH noconf "$NC_PW"
assert_prefix '*14' "$REPLY" "HELLO 2 AUTH noconf"
sess_expect "$H" "noconf" ACL WHOAMI
for k in "${KEYS_ON[@]}"; do sess_expect "$H" "x" GET "$k"; done
sess_close "$H"
note "HELLO done at $(( $(now_ms) - T_START )) ms"

# --- 3: CLIENT --------------------------------------------------------------
sess_expect "$S" "+OK" CLIENT SETNAME ""
sess_expect "$S" "(nil)" CLIENT GETNAME
sess_expect "$S" "+OK" CLIENT SETNAME my-conn
sess_expect "$S" "my-conn" CLIENT GETNAME
bad=$(ccli "${MASTERS[0]}" CLIENT SETNAME "a b" 2>&1)
sess_expect "$S" "-$bad" CLIENT SETNAME "a b"
sess_expect "$S" "my-conn" CLIENT GETNAME
bad=$(ccli "${MASTERS[0]}" CLIENT GETNAME x 2>&1)
sess_expect "$S" "-$bad" CLIENT GETNAME x
sess_expect "$S" ":$ID" CLIENT ID
sess_expect "$S" "+OK" CLIENT SETINFO LIB-NAME redis-py
sess_expect "$S" "+OK" CLIENT SETINFO lib-ver 5.0.1
sess_expect "$S" "-ERR Unrecognized option 'foo'" CLIENT SETINFO foo bar
sess_expect "$S" "-ERR lib-name cannot contain spaces, newlines or special characters." CLIENT SETINFO lib-name "a b"
sess_expect "$S" "-ERR wrong number of arguments for 'client|setinfo' command" CLIENT SETINFO lib-name
sess_cmd "$S" CLIENT LIST
list=$REPLY
[ "$(grep -c '^id=' <<<"$list")" -eq 1 ] || fail "CLIENT LIST shows more than this session: $list"
for f in "id=$ID " " name=my-conn " " db=0 " " user=alice " " resp=2 " " lib-name=redis-py " " lib-ver=5.0.1" " cmd=client|list "; do
    assert_contains "$f" "$list" "CLIENT LIST"
done
sess_cmd "$S" CLIENT INFO
assert_contains "id=$ID " "$REPLY" "CLIENT INFO"
assert_contains " cmd=client|info " "$REPLY" "CLIENT INFO"
sess_cmd "$S" CLIENT LIST ID "$ID"
assert_contains "id=$ID " "$REPLY" "CLIENT LIST ID mine"
sess_expect "$S" "" CLIENT LIST ID 1
sess_expect "$S" "" CLIENT LIST TYPE pubsub
bad=$(ccli "${MASTERS[0]}" CLIENT LIST TYPE foo 2>&1)
sess_expect "$S" "-$bad" CLIENT LIST TYPE foo
bad=$(ccli "${MASTERS[0]}" CLIENT LIST ID x 2>&1)
sess_expect "$S" "-$bad" CLIENT LIST ID x
# Ids: unique over sessions (they land on both workers), stable in each.
declare -A seen=()
for ((i = 0; i < 8; i++)); do
    sess_open X || fail connect
    sess_cmd "$X" CLIENT ID; a=$REPLY
    sess_cmd "$X" CLIENT ID; b=$REPLY
    assert_eq "$a" "$b" "CLIENT ID twice in one session"
    [ -z "${seen[$a]:-}" ] || fail "CLIENT ID $a given to two sessions"
    [ "$a" != ":$ID" ] || fail "CLIENT ID $a given to two sessions"
    seen[$a]=1
    sess_close "$X"
done
sess_expect "$S" ":$ID" CLIENT ID

# --- 4: CLIENT NO-EVICT -------------------------------------------------------
# Named node connections: the HELLO SETNAME goes to the nodes with its
# AUTH, and new connections replay it.
sess_open E || fail connect
sess_cmd "$E" HELLO 2 AUTH alice "$PW" SETNAME evict-me
assert_prefix '*14' "$REPLY" "HELLO for the NO-EVICT session"
sess_expect "$E" "x" GET "${KEYS_ON[0]}"
sess_expect "$E" "+OK" CLIENT NO-EVICT on
for k in "${KEYS_ON[@]}"; do sess_expect "$E" "x" GET "$k"; done
evict_flags() {
    local p
    for p in "${MASTERS[@]}"; do
        ccli "$p" CLIENT LIST | tr -d '\r' | grep ' name=evict-me ' | sed 's/.* flags=\([^ ]*\) .*/\1/' | tr '\n' ' '
        echo "@$p"
    done
}
got=$(evict_flags)
for p in "${MASTERS[@]}"; do
    assert_contains "e @$p" "$got" "flag e on every master's connection of the session after CLIENT NO-EVICT on"
done
sess_cmd "$E" CLIENT INFO
assert_contains " flags=e " "$REPLY" "CLIENT INFO after CLIENT NO-EVICT on"
sess_expect "$E" "+OK" CLIENT NO-EVICT off
got=$(evict_flags)
for p in "${MASTERS[@]}"; do
    assert_contains "N @$p" "$got" "flags after CLIENT NO-EVICT off"
done
bad=$(ccli "${MASTERS[0]}" CLIENT NO-EVICT maybe 2>&1)
sess_expect "$E" "-$bad" CLIENT NO-EVICT maybe
sess_close "$E"

# --- 5: SELECT, READONLY, TIME, COMMAND, ACL ----------------------------------
sess_expect "$S" "+OK" SELECT 0
bad=$(ccli "${MASTERS[0]}" SELECT 1 2>&1)
assert_eq "ERR SELECT is not allowed in cluster mode" "$bad" "SELECT 1 on a node"
sess_expect "$S" "-$bad" SELECT 1
bad=$(ccli "${MASTERS[0]}" SELECT x 2>&1)
sess_expect "$S" "-$bad" SELECT x
bad=$(ccli "${MASTERS[0]}" SELECT 99999999999 2>&1)
sess_expect "$S" "-$bad" SELECT 99999999999
sess_expect "$S" "+OK" READONLY
sess_expect "$S" "+OK" READWRITE
bad=$(ccli "${MASTERS[0]}" READONLY x 2>&1)
sess_expect "$S" "-$bad" READONLY x
sess_cmd "$S" TIME
mapfile -t tm <<<"$REPLY"
assert_eq '*2' "${tm[0]}" "TIME: two elements"
now=$(date +%s)
if [ "${tm[1]}" -lt $((now - 5)) ] || [ "${tm[1]}" -gt $((now + 5)) ]; then
    fail "TIME says ${tm[1]}, the clock $now"
fi
[[ ${tm[2]} =~ ^[0-9]+$ ]] || fail "TIME microseconds: ${tm[2]}"
sess_expect "$S" ":$(ccli "${MASTERS[0]}" COMMAND COUNT)" COMMAND COUNT
sess_expect "$S" "$(printf '*2\na\nb')" COMMAND GETKEYS MSET a 1 b 2
sess_expect "$S" "alice" ACL WHOAMI
sess_expect "$S" "-ERR redoubt: command not supported" ACL SETUSER eve on
sess_expect "$S" "-ERR redoubt: command not supported" ACL LIST
sess_expect "$S" "-ERR redoubt: command not supported" CLIENT KILL ID 1
sess_expect "$S" "-ERR redoubt: command not supported" CLIENT REPLY OFF
sess_expect "$S" "-ERR redoubt: command not supported" CLIENT PAUSE 10
sess_expect "$S" "-ERR redoubt: command not supported" CLIENT TRACKING on
sess_expect "$S" "+PONG" PING
note "CLIENT, SELECT... done at $(( $(now_ms) - T_START )) ms"

# --- 6: INFO -----------------------------------------------------------------
# 300 keys more, some with a TTL.
{
    for ((i = 0; i < 300; i++)); do resp_encode SET "info:$i" v; done
    for ((i = 0; i < 40; i++)); do resp_encode EXPIRE "info:$i" 1000; done
    for ((i = 0; i < 50; i++)); do resp_encode GET "info:$i"; done
    for ((i = 0; i < 20; i++)); do resp_encode GET "nokey:$i"; done
} > "$T/info.in"
sess_open P || fail connect
sess_send "$P" AUTH alice "$PW"
cat "$T/info.in" >&"$P"
for ((i = 0; i < 411; i++)); do sess_read "$P" || fail "pipelined reply $i"; done
sess_close "$P"
total=0
for p in "${MASTERS[@]}"; do total=$((total + $(ccli "$p" DBSIZE))); done
assert_eq 303 "$total" "keys on the masters"
sess_expect "$S" ":$total" DBSIZE
sess_cmd "$S" INFO keyspace
ks=$(tr -d '\r' <<<"$REPLY")
keys=$(sed -n 's/^db0:keys=\([0-9]*\),expires=\([0-9]*\),.*/\1/p' <<<"$ks")
exps=$(sed -n 's/^db0:keys=\([0-9]*\),expires=\([0-9]*\),.*/\2/p' <<<"$ks")
assert_eq "$total" "$keys" "INFO keyspace keys vs the masters' DBSIZE sum"
assert_eq 40 "$exps" "INFO keyspace expires"
assert_eq "# Keyspace" "$(head -n 1 <<<"$ks")" "INFO keyspace header"
for f in keyspace_hits keyspace_misses expired_keys; do
    want=$(nodes_sum stats "$f")
    sess_cmd "$S" INFO stats
    assert_eq "$want" "$(field "$f" "$REPLY")" "INFO stats $f vs the masters' sum"
done
[ "$(nodes_sum stats keyspace_hits)" -ge 53 ] || fail "keyspace_hits: the GETs were not counted"
sess_cmd "$S" INFO
info=$(tr -d '\r' <<<"$REPLY")
assert_eq "standalone" "$(field redis_mode "$info")" "INFO redis_mode"
assert_eq "$VERSION" "$(field redis_version "$info")" "INFO redis_version"
[ -n "$(field redoubt_version "$info")" ] || fail "INFO has no redoubt_version"
assert_eq "master" "$(field role "$info")" "INFO role"
assert_eq "0" "$(field connected_slaves "$info")" "INFO connected_slaves"
assert_eq "0" "$(field cluster_enabled "$info")" "INFO cluster_enabled"
assert_eq "$RD_PORT" "$(field tcp_port "$info")" "INFO tcp_port"
sections=$(grep '^# ' <<<"$info" | tr '\n' ' ')
assert_eq "# Server # Clients # Memory # Persistence # Stats # Replication # CPU # Modules # Errorstats # Cluster # Keyspace " "$sections" "INFO's default sections"
sess_cmd "$S" INFO server clients
assert_eq "# Server # Clients " "$(tr -d '\r' <<<"$REPLY" | grep '^# ' | tr '\n' ' ')" "INFO server clients"
sess_cmd "$S" INFO everything
assert_contains "# Commandstats" "$REPLY" "INFO everything"
assert_contains "cmdstat_get:calls=" "$REPLY" "INFO everything"
sess_expect "$S" "" INFO no-such-section
# connected_clients: this gateway's sessions of the database (S, and
# two more).
asess C1
asess C2
clients_are() { sess_cmd "$S" INFO clients; [ "$(field connected_clients "$REPLY")" = "$1" ]; }
wait_for 10 clients_are 3 || fail "INFO clients connected_clients: $(field connected_clients "$REPLY"), expected 3"
sess_close "$C1"
sess_close "$C2"
wait_for 10 clients_are 1 || fail "INFO clients connected_clients after two closed: $(field connected_clients "$REPLY")"
note "INFO done at $(( $(now_ms) - T_START )) ms"

# --- 7: CONFIG, SLOWLOG -------------------------------------------------------
sess_expect "$S" "*2"$'\n'"$(ccli "${MASTERS[0]}" CONFIG GET maxmemory-samples)" CONFIG GET maxmemory-samples
sess_expect "$S" "+OK" CONFIG SET maxmemory-samples 7
for p in "${MASTERS[@]}"; do
    assert_eq $'maxmemory-samples\n7' "$(ccli "$p" CONFIG GET maxmemory-samples)" "CONFIG SET through redoubt, on the master at $p"
done
sess_expect "$S" "$(printf '*2\nmaxmemory-samples\n7')" CONFIG GET maxmemory-samples
sess_expect "$S" "+OK" CONFIG SET maxmemory-samples 5
for p in "${MASTERS[@]}"; do
    assert_eq $'maxmemory-samples\n5' "$(ccli "$p" CONFIG GET maxmemory-samples)" "CONFIG SET back, on the master at $p"
done
bad=$(ccli "${MASTERS[0]}" CONFIG SET no-such-thing 1 2>&1)
sess_expect "$S" "-$bad" CONFIG SET no-such-thing 1

sess_expect "$S" "+OK" SLOWLOG RESET
for p in "${MASTERS[@]}"; do assert_eq 0 "$(ccli "$p" SLOWLOG LEN)" "SLOWLOG LEN after RESET through redoubt, at $p"; done
sess_expect "$S" "+OK" CONFIG SET slowlog-log-slower-than 0
for k in "${KEYS_ON[@]}"; do
    sess_expect "$S" "x" GET "$k"
    sess_expect "$S" "+OK" SET "$k" x
done
sess_expect "$S" "+OK" CONFIG SET slowlog-log-slower-than -1
sum=0
for p in "${MASTERS[@]}"; do
    n=$(ccli "$p" SLOWLOG LEN)
    [ "$n" -ge 2 ] || fail "SLOWLOG LEN at $p: $n (each master ran a GET and a SET)"
    sum=$((sum + n))
done
sess_expect "$S" ":$sum" SLOWLOG LEN
sess_cmd "$S" SLOWLOG GET
assert_prefix "*$((sum < 10 ? sum : 10))"$'\n' "$REPLY" "SLOWLOG GET: the newest 10"
sess_cmd "$S" SLOWLOG GET -1
assert_prefix "*$sum"$'\n' "$REPLY" "SLOWLOG GET -1: every entry of every master"
sess_send "$S" SLOWLOG GET 4
# The raw reply: 4 entries, newest first.
IFS= read -r -t 10 -u "$S" line || fail "SLOWLOG GET 4: no reply"
assert_eq '*4' "${line%$'\r'}" "SLOWLOG GET 4"
prev=
for ((i = 0; i < 4; i++)); do
    IFS= read -r -t 10 -u "$S" line; IFS= read -r -t 10 -u "$S" _; IFS= read -r -t 10 -u "$S" ts
    ts=${ts%$'\r'}; ts=${ts#:}
    [ -z "$prev" ] || [ "$ts" -le "$prev" ] || fail "SLOWLOG GET: entries not newest first ($prev then $ts)"
    prev=$ts
    # the rest of the entry: duration, args array, addr, name
    sess_read "$S"; sess_read "$S"; sess_read "$S"; sess_read "$S"
done
sess_expect "$S" "+OK" SLOWLOG RESET
for p in "${MASTERS[@]}"; do assert_eq 0 "$(ccli "$p" SLOWLOG LEN)" "SLOWLOG LEN after the last RESET, at $p"; done
sess_expect "$S" "+OK" CONFIG SET slowlog-log-slower-than 10000
for p in "${MASTERS[@]}"; do
    assert_eq $'slowlog-log-slower-than\n10000' "$(ccli "$p" CONFIG GET slowlog-log-slower-than)" "slowlog-log-slower-than back, at $p"
done
sess_expect "$S" "+OK" CONFIG RESETSTAT
for p in "${MASTERS[@]}"; do
    assert_eq 0 "$(field keyspace_hits "$(ccli "$p" INFO stats)")" "keyspace_hits after CONFIG RESETSTAT, at $p"
done

# --- 8: MEMORY, LATENCY --------------------------------------------------------
k=${KEYS_ON[1]}
sess_expect "$S" ":$(ccli "${MASTERS[1]}" MEMORY USAGE "$k")" MEMORY USAGE "$k"
sess_cmd "$S" MEMORY STATS
mstats=$REPLY
kc=$(grep -A1 -x 'keys.count' <<<"$mstats" | tail -n 1)
assert_eq ":$total" "$kc" "MEMORY STATS keys.count: the masters' sum"
sess_cmd "$S" MEMORY DOCTOR
assert_eq 3 "$(grep -c '^=== node ' <<<"$REPLY")" "MEMORY DOCTOR: a report per master"
# Latency events: a 3 ms busy script on each master, straight, after
# CONFIG SET latency-monitor-threshold 1 through redoubt.
sess_expect "$S" "+OK" CONFIG SET latency-monitor-threshold 1
busy='local s = redis.call("TIME") local t0 = s[1] * 1000000 + s[2]
repeat local n = redis.call("TIME") until n[1] * 1000000 + n[2] - t0 > 3000
return 1'
# (On a loaded machine other events, fast-command for one, may cross the
# 1 ms threshold too: the "command" row is compared, and the number of
# rows is the number of events the masters know.)
hist=0 maxl=0 newest=0
declare -A events=()
for p in "${MASTERS[@]}"; do
    ccli "$p" EVAL "$busy" 0 >/dev/null
    ccli "$p" EVAL "$busy" 0 >/dev/null
    n=$(ccli "$p" LATENCY HISTORY command | wc -l)
    [ "$n" -ge 2 ] || fail "LATENCY HISTORY command at $p: no samples (test setup)"
    hist=$((hist + n / 2))
    mapfile -t row < <(ccli "$p" LATENCY LATEST)
    for ((i = 0; i + 3 < ${#row[@]}; i += 4)); do
        events[${row[i]}]=1
        [ "${row[i]}" = command ] || continue
        [ "${row[i + 3]}" -gt "$maxl" ] && maxl=${row[i + 3]}
        [ "${row[i + 1]}" -gt "$newest" ] && newest=${row[i + 1]}
    done
done
sess_cmd "$S" LATENCY LATEST
mapfile -t row <<<"$REPLY"
assert_eq "*${#events[@]}" "${row[0]}" "LATENCY LATEST: one row per event the masters know"
at=
for ((i = 1; i < ${#row[@]}; i++)); do [ "${row[i]}" = command ] && at=$i; done
if [ -z "$at" ] || [ "${row[at - 1]}" != '*4' ]; then
    fail "LATENCY LATEST: no row for the command event: ${row[*]}"
fi
assert_eq ":$newest" "${row[at + 1]}" "LATENCY LATEST: the newest sample's time"
assert_eq ":$maxl" "${row[at + 3]}" "LATENCY LATEST: the largest max"
sess_cmd "$S" LATENCY HISTORY command
assert_eq "*$hist" "$(head -n 1 <<<"$REPLY")" "LATENCY HISTORY: every master's samples"
sess_cmd "$S" LATENCY RESET
if ! [[ $REPLY =~ ^:[0-9]+$ ]] || [ "${REPLY#:}" -lt 3 ]; then
    fail "LATENCY RESET through redoubt: $REPLY (the masters' events summed, 3 at least)"
fi
sess_expect "$S" "+OK" CONFIG SET latency-monitor-threshold 0
sess_expect "$S" "+PONG" PING

# --- 9: Redis's ACL decides --------------------------------------------------------
noperm=$(ucli noconf "$NC_PW" "${MASTERS[0]}" CONFIG GET maxmemory 2>&1)
assert_prefix NOPERM "$noperm" "CONFIG GET as noconf straight to a node"
sess_open U || fail connect
sess_expect "$U" "+OK" AUTH noconf "$NC_PW"
sess_expect "$U" "-$noperm" CONFIG GET maxmemory
noperm=$(ucli noconf "$NC_PW" "${MASTERS[0]}" CONFIG SET maxmemory-samples 6 2>&1)
assert_prefix NOPERM "$noperm" "CONFIG SET as noconf straight to a node"
sess_expect "$U" "-$noperm" CONFIG SET maxmemory-samples 6
for p in "${MASTERS[@]}"; do
    assert_eq $'maxmemory-samples\n5' "$(ccli "$p" CONFIG GET maxmemory-samples)" "after a refused CONFIG SET, at $p"
done
sess_expect "$U" "noconf" ACL WHOAMI
sess_close "$U"
sess_close "$S"

note "total $(( $(now_ms) - T_START )) ms"
pass
