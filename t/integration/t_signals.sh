#!/bin/bash
# t_signals: the master's signals and -s: reload with SIGHUP while a session
# is open (the session keeps the old database, new sessions get the new
# one), an invalid config on reload keeps the old one, a killed worker is
# replaced, USR1 reopens the log, graceful QUIT waits for an open session,
# and -s reload|reopen|quit|stop through the pid file.
# shellcheck disable=SC2016,SC2119,SC2317 # RESP literals; optional args; helpers called indirectly
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
rd_init

redis_start a
redis_start b
RD_SHUTDOWN_TIMEOUT=30s        # long, so that exits below are not timeouts
CONF=$T/redoubt.conf

# use_db NAME [EXTRA]: point the config at redis NAME (written atomically).
use_db() {
    rd_conf "${RD_REDIS_PORT[$1]}" "${2:-}" > "$CONF.new" && mv "$CONF.new" "$CONF"
}

# landed KEY: which redis holds KEY (a, b, both or none).
landed() {
    local ina inb
    ina=$(dcli a EXISTS "$1"); inb=$(dcli b EXISTS "$1")
    case $ina$inb in 10) echo a ;; 01) echo b ;; 11) echo both ;; *) echo none ;; esac
}

# new_sessions_use NAME: four new sessions in a row all reach redis NAME.
PROBE=0
new_sessions_use() {
    local i key
    for i in 1 2 3 4; do
        PROBE=$((PROBE + 1)); key=probe-$PROBE
        [ "$(rcli SET "$key" 1 2>&1)" = OK ] || return 1
        [ "$(landed "$key")" = "$1" ] || return 1
    done
}

# running PID: exists and is not a zombie.
running() {
    local line
    { IFS= read -r line < "/proc/$1/stat"; } 2>/dev/null || return 1
    line=${line##*) }
    [ "${line%% *}" != Z ]
}

# still_running PIDS...: print those still running.
still_running() {
    local p
    for p in "$@"; do running "$p" && echo "$p"; done
}

count_still_running() { [ "$(still_running "${@:2}" | wc -l)" -eq "$1" ]; }

use_db a
rd_start
master=$RD_PID
assert_eq "$master" "$(tr -d ' \n' < "$T/redoubt.pid")" "pid file content"
new_sessions_use a || fail "sessions do not reach redis a"

# --- SIGHUP with a session open -----------------------------------------
S1=
sess_open S1 || fail "cannot connect to redoubt"
sess_expect "$S1" "+OK" SET s1-before 1
assert_eq a "$(landed s1-before)" "session 1 before the reload"
read -r -a old_workers <<<"$(rd_workers | tr '\n' ' ')"
[ "${#old_workers[@]}" -eq 2 ] || fail "expected 2 workers, have: ${old_workers[*]}"

use_db b
kill -HUP "$master"
wait_for 10 new_sessions_use b || fail "after SIGHUP new sessions do not reach the new config's database (b)"
running "$master" || fail "master died on SIGHUP"

sess_expect "$S1" "+OK" SET s1-after 1
assert_eq a "$(landed s1-after)" "session opened before the reload, used after it"
sess_expect "$S1" "1" GET s1-before

# Two new workers; of the old ones only the one holding session 1 is left.
wait_for 10 count_still_running 1 "${old_workers[@]}" ||
    fail "old workers after reload: expected 1 still running (session 1's), have: $(still_running "${old_workers[@]}" | tr '\n' ' ')"
read -r -a workers <<<"$(rd_workers | tr '\n' ' ')"
new=0
for w in "${workers[@]}"; do
    [[ " ${old_workers[*]} " == *" $w "* ]] || new=$((new + 1))
done
assert_eq 2 "$new" "new workers after the reload (workers now: ${workers[*]}, before: ${old_workers[*]})"
# Closing session 1 lets its old worker finish, well before the 30 s timeout.
sess_expect "$S1" "+OK" SET s1-last 1
assert_eq a "$(landed s1-last)" "session 1's last command"
sess_close "$S1"
wait_for 5 count_still_running 0 "${old_workers[@]}" ||
    fail "old worker did not exit within 5 s after its last session closed: $(still_running "${old_workers[@]}")"
wait_for 5 rd_has_workers 2 || fail "expected 2 workers after the reload, have: $(rd_workers | tr '\n' ' ')"

# --- an invalid config on reload -----------------------------------------
read -r -a workers <<<"$(rd_workers | tr '\n' ' ')"
use_db a 'bogus_directive = 1;'
"$REDOUBT" -t -c "$CONF" >/dev/null 2>&1 && fail "the invalid config passes -t (test bug)"
kill -HUP "$master"
log_says_bogus() { grep -q bogus_directive "$T/error.log"; }
wait_for 10 log_says_bogus || fail "an invalid config on reload: the error log does not say why (no 'bogus_directive')"
note "log: $(grep bogus_directive "$T/error.log" | tail -n 1)"
sleep 0.3
running "$master" || fail "master died on a reload with an invalid config"
assert_eq "${workers[*]}" "$(rd_workers | tr '\n' ' ' | sed 's/ $//')" "workers after a reload with an invalid config"
new_sessions_use b || fail "after a failed reload new sessions no longer reach the old config's database (b)"
use_db b

# --- a killed worker is replaced -----------------------------------------
victim=${workers[0]}
kill -KILL "$victim"
replaced() {
    local now
    now=$(rd_workers | tr '\n' ' ')
    [[ " $now " != *" $victim "* ]] && [ "$(rd_count_workers "$master")" -eq 2 ]
}
wait_for 10 replaced || fail "killed worker $victim not replaced within 10 s (workers: $(rd_workers | tr '\n' ' '))"
note "worker $victim killed; workers now: $(rd_workers | tr '\n' ' ')"
for _ in 1 2 3; do
    new_sessions_use b || fail "after a worker was replaced sessions do not reach b (the replacement must use the current config)"
done

# --- redoubt -s reload ---------------------------------------------------
use_db a
out=$("$REDOUBT" -c "$CONF" -s reload 2>&1) || fail "-s reload failed: $out"
wait_for 10 new_sessions_use a || fail "after -s reload new sessions do not reach a"
wait_for 10 rd_has_workers 2 || fail "expected 2 workers after -s reload, have: $(rd_workers | tr '\n' ' ')"

# --- USR1 and -s reopen ---------------------------------------------------
# reopened OLD: the log is a fresh file at the original path, and traffic no
# longer goes to the renamed one.
reopened() {
    local s1 s2
    [ -e "$T/error.log" ] || return 1
    s1=$(wc -c < "$1")
    rcli PING >/dev/null; rcli PING >/dev/null; rcli PING >/dev/null
    s2=$(wc -c < "$1")
    [ "$s1" -eq "$s2" ] && [ -s "$T/error.log" ]
}
mv "$T/error.log" "$T/error.log.1"
kill -USR1 "$master"
wait_for 10 reopened "$T/error.log.1" || fail "SIGUSR1: no fresh error.log with new lines, or lines still going to the renamed file"
mv "$T/error.log" "$T/error.log.2"
out=$("$REDOUBT" -c "$CONF" -s reopen 2>&1) || fail "-s reopen failed: $out"
wait_for 10 reopened "$T/error.log.2" || fail "-s reopen: no fresh error.log with new lines, or lines still going to the renamed file"
grep -q . "$T/error.log.1" || fail "the renamed log is empty"

# --- graceful QUIT with a session open -------------------------------------
S2=
sess_open S2 || fail "cannot connect to redoubt"
sess_expect "$S2" "+OK" SET s2 here
read -r -a workers <<<"$(rd_workers | tr '\n' ' ')"
kill -QUIT "$master"
not_accepting() { [ "$(timeout 1 redis-cli -h 127.0.0.1 -p "$RD_PORT" PING 2>/dev/null)" != PONG ]; }
wait_for 10 not_accepting || fail "still accepting new sessions after SIGQUIT"
running "$master" || fail "master exited on SIGQUIT with a session still open"
sess_expect "$S2" "+PONG" PING
sess_expect "$S2" "here" GET s2
sleep 0.5
running "$master" || fail "master exited within 0.5 s of SIGQUIT with a session still open"
sess_expect "$S2" "+OK" SET s2-last 1
assert_eq a "$(landed s2-last)" "the open session during graceful stop"
sess_close "$S2"
wait_for 10 dead "$master" || fail "master still running 10 s after the last session closed (graceful stop)"
wait "$master"
rc=$?
assert_eq 0 "$rc" "master's exit status after SIGQUIT"
[ -z "$(still_running "${workers[@]}")" ] || fail "workers still running after the master exited: $(still_running "${workers[@]}")"

# --- -s quit and -s stop through the pid file -------------------------------
rd_start
out=$("$REDOUBT" -c "$CONF" -s quit 2>&1) || fail "-s quit failed: $out"
wait_for 10 dead "$RD_PID" || fail "master still running 10 s after -s quit with no sessions"
wait "$RD_PID"; rc=$?
assert_eq 0 "$rc" "master's exit status after -s quit"

rd_start
S3=
sess_open S3 || fail "cannot connect to redoubt"
sess_expect "$S3" "+PONG" PING
out=$("$REDOUBT" -c "$CONF" -s stop 2>&1) || fail "-s stop failed: $out"
wait_for 10 dead "$RD_PID" || fail "master still running 10 s after -s stop (fast stop, one session open)"
wait "$RD_PID"; rc=$?
assert_eq 0 "$rc" "master's exit status after -s stop"
sess_wait_closed "$S3" 5 || fail "session still open after -s stop"
sess_close "$S3"

# With no pid file, -s fails.
rd_conf "${RD_REDIS_PORT[a]}" | sed "s|$T/redoubt.pid|$T/no-such.pid|" > "$T/nopid.conf"
if out=$("$REDOUBT" -c "$T/nopid.conf" -s reload 2>&1); then
    fail "-s reload with no pid file exited 0: $out"
fi
pass
