#!/usr/bin/env bash
# Failed requests of keep-alive clients across consecutive membership changes under load: one
# cluster, CHANGES changes in a row (rolling env updates, and scale NODES -> NODES+1 -> NODES),
# each under `wrk -t2 -c16` (keep-alive GETs of /api/health) and a POST loop on one persistent
# connection (POST /api/jobs, which no client retries). Prints one line per change: what changed,
# how long `deployer apply` took, and every failure each client saw; then the totals.
# Loopback only; cluster bench-roll, destroyed on exit.
#
# Usage: scripts/bench-rollouts.sh      CHANGES=20 NODES=3 DEPLOYER=/path IMAGE=nginx:1.30
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
CHANGES="${CHANGES:-20}"; NODES="${NODES:-3}"; NAME=bench-roll
for tool in wrk curl python3; do command -v "$tool" >/dev/null || { echo "error: $tool not found" >&2; exit 1; }; done
if [[ -z "${DEPLOYER:-}" ]]; then
    cargo build --release -q -p deployer
    DEPLOYER="$REPO/${CARGO_TARGET_DIR:-target}/release/deployer"
fi
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
WORK="$(mktemp -d /tmp/bench-roll.XXXXXX)"; FILE="$WORK/cluster.toml"
cleanup() { "$DEPLOYER" -f "$FILE" destroy --volumes --yes >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT
sed -e "s/^name = \"demo\"/name = \"$NAME\"/" -e "s/^port = 4000\( *# published on the host\)/port = $PORT\1/" \
    -e "s/^nodes = [0-9]*/nodes = $NODES/" "$REPO/cluster.toml" >"$FILE"
if [[ -n "${IMAGE:-}" ]]; then sed -i "s|^image = \"nginx:[^\"]*\"|image = \"$IMAGE\"|" "$FILE"; fi
"$DEPLOYER" -f "$FILE" apply --yes >"$WORK/apply.log" 2>&1 || { cat "$WORK/apply.log" >&2; exit 1; }
BASE="http://127.0.0.1:$PORT"

# A user and its token for the POST loop.
curl -sf -o /dev/null -H 'content-type: application/json' "$BASE/api/users" \
    -d '{"email":"bench-roll@example.com","full_name":"bench","password":"bench password 12345","password_confirmation":"bench password 12345"}'
TOKEN="$(curl -sf -H 'content-type: application/json' "$BASE/api/auth/login" \
    -d '{"email":"bench-roll@example.com","password":"bench password 12345"}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["access_token"])')"

# POSTs on one connection until STOP exists; reconnects only after `Connection: close`.
cat >"$WORK/post.py" <<'PY'
import http.client, json, os, sys, time
port, token, stop, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ok = failed = conns = 0
errors = []
conn = None
body = json.dumps({"kind": "noop", "args": {"from": "bench-rollouts"}})
headers = {"content-type": "application/json", "authorization": "Bearer " + token}
while not os.path.exists(stop):
    if conn is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conns += 1
    try:
        conn.request("POST", "/api/jobs", body, headers)
        r = conn.getresponse()
        r.read()
        if 200 <= r.status < 300:
            ok += 1
        else:
            failed += 1
            errors.append("status %d" % r.status)
        if (r.getheader("connection") or "").lower() == "close":
            conn.close(); conn = None
    except Exception as e:  # a request lost with its connection
        failed += 1
        errors.append(type(e).__name__)
        conn.close(); conn = None
        time.sleep(0.05)
with open(out, "w") as f:
    json.dump({"ok": ok, "failed": failed, "connections": conns, "errors": errors[:5]}, f)
PY

change() { # change N: what the Nth change does to the file; prints its label
    local n="$1"
    case $(( n % 4 )) in
        1|3) sed -i "s/^RUST_LOG = .*/RUST_LOG = \"info,bench=r$n\"/" "$FILE"; echo "rollout ($NODES nodes, env)" ;;
        2) sed -i "s/^nodes = [0-9]*/nodes = $((NODES + 1))/" "$FILE"; echo "scale $NODES -> $((NODES + 1))" ;;
        0) sed -i "s/^nodes = [0-9]*/nodes = $NODES/" "$FILE"; echo "scale $((NODES + 1)) -> $NODES" ;;
    esac
}
grep -q '^RUST_LOG = ' "$FILE" || { echo "error: the example has no [app.env] RUST_LOG line to change" >&2; exit 1; }

echo "## keep-alive clients across $CHANGES changes ($DEPLOYER, balancer $(grep -m1 '^image = "nginx' "$FILE" | cut -d'"' -f2); $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ))"
echo "| # | change | apply s | wrk requests | wrk socket errors (connect/read/write/timeout) | wrk non-2xx | POSTs ok | POSTs failed |"
echo "|---|---|---|---|---|---|---|---|"
declare -A WINDOW=([rollout]=30 [scale]=30) # wrk's duration per kind of change, from its last run
tot_req=0 tot_err=0 tot_non2xx=0 tot_pok=0 tot_pfail=0
for n in $(seq "$CHANGES"); do
    rm -f "$WORK/stop"
    python3 "$WORK/post.py" "$PORT" "$TOKEN" "$WORK/stop" "$WORK/post.json" & post=$!
    kind=scale; (( n % 2 )) && kind=rollout
    wrk -t2 -c16 -d"${WINDOW[$kind]}s" "$BASE/api/health" >"$WORK/wrk.out" 2>&1 & w=$!
    sleep 1
    label="$(change "$n")"
    t0=$EPOCHREALTIME
    "$DEPLOYER" -f "$FILE" apply --yes >"$WORK/apply.log" 2>&1 || { cat "$WORK/apply.log" >&2; exit 1; }
    secs="$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')"
    wait "$w"
    touch "$WORK/stop"; wait "$post"
    # wrk must outlast the apply (it prints only at its end): the next change of this kind gets
    # this one's time with a margin; one that outlasted its window is reported.
    if awk -v s="$secs" -v w="${WINDOW[$kind]}" 'BEGIN { exit !(s + 1 > w) }'; then
        echo "warning: change $n took ${secs}s, longer than wrk's ${WINDOW[$kind]}s" >&2
    fi
    WINDOW[$kind]="$(awk -v s="$secs" 'BEGIN { w = int(s * 1.5) + 4; print (w < 8) ? 8 : w }')"
    req="$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$WORK/wrk.out")"
    errs="$(sed -n 's/^ *Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\)/\1\/\2\/\3\/\4/p' "$WORK/wrk.out")"
    errs="${errs:-0/0/0/0}"
    non2xx="$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\)/\1/p' "$WORK/wrk.out")"; non2xx="${non2xx:-0}"
    read -r pok pfail < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["ok"], d["failed"])' "$WORK/post.json")
    echo "| $n | $label | $secs | $req | $errs | $non2xx | $pok | $pfail |"
    tot_req=$((tot_req + req)); tot_non2xx=$((tot_non2xx + non2xx)); tot_pok=$((tot_pok + pok)); tot_pfail=$((tot_pfail + pfail))
    tot_err=$((tot_err + $(tr '/' '+' <<<"$errs")))
done
echo
echo "total: wrk $tot_req requests, $tot_err socket errors, $tot_non2xx non-2xx; POSTs $tot_pok ok, $tot_pfail failed"
