#!/usr/bin/env bash
# Developer services for the cart service: PostgreSQL + nats-server (JetStream).
#
#   deploy/dev/services.sh          make sure both answer (start/install them if needed)
#   deploy/dev/services.sh stop     stop the servers this script started (under target/dev)
#
# Environment:
#   DATABASE_URL  default postgres://postgres@127.0.0.1:5432/cart
#   NATS_URL      default nats://127.0.0.1:4222
#
# If a server already answers at the URL's host:port it is used as is. Otherwise,
# for a local host only, a private server is started under target/dev/ (installing
# the Debian/Ubuntu packages first when the binaries are missing). The application
# database itself is NOT created here: cartd creates it and applies migrations.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$script_dir/../.." && pwd)
dev_dir="$repo/target/dev"

DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/cart}
NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}

PG_WAIT_SECS=30
NATS_WAIT_SECS=15

log() { printf 'services: %s\n' "$*"; }
warn() { printf 'services: warning: %s\n' "$*" >&2; }
die() { printf 'services: error: %s\n' "$*" >&2; exit 1; }
rel() { printf '%s' "${1#"$repo"/}"; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# ---------------------------------------------------------------- URL parsing
# parse_url URL DEFAULT_PORT -> sets url_host, url_port, url_user
# Accepts scheme://[user[:password]@]host[:port][/path][?query], host[:port],
# and bracketed IPv6 hosts ([::1]:5432). Only the first host of a multi-host
# PostgreSQL URL is considered.
parse_url() {
    local u=$1 def_port=$2 hp
    u=${u#*://}                 # scheme (optional)
    hp=${u%%[/?#]*}             # authority: up to path, query or fragment
    url_user=
    if [[ $hp == *@* ]]; then
        url_user=${hp%@*}       # userinfo: user[:password]
        url_user=${url_user%%:*}
    fi
    hp=${hp##*@}
    hp=${hp%%,*}                # first host of a multi-host list
    if [[ $hp == \[* ]]; then   # [ipv6]:port
        url_host=${hp#\[}
        url_host=${url_host%%\]*}
        hp=${hp#*\]}
        url_port=${hp#:}
    elif [[ $hp == *:*:* ]]; then   # bare IPv6 address without port
        url_host=$hp
        url_port=
    elif [[ $hp == *:* ]]; then
        url_host=${hp%:*}
        url_port=${hp##*:}
    else
        url_host=$hp
        url_port=
    fi
    url_host=${url_host:-127.0.0.1}
    url_port=${url_port:-$def_port}
    [[ $url_port =~ ^[0-9]+$ ]] && [ "$url_port" -ge 1 ] && [ "$url_port" -le 65535 ] ||
        die "cannot parse a port out of '$1'"
}

is_local_host() {
    case $1 in
        localhost | ::1 | 127.*) return 0 ;;
        *) return 1 ;;
    esac
}

# ------------------------------------------------------------------ probing
with_timeout() {
    local secs=$1
    shift
    if command -v timeout >/dev/null 2>&1; then timeout "$secs" "$@"; else "$@"; fi
}

# tcp_open HOST PORT: does anything accept a TCP connection?
tcp_open() {
    with_timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

# pg_state HOST PORT [USER] -> 0 accepting, 1 answering but rejecting (starting
# up / shutting down), 2 no answer.
pg_state() {
    local rc=0
    if command -v pg_isready >/dev/null 2>&1; then
        # Explicit user and database, so the probe does not make the server log
        # 'role "<login>" does not exist'.
        pg_isready -q -h "$1" -p "$2" -U "${3:-postgres}" -d postgres -t 3 >/dev/null 2>&1 || rc=$?
        case $rc in 0 | 1) return "$rc" ;; *) return 2 ;; esac
    fi
    tcp_open "$1" "$2" && return 0
    return 2
}

# nats_info HOST PORT: print the first line the server sends (a nats-server
# greets with "INFO {...}"); fails if nothing accepts the connection.
nats_info() {
    local line
    line=$(with_timeout 4 bash -c '
        exec 3<>"/dev/tcp/$0/$1" || exit 2
        line=
        IFS= read -r -t 3 line <&3 || true
        printf "%s\n" "$line"
    ' "$1" "$2" 2>/dev/null) || return 1
    printf '%s\n' "${line%$'\r'}"
}

# ------------------------------------------------------ package installation
apt_updated=0

# as_root CMD...: run CMD as root (directly, or through sudo when available).
as_root() {
    if is_root; then
        "$@"
    elif [ -t 0 ]; then
        sudo "$@"
    else
        sudo -n "$@" # no terminal (CI): never wait for a password prompt
    fi
}

# apt_install WHAT PACKAGE...
apt_install() {
    local what=$1
    shift
    local manual="install $what yourself (Debian/Ubuntu: apt-get install -y --no-install-recommends $*), or point ${what_var[$what]} at a running server"
    command -v apt-get >/dev/null 2>&1 ||
        die "$what is not installed and apt-get is not available; $manual"
    if ! is_root && ! command -v sudo >/dev/null 2>&1; then
        die "$what is not installed, and this script is neither root nor able to use sudo; $manual"
    fi
    local sudo_prefix=
    is_root || sudo_prefix="sudo "
    if [ "$apt_updated" -eq 0 ]; then
        log "$what is not installed: running '${sudo_prefix}apt-get update'"
        as_root apt-get update || die "'${sudo_prefix}apt-get update' failed; $manual"
        apt_updated=1
    fi
    log "installing $what: '${sudo_prefix}apt-get install -y --no-install-recommends $*'"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" ||
        die "'${sudo_prefix}apt-get install -y --no-install-recommends $*' failed; $manual"
}
declare -A what_var=([PostgreSQL]=DATABASE_URL [nats-server]=NATS_URL)

# ------------------------------------------------------------- PostgreSQL
pg_bin_dir=

# find_pg_bin [MAJOR]: set pg_bin_dir to a directory holding initdb and pg_ctl,
# preferring MAJOR (the version of an existing data directory), then the newest
# /usr/lib/postgresql/*/bin, then PATH.
find_pg_bin() {
    local want=${1:-} d
    pg_bin_dir=
    if [ -n "$want" ] && [ -x "/usr/lib/postgresql/$want/bin/initdb" ] && [ -x "/usr/lib/postgresql/$want/bin/pg_ctl" ]; then
        pg_bin_dir=/usr/lib/postgresql/$want/bin
        return 0
    fi
    for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            pg_bin_dir=$d
            return 0
        fi
    done
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        pg_bin_dir=$(dirname "$(command -v pg_ctl)")
        return 0
    fi
    return 1
}

# Run a command as the owner of the private cluster. initdb/pg_ctl refuse to run
# as root, so root delegates to the 'postgres' OS user.
pg_user_run() {
    if is_root; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

ensure_postgres_os_user() {
    id -u postgres >/dev/null 2>&1 && return 0
    log "creating system user 'postgres' (initdb/pg_ctl refuse to run as root)"
    if command -v useradd >/dev/null 2>&1; then
        useradd --system --user-group --home-dir /var/lib/postgresql --no-create-home \
            --shell /bin/bash postgres
    else
        adduser --system --group --home /var/lib/postgresql --no-create-home postgres
    fi
}

install_postgres() {
    # The Debian package would also create and start a system-wide "main"
    # cluster on 5432 (password auth over TCP), which would occupy the port our
    # private trust-auth cluster needs. Suppress it for this install only, the
    # same way the official postgres Docker image does.
    pg_dropin=/etc/postgresql-common/createcluster.d/zz-cart-dev-no-main-cluster.conf
    if command -v apt-get >/dev/null 2>&1 && { is_root || command -v sudo >/dev/null 2>&1; }; then
        log "suppressing the package's default 'main' cluster during the install ($pg_dropin, removed afterwards)"
        trap 'as_root rm -f "$pg_dropin" 2>/dev/null || true' EXIT
        { as_root mkdir -p "$(dirname "$pg_dropin")" &&
            printf 'create_main_cluster = false\n' | as_root tee "$pg_dropin" >/dev/null; } ||
            warn "could not write $pg_dropin; the package may create and start a 'main' cluster"
    fi
    apt_install PostgreSQL postgresql
    as_root rm -f "$pg_dropin" 2>/dev/null || true
    trap - EXIT
}

log_tail() {
    local f
    for f in "$@"; do
        [ -f "$f" ] || continue
        printf 'services: ---- last lines of %s ----\n' "$(rel "$f")" >&2
        tail -n 30 "$f" >&2 || true
    done
}

ensure_postgres() {
    parse_url "$DATABASE_URL" 5432
    local host=$url_host port=$url_port user=${url_user:-postgres} state=0
    local pg_dir="$dev_dir/pg/$port"
    local data="$pg_dir/data" logf="$pg_dir/log"

    pg_state "$host" "$port" "$user" || state=$?
    if [ "$state" -eq 1 ]; then
        log "PostgreSQL at $host:$port answers but is not accepting connections yet; waiting"
        pg_wait "$host" "$port" "" || die "PostgreSQL at $host:$port did not start accepting connections within ${PG_WAIT_SECS}s"
        state=0
    fi
    if [ "$state" -eq 0 ]; then
        if [ -f "$data/postmaster.pid" ]; then
            log "using PostgreSQL at $host:$port (private cluster $(rel "$data"); stop it with '$0 stop')"
        else
            log "using PostgreSQL at $host:$port"
        fi
        return 0
    fi

    if tcp_open "$host" "$port"; then
        die "something listens at $host:$port (from DATABASE_URL) but it does not answer like PostgreSQL"
    fi
    is_local_host "$host" ||
        die "nothing answers at $host:$port (from DATABASE_URL) and it is not a local address, so it cannot be started here"

    log "nothing answers at $host:$port: starting a private PostgreSQL cluster in $(rel "$pg_dir")"

    local existing_version=
    [ -f "$data/PG_VERSION" ] && existing_version=$(cat "$data/PG_VERSION")
    if ! find_pg_bin "$existing_version"; then
        install_postgres
        find_pg_bin "$existing_version" || die "PostgreSQL server binaries (initdb, pg_ctl) still not found after installing 'postgresql'"
        # A package install may have brought up a server on this port after all.
        if pg_state "$host" "$port" "$user"; then
            log "using PostgreSQL at $host:$port"
            return 0
        fi
    fi
    [ -z "$existing_version" ] || [ "$pg_bin_dir" = "/usr/lib/postgresql/$existing_version/bin" ] ||
        [ "$("$pg_bin_dir/pg_ctl" --version | sed -nE 's/^[^0-9]*([0-9]+).*/\1/p')" = "$existing_version" ] ||
        warn "$(rel "$data") was created by PostgreSQL $existing_version but only $pg_bin_dir is available"
    log "using server binaries from $pg_bin_dir ($("$pg_bin_dir/pg_ctl" --version))"

    mkdir -p "$dev_dir/pg"
    if is_root; then
        command -v runuser >/dev/null 2>&1 || die "running as root requires 'runuser' (util-linux) to run initdb/pg_ctl as user postgres"
        ensure_postgres_os_user
        # The postgres user must be able to reach the data directory. When the
        # repository lives somewhere it cannot enter (e.g. under /root), keep the
        # cluster in /var/tmp and link it from target/dev/pg/<port>.
        if [ ! -e "$pg_dir" ] && ! runuser -u postgres -- test -x "$dev_dir/pg" 2>/dev/null; then
            local alt
            alt="/var/tmp/cart-dev-pg/$(printf '%s' "$repo" | cksum | cut -d' ' -f1)-$port"
            log "user postgres cannot enter $(rel "$dev_dir/pg"); keeping the cluster in $alt (linked from $(rel "$pg_dir"))"
            mkdir -p "$alt"
            chmod 755 /var/tmp/cart-dev-pg
            ln -sfn "$alt" "$pg_dir"
        fi
        mkdir -p "$pg_dir/"
        chown postgres: "$pg_dir/"
    else
        mkdir -p "$pg_dir"
    fi
    # Physical path: the postgres user may not be able to follow the link's path.
    pg_dir=$(cd "$pg_dir" && pwd -P)
    data="$pg_dir/data" logf="$pg_dir/log"
    if is_root && [ -e "$logf" ]; then chown postgres: "$logf"; fi

    if [ ! -f "$data/PG_VERSION" ]; then
        if [ -d "$data" ] && [ -n "$(ls -A "$data")" ]; then
            die "$(rel "$data") exists but is not a PostgreSQL data directory; remove it and retry"
        fi
        log "initdb -D $(rel "$data") -A trust -U postgres --encoding=UTF8 --no-locale"
        if ! pg_user_run "$pg_bin_dir/initdb" -D "$data" -A trust -U postgres \
            --encoding=UTF8 --no-locale >"$pg_dir/initdb.log" 2>&1; then
            log_tail "$pg_dir/initdb.log"
            die "initdb failed (full output: $(rel "$pg_dir/initdb.log"))"
        fi
    fi

    # Unix socket in the data directory (not /var/run/postgresql, which may not
    # exist or be writable); fall back to /tmp if the path is too long for a socket.
    local sockdir=$data
    if [ $((${#sockdir} + 20)) -gt 107 ]; then
        sockdir=/tmp
    fi
    log "pg_ctl start: port $port, listen_addresses=$host, log $(rel "$logf")"
    if ! pg_user_run "$pg_bin_dir/pg_ctl" -D "$data" -l "$logf" \
        -o "-p $port -k '$sockdir' -c listen_addresses='$host'" -w -t "$PG_WAIT_SECS" start >/dev/null; then
        log_tail "$logf"
        die "could not start PostgreSQL on $host:$port"
    fi
    if ! pg_wait "$host" "$port" "$data"; then
        log_tail "$logf"
        die "PostgreSQL on $host:$port did not answer within ${PG_WAIT_SECS}s"
    fi
    log "PostgreSQL is up at $host:$port (trust auth, user postgres; stop it with '$0 stop')"
}

# pg_wait HOST PORT DATADIR: wait (bounded) until the server accepts connections.
pg_wait() {
    local host=$1 port=$2 data=$3 i pid
    for ((i = 0; i < PG_WAIT_SECS * 2; i++)); do
        pg_state "$host" "$port" "${user:-postgres}" && return 0
        if [ -n "$data" ]; then
            pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null || true)
            [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1 # postmaster died
        fi
        sleep 0.5
    done
    return 1
}

stop_postgres() {
    local dir data pid owner version port stopped=0
    for dir in "$dev_dir"/pg/*/; do
        [ -d "$dir" ] || continue
        port=$(basename "$dir")
        dir=$(cd "$dir" && pwd -P)/ # physical path (may be a link to /var/tmp)
        data="${dir%/}/data"
        [ -f "$data/PG_VERSION" ] || continue
        pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null || true)
        if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
            continue
        fi
        version=$(cat "$data/PG_VERSION")
        find_pg_bin "$version" || die "cannot find pg_ctl to stop $(rel "$data") (postmaster pid $pid)"
        owner=$(stat -c %U "$data")
        log "stopping PostgreSQL in $(rel "${dir%/}") (pid $pid)"
        if is_root && [ "$owner" != root ]; then
            (cd / && runuser -u "$owner" -- "$pg_bin_dir/pg_ctl" -D "$data" -m fast -w stop) >/dev/null ||
                die "pg_ctl stop failed for $(rel "$data")"
        else
            "$pg_bin_dir/pg_ctl" -D "$data" -m fast -w stop >/dev/null ||
                die "pg_ctl stop failed for $(rel "$data")"
        fi
        log "stopped PostgreSQL (port $port, pid $pid)"
        stopped=$((stopped + 1))
    done
    [ "$stopped" -gt 0 ] || log "no private PostgreSQL running under $(rel "$dev_dir/pg")"
}

# ------------------------------------------------------------------- NATS
nats_bin=

find_nats() {
    if command -v nats-server >/dev/null 2>&1; then
        nats_bin=$(command -v nats-server)
    elif [ -x /usr/sbin/nats-server ]; then
        nats_bin=/usr/sbin/nats-server
    else
        return 1
    fi
}

# nats_pid_of PIDFILE: print the pid if it is a live nats-server started by us.
nats_pid_of() {
    local pidfile=$1 pid
    pid=$(cat "$pidfile" 2>/dev/null || true)
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = nats-server ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$dev_dir/nats/" || return 1
    printf '%s\n' "$pid"
}

# use_nats HOST PORT INFO_LINE [NOTE]: report what answers; fail if it is not NATS.
use_nats() {
    local host=$1 port=$2 info=$3 note=${4:-}
    case $info in
        INFO\ *) ;;
        *) die "something answers at $host:$port (from NATS_URL) but it does not look like a nats-server" ;;
    esac
    local version
    version=$(printf '%s' "$info" | sed -nE 's/.*"version":"([^"]*)".*/\1/p')
    log "using nats-server at $host:$port${version:+ (v$version)}$note"
    case $info in
        *'"jetstream":true'*) ;;
        *) warn "the nats-server at $host:$port does not report JetStream; cartd needs it (run nats-server with -js)" ;;
    esac
}

ensure_nats() {
    parse_url "$NATS_URL" 4222
    local host=$url_host port=$url_port info
    local ndir="$dev_dir/nats"
    local store="$ndir/$port" logf="$ndir/$port.log" pidf="$ndir/$port.pid"

    if info=$(nats_info "$host" "$port"); then
        local pid note=
        if pid=$(nats_pid_of "$pidf"); then
            note=" (private server, pid $pid; stop it with '$0 stop')"
        fi
        use_nats "$host" "$port" "$info" "$note"
        return 0
    fi

    is_local_host "$host" ||
        die "nothing answers at $host:$port (from NATS_URL) and it is not a local address, so it cannot be started here"

    log "nothing answers at $host:$port: starting a private nats-server (JetStream) in $(rel "$store")"
    if ! find_nats; then
        apt_install nats-server nats-server
        find_nats || die "nats-server still not found after installing it"
        # On systemd machines the Debian package enables and starts its own
        # nats-server.service on 127.0.0.1:4222, without JetStream.
        if info=$(nats_info "$host" "$port"); then
            if [[ $info != *'"jetstream":true'* ]] && command -v systemctl >/dev/null 2>&1 &&
                systemctl is-active --quiet nats-server.service 2>/dev/null; then
                log "the package started nats-server.service on $host:$port without JetStream: disabling it ('systemctl disable --now nats-server')"
                as_root systemctl disable --now nats-server.service >/dev/null 2>&1 ||
                    die "could not stop nats-server.service; stop it or enable JetStream in /etc/nats-server.conf"
            else
                use_nats "$host" "$port" "$info"
                return 0
            fi
        fi
    fi

    mkdir -p "$store"
    local pid
    if pid=$(nats_pid_of "$pidf"); then
        log "a private nats-server (pid $pid) is running but not answering yet; waiting"
    else
        rm -f "$pidf"
        log "$nats_bin -a $host -p $port -js -sd $(rel "$store") -l $(rel "$logf") -P $(rel "$pidf")"
        local launcher=()
        command -v setsid >/dev/null 2>&1 && launcher=(setsid)
        # Detached: own session, no inherited stdio, survives make/terminal exit.
        "${launcher[@]}" nohup "$nats_bin" -a "$host" -p "$port" -js -sd "$store" \
            -l "$logf" -P "$pidf" </dev/null >>"$logf" 2>&1 &
        pid=$!
    fi

    local i
    for ((i = 0; i < NATS_WAIT_SECS * 2; i++)); do
        if info=$(nats_info "$host" "$port"); then
            pid=$(nats_pid_of "$pidf" || printf '%s' "$pid")
            log "nats-server is up at $host:$port (pid $pid, JetStream store $(rel "$store"); stop it with '$0 stop')"
            case $info in *'"jetstream":true'*) ;; *) warn "nats-server at $host:$port does not report JetStream" ;; esac
            return 0
        fi
        # Exited? (allow a moment for the pid file to appear)
        if ((i >= 4)) && ! kill -0 "$pid" 2>/dev/null && ! nats_pid_of "$pidf" >/dev/null; then
            break
        fi
        sleep 0.5
    done
    log_tail "$logf"
    die "nats-server did not come up on $host:$port"
}

stop_nats() {
    local pidf pid i stopped=0
    for pidf in "$dev_dir"/nats/*.pid; do
        [ -f "$pidf" ] || continue
        if ! pid=$(nats_pid_of "$pidf"); then
            rm -f "$pidf" # stale
            continue
        fi
        log "stopping nats-server $(basename "$pidf" .pid) (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 40; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
        if kill -0 "$pid" 2>/dev/null; then
            warn "nats-server pid $pid did not exit after SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f "$pidf"
        log "stopped nats-server (port $(basename "$pidf" .pid), pid $pid)"
        stopped=$((stopped + 1))
    done
    [ "$stopped" -gt 0 ] || log "no private nats-server running under $(rel "$dev_dir/nats")"
}

# ------------------------------------------------------------------- main
case ${1:-start} in
    start | up)
        ensure_postgres
        ensure_nats
        ;;
    stop | down)
        stop_postgres
        stop_nats
        ;;
    -h | --help | help)
        sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
        ;;
    *)
        die "unknown command '$1' (usage: $0 [start|stop])"
        ;;
esac
