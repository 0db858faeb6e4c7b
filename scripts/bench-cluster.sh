#!/usr/bin/env bash
# Measures a running cluster on this machine's Docker engine (issue 5 "Figures"), loopback only,
# every load bounded in time:
#   1. throughput and p50/p99 through the balancer, 1, 3 and 5 nodes, GET /api/health and
#      GET /api/auth/me (wrk), next to references measured in the same run, alternating: the same
#      nginx image with the generated nginx.conf but `access_log off` (the bare thing), its
#      upstream pointed at bare axum containers (app/examples/bare.rs), published the same way;
#      `GET /` (hello-world) is /api/health's reference, `GET /me` (one PostgreSQL query on a
#      pool of 10, against the cluster's PostgreSQL) is /api/auth/me's. The cluster runs with the
#      file's `[balancer] access_log` (default sampled). Target: >= 0.95x the reference.
#      A second, identical reference balancer container ("reference again") is measured in
#      the same rounds against the first: the A/A ratio is this machine's noise floor for a
#      comparison between two containers (two balancer containers on the same nodes differed
#      by 6 % here, median of 12 rounds, with nothing differing but the container).
#   2. failover: `docker kill` one node under load (wrk, then ab): failed requests (target 0), and
#      how long `deployer apply --yes` takes to bring the node back.
#   3. database outage: stop PostgreSQL for DB_DOWN seconds under a curl load of /api/health and
#      /api/auth/me (5 s client timeout): status codes seen (503 expected, no 500, no hangs) and the
#      time until every node answers /api/ready 200 again.
#   4. zero downtime: failed requests during scale 3 -> 5 -> 3 and during a rolling env change,
#      once with ab (a new connection per request) and once with wrk (keep-alive), reported apart.
#   5. connection budget: a 60 s load of /api/auth/me plus job enqueueing, with a rolling update in
#      the middle; the highest count of the cluster's connections in pg_stat_activity (sampled every
#      0.5 s) next to `deployer validate --json`'s budget; "too many clients" in any log.
#
# Needs: docker, curl, jq, wrk, ab (apache2-utils), python3, cargo; the images of cluster.toml and
# deployer-app:latest (scripts/build-images.sh, `deployer build`); debian:bookworm-slim.
# Names: cluster bench-cluster, reference bench-ref-* (containers, network), image bench-bare:latest;
# all removed on exit, even on failure. Ports: free ones on 127.0.0.1.
#
# Usage: scripts/bench-cluster.sh
#   DURATION=8 ROUNDS=3      seconds per wrk run, rounds per throughput figure (median reported)
#   NODE_COUNTS="1 3 5"      node counts of the throughput figures
#   HEALTH_INTERVAL=N        the cluster's [rollout] health_interval (default: cluster.toml's)
#   STRATEGY=random          the cluster's [balancer] strategy (default: cluster.toml's); the
#                            reference stays nginx's plain round robin
#   THROUGHPUT_ONLY=1        stop after the throughput figures (1.) and print them
#   AA=zone                  the second reference balancer runs the cluster's upstream instead
#                            (`zone`, `server ... resolve`, the file's strategy; no log): what
#                            finding the nodes by DNS costs, apart from the log and the app
#   LOAD_SECONDS=60 DB_DOWN=5
#   CARGO_TARGET_DIR=...     where the release deployer and the bare example are built
#   DEPLOYER=/path           use this deployer binary (the bare example is still built)
#   KEEP_WORK=1              keep the temp dir (wrk/ab outputs, logs)
#   PROFILE=dir              record each throughput run's whole machine with `perf record -a`
#                            (cpu-clock) into dir/<kind>-<nodes>-<time>.data, beside it .stat
#                            (context switches: the machine's, the balancer's, the nodes') and
#                            .wrk; PROFILE_CALLS=1 adds call graphs (-g). Read with
#                            `perf report -i ... --sort comm,dso`
set -euo pipefail

cd "$(dirname "$0")/.."
REPO="$PWD"
DURATION="${DURATION:-8}"
ROUNDS="${ROUNDS:-3}"
NODE_COUNTS="${NODE_COUNTS:-1 3 5}"
LOAD_SECONDS="${LOAD_SECONDS:-60}"
DB_DOWN="${DB_DOWN:-5}"
NAME="${BENCH_NAME:-bench-cluster}"
REF="${BENCH_REF:-bench-ref}"
BARE_IMAGE="bench-bare:latest"
TARGET="${CARGO_TARGET_DIR:-target}"
[[ "$TARGET" = /* ]] || TARGET="$REPO/$TARGET"

for tool in docker curl jq wrk ab python3 cargo; do
    command -v "$tool" >/dev/null || { echo "error: $tool not found (Debian: wrk apache2-utils curl jq)" >&2; exit 1; }
done
docker info >/dev/null 2>&1 || { echo "error: no Docker engine answers (scripts/ensure-docker)" >&2; exit 1; }

echo "building the deployer and the bare reference server (release)..." >&2
if [[ -z "${DEPLOYER:-}" ]]; then
    cargo build --release -q -p deployer
    DEPLOYER="$TARGET/release/deployer"
fi
cargo build --release -q -p app --example bare

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# values -> "median, NN% CI lo-hi": the median with a distribution-free confidence interval
# (order statistics: the narrowest [x(k), x(n+1-k)] that covers the true median with >= 90 %
# probability, or the whole range when n is too small for that; NN is its exact coverage)
median_ci() {
    local values; values="$(cat)"
    printf '%.2fx, ' "$(median <<<"$values")"
    tr ' ' '\n' <<<"$values" | grep . | sort -g | awk '
        { v[NR] = $1 }
        END {
            n = NR; if (n == 0) exit
            # cdf[j] = P(Binomial(n, 1/2) <= j)
            p = 0.5 ^ n; c = 0
            for (j = 0; j <= n; j++) { c += p; cdf[j] = c; p = p * (n - j) / (j + 1) }
            k = 1
            while (k + 1 <= n + 1 - (k + 1) && 1 - 2 * cdf[k] >= 0.90) k++
            printf "%d%% CI %.2f-%.2f", int(100 * (1 - 2 * cdf[k - 1])), v[k], v[n + 1 - k]
        }'
}
int() { printf '%.0f' "$1"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT="$(free_port)"; REF_PORT="$(free_port)"; AA_PORT="$(free_port)"
WORK="$(mktemp -d /tmp/bench-cluster.XXXXXX)"
FILE="$WORK/cluster.toml"
D=("$DEPLOYER" -f "$FILE")
BG=()

cleanup() {
    local rc=$? pid
    echo "cleaning up ($NAME, $REF-*)..." >&2
    for pid in "${BG[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${BG[@]}"; do wait "$pid" 2>/dev/null || true; done
    # The reference containers first: they are attached to the cluster's network, which
    # destroy could not remove while they are (and then it would keep the volume too).
    local refs; refs="$(docker ps -aq --filter "name=^$REF-")"
    [[ -z "$refs" ]] || docker rm -f $refs >/dev/null 2>&1 || true
    "${D[@]}" destroy --volumes --yes >/dev/null 2>&1 || true
    docker network rm "$REF-net" >/dev/null 2>&1 || true
    docker image rm "$BARE_IMAGE" >/dev/null 2>&1 || true
    if [[ "${KEEP_WORK:-0}" == 1 || $rc != 0 ]]; then echo "work dir kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for prefix in "$NAME" "$REF"; do
    [[ -z "$(docker ps -aq --filter "name=^$prefix-")" ]] \
        || { echo "error: containers named $prefix-* already exist; remove them first" >&2; exit 1; }
done

# The cluster file: a copy of the example with our name, ports and node count.
cp "$REPO/cluster.toml" "$FILE"
cp -r "$REPO/templates" "$WORK/templates"
# max_connections 200: the reference's bare nodes (pool 10 each) query the same PostgreSQL
# next to the cluster's nodes (5 x 11 at most); neither may run out of connections.
sed -i -e "s/^name = \"demo\"/name = \"$NAME\"/" \
       -e "s/^port = 4000\( *# published on the host\)/port = $PORT\1/" \
       -e "s/^max_connections = 100 /max_connections = 200 /" \
       "$FILE"
grep -q "^name = \"$NAME\"" "$FILE" && grep -q "^port = $PORT " "$FILE" \
    || { echo "error: could not set the name and port in the copy of cluster.toml" >&2; exit 1; }
if [[ -n "${HEALTH_INTERVAL:-}" ]]; then
    sed -i "s/^# *health_interval = [0-9]*/health_interval = $HEALTH_INTERVAL/" "$FILE"
    grep -q "^health_interval = $HEALTH_INTERVAL\b" "$FILE" \
        || { echo "error: could not set health_interval in the copy of cluster.toml" >&2; exit 1; }
fi
if [[ -n "${STRATEGY:-}" ]]; then
    sed -i "s/^strategy = \"[a-z_]*\"/strategy = \"$STRATEGY\"/" "$FILE"
    grep -q "^strategy = \"$STRATEGY\"" "$FILE" \
        || { echo "error: could not set the strategy in the copy of cluster.toml" >&2; exit 1; }
fi
set_nodes() { sed -i "s/^nodes = [0-9]*/nodes = $1/" "$FILE"; }
set_roll() { sed -i '/^BENCH_ROLL = /d' "$FILE"; sed -i "/^RUST_LOG = /a BENCH_ROLL = \"$1\"" "$FILE"; }
URL="http://127.0.0.1:$PORT"
PW_FILE="$WORK/.deployer/secrets/db_password"

run_logged() { # logfile cmd...
    local logf="$1"; shift
    if ! "$@" >"$logf" 2>&1; then
        echo "error: '$*' failed; last lines of $logf:" >&2; tail -30 "$logf" >&2; return 1
    fi
}
# A node's own /api/ready, asked inside its container (what the health check does), so nodes need
# no published port (with host_port_base a rollout would replace them stop-first).
PROBE="exec 3<>/dev/tcp/127.0.0.1/4000 && printf 'GET /api/ready HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"
node_ready() { timeout 5 docker exec "$NAME-app-$1" bash -c "$PROBE" >/dev/null 2>&1; }
all_ready() { local i; for i in $(seq "$1"); do node_ready "$i" || return 1; done; }
wait_until() { # seconds what cmd...
    local limit="$1" what="$2" start; shift 2; start="$(now)"
    until "$@"; do
        awk -v s="$start" -v n="$(now)" -v d="$limit" 'BEGIN { exit !(n - s > d) }' \
            && { echo "error: $what: not within ${limit}s" >&2; return 1; }
        sleep 0.1
    done
}
NODES=0
apply_nodes() { # n: converge to n nodes and wait until the balancer and every node answer
    set_nodes "$1"
    run_logged "$WORK/apply.log" "${D[@]}" apply --yes
    wait_until 60 "all $1 nodes ready" all_ready "$1"
    wait_until 30 "balancer health" curl -fs -o /dev/null -m 2 "$URL/api/health"
    NODES="$1"
}

# --- wrk and ab figures -------------------------------------------------------------------------
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
    if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000; printf "%.2f", n }'; }
# wrk output file -> "rps p50_ms p99_ms requests non2xx socket_errors max_ms"
wrk_stats() {
    local f="$1" rps p50 p99 reqs non2xx sock max
    rps="$(sed -n 's/^Requests\/sec: *\([0-9.]*\)/\1/p' "$f")"
    p50="$(to_ms "$(sed -n 's/^ *50% *\([0-9.]*[a-z]*\)$/\1/p' "$f")")"
    p99="$(to_ms "$(sed -n 's/^ *99% *\([0-9.]*[a-z]*\)$/\1/p' "$f")")"
    max="$(to_ms "$(awk '$1 == "Latency" && NF >= 4 { print $4; exit }' "$f")")"
    reqs="$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$f")"
    non2xx="$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\)/\1/p' "$f")"
    sock="$(sed -n 's/^ *Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\)/\1 \2 \3 \4/p' "$f" | awk '{ print $1 + $2 + $3 + $4 }')"
    echo "${rps:-0} ${p50:-0} ${p99:-0} ${reqs:-0} ${non2xx:-0} ${sock:-0} ${max:-0}"
}
# wrk output file -> "connect=A;read=B;write=C;timeout=D" (all 0 when wrk printed no socket errors)
wrk_sock_detail() {
    local d; d="$(sed -n 's/^ *Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\)/connect=\1;read=\2;write=\3;timeout=\4/p' "$1" | head -1)"
    echo "${d:-connect=0;read=0;write=0;timeout=0}"
}
# ab output file -> "complete failed_not_length non2xx connect receive exceptions length"
ab_stats() {
    local f="$1" complete non2xx c r l e
    complete="$(sed -n 's/^Complete requests: *\([0-9]*\)/\1/p' "$f")"
    non2xx="$(sed -n 's/^Non-2xx responses: *\([0-9]*\)/\1/p' "$f")"
    read -r c r l e <<<"$(sed -n 's/^ *(Connect: \([0-9]*\), Receive: \([0-9]*\), Length: \([0-9]*\), Exceptions: \([0-9]*\))/\1 \2 \3 \4/p' "$f")"
    c="${c:-0}"; r="${r:-0}"; l="${l:-0}"; e="${e:-0}"; non2xx="${non2xx:-0}"
    echo "${complete:-0} $((c + r + e + non2xx)) $non2xx $c $r $e $l"
}

# --- the bare reference image -----------------------------------------------------------------
mkdir -p "$WORK/bare-ctx"
cp "$TARGET/release/examples/bare" "$WORK/bare-ctx/bare"
docker build -q -t "$BARE_IMAGE" -f "$REPO/scripts/bench/bare.Dockerfile" "$WORK/bare-ctx" >/dev/null

MACHINE="$(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB, load average at start $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "machine: $MACHINE" >&2

# --- cluster (1 node) and reference (5 bare nodes; the nginx config decides how many it uses) ---
log "apply $NAME with 1 node"
apply_nodes 1
# A user for /api/auth/me, and the one row the reference's /me reads.
EMAIL="bench-$(date +%s)-$RANDOM@example.com"
PASSWORD="bench password $RANDOM"
docker network create "$REF-net" >/dev/null
DB_URL="postgres://app:$(cat "$WORK/.deployer/secrets/db_password")@$NAME-postgres:5432/app"
for i in 1 2 3 4 5; do
    # Also on the cluster's network, to reach its PostgreSQL for /me (pool 10, as a node's).
    docker run -d --name "$REF-bare-$i" --hostname "$REF-bare-$i" --network "$REF-net" \
        -e DATABASE_URL="$DB_URL" -e POOL_SIZE=10 -e ME_EMAIL="$EMAIL" \
        --restart unless-stopped "$BARE_IMAGE" >/dev/null
    docker network connect "$NAME-net" "$REF-bare-$i"
done
ref_lb() { # n: the reference balancer with the generated nginx.conf, upstream pointed at n bare nodes
    # The bare thing: the same upstream and proxy settings, but no access log at all (a
    # reference carrying the product's logging would hide that logging's cost), and node names
    # resolved once at load, as a hand-written config does (no `resolve`, no shared-memory zone).
    sed -e "s/server $NAME-app-\([0-9]*\):4000/server $REF-bare-\1:4000/" \
        -e "s/^\( *\)access_log [^;]*;/\1access_log off;/" \
        -e "s/ resolve / /" -e "/^ *zone app_nodes /d" -e "/^ *resolver/d" \
        -e "/^ *\(least_conn\|ip_hash\|random[a-z_ ]*\);$/d" \
        "$WORK/generated/nginx.conf" >"$WORK/ref-nginx.conf"
    grep -q '^ *access_log /dev/stdout' "$WORK/ref-nginx.conf" \
        && { echo "error: the reference nginx.conf still logs requests" >&2; exit 1; }
    [[ "$(grep -c "server $REF-bare-" "$WORK/ref-nginx.conf")" == "$1" ]] \
        || { echo "error: reference nginx.conf does not name $1 bare nodes" >&2; exit 1; }
    local aa_conf="$WORK/ref-nginx.conf"
    if [[ "${AA:-}" == zone ]]; then
        aa_conf="$WORK/aa-nginx.conf"
        sed -e "s/server $NAME-app-\([0-9]*\):4000/server $REF-bare-\1:4000/" \
            -e "s/^\( *\)access_log [^;]*;/\1access_log off;/" "$WORK/generated/nginx.conf" >"$aa_conf"
        grep -q "resolve max_fails" "$aa_conf" \
            || { echo "error: AA=zone: the rendered upstream does not resolve its names" >&2; exit 1; }
    fi
    chmod 644 "$WORK/ref-nginx.conf" "$aa_conf"
    local lb port conf
    for lb in "$REF-lb:$REF_PORT" "$REF-lb-aa:$AA_PORT"; do
        port="${lb#*:}"; lb="${lb%%:*}"; conf="$WORK/ref-nginx.conf"
        [[ "$lb" == *-aa ]] && conf="$aa_conf"
        docker rm -f "$lb" >/dev/null 2>&1 || true
        docker run -d --name "$lb" --network "$REF-net" --user 101:101 \
            -v "$conf:/etc/nginx/nginx.conf:ro" -p "127.0.0.1:$port:8080" \
            "$(docker inspect -f '{{.Config.Image}}' "$NAME-lb")" >/dev/null
        wait_until 30 "reference balancer $lb" curl -fs -o /dev/null -m 2 "http://127.0.0.1:$port/"
    done
}

# The user and a token for /api/auth/me (tokens live 15 minutes: log in again before each use).
curl -fsS -o /dev/null -H 'content-type: application/json' "$URL/api/users" \
    -d "{\"email\":\"$EMAIL\",\"full_name\":\"Bench\",\"password\":\"$PASSWORD\",\"password_confirmation\":\"$PASSWORD\"}"
login() {
    TOKEN="$(curl -fsS -H 'content-type: application/json' "$URL/api/auth/login" \
        -d "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}" | jq -r .data.access_token)"
    [[ -n "$TOKEN" && "$TOKEN" != null ]] || { echo "error: login failed" >&2; exit 1; }
    cat >"$WORK/me.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $TOKEN"
LUA
    cat >"$WORK/jobs.lua" <<LUA
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $TOKEN"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"kind":"noop"}'
LUA
}

# 1. throughput -----------------------------------------------------------------------------------
declare -A TP  # TP[n,kind] = "rps p50 p99 errors" (medians; errors summed)
# What one request costs in CPU, which the other tenants of a shared machine do not move as
# much as they move throughput: the machine's busy time (user + nice + system + irq + softirq,
# everything in this VM: wrk, docker-proxy, dockerd, the containers) and the CPU time of the
# balancer's and the nodes' containers (their cgroups), each divided by the requests served.
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
cgroup_files() { # container names -> the files holding their CPU time (cgroup v1 or v2)
    local c id f
    for c in "$@"; do
        id="$(docker inspect -f '{{.Id}}' "$c" 2>/dev/null)" || continue
        for f in "/sys/fs/cgroup/cpuacct/docker/$id/cpuacct.usage" \
                 "/sys/fs/cgroup/system.slice/docker-$id.scope/cpu.stat"; do
            [[ -r "$f" ]] && { echo "$f"; break; }
        done
    done
}
cpu_ns() { # files from cgroup_files -> their summed CPU time in ns
    local f total=0
    for f in "$@"; do
        if [[ "$f" == *cpu.stat ]]; then total=$((total + $(awk '/^usage_usec/ { print $2 * 1000 }' "$f")))
        else total=$((total + $(cat "$f"))); fi
    done
    echo "$total"
}
ctx_switches() { # container names -> context switches of all their threads so far (PROFILE)
    local c id total=0 t
    for c in "$@"; do
        id="$(docker inspect -f '{{.Id}}' "$c" 2>/dev/null)" || continue
        for t in $(cat "/sys/fs/cgroup/cpuacct/docker/$id/tasks" "/sys/fs/cgroup/system.slice/docker-$id.scope/cgroup.threads" 2>/dev/null); do
            total=$((total + $(awk '/ctxt_switches/ { s += $2 } END { print s + 0 }' "/proc/$t/status" 2>/dev/null || echo 0)))
        done
    done
    echo "$total"
}
wrk_median() { # n kind url [lua]: ROUNDS runs are done by the caller; this records one run
    local n="$1" kind="$2" url="$3" lua="${4:-}" out="$WORK/wrk-$1-$2-$RANDOM.txt"
    local prefix="$NAME" lb="$NAME-lb" node=app i lb_files node_files b0 b1 l0 l1 n0 n1 reqs
    [[ "$kind" == ref* ]] && { prefix="$REF"; lb="$REF-lb"; node=bare; }
    [[ "$kind" == refaa ]] && lb="$REF-lb-aa"
    mapfile -t lb_files < <(cgroup_files "$lb")
    local nodes=(); for i in $(seq "$n"); do nodes+=("$prefix-$node-$i"); done
    mapfile -t node_files < <(cgroup_files "${nodes[@]}")
    b0="$(busy_ticks)"; l0="$(cpu_ns "${lb_files[@]}")"; n0="$(cpu_ns "${node_files[@]}")"
    local load=(wrk -t2 -c32 -d"${DURATION}s" --latency)
    [[ -n "$lua" ]] && load+=(-s "$lua")
    if [[ -n "${PROFILE:-}" ]]; then
        # the whole machine's samples while this run lasts (a software clock: no PMU needed)
        mkdir -p "$PROFILE"
        local stem c0 c1; stem="$PROFILE/$kind-$n-$(date +%H%M%S)"
        c0="$(ctx_switches "$lb") $(ctx_switches "${nodes[@]}")"
        perf stat -a -e task-clock,context-switches,cpu-migrations -x, -o "$stem.stat" -- \
            perf record -q -a -e cpu-clock -F 997 ${PROFILE_CALLS:+-g} -o "$stem.data" \
            -- "${load[@]}" "$url" >"$out" 2>>"$WORK/perf.log"
        cp "$out" "$stem.wrk"
        c1="$(ctx_switches "$lb") $(ctx_switches "${nodes[@]}")"
        echo "$c0 $c1" | awk '{ printf "balancer context switches,%d\nnodes context switches,%d\n", $3 - $1, $4 - $2 }' >>"$stem.stat"
    else "${load[@]}" "$url" >"$out"; fi
    b1="$(busy_ticks)"; l1="$(cpu_ns "${lb_files[@]}")"; n1="$(cpu_ns "${node_files[@]}")"
    reqs="$(wrk_stats "$out" | cut -d' ' -f4)"
    # appended to wrk_stats' 7 fields: CPU microseconds per request, machine / balancer / nodes
    echo "$(wrk_stats "$out") $(awk -v b="$((b1 - b0))" -v l="$((l1 - l0))" -v m="$((n1 - n0))" -v r="$reqs" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { if (r == 0) r = 1; printf "%.1f %.1f %.1f", b * 1e6 / hz / r, l / 1e3 / r, m / 1e3 / r }')" >>"$WORK/tp-$n-$kind"
    log "  $kind ($n node(s)): $(tail -1 "$WORK/tp-$n-$kind" | awk '{ printf "%d req/s, p50 %s ms, p99 %s ms, %d non-2xx, %d socket errors; CPU us/request: machine %s, balancer %s, nodes %s", $1, $2, $3, $5, $6, $8, $9, $10 }')"
}
for n in $NODE_COUNTS; do
    [[ "$NODES" == "$n" ]] || { log "apply $NAME with $n nodes"; apply_nodes "$n"; }
    ref_lb "$n"
    login
    wrk -t2 -c32 -d2s "http://127.0.0.1:$REF_PORT/" >/dev/null          # warm-up
    wrk -t2 -c32 -d2s "http://127.0.0.1:$REF_PORT/me" >/dev/null
    wrk -t2 -c32 -d2s "http://127.0.0.1:$AA_PORT/" >/dev/null
    wrk -t2 -c32 -d2s "$URL/api/health" >/dev/null
    for r in $(seq "$ROUNDS"); do
        # alternate the order so a drift in background load hurts all alike
        if (( r % 2 )); then order="ref health refaa refme me"; else order="me refme refaa health ref"; fi
        for kind in $order; do
            case "$kind" in
                ref) wrk_median "$n" ref "http://127.0.0.1:$REF_PORT/" ;;
                refaa) wrk_median "$n" refaa "http://127.0.0.1:$AA_PORT/" ;;
                # The same request as the cluster's (its bearer token too): the bare server
                # ignores the header, so only what the product does with it is compared.
                refme) wrk_median "$n" refme "http://127.0.0.1:$REF_PORT/me" "$WORK/me.lua" ;;
                health) wrk_median "$n" health "$URL/api/health" ;;
                me) wrk_median "$n" me "$URL/api/auth/me" "$WORK/me.lua" ;;
            esac
        done
    done
    for kind in ref refme health me refaa; do
        f="$WORK/tp-$n-$kind"
        TP[$n,$kind]="$(cut -d' ' -f1 "$f" | median) $(cut -d' ' -f2 "$f" | median) $(cut -d' ' -f3 "$f" | median) $(awk '{ s += $5 + $6 } END { print s }' "$f") $(cut -d' ' -f1 "$f" | xargs printf '%.0f/' | sed 's#/$##') $(cut -d' ' -f8 "$f" | median) $(cut -d' ' -f9 "$f" | median) $(cut -d' ' -f10 "$f" | median)"
    done
done
throughput_table() {
    f() { awk -v i="$2" '{ print $i }' <<<"${TP[$1]}"; }
    echo
    echo "## cluster benchmark ($NAME; wrk -t2 -c32 -d${DURATION}s --latency, median of $ROUNDS runs)"
    echo "machine: $MACHINE"
    echo "cluster: [rollout] health_interval = $(sed -n 's/^health_interval = \([0-9]*\).*/\1/p' "$FILE" | grep . || echo "5 (default)") s, [balancer] access_log = $(sed -n 's/^access_log = \"\([a-z]*\)\".*/\1/p' "$FILE"), strategy = $(sed -n 's/^strategy = \"\([a-z_]*\)\".*/\1/p' "$FILE") (the reference: round robin)"
    echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "| nodes | path | req/s (median) | p50 ms | p99 ms | errors | runs req/s | vs reference (medians) | each round vs its reference run (median, its confidence interval) | CPU us/request: machine / balancer / nodes (medians) | reference's machine CPU per request / this (median of rounds) | per node vs ~20 req/s |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    for n in $NODE_COUNTS; do
        for ref in ref refme; do
            path="reference: nginx (no log) -> bare axum \`GET /\`"
            [[ "$ref" == refme ]] && path="reference: nginx (no log) -> bare axum, one PostgreSQL query \`GET /me\`"
            echo "| $n | $path | $(int "$(f "$n,$ref" 1)") | $(f "$n,$ref" 2) | $(f "$n,$ref" 3) | $(f "$n,$ref" 4) | $(f "$n,$ref" 5) | 1.00x | | $(f "$n,$ref" 6) / $(f "$n,$ref" 7) / $(f "$n,$ref" 8) | | |"
        done
        for kind in refaa health me; do
            path="cluster \`GET /api/health\`"; ref_rps="$(f "$n,ref" 1)"
            [[ "$kind" == refaa ]] && path="reference again: a second, identical balancer container (A/A: the noise floor) \`GET /\`"
            [[ "$kind" == refaa && "${AA:-}" == zone ]] && path="reference with the cluster's upstream (\`zone\`, \`resolve\`, its strategy; no log): finding nodes by DNS \`GET /\`"
            [[ "$kind" == me ]] && { path="cluster \`GET /api/auth/me\` (bearer)"; ref_rps="$(f "$n,refme" 1)"; }
            rps="$(f "$n,$kind" 1)"
            rounds="$(paste -d' ' <(cut -d' ' -f1 "$WORK/tp-$n-$kind") <(cut -d' ' -f1 "$WORK/tp-$n-$([[ $kind == me ]] && echo refme || echo ref)") \
                | awk '{ printf "%.2f ", $1 / $2 }')"
            cpu_rounds="$(paste -d' ' <(cut -d' ' -f8 "$WORK/tp-$n-$kind") <(cut -d' ' -f8 "$WORK/tp-$n-$([[ $kind == me ]] && echo refme || echo ref)") \
                | awk '{ printf "%.2f ", ($1 > 0 ? $2 / $1 : 0) }')"
            echo "| $n | $path | $(int "$rps") | $(f "$n,$kind" 2) | $(f "$n,$kind" 3) | $(f "$n,$kind" 4) | $(f "$n,$kind" 5) | $(ratio "$rps" "$ref_rps")x | ${rounds% } ($(median_ci <<<"$rounds")) | $(f "$n,$kind" 6) / $(f "$n,$kind" 7) / $(f "$n,$kind" 8) | ${cpu_rounds% } ($(median <<<"$cpu_rounds")x) | $(awk -v r="$rps" -v n="$n" 'BEGIN { printf "%.0f req/s/node = %.0fx", r / n, r / n / 20 }') |"
        done
    done
}
docker rm -f "$REF-lb" "$REF-lb-aa" >/dev/null
if [[ -n "${THROUGHPUT_ONLY:-}" ]]; then throughput_table; exit 0; fi

# 2. failover -------------------------------------------------------------------------------------
log "apply $NAME with 3 nodes"
apply_nodes 3
FO=()  # "client requests failed detail apply_s"
failover() { # client
    local client="$1" out="$WORK/failover-$1.txt" pid t0 t1 s
    if [[ "$client" == wrk ]]; then
        wrk -t1 -c8 -d15s --latency "$URL/api/health" >"$out" & pid=$!
    else
        ab -r -s 5 -c 4 -t 15 -n 10000000 "$URL/api/health" >"$out" 2>&1 & pid=$!
    fi
    BG+=("$pid")
    sleep 4
    docker kill "$NAME-app-2" >/dev/null
    log "killed $NAME-app-2 under $client load"
    wait "$pid" || true
    sleep 1
    if node_ready 2; then echo "note: $NAME-app-2 answered again before apply (restart policy?)" >&2; fi
    t0="$(now)"
    run_logged "$WORK/apply.log" "${D[@]}" apply --yes
    wait_until 60 "node 2 ready" node_ready 2
    t1="$(now)"
    if [[ "$client" == wrk ]]; then
        s=($(wrk_stats "$out"))
        FO+=("wrk(-c8,keep-alive) ${s[3]} $((s[4] + s[5])) non-2xx=${s[4]};$(wrk_sock_detail "$out");max-latency=${s[6]}ms $(secs "$t0" "$t1")")
    else
        s=($(ab_stats "$out"))
        FO+=("ab(-c4,new-conn) ${s[0]} ${s[1]} non-2xx=${s[2]};connect=${s[3]};receive=${s[4]};exceptions=${s[5]} $(secs "$t0" "$t1")")
    fi
    log "failover ($client): ${FO[-1]}"
}
failover wrk
failover ab

# 3. database outage ------------------------------------------------------------------------------
# 4 curl loops through the balancer, each asking /api/health (no I/O) and /api/auth/me (uses the
# database) in turn, with a 5 s client timeout; PostgreSQL is stopped for DB_DOWN seconds. (The
# balancer answers /api/ready 404 since issue 11: readiness is read on each node, inside.)
login
load_worker() { # out deadline
    local ep r t
    while (( $(date +%s) < $2 )) && [[ ! -e "$WORK/stop-load" ]]; do
        for ep in /api/health /api/auth/me; do
            t="$(now)"
            r="$(curl -s -o /dev/null -m 5 -H "Authorization: Bearer $TOKEN" -w '%{http_code} %{time_total}' "$URL$ep" || true)"
            echo "$t $ep $r"
        done
    done >"$1"
}
lb_ok() { [[ "$(curl -s -o /dev/null -m 2 -H "Authorization: Bearer $TOKEN" -w '%{http_code}' "$URL/api/auth/me")" == 200 ]]; }
rm -f "$WORK/stop-load"
deadline=$(( $(date +%s) + 120 ))
LOADERS=()
for w in 1 2 3 4; do load_worker "$WORK/db-load-$w.txt" "$deadline" & LOADERS+=($!); BG+=($!); done
sleep 3
T_STOP="$(now)"
docker stop "$NAME-postgres" >/dev/null
T_STOPPED="$(now)"
log "postgres stopped ($(secs "$T_STOP" "$T_STOPPED") s); down for ${DB_DOWN}s"
sleep "$DB_DOWN"
T_START="$(now)"
docker start "$NAME-postgres" >/dev/null
pg_up() { docker exec "$NAME-postgres" pg_isready -q -h 127.0.0.1 -U app -d app 2>/dev/null; }
wait_until 60 "postgres accepting connections" pg_up
T_PG="$(now)"
wait_until 60 "every node ready again" all_ready 3
T_READY="$(now)"
wait_until 60 "the balancer's /api/auth/me answering 200 again" lb_ok
T_LB="$(now)"
log "postgres back after $(secs "$T_START" "$T_PG") s; every node ready $(secs "$T_PG" "$T_READY") s later; balancer /api/auth/me 200 $(secs "$T_PG" "$T_LB") s after postgres"
sleep 5
touch "$WORK/stop-load"
wait "${LOADERS[@]}" 2>/dev/null || true
cat "$WORK"/db-load-*.txt | sort -n >"$WORK/db-load.txt"
codes() { # from to: "endpoint code:count ..." for requests sent in [from, to]
    awk -v a="$1" -v b="$2" '$1 >= a && $1 <= b { print $2, $3 }' "$WORK/db-load.txt" | sort | uniq -c \
        | awk '{ k = $2; if (k != last) { printf "%s%s ", (last == "" ? "" : "; "), k; last = k } printf "%s:%s ", $3, $1 }'
}
DB_CODES_OUT="$(codes "$T_STOP" "$T_PG")"
DB_CODES_AFTER="$(codes "$T_PG" 9999999999)"
DB_CODES_BEFORE="$(codes 0 "$T_STOP")"
DB_500="$(awk '$3 ~ /^5/ && $3 != 503' "$WORK/db-load.txt" | wc -l)"
DB_502="$(awk '$3 == 502' "$WORK/db-load.txt" | wc -l)"
DB_HANG="$(awk '$3 == "000"' "$WORK/db-load.txt" | wc -l)"
DB_MAXT="$(awk 'BEGIN { m = 0 } $4 > m { m = $4 } END { printf "%.2f", m }' "$WORK/db-load.txt")"
DB_TOTAL="$(wc -l <"$WORK/db-load.txt")"
# the last failed answer per endpoint, in seconds after postgres accepted connections again
last_fail() { awk -v ep="$1" -v t="$T_PG" '$2 == ep && $3 != 200 { l = $1 + $4 } END { if (l) printf "%.1f s", l - t; else print "none" }' "$WORK/db-load.txt"; }
DB_LAST_HEALTH="$(last_fail /api/health)"; DB_LAST_ME="$(last_fail /api/auth/me)"
# Do not let what the outage left in the balancer spill into the next figures.
wait_until 60 "the balancer answering /api/health" curl -fs -o /dev/null -m 2 "$URL/api/health"

# 4. zero downtime --------------------------------------------------------------------------------
ZD=()   # "client operation requests failed detail op_seconds"
roll=0
zd_run() { # client op
    local client="$1" op="$2" out="$WORK/zd-$1-$2.txt" pid t0 t1 s
    if [[ "$client" == ab ]]; then
        ab -r -s 5 -c 4 -t 300 -n 100000000 "$URL/api/health" >"$out" 2>&1 & pid=$!
    else
        wrk -t1 -c4 -d300s --latency "$URL/api/health" >"$out" & pid=$!
    fi
    BG+=("$pid")
    sleep 2
    t0="$(now)"
    case "$op" in
        scale)
            set_nodes 5; run_logged "$WORK/apply.log" "${D[@]}" apply --yes
            set_nodes 3; run_logged "$WORK/apply.log" "${D[@]}" apply --yes ;;
        roll)
            roll=$((roll + 1)); set_roll "$roll"
            run_logged "$WORK/apply.log" "${D[@]}" apply --yes
            grep -q "BENCH_ROLL=$roll" <<<"$(docker inspect -f '{{join .Config.Env " "}}' "$NAME-app-1")" \
                || { echo "error: node 1 does not run the new env after the rolling update" >&2; exit 1; } ;;
    esac
    t1="$(now)"
    sleep 2
    kill -INT "$pid"; wait "$pid" || true
    if [[ "$client" == ab ]]; then
        s=($(ab_stats "$out"))
        ZD+=("ab(-c4,new-conn) $op ${s[0]} ${s[1]} non-2xx=${s[2]};connect=${s[3]};receive=${s[4]};exceptions=${s[5]} $(secs "$t0" "$t1")")
    else
        s=($(wrk_stats "$out"))
        ZD+=("wrk(-c4,keep-alive) $op ${s[3]} $((s[4] + s[5])) non-2xx=${s[4]};$(wrk_sock_detail "$out") $(secs "$t0" "$t1")")
    fi
    log "zero downtime: ${ZD[-1]}"
}
for client in ab wrk; do for op in scale roll; do zd_run "$client" "$op"; done; done

# 5. connection budget under load -----------------------------------------------------------------
"${D[@]}" validate --json >"$WORK/validate.json"
B_PEAK="$(jq -r .budget.peak "$WORK/validate.json")"; B_STEADY="$(jq -r .budget.steady "$WORK/validate.json")"
B_LIMIT="$(jq -r '.budget.limit // empty' "$WORK/validate.json")"
PW="$(cat "$PW_FILE")"
sampler() {
    local q="SELECT count(*) FILTER (WHERE application_name LIKE '$NAME-%'), count(*) FILTER (WHERE backend_type = 'client backend') FROM pg_stat_activity"
    while [[ ! -e "$WORK/stop-sampler" ]]; do
        echo "$(now) $(docker exec -e PGPASSWORD="$PW" "$NAME-postgres" psql -h 127.0.0.1 -U app -d app -tA -F ' ' -c "$q" 2>/dev/null || echo "ERR ERR")"
        sleep 0.5
    done >"$WORK/conns.txt"
}
login
rm -f "$WORK/stop-sampler"
sampler & SAMPLER=$!; BG+=("$SAMPLER")
LOAD_START="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
wrk -t1 -c16 -d"${LOAD_SECONDS}s" --latency -s "$WORK/me.lua" "$URL/api/auth/me" >"$WORK/budget-me.txt" & ME=$!; BG+=("$ME")
wrk -t1 -c4 -d"${LOAD_SECONDS}s" --latency -s "$WORK/jobs.lua" "$URL/api/jobs" >"$WORK/budget-jobs.txt" & JOBS=$!; BG+=("$JOBS")
sleep $((LOAD_SECONDS / 4))
roll=$((roll + 1)); set_roll "$roll"
T0="$(now)"; run_logged "$WORK/apply.log" "${D[@]}" apply --yes; T1="$(now)"
log "rolling update during the budget load: $(secs "$T0" "$T1") s"
wait "$ME" "$JOBS" || true
touch "$WORK/stop-sampler"; wait "$SAMPLER" || true
C_MAX="$(awk '$2 != "ERR" && $2 > m { m = $2 } END { print m + 0 }' "$WORK/conns.txt")"
C_TOT_MAX="$(awk '$3 != "ERR" && $3 > m { m = $3 } END { print m + 0 }' "$WORK/conns.txt")"
C_SAMPLES="$(grep -vc ERR "$WORK/conns.txt" || true)"
C_ERR="$(grep -c ERR "$WORK/conns.txt" || true)"
read -r ME_RPS _ ME_P99 ME_REQS ME_NON2XX ME_SOCK _ <<<"$(wrk_stats "$WORK/budget-me.txt")"
read -r JOB_RPS _ _ JOB_REQS JOB_NON2XX JOB_SOCK _ <<<"$(wrk_stats "$WORK/budget-jobs.txt")"
TOO_MANY=0
for c in $(docker ps -a --filter "name=^$NAME-" --format '{{.Names}}'); do
    n="$(docker logs --since "$LOAD_START" "$c" 2>&1 | grep -ci "too many clients" || true)"
    TOO_MANY=$((TOO_MANY + n))
done
TOO_MANY_ALL=0
for c in $(docker ps -a --filter "name=^$NAME-" --format '{{.Names}}'); do
    n="$(docker logs "$c" 2>&1 | grep -ci "too many clients" || true)"
    TOO_MANY_ALL=$((TOO_MANY_ALL + n))
done

# Results ------------------------------------------------------------------------------------------
throughput_table
echo
echo "| failover: docker kill $NAME-app-2 under load of GET /api/health | requests | failed | detail | apply until node back (s) |"
echo "|---|---|---|---|---|"
for row in "${FO[@]}"; do read -r a b c d e <<<"$row"; echo "| $a | $b | $c | ${d//;/, } | $e |"; done
echo
echo "| database outage (postgres stopped ${DB_DOWN}s; 4 curl loops over /api/health, /api/auth/me through the balancer, -m 5) | value |"
echo "|---|---|"
echo "| docker stop took | $(secs "$T_STOP" "$T_STOPPED") s |"
echo "| postgres accepting connections after docker start | $(secs "$T_START" "$T_PG") s |"
echo "| every node's own /api/ready 200, after postgres accepts connections | $(secs "$T_PG" "$T_READY") s |"
echo "| the balancer's /api/auth/me 200, after postgres accepts connections | $(secs "$T_PG" "$T_LB") s |"
echo "| last failed answer after postgres is back: /api/health, /api/auth/me | $DB_LAST_HEALTH, $DB_LAST_ME |"
echo "| codes before the stop | $DB_CODES_BEFORE |"
echo "| codes from the stop until postgres is back | $DB_CODES_OUT |"
echo "| codes after postgres is back | $DB_CODES_AFTER |"
echo "| 502 (balancer had no live node) / other 5xx except 503 / client timeouts (5 s) | $DB_502 / $((DB_500 - DB_502)) / $DB_HANG of $DB_TOTAL requests |"
echo "| slowest response | ${DB_MAXT} s |"
echo
echo "| zero downtime, GET /api/health | operation | requests | failed | detail | operation took (s) |"
echo "|---|---|---|---|---|---|"
for row in "${ZD[@]}"; do read -r a b c d e g <<<"$row"; echo "| $a | $b | $c | $d | ${e//;/, } | $g |"; done
echo "(scale = apply 3 -> 5 then 5 -> 3; roll = rolling update of 3 nodes after an [app.env] edit. failed = non-2xx + socket errors (wrk) / non-2xx + connect + receive + exceptions (ab; Length is not a failure: the body length varies))"
echo
echo "| connection budget (${LOAD_SECONDS}s: wrk /api/auth/me -c16 + POST /api/jobs -c4; rolling update at $((LOAD_SECONDS / 4))s) | value |"
echo "|---|---|"
echo "| highest count of $NAME-* connections in pg_stat_activity ($C_SAMPLES samples, $C_ERR failed) | $C_MAX |"
echo "| highest count of all client backends | $C_TOT_MAX |"
echo "| budget (validate --json): steady / peak${B_LIMIT:+ / limit} | $B_STEADY / $B_PEAK${B_LIMIT:+ / $B_LIMIT} |"
echo "| within the peak budget | $( (( C_MAX <= B_PEAK )) && echo yes || echo NO) |"
echo "| \"too many clients\" in the cluster's logs (during the run / ever) | $TOO_MANY / $TOO_MANY_ALL |"
echo "| /api/auth/me during the run | $(int "$ME_RPS") req/s, p99 $ME_P99 ms, $ME_REQS requests, $ME_NON2XX non-2xx, $ME_SOCK socket errors ($(wrk_sock_detail "$WORK/budget-me.txt" | tr ';' ' ')) |"
echo "| POST /api/jobs during the run | $(int "$JOB_RPS") req/s, $JOB_REQS requests, $JOB_NON2XX non-2xx, $JOB_SOCK socket errors ($(wrk_sock_detail "$WORK/budget-jobs.txt" | tr ';' ' ')) |"
