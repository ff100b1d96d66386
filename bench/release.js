// Releasing a mapping of a memfd: how long the event loop is blocked by
// munmap(2) done in place versus handed to the libuv thread pool
// (Mapping#unmap() / SealedBuffer#close() pick by size: DEFERRED_RELEASE_BYTES).
// Each run: create a memfd of the size, map it shared, fault every page in,
// close the descriptor (so the munmap frees the pages, as the last close of a
// received SealedBuffer does), then time the call on the event loop, and the
// loop's whole busy time until the release is done (event-loop utilization:
// for the thread pool that includes the completion callback on the loop).
// Usage: node bench/release.js [rounds]; `npm run bench` runs it as section 6.
'use strict';
const fs = require('node:fs');
const { performance } = require('node:perf_hooks');
const { native } = require('../dist/kernel/binding');
const { regionHandle, DEFERRED_RELEASE_BYTES } = require('../dist/kernel/mapping');
const m = require('..');
const lib = require('./lib');

const C = m.constants;
const SIZES = [16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 64 << 20, 256 << 20];
const WAIT_MS = 20;  // long enough for the pool to finish; the same for both ways, so timer overhead cancels out

function prepare(size) {
  const fd = m.memfdCreate('bench-release');
  fs.ftruncateSync(fd, size);
  const map = m.mmap(size, C.PROT_READ | C.PROT_WRITE, C.MAP_SHARED | C.MAP_POPULATE, fd);
  fs.closeSync(fd);
  return map;
}

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function measure(size, deferred, rounds) {
  const call = [], loop = [];
  for (let r = 0; r < rounds; r++) {
    const map = prepare(size);
    await pause(1);
    const e0 = performance.eventLoopUtilization();
    const t0 = process.hrtime.bigint();
    native.munmap(regionHandle(map), deferred);
    call.push(Number(process.hrtime.bigint() - t0) / 1000);
    await pause(WAIT_MS);
    loop.push(performance.eventLoopUtilization(e0).active * 1000);
  }
  return { callUs: lib.stats(call), loopUs: lib.stats(loop) };
}

async function run({ rounds = 15, log = console.error } = {}) {
  const rows = [];
  for (const size of SIZES) {
    const inPlace = await measure(size, false, rounds);
    const pool = await measure(size, true, rounds);
    rows.push({ size, inPlace, pool });
    log(`release ${lib.fmtSize(size)}: in place ${inPlace.callUs.median.toFixed(1)} µs (loop ${inPlace.loopUs.median.toFixed(1)}), ` +
      `thread pool ${pool.callUs.median.toFixed(1)} µs (loop ${pool.loopUs.median.toFixed(1)})`);
  }
  return { rounds, threshold: DEFERRED_RELEASE_BYTES, rows };
}

/** Markdown lines for docs/bench.md. */
function report(x) {
  const L = ['## 6. Releasing memory off the event loop', '',
    `Event-loop time of the last munmap(2) of a populated shared mapping (its pages are freed by it), done in place or handed to the libuv thread pool; "loop busy" is the event loop's whole active time until the release is done (event-loop utilization over a ${WAIT_MS} ms wait, the same for both ways), which for the thread pool includes queueing the work and its completion callback. Median of ${x.rounds}. memseal hands a release to the pool from ${lib.fmtSize(x.threshold)} (DEFERRED_RELEASE_BYTES). On 2 cores the small sizes vary from run to run: a woken pool thread that lands on the loop's core preempts the loop, and the call then includes the munmap (run \`node bench/release.js\` alone to see the spread); from a few MiB the pool wins in every run.`, '',
    '| size | in place: munmap (µs) | in place: loop busy (µs) | thread pool: call (µs) | thread pool: loop busy (µs) | loop busy, in place ÷ pool |',
    '|---|---:|---:|---:|---:|---:|'];
  for (const r of x.rows) {
    L.push(`| ${lib.fmtSize(r.size)}${r.size >= x.threshold ? ' (pool)' : ''} | ${r.inPlace.callUs.median.toFixed(1)} | ${r.inPlace.loopUs.median.toFixed(1)} | ` +
      `${r.pool.callUs.median.toFixed(1)} | ${r.pool.loopUs.median.toFixed(1)} | ${(r.inPlace.loopUs.median / r.pool.loopUs.median).toFixed(2)}× |`);
  }
  L.push('');
  return L;
}

module.exports = { run, report };

if (require.main === module) {
  run({ rounds: Number(process.argv[2] ?? 15), log: () => {} })
    .then((x) => process.stdout.write(`${report(x).join('\n')}\n`))
    .catch((err) => { console.error(err); process.exit(1); });
}
