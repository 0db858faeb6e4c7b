#!/usr/bin/env bash
# Benchmarks the app node on this machine, side by side in one run (loopback only, bounded):
#   1. GET /api/health of one node vs a bare axum hello-world (target >= 0.8x)
#   2. GET /api/auth/me req/s
#   3. logins/s vs the raw argon2id hash rate on the same cores (target >= 0.9x)
#   4. /api/health p99 while a login storm runs (target < 10 ms)
#   5. jobs completed per second with 1 and 2 nodes (target >= 2,000/s)
#   6. pruning keeps up: jobs enqueued and completed at full speed for PRUNE_SECONDS (120) on a
#      node with a short retention (JOB_RETENTION_HOURS=0.005, 18 s); the table stays bounded
# Needs: wrk, curl, psql and PostgreSQL 15 server binaries (Debian: wrk curl postgresql).
# Usage: scripts/bench-app.sh   (DURATION=8 seconds per wrk run, JOBS=20000 by default)
#        STEPS defaults to "1 2 3 4 5"; step 6 runs only when asked (STEPS="6").
#        STEPS="1 3" scripts/bench-app.sh   runs only those steps; ROUNDS=3 rounds in steps 1 and 3
#        COMPARE_APP=/path/to/other/app scripts/bench-app.sh   also measures another build of the
#        app (say, main's) in the same run for steps 1 and 3, to judge a change side by side.
set -euo pipefail

cd "$(dirname "$0")/.."
DURATION="${DURATION:-8}"
JOBS="${JOBS:-20000}"
TARGET="${CARGO_TARGET_DIR:-target}"
PG_BIN="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}"

for tool in wrk curl psql "$PG_BIN/initdb"; do
    command -v "$tool" >/dev/null || { echo "error: $tool not found" >&2; exit 1; }
done

echo "building (release)..." >&2
cargo build --release -q -p app --bin app --example bare --example argon2_rate
# APP_BIN=/path/to/app measures that binary instead of this tree's build (e.g. step 5 for main).
APP="${APP_BIN:-$TARGET/release/app}"
BARE="$TARGET/release/examples/bare"
ARGON2_RATE="$TARGET/release/examples/argon2_rate"

WORK="$(mktemp -d /tmp/bench-app.XXXXXX)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ -f "$WORK/pg/postmaster.pid" ]]; then
        kill -INT "$(head -1 "$WORK/pg/postmaster.pid")" 2>/dev/null || true
        sleep 1
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- a throwaway PostgreSQL -------------------------------------------------------------------
AS_PG=()
if [[ "$(id -u)" == 0 ]]; then
    id -u postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$WORK"
    AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups)
fi
PG_PORT="$(free_port)"
"${AS_PG[@]}" "$PG_BIN/initdb" -D "$WORK/pg" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
# synchronous_commit=off: the figures measure the app, not this machine's disk flushes.
"${AS_PG[@]}" "$PG_BIN/postgres" -D "$WORK/pg" -k "$WORK" -p "$PG_PORT" \
    -c listen_addresses=127.0.0.1 -c max_connections=200 -c synchronous_commit=off \
    >"$WORK/postgres.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do pg_isready -q -h 127.0.0.1 -p "$PG_PORT" && break; sleep 0.1; done
DB="postgres://postgres@127.0.0.1:$PG_PORT/bench"
psql -q "postgres://postgres@127.0.0.1:$PG_PORT/postgres" -c "CREATE DATABASE bench"
psql_q() { psql -qtA "$DB" -c "$1"; }

export DATABASE_URL="$DB" LOG_FORMAT=json RUST_LOG=warn DATABASE_POOL_SIZE=10
export JWT_SECRET="bench-signing-key-bench-signing-key-0123"
NODE_NAME=bench-migrate "$APP" migrate

start_node() { # name port
    NODE_NAME="$1" PORT="$2" "${APP}" serve >"$WORK/$1.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do
        curl -fsS "http://127.0.0.1:$2/api/ready" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "error: node $1 did not become ready" >&2; cat "$WORK/$1.log" >&2; exit 1
}
stop_node() { # pid
    kill -TERM "$1"; wait "$1" 2>/dev/null || true
}

rps() { sed -n 's/^Requests\/sec: *\([0-9.]*\)/\1/p'; }
p99() { sed -n 's/^ *99% *\([0-9.]*[a-z]*\)$/\1/p'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
int() { printf '%.0f' "$1"; }
ROUNDS="${ROUNDS:-3}"
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
best() { awk -v a="$1" -v b="${2:-0}" 'BEGIN { print (a > b ? a : b) }'; }

P_BARE="$(free_port)"; P1="$(free_port)"; P2="$(free_port)"; P_CMP="$(free_port)"
PORT="$P_BARE" "$BARE" & PIDS+=($!)
start_node bench-app-1 "$P1"
NODE1_PID="${PIDS[-1]}"
COMPARE_APP="${COMPARE_APP:-}"
if [[ -n "$COMPARE_APP" ]]; then
    APP="$COMPARE_APP" start_node bench-compare "$P_CMP"
    COMPARE_PID="${PIDS[-1]}"
fi

# Users to log in as (steps 2-4). Logins rotate over LOGIN_USERS accounts: the login limit
# counts each attempt before its hash (that is what makes it exact), so more than
# LOGIN_MAX_FAILURES logins of one account from one address at the same instant are refused;
# 32 connections over 16 accounts keep about 2 in flight per account, as real users would.
PASSWORD="bench password 1"
LOGIN_USERS=16
for i in $(seq 0 $((LOGIN_USERS - 1))); do
    curl -fsS -o /dev/null -H 'content-type: application/json' "http://127.0.0.1:$P1/api/users" \
        -d "{\"email\":\"bench$i@example.com\",\"full_name\":\"Bench\",\"password\":\"$PASSWORD\",\"password_confirmation\":\"$PASSWORD\"}"
done
TOKEN="$(curl -fsS -H 'content-type: application/json' "http://127.0.0.1:$P1/api/auth/login" \
    -d "{\"email\":\"bench0@example.com\",\"password\":\"$PASSWORD\"}" | sed 's/.*"access_token":"\([^"]*\)".*/\1/')"
cat >"$WORK/login.lua" <<LUA
local n = 0
request = function()
    n = n + 1
    local body = string.format('{"email":"bench%d@example.com","password":"$PASSWORD"}', n % $LOGIN_USERS)
    return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end
-- Every answer must be a 200: a 429 or 503 would be counted as a (fast) login.
done = function(summary, latency, requests)
    local bad = summary.errors.status
    if bad > 0 then io.stderr:write(string.format("error: %d non-200 logins\\n", bad)) end
end
LUA
STEPS="${STEPS:-1 2 3 4 5}"
want() { [[ " $STEPS " == *" $1 "* ]]; }

echo "machine: $(nproc) cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%MZ), wrk -t2 -c32 -d${DURATION}s on loopback"

# 1. health vs bare ------------------------------------------------------------------------------
if want 1; then
# Rounds alternate the servers; each round's ratio pairs runs seconds apart, so background load
# drifting during the run hurts both alike. The median of ROUNDS ratios is the figure.
get_rps() { wrk -t2 -c32 -d"${DURATION}s" "$1" | rps; }
wrk -t2 -c32 -d2s "http://127.0.0.1:$P_BARE/" >/dev/null   # warm-up
BARES=""; HEALTHS=""; H_RATIOS=""; CMPS=""; CMP_H_RATIOS=""
for round in $(seq "$ROUNDS"); do
    BARE_RPS="$(get_rps "http://127.0.0.1:$P_BARE/")"
    HEALTH_RPS="$(get_rps "http://127.0.0.1:$P1/api/health")"
    BARES+=" $BARE_RPS"; HEALTHS+=" $HEALTH_RPS"; H_RATIOS+=" $(ratio "$HEALTH_RPS" "$BARE_RPS")"
    line="round $round: bare $(int "$BARE_RPS"), /api/health $(int "$HEALTH_RPS") req/s"
    if [[ -n "$COMPARE_APP" ]]; then
        CMP_RPS="$(get_rps "http://127.0.0.1:$P_CMP/api/health")"
        CMPS+=" $CMP_RPS"; CMP_H_RATIOS+=" $(ratio "$CMP_RPS" "$BARE_RPS")"
        line+=", compare build $(int "$CMP_RPS")"
    fi
    echo "  $line"
done
echo "bare axum hello-world:     median $(int "$(median <<<"$BARES")") req/s"
echo "GET /api/health (1 node):  median $(int "$(median <<<"$HEALTHS")") req/s = $(median <<<"$H_RATIOS")x bare (median of $ROUNDS rounds; target >= 0.8x)"
if [[ -n "$COMPARE_APP" ]]; then
    echo "  compare build:           median $(int "$(median <<<"$CMPS")") req/s = $(median <<<"$CMP_H_RATIOS")x bare"
fi
fi

# 2. /api/auth/me ------------------------------------------------------------------------------
if want 2; then
me_rps() { wrk -t2 -c32 -d"${DURATION}s" -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$1/api/auth/me" | rps; }
MES=""; CMP_MES=""; ME_RATIOS=""
for round in $(seq "$ROUNDS"); do
    ME_RPS="$(me_rps "$P1")"; MES+=" $ME_RPS"
    line="round $round: /api/auth/me $(int "$ME_RPS") req/s"
    if [[ -n "$COMPARE_APP" ]]; then
        CMP_ME="$(me_rps "$P_CMP")"; CMP_MES+=" $CMP_ME"; ME_RATIOS+=" $(ratio "$ME_RPS" "$CMP_ME")"
        line+=", compare build $(int "$CMP_ME")"
    fi
    echo "  $line"
done
echo "GET /api/auth/me:          median $(int "$(median <<<"$MES")") req/s"
if [[ -n "$COMPARE_APP" ]]; then
    echo "  compare build:           median $(int "$(median <<<"$CMP_MES")") req/s; this build / compare = $(median <<<"$ME_RATIOS")x (median of $ROUNDS rounds)"
fi
fi

# 3. logins vs raw argon2 ----------------------------------------------------------------------
if want 3; then
# The raw rate is the faster of argon2's two ways of running (fresh or reused working memory,
# see app/examples/argon2_rate.rs), each given the whole machine for DURATION/2 seconds. The
# hash rate of this machine drifts with its neighbours' memory traffic, so raw and login runs
# alternate for ROUNDS rounds and each round's login rate is divided by that round's raw rate;
# the median of those ratios is the figure.
login_rps() { wrk -t2 -c32 -d"${DURATION}s" -s "$WORK/login.lua" "http://127.0.0.1:$1/api/auth/login" | rps; }
ALLOCS=""; REUSES=""; LOGINS=""; RATIOS=""; CMP_LOGINS=""; CMP_RATIOS=""
for round in $(seq "$ROUNDS"); do
    RAW="$(BENCH_SECONDS="$((DURATION / 2))" "$ARGON2_RATE")"
    ALLOC="$(awk '$1 == "alloc" { print $2 }' <<<"$RAW")"
    REUSE="$(awk '$1 == "reuse" { print $2 }' <<<"$RAW")"
    RAW_RATE="$(best "$ALLOC" "$REUSE")"
    LOGIN="$(login_rps "$P1")"
    ALLOCS+=" $ALLOC"; REUSES+=" $REUSE"; LOGINS+=" $LOGIN"; RATIOS+=" $(ratio "$LOGIN" "$RAW_RATE")"
    line="round $round: raw $ALLOC fresh / $REUSE reused hashes/s, logins $LOGIN/s"
    if [[ -n "$COMPARE_APP" ]]; then
        CMP_LOGIN="$(login_rps "$P_CMP")"
        CMP_LOGINS+=" $CMP_LOGIN"; CMP_RATIOS+=" $(ratio "$CMP_LOGIN" "$RAW_RATE")"
        line+=", compare build $CMP_LOGIN/s"
    fi
    echo "  $line"
done
echo "raw argon2id (m=19456,t=2,p=1) on $(nproc) threads: median $(median <<<"$REUSES") hashes/s with reused memory, $(median <<<"$ALLOCS") with fresh memory per hash"
echo "POST /api/auth/login:      median $(median <<<"$LOGINS") logins/s = $(median <<<"$RATIOS")x raw (median of $ROUNDS rounds; target >= 0.9x)"
if [[ -n "$COMPARE_APP" ]]; then
    echo "  compare build:           median $(median <<<"$CMP_LOGINS") logins/s = $(median <<<"$CMP_RATIOS")x raw"
fi
fi
# The compare build is done with: it must not take jobs in step 5.
if [[ -n "$COMPARE_APP" ]]; then stop_node "$COMPARE_PID"; fi

# 4. health p99 under a login storm ------------------------------------------------------------
if want 4; then
wrk -t1 -c32 -d"$((DURATION + 2))s" -s "$WORK/login.lua" "http://127.0.0.1:$P1/api/auth/login" >/dev/null &
STORM=$!
sleep 1
HEALTH_P99="$(wrk -t1 -c4 -d"${DURATION}s" --latency "http://127.0.0.1:$P1/api/health" | p99)"
wait "$STORM" || true
echo "/api/health p99 during a login storm: $HEALTH_P99 (target < 10ms)"
fi

# 5. jobs per second ---------------------------------------------------------------------------
if want 5; then
jobs_run() { # label
    psql_q "DELETE FROM jobs" >/dev/null
    local start end done=0
    start="$(date +%s.%N)"
    psql_q "INSERT INTO jobs (kind, args) SELECT 'noop', '{}' FROM generate_series(1, $JOBS)" >/dev/null
    for _ in $(seq 600); do
        done="$(psql_q "SELECT count(*) FROM jobs WHERE state = 'completed'")"
        [[ "$done" -ge "$JOBS" ]] && break
        sleep 0.05
    done
    end="$(date +%s.%N)"
    local rate
    rate="$(awk -v n="$done" -v s="$start" -v e="$end" 'BEGIN { printf "%.0f", n / (e - s) }')"
    echo "jobs ($1): $done noop jobs in $(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }') s = $rate jobs/s (target >= 2000/s)"
    psql_q "SELECT node, count(*) FROM jobs GROUP BY node ORDER BY node" | sed 's/^/    /'
}
jobs_run "1 node, JOB_WORKERS=4"
start_node bench-app-2 "$P2"
jobs_run "2 nodes, JOB_WORKERS=4 each"
stop_node "$NODE1_PID"
fi

# 6. pruning keeps up ----------------------------------------------------------------------------
if [[ " $STEPS " == *" 6 "* ]]; then
PRUNE_SECONDS="${PRUNE_SECONDS:-120}"
P3="$(free_port)"
# Only this node runs jobs (and prunes) from here on.
for pid in "${PIDS[@]:2}"; do kill -TERM "$pid" 2>/dev/null || true; done
psql_q "DELETE FROM jobs" >/dev/null
JOB_RETENTION_HOURS=0.005 start_node bench-prune "$P3"
echo "pruning: enqueue and complete noop jobs at full speed for ${PRUNE_SECONDS}s, retention 18 s (one node, JOB_WORKERS=4)"
start="$(date +%s)"; next_sample=$((start + 10)); enqueued=0; max_rows=0
while (( $(date +%s) - start < PRUNE_SECONDS )); do
    # Keep about 5,000 runnable jobs queued: the workers never wait for work.
    waiting="$(psql_q "SELECT count(*) FROM jobs WHERE state = 'available'")"
    if (( waiting < 5000 )); then
        psql_q "INSERT INTO jobs (kind, args) SELECT 'noop', '{}' FROM generate_series(1, 5000)" >/dev/null
        enqueued=$((enqueued + 5000))
    else
        sleep 0.1
    fi
    if (( $(date +%s) >= next_sample )); then
        read -r rows finished <<<"$(psql_q "SELECT count(*), count(*) FILTER (WHERE state = 'completed') FROM jobs" | tr '|' ' ')"
        (( rows > max_rows )) && max_rows="$rows"
        echo "  t=$(( $(date +%s) - start ))s: $rows rows ($finished completed), $enqueued enqueued so far"
        next_sample=$((next_sample + 10))
    fi
done
elapsed=$(( $(date +%s) - start ))
rows="$(psql_q "SELECT count(*) FROM jobs")"
completed_rate="$(awk -v e="$enqueued" -v r="$rows" -v s="$elapsed" 'BEGIN { printf "%.0f", (e - r) / s }')"
echo "pruning: $enqueued jobs in ${elapsed}s (~$(awk -v e="$enqueued" -v s="$elapsed" 'BEGIN { printf "%.0f", e / s }')/s enqueued), $rows rows left, at most $max_rows sampled; pruned ~$completed_rate/s on average"
echo "  bounded if the sampled rows stop growing: about (completion rate x 18 s retention) + the 5,000 queued + one maintenance period"
fi
