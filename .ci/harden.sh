#!/usr/bin/env bash
# CI hardening stage, run by .ci/run after `npm test` (which already covers the
# kernel-conformance tests, the old-kernel seccomp emulation and a bounded fuzz
# run). Adds: a larger fuzz run, the leak soak, and the whole suite under
# AddressSanitizer + UndefinedBehaviorSanitizer. About 3-4 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== harden: fuzz, ${MEMSEAL_FUZZ_RUNS:=400} cases per target"
MEMSEAL_FUZZ_RUNS=$MEMSEAL_FUZZ_RUNS npx mocha --no-config --require tsx/cjs --node-option expose-gc --timeout 600000 test/fuzz.test.ts

echo "== harden: leak soak"
npm run test:soak

echo "== harden: sanitizers"
npm run test:asan
