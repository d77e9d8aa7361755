# tls-cluster.sh - a local 6-node TLS-only Redis Cluster for the demo
# (contrib/quickstart.sh) and the benchmark (contrib/bench/bench.sh).
# Sourced, not run. Bash.
#
# As in the reference guide "Database Access with Redis Cluster": TLS
# only (port 0, tls-cluster, tls-replication, tls-auth-clients), a
# users.acl with a SHA-256 password for alice and "user default off", and
# redis-cli --cluster create with a client certificate; all certificates
# made by redoubtctl.
#
#   tc_cluster_ports [PREFERRED]  first of six consecutive free loopback
#                                 ports whose bus ports (+10000) are free
#   tc_cluster_up DIR REDOUBTCTL BASE
#        makes DIR/ca (user, db and db-client CAs), DIR/certs/node-N and
#        DIR/certs/redoubt (server certificates for localhost,127.0.0.1),
#        DIR/alice.crt (alice's user certificate: role "access", database
#        user alice, 8 hours), DIR/users.acl, starts the six nodes on
#        BASE..BASE+5 and creates the cluster (3 masters, 3 replicas), then
#        waits until every node says cluster_state:ok and the replicas are
#        in sync. Sets TC_PORTS, TC_NODES ("127.0.0.1:PORT"), TC_MASTERS,
#        TC_PW (alice's password) and appends the nodes' pids to TC_PIDS
#        (the caller stops them). Returns 1 with a message on failure.
#   tc_cli ARGS...                redis-cli over TLS to a node, as alice,
#                                 with node 1's certificate
# shellcheck shell=bash

TC_PIDS=()

tc_port_free() {
    if command -v python3 >/dev/null; then
        python3 -c 'import socket, sys
s = socket.socket()
try: s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError: sys.exit(1)' "$1"
    else
        ! { exec 9<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null
    fi
}

# tc_free_port [TAKEN...]: print a free loopback port in 20000-31999 that
# is none of TAKEN (below the ephemeral range, so outgoing connections
# never take it meanwhile).
tc_free_port() {
    local p i
    for ((i = 0; i < 200; i++)); do
        p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 12000 ))
        [[ " $* " == *" $p "* ]] && continue
        tc_port_free "$p" && { echo "$p"; return 0; }
    done
    echo "${0##*/}: no free port" >&2
    exit 1
}

tc_cluster_ports() {
    local base i ok try
    for ((try = 0; try < 100; try++)); do
        base=$(( 20000 + (RANDOM * 32768 + RANDOM) % 10000 ))
        [ "$try" -eq 0 ] && [ -n "${1:-}" ] && base=$1
        ok=1
        for ((i = 0; i < 6; i++)); do
            if ! tc_port_free $((base + i)) || ! tc_port_free $((base + i + 10000)); then
                ok=0
                break
            fi
        done
        [ "$ok" -eq 1 ] && { echo "$base"; return 0; }
    done
    echo "no six free ports (with their cluster bus ports) for the Redis Cluster" >&2
    return 1
}

# tc__wait_log FILE TEXT PID: until FILE says TEXT (10 s), while PID lives.
tc__wait_log() {
    local i
    for ((i = 0; i < 200; i++)); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

tc__fail() { echo "$*" >&2; return 1; }

tc_cli() {
    REDISCLI_AUTH=$TC_PW redis-cli --tls --cert "$TC_DIR/certs/node-1.crt" \
        --key "$TC_DIR/certs/node-1.key" --cacert "$TC_DIR/ca/db-ca.crt" \
        --user alice --no-auth-warning "$@"
}

tc_cluster_up() {
    local dir=$1 ctl=$2 base=$3 i p pid replpw ok
    TC_DIR=$dir
    TC_PORTS=() TC_NODES=() TC_MASTERS=()
    for ((i = 0; i < 6; i++)); do
        TC_PORTS+=($((base + i)))
        TC_NODES+=("127.0.0.1:$((base + i))")
    done

    "$ctl" ca init "$dir/ca" >/dev/null || tc__fail "redoubtctl ca init failed" || return
    mkdir -p "$dir/certs"
    for ((i = 1; i <= 6; i++)); do
        "$ctl" cert server --ca-dir "$dir/ca" --host localhost,127.0.0.1 \
            --out "$dir/certs/node-$i" >/dev/null || tc__fail "redoubtctl cert server failed" || return
    done
    # Redis trusts the db-client CA (redoubt's minted client certificates)
    # and the db CA (the nodes' own certificates, which they present to
    # each other on the cluster bus and for replication).
    { "$ctl" ca export --type db --dir "$dir/ca" &&
      "$ctl" ca export --type db-client --dir "$dir/ca"; } > "$dir/certs/pem-bundle.cas" ||
        tc__fail "redoubtctl ca export failed" || return
    "$ctl" cert server --ca-dir "$dir/ca" --host localhost,127.0.0.1 \
        --out "$dir/certs/redoubt" >/dev/null || tc__fail "redoubtctl cert server failed" || return
    "$ctl" cert user --ca-dir "$dir/ca" --user alice --roles access \
        --db-users alice --ttl 8h --out "$dir/alice" >/dev/null ||
        tc__fail "redoubtctl cert user failed" || return

    TC_PW=$(openssl rand -hex 16) || tc__fail "openssl rand failed" || return
    replpw=$(openssl rand -hex 16) || tc__fail "openssl rand failed" || return
    cat > "$dir/users.acl" <<ACL
user alice on #$(printf '%s' "$TC_PW" | sha256sum | cut -d' ' -f1) allcommands allkeys
user replicator on #$(printf '%s' "$replpw" | sha256sum | cut -d' ' -f1) +psync +replconf +ping
user default off
ACL

    for ((i = 1; i <= 6; i++)); do
        p=${TC_PORTS[$((i - 1))]}
        mkdir -p "$dir/node-$i"
        cat > "$dir/node-$i/redis.conf" <<CONF
port 0
tls-port $p
bind 127.0.0.1
dir $dir/node-$i
logfile $dir/node-$i/redis.log
daemonize no
save ""
appendonly no
cluster-enabled yes
cluster-config-file nodes.conf
cluster-node-timeout 5000
tls-cluster yes
tls-replication yes
tls-auth-clients yes
tls-protocols "TLSv1.2 TLSv1.3"
tls-cert-file $dir/certs/node-$i.crt
tls-key-file $dir/certs/node-$i.key
tls-ca-cert-file $dir/certs/pem-bundle.cas
aclfile $dir/users.acl
masteruser replicator
masterauth $replpw
CONF
        redis-server "$dir/node-$i/redis.conf" &
        pid=$!
        TC_PIDS+=("$pid")
        tc__wait_log "$dir/node-$i/redis.log" 'Ready to accept connections' "$pid" ||
            { tail -n 20 "$dir/node-$i/redis.log" >&2; tc__fail "Redis node $i did not start"; return; }
    done

    tc_cli --cluster create "${TC_NODES[@]}" --cluster-replicas 1 --cluster-yes \
        > "$dir/cluster-create.log" 2>&1 ||
        { cat "$dir/cluster-create.log" >&2; tc__fail "redis-cli --cluster create failed"; return; }
    ok=
    for ((i = 0; i < 300; i++)); do
        if [ "$(for p in "${TC_PORTS[@]}"; do tc_cli -p "$p" CLUSTER INFO; done 2>/dev/null |
                grep -c '^cluster_state:ok')" -eq 6 ] &&
           [ "$(for p in "${TC_PORTS[@]}"; do tc_cli -p "$p" INFO replication; done 2>/dev/null |
                grep -c '^master_link_status:up')" -eq 3 ]; then
            ok=1
            break
        fi
        sleep 0.1
    done
    [ -n "$ok" ] || tc__fail "the cluster did not reach cluster_state:ok with 3 replicas in sync in 30 s" || return
    for p in "${TC_PORTS[@]}"; do
        tc_cli -p "$p" ROLE 2>/dev/null | head -n 1 | grep -qx master && TC_MASTERS+=("$p")
    done
    [ "${#TC_MASTERS[@]}" -eq 3 ] || tc__fail "expected 3 masters, found ${#TC_MASTERS[@]}"
}
