#!/usr/bin/env bash
# `npm install memseal` as a user gets it: pack the package (prepack rebuilds the
# addon and copies it to prebuilds/linux-<arch>/, checking its glibc floor, and
# cross-builds prebuilds/linux-arm64 where the cross compiler is), then
# install the tarball into fresh projects and run a smoke script there.
#
#   A  npm's defaults, no compiler. npm 11 warns that memseal has an install
#      script not covered by allowScripts and runs it: node-gyp-build sees that
#      the prebuilt binary fits and compiles nothing. (npm <= 10 runs it silently.)
#   B  install script denied in the project's allowScripts (as a user of
#      npm's --strict-allow-scripts, which fails installs with unreviewed
#      scripts, would do; --ignore-scripts is the same), no compiler: no
#      warning, and the prebuilt binary loads without any install script.
#   C  no prebuilt fits (LIBC=musl makes node-gyp-build pass over the glibc
#      one), npm's defaults, compiler present: the install script builds from
#      source and build/Release is loaded.
#   D  no prebuilt fits, install script denied: require() fails with
#      memseal's own message saying how to build.
#
# "No compiler": a directory first on PATH shadows every compiler, make and
# python with a stub that logs the call and fails, and CC/CXX point at it; the
# script fails if anything called a stub.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
arch=$(node -p process.arch)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== npm pack"
npm pack --silent --pack-destination "$work" >"$work/pack.log" 2>&1 || { cat "$work/pack.log"; exit 1; }
grep -E '^prebuilt:' "$work/pack.log" | sed 's/^/   /' || true
tgz=$(echo "$work"/memseal-*.tgz)
tar -tzf "$tgz" >"$work/contents"
grep -qx "package/prebuilds/linux-$arch/memseal.napi.glibc.node" "$work/contents" ||
  { echo "pack-smoke: the tarball has no prebuilds/linux-$arch binary"; cat "$work/contents"; exit 1; }
if command -v aarch64-linux-gnu-g++ >/dev/null && ! grep -qx "package/prebuilds/linux-arm64/memseal.napi.glibc.node" "$work/contents"; then
  echo "pack-smoke: the cross compiler is here but the tarball has no prebuilds/linux-arm64 binary"; exit 1
fi
if grep -q '^package/build/' "$work/contents"; then echo "pack-smoke: build/ leaked into the tarball"; exit 1; fi
# The published manifest names only scripts that work from the tarball (scripts/pack-manifest.js), and the
# checkout's own package.json is back as it was.
scripts=$(tar -xzOf "$tgz" package/package.json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.stringify(JSON.parse(s).scripts)))')
[ "$scripts" = '{"install":"node-gyp-build"}' ] || { echo "pack-smoke: the packed manifest has scripts $scripts"; exit 1; }
git diff --quiet -- package.json 2>/dev/null || { echo "pack-smoke: npm pack left package.json changed"; exit 1; }
[ ! -e .package.json.dev ] || { echo "pack-smoke: npm pack left .package.json.dev behind"; exit 1; }
echo "   $(basename "$tgz"): $(wc -l <"$work/contents") files, $(du -k "$tgz" | cut -f1) KiB"

# The stub toolchain.
stubs="$work/no-compiler"
mkdir -p "$stubs"
for tool in cc gcc g++ c++ clang clang++ make gmake python python3 node-gyp x86_64-linux-gnu-gcc x86_64-linux-gnu-g++; do
  printf '#!/bin/sh\necho "%s $*" >> "%s/calls"\necho "pack-smoke: %s is hidden" >&2\nexit 127\n' \
    "$tool" "$stubs" "$tool" >"$stubs/$tool"
  chmod +x "$stubs/$tool"
done
no_compiler=(env PATH="$stubs:$PATH" CC="$stubs/cc" CXX="$stubs/c++" npm_config_python="$stubs/python3")
if "${no_compiler[@]}" sh -c 'command -v g++' | grep -qv "^$stubs/"; then echo "pack-smoke: g++ not hidden"; exit 1; fi

cat >"$work/smoke.js" <<'JS'
// The README's quick start, in a project that installed memseal from the tarball.
const assert = require('node:assert/strict');
const { SealedBuffer, verifySeals, features, Seal } = require('memseal');
const buf = SealedBuffer.from('hello, sealed world');
const v = verifySeals(buf.fd);
assert.equal(v.ok, true, v.reason);
assert.equal(v.seals & (Seal.SHRINK | Seal.GROW | Seal.WRITE), Seal.SHRINK | Seal.GROW | Seal.WRITE);
assert.equal(buf.bytes.toString(), 'hello, sealed world');
buf.close();
console.log(`smoke ok: kernel ${features.kernelRelease}, mseal ${features.mseal}`);
JS

# new_project NAME [deny]: an empty project with the smoke script; with 'deny',
# its package.json denies memseal's install script (for a tarball the
# allowScripts key is its file: spec; from the registry it is the name).
new_project() {
  mkdir -p "$work/$1" && cd "$work/$1"
  npm init -y >/dev/null 2>&1
  if [ "${2:-}" = deny ]; then npm pkg set --json "allowScripts[file:$tgz]=false" >/dev/null; fi
  cp "$work/smoke.js" .
}

# check NAME EXPECTED_ADDON: smoke script + which addon file was mapped.
check() {
  node smoke.js
  local probe
  probe=$(node "$ROOT/.ci/addon-probe.js" node_modules/memseal)
  echo "   loaded: $probe"
  case "$probe" in *" $2 "*) ;; *) echo "pack-smoke $1: expected $2 to be loaded"; exit 1 ;; esac
}

echo "== A: npm defaults, no compiler"
start=$SECONDS
new_project a
"${no_compiler[@]}" npm install --no-audit --no-fund --foreground-scripts "$tgz" >install.log 2>&1 || { cat install.log; exit 1; }
grep -E 'install-scripts   |^> node-gyp-build' install.log | sed 's/^/   npm: /' || true
grep -q '^> node-gyp-build' install.log || { echo "pack-smoke A: npm did not run the install script"; cat install.log; exit 1; }
"${no_compiler[@]}" bash -c "$(declare -f check); ROOT=$ROOT check A prebuilds/linux-$arch/memseal.napi.glibc.node"
[ ! -e node_modules/memseal/build ] || { echo "pack-smoke A: the install script built from source"; exit 1; }
# The Python reference peer ships too: found with `memseal python-path`, it receives a buffer from this project.
dir=$(npx --no-install memseal python-path)
[ "$dir" = "$work/a/node_modules/memseal/python" ] || { echo "pack-smoke A: memseal python-path printed '$dir'"; exit 1; }
if python3 -c 'import socket; socket.recv_fds' 2>/dev/null; then
  cat >py.js <<'JS'
// The installed Python peer (python/memseal_peer.py from node_modules) verifies and maps a SealedBuffer.
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const path = require('node:path');
const { SealedBuffer, spawnWithChannel } = require('memseal');
const dir = execFileSync('npx', ['--no-install', 'memseal', 'python-path'], { encoding: 'utf8' }).trim();
const { child, channel } = spawnWithChannel('python3', [path.join(dir, 'memseal_peer.py'), 'receive'], { stdio: ['ignore', 'pipe', 'inherit'] });
let out = '';
child.stdout.on('data', (d) => { out += d; });
(async () => {
  const sb = SealedBuffer.from('x'.repeat(100));
  await channel.sendBuffer(sb);
  while (!out.includes('\n')) await new Promise((r) => child.stdout.once('data', r));
  assert.deepEqual(JSON.parse(out), { ok: true, size: 100 });
  channel.close();
  sb.close();
  console.log(`python peer from ${path.relative(process.cwd(), dir)}: ${out.trim()}`);
  // the sibling modules ship too: their names are reachable through memseal_peer
  execFileSync('python3', ['-c', 'import sys; sys.path.insert(0, sys.argv[1]); import memseal_peer as m; m.SnapshotReader, m.open_tensor, m.PoolSubscriber', dir]);
})().catch((err) => { console.error(err); process.exit(1); });
JS
  node py.js | sed 's/^/   /'
else
  echo "   (python3 >= 3.9 missing: the installed Python peer was only located, not run)"
fi
echo "   A: $((SECONDS - start)) s"

echo "== B: install script denied, no compiler"
start=$SECONDS
new_project b deny
"${no_compiler[@]}" npm install --no-audit --no-fund --foreground-scripts "$tgz" >install.log 2>&1 || { cat install.log; exit 1; }
if grep -E 'install-scripts|^> ' install.log; then echo "pack-smoke B: npm warned about or ran a script"; exit 1; fi
"${no_compiler[@]}" bash -c "$(declare -f check); ROOT=$ROOT check B prebuilds/linux-$arch/memseal.napi.glibc.node"
echo "   B: $((SECONDS - start)) s"

if [ -s "$stubs/calls" ]; then
  echo "pack-smoke: the compiler-less installs called a hidden tool:"; cat "$stubs/calls"; exit 1
fi

echo "== C: no prebuilt fits (LIBC=musl), npm defaults, compiler present"
start=$SECONDS
new_project c
LIBC=musl npm install --no-audit --no-fund "$tgz" >install.log 2>&1 || { cat install.log; exit 1; }
check C build/Release/memseal.node
echo "   C: $((SECONDS - start)) s"

echo "== D: no prebuilt fits, install script denied"
cd "$work/b"
if out=$(LIBC=musl node smoke.js 2>&1); then echo "pack-smoke D: loaded without a fitting binary"; exit 1; fi
grep -q 'npm rebuild memseal' <<<"$out" || { echo "pack-smoke D: unhelpful error:"; echo "$out"; exit 1; }
echo "   $(grep -m1 '^Error: memseal: ' <<<"$out")"
echo "== pack smoke: A B C D ok"
