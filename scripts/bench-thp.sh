#!/usr/bin/env bash
# The handoff benchmark under shmem transparent huge pages. OPT-IN, as root:
# it changes a machine-wide setting for a few minutes, which `npm run bench`
# never does.
#
#   sudo scripts/bench-thp.sh [policy ...]      default policies: within_size advise
#
# For each policy it writes it to /sys/kernel/mm/transparent_hugepage/shmem_enabled
# (and sets the PMD-size file hugepages-<size>kB/shmem_enabled to `inherit`
# where the kernel has per-size files), runs `node bench/run.js --handoff-only`
# for 16 and 64 MiB, and restores both original values on any exit (a trap:
# also on failure or Ctrl-C). The results go to docs/bench-thp.json, which
# `npm run bench` folds into docs/bench.md.
set -euo pipefail
cd "$(dirname "$0")/.."

THP=/sys/kernel/mm/transparent_hugepage
TOP="$THP/shmem_enabled"
if [ "$(id -u)" != 0 ]; then echo "bench-thp: must run as root (it writes $TOP)" >&2; exit 1; fi
if [ ! -w "$TOP" ]; then echo "bench-thp: $TOP is missing or read-only: no shmem THP here" >&2; exit 1; fi

selected() { sed -n 's/.*\[\(.*\)\].*/\1/p' "$1"; }
PMD_KB=$(( $(cat "$THP/hpage_pmd_size") / 1024 ))
PER_SIZE="$THP/hugepages-${PMD_KB}kB/shmem_enabled"
ORIG_TOP=$(selected "$TOP")
ORIG_PMD=""
if [ -w "$PER_SIZE" ]; then ORIG_PMD=$(selected "$PER_SIZE"); fi

restore() {
  echo "$ORIG_TOP" > "$TOP"
  if [ -n "$ORIG_PMD" ]; then echo "$ORIG_PMD" > "$PER_SIZE"; fi
  echo "bench-thp: restored shmem_enabled = $(selected "$TOP")${ORIG_PMD:+, ${PMD_KB}kB = $(selected "$PER_SIZE")}" >&2
}
trap restore EXIT INT TERM

POLICIES=("$@")
if [ ${#POLICIES[@]} -eq 0 ]; then POLICIES=(within_size advise); fi
OUT=$(mktemp -d)
for policy in "${POLICIES[@]}"; do
  echo "$policy" > "$TOP"
  if [ -n "$ORIG_PMD" ]; then echo inherit > "$PER_SIZE"; fi
  echo "== shmem_enabled = $(selected "$TOP")" >&2
  node bench/run.js --handoff-only --sizes "${BENCH_THP_SIZES:-16,64}" --out "$OUT/$policy"
done
restore
trap - EXIT INT TERM

node - "$OUT" "$ORIG_TOP" "${POLICIES[@]}" <<'JS'
const fs = require('node:fs');
const [out, original, ...policies] = process.argv.slice(2);
const runs = policies.map((policy) => ({ policy, ...JSON.parse(fs.readFileSync(`${out}/${policy}/handoff.json`, 'utf8')) }));
const doc = { date: new Date().toISOString().slice(0, 10), original, runs };
fs.writeFileSync('docs/bench-thp.json', `${JSON.stringify(doc, null, 2)}\n`);
console.error('bench-thp: wrote docs/bench-thp.json; `npm run bench` puts it into docs/bench.md');
JS
rm -rf "$OUT"
