#!/usr/bin/env bash
# npm run test:asan — builds the addon with AddressSanitizer and
# UndefinedBehaviorSanitizer and runs the whole mocha suite against it, with
# the sanitizer runtimes preloaded into node (node itself is not instrumented).
# Any report fails the run: UBSan stops at the first finding, ASan always does.
# The normal build is restored afterwards, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."

CC_BIN="${CC:-cc}"
ASAN_RT="$("$CC_BIN" -print-file-name=libasan.so)"
UBSAN_RT="$("$CC_BIN" -print-file-name=libubsan.so)"
for rt in "$ASAN_RT" "$UBSAN_RT"; do
  if [ ! -e "$rt" ]; then
    echo "test:asan: no sanitizer runtime at $rt (install the compiler's libasan/libubsan)" >&2
    exit 1
  fi
done

restore() { echo "== test:asan: restoring the normal build"; npm run build:native >/dev/null; }
trap restore EXIT

echo "== test:asan: building the addon with -fsanitize=address,undefined"
CXXFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g" \
LDFLAGS="-fsanitize=address,undefined" \
  npm run build:native >/dev/null
if ! grep -q __asan_init build/Release/memseal.node; then
  echo "test:asan: the addon was not instrumented" >&2
  exit 1
fi

LOG_DIR="$(mktemp -d)"
export LD_PRELOAD="$ASAN_RT:$UBSAN_RT"
# detect_leaks=0: V8 keeps memory until exit by design. The signal handlers stay
# Node's/the kernel's own: some tests expect a child to die of SIGSEGV/SIGBUS.
export ASAN_OPTIONS="detect_leaks=0:handle_segv=0:handle_sigbus=0:handle_abort=0:allow_user_segv_handler=1:log_path=$LOG_DIR/asan:halt_on_error=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$LOG_DIR/ubsan"
# Reports land in $LOG_DIR (processes whose stderr a test captures) or on
# mocha's own stderr (kept in mocha.out); count both.
set +e
[ $# -gt 0 ] || set -- 'test/**/*.test.ts'   # the whole suite unless files are named
npx mocha "$@" 2>&1 | tee "$LOG_DIR/mocha.out"
status=${PIPESTATUS[0]}
set -e
unset LD_PRELOAD

pattern='ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer'
reports=$(cat "$LOG_DIR"/* | grep -Ec "$pattern" || true)
if [ "$reports" -gt 0 ]; then
  echo "== test:asan: $reports sanitizer report(s):" >&2
  grep -EH -A3 "$pattern" "$LOG_DIR"/* >&2 || true
  status=1
else
  echo "== test:asan: 0 sanitizer reports (mocha exit $status)"
fi
rm -rf "$LOG_DIR"
exit "$status"
