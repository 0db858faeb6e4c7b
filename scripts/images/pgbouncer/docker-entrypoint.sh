#!/bin/sh
# Entrypoint of the locally built PgBouncer image (scripts/build-images.sh): writes
# /etc/pgbouncer/pgbouncer.ini from the same environment variables the common
# edoburu/pgbouncer image reads, unless a config is already there, then runs the command.
# No password is ever read from the environment here: AUTH_FILE names a file of
# `"user" "password"` lines (a secret mounted by the deployer), and the config
# only refers to its path. The config is printed; it holds no secret.
set -e

CONFIG=/etc/pgbouncer/pgbouncer.ini

if [ ! -f "$CONFIG" ]; then
    : "${DB_HOST:?set DB_HOST to the PostgreSQL host}"
    opt() { # opt KEY VALUE: a line only when VALUE is set
        if [ -n "$2" ]; then printf '%s = %s\n' "$1" "$2"; fi
    }
    {
        echo "; written by docker-entrypoint.sh from the environment"
        echo "[databases]"
        echo "${DB_NAME:-*} = host=${DB_HOST} port=${DB_PORT:-5432}"
        echo
        echo "[pgbouncer]"
        echo "listen_addr = ${LISTEN_ADDR:-0.0.0.0}"
        echo "listen_port = ${LISTEN_PORT:-5432}"
        echo "unix_socket_dir ="
        echo "auth_file = ${AUTH_FILE:-/etc/pgbouncer/userlist.txt}"
        echo "auth_type = ${AUTH_TYPE:-md5}"
        opt pool_mode "$POOL_MODE"
        opt max_client_conn "$MAX_CLIENT_CONN"
        opt default_pool_size "$DEFAULT_POOL_SIZE"
        opt min_pool_size "$MIN_POOL_SIZE"
        opt reserve_pool_size "$RESERVE_POOL_SIZE"
        opt max_db_connections "$MAX_DB_CONNECTIONS"
        opt max_prepared_statements "$MAX_PREPARED_STATEMENTS"
        opt server_lifetime "$SERVER_LIFETIME"
        opt server_idle_timeout "$SERVER_IDLE_TIMEOUT"
        opt query_wait_timeout "$QUERY_WAIT_TIMEOUT"
        opt log_connections "$LOG_CONNECTIONS"
        opt log_disconnections "$LOG_DISCONNECTIONS"
        echo "ignore_startup_parameters = ${IGNORE_STARTUP_PARAMETERS:-extra_float_digits}"
        echo "admin_users = ${ADMIN_USERS:-postgres}"
        opt stats_users "$STATS_USERS"
    } > "$CONFIG"
    cat "$CONFIG"
fi

exec "$@"
