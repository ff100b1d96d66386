// Costs of WriteOnceArena and SecretBuffer, per operation. Run: node bench/arena-secret.js
// (needs dist/: npm run build:ts). Sealed arenas are never freed, so N stays modest.
'use strict';
const { WriteOnceArena, SecretBuffer, features } = require('..');

function per(n, fn) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn(i);
  return Number(process.hrtime.bigint() - t0) / n / 1000; // µs
}
const N = 2000;
const row = (what, us) => console.log(`${what.padEnd(58)} ${us.toFixed(2).padStart(8)} µs`);

let arenas = Array.from({ length: N }, () => new WriteOnceArena(4096));
row('new WriteOnceArena(4 KiB) + destroy()', per(N, () => new WriteOnceArena(4096).destroy()));
row('alloc(64) (bump allocation)', per(N, () => { const a = new WriteOnceArena(1 << 20); for (let i = 0; i < 100; i++) a.alloc(64); a.destroy(); }) / 100);
arenas.forEach((a) => a.alloc(64).fill(1));
row('seal({ mseal: false }) of a 4 KiB arena (mprotect)', per(N, (i) => arenas[i].seal({ mseal: false })));
arenas.forEach((a) => a.destroy());
if (features.mseal) {
  arenas = Array.from({ length: N }, () => new WriteOnceArena(4096));
  arenas.forEach((a) => a.alloc(64).fill(1));
  row('seal() of a 4 KiB arena (mprotect + mseal)', per(N, (i) => arenas[i].seal()));
  const big = Array.from({ length: 20 }, () => new WriteOnceArena(64 << 20));
  big.forEach((a) => a.alloc(64 << 20, 1).fill(1));
  row('seal() of a 64 MiB arena, fully written (mprotect + mseal)', per(big.length, (i) => big[i].seal()));
}
const kinds = features.memfdSecret ? ['secretmem', 'mlock'] : ['mlock'];
for (const kind of kinds) {
  row(`SecretBuffer.alloc(32, { kind: '${kind}' }) + dispose()`, per(N, () => SecretBuffer.alloc(32, { kind }).dispose()));
}
