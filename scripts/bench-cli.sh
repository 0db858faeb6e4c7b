#!/usr/bin/env bash
# Benchmark: `deployer validate` and `deployer render` on the example cluster.toml
# (target: well under 50 ms per run). Release build, hyperfine, warm cache.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine >/dev/null; }
cargo build -q --release -p deployer
bin="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release/deployer"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp cluster.toml "$work/"
cp -r templates "$work/"
echo "machine: $(nproc) cores, $(date -u +%Y-%m-%d)"
hyperfine --warmup 5 --runs 100 -N \
  "$bin -f $work/cluster.toml validate" \
  "$bin -f $work/cluster.toml render --out $work/generated" \
  "$bin -f $work/cluster.toml render --check --out $work/generated" \
  --export-markdown "$work/result.md"
cat "$work/result.md"
