#!/usr/bin/env bash
# Entrypoint of the postgres stand-in: what a compose file relies on in the official image.
# As root: read the settings, prepare the directories, re-run itself as postgres. As postgres:
# initdb on an empty PGDATA, create POSTGRES_DB, run the init scripts, then exec the server.
set -Eeuo pipefail

# Export NAME from $NAME or from the file named by NAME_FILE (compose secrets). Read as root,
# before dropping privileges, so a secret file readable by root only is fine.
read_setting() {
    local name="$1" default="${2:-}" file_name="${1}_FILE"
    local value="${!name:-}" file="${!file_name:-}"
    if [ -n "$value" ] && [ -n "$file" ]; then
        echo "error: both $name and $file_name are set (they are exclusive)" >&2
        exit 1
    fi
    if [ -n "$file" ]; then
        value="$(<"$file")"
    fi
    export "$name=${value:-$default}"
    unset "$file_name"
}

wants_help() {
    local argument
    for argument; do
        case "$argument" in
            '-?' | --help | --describe-config | -V | --version) return 0 ;;
        esac
    done
    return 1
}

prepare_directories() {
    mkdir -p "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA" || :
    if [ "$(id -u)" = 0 ]; then
        # Also lets the container start with --user, or on a volume created by another image.
        find "$PGDATA" /var/run/postgresql \! -user postgres -exec chown postgres:postgres '{}' +
    fi
}

run_sql() {
    PGHOST= PGHOSTADDR= psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password \
        --username "$POSTGRES_USER" "$@"
}

initialize() {
    if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
        echo "error: database is uninitialized and POSTGRES_PASSWORD is not set" >&2
        exit 1
    fi
    local initdb_args
    read -r -a initdb_args <<<"$POSTGRES_INITDB_ARGS"
    # --pwfile rejects an empty file, hence the newline.
    initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
        "${initdb_args[@]}"
    # Other hosts log in with a password, hashed the way the server is configured to.
    local method="${POSTGRES_HOST_AUTH_METHOD:-$(postgres -C password_encryption "${@:2}")}"
    printf '\nhost all all all %s\n' "$method" >>"$PGDATA/pg_hba.conf"

    # Socket only while setting up, so that a TCP health check does not pass too early.
    export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
    local options=("${@:2}" -c listen_addresses= -p "${PGPORT:-5432}")
    pg_ctl -D "$PGDATA" -w start -o "$(printf '%q ' "${options[@]}")"
    run_sql --dbname postgres --set db="$POSTGRES_DB" <<<"
        SELECT format('CREATE DATABASE %I', :'db')
        WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec"
    local script
    for script in /docker-entrypoint-initdb.d/*; do
        case "$script" in
            *.sh) echo "running $script" && . "$script" ;;
            *.sql) echo "running $script" && run_sql --dbname "$POSTGRES_DB" -f "$script" ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop
    unset PGPASSWORD
    echo "PostgreSQL init process complete; ready for start up."
}

main() {
    case "${1:-}" in
        -*) set -- postgres "$@" ;;
    esac
    if [ "${1:-}" = postgres ] && ! wants_help "$@"; then
        read_setting POSTGRES_PASSWORD
        read_setting POSTGRES_USER postgres
        read_setting POSTGRES_DB "$POSTGRES_USER"
        read_setting POSTGRES_INITDB_ARGS
        : "${POSTGRES_HOST_AUTH_METHOD:=}"
        prepare_directories
        if [ "$(id -u)" = 0 ]; then
            # setpriv execs in place (no child process), so postgres ends up as PID 1.
            HOME=/var/lib/postgresql exec setpriv --reuid=postgres --regid=postgres \
                --init-groups -- "${BASH_SOURCE[0]}" "$@"
        fi
        if [ -s "$PGDATA/PG_VERSION" ]; then
            echo "PostgreSQL database directory appears to contain a database; skipping initialization"
        else
            initialize "$@"
        fi
    fi
    exec "$@"
}

main "$@"
