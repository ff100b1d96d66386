// Fairness of a pool stream (bench/pubsub.js calls it; `node bench/pubsub-fair.js [--quick]
// [--pairs N] [--ms MS] [--pin]` runs it alone). A publisher lends 1 MiB slots flat out
// (`delivery: 'latest'`) to one fast subscriber, alone, then beside one that sleeps 100 ms per sample
// and a raw peer that never releases anything.
//
// On a small shared machine the fast subscriber's rate moves with whatever else runs, so one long
// run per arm says more about the machine than about the pool. Instead: one publisher and one fast
// subscriber for the whole measurement, many short arms in pairs (60 pairs of 0.25 s; alone, beside; the order alternates
// pair by pair), and the figure is the median of the per-pair ratios, with their min and max. With
// --pin (taskset, at least 2 CPUs) the publisher is pinned to one CPU and the fast subscriber to another
// in both arms; the slow and stuck peers are not pinned. Not the default: on a machine others share, a
// pinned process cannot move off a CPU that someone else's work took, and pinning did not narrow the
// spread there. Each arm also records where the time went: the
// fast subscriber's CPU, its wait for a CPU (run queue, /proc/<pid>/schedstat) and its wait for the
// next sample per sample; the publisher's CPU per sample published and its turns of the event loop.
'use strict';
const { execFileSync, fork } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Publisher } = require('..');

const WORKER = path.join(__dirname, 'pubsub-worker.js');
const MiB = 1024 * 1024;
const tick = (ms) => new Promise((r) => setTimeout(r, ms));

function ask(child, msg, key) {
  return new Promise((resolve, reject) => {
    const onExit = (code) => { child.off('message', on); reject(new Error(`worker exited (${code})`)); };
    const on = (m) => {
      if (m === key || (m && typeof m === 'object' && key in m)) {
        child.off('message', on);
        child.off('exit', onExit);
        resolve(m);
      }
    };
    child.on('message', on);
    child.once('exit', onExit);
    if (msg !== null) child.send(msg);
  });
}

const pct = (sorted, q) => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]);
const median = (xs) => pct([...xs].sort((a, b) => a - b), 0.5);

/**
 * loan() waits, in 0.1 µs buckets up to 10 ms (and the max): recording one costs the same in both arms and
 * allocates nothing — a growing array of every wait, kept in one arm only, made that arm's publisher slower.
 */
class Waits {
  counts = new Float64Array(100001);
  n = 0;
  max = 0;
  #armMax = 0;
  add(us) {
    this.counts[Math.min(100000, Math.floor(us * 10))]++;
    this.n++;
    if (us > this.max) this.max = us;
    if (us > this.#armMax) this.#armMax = us;
  }
  /** The longest wait since the last call. */
  armMax() {
    const m = this.#armMax;
    this.#armMax = 0;
    return m;
  }
  pct(q) {
    let want = q * this.n, i = 0;
    for (; i < this.counts.length - 1 && want >= this.counts[i]; i++) want -= this.counts[i];
    return i / 10;
  }
}

/** µs this process waited on a run queue (/proc/self/schedstat), or 0. */
function runqueueWait() {
  try {
    return Number(fs.readFileSync('/proc/self/schedstat', 'utf8').split(' ')[1]) / 1000;
  } catch {
    return 0;
  }
}

/** % of the last 10 s in which some task waited for a CPU (/proc/pressure/cpu, Linux 4.20 with PSI), or null. */
function cpuPressure() {
  try {
    return Number(/some avg10=([\d.]+)/.exec(fs.readFileSync('/proc/pressure/cpu', 'utf8'))[1]);
  } catch {
    return null;
  }
}

/** The two CPUs to pin to, or null (no taskset, or fewer than 2 CPUs allowed). */
function pinCpus() {
  try {
    const list = execFileSync('taskset', ['-c', '-p', String(process.pid)], { encoding: 'utf8' }).split(':')[1].trim();
    const cpus = list.split(',').flatMap((r) => {
      const [a, b = a] = r.split('-').map(Number);
      return Array.from({ length: b - a + 1 }, (_, i) => a + i);
    });
    return cpus.length >= 2 ? [cpus[0], cpus[1], list] : null;
  } catch {
    return null;
  }
}

const pin = (pid, cpus) => execFileSync('taskset', ['-a', '-c', '-p', String(cpus), String(pid)], { stdio: 'ignore' });

/**
 * One arm: the fast subscriber (beside the slow and the stuck one when `beside`) for `ms`. The slow and
 * the stuck peer are processes that live through every arm and attach only for the beside ones: forked
 * afresh for each arm, their start-up (V8's compiler and collector threads run on for a while after the
 * first connect) fell inside the beside arms and took CPU from the fast subscriber and the publisher.
 */
async function arm(pub, fast, others, beside, ms, waits) {
  const extra = beside ? others : [];
  await Promise.all(extra.map((c) => ask(c, 'attach', 'attached')));
  while (pub.subscriberCount < 1 + extra.length) await tick(5);
  const f0 = await ask(fast, 'count', 'count');
  const cpu0 = process.cpuUsage(), wait0 = runqueueWait();
  const t0 = process.hrtime.bigint();
  const end = t0 + BigInt(ms) * 1000000n;
  // the loop awaits nothing but the pool: the publisher itself lets the event loop turn (at most TURN_SAMPLES
  // loans between turns); turns are counted by an immediate that re-arms itself each turn
  let n = 0, turns = 0, counting = true;
  const count = () => { turns++; if (counting) setImmediate(count); };
  setImmediate(count);
  while (process.hrtime.bigint() < end) {
    const a = process.hrtime.bigint();
    const loan = await pub.loan();
    waits.add(Number(process.hrtime.bigint() - a) / 1000);
    loan.bytes.writeUInt32LE(n, 0);
    await loan.send(MiB);
    n++;
  }
  counting = false;
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0), wait = runqueueWait() - wait0;
  const f1 = await ask(fast, 'count', 'count');
  await Promise.all(extra.map((c) => ask(c, 'leave', 'left')));
  while (pub.subscriberCount > 1) await tick(5);
  const got = f1.count - f0.count;
  return {
    rate: got / secs, published: n / secs, turns: turns / secs,
    pubCpuUs: (cpu.user + cpu.system) / Math.max(1, n), pubWaitMs: wait / 1000 / secs,
    fastCpuUs: (f1.cpu - f0.cpu) / Math.max(1, got), fastWaitUs: (f1.wait - f0.wait) / Math.max(1, got),
    fastIdleUs: (f1.idle - f0.idle) / Math.max(1, got), fastMaxIdleMs: f1.maxIdle / 1000, loanMaxUs: waits.armMax(),
  };
}

/** Medians over arms of each figure of arm(). */
function summary(arms) {
  return Object.fromEntries(Object.keys(arms[0]).map((k) => [k, median(arms.map((a) => a[k]))]));
}

async function run({ quick = false, pairs = quick ? 16 : 60, ms = 250, pinned = false } = {}) {
  const pub = Publisher.create({ slotSize: MiB, maxSubscribers: 3, name: 'bench-fair' });
  pub.sock = path.join(os.tmpdir(), `memseal-bench-fair-${process.pid}.sock`);
  fs.rmSync(pub.sock, { force: true });
  await pub.listen(pub.sock);
  const fast = fork(WORKER, ['sub', pub.sock], { stdio: 'inherit' });
  const others = ['slowsub', 'rawsub'].map((m) => fork(WORKER, [m, pub.sock, 'on-demand'], { stdio: 'inherit' }));
  const cpus = pinned ? pinCpus() : null;
  const loadavg = [os.loadavg()[0]], pressure = [cpuPressure()], ncpu = os.availableParallelism();  // before pinning
  try {
    await ask(fast, null, 'attached');
    if (cpus) {
      pin(process.pid, cpus[0]);
      pin(fast.pid, cpus[1]);
    }
    await arm(pub, fast, others, true, ms, new Waits());  // warm-up of every process, dropped
    await arm(pub, fast, others, false, ms, new Waits());
    const alone = [], beside = [], waits = [new Waits(), new Waits()];
    for (let i = 0; i < pairs; i++) {
      const first = i % 2 === 1;
      const a = await arm(pub, fast, others, first, ms, waits[first ? 1 : 0]);
      const b = await arm(pub, fast, others, !first, ms, waits[first ? 0 : 1]);
      alone.push(first ? b : a);
      beside.push(first ? a : b);
    }
    loadavg.push(os.loadavg()[0]);
    pressure.push(cpuPressure());
    const ratios = alone.map((a, i) => beside[i].rate / a.rate).sort((x, y) => x - y);
    return { pairs, ms, pinned: cpus ? `${cpus[0]},${cpus[1]}` : null, cpus: ncpu, loadavg, pressure, share: pct(ratios, 0.5), min: ratios[0],
      max: ratios[ratios.length - 1], ratios, arms: { alone, beside }, alone: summary(alone), beside: summary(beside),
      p50: waits[1].pct(0.5), p99: waits[1].pct(0.99), max99: waits[1].max, aloneP99: waits[0].pct(0.99) };
  } finally {
    if (cpus) pin(process.pid, cpus[2]);
    pub.close();
    for (const c of [fast, ...others]) if (c.connected) c.disconnect();
  }
}

/** A result of the bench before the pairs (one ratio of medians: soloRate, mixedRate), as an older bench.json holds. */
function oldReport(f) {
  return [`Fairness (1 MiB slots, \`delivery: 'latest'\`, ${f.runs} interleaved runs of ${f.ms / 1000} s, before the pairs): the fast ` +
    `subscriber read ${f.soloRate.toFixed(0)} samples/s alone and ${f.mixedRate.toFixed(0)}/s beside the slow and the stuck one ` +
    `(${(f.share * 100).toFixed(1)} %); loan() p99 ${f.p99.toFixed(1)} µs. Standalone: \`node bench/pubsub-fair.js\`.`, ''];
}

function report(f) {
  if (f.alone === undefined) return oldReport(f);
  const a = f.alone, b = f.beside, pc = (x) => `${(x * 100).toFixed(1)} %`;
  const pressure = f.pressure?.[0] == null ? '' : `, CPU pressure (some, 10 s) ${f.pressure.map((x) => `${x.toFixed(0)} %`).join(' → ')}`;
  return [`Fairness (1 MiB slots, \`delivery: 'latest'\`; ${f.pairs} pairs of ${f.ms / 1000} s arms, alone and beside, order alternating; ` +
    `${f.pinned ? `publisher and fast subscriber pinned to CPUs ${f.pinned}` : 'not pinned'}; load average ` +
    `${f.loadavg.map((x) => x.toFixed(1)).join(' → ')} on ${f.cpus} CPUs${pressure}): the fast subscriber's rate beside one that ` +
    'sleeps 100 ms per sample and a raw peer that never releases, over its rate alone in the same pair: ' +
    `median ${pc(f.share)} (min ${pc(f.min)}, max ${pc(f.max)}); ${a.rate.toFixed(0)} samples/s alone, ${b.rate.toFixed(0)}/s beside (medians). ` +
    `The publisher's loan() waits p50 ${f.p50.toFixed(1)} µs, p99 ${f.p99.toFixed(1)} µs, max ${f.max99.toFixed(0)} µs beside them ` +
    '(the p99 is the turn of the event loop the publisher leaves every 16 samples, not a subscriber).',
  '', 'What the figure means: the median of the per-pair ratios says whether the slow and the stuck subscriber cost the fast ' +
    'one anything through the pool; the min–max range is the machine (on shared CPUs one arm in a pair can lose hundreds of ' +
    'ms to other work). Where the time went, per arm (medians over the arms): the pool\'s part is the CPU per sample on both ' +
    'sides, which should be the same alone and beside; the rest is waiting — for a CPU, or for the publisher\'s answer.',
  '', '| per arm (medians) | alone | beside |', '|---|---:|---:|',
  ...[['fast subscriber: samples/s', 'rate', 0], ['fast subscriber: CPU µs per sample', 'fastCpuUs', 1],
    ['fast subscriber: waiting for a CPU, µs per sample', 'fastWaitUs', 1], ['fast subscriber: waiting for the next sample, µs per sample', 'fastIdleUs', 1],
    ['fast subscriber: longest wait for a sample, ms', 'fastMaxIdleMs', 1],
    ['publisher: samples published/s', 'published', 0], ['publisher: CPU µs per sample published', 'pubCpuUs', 2],
    ['publisher: event-loop turns/s', 'turns', 0], ['publisher: waiting for a CPU, ms per s', 'pubWaitMs', 0],
    ['publisher: longest loan() wait, µs', 'loanMaxUs', 0]]
    .map(([what, k, d]) => `| ${what} | ${a[k].toFixed(d)} | ${b[k].toFixed(d)} |`),
  '', 'Standalone: `node bench/pubsub-fair.js` (`--pin` pins the publisher and the fast subscriber to two CPUs).', ''];
}

function targets(f) {
  const range = f.min === undefined ? '' : ` (${(f.min * 100).toFixed(0)}–${(f.max * 100).toFixed(0)} %)`;
  return [[`fairness: fast subscriber beside a slow and a stuck one, ${f.min === undefined ? '' : 'median per-pair '}share of its solo rate`, '≥ 95 %',
    `${(f.share * 100).toFixed(1)} %${range}`, f.share >= 0.95],
  ['fairness: publisher loan() p99 wait beside them', '< 1 ms', `${(f.p99 / 1000).toFixed(3)} ms`, f.p99 < 1000]];
}

module.exports = { run, report, targets };

if (require.main === module) {
  const argv = process.argv;
  const num = (flag) => (argv.includes(flag) ? Number(argv[argv.indexOf(flag) + 1]) : undefined);
  run({ quick: argv.includes('--quick'), pairs: num('--pairs'), ms: num('--ms'), pinned: argv.includes('--pin') }).then((f) => {
    process.stdout.write(`${report(f).join('\n')}\n`);
    for (const t of targets(f)) console.log(t.join(' | '));
  }).catch((err) => { console.error(err); process.exit(1); });
}
