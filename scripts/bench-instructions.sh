#!/usr/bin/env bash
# Instructions per request, counted by callgrind: what each part of the request path costs in
# user space, the same from run to run whatever else this shared machine is doing (the same
# binary, inputs and environment give the same counts; wall-clock ratios here swing +-10 %).
#   1. the balancer: the cluster's nginx image, one worker (`master_process off`), in front of
#      5 bare axum nodes on a private network, with the nginx.conf `deployer render` writes for
#      each `[balancer] access_log` value, against the reference of scripts/bench-cluster.sh
#      (that config with no access log, node names resolved once: no `zone`, no `resolve`).
#   2. a node: the app against the bare axum server (app/examples/bare.rs), host processes on
#      a throwaway PostgreSQL: GET /api/health against GET /, GET /api/auth/me (bearer token)
#      against GET /me (the same one query, no token).
# Each figure: wrk -t1 -c8 for SECONDS seconds after a 3 s warm-up, callgrind's instruction
# count for that window divided by the requests wrk saw answered. Kernel time (syscalls, the
# network stack, Docker's proxy) is not counted: these figures say what our configuration and
# code add, scripts/bench-cluster.sh what the whole path delivers.
# Valgrind shows the program a CPU without SHA extensions: the JWT's HMAC-SHA256 runs ring's
# AVX code here, where the real CPU (sha_ni) needs fewer instructions.
# Needs: valgrind, wrk, curl, jq, psql and PostgreSQL server binaries, Docker with the images of
# scripts/build-images.sh (nginx) and a built deployer (cargo build --release -p deployer).
# Usage: scripts/bench-instructions.sh   (SECONDS_EACH=8; STEPS="1 2")
#   NGINX_CONFS="label=path ..."  more nginx.conf files for step 1, counted beside the rendered
#                                 ones (their upstream names the nodes cgbench-app-1..5)
set -euo pipefail

cd "$(dirname "$0")/.."
REPO="$PWD"
SECONDS_EACH="${SECONDS_EACH:-8}"
STEPS="${STEPS:-1 2}"
TARGET="${CARGO_TARGET_DIR:-target}"
PG_BIN="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}"
VALGRIND_BIN="$(command -v valgrind.bin || true)"
for tool in valgrind callgrind_control wrk curl jq psql docker "$PG_BIN/initdb"; do
    command -v "$tool" >/dev/null || { echo "error: $tool not found" >&2; exit 1; }
done

echo "building (release)..." >&2
cargo build --release -q -p deployer -p app --bin deployer --bin app --example bare
DEPLOYER="$TARGET/release/deployer"
APP="$TARGET/release/app"
BARE="$TARGET/release/examples/bare"

WORK="$(mktemp -d /tmp/bench-instructions.XXXXXX)"
chmod 755 "$WORK"
NAME="cgbench"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ -f "$WORK/pg/postmaster.pid" ]]; then
        kill -INT "$(head -1 "$WORK/pg/postmaster.pid")" 2>/dev/null || true
        sleep 1
    fi
    docker rm -f "$NAME-lb" "$NAME-bare-1" "$NAME-bare-2" "$NAME-bare-3" "$NAME-bare-4" \
        "$NAME-bare-5" >/dev/null 2>&1 || true
    docker network rm "$NAME-net" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# vgdb (callgrind_control) finds a run by files named after the user and host.
export USER="${USER:-root}" HOSTNAME="${HOSTNAME:-$(hostname)}"
requests() { awk '/requests in/ { print $1 }'; }
non2xx() { awk '/Non-2xx/ { print $NF }'; }
total_ir() { cat "$@" 2>/dev/null | awk '/^totals:/ { s += $2 } END { print s + 0 }'; }
# measure label pid url [lua]: zero, count SECONDS_EACH s of wrk load, dump; prints Ir/req.
# The run under callgrind keeps its control files and dumps in $WORK/vg-<label> (vgdb, cg.N).
measure() {
    local label="$1" pid="$2" url="$3" lua="${4:-}" out reqs bad ir
    local ctl=(callgrind_control --vgdb-prefix="$WORK/vg-$label/vgdb")
    wrk -t1 -c8 -d3s ${lua:+-s "$lua"} "$url" >/dev/null
    "${ctl[@]}" -i on "$pid" >/dev/null
    "${ctl[@]}" -z "$pid" >/dev/null
    out="$(wrk -t1 -c8 -d"${SECONDS_EACH}s" ${lua:+-s "$lua"} "$url")"
    "${ctl[@]}" -i off "$pid" >/dev/null
    "${ctl[@]}" -d "$pid" >/dev/null
    reqs="$(requests <<<"$out")"; bad="$(non2xx <<<"$out")"
    [[ -z "$bad" ]] || { echo "error: $label: $bad answers were not 2xx" >&2; exit 1; }
    sleep 0.5
    ir="$(total_ir "$WORK/vg-$label"/cg.[0-9]*)"
    [[ "$ir" -gt 0 && "$reqs" -gt 0 ]] || { echo "error: $label: nothing counted" >&2; exit 1; }
    echo "$((ir / reqs))"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
wait_http() { # url [curl args]
    local url="$1"; shift
    for _ in $(seq 150); do curl -fs -o /dev/null "$@" "$url" && return 0; sleep 0.2; done
    echo "error: $url did not answer" >&2; exit 1
}

echo "# Instructions per request (callgrind), $(nproc) cores, $(date -u +%FT%TZ), ${SECONDS_EACH} s each"

# --- 1. the balancer ------------------------------------------------------------------------
if [[ " $STEPS " == *" 1 "* ]]; then
    [[ -n "$VALGRIND_BIN" ]] || { echo "error: valgrind.bin not found" >&2; exit 1; }
    mkdir -p "$WORK/bare-ctx" && cp "$BARE" "$WORK/bare-ctx/bare"
    docker build -q -t bench-bare:latest -f scripts/bench/bare.Dockerfile "$WORK/bare-ctx" >/dev/null
    docker network create "$NAME-net" >/dev/null
    for i in 1 2 3 4 5; do
        # Named as the cluster's nodes would be: the rendered upstream finds them.
        docker run -d --name "$NAME-bare-$i" --network-alias "$NAME-app-$i" --network "$NAME-net" \
            bench-bare:latest >/dev/null
    done
    mkdir -p "$WORK/render"
    cp -r templates "$WORK/render/"
    LB_IMAGE=""
    render() { # access_log value -> $WORK/<value>.conf
        sed -e "s/^name = \"[^\"]*\"/name = \"$NAME\"/" -e 's/^nodes = [0-9]*/nodes = 5/' \
            -e "s/^access_log = \"[^\"]*\"/access_log = \"$1\"/" cluster.toml >"$WORK/render/cluster.toml"
        grep -q "^access_log = \"$1\"" "$WORK/render/cluster.toml" \
            || sed -i "s/^\[balancer\]$/[balancer]\naccess_log = \"$1\"/" "$WORK/render/cluster.toml"
        (cd "$WORK/render" && "$REPO/$DEPLOYER" render >/dev/null)
        LB_IMAGE="$(sed -n 's/^image = "\(nginx[^"]*\)".*/\1/p' "$WORK/render/cluster.toml" | head -1)"
        sed 's/^worker_processes auto;/worker_processes 1;/' "$WORK/render/generated/nginx.conf" >"$WORK/$1.conf"
    }
    for value in sampled buffered unbuffered off; do render "$value"; done
    # The reference: as scripts/bench-cluster.sh builds it.
    sed -e "s/^\( *\)access_log [^;]*;/\1access_log off;/" \
        -e "s/ resolve / /" -e "/^ *zone app_nodes /d" -e "/^ *resolver/d" \
        -e "/^ *\(least_conn\|ip_hash\|random[a-z_ ]*\);$/d" "$WORK/off.conf" >"$WORK/reference.conf"
    chmod 644 "$WORK"/*.conf
    lb() { # label -> Ir/req of nginx with $WORK/<label>.conf
        local label="$1" ip pid
        docker rm -f "$NAME-lb" >/dev/null 2>&1 || true
        mkdir -p "$WORK/vg-$label" && chmod 777 "$WORK/vg-$label"
        # --pid=host and the host's name: callgrind_control here reaches valgrind in there.
        docker run -d --name "$NAME-lb" --network "$NAME-net" --pid=host --hostname "$HOSTNAME" \
            -e USER="$USER" --entrypoint /usr/bin/valgrind.bin \
            -v "$VALGRIND_BIN:/usr/bin/valgrind.bin:ro" -v /usr/libexec/valgrind:/usr/libexec/valgrind:ro \
            -v "$WORK/$label.conf:/etc/nginx/nginx.conf:ro" -v "$WORK/vg-$label:/out" \
            "$LB_IMAGE" --tool=callgrind --instr-atstart=no --vgdb-prefix=/out/vgdb \
            --callgrind-out-file="/out/cg" nginx -g 'daemon off; master_process off;' >/dev/null
        ip="$(docker inspect -f "{{(index .NetworkSettings.Networks \"$NAME-net\").IPAddress}}" "$NAME-lb")"
        wait_http "http://$ip:8080/"
        pid="$(docker top "$NAME-lb" -eo pid | awk 'NR == 2 { print $1 }')"
        LB_IR[$label]="$(measure "$label" "$pid" "http://$ip:8080/")"
        docker rm -f "$NAME-lb" >/dev/null
    }
    declare -A LB_IR
    EXTRA=()
    for extra in ${NGINX_CONFS:-}; do # label=path: another nginx.conf, counted the same way
        sed 's/^worker_processes auto;/worker_processes 1;/' "${extra#*=}" >"$WORK/${extra%%=*}.conf"
        chmod 644 "$WORK/${extra%%=*}.conf"
        EXTRA+=("${extra%%=*}")
    done
    for label in reference sampled off buffered unbuffered "${EXTRA[@]}"; do
        echo "  nginx: $label..." >&2
        lb "$label"
    done
    echo
    echo "## The balancer: nginx ($LB_IMAGE), one worker, 5 bare nodes behind it, GET / (the bare hello-world)"
    echo
    echo "| nginx.conf | instructions / request | vs reference |"
    echo "|---|---|---|"
    echo "| reference (no access log, names resolved once) | ${LB_IR[reference]} | 1.00 |"
    for label in off sampled buffered unbuffered; do
        echo "| rendered, \`access_log = \"$label\"\` | ${LB_IR[$label]} | $(ratio "${LB_IR[$label]}" "${LB_IR[reference]}") |"
    done
    for label in "${EXTRA[@]}"; do
        echo "| $label (NGINX_CONFS) | ${LB_IR[$label]} | $(ratio "${LB_IR[$label]}" "${LB_IR[reference]}") |"
    done
fi

# --- 2. a node ------------------------------------------------------------------------------
if [[ " $STEPS " == *" 2 "* ]]; then
    AS_PG=()
    if [[ "$(id -u)" == 0 ]]; then
        id -u postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        chown postgres "$WORK"
        AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups)
    fi
    free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
    PG_PORT="$(free_port)"
    "${AS_PG[@]}" "$PG_BIN/initdb" -D "$WORK/pg" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
    "${AS_PG[@]}" "$PG_BIN/postgres" -D "$WORK/pg" -k "$WORK" -p "$PG_PORT" \
        -c listen_addresses=127.0.0.1 -c synchronous_commit=off >"$WORK/postgres.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do pg_isready -q -h 127.0.0.1 -p "$PG_PORT" && break; sleep 0.1; done
    chmod 777 "$WORK"
    psql -q "postgres://postgres@127.0.0.1:$PG_PORT/postgres" -c "CREATE DATABASE bench"
    export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/bench" LOG_FORMAT=json RUST_LOG=warn
    export JWT_SECRET="bench-signing-key-bench-signing-key-0123"
    NODE_NAME=bench-migrate "$APP" migrate >/dev/null
    EMAIL="bench-$RANDOM@example.com"; PASSWORD="bench password 1"
    server() { # label port cmd... -> starts it under callgrind; sets SERVER_PID
        local label="$1" port="$2"; shift 2
        mkdir -p "$WORK/vg-$label"
        PORT="$port" NODE_NAME=bench-node ME_EMAIL="$EMAIL" valgrind --tool=callgrind \
            --instr-atstart=no --vgdb-prefix="$WORK/vg-$label/vgdb" \
            --callgrind-out-file="$WORK/vg-$label/cg" "$@" >"$WORK/$label.log" 2>&1 &
        SERVER_PID=$!
        PIDS+=("$SERVER_PID")
    }
    stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
    P="$(free_port)"
    server app-health "$P" "$APP" serve
    wait_http "http://127.0.0.1:$P/api/health"
    curl -fsS -o /dev/null -H 'content-type: application/json' "http://127.0.0.1:$P/api/users" \
        -d "{\"email\":\"$EMAIL\",\"full_name\":\"Bench\",\"password\":\"$PASSWORD\",\"password_confirmation\":\"$PASSWORD\"}"
    TOKEN="$(curl -fsS -H 'content-type: application/json' "http://127.0.0.1:$P/api/auth/login" \
        -d "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}" | jq -r .data.access_token)"
    [[ -n "$TOKEN" && "$TOKEN" != null ]] || { echo "error: login failed" >&2; exit 1; }
    printf 'wrk.headers["Authorization"] = "Bearer %s"\n' "$TOKEN" >"$WORK/me.lua"
    echo "  app: GET /api/health..." >&2
    APP_HEALTH="$(measure app-health "$SERVER_PID" "http://127.0.0.1:$P/api/health")"
    stop "$SERVER_PID"
    P="$(free_port)"; server app-me "$P" "$APP" serve
    wait_http "http://127.0.0.1:$P/api/auth/me" -H "Authorization: Bearer $TOKEN"
    echo "  app: GET /api/auth/me..." >&2
    APP_ME="$(measure app-me "$SERVER_PID" "http://127.0.0.1:$P/api/auth/me" "$WORK/me.lua")"
    stop "$SERVER_PID"
    P="$(free_port)"; server bare-hello "$P" "$BARE"
    wait_http "http://127.0.0.1:$P/"
    echo "  bare: GET /..." >&2
    BARE_HELLO="$(measure bare-hello "$SERVER_PID" "http://127.0.0.1:$P/")"
    stop "$SERVER_PID"
    P="$(free_port)"; server bare-me "$P" "$BARE"
    wait_http "http://127.0.0.1:$P/me"
    echo "  bare: GET /me..." >&2
    BARE_ME="$(measure bare-me "$SERVER_PID" "http://127.0.0.1:$P/me")"
    stop "$SERVER_PID"
    echo
    echo "## A node: the app against the bare axum server (host processes, one PostgreSQL)"
    echo
    echo "| request | app | bare | app / bare |"
    echo "|---|---|---|---|"
    echo "| \`GET /api/health\` against the bare \`GET /\` | $APP_HEALTH | $BARE_HELLO | $(ratio "$APP_HEALTH" "$BARE_HELLO") |"
    echo "| \`GET /api/auth/me\` (one token, verified once per thread) against the bare \`GET /me\` | $APP_ME | $BARE_ME | $(ratio "$APP_ME" "$BARE_ME") |"
fi
