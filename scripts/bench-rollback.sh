#!/usr/bin/env bash
# `deployer rollback` next to the forward `deployer apply` of the same change, in one run: one
# NODES-node cluster; each round applies an env change (FEATURE = round number: a rolling
# replacement of every node), then rolls it back (the same nodes replaced again, by the previous
# revision's spec and image), each timed (wall clock of the command, and the time it reports),
# while a GET loop (a new connection per request) counts failed requests. Prints every round and
# the medians. Loopback only; cluster bench-rollback, destroyed on exit.
#
# Usage: scripts/bench-rollback.sh      ROUNDS=3 NODES=3 DEPLOYER=/path
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
ROUNDS="${ROUNDS:-3}"; NODES="${NODES:-3}"; NAME=bench-rollback
command -v python3 >/dev/null || { echo "error: python3 not found" >&2; exit 1; }
if [[ -z "${DEPLOYER:-}" ]]; then
    cargo build --release -q -p deployer
    DEPLOYER="$REPO/${CARGO_TARGET_DIR:-target}/release/deployer"
fi
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
WORK="$(mktemp -d /tmp/bench-rollback.XXXXXX)"; FILE="$WORK/cluster.toml"
cleanup() { touch "$WORK/stop"; "$DEPLOYER" -f "$FILE" destroy --volumes --yes >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT
write() { # write FEATURE_VALUE
    sed -e "s/^name = \"demo\"/name = \"$NAME\"/" -e "s/^port = 4000\( *# published on the host\)/port = $PORT\1/" \
        -e "s/^nodes = [0-9]*/nodes = $NODES/" -e "s/^RUST_LOG = \"info\"/RUST_LOG = \"info\"\nFEATURE = \"$1\"/" \
        "$REPO/cluster.toml" >"$FILE"
}
write 0
"$DEPLOYER" -f "$FILE" apply --yes >"$WORK/apply.log" 2>&1 || { cat "$WORK/apply.log" >&2; exit 1; }

# GETs of /api/health, a new connection each, until $1 exists; prints "ok failed".
cat >"$WORK/get.py" <<'PY'
import http.client, os, sys
port, stop = int(sys.argv[1]), sys.argv[2]
ok = failed = 0
while not os.path.exists(stop):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/api/health")
        r = c.getresponse(); r.read(); c.close()
        if r.status == 200: ok += 1
        else: failed += 1
    except Exception:
        failed += 1
print(ok, failed)
PY

# timed KIND ARGS…: runs the deployer under the GET loop; prints "wall reported ok failed".
timed() {
    local kind="$1"; shift
    rm -f "$WORK/stop"
    python3 "$WORK/get.py" "$PORT" "$WORK/stop" >"$WORK/get.out" &
    local loop=$!
    sleep 0.5
    local t0 t1
    t0="$(date +%s.%N)"
    "$DEPLOYER" -f "$FILE" "$@" >"$WORK/$kind.log" 2>&1 || { cat "$WORK/$kind.log" >&2; exit 1; }
    t1="$(date +%s.%N)"
    sleep 0.5; touch "$WORK/stop"; wait "$loop"
    local reported
    reported="$(grep -oE 'complete in [0-9.]+s' "$WORK/$kind.log" | grep -oE '[0-9.]+' | head -1)"
    echo "$(python3 -c "print(f'{$t1 - $t0:.1f}')") $reported $(cat "$WORK/get.out")"
}

echo "bench-rollback: $NODES nodes, $ROUNDS rounds, $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC'), $DEPLOYER"
printf '%-6s %-34s %-34s\n' round "apply FEATURE=n (wall/reported, GETs ok/failed)" "rollback (wall/reported, GETs ok/failed)"
fwd=(); back=(); failed=0
for round in $(seq 1 "$ROUNDS"); do
    write "$round"
    read -r fw fr fok ffail < <(timed apply apply --yes)
    read -r bw br bok bfail < <(timed rollback rollback --yes)
    fwd+=("$fw"); back+=("$bw"); failed=$((failed + ffail + bfail))
    printf '%-6s %-34s %-34s\n' "$round" "${fw}s / ${fr}s, $fok/$ffail" "${bw}s / ${br}s, $bok/$bfail"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "median wall: apply $(median "${fwd[@]}")s, rollback $(median "${back[@]}")s; failed GETs in all: $failed"
"$DEPLOYER" -f "$FILE" history
