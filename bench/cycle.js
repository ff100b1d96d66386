// Per-call overhead: the low-level cycle in JS vs the same cycle in C.
// Usage: node bench/cycle.js [iterations]
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { memfdCreate, addSeals, getSeals, mmap, Seal, constants: C } = require('..');

const n = Number(process.argv[2] ?? 100000);
const bin = path.join(__dirname, 'c', 'bin', 'cycle');
fs.mkdirSync(path.dirname(bin), { recursive: true });
execFileSync('cc', ['-O2', '-o', bin, path.join(__dirname, 'c', 'cycle.c')]);

function jsCycle(iterations) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) {
    const fd = memfdCreate('bench');
    fs.ftruncateSync(fd, 4096);
    addSeals(fd, Seal.SHRINK | Seal.GROW | Seal.WRITE);
    getSeals(fd);
    const m = mmap(4096, C.PROT_READ, C.MAP_SHARED, fd);
    m.unmap();
    fs.closeSync(fd);
  }
  return Number(process.hrtime.bigint() - t0) / iterations;
}

jsCycle(Math.min(n, 20000)); // warm-up
const runs = [];
for (let r = 0; r < 5; r++) {
  runs.push({ js: jsCycle(n), c: Number(execFileSync(bin, [String(n)], { encoding: 'utf8' })) });
}
const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const js = median(runs.map((r) => r.js));
const c = median(runs.map((r) => r.c));
console.log(`cycle (memfd_create+ftruncate+add_seals+get_seals+mmap+munmap+close), ${n} iterations x 5 runs`);
console.log(`  JS: ${(js / 1000).toFixed(2)} µs   C: ${(c / 1000).toFixed(2)} µs   ratio JS/C: ${(js / c).toFixed(2)}`);
