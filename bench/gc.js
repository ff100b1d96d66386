// Garbage collections caused by large mappings. Opens, reads (one byte per
// page) and closes a 64 MiB SealedBuffer `n` times, counting the collections
// V8 reports (perf_hooks 'gc' entries); with --handoff a child process
// receives the buffer `n` times over a Channel instead, and the child's
// collections are counted. Every mapping is released explicitly, so ideally
// none is needed. Usage: node bench/gc.js [MiB] [n] [--handoff]
'use strict';
const fs = require('node:fs');
const { spawn } = require('node:child_process');
const { PerformanceObserver } = require('node:perf_hooks');
const { SealedBuffer, Channel, socketPair } = require('..');

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const size = Number(args[0] ?? 64) * 2 ** 20;
const n = Number(args[1] ?? 50);
const KINDS = { 1: 'scavenge', 2: 'minor-mc', 4: 'mark-compact', 8: 'incremental', 16: 'weak-callbacks' };

// Counts collections until report() prints them with `extra`.
function countGcs() {
  let count = 0, ms = 0;
  const kinds = {};
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      count++;
      ms += e.duration;
      const kind = KINDS[e.detail?.kind] ?? e.detail?.kind;
      kinds[kind] = (kinds[kind] ?? 0) + 1;
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  return (extra) => new Promise((resolve) => setTimeout(() => {
    obs.disconnect();
    console.log(JSON.stringify({ node: process.version, sizeMiB: size / 2 ** 20, ...extra, gcs: count, gcMs: Number(ms.toFixed(1)), kinds }));
    resolve();
  }, 100));
}

function readPages(sb) {
  const b = sb.bytes;
  let sum = 0;
  for (let j = 0; j < b.length; j += 4096) sum += b[j];
  return sum;
}

async function main() {
  if (process.argv.includes('--child')) {  // the receiving side of --handoff
    const ch = Channel.fromFd(3);
    const report = countGcs();
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const { buffer } = await ch.receiveBuffer();
      sum += readPages(buffer);
      buffer.close();
      await ch.send('ok');
    }
    await report({ handoffs: n, process: 'receiving child', checksum: sum });
    ch.close();
    return;
  }
  const sb = SealedBuffer.create(size, (b) => b.fill(1));
  if (process.argv.includes('--handoff')) {
    const [a, b] = socketPair();
    const child = spawn(process.execPath, [__filename, ...args, '--child'], { stdio: ['inherit', 'inherit', 'inherit', b.fd] });
    for (let i = 0; i < n; i++) {
      await a.sendBuffer(sb);
      await a.receive();
    }
    await new Promise((resolve) => child.once('exit', resolve));
    a.close(); b.close(); sb.close();
    return;
  }
  const report = countGcs();
  const t0 = process.hrtime.bigint();
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const r = SealedBuffer.open(fs.openSync(`/proc/self/fd/${sb.fd}`, 'r'));
    sum += readPages(r);
    r.close();
  }
  const totalMs = Math.round(Number(process.hrtime.bigint() - t0) / 1e6);
  await report({ opens: n, totalMs, checksum: sum });
  sb.close();
}
main();
