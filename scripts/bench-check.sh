#!/bin/sh
# Before publishing benchmark figures: runs the standalone command printed beside each headline ratio in
# docs/bench.json (or DIR/bench.json: scripts/bench-check.sh --out DIR) and says whether it lands within
# ±25 % of the published one on this machine. Exit status 1 if any does not. Takes a few minutes; run it
# on an idle machine, the same one the figures came from.
set -e
cd "$(dirname "$0")/.."
npm run --silent build:ts
exec node bench/run.js --check "$@"
