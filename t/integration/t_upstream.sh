#!/bin/bash
# t_upstream: redoubt with its Redis down answers "ERR redoubt: upstream..."
# and keeps the session; when Redis comes back the same session works; a
# Redis that dies under a pending BLPOP gives the client an error reply at
# once instead of a hang.
# shellcheck disable=SC2016,SC2119,SC2317 # RESP literals; optional args; helpers called indirectly
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
rd_init

RPORT=$(free_port) || fail "no free port for redis"
RD_REDIS_PORT[a]=$RPORT
rd_conf "$RPORT" > "$T/redoubt.conf"
rd_start                       # nothing listens on $RPORT yet

UPSTREAM_ERR="-ERR redoubt: upstream"

# expect_upstream_error S WHAT: the next reply on S is redoubt's error.
expect_upstream_error() {
    local rc
    sess_read "$1" 5; rc=$?
    case $rc in
        1) fail "$2: connection closed instead of an error reply" ;;
        2) fail "$2: no reply within 5 s" ;;
    esac
    assert_prefix "$UPSTREAM_ERR" "$REPLY" "$2"
}

# --- Redis down from the start -----------------------------------------
S=
sess_open S || fail "cannot connect to redoubt"
sess_send "$S" PING
expect_upstream_error "$S" "PING with the upstream down"
sess_send "$S" SET k v
expect_upstream_error "$S" "second command on the same session, upstream still down"
# A pipeline while down: one error per command, in order, none lost.
sess_send_raw "$S" $'*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n'
for i in 1 2 3; do
    expect_upstream_error "$S" "pipelined command $i with the upstream down"
done
# Other sessions get the same, and the worker is fine.
out=$(rcli GET k 2>&1)
assert_prefix "ERR redoubt: upstream" "$out" "redis-cli GET with the upstream down"

# --- Redis comes up: the same session works ----------------------------
redis_start a "$RPORT"
sess_expect "$S" "+OK" SET k v
sess_expect "$S" "v" GET k
assert_eq v "$(dcli a GET k)" "the SET after reconnecting reached redis"
assert_eq v "$(rcli GET k)" "a new session after redis came up"

# --- Redis restarts while the session is idle --------------------------
redis_stop a
redis_start a "$RPORT"
dcli a SET k v2 >/dev/null
sess_cmd "$S" GET k
assert_eq v2 "$REPLY" "first command after redis restarted under an idle session"

# --- Redis dies under a pending BLPOP -----------------------------------
blocked() { [ "$(dcli a INFO clients | tr -d '\r' | sed -n 's/^blocked_clients://p')" = 1 ]; }
sess_send "$S" BLPOP queue 0
sess_send "$S" PING                        # queued behind the BLPOP
wait_for 5 blocked || fail "BLPOP did not block in redis"
sess_read "$S" 0.3
[ $? -eq 2 ] || fail "BLPOP answered before redis died: '$REPLY'"
t0=$(now_ms)
redis_stop a KILL
expect_upstream_error "$S" "pending BLPOP when redis was killed"
expect_upstream_error "$S" "PING pipelined behind the BLPOP when redis was killed"
t1=$(now_ms)
[ $((t1 - t0)) -lt 3000 ] || fail "the error replies took $((t1 - t0)) ms after redis died"
note "error replies $((t1 - t0)) ms after redis was killed"

# Still usable: errors while down, service once it is back.
sess_send "$S" PING
expect_upstream_error "$S" "PING after redis was killed"
redis_start a "$RPORT"
sess_expect "$S" "+PONG" PING
sess_expect "$S" "+OK" SET after restart
assert_eq restart "$(dcli a GET after)" "SET after redis was back"

# --- a pipeline in flight when Redis dies -------------------------------
# Many commands in flight; whatever was not answered gets an error, in
# order, and nothing hangs.
dcli a DEL list >/dev/null
{
    for ((i = 0; i < 200; i++)); do resp_encode RPUSH list "$i"; done
    resp_encode BLPOP nothing 0
    for ((i = 0; i < 50; i++)); do resp_encode PING; done
} > "$T/inflight.in"
cat "$T/inflight.in" >&"$S"
wait_for 5 blocked || fail "BLPOP in the pipeline did not block in redis"
redis_stop a KILL
for ((i = 0; i < 200; i++)); do
    sess_read "$S" 5 || fail "reply $i of the pipeline: connection closed or no reply"
    assert_eq ":$((i + 1))" "$REPLY" "RPUSH reply $i before redis died"
done
for ((i = 0; i < 51; i++)); do
    expect_upstream_error "$S" "command $i in flight when redis died"
done
redis_start a "$RPORT"
sess_expect "$S" "+PONG" PING

sess_close "$S"
assert_eq PONG "$(rcli PING)" "a new session at the end"
pass
