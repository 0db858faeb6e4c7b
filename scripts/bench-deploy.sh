#!/usr/bin/env bash
# Benchmarks the deployer against the docker-compose path, side by side in one run, on this
# machine's Docker engine, with the same images (issue 4 "Benchmarks"):
#   1. from nothing (no container, no volume) to every service healthy and the balancer's
#      /api/health answering 200: `deployer apply --yes`  vs
#      `docker-compose -p NAME -f generated/docker-compose.yml up -d` + polling until the same holds.
#      ROUNDS rounds, alternating which goes first; median and every run. Target: deployer no slower.
#   2. a no-op `deployer plan` vs `docker-compose ps` (hyperfine). Target: plan no slower.
#   3. scale 3 -> 5 and 5 -> 3 with `deployer apply --yes` (SCALE_ROUNDS rounds, median).
# Both paths use the same container names, so they never run at the same time.
#
# Needs: docker (engine answering), docker-compose, curl, jq, hyperfine, python3; the images of
# cluster.toml (`deployer images`, scripts/build-images.sh) and deployer-app:latest (`deployer build`).
# Loopback only: the balancer is published on 127.0.0.1:<a free port>. Cluster name: bench-deploy.
# Cleans up (compose down -v, deployer destroy --volumes) on exit, even on failure.
#
# Usage: scripts/bench-deploy.sh
#   ROUNDS=5 SCALE_ROUNDS=3 PLAN_RUNS=20   how many rounds/runs
#   CARGO_TARGET_DIR=...                   where the release deployer is built (default: target)
#   DEPLOYER=/path/to/deployer             use this binary instead of building one
#   KEEP_WORK=1                            keep the temp dir (logs, cluster file) for inspection
set -euo pipefail

cd "$(dirname "$0")/.."
REPO="$PWD"
ROUNDS="${ROUNDS:-5}"
SCALE_ROUNDS="${SCALE_ROUNDS:-3}"
PLAN_RUNS="${PLAN_RUNS:-20}"
NAME="${BENCH_NAME:-bench-deploy}"
DEADLINE="${DEADLINE:-240}" # seconds one bring-up may take before the script gives up

for tool in docker docker-compose curl jq python3; do
    command -v "$tool" >/dev/null || { echo "error: $tool not found" >&2; exit 1; }
done
if ! command -v hyperfine >/dev/null; then
    echo "installing hyperfine (Debian package)..." >&2
    apt-get install -y -qq hyperfine >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq hyperfine >/dev/null; }
fi
docker info >/dev/null 2>&1 || { echo "error: no Docker engine answers (scripts/ensure-docker)" >&2; exit 1; }

if [[ -z "${DEPLOYER:-}" ]]; then
    echo "building the deployer (release)..." >&2
    cargo build --release -q -p deployer
    DEPLOYER="${CARGO_TARGET_DIR:-target}/release/deployer"
    [[ "$DEPLOYER" = /* ]] || DEPLOYER="$REPO/$DEPLOYER"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.2f", v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

PORT="$(free_port)"
WORK="$(mktemp -d /tmp/bench-deploy.XXXXXX)"
FILE="$WORK/cluster.toml"
COMPOSE=(docker-compose -p "$NAME" -f "$WORK/generated/docker-compose.yml")
D=("$DEPLOYER" -f "$FILE")

cleanup() {
    local rc=$?
    echo "cleaning up ($NAME)..." >&2
    if [[ -f "$WORK/generated/docker-compose.yml" ]]; then
        "${COMPOSE[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
    fi
    "${D[@]}" destroy --volumes --yes >/dev/null 2>&1 || true
    if [[ "${KEEP_WORK:-0}" == 1 || $rc != 0 ]]; then echo "work dir kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A copy of the example cluster file: our name, our port, 3 nodes; everything else as shipped.
cp "$REPO/cluster.toml" "$FILE"
cp -r "$REPO/templates" "$WORK/templates"
sed -i -e "s/^name = \"demo\"/name = \"$NAME\"/" \
       -e "s/^port = 4000\( *# published on the host\)/port = $PORT\1/" \
       -e "s/^nodes = [0-9]*/nodes = 3/" "$FILE"
set_nodes() { sed -i "s/^nodes = [0-9]*/nodes = $1/" "$FILE"; }
grep -q "^name = \"$NAME\"" "$FILE" && grep -q "^port = $PORT " "$FILE" \
    || { echo "error: could not set the cluster name and port in the copy of cluster.toml" >&2; exit 1; }

# Refuse to start on top of leftovers with our name (they would make the first round unfair).
if [[ -n "$(docker ps -aq --filter "name=^$NAME-")" ]]; then
    echo "error: containers named $NAME-* already exist; remove them first" >&2; exit 1
fi
for image in $("${D[@]}" images) "$(sed -n 's/^image = "\(deployer-app[^"]*\)".*/\1/p' "$FILE")"; do
    docker image inspect "$image" >/dev/null 2>&1 \
        || { echo "error: image $image missing (scripts/build-images.sh \$(deployer images); deployer build)" >&2; exit 1; }
done

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
run_logged() { # logfile cmd...: run, and on failure show the log's tail
    local logf="$1"; shift
    if ! "$@" >"$logf" 2>&1; then
        echo "error: '$*' failed; last lines of $logf:" >&2; tail -30 "$logf" >&2; return 1
    fi
}

# Every service container healthy and the balancer's /api/health answering 200.
cluster_up() { # nodes
    local n="$1" c
    for c in "$NAME-postgres" "$NAME-lb" $(seq -f "$NAME-app-%g" 1 "$n"); do
        [[ "$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$c" 2>/dev/null)" == healthy ]] || return 1
    done
    [[ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$PORT/api/health")" == 200 ]]
}
wait_up() { # nodes
    local start; start="$(now)"
    until cluster_up "$1"; do
        if awk -v s="$start" -v n="$(now)" -v d="$DEADLINE" 'BEGIN { exit !(n - s > d) }'; then
            echo "error: cluster $NAME not healthy after ${DEADLINE}s" >&2
            docker ps -a --filter "name=^$NAME-" --format '{{.Names}}\t{{.Status}}' >&2
            return 1
        fi
        sleep 0.1
    done
}
assert_nothing_left() {
    local left
    left="$(docker ps -aq --filter "name=^$NAME-"; docker volume ls -q --filter "name=^$NAME-"; docker network ls -q --filter "name=^$NAME-")"
    [[ -z "$left" ]] || { echo "error: leftovers of $NAME after teardown: $left" >&2; exit 1; }
}
deployer_down() { run_logged "$WORK/destroy.log" "${D[@]}" destroy --volumes --yes; assert_nothing_left; }
compose_down() { run_logged "$WORK/compose-down.log" "${COMPOSE[@]}" down -v --remove-orphans; assert_nothing_left; }

DEPLOYER_UP=(); COMPOSE_UP=()
deployer_round() {
    local t0 t1
    t0="$(now)"
    run_logged "$WORK/apply.log" "${D[@]}" apply --yes
    wait_up 3
    t1="$(now)"
    DEPLOYER_UP+=("$(secs "$t0" "$t1")")
    log "deployer apply (from nothing): ${DEPLOYER_UP[-1]} s"
    deployer_down
}
compose_round() {
    local t0 t1
    t0="$(now)"
    run_logged "$WORK/compose-up.log" "${COMPOSE[@]}" up -d
    wait_up 3
    t1="$(now)"
    COMPOSE_UP+=("$(secs "$t0" "$t1")")
    log "docker-compose up -d + wait: ${COMPOSE_UP[-1]} s"
    compose_down
}

MACHINE="$(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB, load average at start $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "machine: $MACHINE" >&2
echo "docker: $(docker version -f '{{.Server.Version}}'), $(docker-compose version --short 2>/dev/null | head -1 | sed 's/^/docker-compose /')" >&2

# render writes generated/ (and the secrets) for the compose path; apply rewrites the same files.
run_logged "$WORK/render.log" "${D[@]}" render
assert_nothing_left

# 1. from nothing to healthy ------------------------------------------------------------------
for r in $(seq "$ROUNDS"); do
    if (( r % 2 )); then deployer_round; compose_round; else compose_round; deployer_round; fi
done

# 2. no-op plan vs docker-compose ps --------------------------------------------------------------
# Each tool is timed on the cluster it made (compose ps filters by compose's project label, so
# on a deployer-made cluster it lists nothing); the deployer-made cluster also gets a `compose ps`
# run in the same hyperfine invocation, the literal "same cluster" comparison.
run_logged "$WORK/compose-up.log" "${COMPOSE[@]}" up -d
wait_up 3
[[ "$("${COMPOSE[@]}" ps -q | wc -l)" -ge 5 ]] || { echo "error: docker-compose ps lists too few containers" >&2; exit 1; }
hyperfine -N --style basic --warmup 3 --runs "$PLAN_RUNS" --export-json "$WORK/ps-compose.json" \
    -n "docker-compose ps (compose-made cluster)" "${COMPOSE[*]} ps" >&2
compose_down
run_logged "$WORK/apply.log" "${D[@]}" apply --yes
wait_up 3
"${D[@]}" plan --detailed-exitcode >/dev/null \
    || { echo "error: plan is not empty right after apply (exit $?)" >&2; exit 1; }
hyperfine -N --style basic --warmup 3 --runs "$PLAN_RUNS" --export-json "$WORK/plan.json" \
    -n "deployer plan (no-op)" "${D[*]} plan" \
    -n "docker-compose ps (deployer-made cluster)" "${COMPOSE[*]} ps" >&2
hf() { jq -r --arg n "$2" '.results[] | select(.command == $n) | "\(.median * 1000 | floor) \(.mean * 1000 | floor) \(.stddev * 1000 | floor)"' "$1"; }
read -r PLAN_MED PLAN_MEAN PLAN_SD <<<"$(hf "$WORK/plan.json" "deployer plan (no-op)")"
read -r PSD_MED PSD_MEAN PSD_SD <<<"$(hf "$WORK/plan.json" "docker-compose ps (deployer-made cluster)")"
read -r PSC_MED PSC_MEAN PSC_SD <<<"$(hf "$WORK/ps-compose.json" "docker-compose ps (compose-made cluster)")"

# 3. scale 3 -> 5 -> 3 --------------------------------------------------------------------------
UP5=(); DOWN3=()
for r in $(seq "$SCALE_ROUNDS"); do
    set_nodes 5
    t0="$(now)"; run_logged "$WORK/scale-up.log" "${D[@]}" apply --yes; wait_up 5; t1="$(now)"
    UP5+=("$(secs "$t0" "$t1")"); log "scale 3 -> 5: ${UP5[-1]} s"
    "${D[@]}" plan --detailed-exitcode >/dev/null || { echo "error: plan not empty after scale-up" >&2; exit 1; }
    set_nodes 3
    t0="$(now)"; run_logged "$WORK/scale-down.log" "${D[@]}" apply --yes; wait_up 3; t1="$(now)"
    [[ -z "$(docker ps -aq --filter "name=^$NAME-app-[45]$")" ]] || { echo "error: nodes 4/5 still exist after scale-down" >&2; exit 1; }
    DOWN3+=("$(secs "$t0" "$t1")"); log "scale 5 -> 3: ${DOWN3[-1]} s"
done
deployer_down

# Results ------------------------------------------------------------------------------------
D_MED="$(echo "${DEPLOYER_UP[*]}" | median)"; C_MED="$(echo "${COMPOSE_UP[*]}" | median)"
U_MED="$(echo "${UP5[*]}" | median)"; S_MED="$(echo "${DOWN3[*]}" | median)"
cat <<EOF

## deploy benchmark ($NAME, 3 nodes unless said otherwise)
machine: $MACHINE
deployer: $DEPLOYER

| figure | median | runs | target |
|---|---|---|---|
| \`deployer apply --yes\`, nothing -> all healthy | ${D_MED} s | ${DEPLOYER_UP[*]} | no slower than compose |
| \`docker-compose up -d\` + wait until all healthy | ${C_MED} s | ${COMPOSE_UP[*]} | |
| ratio compose / deployer (bring-up) | $(ratio "$C_MED" "$D_MED")x | | >= 1.00x |
| no-op \`deployer plan\` | ${PLAN_MED} ms | mean ${PLAN_MEAN} ± ${PLAN_SD} ms, ${PLAN_RUNS} runs | no slower than compose ps |
| \`docker-compose ps\` (compose-made cluster) | ${PSC_MED} ms | mean ${PSC_MEAN} ± ${PSC_SD} ms, ${PLAN_RUNS} runs | |
| \`docker-compose ps\` (deployer-made cluster, same run as plan) | ${PSD_MED} ms | mean ${PSD_MEAN} ± ${PSD_SD} ms, ${PLAN_RUNS} runs | |
| ratio compose ps / plan (same cluster) | $(ratio "$PSD_MED" "$PLAN_MED")x | | >= 1.00x |
| scale 3 -> 5 (\`apply --yes\` until 5 nodes healthy) | ${U_MED} s | ${UP5[*]} | |
| scale 5 -> 3 (\`apply --yes\`, incl. drain) | ${S_MED} s | ${DOWN3[*]} | |
EOF
