// Copies a built addon into prebuilds/<platform>-<arch>/memseal.napi.glibc.node,
// where node-gyp-build (src/binding.ts) finds it when there is no source build.
// Run by `npm pack` (prepack) after `node-gyp rebuild`; .ci/cross-aarch64.sh
// uses it for the cross-compiled arm64 binary.
//
//   node scripts/prebuilt.js [--from build/Release/memseal.node] [--arch x64|arm64]
//                            [--tool-prefix aarch64-linux-gnu-]
//
// It strips the copy and refuses a binary that needs a newer glibc than
// GLIBC_FLOOR (Node's own official linux binaries need 2.28), so a build on a
// newer distribution cannot silently raise what the package requires.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const GLIBC_FLOOR = '2.28';
const ROOT = path.join(__dirname, '..');

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

const from = path.resolve(ROOT, option('from', 'build/Release/memseal.node'));
const arch = option('arch', process.arch);
const prefix = option('tool-prefix', '');
const dir = path.join(ROOT, 'prebuilds', `linux-${arch}`);
const to = path.join(dir, 'memseal.napi.glibc.node');

function compareVersions(a, b) {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
  }
  return 0;
}

/** The newest GLIBC_x.y symbol version the binary imports (objdump -T). */
function glibcNeeded(file) {
  const out = execFileSync(`${prefix}objdump`, ['-T', file], { encoding: 'utf8' });
  const versions = [...out.matchAll(/\(GLIBC_([0-9.]+)\)/g)].map((m) => m[1]);
  return versions.sort(compareVersions).pop() ?? '0';
}

if (!fs.existsSync(from)) {
  console.error(`prebuilt: ${path.relative(ROOT, from)} does not exist; run npm run build:native first`);
  process.exit(1);
}
fs.rmSync(dir, { recursive: true, force: true });
fs.mkdirSync(dir, { recursive: true });
fs.copyFileSync(from, to);
try {
  execFileSync(`${prefix}strip`, ['--strip-unneeded', to]);
} catch (err) {
  console.error(`prebuilt: ${prefix}strip failed (${err.message.split('\n')[0]}); shipping unstripped`);
}

const needed = glibcNeeded(to);
if (compareVersions(needed, GLIBC_FLOOR) > 0) {
  fs.rmSync(dir, { recursive: true, force: true });
  console.error(`prebuilt: ${path.relative(ROOT, from)} needs GLIBC_${needed}, above the floor ${GLIBC_FLOOR}: ` +
    'find the symbol with objdump -T and avoid it (see native/memfd.cc, statx)');
  process.exit(1);
}
console.log(`prebuilt: ${path.relative(ROOT, to)} (${fs.statSync(to).size} bytes, needs glibc >= ${needed})`);
