#!/usr/bin/env bash
# Figures for "Backup and restore" (issue 13): `deployer backup` and `deployer restore` of a
# database of a few hundred MB, on the single engine and (SWARM=1) on the swarm lab.
#   1. a 1-node cluster; ROWS generated rows (SQL generate_series: ~200 bytes of text each, md5
#      hex, which compresses about as real text does) in a table beside the app's, plus users;
#   2. `deployer backup`: its seconds, the dump's size, MB/s of database and of dump; and, as the
#      reference, pg_dump alone inside the PostgreSQL container to /dev/null;
#   3. `deployer restore --yes` of that dump into the same (non-empty) database: its seconds in
#      all (nodes stopped, restore, nodes back health-gated) and the restore transaction's own,
#      MB/s; the row count checked afterwards.
# The cluster (bench-bk / bench-bk-sw) is destroyed with its volume on exit, even on failure.
#
# Usage: scripts/bench-backup.sh        ROWS=1500000 SWARM=0 DEPLOYER=/path/to/deployer
set -euo pipefail

cd "$(dirname "$0")/.."
REPO="$PWD"
ROWS="${ROWS:-1500000}"
SWARM="${SWARM:-0}"
LAB_PORT=4007

if [[ -z "${DEPLOYER:-}" ]]; then
    cargo build -q --release -p deployer
    DEPLOYER="${CARGO_TARGET_DIR:-$REPO/target}/release/deployer"
fi

W="$(mktemp -d)"
cleanup() {
    [[ -f "$W/cluster.toml" ]] && "$DEPLOYER" destroy -f "$W/cluster.toml" --volumes --yes >/dev/null 2>&1 || true
    rm -rf "$W"
}
trap cleanup EXIT

ln -s "$REPO/templates" "$W/templates"
if [[ "$SWARM" == 1 ]]; then
    lab() { (eval "$(scripts/swarm-lab env)" && eval "echo \"\$$1\""); }
    NAME=bench-bk-sw
    DOCKER=(docker -H "$(lab DOCKER_HOST)")
    sed -e "s/^name = \"demo\"/name = \"$NAME\"\ntarget = \"swarm\"/" \
        -e "s/^port = 4000                 # published/port = $LAB_PORT                 # published/" \
        -e '/^bind = /d' -e 's/^nodes = 3 /nodes = 1 /' \
        -e 's/^image = "nginx:1.22"/image = "nginx:1.30"/' cluster.toml >"$W/cluster.toml"
    cat >>"$W/cluster.toml" <<EOF

[swarm]
manager = "$(lab DOCKER_HOST)"
registry = "$(lab SWARM_LAB_REGISTRY)"
database_host = "$(lab SWARM_LAB_MANAGER)"
balancer_host = "$(lab SWARM_LAB_BALANCER_HOST)"
EOF
    docker tag deployer-app:latest "$(lab SWARM_LAB_REGISTRY)/deployer-app:latest"
    docker push -q "$(lab SWARM_LAB_REGISTRY)/deployer-app:latest" >/dev/null
else
    NAME=bench-bk
    DOCKER=(docker)
    PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    sed -e "s/^name = \"demo\"/name = \"$NAME\"/" \
        -e "s/^port = 4000                 # published/port = $PORT                 # published/" \
        -e 's/^nodes = 3 /nodes = 1 /' cluster.toml >"$W/cluster.toml"
fi

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
mbps() { awk -v m="$1" -v s="$2" 'BEGIN { printf "%.1f", m / s }'; }
run() { "$DEPLOYER" "$@" -f "$W/cluster.toml" >"$W/out.log" 2>&1 || { cat "$W/out.log" >&2; exit 1; }; }

# SQL in the cluster's database, for the generated rows only (psql in the PostgreSQL container,
# which on the lab runs on the manager: database_host), the password from its secret file.
psql_in() {
    local c
    c="$("${DOCKER[@]}" ps -q --filter "name=^$NAME-postgres" | head -1)"
    "${DOCKER[@]}" exec -i "$c" sh -c 'PGPASSWORD="$(cat /run/secrets/db_password)" psql -h 127.0.0.1 -U app -d app -XAtq -v ON_ERROR_STOP=1'
}

echo "== $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC'), target $([[ $SWARM == 1 ]] && echo swarm || echo docker), ROWS=$ROWS"
t="$(now)"; run apply --yes; echo "apply: $(since "$t") s"
t="$(now)"
psql_in <<SQL
CREATE TABLE bench_rows (id bigint PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now(), payload text NOT NULL);
INSERT INTO bench_rows (id, payload)
  SELECT g, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) || md5((g * 31)::text) || md5((g * 97)::text) || md5((g * 101)::text)
  FROM generate_series(1, $ROWS) g;
ANALYZE bench_rows;
SQL
DB_MB="$(echo "SELECT round(pg_database_size('app') / 1e6, 1)" | psql_in)"
echo "generated $ROWS rows in $(since "$t") s: database $DB_MB MB"

t="$(now)"; run backup --out "$W/bench.dump"; BK="$(since "$t")"
DUMP_MB="$(awk -v b="$(stat -c %s "$W/bench.dump")" 'BEGIN { printf "%.1f", b / 1e6 }')"
echo "backup:  $BK s, dump $DUMP_MB MB; $(mbps "$DB_MB" "$BK") MB/s of database, $(mbps "$DUMP_MB" "$BK") MB/s of dump"
sed -n 's/^/  | /p' "$W/out.log"

# The reference: pg_dump alone, in the PostgreSQL container, to /dev/null (no network, no
# streaming, no file): what the backup costs beyond pg_dump's own work (reading, compressing).
c="$("${DOCKER[@]}" ps -q --filter "name=^$NAME-postgres" | head -1)"
t="$(now)"
"${DOCKER[@]}" exec "$c" sh -c 'PGPASSWORD="$(cat /run/secrets/db_password)" pg_dump -h 127.0.0.1 -U app -d app --format=custom >/dev/null'
REF="$(since "$t")"
echo "reference: pg_dump -Fc to /dev/null inside the PostgreSQL container: $REF s ($(mbps "$DB_MB" "$REF") MB/s of database)"

t="$(now)"; run restore "$W/bench.dump" --yes; RS="$(since "$t")"
TX="$(sed -n 's/.* in \([0-9.]*\)s (.*MB\/s); the nodes.*/\1/p' "$W/out.log")"
echo "restore: $RS s in all (nodes stopped, restored, back healthy); the restore itself $TX s: $(mbps "$DB_MB" "$RS") MB/s of database in all, $(mbps "$DUMP_MB" "$TX") MB/s of dump in the restore"
grep -E 'restored|bench_rows|users' "$W/out.log" | sed 's/^/  | /'
N="$(echo "SELECT count(*) FROM bench_rows" | psql_in)"
[[ "$N" == "$ROWS" ]] || { echo "after the restore bench_rows has $N rows, not $ROWS" >&2; exit 1; }
echo "checked: bench_rows has $N rows after the restore"
