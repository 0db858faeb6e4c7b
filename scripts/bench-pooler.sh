#!/usr/bin/env bash
# What PgBouncer (`[database] pooler = "pgbouncer"`) costs and what it buys (issue 14), loopback
# only, every load bounded in time:
#   1. 3 nodes, side by side in one run: GET /api/auth/me (one PostgreSQL query) and
#      POST /api/auth/login (one query + argon2) through the balancer, wrk -t2 -c32, with the
#      pooler and without it (direct, the reference), ROUNDS rounds alternating the order; each
#      switch is a `deployer apply` (a rolling update of the nodes). Medians of req/s and p99,
#      and the median of each round's pooled/direct ratio.
#   2. 20 nodes × pool 10 against max_connections = 100 (refused without the pooler): LOAD_SECONDS
#      of GET /api/auth/me at -c BIG_CONCURRENCY (answers tallied by status) plus JOBS background
#      jobs enqueued meanwhile; the highest
#      pg_stat_activity count (sampled every 0.2 s) next to the budget's server side, the highest
#      PgBouncer client and server counts (SHOW POOLS), "too many clients" in every container's
#      log, and the jobs completed exactly once (attempts = 1).
#
# Needs: docker, curl, jq, wrk, python3, cargo; the images of cluster.toml, deployer-app:latest
# (`deployer build`) and edoburu/pgbouncer:v1.24.1-p1 (scripts/build-images.sh).
# Names: clusters bench-pool3 and bench-pool20, destroyed on exit, even on failure.
#
# Usage: scripts/bench-pooler.sh
#   ROUNDS=3 DURATION=8 LOAD_SECONDS=30 JOBS=500 NODES_BIG=20 BIG_CONCURRENCY=200
#   DEPLOYER=/path          use this deployer binary
#   SKIP_SMALL=1 / SKIP_BIG=1
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
ROUNDS="${ROUNDS:-3}"; DURATION="${DURATION:-8}"; LOAD_SECONDS="${LOAD_SECONDS:-30}"
JOBS="${JOBS:-500}"; NODES_BIG="${NODES_BIG:-20}"; BIG_CONCURRENCY="${BIG_CONCURRENCY:-200}"
TARGET="${CARGO_TARGET_DIR:-target}"; [[ "$TARGET" = /* ]] || TARGET="$REPO/$TARGET"
for tool in docker curl jq wrk python3; do
    command -v "$tool" >/dev/null || { echo "error: $tool not found" >&2; exit 1; }
done
if [[ -z "${DEPLOYER:-}" ]]; then
    cargo build --release -q -p deployer
    DEPLOYER="$TARGET/release/deployer"
fi
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
median() { tr ' ' '\n' | grep . | sort -g | awk -v f="${1:-%.0f}" '{ v[NR] = $1 } END { printf f, (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

WORK="$(mktemp -d /tmp/bench-pooler.XXXXXX)"
FILES=()
cleanup() {
    for f in "${FILES[@]}"; do "$DEPLOYER" -f "$f" destroy --volumes --yes >/dev/null 2>&1 || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# A cluster file in its own directory: the example with NAME, a free port, NODES nodes.
cluster_file() { # NAME NODES -> path
    local dir="$WORK/$1" port; mkdir -p "$dir"; port="$(free_port)"
    sed -e "s/^name = \"demo\"/name = \"$1\"/" -e "s/^port = 4000\( *# published on the host\)/port = $port\1/" \
        -e "s/^nodes = [0-9]*/nodes = $2/" "$REPO/cluster.toml" >"$dir/cluster.toml"
    echo "$dir/cluster.toml"
}
port_of() { sed -n 's/^port = \([0-9]*\) *# published on the host.*/\1/p' "$1"; }
pooler() { sed -i "s/^pooler = \"[a-z]*\"/pooler = \"$2\"/" "$1"; }
apply() { "$DEPLOYER" -f "$1" apply --yes >"$WORK/apply.log" 2>&1 || { tail -30 "$WORK/apply.log" >&2; exit 1; }; }
psql_in() { # FILE CONTAINER DATABASE SQL
    local pw; pw="$(cat "$(dirname "$1")/.deployer/secrets/db_password")"
    docker exec -e PGPASSWORD="$pw" "$2" psql -h 127.0.0.1 -U app -d "$3" -XAtq -F $'\t' -c "$4"
}
# A user and its token through the balancer at PORT.
token() { # PORT EMAIL
    curl -sf -o /dev/null -H 'content-type: application/json' \
        -d "{\"email\":\"$2\",\"full_name\":\"Bench\",\"password\":\"bench-password-1\",\"password_confirmation\":\"bench-password-1\"}" \
        "http://127.0.0.1:$1/api/users" || true
    curl -sf -H 'content-type: application/json' -d "{\"email\":\"$2\",\"password\":\"bench-password-1\"}" \
        "http://127.0.0.1:$1/api/auth/login" | jq -r .data.access_token
}
# wrk's req/s and p99 (ms) as "RPS P99".
wrk_run() { # ARGS...
    local out; out="$(wrk -t2 -c32 -d"${DURATION}s" --latency "$@")"
    local rps p99
    rps="$(sed -n 's/^Requests\/sec: *\([0-9.]*\)/\1/p' <<<"$out")"
    p99="$(awk '$1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }; printf "%.1f", v }' <<<"$out")"
    local non2xx; non2xx="$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\)/\1/p' <<<"$out")"
    [[ -z "$non2xx" ]] || log "  ($non2xx non-2xx answers)"
    echo "$rps $p99"
}

if [[ "${SKIP_SMALL:-0}" != 1 ]]; then
    F="$(cluster_file bench-pool3 3)"; FILES+=("$F"); P="$(port_of "$F")"
    log "3 nodes: apply (direct)"
    pooler "$F" none; apply "$F"
    TOKEN="$(token "$P" bench-pool3@example.com)"
    [[ -n "$TOKEN" && "$TOKEN" != null ]] || { echo "error: no token" >&2; exit 1; }
    cat >"$WORK/login.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"email":"bench-pool3@example.com","password":"bench-password-1"}'
wrk.headers["Content-Type"] = "application/json"
LUA
    wrk -t2 -c32 -d2s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$P/api/auth/me" >/dev/null
    declare -A RPS P99 ROUND RATIO
    for r in $(seq "$ROUNDS"); do
        if (( r % 2 )); then order="none pgbouncer"; else order="pgbouncer none"; fi
        for mode in $order; do
            log "round $r: pooler = $mode (apply: rolling the nodes)"
            pooler "$F" "$mode"; apply "$F"
            read -r me_rps me_p99 < <(wrk_run -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$P/api/auth/me")
            read -r in_rps in_p99 < <(wrk_run -s "$WORK/login.lua" "http://127.0.0.1:$P/api/auth/login")
            log "  /api/auth/me $me_rps req/s p99 $me_p99 ms; login $in_rps req/s p99 $in_p99 ms"
            RPS[$mode.me]+="$me_rps "; P99[$mode.me]+="$me_p99 "; ROUND[$mode.me]="$me_rps"
            RPS[$mode.login]+="$in_rps "; P99[$mode.login]+="$in_p99 "; ROUND[$mode.login]="$in_rps"
        done
        for e in me login; do
            RATIO[$e]+="$(awk -v a="${ROUND[pgbouncer.$e]}" -v b="${ROUND[none.$e]}" 'BEGIN { printf "%.3f", a / b }') "
        done
    done
    echo
    echo "## 3 nodes through PgBouncer vs direct (wrk -t2 -c32 -d${DURATION}s, $ROUNDS rounds; $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ))"
    echo "| endpoint | direct req/s (p99 ms) | through PgBouncer req/s (p99 ms) | pooled / direct (median of rounds) | rounds' ratios |"
    echo "|---|---|---|---|---|"
    for e in me login; do
        label="GET /api/auth/me"; [[ "$e" == login ]] && label="POST /api/auth/login"
        echo "| $label | $(median <<<"${RPS[none.$e]}") ($(median '%.1f' <<<"${P99[none.$e]}")) | $(median <<<"${RPS[pgbouncer.$e]}") ($(median '%.1f' <<<"${P99[pgbouncer.$e]}")) | $(median '%.2f' <<<"${RATIO[$e]}")x | ${RATIO[$e]% } |"
    done
    echo "runs, direct: me ${RPS[none.me]% } / login ${RPS[none.login]% }; pooled: me ${RPS[pgbouncer.me]% } / login ${RPS[pgbouncer.login]% }"
    "$DEPLOYER" -f "$F" destroy --volumes --yes >/dev/null 2>&1 || true
fi

if [[ "${SKIP_BIG:-0}" != 1 ]]; then
    F="$(cluster_file bench-pool20 "$NODES_BIG")"; FILES+=("$F"); P="$(port_of "$F")"
    NAME=bench-pool20
    pooler "$F" none
    if "$DEPLOYER" -f "$F" validate >/dev/null 2>"$WORK/refused.txt"; then
        echo "error: $NODES_BIG nodes × pool 10 should be refused without the pooler" >&2; exit 1
    fi
    log "$NODES_BIG nodes without the pooler: $(head -1 "$WORK/refused.txt")"
    pooler "$F" pgbouncer
    BUDGET="$("$DEPLOYER" -f "$F" validate --json)"
    SERVER_PEAK="$(jq .budget.peak <<<"$BUDGET")"; LIMIT="$(jq .budget.limit <<<"$BUDGET")"
    CLIENT_PEAK="$(jq .budget.clients.peak <<<"$BUDGET")"; SERVER_POOL="$(jq .budget.server_pool <<<"$BUDGET")"
    log "$NODES_BIG nodes with the pooler: apply (server side $SERVER_PEAK of $LIMIT, client side $CLIENT_PEAK)"
    t0=$(date +%s); apply "$F"; log "  applied in $(( $(date +%s) - t0 )) s"
    TOKEN="$(token "$P" bench-pool20@example.com)"
    POOLER="$(docker ps --filter "label=io.deployer.cluster=$NAME" --filter label=io.deployer.role=pooler --format '{{.Names}}')"
    : >"$WORK/samples"
    ( end=$((SECONDS + LOAD_SECONDS + 2))
      while (( SECONDS < end )); do
          pg="$(psql_in "$F" "$NAME-postgres" app "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()" 2>/dev/null || echo -)"
          pools="$(psql_in "$F" "$POOLER" pgbouncer "SHOW POOLS" 2>/dev/null | awk -F'\t' '$1 == "app" { print $3 + $4, $7 + $10 + $11 + $12 + $13 }')"
          echo "$pg ${pools:-- -}" >>"$WORK/samples"
          sleep 0.2
      done ) &
    SAMPLER=$!
    ( for i in $(seq "$JOBS"); do
          curl -s -o /dev/null -w '%{http_code}\n' -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
              -d "{\"kind\":\"noop\",\"args\":{\"bench\":$i}}" "http://127.0.0.1:$P/api/jobs"
      done >"$WORK/enqueued" ) &
    ENQ=$!
    log "  $LOAD_SECONDS s of GET /api/auth/me at -c $BIG_CONCURRENCY (wrk -t2) with $JOBS jobs enqueued meanwhile"
    # Each answer's status, tallied over wrk's threads and printed at the end.
    cat >"$WORK/status.lua" <<'LUA'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end
function done(summary, latency, requests)
    local total = {}
    for _, t in ipairs(threads) do
        for s, n in pairs(t:get("statuses")) do total[s] = (total[s] or 0) + n end
    end
    local parts = {}
    for s, n in pairs(total) do table.insert(parts, s .. " " .. n) end
    table.sort(parts)
    io.write("statuses: " .. table.concat(parts, ", ") .. "\n")
end
LUA
    wrk -t2 -c"$BIG_CONCURRENCY" -d"${LOAD_SECONDS}s" --timeout 10s --latency -s "$WORK/status.lua" \
        -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$P/api/auth/me" >"$WORK/wrk-big.txt"
    wait "$ENQ"; wait "$SAMPLER" || true
    BIG_RPS="$(sed -n 's/^Requests\/sec: *\([0-9.]*\)/\1/p' "$WORK/wrk-big.txt")"
    BIG_NON2XX="$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\)/\1/p' "$WORK/wrk-big.txt")"
    BIG_ERRORS="$(sed -n 's/^ *Socket errors: *\(.*\)/\1/p' "$WORK/wrk-big.txt")"
    BIG_STATUSES="$(sed -n 's/^statuses: //p' "$WORK/wrk-big.txt")"
    BIG_P99="$(awk '$1 == "99%" { print $2 }' "$WORK/wrk-big.txt")"
    # Why a node answered 503, from the nodes' own logs (each line once, counted).
    docker ps -a --filter "label=io.deployer.cluster=$NAME" --filter "label=io.deployer.role=app" --format '{{.Names}}' \
        | while read -r c; do docker logs "$c" 2>&1 | grep -o '"error":"[^"]*"' || true; done | sort | uniq -c | sort -rn | head -3 >"$WORK/why.txt" || true
    ACCEPTED="$(grep -c '^202$' "$WORK/enqueued" || true)"
    deadline=$((SECONDS + 60))
    while :; do
        done_jobs="$(psql_in "$F" "$NAME-postgres" app "SELECT count(*) FROM jobs WHERE kind = 'noop' AND args ? 'bench' AND state = 'completed'")"
        (( done_jobs >= ACCEPTED || SECONDS > deadline )) && break
        sleep 1
    done
    read -r JOB_COUNT MAX_ATTEMPTS DISTINCT NODES_RAN < <(psql_in "$F" "$NAME-postgres" app \
        "SELECT count(*), coalesce(max(attempts), 0), count(DISTINCT args), count(DISTINCT node) FROM jobs WHERE kind = 'noop' AND args ? 'bench'")
    TOO_MANY=0
    for c in $(docker ps -a --filter "label=io.deployer.cluster=$NAME" --format '{{.Names}}'); do
        n="$(docker logs "$c" 2>&1 | grep -ci 'too many clients' || true)"; TOO_MANY=$((TOO_MANY + n))
    done
    PEAK_PG="$(awk '$1 != "-" { if ($1 > m) m = $1 } END { print m + 0 }' "$WORK/samples")"
    PEAK_CL="$(awk '$2 != "-" { if ($2 > m) m = $2 } END { print m + 0 }' "$WORK/samples")"
    PEAK_SV="$(awk '$3 != "-" { if ($3 > m) m = $3 } END { print m + 0 }' "$WORK/samples")"
    SAMPLES="$(wc -l <"$WORK/samples")"
    echo
    echo "## $NODES_BIG nodes × pool 10 through PgBouncer, max_connections = 100 ($LOAD_SECONDS s of GET /api/auth/me, wrk -t2 -c$BIG_CONCURRENCY, $JOBS jobs; $(date -u +%Y-%m-%dT%H:%MZ))"
    echo "| figure | result | budget |"
    echo "|---|---|---|"
    echo "| without the pooler | refused by \`deployer validate\` ($(grep -o 'over by [0-9]*' "$WORK/refused.txt")) | |"
    echo "| GET /api/auth/me | $BIG_RPS req/s, p99 $BIG_P99; answers: $BIG_STATUSES (${BIG_NON2XX:-0} non-2xx); socket errors: ${BIG_ERRORS:-none} | |"
    echo "| peak pg_stat_activity (all clients, $SAMPLES samples) | $PEAK_PG | ≤ server side $SERVER_PEAK (limit $LIMIT) |"
    echo "| peak PgBouncer server connections | $PEAK_SV | ≤ pooler_pool_size $SERVER_POOL |"
    echo "| peak PgBouncer clients | $PEAK_CL | ≤ client side $CLIENT_PEAK |"
    echo "| \"too many clients\" in any container's log | $TOO_MANY | 0 |"
    echo "| jobs | $ACCEPTED accepted, $JOB_COUNT stored, max attempts $MAX_ATTEMPTS, $DISTINCT distinct, run by $NODES_RAN nodes | each exactly once |"
    if [[ -s "$WORK/why.txt" ]]; then echo "nodes' logged errors (count, text):"; sed 's/^/    /' "$WORK/why.txt"; fi
fi
