// Releasing a mapping of a memfd: how long the event loop is blocked by
// munmap(2) done in place versus handed to the libuv thread pool
// (Mapping#unmap() / SealedBuffer#close() pick by size: DEFERRED_RELEASE_BYTES).
// Each run: create a memfd of the size, map it shared, fault every page in,
// close the descriptor (so the munmap frees the pages, as the last close of a
// received SealedBuffer does), then time the call on the event loop.
// Usage: node bench/release.js [rounds]
'use strict';
const { native } = require('../dist/binding');
const { regionHandle, DEFERRED_RELEASE_BYTES } = require('../dist/mapping');
const m = require('..');

const C = m.constants;
const rounds = Number(process.argv[2] ?? 20);
const sizes = [16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 64 << 20, 256 << 20];

function prepare(size) {
  const fd = m.memfdCreate('bench-release');
  require('node:fs').ftruncateSync(fd, size);
  const map = m.mmap(size, C.PROT_READ | C.PROT_WRITE, C.MAP_SHARED | C.MAP_POPULATE, fd);
  require('node:fs').closeSync(fd);
  return map;
}

async function time(size, deferred) {
  const samples = [];
  for (let r = 0; r < rounds; r++) {
    const map = prepare(size);
    const t0 = process.hrtime.bigint();
    native.munmap(regionHandle(map), deferred);
    samples.push(Number(process.hrtime.bigint() - t0) / 1000);
    await new Promise((resolve) => setTimeout(resolve, deferred ? 20 : 0)); // let the pool finish
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)];
}

(async () => {
  console.log(`release: event-loop time of munmap, in place vs on the thread pool (median of ${rounds}); threshold now ${DEFERRED_RELEASE_BYTES} bytes`);
  for (const size of sizes) {
    const inPlace = await time(size, false);
    const pooled = await time(size, true);
    const label = size >= 1 << 20 ? `${size >> 20} MiB` : `${size >> 10} KiB`;
    console.log(`  ${label.padStart(8)}: in place ${inPlace.toFixed(1).padStart(8)} µs   thread pool ${pooled.toFixed(1).padStart(6)} µs   ratio ${(inPlace / pooled).toFixed(1)}×`);
  }
})();
