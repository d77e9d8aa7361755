#!/bin/bash
# quickstart.sh - the two commands of redoubt's README quick start.
#
#   contrib/quickstart.sh demo   install what is missing, build in
#                                build/demo, make CAs and certificates with
#                                redoubtctl, start a 6-node Redis Cluster
#                                with TLS only and redoubt in front of it,
#                                print how to connect (redoubtctl db ls,
#                                db connect, db config; Ctrl-C stops
#                                everything)
#   contrib/quickstart.sh test   install what is missing (also the client
#                                libraries t_clients.sh drives: npm's
#                                ioredis and redis into build/npm), build
#                                and run the whole test suite in
#                                build/check, then again with ASan+UBSan in
#                                build/sanitizers
#
# Meant for a fresh Debian (or Ubuntu) machine and a fresh clone; run it
# from anywhere. Packages are installed with apt-get (through sudo when not
# root); what is already installed is left alone. The source tree is never
# configured in place: builds are VPATH builds under build/.
set -u
set -o pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=contrib/tls-cluster.sh
. "$ROOT/contrib/tls-cluster.sh"
# python3-redis and nodejs: t_dbconfig.sh connects with redis-py and node,
# host names checked.
PACKAGES=(build-essential autoconf automake libtool pkg-config libssl-dev
          libpcre2-dev libconfig-dev check redis-server redis-tools python3
          openssl python3-redis nodejs)
# The test command also needs, for t_clients.sh: npm (to install the node
# client libraries; Debian's package only when there is no npm command, as
# NodeSource's nodejs brings its own and conflicts with it) and Debian's
# Prometheus exporter for Redis, installed only where the distribution
# has it.
TEST_OPTIONAL_PACKAGES=(prometheus-redis-exporter)
# The node client libraries t_clients.sh drives with their default
# options, pinned to majors that speak RESP2 by default, installed with
# npm into build/npm (found there by the test).
NPM_DIR=$ROOT/build/npm
NPM_CLIENTS=(ioredis@5 redis@5)
JOBS=${JOBS:-2}

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# install_deps [--test] [OPTIONAL...]: PACKAGES when missing (with
# --test, npm too); OPTIONAL packages too, where the distribution has
# them.
install_deps() {
    local p missing=() optional=() sudo=() needed=("${PACKAGES[@]}")
    if [ "${1:-}" = --test ]; then
        shift
        command -v npm >/dev/null || needed+=(npm)
    fi
    command -v dpkg-query >/dev/null || die "this script needs a Debian-like system (dpkg, apt-get); install by hand: ${needed[*]} $*"
    for p in "${needed[@]}"; do
        pkg_installed "$p" || missing+=("$p")
    done
    for p in "$@"; do
        pkg_installed "$p" || optional+=("$p")
    done
    if [ "${#missing[@]}" -eq 0 ] && [ "${#optional[@]}" -eq 0 ]; then
        say "all needed packages are installed"
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || die "not root and no sudo: install these packages first: ${missing[*]} ${optional[*]}"
        sudo=(sudo)
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q ||
        die "apt-get update failed"
    for p in "${optional[@]}"; do
        if apt-cache show --no-all-versions "$p" >/dev/null 2>&1; then
            missing+=("$p")
        else
            say "$p is not in this distribution: its tests will be skipped"
        fi
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    say "installing: ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" ||
        die "apt-get install failed"
}

# install_npm_clients: NPM_CLIENTS into NPM_DIR, unless the pinned majors
# are there already.
install_npm_clients() {
    local spec name major have missing=()
    for spec in "${NPM_CLIENTS[@]}"; do
        name=${spec%@*} major=${spec##*@}
        have=$(node -p "require('$NPM_DIR/node_modules/$name/package.json').version" 2>/dev/null)
        [ "${have%%.*}" = "$major" ] || missing+=("$spec")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        say "node client libraries installed in build/npm: ${NPM_CLIENTS[*]}"
        return 0
    fi
    say "npm install ${missing[*]} (into build/npm)"
    mkdir -p "$NPM_DIR" || die "cannot create $NPM_DIR"
    npm install --prefix "$NPM_DIR" --no-audit --no-fund --loglevel=error "${missing[@]}" ||
        die "npm install ${missing[*]} failed"
}

bootstrap() {
    cd "$ROOT" || die "cannot cd to $ROOT"
    if [ -f "$ROOT/config.status" ]; then
        die "$ROOT was configured in place; run 'make distclean' there first (builds go to build/)"
    fi
    say "autoreconf -fi"
    autoreconf -fi || die "autoreconf failed"
}

# configure_build DIR ARGS...: a VPATH build in $ROOT/build/DIR.
configure_build() {
    local dir=$ROOT/build/$1; shift
    mkdir -p "$dir" || die "cannot create $dir"
    cd "$dir" || die "cannot cd to $dir"
    say "configure $* (in build/${dir##*/})"
    if ! "$ROOT/configure" "$@" > configure.out 2>&1; then
        tail -n 30 configure.out >&2
        tail -n 40 config.log >&2 2>/dev/null
        return 1
    fi
    tail -n 3 configure.out
}

# --- demo --------------------------------------------------------------

# pick_port PREFERRED [AVOID...]: PREFERRED if it is free, else a free one.
pick_port() {
    local p i want=$1
    shift
    tc_port_free "$want" && { echo "$want"; return 0; }
    for ((i = 0; i < 200; i++)); do
        p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 10000 ))
        [[ " $* " == *" $p "* ]] && continue
        tc_port_free "$p" && { echo "$p"; return 0; }
    done
    die "no free port"
}

wait_port() {
    local i
    for ((i = 0; i < 200; i++)); do
        { exec 9<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null && { exec 9>&-; return 0; }
        sleep 0.05
    done
    return 1
}

demo() {
    install_deps
    bootstrap
    configure_build demo || die "configure failed"
    say "make -j$JOBS"
    make -j"$JOBS" || die "build failed"

    # dir is global: stop_all also runs from the EXIT trap after demo
    # returned (redoubt exited by itself), when demo's locals are gone.
    local bin=$ROOT/build/demo base port i pid
    local ctl=$bin/redoubtctl
    dir=$(mktemp -d "${TMPDIR:-/tmp}/redoubt-demo.XXXXXX") || die "mktemp failed"
    DEMO_PIDS=()
    # shellcheck disable=SC2317 # called from the trap
    stop_all() {
        local p
        trap - EXIT
        trap "" INT TERM          # a second Ctrl-C must not cut the cleanup short
        # redoubt first, then the cluster's nodes
        for p in "${DEMO_PIDS[@]}" "${TC_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
        for p in "${DEMO_PIDS[@]}" "${TC_PIDS[@]}"; do wait "$p" 2>/dev/null; done
        rm -rf "$dir"
        echo
        echo "demo stopped"
    }
    trap stop_all EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    base=$(tc_cluster_ports 7001) || die "no free ports for the cluster"
    port=$(pick_port 6380 "$base" $((base + 1)) $((base + 2)) $((base + 3)) \
                          $((base + 4)) $((base + 5)))

    say "CAs and certificates (redoubtctl, in $dir); Redis Cluster: 6 nodes, TLS only, on 127.0.0.1:$base-$((base + 5))"
    tc_cluster_up "$dir" "$ctl" "$base" || die "the Redis Cluster did not start"
    local nodes=("${TC_NODES[@]}") pw=$TC_PW
    tc_cli -p "$base" CLUSTER NODES | awk '{ printf "    %s %s %s\n", $2, $3, $9 }' | sed 's/@[0-9]*//'

    # --- redoubt ---------------------------------------------------------
    cat > "$dir/redoubt.conf" <<CONF
# redoubt demo configuration (see conf/redoubt.conf for every setting)
worker_processes = 2;
pid_file = "$dir/redoubt.pid";
worker_shutdown_timeout = "5s";
error_log = { path = "stderr"; level = "info"; };

# Clients: mutual TLS, user certificates from the user CA.
tls = { certificate = "$dir/certs/redoubt.crt"; certificate_key = "$dir/certs/redoubt.key";
        client_ca = "$dir/ca/user-ca.crt"; };
# Redis: mutual TLS, client certificates minted from the db-client CA,
# server certificates checked against the db CA.
upstream_tls = { ca_cert = "$dir/ca/db-client-ca.crt"; ca_key = "$dir/ca/db-client-ca.key";
                 server_ca = "$dir/ca/db-ca.crt"; cert_ttl = "1h"; };

listen = ( { address = "127.0.0.1:$port"; database = "demo"; } );
# The whole cluster, found through its first node.
databases = ( { name = "demo"; uri = "rediss://${nodes[0]}?mode=cluster";
                labels = { env = "demo"; }; } );

# Certificates with the role "access" reach databases labelled env=demo as
# the database users the certificate lists (alice's: alice).
roles = ( { name = "access";
            allow = { db_labels = { env = "demo"; };
                      db_users = [ "{{internal.db_users}}" ]; }; } );
CONF
    # redoubt's certificate names every name a client may connect to or
    # send as the TLS server name: strict clients (node, redis-py with
    # hostname checks) check it. localhost and 127.0.0.1, the wildcard for
    # NAME.redoubt.local (the server name redoubtctl db connect and
    # db config use), and each database's name ("demo") and
    # demo.redoubt.local from the configuration.
    "$ctl" cert server --ca-dir "$dir/ca" --host 'localhost,127.0.0.1,*.redoubt.local' \
        --databases-from "$dir/redoubt.conf" --out "$dir/certs/redoubt" >/dev/null ||
        die "redoubtctl cert server for redoubt failed"
    "$bin/redoubt" -t -c "$dir/redoubt.conf" || die "the demo configuration does not pass redoubt -t"

    say "redoubt on 127.0.0.1:$port in front of the cluster (config $dir/redoubt.conf)"
    "$bin/redoubt" -g -c "$dir/redoubt.conf" &
    pid=$!
    DEMO_PIDS=("$pid" "${DEMO_PIDS[@]}")

    local cli=(redis-cli --tls --cert "$dir/alice.crt" --key "$dir/alice.key"
               --cacert "$dir/ca/db-ca.crt" --sni demo.redoubt.local -h 127.0.0.1 -p "$port")
    # What alice's tools read (redoubtctl's gateway options).
    export REDOUBT_PROXY=127.0.0.1:$port REDOUBT_CA=$dir/ca/db-ca.crt REDOUBT_CERT=$dir/alice.crt
    # Wait for redoubt with a first round trip as alice (a bare TCP probe
    # would only make it log a failed TLS handshake).
    local out=
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || die "redoubt exited at start"
        out=$(REDISCLI_AUTH=$pw "${cli[@]}" --user alice --no-auth-warning SET hello world 2>&1)
        [ "$out" = OK ] && break
        sleep 0.1
    done
    if [ "$out" = OK ]; then
        say "checked: SET hello world through redoubt, as alice"
    else
        wait_port "$port" || die "redoubt did not start"
        echo "quickstart: warning: SET through redoubt as alice failed: $out" >&2
    fi
    # redoubtctl checks the certificate's names as strict clients do.
    if out=$("$ctl" db ls --db demo 2>&1); then
        say "checked: redoubtctl db ls --db demo (server name demo.redoubt.local, host name checked)"
        printf '%s\n' "$out" | sed 's/^/    /'
    else
        echo "quickstart: warning: redoubtctl db ls failed: $out" >&2
    fi

    cat <<TXT

  redoubt is running, in front of a 6-node Redis Cluster (TLS only).
  Redis's users are in $dir/users.acl: "default" is off, so
  authenticate as alice (password $pw). In another terminal:

      export REDOUBT_PROXY=$REDOUBT_PROXY REDOUBT_CA=$REDOUBT_CA
      export REDOUBT_CERT=$REDOUBT_CERT REDISCLI_AUTH=$pw

      $ctl db ls                          # what alice's roles reach
      $ctl db connect demo --db-user alice   # redis-cli, then:
          SET hello world
          GET hello
          DBSIZE
      $ctl db config demo                 # host, port, server name, files, URI

  Client libraries, host names checked (the server name
  demo.redoubt.local is in redoubt's certificate):

      $ctl db config demo --db-user alice --format python > ping.py && python3 ping.py
      $ctl db config demo --db-user alice --format node > ping.js      # npm install redis
      $ctl db config demo --db-user alice --format ioredis > ping.js   # npm install ioredis

  or redis-cli by hand (what db connect runs):

      ${cli[*]} --user alice --askpass

  alice's certificate ($dir/alice.crt) is valid for 8 hours:
      $ctl cert show $dir/alice.crt

  redoubt routes each command to the master that owns its keys' hash
  slot, follows MOVED and ASK, and sums DBSIZE and merges KEYS and MGET
  over the three masters.

  Ctrl-C stops redoubt and the cluster, and removes $dir.

TXT
    wait "$pid"
    local rc=$?
    [ "$rc" -eq 0 ] || [ "$rc" -ge 128 ] || echo "redoubt exited with status $rc" >&2
}

# --- test --------------------------------------------------------------

# check_build NAME CONFIGURE-ARGS...: configure, make, make check in
# build/NAME; prints the summaries; returns non-zero on any failure.
declare -A SUMMARY=()
TOTAL_PASS=0 TOTAL_FAIL=0 TOTAL_SKIP=0
check_build() {
    local name=$1; shift
    local dir=$ROOT/build/$name rc=0
    if ! configure_build "$name" "$@"; then
        SUMMARY[$name]="configure failed"
        TOTAL_FAIL=$((TOTAL_FAIL + 1))
        return 1
    fi
    say "make -j$JOBS (build/$name)"
    if ! make -j"$JOBS"; then
        SUMMARY[$name]="build failed"
        TOTAL_FAIL=$((TOTAL_FAIL + 1))
        return 1
    fi
    say "make -j$JOBS check (build/$name)"
    make -j"$JOBS" check || rc=1
    report_build "$name" "$dir" || rc=1
    return "$rc"
}

# report_build NAME DIR: Check's and automake's summaries, the logs of
# failed tests, and the counts.
report_build() {
    local name=$1 dir=$2 f log n rc=0
    say "results of build/$name"
    for log in "$dir"/t/unit/*.log; do
        [ -f "$log" ] || continue
        n=$(grep -hE '^[0-9]+%: Checks: ' "$log")
        printf '  %-28s %s\n' "${log#"$dir"/}:" "${n:-(no Check summary line)}"
    done
    if [ -f "$dir/test-suite.log" ]; then
        echo "  automake test summary ($name):"
        sed -n '1,/^# ERROR/p' "$dir/test-suite.log" | grep -E '^# [A-Z]+: ' | sed 's/^/    /'
    else
        echo "  no test-suite.log"
        rc=1
    fi
    local pass=0 fail=0 skip=0 res
    for f in "$dir"/t/unit/*.trs "$dir"/t/integration/*.trs; do
        [ -f "$f" ] || continue
        res=$(sed -n 's/^:test-result: //p' "$f" | head -n 1)
        case $res in
            PASS|XFAIL) pass=$((pass + 1)) ;;
            SKIP) skip=$((skip + 1)) ;;
            *)  fail=$((fail + 1)); rc=1
                log=${f%.trs}.log
                printf '\n---- %s: %s ----\n' "${log#"$dir"/}" "$res"
                cat "$log" 2>/dev/null
                printf -- '---- end of %s ----\n' "${log#"$dir"/}" ;;
        esac
    done
    [ $((pass + fail + skip)) -gt 0 ] || { echo "  no test results found"; rc=1; }
    SUMMARY[$name]="$pass passed, $fail failed, $skip skipped"
    TOTAL_PASS=$((TOTAL_PASS + pass)); TOTAL_FAIL=$((TOTAL_FAIL + fail)); TOTAL_SKIP=$((TOTAL_SKIP + skip))
    return "$rc"
}

run_tests() {
    local status=0 name
    install_deps --test "${TEST_OPTIONAL_PACKAGES[@]}"
    install_npm_clients
    # t_clients.sh: every client installed above must be found and pass;
    # the exporter only where the distribution has it.
    export RD_CLIENTS_REQUIRED=1 RD_NODE_MODULES=$NPM_DIR/node_modules
    pkg_installed prometheus-redis-exporter || export RD_CLIENTS_NO_EXPORTER=1
    bootstrap
    check_build check || status=1
    check_build sanitizers --enable-sanitizers || status=1
    say "summary"
    for name in check sanitizers; do
        printf '  build/%-11s %s\n' "$name:" "${SUMMARY[$name]:-not run}"
    done
    local log
    for name in check sanitizers; do
        for log in "$ROOT/build/$name"/t/unit/*.log; do
            [ -f "$log" ] || continue
            grep -hE '^[0-9]+%: Checks: ' "$log" | sed "s|^|  $name $(basename "$log" .log): |"
        done
    done
    echo
    if [ "$status" -ne 0 ]; then
        echo "quickstart test: FAILED (see the logs above)"
    else
        echo "quickstart test: all passed"
    fi
    echo "total: $TOTAL_PASS passed, $TOTAL_FAIL failed, $TOTAL_SKIP skipped"
    return "$status"
}

case ${1:-} in
    demo) demo ;;
    test) run_tests ;;
    *) usage ;;
esac
