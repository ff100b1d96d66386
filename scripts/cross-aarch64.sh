#!/usr/bin/env bash
# Cross-compiles the addon for linux-arm64 with Debian's cross toolchain
# (g++-aarch64-linux-gnu) through the package's own build: binding.gyp as is
# (-Wall -Wextra -Werror), npm's node-gyp with --arch=arm64, Node's headers
# (N-API headers do not depend on the CPU). Writes
# prebuilds/linux-arm64/memseal.napi.glibc.node through scripts/prebuilt.js
# (stripped, within Node's own glibc/libstdc++ floor).
#
#   scripts/cross-aarch64.sh [--if-available]
#     --if-available: without the cross compiler, say so and exit 0 (prepack)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

if ! command -v aarch64-linux-gnu-g++ >/dev/null; then
  if [ "${1:-}" = --if-available ]; then
    echo "prebuilt: no aarch64-linux-gnu-g++, so no linux-arm64 prebuilt (arm64 users build from source)" >&2
    exit 0
  fi
  echo "cross-aarch64: no aarch64-linux-gnu-g++ (Debian: apt-get install g++-aarch64-linux-gnu)" >&2
  exit 1
fi

# Node's headers: npm's nodedir if set, else the ones beside this node binary,
# else those in the registry's node-linux-<arch> package for this major.
nodedir=$(npm config get nodedir 2>/dev/null || true)
[ -f "$nodedir/include/node/node_api.h" ] || nodedir=$(node -p 'require("path").resolve(process.execPath, "../..")')
[ -f "$nodedir/include/node/node_api.h" ] || nodedir=$(bash .ci/fetch-node.sh "$(node -p 'process.versions.node.split(".")[0]')")

# Build in a copy so the native build/ stays as it is.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r package.json binding.gyp native "$work/"
ln -s "$ROOT/node_modules" "$work/node_modules"
(
  cd "$work"
  export CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ LINK=aarch64-linux-gnu-g++ AR=aarch64-linux-gnu-ar
  npm run build:native --silent -- --arch=arm64 --nodedir="$nodedir" >build.log 2>&1 || { cat build.log >&2; exit 1; }
)
node scripts/prebuilt.js --from "$work/build/Release/memseal.node" --arch arm64 --tool-prefix aarch64-linux-gnu-
