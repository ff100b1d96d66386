// Copies a built addon into prebuilds/<platform>-<arch>/memseal.napi.glibc.node,
// where node-gyp-build (src/binding.ts) finds it when there is no source build.
// Run by `npm pack` (prepack) after `node-gyp rebuild`; .ci/cross-aarch64.sh
// uses it for the cross-compiled arm64 binary.
//
//   node scripts/prebuilt.js [--from build/Release/memseal.node] [--arch x64|arm64]
//                            [--tool-prefix aarch64-linux-gnu-]
//
// It strips the copy and refuses a binary that needs a newer glibc or libstdc++
// than Node's own official linux binaries (20 to 26: GLIBC_2.28, GLIBCXX_3.4.21,
// CXXABI_1.3.11), so a build on a newer distribution cannot silently raise what
// the package requires: wherever the official Node runs, the prebuilt loads.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const FLOORS = { GLIBC: '2.28', GLIBCXX: '3.4.21', CXXABI: '1.3.11' };
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

/** The newest <lib>_x.y symbol version the binary imports, per library (objdump -T). */
function versionsNeeded(file) {
  const out = execFileSync(`${prefix}objdump`, ['-T', file], { encoding: 'utf8' });
  const needed = {};
  for (const lib of Object.keys(FLOORS)) {
    const versions = [...out.matchAll(new RegExp(`\\b${lib}_([0-9.]+)\\b`, 'g'))].map((m) => m[1]);
    needed[lib] = versions.sort(compareVersions).pop() ?? '0';
  }
  return needed;
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

const needed = versionsNeeded(to);
const over = Object.keys(FLOORS).filter((lib) => compareVersions(needed[lib], FLOORS[lib]) > 0);
if (over.length > 0) {
  fs.rmSync(dir, { recursive: true, force: true });
  console.error(`prebuilt: ${path.relative(ROOT, from)} needs ${over.map((l) => `${l}_${needed[l]}`).join(', ')}, ` +
    `above Node's own floor (${over.map((l) => `${l}_${FLOORS[l]}`).join(', ')}): ` +
    'find the symbols with objdump -T and avoid them (see native/fd.cc, statx)');
  process.exit(1);
}
console.log(`prebuilt: ${path.relative(ROOT, to)} (${fs.statSync(to).size} bytes, needs ` +
  `${Object.keys(FLOORS).map((l) => `${l}_${needed[l]}`).join(' ')})`);
