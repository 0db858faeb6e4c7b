#!/usr/bin/env bash
# Entrypoint of the locally built postgres:15 image (scripts/build-images.sh).
# Follows the official image's docker-entrypoint.sh for what the deployer relies on:
#   - first argument starting with '-' => `postgres <args>`;
#   - started as root => fix ownership of $PGDATA and /var/run/postgresql, re-exec as `postgres`;
#   - empty $PGDATA => initdb with POSTGRES_USER (default postgres), POSTGRES_PASSWORD or
#     POSTGRES_PASSWORD_FILE, POSTGRES_INITDB_ARGS; `host all all all scram-sha-256` in pg_hba.conf
#     (POSTGRES_HOST_AUTH_METHOD overrides); creates POSTGRES_DB (default = user); runs
#     /docker-entrypoint-initdb.d/*.sh|*.sql|*.sql.gz against a temporary server;
#   - finally execs the command (`postgres` with any extra args such as `-c max_connections=57`).
# Difference: the temporary init server listens on a private socket directory only, so
# `pg_isready` (socket or TCP) succeeds only once the real server is up.
set -Eeo pipefail

log() { printf '%s [entrypoint] %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S UTC')" "$*" >&2; }

# file_env VAR [DEFAULT]: VAR from $VAR or from the file named by $VAR_FILE (not both).
file_env() {
    local var="$1" fileVar="${1}_FILE" def="${2:-}"
    if [ -n "${!var:-}" ] && [ -n "${!fileVar:-}" ]; then
        log "error: both $var and $fileVar are set (but are exclusive)"
        exit 1
    fi
    local val="$def"
    if [ -n "${!var:-}" ]; then
        val="${!var}"
    elif [ -n "${!fileVar:-}" ]; then
        if [ ! -r "${!fileVar}" ]; then
            log "error: $fileVar=${!fileVar} is not readable by uid $(id -u)"
            exit 1
        fi
        val="$(<"${!fileVar}")"
    fi
    export "$var"="$val"
    unset "$fileVar"
}

_pg_want_help() {
    local arg
    for arg; do
        case "$arg" in
            -'?'|--help|--describe-config|-V|--version) return 0 ;;
        esac
    done
    return 1
}

docker_setup_env() {
    file_env POSTGRES_PASSWORD
    file_env POSTGRES_USER postgres
    file_env POSTGRES_DB "$POSTGRES_USER"
    file_env POSTGRES_INITDB_ARGS
    : "${POSTGRES_HOST_AUTH_METHOD:=}"
    DATABASE_ALREADY_EXISTS=
    if [ -s "$PGDATA/PG_VERSION" ]; then
        DATABASE_ALREADY_EXISTS=true
    fi
}

docker_create_db_directories() {
    local user; user="$(id -u)"
    mkdir -p "$PGDATA"
    chmod 00700 "$PGDATA" 2>/dev/null || :
    mkdir -p /var/run/postgresql || :
    chmod 03775 /var/run/postgresql 2>/dev/null || :
    if [ "$user" = 0 ]; then
        find "$PGDATA" \! -user postgres -exec chown postgres: '{}' +
        find /var/run/postgresql \! -user postgres -exec chown postgres: '{}' +
    fi
}

docker_verify_minimum_env() {
    if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
        cat >&2 <<'EOE'
Error: Database is uninitialized and superuser password is not specified.
       You must specify POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) to a non-empty value for the
       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".

       You may also use "POSTGRES_HOST_AUTH_METHOD=trust" to allow all connections without a
       password. This is *not* recommended.
EOE
        exit 1
    fi
}

docker_init_database_dir() {
    if ! getent passwd "$(id -u)" >/dev/null; then
        log "error: uid $(id -u) has no entry in /etc/passwd and initdb needs one;" \
            "start the container as root (default) or with --user 999:999 (postgres)"
        exit 1
    fi
    # shellcheck disable=SC2016
    eval 'initdb --username="$POSTGRES_USER" --pwfile=<(printf "%s\n" "$POSTGRES_PASSWORD") '"$POSTGRES_INITDB_ARGS"
}

pg_setup_hba_conf() {
    local auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
    {
        printf '\n'
        if [ "$auth" = trust ]; then
            printf '# warning trust is enabled for all connections\n'
        fi
        printf 'host all all all %s\n' "$auth"
    } >>"$PGDATA/pg_hba.conf"
}

INIT_SOCKET_DIR=
docker_temp_server_start() {
    if [ "${1:-}" = postgres ]; then shift; fi
    INIT_SOCKET_DIR="$(mktemp -d /tmp/pg-init-socket.XXXXXX)"
    set -- "$@" -c listen_addresses='' -c unix_socket_directories="$INIT_SOCKET_DIR" -p "${PGPORT:-5432}"
    PGUSER="${PGUSER:-$POSTGRES_USER}" pg_ctl -D "$PGDATA" -o "$(printf '%q ' "$@")" -w start
    export PGHOST="$INIT_SOCKET_DIR"
}

docker_temp_server_stop() {
    PGUSER="${PGUSER:-postgres}" pg_ctl -D "$PGDATA" -m fast -w stop
    unset PGHOST
    rm -rf "$INIT_SOCKET_DIR"
}

docker_process_sql() {
    local query_runner=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
    if [ -n "$POSTGRES_DB" ]; then
        query_runner+=(--dbname "$POSTGRES_DB")
    fi
    PGHOSTADDR='' "${query_runner[@]}" "$@"
}

# POSTGRES_DB='' below is deliberate: --set db= still sees the outer value.
# shellcheck disable=SC2097,SC2098
docker_setup_db() {
    local exists
    exists="$(POSTGRES_DB='' docker_process_sql --dbname postgres --set db="$POSTGRES_DB" --tuples-only <<-'EOSQL'
		SELECT 1 FROM pg_database WHERE datname = :'db' ;
	EOSQL
    )"
    if [ -z "$exists" ]; then
        POSTGRES_DB='' docker_process_sql --dbname postgres --set db="$POSTGRES_DB" <<-'EOSQL'
			CREATE DATABASE :"db" ;
		EOSQL
        log "created database $POSTGRES_DB"
    fi
}

docker_process_init_files() {
    local f
    for f in /docker-entrypoint-initdb.d/*; do
        [ -e "$f" ] || continue
        case "$f" in
            *.sh)
                if [ -x "$f" ]; then
                    log "running $f"; "$f"
                else
                    log "sourcing $f"
                    # shellcheck disable=SC1090
                    . "$f"
                fi ;;
            *.sql)    log "running $f"; docker_process_sql -f "$f" ;;
            *.sql.gz) log "running $f"; gunzip -c "$f" | docker_process_sql ;;
            *)        log "ignoring $f" ;;
        esac
    done
}

_main() {
    if [ $# -eq 0 ]; then set -- postgres; fi
    if [ "${1:0:1}" = '-' ]; then
        set -- postgres "$@"
    fi

    if [ "$1" = postgres ] && ! _pg_want_help "$@"; then
        # Secrets are read here, possibly as root (a 0600 root-owned secret file works).
        docker_setup_env
        docker_create_db_directories
        if [ "$(id -u)" = 0 ]; then
            exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
        fi

        if [ -z "$DATABASE_ALREADY_EXISTS" ]; then
            docker_verify_minimum_env
            # fail before initdb if the init scripts cannot be read (e.g. a 0700 root-owned mount)
            if [ -d /docker-entrypoint-initdb.d ] && ! ls /docker-entrypoint-initdb.d/ >/dev/null 2>&1; then
                log "error: /docker-entrypoint-initdb.d is not readable by uid $(id -u)"
                exit 1
            fi
            docker_init_database_dir
            pg_setup_hba_conf
            export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
            docker_temp_server_start "$@"
            docker_setup_db
            docker_process_init_files
            docker_temp_server_stop
            unset PGPASSWORD
            log "PostgreSQL init process complete; ready for start up."
        else
            log "PostgreSQL database directory appears to contain a database; skipping initialization"
        fi
        # The server itself does not need the secret in its environment.
        unset POSTGRES_PASSWORD
    fi

    exec "$@"
}

_main "$@"
