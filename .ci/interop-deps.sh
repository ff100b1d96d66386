#!/usr/bin/env bash
# Best effort: install what the interop tests use (python3, numpy, cc, go, systemd-journald, weston, strace) (Debian/Ubuntu package names). Never fails CI:
# a test whose tool is still missing skips and prints why.
set -u
need=()
command -v python3 >/dev/null || need+=(python3)
# numpy for the typed-data readers (open_tensor/open_table_columns in python/memseal_typed.py)
{ command -v python3 >/dev/null && python3 -c 'import numpy' 2>/dev/null; } || need+=(python3-numpy)
command -v cc >/dev/null || need+=(gcc libc6-dev)
command -v go >/dev/null || need+=(golang-go)  # test/interop/go-snippet.test.ts builds protocol.md's Go peer
{ [ -x /lib/systemd/systemd-journald ] || [ -x /usr/lib/systemd/systemd-journald ]; } || need+=(systemd)
command -v weston >/dev/null || need+=(weston)   # test/interop/writable-peers.test.ts offers a wl_shm pool to a headless weston
command -v strace >/dev/null || need+=(strace)   # test/channel/read-calls.test.ts counts a real process's read calls
if [ ${#need[@]} -eq 0 ]; then
  echo "== interop deps: python3 (with numpy), cc, go, systemd-journald, weston and strace present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "== interop deps: missing ${need[*]}; not root or no apt-get, so the tests that need them will skip"
  exit 0
fi
echo "== interop deps: installing ${need[*]}"
if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"; }; then
  echo "== interop deps: apt-get could not install ${need[*]}; the tests that need them will skip"
fi
exit 0
