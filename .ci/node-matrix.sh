#!/usr/bin/env bash
# The full test suite (`npm test`: typecheck + mocha) under every maintained Node
# major, against the ONE addon binary `npm ci` built: it uses only N-API 8, which
# is ABI-stable, so nothing is rebuilt. Each run first prints the addon file the
# process actually mapped and its hash; the script fails if they differ.
#
# Node binaries come from the npm registry (.ci/fetch-node.sh), cached outside
# the clone. The machine's own Node major is skipped: .ci/run has just
# run `npm test` with it (set NODE_MATRIX_ALL=1 to run it here too).
#
#   .ci/node-matrix.sh [major ...]        default: 20 22 24 26
set -euo pipefail
cd "$(dirname "$0")/.."

majors=("$@")
[ ${#majors[@]} -gt 0 ] || majors=(20 22 24 26)
system_major=$(node -p 'process.versions.node.split(".")[0]')

summary=()
hashes=()
status=0
probe=$(node .ci/addon-probe.js)
echo "== system node: $probe"
hashes+=("${probe##* }")
for major in "${majors[@]}"; do
  if [ "$major" = "$system_major" ] && [ -z "${NODE_MATRIX_ALL:-}" ]; then
    summary+=("node $(node --version): ran as 'npm test' in .ci/run")
    continue
  fi
  dir=$(bash .ci/fetch-node.sh "$major")
  probe=$(PATH="$dir/bin:$PATH" node .ci/addon-probe.js)
  echo "== node $major: $probe"
  hashes+=("${probe##* }")
  log=$(mktemp)
  start=$SECONDS
  # npm, tsc, mocha and every child the tests spawn (process.execPath) run under
  # this Node: it comes first on PATH and npm is a node script itself.
  if PATH="$dir/bin:$PATH" npm test >"$log" 2>&1; then result=ok; else result=FAILED; status=1; fi
  passing=$(grep -Eo '[0-9]+ passing' "$log" | tail -1 || true)
  failing=$(grep -Eo '[0-9]+ failing' "$log" | tail -1 || true)
  pending=$(grep -Eo '[0-9]+ pending' "$log" | tail -1 || true)
  ran=$(grep -Eo '^v[0-9.]+' <<<"$probe")
  if [ "$result" != ok ]; then sed -n "/ failing$/,\$p" "$log" | head -n 200; fi
  summary+=("node $ran: $result, ${passing:-0 passing}${failing:+, $failing}${pending:+, $pending} ($((SECONDS - start)) s)")
  rm -f "$log"
done

echo "== node matrix"
printf '   %s\n' "${summary[@]}"
if [ "$(printf '%s\n' "${hashes[@]}" | sort -u | wc -l)" -ne 1 ]; then
  echo "node matrix: the Node versions loaded different addon files: ${hashes[*]}"
  status=1
else
  echo "   one addon binary for all: ${hashes[0]}"
fi
exit $status
