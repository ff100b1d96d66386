// The channel section (bench/sections.js channel()) of two checkouts, A and B, taking turns in one run:
// round 1 A then B, round 2 B then A, ... — each run a fresh Node process of the checkout's own (its
// dist/, addon and workers), so load drift on a shared machine hits both alike. Prints, unpinned and
// with both processes pinned to one CPU, the median over rounds of each checkout's medians, and B ÷ A.
// Usage: node bench/channel-ab.js ROOT_A ROOT_B [rounds=5] [--quick]
//   e.g. git worktree add /tmp/ab-main main && (cd /tmp/ab-main && npm ci); node bench/channel-ab.js /tmp/ab-main .
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const argv = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const quick = process.argv.includes('--quick');
if (argv.length < 2) {
  console.error('usage: node bench/channel-ab.js ROOT_A ROOT_B [rounds=5] [--quick]');
  process.exit(2);
}
const roots = argv.slice(0, 2).map((r) => path.resolve(r));
const rounds = Number(argv[2] ?? 5);
for (const r of roots) {
  if (!fs.existsSync(path.join(r, 'dist')) || !fs.existsSync(path.join(r, 'bench', 'sections.js'))) {
    throw new Error(`${r}: not a built checkout (run npm ci there)`);
  }
}

// One run of a checkout's channel section, in a process of its own; the C program is the checkout's too.
const script = `const lib = require('./bench/lib'); require('./bench/sections').channel({ quick: ${quick}, cBin: lib.buildC('pingpong') })
  .then((r) => process.stdout.write(JSON.stringify(r)), (e) => { console.error(e); process.exit(1); });`;
const runOnce = (root) => JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8' }));

// What each run gives, from one CPU placement's result: the figures and the two target ratios.
const figures = (x) => ({
  pingPongUs: x.pingPongUs.median,
  nodeNetUs: x.nodeNetUs.median,
  cPingPongUs: x.c.pingPongUs.median,
  fdsPerSec: x.fdsPerSec.median,
  fdsPerSecPaced: x.fdsPerSecPaced?.median ?? NaN,
  cFdsPerSec: x.c.fdsPerSec.median,
  'pingPong÷net': x.pingPongUs.median / x.nodeNetUs.median,
  'pipelined÷C': x.fdsPerSec.median / x.c.fdsPerSec.median,
  'paced÷C': (x.fdsPerSecPaced?.median ?? NaN) / x.c.fdsPerSec.median,
});
const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const load = () => fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

const samples = roots.map(() => ({ any: [], pinned: [] }));
const loads = [load()];
for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? [0, 1] : [1, 0];
  for (const i of order) {
    const res = runOnce(roots[i]);
    samples[i].any.push(figures(res.any));
    if (res.pinned) samples[i].pinned.push(figures(res.pinned));
    console.error(`round ${r + 1}/${rounds} ${'AB'[i]}: ping-pong ${res.any.pingPongUs.median.toFixed(1)} µs, ` +
      `pipelined ${Math.round(res.any.fdsPerSec.median)}/s (load ${load()})`);
  }
  loads.push(load());
}

for (const where of ['any', 'pinned']) {
  if (samples[0][where].length === 0) continue;
  console.log(`\n${where === 'any' ? 'unpinned' : 'both processes pinned to CPU 0'} — medians of ${rounds} runs each`);
  console.log(`${'figure'.padEnd(16)}${'A'.padStart(12)}${'B'.padStart(12)}${'B÷A'.padStart(8)}`);
  for (const key of Object.keys(samples[0][where][0])) {
    const [a, b] = samples.map((s) => median(s[where].map((f) => f[key])));
    const fmt = (v) => (v >= 1000 ? Math.round(v).toString() : v.toFixed(key.includes('÷') ? 3 : 1));
    console.log(`${key.padEnd(16)}${fmt(a).padStart(12)}${fmt(b).padStart(12)}${(b / a).toFixed(3).padStart(8)}`);
  }
}
console.log(`\nA = ${roots[0]}\nB = ${roots[1]}\nload average (1/5/15 min) before and after each round: ${loads.join(' | ')}`);
