#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for berth-postgres's tests.
#
#   eval "$(scripts/postgres-test-server.sh start DIR)"   # prints export BERTH_TEST_POSTGRES_URL=...
#   cargo test -p berth-postgres
#   scripts/postgres-test-server.sh stop DIR
#
# The cluster lives in DIR (created if missing), listens on 127.0.0.1 on a free port, and has a
# role `berth` (password `pw`) allowed to CREATE DATABASE: each test makes its own database.
# PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user.
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

usage() {
    echo "usage: $0 start DIR | stop DIR" >&2
    exit 2
}

[ $# -eq 2 ] || usage
cmd=$1
dir=$2

# Runs a command as the user owning the cluster (postgres when we are root).
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        local quoted
        printf -v quoted '%q ' "$@"
        (cd /tmp && su postgres -s /bin/sh -c "$quoted")
    else
        "$@"
    fi
}

ensure_installed() {
    if [ ! -x "$PGBIN/initdb" ]; then
        if [ "$(id -u)" -ne 0 ]; then
            echo "PostgreSQL 15 is not installed at $PGBIN (apt-get install -y postgresql, as root)" >&2
            exit 1
        fi
        echo "installing PostgreSQL (apt-get install -y postgresql)..." >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >&2
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
    ensure_installed
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres:postgres "$dir"
    fi
    if [ -f "$dir/port" ] && as_owner "$PGBIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        port=$(cat "$dir/port")
    else
        if [ ! -d "$dir/data" ]; then
            as_owner "$PGBIN/initdb" -D "$dir/data" -U postgres -E UTF8 --locale=C.UTF-8 \
                --auth-local=trust --auth-host=scram-sha-256 --no-sync >"$dir/initdb.log" 2>&1 \
                || { cat "$dir/initdb.log" >&2; exit 1; }
        fi
        # A restart (stop, then start on the same DIR) comes back on the same port, so tests can
        # take the database away from running berth nodes and give it back.
        port=$(cat "$dir/last-port" 2>/dev/null || free_port)
        echo "$port" >"$dir/last-port"
        as_owner "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off" start >&2 \
            || { cat "$dir/server.log" >&2; exit 1; }
        echo "$port" >"$dir/port.tmp"
        mv "$dir/port.tmp" "$dir/port"
        as_owner psql -h "$dir" -p "$port" -U postgres -v ON_ERROR_STOP=1 -q -c \
            "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'berth') THEN CREATE ROLE berth LOGIN PASSWORD 'pw' CREATEDB; END IF; END \$\$" >&2
    fi
    echo "export BERTH_TEST_POSTGRES_URL=postgres://berth:pw@127.0.0.1:$port/postgres"
}

stop() {
    if [ -d "$dir/data" ]; then
        as_owner "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
    fi
    rm -f "$dir/port"
}

case "$cmd" in
    start) start ;;
    stop) stop ;;
    *) usage ;;
esac
