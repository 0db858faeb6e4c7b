#!/usr/bin/env bash
# Figures for "Beyond one machine" (issue 10): the same cluster.toml on the swarm lab
# (scripts/swarm-lab: three Docker hosts in containers on this machine) and on this machine's
# single Docker engine, side by side in one run, loopback only, every load bounded in time:
#   1. `deployer apply` from nothing, 3 nodes;
#   2. throughput and p99 of GET /api/health through the balancer, wrk -t2 -c32, ROUNDS rounds
#      alternating swarm / single engine (median and every round printed);
#   3. a rolling update of all nodes (an env change) under wrk with keep-alive: its time, the
#      requests served meanwhile, socket errors and non-2xx answers;
#   4. scale 3 -> 6: its time.
# The host-kill figures (failed requests, seconds to full strength, seconds until the dead host's
# connections leave PostgreSQL) come from the end-to-end test
# `cargo test -p e2e --test swarm losing -- --nocapture`, which prints them.
#
# Needs: a running lab (scripts/swarm-lab up), wrk, the images (scripts/build-images.sh incl.
# nginx:1.30, `deployer build`). Names: clusters bench-sw (swarm) and bench-one (single engine),
# destroyed with their volumes on exit, even on failure.
#
# Usage: scripts/bench-swarm.sh        DURATION=6 ROUNDS=3 DEPLOYER=/path/to/deployer
set -euo pipefail

cd "$(dirname "$0")/.."
REPO="$PWD"
DURATION="${DURATION:-6}"
ROUNDS="${ROUNDS:-3}"
LAB_PORT=4005

if [[ -z "${DEPLOYER:-}" ]]; then
    cargo build -q --release -p deployer
    DEPLOYER="${CARGO_TARGET_DIR:-$REPO/target}/release/deployer"
fi
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }

# The lab's variables, without letting its DOCKER_HOST leak into this script.
lab() { (eval "$(scripts/swarm-lab env)" && eval "echo \"\$$1\""); }
LAB_API="$(lab DOCKER_HOST)"
LAB_REGISTRY="$(lab SWARM_LAB_REGISTRY)"
LAB_HOST="$(lab SWARM_LAB_BALANCER_HOST)"
LAB_MANAGER="$(lab SWARM_LAB_MANAGER)"
SW_URL="http://127.0.0.1:$((14000 + LAB_PORT - 4000))"
ONE_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
ONE_URL="http://127.0.0.1:$ONE_PORT"

W="$(mktemp -d)"
cleanup() {
    for c in sw one; do
        [[ -f "$W/$c/cluster.toml" ]] && "$DEPLOYER" destroy -f "$W/$c/cluster.toml" --volumes --yes >/dev/null 2>&1 || true
    done
    rm -rf "$W"
}
trap cleanup EXIT

# cluster.toml as in the repository, with a name, the balancer on nginx 1.30 on both targets
# (so the balancer is the same program), and on the swarm its section.
mkdir -p "$W/sw" "$W/one"
ln -s "$REPO/templates" "$W/sw/templates"
ln -s "$REPO/templates" "$W/one/templates"
sed -e 's/^name = "demo"/name = "bench-one"/' \
    -e "s/^port = 4000                 # published/port = $ONE_PORT                 # published/" \
    -e 's/^image = "nginx:1.22"/image = "nginx:1.30"/' cluster.toml >"$W/one/cluster.toml"
sed -e 's/^name = "demo"/name = "bench-sw"\ntarget = "swarm"/' \
    -e "s/^port = 4000                 # published/port = $LAB_PORT                 # published/" \
    -e '/^bind = /d' \
    -e 's/^image = "nginx:1.22"/image = "nginx:1.30"/' cluster.toml >"$W/sw/cluster.toml"
cat >>"$W/sw/cluster.toml" <<EOF

[swarm]
manager = "$LAB_API"
registry = "$LAB_REGISTRY"
database_host = "$LAB_MANAGER"
balancer_host = "$LAB_HOST"
EOF

echo "== pushing the app image to the lab's registry"
docker tag deployer-app:latest "$LAB_REGISTRY/deployer-app:latest"
docker push -q "$LAB_REGISTRY/deployer-app:latest" >/dev/null

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
apply() { "$DEPLOYER" apply -f "$W/$1/cluster.toml" --yes >"$W/$1.apply.log" 2>&1 || { cat "$W/$1.apply.log" >&2; exit 1; }; }

echo "== 1. apply from nothing, 3 nodes"
for c in sw one; do
    t="$(now)"; apply "$c"; echo "  $c: $(secs "$t") s"
done

wait_ok() { for _ in $(seq 100); do curl -fsS -o /dev/null "$1/api/health" && return 0; sleep 0.2; done; return 1; }
wait_ok "$SW_URL"; wait_ok "$ONE_URL"

echo "== 2. GET /api/health, wrk -t2 -c32 -d${DURATION}s, $ROUNDS rounds alternating"
rps() { wrk -t2 -c32 -d"${DURATION}s" --latency "$1/api/health" >"$W/wrk.txt"; awk '/Requests\/sec/ { print $2 }' "$W/wrk.txt"; }
p99() { awk '$1 == "99%" { print $2 }' "$W/wrk.txt"; }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
: >"$W/sw.rps"; : >"$W/one.rps"
for r in $(seq "$ROUNDS"); do
    s="$(rps "$SW_URL")"; sp="$(p99)"; o="$(rps "$ONE_URL")"; op="$(p99)"
    echo "  round $r: swarm $s req/s (p99 $sp), single engine $o req/s (p99 $op)"
    echo "$s" >>"$W/sw.rps"; echo "$o" >>"$W/one.rps"
done
ms="$(median <"$W/sw.rps")"; mo="$(median <"$W/one.rps")"
echo "  median: swarm $ms req/s, single engine $mo req/s, ratio $(awk -v a="$ms" -v b="$mo" 'BEGIN { printf "%.2f", a / b }')x"

echo "== 3. rolling update of all 3 nodes under wrk (keep-alive, -c16)"
for c in sw one; do
    url="$SW_URL"; [[ $c == one ]] && url="$ONE_URL"
    sed -i 's/^RUST_LOG = "info"$/RUST_LOG = "info,app=debug"/' "$W/$c/cluster.toml"
    wrk -t2 -c16 -d40s "$url/api/health" >"$W/roll.$c.txt" &
    wpid=$!
    sleep 2
    t="$(now)"; apply "$c"; took="$(secs "$t")"
    kill -INT "$wpid" 2>/dev/null || true; wait "$wpid" || true
    reqs="$(awk '/requests in/ { print $1 }' "$W/roll.$c.txt")"
    errs="$(awk '/Socket errors/ { print }' "$W/roll.$c.txt")"
    non2xx="$(awk '/Non-2xx/ { print $NF }' "$W/roll.$c.txt")"
    echo "  $c: ${took} s, ${reqs:-?} requests during the run, socket errors: ${errs:-none}, non-2xx: ${non2xx:-0}"
done

echo "== 4. scale 3 -> 6"
for c in sw one; do
    sed -i 's/^nodes = 3 /nodes = 6 /' "$W/$c/cluster.toml"
    t="$(now)"; apply "$c"; echo "  $c: $(secs "$t") s"
done
echo "machine: $(nproc) cores; $(date -u +%F)"
