#!/bin/sh
# Entrypoint of the locally built redis:7.0 image (scripts/build-images.sh), after the official one:
#   - first argument starting with '-' or ending in '.conf' => `redis-server <args>`;
#   - started as root => chown /data (the workdir) to redis and re-exec as redis (uid 999);
#   - the official image's redis-server defaults to protected-mode off; Debian's does not, so
#     `--protected-mode no` is added when redis-server runs without a config file and the
#     arguments do not set protected-mode themselves.
set -e

if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
    set -- redis-server "$@"
fi

if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
    find . \! -user redis -exec chown redis '{}' +
    exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi

if [ "$1" = redis-server ] && { [ $# -eq 1 ] || [ "${2#-}" != "$2" ]; }; then
    case " $* " in
        *" --protected-mode "*) ;;
        *) shift; set -- redis-server --protected-mode no "$@" ;;
    esac
fi

# as in the official image: files redis writes are private unless the user chose a umask
um="$(umask)"
if [ "$um" = '0022' ]; then
    umask 0077
fi

exec "$@"
