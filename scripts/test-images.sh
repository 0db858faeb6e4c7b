#!/usr/bin/env bash
# Check that the service images behave the way the deployer relies on (whether they were pulled
# or built by scripts/build-images.sh). Exits non-zero if any check fails; removes every
# container/network it made (trap), also on failure or Ctrl-C.
#
# Usage: scripts/test-images.sh [--no-build]
#   Without --no-build, scripts/build-images.sh runs first (it skips images that exist).
# Image refs can be overridden: POSTGRES_IMAGE, NGINX_IMAGE, REDIS_IMAGE.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PG_IMAGE="${POSTGRES_IMAGE:-postgres:15-bookworm}"
NGINX_IMAGE="${NGINX_IMAGE:-nginx:1.30}"
REDIS_IMAGE="${REDIS_IMAGE:-redis:7.0-bookworm}"
RUN_ID="imgtest-$$-$RANDOM"
LABEL="deployer.image-test=$RUN_ID"
NET="$RUN_ID-net"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/test-images.XXXXXX")"
FAILURES=0
PASSES=0

cleanup() {
    local rc=$?
    local ids
    ids="$(docker ps -aq --filter "label=$LABEL" 2>/dev/null || true)"
    if [[ -n "$ids" ]]; then
        # shellcheck disable=SC2086
        docker rm -f -v $ids >/dev/null 2>&1 || true
    fi
    docker network rm "$NET" >/dev/null 2>&1 || true
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log() { printf '[test-images] %s\n' "$*"; }
pass() { PASSES=$((PASSES + 1)); printf '[test-images] PASS %s\n' "$*"; }
fail() { FAILURES=$((FAILURES + 1)); printf '[test-images] FAIL %s\n' "$*" >&2; }
# check DESCRIPTION EXPECTED ACTUAL
check_eq() {
    if [[ "$2" == "$3" ]]; then pass "$1 ($3)"; else fail "$1: expected '$2', got '$3'"; fi
}
# wait_for SECONDS COMMAND...: retry every 0.25 s until the command succeeds.
wait_for() {
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.25
    done
}
# Real uid of the container's PID 1 (the server after the entrypoint's exec).
pid1_uid() { docker exec "$1" awk '/^Uid:/ { print $2 }' /proc/1/status; }
pid1_comm() { docker exec "$1" cat /proc/1/comm; }
dump_logs() { log "--- last log lines of $1 ---"; docker logs --tail 30 "$1" 2>&1 | sed 's/^/    /' >&2 || true; }
run() { # docker run -d with the cleanup label; a container that cannot start ends the test
    docker run -d --label "$LABEL" "$@" || { fail "docker run $*"; log "$FAILURES check(s) FAILED"; exit 1; }
}

command -v curl >/dev/null 2>&1 || {
    log "installing curl on the host"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null
}

if [[ "${1:-}" != --no-build ]]; then
    log "scripts/build-images.sh (builds what is missing)"
    "$SCRIPT_DIR/build-images.sh" debian:bookworm-slim "$PG_IMAGE" "$NGINX_IMAGE" "$REDIS_IMAGE"
fi

# Re-running the build script when everything exists must be a quick no-op.
t0=$EPOCHREALTIME
out="$("$SCRIPT_DIR/build-images.sh" debian:bookworm-slim "$PG_IMAGE" "$NGINX_IMAGE" "$REDIS_IMAGE")"
secs="$(awk -v s="$t0" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.2f", e - s }')"
check_eq "build-images.sh re-run prints 4 'present' lines" 4 "$(grep -c ': present$' <<<"$out" || true)"
if awk -v s="$secs" 'BEGIN { exit !(s < 5) }'; then pass "build-images.sh re-run took ${secs}s"; else fail "build-images.sh re-run took ${secs}s (>= 5s)"; fi

docker network create --label "$LABEL" "$NET" >/dev/null

# ------------------------------------------------------------------ postgres
log "postgres: $PG_IMAGE as root with POSTGRES_USER=app, POSTGRES_PASSWORD_FILE, -c max_connections=57"
PG_PASSWORD="s3cret-$RANDOM pass"
printf '%s\n' "$PG_PASSWORD" >"$TMP/db_password"
chmod 0600 "$TMP/db_password" # root-only, like a real secret: the entrypoint reads it before dropping root
PG="$RUN_ID-pg"
run --name "$PG" --network "$NET" \
    -e POSTGRES_USER=app -e POSTGRES_PASSWORD_FILE=/run/secrets/db_password \
    -v "$TMP/db_password:/run/secrets/db_password:ro" \
    --health-cmd 'pg_isready -U app -d app -h 127.0.0.1' --health-interval 1s --health-timeout 3s --health-retries 30 \
    "$PG_IMAGE" -c max_connections=57 >/dev/null
health() { docker inspect -f '{{.State.Health.Status}}' "$1"; }
if wait_for 90 sh -c "test \"\$(docker inspect -f '{{.State.Health.Status}}' $PG)\" = healthy"; then
    pass "postgres: healthcheck 'pg_isready -U app -d app -h 127.0.0.1' reports healthy"
else
    fail "postgres: not healthy after 90s (status $(health "$PG"))"; dump_logs "$PG"
fi
check_eq "postgres: pg_isready (unix socket) in the container" 0 \
    "$(docker exec "$PG" pg_isready -q -U app -d app >/dev/null 2>&1; echo $?)"
psql_tcp() { # psql_tcp PASSWORD USER DB SQL — from a second container on the network
    docker run --rm --label "$LABEL" --network "$NET" -e PGPASSWORD="$1" -e PGCONNECT_TIMEOUT=5 "$PG_IMAGE" \
        psql -h "$PG" -U "$2" -d "$3" -tAc "$4"
}
check_eq "postgres: SHOW max_connections over TCP from another container with the password" 57 \
    "$(psql_tcp "$PG_PASSWORD" app app 'SHOW max_connections' 2>&1 || true)"
check_eq "postgres: connected as superuser 'app' to database 'app'" "app|app|t" \
    "$(psql_tcp "$PG_PASSWORD" app app "SELECT current_user, current_database(), rolsuper FROM pg_roles WHERE rolname = current_user" 2>&1 || true)"
if psql_tcp "wrong-password" app app 'SELECT 1' >"$TMP/wrongpw.out" 2>&1; then
    fail "postgres: a wrong password was accepted over TCP"
elif grep -q 'password authentication failed' "$TMP/wrongpw.out"; then
    pass "postgres: wrong password rejected over TCP (scram-sha-256)"
else
    fail "postgres: wrong password: unexpected error: $(head -c 300 "$TMP/wrongpw.out")"
fi
check_eq "postgres: pg_hba.conf has the host rule" "host all all all scram-sha-256" \
    "$(docker exec "$PG" sh -c 'grep "^host all all all" "$PGDATA/pg_hba.conf"' 2>&1 || true)"
check_eq "postgres: PID 1 is the server" postgres "$(pid1_comm "$PG" 2>&1 || true)"
check_eq "postgres: server runs as uid 999 (non-root)" 999 "$(pid1_uid "$PG" 2>&1 || true)"
if top_out="$(docker top "$PG" -o pid,uid,comm 2>&1)" && [[ "$(wc -l <<<"$top_out")" -ge 3 ]]; then
    check_eq "postgres: no server process runs as root ($(($(wc -l <<<"$top_out") - 1)) processes in docker top)" "" \
        "$(awk 'NR > 1 && $2 == 0 && $3 != "pg_isready"' <<<"$top_out")"
else
    fail "postgres: docker top failed: $top_out"
fi
check_eq "postgres: POSTGRES_PASSWORD not left in the server's environment" 0 \
    "$(docker exec "$PG" sh -c "tr '\0' '\n' </proc/1/environ | grep -c '^POSTGRES_PASSWORD='" 2>/dev/null || true)"

log "postgres: restart keeps the data and skips initialization"
docker restart -t 20 "$PG" >/dev/null
if wait_for 60 sh -c "test \"\$(docker inspect -f '{{.State.Health.Status}}' $PG)\" = healthy" \
    && [[ "$(psql_tcp "$PG_PASSWORD" app app 'SHOW max_connections' 2>&1 || true)" == 57 ]]; then
    pass "postgres: back after restart"
else
    fail "postgres: not back after restart"; dump_logs "$PG"
fi
if docker logs "$PG" 2>&1 | grep -q 'skipping initialization'; then
    pass "postgres: second start skipped initdb"
else
    fail "postgres: second start did not report skipping initialization"
fi
t0=$EPOCHREALTIME
docker stop -t 20 "$PG" >/dev/null
stop_secs="$(awk -v s="$t0" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.1f", e - s }')"
check_eq "postgres: SIGINT stop exits with code 0 (stopped in ${stop_secs}s)" 0 \
    "$(docker inspect -f '{{.State.ExitCode}}' "$PG")"

log "postgres: --user 999:999, 'postgres -c ...' form, default user/db"
PG2="$RUN_ID-pg2"
run --name "$PG2" --network "$NET" --user 999:999 -e POSTGRES_PASSWORD=pw2 \
    "$PG_IMAGE" postgres -c max_connections=58 >/dev/null
if wait_for 90 docker exec "$PG2" pg_isready -q -h 127.0.0.1; then
    pass "postgres --user 999:999: pg_isready over TCP"
else
    fail "postgres --user 999:999: not ready after 90s"; dump_logs "$PG2"
fi
check_eq "postgres --user 999:999: SHOW max_connections as user postgres" 58 \
    "$(docker run --rm --label "$LABEL" --network "$NET" -e PGPASSWORD=pw2 "$PG_IMAGE" \
        psql -h "$PG2" -U postgres -d postgres -tAc 'SHOW max_connections' 2>&1 || true)"
check_eq "postgres --user 999:999: server uid" 999 "$(pid1_uid "$PG2" 2>&1 || true)"

# ------------------------------------------------------------------ nginx
log "nginx: $NGINX_IMAGE as --user 101:101 with pid/temp paths in /tmp, listen 8080"
cat >"$TMP/nginx.conf" <<'EOF'
worker_processes 1;
pid /tmp/nginx.pid;
error_log /var/log/nginx/error.log notice;
events { worker_connections 64; }
http {
    client_body_temp_path /tmp/client_temp;
    proxy_temp_path       /tmp/proxy_temp;
    fastcgi_temp_path     /tmp/fastcgi_temp;
    uwsgi_temp_path       /tmp/uwsgi_temp;
    scgi_temp_path        /tmp/scgi_temp;
    access_log /var/log/nginx/access.log;
    upstream nothing { server 127.0.0.1:9; }
    server {
        listen 8080;
        location = /version { return 200 "v1\n"; }
        location /api/ { proxy_pass http://nothing; }
        location / { return 200 "ok\n"; }
    }
}
EOF
NG="$RUN_ID-nginx"
run --name "$NG" --network "$NET" --user 101:101 -p 127.0.0.1::8080 \
    -v "$TMP/nginx.conf:/etc/nginx/nginx.conf:ro" "$NGINX_IMAGE" >/dev/null
NG_PORT=""
wait_for 10 sh -c "docker port $NG 8080/tcp | grep -q ." || true
NG_PORT="$(docker port "$NG" 8080/tcp 2>/dev/null | head -n1 | sed 's/.*://')"
NG_URL="http://127.0.0.1:${NG_PORT:-0}"
if [[ -n "$NG_PORT" ]] && wait_for 20 curl -fsS -o /dev/null "$NG_URL/"; then
    check_eq "nginx --user 101:101: GET / from the host via 127.0.0.1:$NG_PORT" 200 \
        "$(curl -s -o /dev/null -w '%{http_code}' "$NG_URL/")"
else
    fail "nginx --user 101:101: no answer on 127.0.0.1:${NG_PORT:-?}"; dump_logs "$NG"
fi
check_eq "nginx: a dead upstream gives 502, not a crash" 502 "$(curl -s -o /dev/null -w '%{http_code}' "$NG_URL/api/x" || true)"
check_eq "nginx: master runs as uid 101" 101 "$(pid1_uid "$NG" 2>&1 || true)"
check_eq "nginx: PID 1 is nginx" nginx "$(pid1_comm "$NG" 2>&1 || true)"
if docker logs "$NG" 2>/dev/null | grep -q '"GET / HTTP/1.1" 200'; then
    pass "nginx: access log goes to the container's stdout"
else
    fail "nginx: access log line not found in docker logs"
fi
# Reload: rewrite the mounted file in place (same inode), then `nginx -s reload` via docker exec.
sed 's/"v1\\n"/"v2\\n"/' "$TMP/nginx.conf" >"$TMP/nginx.conf.new"
cat "$TMP/nginx.conf.new" >"$TMP/nginx.conf"
master_before="$(docker exec "$NG" cat /tmp/nginx.pid 2>/dev/null || true)"
if docker exec "$NG" nginx -s reload >"$TMP/reload.out" 2>&1; then
    pass "nginx: 'docker exec nginx -s reload' as uid 101"
else
    fail "nginx: reload failed: $(head -c 300 "$TMP/reload.out")"
fi
if wait_for 10 sh -c "curl -fsS '$NG_URL/version' | grep -qx v2"; then
    pass "nginx: new config served after reload"
else
    fail "nginx: still serving $(curl -s "$NG_URL/version" || true) after reload"; dump_logs "$NG"
fi
check_eq "nginx: same master process after reload" "$master_before" \
    "$(docker exec "$NG" cat /tmp/nginx.pid 2>/dev/null || true)"
if docker exec "$NG" nginx -t >/dev/null 2>&1; then pass "nginx: 'nginx -t' as uid 101"; else fail "nginx: 'nginx -t' as uid 101"; fi

log "nginx: $NGINX_IMAGE with its default config as root"
NG2="$RUN_ID-nginx2"
run --name "$NG2" -p 127.0.0.1::80 "$NGINX_IMAGE" >/dev/null
wait_for 10 sh -c "docker port $NG2 80/tcp | grep -q ." || true
NG2_URL="http://127.0.0.1:$(docker port "$NG2" 80/tcp 2>/dev/null | head -n1 | sed 's/.*://')"
if wait_for 20 curl -fsS -o /dev/null "$NG2_URL/"; then
    pass "nginx default config: GET / = 200"
else
    fail "nginx default config: no 200 on $NG2_URL"; dump_logs "$NG2"
fi
check_eq "nginx default config: workers run as user nginx (101)" 101 \
    "$(docker top "$NG2" -o pid,uid,args | awk 'NR > 1 && /worker process/ { print $2; exit }')"
t0=$EPOCHREALTIME
docker stop -t 10 "$NG2" >/dev/null
stop_secs="$(awk -v s="$t0" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.1f", e - s }')"
check_eq "nginx: SIGQUIT graceful stop exits 0 (stopped in ${stop_secs}s)" 0 "$(docker inspect -f '{{.State.ExitCode}}' "$NG2")"

# ------------------------------------------------------------------ redis
log "redis: $REDIS_IMAGE as --user 999:999"
RD="$RUN_ID-redis"
run --name "$RD" --network "$NET" --user 999:999 "$REDIS_IMAGE" >/dev/null
if wait_for 20 sh -c "docker exec $RD redis-cli ping | grep -qx PONG"; then
    pass "redis --user 999:999: redis-cli ping = PONG"
else
    fail "redis --user 999:999: no PONG"; dump_logs "$RD"
fi
check_eq "redis: from another container on the network (protected mode off)" PONG \
    "$(docker run --rm --label "$LABEL" --network "$NET" "$REDIS_IMAGE" redis-cli -h "$RD" ping 2>&1 || true)"
check_eq "redis: server uid" 999 "$(pid1_uid "$RD" 2>&1 || true)"
check_eq "redis: can persist to /data (SAVE)" OK "$(docker exec "$RD" redis-cli save 2>&1 || true)"

log "redis: $REDIS_IMAGE as root (default) with extra args"
RD2="$RUN_ID-redis2"
run --name "$RD2" --network "$NET" "$REDIS_IMAGE" redis-server --appendonly yes >/dev/null
if wait_for 20 sh -c "docker run --rm --label $LABEL --network $NET $REDIS_IMAGE redis-cli -h $RD2 ping | grep -qx PONG"; then
    pass "redis (root start, custom args): PONG from another container"
else
    fail "redis (root start, custom args): no PONG"; dump_logs "$RD2"
fi
check_eq "redis (root start): dropped to uid 999" 999 "$(pid1_uid "$RD2" 2>&1 || true)"

# ------------------------------------------------------------------ summary
for img in "$PG_IMAGE" "$NGINX_IMAGE" "$REDIS_IMAGE"; do
    log "$img: $(docker image inspect -f '{{.Size}}' "$img" | awk '{ printf "%.0f MB", $1 / 1000000 }')"
done
if ((FAILURES > 0)); then
    log "$FAILURES check(s) FAILED, $PASSES passed"
    exit 1
fi
log "all $PASSES checks passed"
