#!/usr/bin/env bash
# CI hardening stage beyond `npm test` (which already runs the kernel-conformance
# tests in test/conformance/ and a bounded fuzz run): a larger fuzz run of the
# public API, each group in its own child process. test:asan and test:soak have
# their own lines in .ci/run. About 15 s on 2 cores (225,000 cases).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== harden: fuzz, ${MEMSEAL_FUZZ_RUNS:=5000} cases per target"
MEMSEAL_FUZZ_RUNS=$MEMSEAL_FUZZ_RUNS npx mocha --no-config --require tsx/cjs --node-option expose-gc --timeout 600000 test/package/fuzz.test.ts
