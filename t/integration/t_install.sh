#!/bin/bash
# t_install: "make install DESTDIR=" as a distribution's package build runs
# it (issue 16): the systemd unit and the logrotate snippet name the
# configured paths, and the files installed there; "systemd-analyze
# verify" and "systemd-analyze security --offline=true" (exposure at most
# 3.0) on the unit when systemd-analyze is installed; the installed sample
# passes "redoubt -t" as installed; a second install keeps an edited
# redoubt.conf and updates redoubt.conf.default; uninstall removes
# redoubt.conf only when it is the sample. Then the master's sd_notify
# messages on a NOTIFY_SOCKET the test listens on (a path and an abstract
# name): READY=1 (with MAINPID) after start, RELOADING=1 then READY=1 on
# SIGHUP (also when the reload fails), STOPPING=1 on SIGTERM and SIGQUIT;
# and, as root, that the unit's CapabilityBoundingSet is enough for
# workers that run as another user to be reloaded and stopped.
# shellcheck disable=SC2119,SC2317 # rd_start's CONF is optional; helpers called through wait_for
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
rd_init
need make python3 cmp sed awk

# The make running this test must not lend its jobserver to ours.
unset MAKEFLAGS MFLAGS MAKELEVEL
mk() { make -C "$RD_BUILDDIR" --no-print-directory "$@"; }

# --- the configured directories, as make expands them -------------------
printf 'include Makefile\nrd-print-dirs:\n\t@printf "%%s=%%s\\n" %s\n' \
    "sbindir '\$(sbindir)' sysconfdir '\$(sysconfdir)' localstatedir '\$(localstatedir)' runstatedir '\$(runstatedir)' mandir '\$(mandir)' unitdir '\$(systemdsystemunitdir)'" \
    > "$T/dirs.mk"
mk -s -f Makefile -f "$T/dirs.mk" rd-print-dirs > "$T/dirs" 2> "$T/dirs.err" ||
    fail "cannot read the configured directories: $(cat "$T/dirs.err")"
declare -A D=()
while IFS='=' read -r k v; do D[$k]=$v; done < "$T/dirs"
for k in sbindir sysconfdir localstatedir runstatedir mandir unitdir; do
    [ -n "${D[$k]:-}" ] || fail "configured directory $k is empty ($(tr '\n' ' ' < "$T/dirs"))"
done
note "sbindir=${D[sbindir]} sysconfdir=${D[sysconfdir]} localstatedir=${D[localstatedir]} runstatedir=${D[runstatedir]} unitdir=${D[unitdir]}"

# --- make install DESTDIR= ----------------------------------------------
R=$T/root
install_into() {
    mk install DESTDIR="$R" > "$T/install.$1.log" 2>&1 ||
        { tail -n 30 "$T/install.$1.log" >&2; fail "make install DESTDIR=$R ($1) failed"; }
}
install_into 1

BIN=$R${D[sbindir]}/redoubt
CONFDIR=$R${D[sysconfdir]}/redoubt
CONF=$CONFDIR/redoubt.conf
LR=$R${D[sysconfdir]}/logrotate.d/redoubt
UNIT=
[ "${D[unitdir]}" = no ] || UNIT=$R${D[unitdir]}/redoubt.service
for f in "$BIN" "$CONF" "$CONF.default" "$LR" ${UNIT:+"$UNIT"} \
         "$R${D[mandir]}/man8/redoubt.8"; do
    [ -f "$f" ] || fail "make install did not install ${f#"$R"} ($(cd "$R" && find . -type f | sort | tr '\n' ' '))"
done
[ -d "$R${D[localstatedir]}/log/redoubt" ] || fail "make install did not make the log directory ${D[localstatedir]}/log/redoubt"
cmp -s "$CONF" "$CONF.default" || fail "the first install's redoubt.conf is not the sample"
cmp -s "$CONF.default" "$RD_BUILDDIR/conf/redoubt.conf.default" || fail "redoubt.conf.default is not the built sample"
for f in "$CONF" "$LR" ${UNIT:+"$UNIT"}; do
    if grep -n '@[a-z_]*@' "$f" >&2; then fail "${f#"$R"} has unsubstituted @...@"; fi
done

# The installed sample names the configured pid file and log directory.
line() { grep -m1 -E "$1" "$2" | sed -E 's/^[[:space:]]+//'; }
assert_eq "pid_file = \"${D[runstatedir]}/redoubt.pid\";" "$(line '^pid_file' "$CONF")" "installed sample's pid_file"
assert_eq "path = \"${D[localstatedir]}/log/redoubt/error.log\";" "$(line '^ *path = ".*/error.log"' "$CONF")" "installed sample's error_log.path"

# The installed sample passes -t as installed, with the installed binary.
out=$("$BIN" -t -c "$CONF" 2>&1)
rc=$?
[ "$rc" -eq 0 ] || fail "installed redoubt -t -c ${CONF#"$R"} exited $rc: $out"
assert_contains "test is successful" "$out" "-t on the installed sample"

# logrotate: the log directory, the pid file and "redoubt -s reopen" with
# the configured configuration file.
assert_eq "${D[localstatedir]}/log/redoubt/*.log {" "$(grep -v '^#' "$LR" | grep -m1 .)" "logrotate's log files"
assert_contains "${D[sbindir]}/redoubt -s reopen -c ${D[sysconfdir]}/redoubt/redoubt.conf" "$(cat "$LR")" "logrotate's postrotate"
assert_contains "[ -s ${D[runstatedir]}/redoubt.pid ]" "$(cat "$LR")" "logrotate's pid file test"
if command -v logrotate >/dev/null 2>&1; then
    logrotate -d -s "$T/logrotate.state" "$LR" > "$T/logrotate.out" 2>&1 ||
        fail "logrotate -d rejects the snippet: $(tail -n 5 "$T/logrotate.out")"
else
    note "logrotate is not installed: the snippet was not parsed by logrotate"
fi

# --- the systemd unit ---------------------------------------------------
if [ -z "$UNIT" ]; then
    note "configured --with-systemdsystemunitdir=no: no unit to check"
else
    key() { sed -n "s/^$1=//p" "$UNIT"; }
    assert_eq notify "$(key Type)" "the unit's Type"
    assert_eq "${D[sbindir]}/redoubt -t -c ${D[sysconfdir]}/redoubt/redoubt.conf" "$(key ExecStartPre)" "the unit's ExecStartPre"
    assert_eq "${D[sbindir]}/redoubt -g -c ${D[sysconfdir]}/redoubt/redoubt.conf" "$(key ExecStart)" "the unit's ExecStart"
    assert_eq "-${D[localstatedir]}/log/redoubt -${D[runstatedir]}" "$(key ReadWritePaths)" "the unit's ReadWritePaths (log directory, pid file)"
    [ -n "$(key ExecReload)" ] || fail "the unit has no ExecReload"
    cp "$UNIT" "$T/redoubt.service"         # for the capabilities, below
    # Every path the unit names is in the installed tree.
    for p in "${D[sbindir]}/redoubt" "${D[sysconfdir]}/redoubt/redoubt.conf"; do
        [ -e "$R$p" ] || fail "the unit names $p, which make install did not install"
    done

    if command -v systemd-analyze >/dev/null 2>&1; then
        # verify checks that the commands exist: check a copy whose
        # redoubt is the installed one (DESTDIR), with the installed man
        # pages for Documentation=.
        mkdir -p "$T/verify"
        sed "s|${D[sbindir]}/redoubt|$BIN|g" "$UNIT" > "$T/verify/redoubt.service"
        MANPATH=$R${D[mandir]} systemd-analyze verify "$T/verify/redoubt.service" > "$T/verify.out" 2>&1
        rc=$?
        [ "$rc" -eq 0 ] || fail "systemd-analyze verify exited $rc: $(cat "$T/verify.out")"
        if grep -q redoubt "$T/verify.out"; then
            fail "systemd-analyze verify has something to say about the unit: $(cat "$T/verify.out")"
        fi
        systemd-analyze security --offline=true "$UNIT" > "$T/security.out" 2>&1
        score=$(sed -n 's/.*Overall exposure level for redoubt.service: \([0-9.]*\).*/\1/p' "$T/security.out")
        [ -n "$score" ] || fail "no exposure level from systemd-analyze security: $(tail -n 5 "$T/security.out")"
        note "systemd-analyze security --offline=true: exposure $score"
        awk -v s="$score" 'BEGIN { exit !(s <= 3.0) }' ||
            fail "systemd-analyze security rates the unit $score, more than 3.0: $(grep '✗' "$T/security.out" | head -n 20)"
    else
        note "systemd-analyze is not installed: the unit was not verified or rated"
    fi
fi

# --- a second install keeps an edited redoubt.conf -----------------------
printf '\n# edited by %s\nworker_processes = 1;\n' "$RD_TEST" >> "$CONF"
sed -i '/^worker_processes = "auto";/d' "$CONF"
cp "$CONF" "$T/edited.conf"
echo "# an older sample" > "$CONF.default"
install_into 2
cmp -s "$CONF" "$T/edited.conf" || fail "the second make install changed the edited redoubt.conf: $(diff "$T/edited.conf" "$CONF" | head -n 5)"
cmp -s "$CONF.default" "$RD_BUILDDIR/conf/redoubt.conf.default" || fail "the second make install did not update redoubt.conf.default"
assert_contains "keeping" "$(cat "$T/install.2.log")" "make install says it keeps redoubt.conf"
out=$("$BIN" -t -c "$CONF" 2>&1) || fail "the edited redoubt.conf fails -t: $out"

# uninstall: everything goes but the edited redoubt.conf; an unedited one
# goes too.
mk uninstall DESTDIR="$R" > "$T/uninstall.1.log" 2>&1 || fail "make uninstall failed: $(tail -n 5 "$T/uninstall.1.log")"
assert_eq "${CONF#"$R"}" "$(cd "$R" && find . -type f | sed 's|^\.||')" "files left by make uninstall"
rm -f "$CONF"
install_into 3
cmp -s "$CONF" "$CONF.default" || fail "make install after removing redoubt.conf did not install the sample"
mk uninstall DESTDIR="$R" > "$T/uninstall.2.log" 2>&1 || fail "make uninstall failed: $(tail -n 5 "$T/uninstall.2.log")"
assert_eq "" "$(cd "$R" && find . -type f)" "files left by make uninstall of an unedited install"

# --- sd_notify ------------------------------------------------------------
# notify_listen SOCKET OUT: a unix datagram socket (a path, or @name in the
# abstract namespace) whose datagrams go to OUT, one a line, with the
# newlines between assignments written as spaces. OUT starts with
# "listening" once the socket is bound.
notify_listen() {
    python3 - "$1" "$2" <<'PY' &
import socket, sys
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind('\0' + path[1:] if path.startswith('@') else path)
s.settimeout(120)
with open(out, 'w', buffering=1) as f:
    f.write('listening\n')
    while True:
        try:
            data = s.recv(4096)
        except socket.timeout:
            break
        f.write(data.decode('utf-8', 'replace').replace('\n', ' ') + '\n')
PY
    RD_PIDS+=("$!")
    wait_for 10 grep -q '^listening' "$2" 2>/dev/null || fail "the notify socket listener did not start"
}

# msgs_since N OUT: the messages after the first N lines of OUT.
msgs_since() { tail -n +"$(($1 + 1))" "$2"; }
# has_msg N OUT WORD: a message after line N holds WORD (e.g. READY=1).
has_msg() { msgs_since "$1" "$2" | grep -qw -- "$3"; }
nlines() { wc -l < "$1"; }

redis_start a
rd_conf "${RD_REDIS_PORT[a]}" > "$T/redoubt.conf"

# A socket path; the message file's lines: 1 = "listening", then one per
# datagram.
N=$T/notify.out
sock=$T/notify.sock
[ ${#sock} -lt 100 ] || sock=/tmp/rd-notify-$$.sock
notify_listen "$sock" "$N"
export NOTIFY_SOCKET=$sock
rd_start
unset NOTIFY_SOCKET
wait_for 10 has_msg 1 "$N" READY=1 || fail "no READY=1 after start: $(cat "$N")"
assert_contains "MAINPID=$RD_PID" "$(msgs_since 1 "$N")" "READY=1 names the master as MAINPID"
assert_eq 1 "$(msgs_since 1 "$N" | grep -c .)" "messages after start"
assert_eq PONG "$(rcli PING)" "PING after READY=1"

# SIGHUP: RELOADING=1 (with MONOTONIC_USEC) and then READY=1.
n=$(nlines "$N")
kill -HUP "$RD_PID"
wait_for 10 has_msg "$n" "$N" READY=1 || fail "no READY=1 after SIGHUP: $(msgs_since "$n" "$N")"
first=$(msgs_since "$n" "$N" | head -n 1)
assert_contains RELOADING=1 "$first" "the first message after SIGHUP"
[[ $first =~ MONOTONIC_USEC=[0-9]+ ]] || fail "RELOADING=1 without MONOTONIC_USEC: $first"
assert_contains READY=1 "$(msgs_since "$n" "$N" | sed -n 2p)" "the second message after SIGHUP"
wait_for 10 rd_has_workers "$RD_WORKERS" || fail "no new workers after the reload"

# A reload that fails keeps serving: READY=1 all the same.
cp "$T/redoubt.conf" "$T/redoubt.conf.good"
echo 'no_such_setting = 1;' >> "$T/redoubt.conf"
n=$(nlines "$N")
kill -HUP "$RD_PID"
wait_for 10 has_msg "$n" "$N" READY=1 || fail "no READY=1 after a failed reload: $(msgs_since "$n" "$N")"
assert_contains RELOADING=1 "$(msgs_since "$n" "$N" | head -n 1)" "the first message after a failed reload"
assert_eq PONG "$(rcli PING)" "PING after the failed reload"
mv "$T/redoubt.conf.good" "$T/redoubt.conf"

# SIGTERM: STOPPING=1, then the master exits.
n=$(nlines "$N")
rd_stop TERM
assert_eq 0 "$RD_LAST_RC" "exit status after SIGTERM"
has_msg "$n" "$N" STOPPING=1 || fail "no STOPPING=1 on SIGTERM: $(msgs_since "$n" "$N")"

# An abstract socket (as systemd uses for some managers), and SIGQUIT.
N2=$T/notify2.out
notify_listen "@redoubt-t-install-$$" "$N2"
export NOTIFY_SOCKET=@redoubt-t-install-$$
rd_start
unset NOTIFY_SOCKET
wait_for 10 has_msg 1 "$N2" READY=1 || fail "no READY=1 on an abstract NOTIFY_SOCKET: $(cat "$N2")"
n=$(nlines "$N2")
rd_stop QUIT
assert_eq 0 "$RD_LAST_RC" "exit status after SIGQUIT"
has_msg "$n" "$N2" STOPPING=1 || fail "no STOPPING=1 on SIGQUIT: $(msgs_since "$n" "$N2")"

# Without NOTIFY_SOCKET, nothing is sent and nothing breaks (rd_start
# above and every other test).

# --- the unit's capabilities are enough ------------------------------------
# Root with only the unit's CapabilityBoundingSet, as systemd starts it,
# with workers that run as another user: they start, a reload retires them
# (the master signals processes of another user: CAP_KILL) and a graceful
# stop ends them.
if [ -n "$UNIT" ] && [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null 2>&1 &&
   getent passwd nobody >/dev/null 2>&1; then
    caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$T/redoubt.service" | tr '[:upper:]' '[:lower:]' | sed 's/cap_/+/g; s/ /,/g')
    [ -n "$caps" ] || fail "no CapabilityBoundingSet in the unit"
    rd_conf "${RD_REDIS_PORT[a]}" 'user = "nobody";' > "$T/redoubt-user.conf"
    REDOUBT_REAL=$REDOUBT
    cat > "$T/redoubt-capped" <<EOF
#!/bin/sh
exec setpriv --bounding-set=-all,$caps --inh-caps=-all --no-new-privs "$REDOUBT_REAL" "\$@"
EOF
    chmod +x "$T/redoubt-capped"
    REDOUBT=$T/redoubt-capped
    rd_start "$T/redoubt-user.conf"
    REDOUBT=$REDOUBT_REAL
    if command -v capsh >/dev/null 2>&1; then
        want=$(sed -n 's/^CapabilityBoundingSet=//p' "$T/redoubt.service" | tr '[:upper:] ' '[:lower:]\n' | sort | tr '\n' ' ')
        got=$(capsh --decode="$(awk '/^CapEff:/ { print $2 }' "/proc/$RD_PID/status")" |
              sed 's/.*=//' | tr ',' '\n' | sort | tr '\n' ' ')
        assert_eq "$want" "$got" "the capped master's effective capabilities"
    fi
    old=$(rd_workers | tr '\n' ' ')
    for w in $old; do
        assert_eq 65534 "$(awk '/^Uid:/ { print $2 }' "/proc/$w/status")" "worker $w's uid"
    done
    assert_eq PONG "$(rcli PING)" "PING through workers started with the unit's capabilities"
    kill -HUP "$RD_PID"
    gone() { local w; for w in $old; do running_pid "$w" && return 1; done; return 0; }
    running_pid() { [ -e "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
    wait_for 15 gone || fail "with the unit's capabilities, a reload did not retire the workers running as nobody ($old): $(tail -n 5 "$T/error.log")"
    wait_for 10 rd_has_workers "$RD_WORKERS" || fail "no new workers after the capped reload"
    assert_eq PONG "$(rcli PING)" "PING after the capped reload"
    rd_stop QUIT
    assert_eq 0 "$RD_LAST_RC" "the capped master's exit status after SIGQUIT"
else
    note "not root, or no setpriv or nobody: the unit's capability set was not tried"
fi

pass
