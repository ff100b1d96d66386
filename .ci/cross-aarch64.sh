#!/usr/bin/env bash
# aarch64 checks:
#  1. cross-compile the addon (scripts/cross-aarch64.sh: Debian's cross toolchain,
#     binding.gyp as is with -Werror, npm's node-gyp --arch=arm64) and check it
#     is an AArch64 shared object importing only N-API, libuv and the C/C++
#     runtime, within Node's own glibc/libstdc++ floor;
#  2. run it under qemu-aarch64 (user mode) with the registry's linux-arm64
#     Node: load through the package's loader and exercise the public API
#     (.ci/aarch64-smoke.js); with MEMSEAL_QEMU_SUITE=1 also the whole mocha
#     suite, less what qemu-user cannot emulate;
#  3. check native/kernel.h's constants and syscall numbers against the x86_64
#     and aarch64 uapi headers (test/kernel/kernel-abi.test.ts).
#
# Installs g++-aarch64-linux-gnu and qemu-user with apt-get if missing (sudo
# when not root).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
command -v aarch64-linux-gnu-g++ >/dev/null || missing+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  command -v apt-get >/dev/null || { echo "cross-aarch64: ${missing[*]} missing and no apt-get to install them" >&2; exit 1; }
  as_root apt-get update -q >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "== $(aarch64-linux-gnu-g++ --version | head -1); $(qemu-aarch64 --version | head -1)"

echo "== 1. cross-compile"
bash scripts/cross-aarch64.sh
addon=prebuilds/linux-arm64/memseal.napi.glibc.node
machine=$(aarch64-linux-gnu-readelf -h "$addon" | awk -F: '/Machine:/ {gsub(/^ +/, "", $2); print $2}')
[ "$machine" = "AArch64" ] || { echo "cross-aarch64: built for '$machine', not AArch64" >&2; exit 1; }
# Every undefined symbol must come from N-API, libuv (exported by node; poll.cc
# polls with uv_poll) or the C/C++ runtime: nothing x86-only crept in.
unexpected=$(aarch64-linux-gnu-nm -D --undefined-only "$addon" | awk '{print $2}' |
  grep -Ev '^(napi_|node_api_|uv_|_Z|__cxa_|__gxx_|_Unwind|__gmon_start__|_ITM_|__stack_chk)' |
  grep -Ev '@(GLIBC|GLIBCXX|CXXABI|GCC)_' || true)
[ -z "$unexpected" ] || { echo "cross-aarch64: unexpected undefined symbols: $unexpected" >&2; exit 1; }
echo "   $(aarch64-linux-gnu-readelf -h "$addon" | awk -F: '/Class|Type|Machine/ {gsub(/^ +/, "", $2); printf "%s  ", $2}')"

echo "== 2. run it under qemu-aarch64"
# A world-readable scratch dir (tests drop privileges with setpriv): the arm64
# Node, and the package as npm installs it (dist/ + prebuilds/linux-arm64).
scratch=$(mktemp -d)
# prebuilds/ is what npm pack ships; its prepack makes a fresh one.
trap 'rm -rf "$scratch" prebuilds/linux-arm64; rmdir prebuilds 2>/dev/null || true' EXIT
chmod 755 "$scratch"
mkdir -p "$scratch/bin" "$scratch/pkg/prebuilds"
cp "$(bash .ci/fetch-node.sh "$(node -p 'process.versions.node.split(".")[0]')" arm64)/bin/node" "$scratch/bin/node"
cp -r package.json dist "$scratch/pkg/" && cp -r prebuilds/linux-arm64 "$scratch/pkg/prebuilds/"
ln -s "$ROOT/node_modules" "$scratch/pkg/node_modules"
qemu=(qemu-aarch64 -L /usr/aarch64-linux-gnu "$scratch/bin/node")
echo "   $("${qemu[@]}" .ci/addon-probe.js "$scratch/pkg")"
"${qemu[@]}" .ci/aarch64-smoke.js "$scratch/pkg"

# On request (MEMSEAL_QEMU_SUITE=1), the whole mocha suite on aarch64. Not by
# default: it takes minutes, and tests that reach what qemu-user emulates
# differently from a kernel fail there without any fault of memseal's, so every
# such new test would need adding to the list below.
# MEMSEAL_PREBUILD points the loader (node-gyp-build) at a dir with both
# prebuilds, so aarch64 processes load the arm64 addon and x86_64 ones (npx, a
# native node) theirs; .ci/qemu-hook.js starts the tests' child Node processes
# under qemu too; tsx's esbuild is the native x86_64 binary. Left out:
#  - MSG_CTRUNC: qemu sizes the recvmsg control buffer itself, so the kernel never truncates;
#  - the process's comm is 'qemu-aarch64';
#  - madvise() is a no-op in qemu-user (MADV_DONTNEED does not zero, MADV_DONTDUMP sets no flag);
#  - seccomp filters (deny-syscall.pl) would filter qemu's own x86_64 syscalls;
#  - examples (the examples test starts them through npx/tsx with the native node).
# mseal and memfd_secret skip (features: qemu 7.2 answers ENOSYS to syscalls it does not know).
if [ "${MEMSEAL_QEMU_SUITE:-0}" = 1 ]; then
  echo "== 2b. the test suite under qemu-aarch64"
  mkdir -p "$scratch/both/prebuilds/linux-x64" && cp -r prebuilds/linux-arm64 "$scratch/both/prebuilds/"
  cp build/Release/memseal.node "$scratch/both/prebuilds/linux-x64/memseal.napi.glibc.node"
  esbuild=$(find node_modules -path "*/@esbuild/linux-$(node -p process.arch)/bin/esbuild" | head -1)
  gaps='CTRUNC|refuses more descriptors than maxFds|reports the process, inspectable, without errors|MADV_DONTNEED|undumpable'
  gaps+='|where mseal\(2\) is missing|when mseal\(2\) itself fails|where memfd_secret is unavailable|RLIMIT_MEMLOCK|^examples '
  MEMSEAL_PREBUILD="$scratch/both" MEMSEAL_QEMU=$(command -v qemu-aarch64) ESBUILD_BINARY_PATH="$ROOT/$esbuild" \
    NODE_OPTIONS="--require $ROOT/.ci/qemu-hook.js" "${qemu[@]}" node_modules/mocha/bin/mocha.js 'test/**/*.test.ts' --timeout 60000 \
    --invert --grep "$gaps" >"$scratch/mocha.log" 2>&1 ||
    { cat "$scratch/mocha.log"; echo "cross-aarch64: the suite failed under qemu-aarch64"; exit 1; }
  grep -E '^  [0-9]+ (passing|pending|failing)' "$scratch/mocha.log" | sed 's/^ */   aarch64: /'
fi

echo "== 3. kernel.h against the uapi headers"
# Linux >= 6.10 headers from Debian's linux-libc-dev when they can be had
# (.ci/uapi-headers.sh), else the installed ones (the cross toolchain pulls in
# linux-libc-dev-arm64-cross).
if uapi=$(bash .ci/uapi-headers.sh); then
  echo "   uapi headers: $uapi"
  export MEMSEAL_UAPI_ROOT=$uapi MEMSEAL_UAPI_REQUIRED=1
else
  echo "   uapi headers: the machine's own (names newer than they are get skipped, with the reason)"
fi
npx --no-install mocha --no-config --require tsx/cjs test/kernel/kernel-abi.test.ts
