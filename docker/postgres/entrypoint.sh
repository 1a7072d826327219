#!/bin/bash
# Starts PostgreSQL on the Unix socket in /run/postgresql; at the first start of an empty
# $PGDATA, creates the cluster, the role `vostok` and its database `vostok` first.
# Extra arguments go to `postgres` (e.g. `-c shared_buffers=512MB`).
set -euo pipefail
: "${PGDATA:=/var/lib/postgresql/data}"
SOCKET=/run/postgresql

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
    echo "[vostok-postgres] empty $PGDATA: creating the cluster, role vostok, database vostok" >&2
    initdb -D "$PGDATA" -U postgres -E UTF8 --locale=C.UTF-8 --auth-local=peer --auth-host=reject
    # The socket is only reachable by containers that mount its volume: `vostok` connects
    # to its own database without a password; everything else needs the OS user postgres.
    { echo "local vostok vostok trust"; cat "$PGDATA/pg_hba.conf"; } > "$PGDATA/pg_hba.new"
    mv "$PGDATA/pg_hba.new" "$PGDATA/pg_hba.conf"
    pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -c unix_socket_directories=$SOCKET" start
    psql -h "$SOCKET" -U postgres -v ON_ERROR_STOP=1 -q -c "CREATE ROLE vostok LOGIN"
    psql -h "$SOCKET" -U postgres -v ON_ERROR_STOP=1 -q -c "CREATE DATABASE vostok OWNER vostok"
    pg_ctl -D "$PGDATA" -w -m fast stop
fi
exec postgres -D "$PGDATA" -c listen_addresses='' -c unix_socket_directories="$SOCKET" \
    -c unix_socket_permissions=0777 "$@"
