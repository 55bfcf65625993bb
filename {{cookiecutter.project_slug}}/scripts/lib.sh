# shellcheck shell=bash
# Shared by the scripts beside it, which source it; not a command of its own.
# Plain bash and the docker CLI only (no jq, no Python on the host). The compose settings
# COMPOSE_FILE, COMPOSE_PROJECT_NAME and .env are honoured: compose reads them itself.

# Work from the project root whatever the caller's directory: compose finds compose.yaml and
# .env there, and backups/ sits beside them (git-ignored, outside every volume).
CALLER_DIR="$PWD"
PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$PROJECT_ROOT" || exit 1
BACKUP_DIR="$PROJECT_ROOT/backups"
# Throwaway containers for volume archives need only sh, tar, gzip and find.
HELPER_IMAGE="${BACKUP_HELPER_IMAGE:-alpine:3.20}"
PROGRAM="$(basename "$0")"

# Progress and errors go to stderr, so stdout carries only results (paths, reports).
say() { printf '%s\n' "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$PROGRAM" "$*" >&2
    exit 1
}
usage_error() {
    printf '%s: %s\nTry: %s --help\n' "$PROGRAM" "$*" "$PROGRAM" >&2
    exit 2
}

compose() { docker compose "$@"; }

# On a Docker Swarm node: with STACK_NAME set, the scripts that back up and verify talk to
# that stack's task containers on this node, found by their service label, instead of compose.
STACK_NAME="${STACK_NAME:-}"

task_container() {
    docker ps -q --filter "label=com.docker.swarm.service.name=${STACK_NAME}_$1" \
        --filter status=running | sed -n 1p
}

# service_exec SERVICE COMMAND...: run COMMAND in the service's container, stdin attached.
service_exec() {
    local service="$1"
    shift
    if [ -n "$STACK_NAME" ]; then
        docker exec -i "$(task_container "$service")" "$@"
    else
        compose exec -T "$service" "$@"
    fi
}

# For the scripts that stop and start services or read compose's view of them.
compose_only() {
    [ -z "$STACK_NAME" ] ||
        die "works with compose only, and STACK_NAME is set (a swarm stack)"
}

# A file named on the command line is relative to the caller's directory.
caller_path() {
    case "$1" in
        /*) printf '%s' "$1" ;;
        *) printf '%s/%s' "$CALLER_DIR" "$1" ;;
    esac
}

# The compose project name as compose resolves it (COMPOSE_PROJECT_NAME, the file's name:,
# or this directory's name); its volumes are named <project>_<name>.
load_project() {
    if [ -n "$STACK_NAME" ]; then
        # A stack's volumes are named <stack>_<name>, as a compose project's are.
        PROJECT="$STACK_NAME"
        return
    fi
    PROJECT="$(compose config | sed -n '1s/^name: //p')" ||
        die "cannot read the compose configuration (see the message above)"
    [ -n "$PROJECT" ] || die "docker compose config printed no project name"
}

# Does the Docker engine run rootless (rootless Docker; rootless Podman maps ids alike)? Its
# containers see your own files as owned by uid and gid 0. Read from the plain output (Docker
# lists "rootless" under Security Options; Podman's docker prints "rootless: true").
engine_is_rootless() {
    local info
    # Whole output first: grep -q may stop reading early, and pipefail would count docker's
    # broken pipe as a failure.
    info="$(docker info 2>/dev/null)" || return 1
    grep -Eq '^ +rootless(: true)?$' <<<"$info"
}

volume_name() { printf '%s_%s' "$PROJECT" "$1"; }
volume_exists() { docker volume inspect "$1" >/dev/null 2>&1; }

is_running() {
    if [ -n "$STACK_NAME" ]; then
        [ -n "$(task_container "$1")" ]
    else
        [ -n "$(compose ps --status running -q "$1")" ]
    fi
}
require_running() {
    is_running "$1" && return
    if [ -n "$STACK_NAME" ]; then
        die "no task of ${STACK_NAME}_$1 runs on this node; run this on the node that runs it" \
            "(docker service ps ${STACK_NAME}_$1)"
    fi
    die "the $1 service is not running; start the stack: docker compose up -d --wait"
}

timestamp() { date -u +%Y%m%dT%H%M%SZ; }
# backup_file KIND EXTENSION TIMESTAMP: where a backup of that kind goes.
backup_file() { printf '%s/%s-%s-%s.%s' "$BACKUP_DIR" "$PROJECT" "$1" "$3" "$2"; }

# Run a shell script inside the db container as the database owner, through the local socket
# (trusted there, as in the official image), so no password is needed. Extra arguments are
# the script's $1, $2...
in_db() {
    local script="$1"
    shift
    service_exec db sh -c 'PGUSER="${POSTGRES_USER:-postgres}"
        PGDATABASE="${POSTGRES_DB:-$PGUSER}"
        export PGUSER PGDATABASE
        '"$script" sh "$@"
}

# The client of the redis service: redis-cli, or valkey-cli in the Valkey image. The password
# is read inside the container from its secret file, so it never crosses the command line.
redis_cli() {
    service_exec redis sh -c \
        'REDISCLI_AUTH="$(cat /run/secrets/redis_password)" \
        exec "$(command -v valkey-cli || command -v redis-cli)" "$@"' redis-cli "$@" </dev/null
}

# What to undo when a script exits, whatever the reason. Each step sets what it needs.
PARTIAL=""                  # a backup being written, renamed only once complete
REDIS_REWRITE_PERCENTAGE="" # Redis' automatic AOF rewrite setting, while paused
cleanup() {
    if [ -n "$PARTIAL" ]; then
        rm -f -- "$PARTIAL"
    fi
    if [ -n "$REDIS_REWRITE_PERCENTAGE" ]; then
        redis_cli config set auto-aof-rewrite-percentage "$REDIS_REWRITE_PERCENTAGE" >/dev/null ||
            say "warning: could not re-enable Redis' automatic AOF rewrites" \
                "(CONFIG SET auto-aof-rewrite-percentage $REDIS_REWRITE_PERCENTAGE)"
    fi
}
trap cleanup EXIT

# write_backup FILE COMMAND...: COMMAND's output into FILE, which appears only once complete,
# so a failed backup never looks like a good one. Prints size and path, like du -h.
write_backup() {
    local file="$1"
    shift
    [ ! -e "$file" ] || die "$file already exists; not overwriting it"
    mkdir -p "$BACKUP_DIR"
    PARTIAL="$file.partial"
    "$@" >"$PARTIAL" || die "writing $(basename "$file") failed (see above); no file was kept"
    mv -- "$PARTIAL" "$file"
    PARTIAL=""
    du -h "$file"
}

# Custom-format dump of the running db service's database into FILE.
dump_db() {
    require_running db
    say "Dumping the database through the db service..."
    write_backup "$1" in_db 'pg_dump --format=custom' </dev/null
}

# tar.gz of the named volume (compose name, e.g. uploads) into FILE, through a throwaway
# container as in Docker's "Back up a volume", but streamed over stdout: the file belongs to
# you rather than root, and it works against a remote engine too.
archive_volume() {
    local name="$1" file="$2" volume
    volume="$(volume_name "$name")"
    volume_exists "$volume" || die "volume $volume does not exist"
    if [ "$name" = postgres_data ] && is_running db; then
        die "refusing to archive $volume while the db service runs: PostgreSQL changes its" \
            "files as it goes, so a copy of them is not a consistent backup. Use" \
            "scripts/backup-db (works while running), or stop it first: docker compose stop db"
    fi
    if [ "$name" = redis_data ] && is_running redis; then
        pause_redis_rewrites
    fi
    say "Archiving volume $volume with $HELPER_IMAGE..."
    write_backup "$file" docker run --rm --network none -v "$volume:/volume:ro" "$HELPER_IMAGE" \
        tar -czf - --numeric-owner -C /volume .
    resume_redis_rewrites
}

# A copy of Redis' append-only files taken during a rewrite can miss data. As Redis'
# persistence guide advises: turn automatic rewrites off, wait for a running one to end, copy,
# turn them back on. Redis keeps serving meanwhile.
pause_redis_rewrites() {
    local waited=0
    REDIS_REWRITE_PERCENTAGE="$(redis_cli config get auto-aof-rewrite-percentage | sed -n 2p)"
    redis_cli config set auto-aof-rewrite-percentage 0 >/dev/null
    while redis_cli info persistence | grep -E '^aof_rewrite_(in_progress|scheduled):1' >/dev/null; do
        [ "$waited" -lt 120 ] || die "Redis is still rewriting its append-only file after 120 s"
        sleep 1
        waited=$((waited + 1))
    done
}

resume_redis_rewrites() {
    if [ -n "$REDIS_REWRITE_PERCENTAGE" ]; then
        redis_cli config set auto-aof-rewrite-percentage "$REDIS_REWRITE_PERCENTAGE" >/dev/null
        REDIS_REWRITE_PERCENTAGE=""
    fi
}

# confirm QUESTION: go on only after a yes typed at a terminal.
confirm() {
    local answer
    [ -t 0 ] || die "there is no terminal to ask for confirmation; pass --yes to go ahead"
    read -r -p "$1 [y/N] " answer
    case "$answer" in
        y | Y | yes | YES) ;;
        *)
            say "Cancelled; nothing was changed."
            exit 1
            ;;
    esac
}
