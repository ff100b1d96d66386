// Streams: Publisher/Subscriber over a sealed slot pool against child.send() (advanced
// serialization), one SealedBuffer per message, and raw bytes over a Unix stream socket (net),
// side by side in one run. Called from bench/run.js; `node bench/pubsub.js [--quick]` runs it alone.
//
// A stream is N samples of one size sent back to back; the figure is the time per sample from the
// first send to "the receiver has read one byte per page of every sample" (ms), and the CPU time
// of every process involved per sample (µs). In-place ("loan") samples are written by the
// producer straight into the slot: the bench stamps a sequence number into the slot and sends it,
// because producing the bytes costs the same in every method and is not part of moving them.
'use strict';
const { fork } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const lib = require('./lib');
const fairness = require('./pubsub-fair');
const { Publisher, SealedBuffer, spawnWithChannel } = require('..');

const WORKER = path.join(__dirname, 'pubsub-worker.js');
const KiB = 1024, MiB = 1024 * KiB;
const TICK = 1e6 / 100;  // µs per clock tick in /proc/<pid>/stat (USER_HZ 100)

function waitFor(child, what) {
  return new Promise((resolve, reject) => {
    const onMsg = (m) => { if (m === what) { child.off('message', onMsg); child.off('exit', onExit); resolve(); } };
    const onExit = (code) => reject(new Error(`worker exited (${code}) before '${what}'`));
    child.on('message', onMsg);
    child.once('exit', onExit);
  });
}

/** CPU time (µs) of a process so far, from /proc/<pid>/stat (utime + stime). */
const cpuOf = (pid) => lib.cpuTicks(pid) * TICK;

function sockPath(tag) {
  const p = path.join(os.tmpdir(), `memseal-bench-${tag}-${process.pid}.sock`);
  fs.rmSync(p, { force: true });
  return p;
}

/** Receivers of one method: `send(i)` emits sample i to all of them; `close()`. */
async function pool(size, count, { inPlace = false, slots, maxHeld }) {
  // every sample must reach every receiver here: delivery 'all' (the fairness row measures 'latest').
  // Given `slots`, each subscriber's quota is what fits; given `maxHeld`, Publisher.create() derives the slots.
  const pub = Publisher.create({ slots, slotSize: size, name: 'bench-pool', maxSubscribers: count,
    maxHeld: maxHeld ?? Math.floor((slots - 1) / count), delivery: 'all', slowTimeout: Infinity });
  const p = sockPath('pool');
  await pub.listen(p);
  const children = Array.from({ length: count }, () => fork(WORKER, ['sub', p], { stdio: 'inherit' }));
  await Promise.all(children.map((c) => waitFor(c, 'attached')));
  while (pub.subscriberCount < count) await new Promise((r) => setTimeout(r, 5));
  return {
    children,
    pub,
    send: inPlace
      ? async (src, i) => {
        const loan = await pub.loan();
        loan.bytes.writeUInt32LE(i, 0);
        return loan.send(size);
      }
      : (src) => pub.publish(src),
    close: () => { pub.close(); children.forEach((c) => c.disconnect()); },
  };
}

async function ipc(count) {
  const children = Array.from({ length: count }, () => fork(WORKER, ['ipc'], { serialization: 'advanced', stdio: 'inherit' }));
  return {
    children,
    send: (src) => { for (const c of children) c.send(src); },
    close: () => children.forEach((c) => c.disconnect()),
  };
}

async function sealed(count) {
  const peers = Array.from({ length: count }, () => spawnWithChannel(process.execPath, [WORKER, 'sealed'],
    { stdio: ['inherit', 'inherit', 'inherit', 'ipc'] }));
  return {
    children: peers.map((p) => p.child),
    send: async (src) => {
      const sb = SealedBuffer.from(src);
      await Promise.all(peers.map((p) => p.channel.sendBuffer(sb)));
      sb.close();
    },
    close: () => peers.forEach((p) => { p.channel.close(); p.child.disconnect(); }),
  };
}

async function netStream(count) {
  const p = sockPath('net');
  const server = net.createServer();
  server.listen(p);
  await new Promise((r) => server.once('listening', r));
  const children = Array.from({ length: count }, () => fork(WORKER, ['net', p], { stdio: 'inherit' }));
  const socks = [];
  while (socks.length < count) socks.push(await new Promise((r) => server.once('connection', r)));
  server.close();
  const head = Buffer.alloc(8);
  return {
    children,
    send: async (src) => {
      head.writeBigUInt64LE(BigInt(src.length));
      let ok = true;
      for (const s of socks) { s.write(head); ok = s.write(src) && ok; }
      if (!ok) await Promise.all(socks.map((s) => (s.writableNeedDrain ? new Promise((r) => s.once('drain', r)) : null)));
    },
    close: () => socks.forEach((s) => s.end()),
  };
}

/** Streams n samples through `m`, `runs` times; per-sample ms and CPU µs (medians), and the peak PSS growth. */
async function stream(m, src, n, runs, { memory = false } = {}) {
  let sent = 0;
  const once = async (k) => {
    const done = Promise.all(m.children.map((c) => waitFor(c, 'done')));
    for (const c of m.children) c.send({ expect: sent + k });
    for (let i = 0; i < k; i++) await m.send(src, sent + i);
    sent += k;
    await done;
  };
  // Memory: the baseline is taken before the first sample, once every receiver is up, so what the method
  // itself costs counts (pool pages faulted in, heaps grown to hold queued copies), warm-up included.
  const pids = [process.pid, ...m.children.map((c) => c.pid)];
  const pssBase = memory ? pids.reduce((s, pid) => s + lib.pss(pid), 0) : 0;
  let peak = 0;
  // sampled every 20 ms in a process of its own: reading nine processes' smaps_rollup here would block
  // this process's event loop (the publisher's) for as long as the kernel walks their page tables
  const sampler = memory ? lib.pssSampler(pids, 20) : null;
  await once(Math.max(2, Math.ceil(n / 10)));  // warm-up: pages faulted in, code optimized
  const ms = [], cpu = [];
  for (let r = 0; r < runs; r++) {
    const c0 = pids.reduce((s, pid) => s + cpuOf(pid), 0);
    const a = process.hrtime.bigint();
    await once(n);
    ms.push(Number(process.hrtime.bigint() - a) / 1e6 / n);
    cpu.push((pids.reduce((s, pid) => s + cpuOf(pid), 0) - c0) / n);
  }
  let poolPss;
  if (sampler) {
    peak = Math.max(peak, (await sampler.stop()) - pssBase, pids.reduce((s, pid) => s + lib.pss(pid), 0) - pssBase);
    // the part that is the pool's pages (0 for the other methods), all processes together
    poolPss = pids.reduce((s, pid) => s + lib.mappingPss(pid, '/memfd:bench-pool'), 0);
  }
  return { ...lib.stats(ms), cpuUs: lib.stats(cpu).median, pssDelta: memory ? peak : undefined, poolPss };
}

/** A function streaming `n` more samples through `m`: ms per sample, CPU µs per sample of all its processes. */
function streamer(m, src) {
  let sent = 0;
  const pids = [process.pid, ...m.children.map((c) => c.pid)];
  return async (n) => {
    const done = Promise.all(m.children.map((c) => waitFor(c, 'done')));
    for (const c of m.children) c.send({ expect: sent + n });
    const c0 = pids.reduce((s, pid) => s + cpuOf(pid), 0);
    const a = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await m.send(src, sent + i);
    sent += n;
    await done;
    return { ms: Number(process.hrtime.bigint() - a) / 1e6 / n, cpuUs: (pids.reduce((s, pid) => s + cpuOf(pid), 0) - c0) / n };
  };
}

/**
 * Compares streams side by side: every method's peers are up at once and take turns. First each warms up
 * (in turns, chunks of ~50 ms) until it has streamed `warmSamples` samples or for `warmMs` — V8 optimizes
 * the send and receive paths only after some thousands of samples, and a method measured cold pays its
 * compiler. Then `rounds` rounds, each method once per round (the order rotating), each streaming about
 * `roundMs` worth of samples at its own warm-up rate (at least `minN`). Per method: ms per sample
 * (median, min, max over the rounds), CPU µs per sample of all its processes (median), samples per round.
 */
async function compare(streamers, { warmSamples, warmMs, roundMs, rounds, minN }) {
  const keys = Object.keys(streamers);
  const rate = {}, warm = {};
  for (const k of keys) warm[k] = { n: 0, ms: 0, chunk: minN };
  for (let pending = keys; pending.length > 0; pending = keys.filter((k) => warm[k].n < warmSamples && warm[k].ms < warmMs)) {
    for (const k of pending) {
      const w = warm[k];
      const r = await streamers[k](w.chunk);
      w.n += w.chunk;
      w.ms += r.ms * w.chunk;
      rate[k] = r.ms;
      w.chunk = Math.max(minN, Math.min(warmSamples - w.n, Math.ceil(50 / Math.max(r.ms, 1e-6))));
    }
  }
  const ms = Object.fromEntries(keys.map((k) => [k, []]));
  const cpu = Object.fromEntries(keys.map((k) => [k, []]));
  const per = Object.fromEntries(keys.map((k) => [k, Math.max(minN, Math.min(1e7, Math.ceil(roundMs / Math.max(rate[k], 1e-6))))]));
  for (let r = 0; r < rounds; r++) {
    lib.gc();
    for (let i = 0; i < keys.length; i++) {
      const k = keys[(i + r) % keys.length];
      const x = await streamers[k](per[k]);
      ms[k].push(x.ms);
      cpu[k].push(x.cpuUs);
    }
  }
  return Object.fromEntries(keys.map((k) => [k, { ...lib.stats(ms[k]), cpuUs: lib.stats(cpu[k]).median, samples: per[k], warm: warm[k].n }]));
}

/**
 * A run with no samples: the same pool and subscribers (fresh processes), set up the same way, left alone
 * for `ms`; the peak growth of their summed PSS over the same baseline is what the processes cost by
 * themselves (V8 finishing its start-up), which the pool's row is charged with as well.
 */
async function idle(m, ms) {
  const pids = [process.pid, ...m.children.map((c) => c.pid)];
  const sum = () => pids.reduce((s, pid) => s + lib.pss(pid), 0);
  const base = sum();
  let peak = 0;
  for (const end = Date.now() + ms; Date.now() < end;) {
    await new Promise((r) => setTimeout(r, 20));
    peak = Math.max(peak, sum() - base);
  }
  m.close();
  return { ms, pssDelta: peak };
}

const METHODS = [
  { key: 'publish', name: 'pool publish() (one copy)', color: '#1565c0' },
  { key: 'loan', name: 'pool loan() in place', color: '#00897b' },
  { key: 'ipcAdvanced', name: 'child.send() advanced', color: '#e53935' },
  { key: 'sealed', name: 'SealedBuffer per sample', color: '#42a5f5' },
  { key: 'net', name: 'Unix stream socket (net)', color: '#8e24aa' },
];

/** Each subscriber's quota in the fan-out: samples it may hold or have announced (the pool: 8 × 4 + 2 slots). */
const FAN_HELD = 4;

/** Warm-up and rounds of compare(), full and quick. */
const COMPARE = {
  full: { warmSamples: 10000, warmMs: 1000, roundMs: 150, rounds: 5, minN: 3 },
  quick: { warmSamples: 500, warmMs: 100, roundMs: 30, rounds: 2, minN: 2 },
};

/** The peers of one method: `key` of METHODS (or 'loanQ1': in place, a 16-slot pool shared by `count`). */
function open(key, size, count, slots) {
  if (key === 'publish' || key === 'loan') return pool(size, count, count === 1 ? { slots, inPlace: key === 'loan' } : { maxHeld: FAN_HELD, inPlace: key === 'loan' });
  if (key === 'loanQ1') return pool(size, count, { slots: 16, inPlace: true });
  if (key === 'copy') return copyFloor(size, slots);
  return key === 'ipcAdvanced' ? ipc(count) : key === 'sealed' ? sealed(count) : netStream(count);
}

/**
 * The floor of a one-copy stream: the same bytes copied once, in this process, into `slots` slots of a
 * memfd's shared pages (the kind of memory a pool slot is) — no receiver, no message.
 */
function copyFloor(size, slots) {
  const b = SealedBuffer.alloc(size * slots, { name: 'bench-copy-floor' });
  const dst = b.bytes;
  return { children: [], send: (src, i) => { dst.set(src, (i % slots) * size); }, close: () => b.close() };
}

/** All of `keys` up at once, compared side by side, then closed. */
async function sideBySide(keys, size, count, slots, cfg) {
  const src = lib.pattern(Buffer.alloc(size));
  const peers = {};
  for (const k of keys) peers[k] = await open(k, size, count, slots);
  try {
    return { result: await compare(Object.fromEntries(keys.map((k) => [k, streamer(peers[k], src)])), cfg), peers };
  } finally {
    for (const k of keys) peers[k].close();
  }
}

async function run({ quick = false, log = console.error } = {}) {
  const sizes = quick ? [4 * KiB, 1 * MiB] : [4 * KiB, 64 * KiB, 1 * MiB, 64 * MiB];
  const slotsFor = (size) => (size >= 64 * MiB ? 4 : size >= MiB ? 16 : 64);
  const cfg = quick ? COMPARE.quick : COMPARE.full;
  const keys = [...METHODS.map((x) => x.key), 'copy'];
  const rows = [];
  for (const size of sizes) {
    const { result } = await sideBySide(keys, size, 1, slotsFor(size), cfg);
    rows.push({ size, slots: slotsFor(size), ...result });
    log(`stream ${lib.fmtSize(size)}: ${keys.map((k) => `${k} ${lib.fmtMs(result[k].median)}`).join('  ')} ms/sample`);
  }
  // fan-out of a 1 MiB stream to 8 (quick: 4) subscribers: the time side by side; then the memory, one method
  // at a time in fresh processes (a method's leftovers in the shared parent would count against the next)
  const fsize = 1 * MiB, fcount = quick ? 4 : 8, fn = quick ? 30 : 300;
  const fan = { size: fsize, subscribers: fcount, samples: fn, ipcSamples: Math.ceil(fn / 5), maxHeld: FAN_HELD, poolSize: 0, compare: cfg };
  const { result, peers } = await sideBySide(['publish', 'loan', 'loanQ1', 'ipcAdvanced', 'sealed', 'net'], fsize, fcount, 16, cfg);
  fan.poolSize = peers.publish.pub.size;
  fan.q1PoolSize = peers.loanQ1.pub.size;
  Object.assign(fan, result);
  const fsrc = lib.pattern(Buffer.alloc(fsize));
  for (const key of ['publish', 'loan', 'ipcAdvanced', 'sealed', 'net']) {
    const m = await open(key, fsize, fcount, 16);
    // child.send() has no backpressure: every sample is queued (and serialized) for every child at once;
    // fewer samples keep that queue to a few hundred MiB
    const t = Date.now();
    const mem = await stream(m, fsrc, key === 'ipcAdvanced' ? Math.ceil(fn / 5) : fn, 1, { memory: true });
    m.close();
    fan[key].pssDelta = mem.pssDelta;
    fan[key].poolPss = mem.poolPss;
    if (key === 'publish') fan.idle = await idle(await open('publish', fsize, fcount, 16), Date.now() - t);
  }
  log(`fan-out ${lib.fmtSize(fsize)} x ${fcount}: publish ${lib.fmtMs(fan.publish.median)}  loan ${lib.fmtMs(fan.loan.median)}  ` +
    `loan (16 slots) ${lib.fmtMs(fan.loanQ1.median)}  child.send ${lib.fmtMs(fan.ipcAdvanced.median)}  SealedBuffer ${lib.fmtMs(fan.sealed.median)}  ` +
    `net ${lib.fmtMs(fan.net.median)} ms/sample; PSS ${(fan.publish.pssDelta / MiB).toFixed(1)} MiB vs pool ${(fan.poolSize / MiB).toFixed(1)} MiB`);
  const fair = await fairness.run({ quick });
  log(fairness.report(fair)[0]);
  await new Promise((r) => setTimeout(r, 100));
  return { methods: METHODS, rows, fanout: fan, fair, compare: cfg };
}

/** Markdown lines for docs/bench.md. */
function report(p, machine) {
  const { fmtSize, fmtMs } = lib;
  const L = ['## 5. Streams: Publisher/Subscriber over a sealed slot pool', ''];
  if (machine) {
    const load = machine.loadavg ? `; 1-minute load average ${machine.loadavg.map((x) => x.toFixed(1)).join(' → ')} on ${machine.cores} cores: other work shared the CPUs, so absolute times are high and ratios noisy` : '';
    L.push(`Measured ${machine.date} (Linux ${machine.kernel}, Node ${machine.node}), separately from sections 1–4 (\`npm run bench -- --pubsub-only\`)${load}.`, '');
  }
  const c = p.compare;
  const how = c ? `All five methods' peers are up at once and take turns: each first warms up (in turns, until it has streamed ` +
    `${c.warmSamples} samples or for ${c.warmMs} ms: V8 optimizes the send and receive paths only after some thousands of samples), ` +
    `then ${c.rounds} rounds, each method once per round in rotating order, streaming about ${c.roundMs} ms worth of samples at its own rate; ` +
    'the figure is the median over the rounds (min–max in docs/bench.json).' : '';
  L.push('A stream of samples of one size sent back to back to one child process; time per sample from the first send to ' +
    '"the receiver read one byte per page of every sample" (ms, lower is better), then how many times faster than ' +
    '`child.send()` each memseal way is, and the CPU time of both processes per sample. "In place": the producer ' +
    `writes into the loaned slot (here it stamps a sequence number; producing the bytes costs the same in every method). ${how}`, '');
  L.push(`| size | pool slots | ${p.methods.map((x) => x.name).join(' | ')} | one copy, no receiver (floor of publish) | publish ÷ IPC | loan ÷ IPC | ` +
    'publish ÷ its floor | CPU µs/sample: publish · loan · IPC · SealedBuffer · net |');
  L.push(`|---|---:|${p.methods.map(() => '---:').join('|')}|---:|---:|---:|---:|---|`);
  for (const row of p.rows) {
    const ipcMs = row.ipcAdvanced.median;
    const floor = row.copy ? [fmtMs(row.copy.median), `${(row.publish.median / row.copy.median).toFixed(2)}×`] : ['—', '—'];
    L.push(`| ${fmtSize(row.size)} | ${row.slots ?? '—'} | ${p.methods.map((x) => fmtMs(row[x.key].median)).join(' | ')} | ${floor[0]} | ` +
      `${(ipcMs / row.publish.median).toFixed(1)}× | ${(ipcMs / row.loan.median).toFixed(1)}× | ${floor[1]} | ` +
      `${p.methods.map((x) => row[x.key].cpuUs.toFixed(0)).join(' · ')} |`);
  }
  const f = p.fanout;
  const quota = f.maxHeld ? `Publisher.create({ slotSize: 1 MiB, maxSubscribers: ${f.subscribers}, maxHeld: ${f.maxHeld}, delivery: 'all' }): ` +
    `each subscriber may be up to ${f.maxHeld} samples behind, the pool has ${f.subscribers} × ${f.maxHeld} + 2 slots` : 'a pool';
  L.push('', `Fan-out: one ${fmtSize(f.size)} stream to ${f.subscribers} subscribers through ${quota} (${(f.poolSize / MiB).toFixed(1)} MiB). ` +
    'Time: every method\'s peers up at once, compared side by side as above. ' +
    `Memory: one method at a time in fresh processes (${f.samples} samples; ${f.ipcSamples ?? f.samples} for \`child.send()\`, which queues every sample ` +
    'for every child at once): peak growth of the summed PSS of all processes, sampled every 20 ms, over the baseline taken once every ' +
    'receiver is up (before the first sample).', '');
  L.push('| method | ms per sample (all receivers done) | × faster than IPC | CPU µs per sample, all processes | total PSS growth | × pool size | of which the pool\'s pages |', '|---|---:|---:|---:|---:|---:|---:|');
  for (const [key, name] of [['publish', 'pool publish()'], ['loan', 'pool loan() in place'],
    ['loanQ1', `pool loan() in place, a 16-slot pool (maxHeld 1: every subscriber in step)`], ['ipcAdvanced', 'child.send() advanced'],
    ['sealed', 'SealedBuffer per sample'], ['net', 'Unix stream socket (net)']]) {
    const x = f[key];
    if (!x) continue;
    const mem = x.pssDelta === undefined ? '— | —' : `${(x.pssDelta / MiB).toFixed(1)} MiB | ${(x.pssDelta / f.poolSize).toFixed(2)}×`;
    L.push(`| ${name} | ${fmtMs(x.median)} | ${(f.ipcAdvanced.median / x.median).toFixed(1)}× | ${x.cpuUs.toFixed(0)} | ${mem} | ` +
      `${x.poolPss ? `${(x.poolPss / MiB).toFixed(1)} MiB` : '—'} |`);
  }
  if (f.idle) {
    L.push(`| the pool's processes, no samples (${(f.idle.ms / 1000).toFixed(1)} s) | — | — | — | ${(f.idle.pssDelta / MiB).toFixed(1)} MiB | ` +
      `${(f.idle.pssDelta / f.poolSize).toFixed(2)}× | — |`);
    L.push('', `The last row is a run with no samples: the same pool and subscribers, fresh, left alone as long as the publish() run took. ` +
      `Its growth is the processes' own (V8 finishing its start-up); what the pool costs is publish()'s growth less that: ` +
      `${((f.publish.pssDelta - f.idle.pssDelta) / f.poolSize).toFixed(2)}× the pool size.`);
  }
  L.push('', 'Where the time goes. A pool sample costs one small message per batch of samples (slot, sequence, length, meta) ' +
    'and, for publish(), one copy into a slot whose pages are already mapped on both sides: no new pages, no page faults, ' +
    'no frees — so the CPU per sample is the copy plus the receiver reading it. In place, only the messages and the ' +
    'receiver\'s reads remain. `child.send()` serializes, copies through the kernel socket and allocates a new Buffer in ' +
    'the receiver (whose heap then needs collecting); a SealedBuffer per sample pays a new memfd, fresh pages, seals and ' +
    'a mapping in every receiver; `net` copies twice through the kernel. A one-copy stream cannot beat one copy: the ' +
    '"floor of publish" column copies the same bytes once into memfd pages in the same process, with no receiver; ' +
    'the larger the sample, the closer publish() comes to it (the rest is the announcement and the receiver), and the ' +
    'ratio to `child.send()` becomes the machine\'s copy speed against `child.send()`\'s copies and allocations. In the fan-out, most of the time is waking processes: with a quota of ' +
    'one sample (the 16-slot row) each subscriber is woken for every sample and the publisher once per subscriber, on 2 ' +
    'cores; a quota of 4 lets one wake-up carry several samples. Memory: the pool\'s pages are ' +
    'shared, so their PSS summed over all processes is at most the pool size however many subscribers map it; the rest ' +
    'of a pool method\'s growth is in the processes themselves. The run with no samples shows how much of that is ' +
    'Node starting up on its own; what remains comes with receiving (heaps and compiled code of the receive path, ' +
    'per process), which the other methods pay as well.');
  if (p.fair) L.push('', ...fairness.report(p.fair));
  L.push('', '![stream time per sample by size](bench-pubsub.svg)', '');
  return L;
}

/** Target rows for the table in docs/bench.md: [what, target, got, ok]. */
function targets(p) {
  const row = (size) => p.rows.find((r) => r.size === size);
  const out = [];
  const add = (size, key, label, want) => {
    const r = row(size);
    if (!r) return;
    const x = r.ipcAdvanced.median / r[key].median;
    out.push([`${lib.fmtSize(size)} stream, ${label}, vs child.send()`, `≥ ${want}×`, `${x.toFixed(1)}×`, x >= want]);
  };
  add(MiB, 'publish', 'one copy', 15);
  add(MiB, 'loan', 'in place', 50);
  add(64 * MiB, 'publish', 'one copy', 15);
  add(64 * MiB, 'loan', 'in place', 100);
  add(4 * KiB, 'publish', 'one copy', 3);
  const f = p.fanout;
  const fx = f.ipcAdvanced.median / f.publish.median;
  out.push([`fan-out of a 1 MiB stream to ${f.subscribers}, vs child.send()`, '≥ 30×', `${fx.toFixed(1)}×`, fx >= 30]);
  const mem = f.publish.pssDelta / f.poolSize;
  const pages = f.publish.poolPss ? `; the pool's pages: ${(f.publish.poolPss / f.poolSize).toFixed(2)}×` : '';
  const own = f.idle ? `; the same processes with no samples: ${(f.idle.pssDelta / f.poolSize).toFixed(2)}×` : '';
  // the target row itself is the headline (bench/headlines.js): growth less the processes' own warm-up
  out.push(['fan-out total PSS, from before the first sample (information)', '—', `${mem.toFixed(2)}× pool${pages}${own}`, null]);
  if (p.fair) out.push(...fairness.targets(p.fair));
  return out;
}

function svg(p, machine) {
  const series = p.methods.map((m) => ({ ...m, points: p.rows.map((r) => [r.size, r[m.key].median]) }));
  return lib.handoffSvg(series, `memseal streams: time per sample (${machine.cores} cores, Linux ${machine.kernel}, Node ${machine.node})`,
    'time per sample in a stream, first send to "receiver read one byte per page of every sample" (log scale, lower is better)');
}

module.exports = { run, report, targets, svg };

if (require.main === module) {
  const quick = process.argv.includes('--quick');
  run({ quick }).then((p) => {
    process.stdout.write(`${report(p).join('\n')}\n`);
    for (const t of targets(p)) console.log(t.join(' | '));
  }).catch((err) => { console.error(err); process.exit(1); });
}
