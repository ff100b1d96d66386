// Fairness of a pool stream (bench/pubsub.js calls it): a publisher lends 1 MiB slots flat out to one fast
// subscriber alone, then beside one that sleeps 100 ms per sample and a raw peer that never releases
// anything, runs interleaved. Figures: the fast one's samples per second beside them as a share of its
// rate alone, and the publisher's loan() wait (p50/p99/max, µs) beside them.
'use strict';
const { fork } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Publisher } = require('..');

const WORKER = path.join(__dirname, 'pubsub-worker.js');
const MiB = 1024 * 1024;

function ask(child, msg, key) {
  return new Promise((resolve, reject) => {
    const on = (m) => { if (m === key || (m && typeof m === 'object' && key in m)) { child.off('message', on); resolve(m); } };
    child.on('message', on);
    child.once('exit', (code) => reject(new Error(`worker exited (${code})`)));
    if (msg !== null) child.send(msg);
  });
}

function pct(sorted, q) {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** One run: the fast subscriber (and, unless `solo`, the slow and the stuck one) for `ms`. */
async function once(solo, ms) {
  const pub = Publisher.create({ slotSize: MiB, maxSubscribers: 3, name: 'bench-fair' });
  const sock = path.join(os.tmpdir(), `memseal-bench-fair-${process.pid}.sock`);
  fs.rmSync(sock, { force: true });
  await pub.listen(sock);
  const modes = solo ? ['sub'] : ['sub', 'slowsub', 'rawsub'];
  const children = modes.map((m) => fork(WORKER, [m, sock], { stdio: 'inherit' }));
  await Promise.all(children.map((c) => ask(c, null, 'attached')));
  while (pub.subscriberCount < modes.length) await new Promise((r) => setTimeout(r, 5));
  const waits = [];
  const c0 = (await ask(children[0], 'count', 'count')).count;
  const t0 = process.hrtime.bigint();
  const end = t0 + BigInt(ms) * 1000000n;
  let n = 0;
  while (process.hrtime.bigint() < end) {
    const a = process.hrtime.bigint();
    const loan = await pub.loan();
    waits.push(Number(process.hrtime.bigint() - a) / 1000);
    loan.bytes.writeUInt32LE(n, 0);
    await loan.send(MiB);
    if (++n % 8 === 0) await new Promise((r) => setImmediate(r));
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const c1 = (await ask(children[0], 'count', 'count')).count;
  const missed = pub.subscribers.map((s) => s.missed);
  pub.close();
  children.forEach((c) => c.disconnect());
  waits.sort((x, y) => x - y);
  return { rate: (c1 - c0) / secs, published: n / secs, p50: pct(waits, 0.5), p99: pct(waits, 0.99), max: waits[waits.length - 1] ?? 0, missed };
}

async function run({ quick = false } = {}) {
  const ms = quick ? 1000 : 3000, runs = quick ? 1 : 3;
  const solo = [], mixed = [];
  for (let r = 0; r < runs; r++) {  // interleaved
    solo.push(await once(true, ms));
    mixed.push(await once(false, ms));
  }
  const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const soloRate = med(solo.map((x) => x.rate)), mixedRate = med(mixed.map((x) => x.rate));
  return { ms, runs, soloRate, mixedRate, share: mixedRate / soloRate, p50: med(mixed.map((x) => x.p50)),
    p99: med(mixed.map((x) => x.p99)), max: Math.max(...mixed.map((x) => x.max)), published: med(mixed.map((x) => x.published)) };
}

function report(f) {
  return [`Fairness (1 MiB slots, \`delivery: 'latest'\`, ${f.runs} interleaved runs of ${f.ms / 1000} s): the fast subscriber reads ` +
    `${f.soloRate.toFixed(0)} samples/s alone and ${f.mixedRate.toFixed(0)}/s beside one that sleeps 100 ms per sample and a raw peer ` +
    `that never releases (${(f.share * 100).toFixed(1)} %); the publisher's loan() waits p50 ${f.p50.toFixed(1)} µs, p99 ` +
    `${f.p99.toFixed(1)} µs, max ${f.max.toFixed(0)} µs while publishing ${f.published.toFixed(0)} samples/s. ` +
    'Standalone: `node bench/pubsub-fair.js`.', ''];
}

function targets(f) {
  return [['fairness: fast subscriber beside a slow and a stuck one, share of its solo rate', '≥ 95 %', `${(f.share * 100).toFixed(1)} %`, f.share >= 0.95],
    ['fairness: publisher loan() p99 wait beside them', '< 1 ms', `${(f.p99 / 1000).toFixed(3)} ms`, f.p99 < 1000]];
}

module.exports = { run, report, targets };

if (require.main === module) {
  run({ quick: process.argv.includes('--quick') }).then((f) => {
    process.stdout.write(`${report(f).join('\n')}\n`);
    for (const t of targets(f)) console.log(t.join(' | '));
  }).catch((err) => { console.error(err); process.exit(1); });
}
