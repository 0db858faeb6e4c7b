#!/usr/bin/env bash
# `deployer logs` on a running cluster, against a person's way to the same lines: `docker logs`
# of each of its containers, one after the other (what `deployer logs` replaces). The balancer's
# access log is filled first with FILL seconds of wrk (its requests carry an X-Request-Id, which
# the default sampled access log always keeps), so `--tail 100` has lines to cut.
# Release build, hyperfine, warm cache. Usage: scripts/bench-logs.sh [cluster.toml]
# (applied beforehand; RUNS=30 FILL=3 DEPLOYER=target/release/deployer).
set -euo pipefail
cd "$(dirname "$0")/.."
file=${1:-cluster.toml}
deployer=${DEPLOYER:-${CARGO_TARGET_DIR:-target}/release/deployer}
runs=${RUNS:-30}
[ -x "$deployer" ] || cargo build --release -q -p deployer
for tool in hyperfine wrk; do
    command -v $tool >/dev/null || { apt-get update -qq && apt-get install -y -qq $tool >/dev/null; }
done
name=$(sed -n 's/^name = "\([a-z0-9-]*\)".*/\1/p' "$file" | head -1)
containers=$(docker ps --filter "label=io.deployer.cluster=$name" --format '{{.Names}}' | sort | tr '\n' ' ')
[ -n "$containers" ] || { echo "no running container of cluster $name: run deployer apply first" >&2; exit 1; }
lb=$(docker port "$name-lb" 8080/tcp | head -1)
echo "cluster $name: $containers; balancer $lb; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
wrk -t2 -c8 -d"${FILL:-3}s" -H "X-Request-Id: bench-logs-fill" "http://$lb/api/health" | grep -E "requests in"
sleep 1.5 # the balancer's buffered access log is flushed every second
echo "lines kept by the engine: $("$deployer" -f "$file" logs | wc -l) in all; --tail 100 gives $("$deployer" -f "$file" logs --tail 100 | wc -l)"
each="for c in $containers; do docker logs --tail 100 -t \$c; done"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
hyperfine --warmup 3 --runs "$runs" -N --export-json "$out/tail.json" \
    -n "deployer logs --tail 100" "$deployer -f $file logs --tail 100" \
    -n "deployer logs --tail 100 --json" "$deployer -f $file logs --tail 100 --json" \
    -n "docker logs --tail 100, each container" "sh -c '$each'"
hyperfine --warmup 1 --runs "$(( runs < 10 ? runs : 10 ))" -N --export-json "$out/all.json" \
    -n "deployer logs (every line)" "$deployer -f $file logs"
python3 - "$out/tail.json" "$out/all.json" <<'PY'
import json, statistics, sys
for f in sys.argv[1:]:
    for r in json.load(open(f))["results"]:
        t = sorted(r["times"])
        print(f"median {statistics.median(t) * 1000:7.1f} ms  (min {t[0] * 1000:.1f}, max {t[-1] * 1000:.1f}, {len(t)} runs)  {r['command']}")
PY
