#!/bin/sh
# Entrypoint of the redis and valkey stand-ins. Like the official images: options alone (or a
# .conf file) run the server, and a server started as root drops to the image's own user.
set -eu

server="$(basename "$(command -v redis-server || command -v valkey-server)")"
case "${1:-}" in
    -* | *.conf) set -- "$server" "$@" ;;
esac

if [ "${1:-}" = "$server" ]; then
    # The official images compile protected mode off: in a container, the published ports and
    # networks decide who connects, not the bind address. An explicit setting wins.
    case " $* " in
        *protected-mode*) ;;
        *) set -- "$@" --protected-mode no ;;
    esac
    if [ "$(id -u)" = 0 ]; then
        user="${server%-server}"
        find . \! -user "$user" -exec chown "$user" '{}' +
        # setpriv execs in place: the server becomes PID 1 and gets docker stop's SIGTERM.
        exec setpriv --reuid="$user" --regid="$user" --clear-groups -- "$0" "$@"
    fi
    if [ "$(umask)" = 0022 ]; then
        umask 0077
    fi
fi

exec "$@"
