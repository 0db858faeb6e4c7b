#!/usr/bin/env bash
# Make the service images the deployer needs available on the local Docker Engine.
#
# Usage: scripts/build-images.sh [IMAGE_REF...]
#   default refs: debian:bookworm-slim postgres:15-bookworm nginx:1.30 redis:7.0-bookworm
#                 edoburu/pgbouncer:v1.24.1-p1 (the pooler; the app tests run PgBouncer from it too)
#
# For each ref:
#   1. `docker image inspect REF` succeeds      -> "REF: present", nothing else is done;
#   2. `timeout 20 docker pull REF` succeeds    -> the official image (the real-user path);
#   3. otherwise build a compatible image locally from Debian packages and tag it REF: bookworm's,
#      except nginx:1.30, whose nginx comes from sid (bookworm has 1.22; the tag must say what is
#      inside, so nginx:1.22 stays buildable from bookworm for files that pin it).
# The kind of image is chosen from the repository part of the ref (debian, postgres, nginx, redis,
# pgbouncer). The debian bases (bookworm, and trixie for PgBouncer 1.24) are made with debootstrap +
# `docker import`; the others are built with scripts/images/<kind>/Dockerfile FROM the base its
# FROM line names (made first if missing): debian:bookworm-slim, or debian:trixie-slim.
#
# Environment (all optional):
#   DEBIAN_MIRROR           mirror for debootstrap and apt in the images (default http://deb.debian.org/debian)
#   DEBIAN_SECURITY_MIRROR  security mirror (default http://deb.debian.org/debian-security)
#   BUILD_IMAGES_NO_PULL=1  skip the `docker pull` attempt
#   BUILD_IMAGES_VERBOSE=1  stream debootstrap / docker build output instead of logging it to a file
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
IMAGES_DIR="$SCRIPT_DIR/images"
BASE_REF="debian:bookworm-slim"
DEFAULT_REFS=("$BASE_REF" "postgres:15-bookworm" "nginx:1.30" "redis:7.0-bookworm" "edoburu/pgbouncer:v1.24.1-p1")
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DEBIAN_SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
PULL_TIMEOUT=20
label() { printf 'org.opencontainers.image.description=built locally from Debian %s packages by scripts/build-images.sh' "$1"; }

log() { printf '[build-images] %s\n' "$*"; }
die() { printf '[build-images] ERROR: %s\n' "$*" >&2; exit 1; }
now() { printf '%s' "$EPOCHREALTIME"; }
since() { awk -v s="$1" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.1fs", e - s }'; }

T_START="$(now)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/build-images.XXXXXX")"
cleanup() {
    local rc=$?
    if [[ -n "$WORK" && -d "$WORK" ]]; then
        # debootstrap mounts proc/sys inside the rootfs; never recurse into a live mount.
        local m
        awk -v w="$WORK" 'index($2, w) == 1 { print $2 }' /proc/self/mounts | sort -r \
            | while read -r m; do umount -l "$m" 2>/dev/null || true; done
        rm -rf --one-file-system "$WORK" || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

workdir() { printf '%s' "$WORK"; }

# Run a noisy command with its output in a log file; show the tail when it fails.
run_logged() {
    local logfile="$1"; shift
    if [[ "${BUILD_IMAGES_VERBOSE:-0}" == 1 ]]; then
        "$@"
        return
    fi
    if ! "$@" >"$logfile" 2>&1; then
        printf '[build-images] command failed: %s\n--- last lines of %s ---\n' "$*" "$logfile" >&2
        tail -n 40 "$logfile" >&2 || true
        return 1
    fi
}

# ---------------------------------------------------------------- host tools
APT_UPDATED=0
ensure_host_tool() { # ensure_host_tool COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 && return 0
    [[ "$(id -u)" == 0 ]] || die "'$1' is missing; install the '$2' package (needs root)"
    local t; t="$(now)"
    if [[ "$APT_UPDATED" == 0 ]]; then
        log "host: apt-get update"
        run_logged "$(workdir)/apt-update.log" apt-get update
        APT_UPDATED=1
    fi
    log "host: apt-get install -y $2"
    DEBIAN_FRONTEND=noninteractive run_logged "$(workdir)/apt-install-$2.log" \
        apt-get install -y --no-install-recommends "$2"
    command -v "$1" >/dev/null 2>&1 || die "'$1' still missing after installing '$2'"
    log "host: installed $2 in $(since "$t")"
}

DOCKER_CHECKED=0
ensure_docker() {
    [[ "$DOCKER_CHECKED" == 1 ]] && return 0
    command -v docker >/dev/null 2>&1 || die "the docker CLI is not installed"
    docker version --format '{{.Server.Version}}' >/dev/null 2>&1 \
        || die "no Docker Engine answers (docker version failed); start dockerd first"
    # Docker CLI >= 23 wants buildx for BuildKit; without it fall back to the classic builder.
    if ! docker buildx version >/dev/null 2>&1; then
        export DOCKER_BUILDKIT=0
    fi
    DOCKER_CHECKED=1
}

# ---------------------------------------------------------------- refs
# Sets REF_REPO (last path component of the repository) and REF_TAG.
parse_ref() {
    local ref="$1" name tag
    [[ "$ref" != *@* ]] || die "$ref: digest references cannot be built locally; use a tag"
    name="$ref"; tag="latest"
    if [[ "${ref##*/}" == *:* ]]; then
        tag="${ref##*:}"
        name="${ref%:*}"
    fi
    REF_REPO="${name##*/}"
    REF_TAG="$tag"
}

# Echo the kind to build for REF, or fail with a clear message.
kind_for_ref() {
    local ref="$1"
    parse_ref "$ref"
    local kind="$REF_REPO" ok=0 want=""
    case "$kind" in
        debian)
            want="debian:bookworm-slim or debian:trixie-slim (also bookworm, 12, 12-slim, 12.N[-slim], trixie, 13…)"
            [[ "$REF_TAG" =~ ^(bookworm|12(\.[0-9]+)?|trixie|13(\.[0-9]+)?)(-slim)?$ ]] && ok=1 ;;
        postgres)
            want="postgres:15-bookworm (also 15, 15.N, 15.N-bookworm)"
            [[ "$REF_TAG" =~ ^15(\.[0-9]+)?(-bookworm)?$ ]] && ok=1 ;;
        nginx)
            want="nginx:1.30 (also 1.30.N; from sid) or nginx:1.22 (also 1.22.N, 1.22[.N]-bookworm)"
            [[ "$REF_TAG" =~ ^1\.22(\.[0-9]+)?(-bookworm)?$ || "$REF_TAG" =~ ^1\.30(\.[0-9]+)?$ ]] && ok=1 ;;
        redis)
            want="redis:7.0-bookworm (also 7.0, 7.0.N, 7.0.N-bookworm)"
            [[ "$REF_TAG" =~ ^7\.0(\.[0-9]+)?(-bookworm)?$ ]] && ok=1 ;;
        pgbouncer)
            # edoburu/pgbouncer tags: v1.24.1-p1; Debian trixie ships PgBouncer 1.24.1.
            want="edoburu/pgbouncer:v1.24.1-p1 (also pgbouncer:1.24, 1.24.N, v1.24.N[-pN])"
            [[ "$REF_TAG" =~ ^v?1\.24(\.[0-9]+)?(-p[0-9]+)?$ ]] && ok=1 ;;
        *)
            die "$ref: cannot build '$REF_REPO' images locally; this script knows debian, postgres, nginx, redis and pgbouncer" ;;
    esac
    [[ "$ok" == 1 ]] || die "$ref: the local build makes the version Debian ships; tag '$REF_TAG' does not match it (use $want)"
    [[ -f "$IMAGES_DIR/$kind/Dockerfile" || "$kind" == debian ]] || die "missing $IMAGES_DIR/$kind/Dockerfile"
    printf '%s' "$kind"
}

# ---------------------------------------------------------------- builders
build_debian() {
    local ref="$1" t rootfs suite=bookworm
    parse_ref "$ref"
    [[ "$REF_TAG" =~ ^(trixie|13) ]] && suite=trixie
    ensure_host_tool debootstrap debootstrap
    rootfs="$(workdir)/rootfs-$suite"
    t="$(now)"
    log "$ref: debootstrap --variant=minbase $suite $DEBIAN_MIRROR"
    run_logged "$(workdir)/debootstrap-$suite.log" \
        debootstrap --variant=minbase "$suite" "$rootfs" "$DEBIAN_MIRROR"
    log "$ref: debootstrap done in $(since "$t")"

    # Configure apt and dpkg like the official slim image (debuerreotype's minimizing config).
    rm -f "$rootfs/etc/apt/sources.list"
    mkdir -p "$rootfs/etc/apt/sources.list.d" "$rootfs/etc/apt/apt.conf.d" "$rootfs/etc/dpkg/dpkg.cfg.d"
    cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $DEBIAN_MIRROR
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $DEBIAN_SECURITY_MIRROR
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    cp -R --preserve=mode,timestamps "$IMAGES_DIR/debian/rootfs/." "$rootfs/"
    chmod 0755 "$rootfs/usr/sbin/policy-rc.d"

    # Slim: drop docs, man pages and translations (kept out of later installs by dpkg.cfg.d/docker).
    find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$rootfs/usr/share/man/"* "$rootfs/usr/share/info/"* "$rootfs/usr/share/groff/"* \
        "$rootfs/usr/share/lintian/"* "$rootfs/usr/share/linda/"*
    find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +

    # Clean apt lists/caches, logs and host leftovers.
    rm -rf "$rootfs/var/lib/apt/lists/"* "$rootfs/var/cache/apt/"*.bin \
        "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/cache/apt/archives/partial/"* \
        "$rootfs/var/log/apt/"* "$rootfs/var/cache/ldconfig/aux-cache" "$rootfs/var/cache/debconf/"*-old \
        "$rootfs/var/lib/dpkg/"*-old "${rootfs:?}/dev/"*
    rm -f "$rootfs/var/log/dpkg.log" "$rootfs/var/log/bootstrap.log" "$rootfs/var/log/alternatives.log"
    : >"$rootfs/etc/resolv.conf"
    : >"$rootfs/etc/hostname"
    [[ -s "$rootfs/usr/share/keyrings/debian-archive-keyring.gpg" ]] \
        || die "$ref: debootstrap rootfs lacks debian-archive-keyring.gpg"

    t="$(now)"
    log "$ref: docker import"
    tar --numeric-owner -C "$rootfs" -c . | docker import \
        --change 'CMD ["bash"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change "LABEL $(label "$suite" | sed 's/=/="/')\"" \
        --message "debootstrap --variant=minbase $suite (scripts/build-images.sh)" \
        - "$ref" >/dev/null
    log "$ref: imported in $(since "$t")"
    rm -rf --one-file-system "$rootfs"
}

# The Debian suite a service's package comes from, and the version the image must hold.
# Sets SUITE and VERSION (VERSION empty: the Dockerfile checks nothing).
suite_for_ref() {
    parse_ref "$1"
    SUITE=bookworm VERSION=""
    case "$REF_REPO:$REF_TAG" in
        nginx:1.30*) SUITE=sid VERSION=1.30 ;;
        nginx:*) VERSION=1.22 ;;
    esac
}

build_service() {
    local ref="$1" kind="$2" t base label args=()
    base="$(awk '$1 == "FROM" { print $2; exit }' "$IMAGES_DIR/$kind/Dockerfile")"
    [[ -n "$base" ]] || die "$IMAGES_DIR/$kind/Dockerfile has no FROM line"
    ensure_image "$base"
    suite_for_ref "$ref"
    label="$(label "$(sed -E "s/^debian:([a-z]+).*/\1/" <<<"$base")")"
    if [[ -n "$VERSION" ]]; then
        args+=(--build-arg "NGINX_SUITE=$SUITE" --build-arg "NGINX_VERSION=$VERSION"
            --build-arg "DEBIAN_MIRROR=$DEBIAN_MIRROR")
    fi
    if [[ "$SUITE" != bookworm ]]; then
        label="org.opencontainers.image.description=built locally by scripts/build-images.sh: $kind $VERSION from Debian $SUITE on $base"
    fi
    t="$(now)"
    log "$ref: docker build scripts/images/$kind (FROM $base, $kind from $SUITE)"
    run_logged "$(workdir)/build-$kind.log" \
        docker build --label "$label" "${args[@]}" -t "$ref" "$IMAGES_DIR/$kind"
    log "$ref: docker build done in $(since "$t")"
}

# ---------------------------------------------------------------- main logic
declare -A SEEN=()
ensure_image() {
    local ref="$1" t kind
    [[ -z "${SEEN[$ref]:-}" ]] || return 0
    ensure_docker
    t="$(now)"
    if docker image inspect "$ref" >/dev/null 2>&1; then
        echo "$ref: present"
        SEEN[$ref]=1
        return 0
    fi
    if [[ "${BUILD_IMAGES_NO_PULL:-0}" != 1 ]]; then
        log "$ref: missing; trying timeout $PULL_TIMEOUT docker pull $ref"
        if timeout "$PULL_TIMEOUT" docker pull -q "$ref" >"$(workdir)/pull.log" 2>&1; then
            echo "$ref: pulled in $(since "$t")"
            SEEN[$ref]=1
            return 0
        fi
        log "$ref: pull failed ($(tail -n 1 "$(workdir)/pull.log" | cut -c1-160))"
    fi
    kind="$(kind_for_ref "$ref")"
    log "$ref: building locally (kind $kind)"
    if [[ "$kind" == debian ]]; then
        build_debian "$ref"
    else
        build_service "$ref" "$kind"
    fi
    docker image inspect "$ref" >/dev/null 2>&1 || die "$ref: build finished but the image is not there"
    local size
    size="$(docker image inspect -f '{{.Size}}' "$ref" | awk '{ printf "%.0f MB", $1 / 1000000 }')"
    echo "$ref: built locally in $(since "$t") ($size)"
    SEEN[$ref]=1
}

main() {
    local refs=("$@") ref
    [[ ${#refs[@]} -gt 0 ]] || refs=("${DEFAULT_REFS[@]}")
    for ref in "${refs[@]}"; do
        case "$ref" in -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
    done
    # One build at a time on this engine (parallel test runs may call this script).
    exec 9>"${BUILD_IMAGES_LOCK:-/tmp/build-images.lock}"
    if ! flock -n 9; then
        log "another build-images.sh run holds the lock; waiting"
        flock 9
    fi
    for ref in "${refs[@]}"; do
        ensure_image "$ref"
    done
    log "done in $(since "$T_START")"
}

main "$@"
