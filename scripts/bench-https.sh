#!/usr/bin/env bash
# Throughput through the balancer over HTTPS next to plain HTTP, in the same run on the same
# cluster (issue 13): one 3-node cluster on this machine's engine; each round applies it without
# TLS and measures GET /api/health over HTTP, then applies it with `tls_cert`/`tls_key` (the
# balancer is recreated for its new port; the nodes are untouched) and measures over HTTPS.
# Two client shapes: keep-alive (wrk -t2 -c32: the TLS handshake amortised) and a new connection
# per request (wrk with `Connection: close`: a full TLS handshake each, TLS 1.3, ECDSA P-256).
# wrk speaks HTTP/1.1 on both (it offers no ALPN, so no HTTP/2). Loopback only, bounded in time.
#
# Needs: docker, openssl, wrk, curl; the images of cluster.toml and deployer-app:latest.
# Names: cluster bench-https (removed on exit, even on failure). Ports: free ones on 127.0.0.1.
#
# Usage: scripts/bench-https.sh
#   DURATION=8 ROUNDS=3    seconds per wrk run, rounds (median reported)
#   DEPLOYER=/path         the deployer binary (default: $CARGO_TARGET_DIR/debug/deployer, built)
set -euo pipefail

cd "$(dirname "$0")/.."
REPO="$PWD"
DURATION="${DURATION:-8}"
ROUNDS="${ROUNDS:-3}"
NAME="${BENCH_NAME:-bench-https}"
TARGET="${CARGO_TARGET_DIR:-target}"
[[ "$TARGET" = /* ]] || TARGET="$REPO/$TARGET"

for tool in docker openssl wrk curl python3; do
    command -v "$tool" >/dev/null || { echo "error: $tool not found (Debian: wrk openssl curl)" >&2; exit 1; }
done
if [[ -z "${DEPLOYER:-}" ]]; then
    cargo build -q -p deployer
    DEPLOYER="$TARGET/debug/deployer"
fi

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

WORK="$(mktemp -d)"
cleanup() {
    "$DEPLOYER" -f "$WORK/cluster.toml" destroy --volumes --yes >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

HTTP_PORT="$(free_port)"
HTTPS_PORT="$(free_port)"
mkdir -p "$WORK/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" 2>/dev/null
chmod 600 "$WORK/tls/key.pem"

sed -e "s/^name = \"demo\"/name = \"$NAME\"/" \
    -e "s/^port = 4000                 # published/port = $HTTP_PORT                 # published/" \
    "$REPO/cluster.toml" >"$WORK/plain.toml"
sed -e "s|^\[balancer\]$|[balancer]\ntls_cert = \"tls/cert.pem\"\ntls_key = \"tls/key.pem\"\nhttps_port = $HTTPS_PORT|" \
    "$WORK/plain.toml" >"$WORK/tls.toml"

apply() {
    cp "$WORK/$1.toml" "$WORK/cluster.toml"
    "$DEPLOYER" -f "$WORK/cluster.toml" apply --yes >"$WORK/apply.log" 2>&1 || { cat "$WORK/apply.log" >&2; exit 1; }
}

# wrk output -> "rps p99_ms errors"
wrk_figures() {
    python3 - "$1" <<'EOF'
import re, sys
t = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
def ms(v):
    n, u = re.match(r"([\d.]+)(\w+)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[u]
p99 = re.search(r"99%\s+(\S+)", t)
errs = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", t))
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
print(f"{rps:.0f} {ms(p99.group(1)) if p99 else 0:.1f} {errs + (int(non2xx.group(1)) if non2xx else 0)}")
EOF
}

measure() { # scheme port shape -> figures
    local url="$1://127.0.0.1:$2/api/health" out="$WORK/wrk-$1-$3.txt"
    curl -skf "$url" >/dev/null
    if [[ "$3" == keepalive ]]; then
        wrk -t2 -c32 -d"${DURATION}s" --latency "$url" >"$out"
    else
        wrk -t2 -c8 -d"${DURATION}s" --latency -H "Connection: close" "$url" >"$out"
    fi
    wrk_figures "$out"
}

declare -A R
for round in $(seq 1 "$ROUNDS"); do
    for mode in plain tls; do
        apply "$mode"
        if [[ "$mode" == plain ]]; then scheme=http port=$HTTP_PORT; else scheme=https port=$HTTPS_PORT; fi
        for shape in keepalive close; do
            f="$(measure "$scheme" "$port" "$shape")"
            R[$mode-$shape-$round]="$f"
            log "round $round $scheme $shape: $f (req/s p99_ms errors)"
        done
    done
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo
echo "GET /api/health through the balancer, 3 nodes, $ROUNDS rounds of ${DURATION}s, $(date -u +%F) $(nproc) cores"
printf '%-34s %12s %12s %8s   %s\n' "client" "HTTP req/s" "HTTPS req/s" "ratio" "rounds (HTTP/HTTPS req/s; p99 ms; errors)"
for shape in keepalive close; do
    h=(); s=(); detail=""
    for round in $(seq 1 "$ROUNDS"); do
        read -r hr hp he <<<"${R[plain-$shape-$round]}"
        read -r sr sp se <<<"${R[tls-$shape-$round]}"
        h+=("$hr"); s+=("$sr")
        detail+="$hr/$sr; ${hp}/${sp}; $he/$se  "
    done
    mh="$(median "${h[@]}")"; ms="$(median "${s[@]}")"
    label="keep-alive (wrk -t2 -c32)"
    [[ "$shape" == close ]] && label="new connection each (wrk -t2 -c8)"
    printf '%-34s %12s %12s %7.2fx   %s\n' "$label" "$mh" "$ms" "$(echo "$ms / $mh" | bc -l)" "$detail"
done
