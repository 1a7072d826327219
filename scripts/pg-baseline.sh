#!/usr/bin/env bash
# The PostgreSQL + pgSphere + q3c baseline that GAVO DaCHS sits on, as a private throw-away
# cluster for vostok-bench.
#
#   scripts/pg-baseline.sh install      # as root: the pinned Debian 12 packages (no-op when present)
#   scripts/pg-baseline.sh start DIR    # initdb DIR/data, start on a free 127.0.0.1 port, print the conninfo
#   scripts/pg-baseline.sh stop DIR     # stop it (DIR stays; rm -rf it yourself)
#   scripts/pg-baseline.sh conninfo DIR # print the conninfo of a running cluster
#
# After start, DIR/conninfo holds "host=127.0.0.1 port=P user=U dbname=postgres" and DIR/port
# the port. Authentication is trust, on loopback only (the cluster listens on 127.0.0.1 and on a
# Unix socket in DIR). Durability stays at PostgreSQL's defaults (fsync, synchronous_commit,
# full_page_writes on); only what DaCHS deployments commonly tune is set, in
# DIR/data/conf.d/baseline.conf (override with PG_SHARED_BUFFERS, PG_WORK_MEM,
# PG_EFFECTIVE_CACHE_SIZE, PG_MAINTENANCE_WORK_MEM, PG_RANDOM_PAGE_COST).
#
# Debian's postgresql-15-pgsphere does not install against PostgreSQL 15.20 (its dependency on
# the server's exact ABI fails); 15.18 works, hence the pins.
set -euo pipefail

PG_VERSION_PIN="15.18-0+deb12u1"
PG_MAJOR=15
PG_BIN="/usr/lib/postgresql/${PG_MAJOR}/bin"

die() { echo "pg-baseline: $*" >&2; exit 1; }

packages_present() {
    local p v
    for p in postgresql-15 postgresql-client-15 libpq5; do
        v=$(dpkg-query -W -f='${Status} ${Version}' "$p" 2>/dev/null || true)
        # "hold": cmd_install marks the pinned packages held, so a second run sees them so.
        [[ "$v" == "install ok installed $PG_VERSION_PIN" || "$v" == "hold ok installed $PG_VERSION_PIN" ]] \
            || return 1
    done
    for p in postgresql-15-pgsphere postgresql-15-q3c; do
        v=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        [[ "$v" == "install ok installed" || "$v" == "hold ok installed" ]] || return 1
    done
    [[ -x "$PG_BIN/initdb" && -f /usr/share/postgresql/${PG_MAJOR}/extension/pg_sphere.control \
        && -f /usr/share/postgresql/${PG_MAJOR}/extension/q3c.control ]]
}

cmd_install() {
    if packages_present; then
        echo "pg-baseline: PostgreSQL $PG_VERSION_PIN, pgSphere and q3c are installed"
        return 0
    fi
    [[ $(id -u) -eq 0 ]] || die "install needs root (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # No cluster of the distribution's own: we initdb private ones.
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/no-main-cluster.conf
    apt-get install -y -q --allow-downgrades \
        "postgresql-15=$PG_VERSION_PIN" "postgresql-client-15=$PG_VERSION_PIN" "libpq5=$PG_VERSION_PIN" \
        postgresql-15-pgsphere postgresql-15-q3c
    # Keep the pins from being "upgraded" by a later apt-get upgrade.
    apt-mark hold postgresql-15 postgresql-client-15 libpq5 >/dev/null
    packages_present || die "the packages did not install as expected"
}

# Runs a command as the cluster's owner: postgres when we are root, else ourselves.
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

owner_name() {
    if [[ $(id -u) -eq 0 ]]; then echo postgres; else id -un; fi
}

port_free() {
    local p=$1
    if command -v ss >/dev/null 2>&1; then
        ! ss -Htln "sport = :$p" 2>/dev/null | grep -q .
    else
        ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null
    fi
}

free_port() {
    local p i
    for i in $(seq 1 200); do
        p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
        if port_free "$p"; then echo "$p"; return 0; fi
    done
    die "no free port found"
}

cmd_start() {
    local dir=${1:?usage: pg-baseline.sh start DIR}
    packages_present || die "PostgreSQL $PG_VERSION_PIN with pgSphere and q3c is not installed: run '$0 install' as root"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    local data="$dir/data"
    if [[ $(id -u) -eq 0 ]]; then
        chown postgres: "$dir"
        # The postgres user must be able to reach DIR (mktemp makes 0700 parents for root only).
        local d="$dir"
        while [[ "$d" != "/" ]]; do
            d=$(dirname "$d")
            if ! runuser -u postgres -- test -x "$d"; then
                die "user postgres cannot enter $d: choose a DIR under a world-searchable folder (e.g. /tmp)"
            fi
        done
    fi
    if [[ -f "$data/postmaster.pid" ]] && as_owner "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        echo "pg-baseline: already running"
        cat "$dir/conninfo"
        return 0
    fi
    if [[ ! -f "$data/PG_VERSION" ]]; then
        as_owner "$PG_BIN/initdb" -D "$data" -U "$(owner_name)" --auth=trust --encoding=UTF8 \
            --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
        as_owner mkdir -p "$data/conf.d"
        # What DaCHS installations commonly tune (memory and planner costs for a read-mostly
        # catalogue server on local disks); durability settings are left at their defaults.
        as_owner tee "$data/conf.d/baseline.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
shared_buffers = '${PG_SHARED_BUFFERS:-2GB}'
work_mem = '${PG_WORK_MEM:-64MB}'
maintenance_work_mem = '${PG_MAINTENANCE_WORK_MEM:-1GB}'
effective_cache_size = '${PG_EFFECTIVE_CACHE_SIZE:-12GB}'
random_page_cost = ${PG_RANDOM_PAGE_COST:-1.1}
max_connections = 100
logging_collector = off
EOF
        echo "include_dir = 'conf.d'" | as_owner tee -a "$data/postgresql.conf" >/dev/null
        # pg_hba.conf from initdb --auth=trust: local and 127.0.0.1/::1 connections, trust.
    fi
    local port
    port=$(free_port)
    as_owner "$PG_BIN/pg_ctl" -D "$data" -l "$dir/server.log" -o "-p $port" -w -t 60 start >/dev/null \
        || { tail -n 30 "$dir/server.log" >&2; die "PostgreSQL did not start"; }
    echo "$port" > "$dir/port"
    echo "host=127.0.0.1 port=$port user=$(owner_name) dbname=postgres" > "$dir/conninfo"
    echo "pg-baseline: PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') running, data $data, log $dir/server.log"
    cat "$dir/conninfo"
}

cmd_stop() {
    local dir=${1:?usage: pg-baseline.sh stop DIR}
    local data="$dir/data"
    if [[ -f "$data/postmaster.pid" ]]; then
        as_owner "$PG_BIN/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null && echo "pg-baseline: stopped ($data)"
    else
        echo "pg-baseline: not running ($data)"
    fi
}

cmd_conninfo() {
    local dir=${1:?usage: pg-baseline.sh conninfo DIR}
    cat "$dir/conninfo"
}

case "${1:-}" in
    install) cmd_install ;;
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    conninfo) shift; cmd_conninfo "$@" ;;
    *) echo "usage: $0 install | start DIR | stop DIR | conninfo DIR" >&2; exit 2 ;;
esac
