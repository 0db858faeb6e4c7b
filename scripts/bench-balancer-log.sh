#!/usr/bin/env bash
# What each `[balancer] access_log` choice costs: one 3-node cluster, GET /api/health through
# the balancer (wrk -t2 -c32, keep-alive), ROUNDS rounds alternating off / sampled / buffered / unbuffered
# (each switch is a `deployer apply`: one nginx reload, same nodes), medians and ratios to `off`.
# Loopback only; cluster bench-log, destroyed on exit.
#
# Usage: scripts/bench-balancer-log.sh      ROUNDS=3 DURATION=6 NODES=3 DEPLOYER=/path
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
ROUNDS="${ROUNDS:-3}"; DURATION="${DURATION:-6}"; NODES="${NODES:-3}"; NAME=bench-log
for tool in wrk curl python3; do command -v "$tool" >/dev/null || { echo "error: $tool not found" >&2; exit 1; }; done
if [[ -z "${DEPLOYER:-}" ]]; then
    cargo build --release -q -p deployer
    DEPLOYER="$REPO/${CARGO_TARGET_DIR:-target}/release/deployer"
fi
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
WORK="$(mktemp -d /tmp/bench-log.XXXXXX)"; FILE="$WORK/cluster.toml"
cleanup() { "$DEPLOYER" -f "$FILE" destroy --volumes --yes >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT
sed -e "s/^name = \"demo\"/name = \"$NAME\"/" -e "s/^port = 4000\( *# published on the host\)/port = $PORT\1/" \
    -e "s/^nodes = [0-9]*/nodes = $NODES/" "$REPO/cluster.toml" >"$FILE"
mode() { sed -i "s/^access_log = \"[a-z]*\"/access_log = \"$1\"/" "$FILE"; "$DEPLOYER" -f "$FILE" apply --yes >"$WORK/apply.log" 2>&1; }
mode off
URL="http://127.0.0.1:$PORT/api/health"
wrk -t2 -c32 -d2s "$URL" >/dev/null
declare -A RUNS ROUND RATIOS ENGINE
# CPU ticks of this machine's engine (dockerd, its containerd, the containers' shims: they copy
# each line a container writes to stdout into its log file), not of engines running inside
# containers (the swarm lab's), whose parent is not PID 1.
daemon_ticks() {
    local pid total=0 dockerd
    dockerd="$(pgrep -P 1 -x dockerd | head -1)"
    for pid in $dockerd $(pgrep -P "${dockerd:-1}" -x containerd) $(pgrep -P 1 -f 'containerd-shim'); do
        total=$((total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}
for r in $(seq "$ROUNDS"); do
    if (( r % 2 )); then order="off sampled buffered unbuffered"; else order="unbuffered buffered sampled off"; fi
    for m in $order; do
        mode "$m"
        d0="$(daemon_ticks)"
        out="$(wrk -t2 -c32 -d"${DURATION}s" "$URL")"
        d1="$(daemon_ticks)"
        rps="$(sed -n 's/^Requests\/sec: *\([0-9.]*\)/\1/p' <<<"$out")"
        reqs="$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' <<<"$out")"
        # The engine's own CPU per request: what it costs to carry the access log's lines.
        us="$(awk -v t="$((d1 - d0))" -v r="$reqs" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t * 1e6 / hz / (r ? r : 1) }')"
        RUNS[$m]+="$rps "
        ROUND[$m]="$rps"
        ENGINE[$m]+="$us "
        echo "[$(date +%T)] round $r, access_log = $m: $rps req/s; dockerd + containerd + shims $us us CPU per request" >&2
    done
    # Each round's ratio to `off` in the same round: the machine's drift cancels out.
    for m in sampled buffered unbuffered; do
        RATIOS[$m]+="$(awk -v a="${ROUND[$m]}" -v b="${ROUND[off]}" 'BEGIN { printf "%.3f", a / b }') "
    done
done
median() { tr ' ' '\n' | grep . | sort -g | awk -v f="${1:-%.0f}" '{ v[NR] = $1 } END { printf f, (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
off="$(median <<<"${RUNS[off]}")"
echo "## access_log cost ($NODES nodes, GET /api/health, wrk -t2 -c32 -d${DURATION}s, $ROUNDS rounds; $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ))"
echo "| access_log | req/s (median) | runs | vs off (median of the rounds' ratios) | rounds' ratios | engine CPU us/request (median; runs) |"
echo "|---|---|---|---|---|---|"
echo "| off | $off | ${RUNS[off]% } | 1.00x | | $(median '%.1f' <<<"${ENGINE[off]}"); ${ENGINE[off]% } |"
for m in sampled buffered unbuffered; do
    echo "| $m | $(median <<<"${RUNS[$m]}") | ${RUNS[$m]% } | $(median '%.2f' <<<"${RATIOS[$m]}")x | ${RATIOS[$m]% } | $(median '%.1f' <<<"${ENGINE[$m]}"); ${ENGINE[$m]% } |"
done
