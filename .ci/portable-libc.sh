#!/usr/bin/env bash
# Portability: the addon must build against musl as well as glibc (README,
# docs/portability.md). No musl C++ toolchain installs on Debian/Ubuntu
# (musl-tools gives musl-gcc, C only), so each native/*.cc is compiled with
# g++ -fsyntax-only against musl's C headers instead of glibc's: a GNU-only
# call or GNU-only signature (e.g. strerror_r returning char*) fails here.
# Where the machine has a musl C++ compiler (Alpine: g++), this builds the
# addon with it instead. Skips with the reason when neither is available.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -f /etc/alpine-release ] && command -v g++ >/dev/null; then
  echo "== musl: Alpine g++ — building the addon natively"
  exec npx node-gyp rebuild
fi

musl_inc=/usr/include/x86_64-linux-musl
if [ "$(uname -m)" != x86_64 ] || [ ! -d "$musl_inc" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then apt-get install -y -qq musl-dev >/dev/null || true; fi
fi
if [ ! -d "$musl_inc" ] || ! command -v g++ >/dev/null; then
  echo "== musl: skipped (no $musl_inc: apt-get install musl-dev; or no g++)"
  exit 0
fi

gcc_ver=$(g++ -dumpversion | cut -d. -f1)
node_inc=$(node -p "require('path').join(process.execPath, '../../include/node')")
[ -f "$node_inc/node_api.h" ] || node_inc=$(ls -d ~/.cache/node-gyp/*/include/node 2>/dev/null | tail -1)
napi_inc=$(node -p "require('node-addon-api').include_dir")

# Kernel uapi headers (linux/, asm/, asm-generic/) and nothing else of glibc's.
uapi=$(mktemp -d)
trap 'rm -rf "$uapi"' EXIT
ln -s /usr/include/linux "$uapi/linux"
ln -s /usr/include/asm-generic "$uapi/asm-generic"
ln -s "/usr/include/$(uname -m)-linux-gnu/asm" "$uapi/asm"
# The host's libstdc++ headers are configured for glibc: this shim supplies
# the few glibc names they expect, and nothing that native/ itself uses.
cat > "$uapi/libstdcxx-on-musl.h" <<'SHIM'
#define __GLIBC_PREREQ(major, minor) 0
#include <locale.h>
#include <pthread.h>
#include <time.h>
typedef locale_t __locale_t;
#ifdef __cplusplus
extern "C" {
#endif
int pthread_cond_clockwait(pthread_cond_t*, pthread_mutex_t*, clockid_t, const struct timespec*);
int pthread_mutex_clocklock(pthread_mutex_t*, clockid_t, const struct timespec*);
int pthread_rwlock_clockrdlock(pthread_rwlock_t*, clockid_t, const struct timespec*);
int pthread_rwlock_clockwrlock(pthread_rwlock_t*, clockid_t, const struct timespec*);
#ifdef __cplusplus
}
#endif
SHIM

fail=0
for f in native/*.cc; do
  if ! g++ -fsyntax-only -std=c++17 -Wall -Wextra -Werror -fno-exceptions \
      -DNAPI_VERSION=8 -DNAPI_DISABLE_CPP_EXCEPTIONS -DNODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS -D_GNU_SOURCE \
      -nostdinc \
      -isystem "/usr/include/c++/$gcc_ver" -isystem "/usr/include/$(uname -m)-linux-gnu/c++/$gcc_ver" \
      -isystem "/usr/lib/gcc/$(uname -m)-linux-gnu/$gcc_ver/include" \
      -isystem "$musl_inc" -isystem "$uapi" \
      -include "$uapi/libstdcxx-on-musl.h" -I "$node_inc" -I "$napi_inc" "$f"; then
    echo "== musl: $f does not compile against musl's headers"
    fail=1
  fi
done
[ "$fail" = 0 ] && echo "== musl: every native/*.cc compiles against musl's headers ($musl_inc)"
exit "$fail"
