// Garbage collections caused by large mappings: opens, reads (one byte per
// page) and closes a 64 MiB SealedBuffer `n` times, counting the collections
// V8 reports (perf_hooks 'gc' entries). Every mapping is released explicitly,
// so ideally none is needed. Usage: node bench/gc.js [MiB] [n]
'use strict';
const fs = require('node:fs');
const { PerformanceObserver } = require('node:perf_hooks');
const { SealedBuffer } = require('..');

const size = Number(process.argv[2] ?? 64) * 2 ** 20;
const n = Number(process.argv[3] ?? 50);
const sb = SealedBuffer.create(size, (b) => b.fill(1));
let count = 0, ms = 0;
const kinds = {};
const obs = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    count++;
    ms += e.duration;
    const kind = { 1: 'scavenge', 2: 'minor-mc', 4: 'mark-compact', 8: 'incremental', 16: 'weak-callbacks' }[e.detail?.kind] ?? e.detail?.kind;
    kinds[kind] = (kinds[kind] ?? 0) + 1;
  }
});
obs.observe({ entryTypes: ['gc'] });
const t0 = process.hrtime.bigint();
let sum = 0;
for (let i = 0; i < n; i++) {
  const r = SealedBuffer.open(fs.openSync(`/proc/self/fd/${sb.fd}`, 'r'));
  const b = r.bytes;
  for (let j = 0; j < b.length; j += 4096) sum += b[j];
  r.close();
}
const total = Number(process.hrtime.bigint() - t0) / 1e6;
setTimeout(() => {
  obs.disconnect();
  sb.close();
  const out = { sizeMiB: size / 2 ** 20, opens: n, gcs: count, gcMs: Number(ms.toFixed(1)), kinds, totalMs: Math.round(total), checksum: sum };
  console.log(JSON.stringify(out));
}, 100);
