// Cluster-style snapshot row: one version of a SIZE dataset to READERS worker processes, three ways,
// interleaved round by round, each trial with fresh workers:
//   memseal       SnapshotPublisher.publish(sealedBuffer) to SnapshotReaders (the buffer is built, untimed, first)
//   child.send()  the parent's Buffer sent to each worker (advanced serialization)
//   build own     each worker builds the dataset itself (the same fill as the others)
// Timed: from the publish/send/"build" order until every worker has the version and has read one
// byte per page (each worker reports its checksum over IPC). For memseal also: until publish()
// resolved (every reader has it mapped). Memory: total PSS (smaps_rollup) of the parent and every
// worker once all have it, less their PSS before.
// Standalone: node bench/snapshot-cluster.js [--quick] [--size MiB] [--readers N] [--rounds N]
'use strict';
const { fork } = require('node:child_process');
const { once } = require('node:events');
const lib = require('./lib');

const MiB = 1 << 20;

// ---- worker ---------------------------------------------------------------------------------

async function worker(mode, size) {
  const memseal = require('..');
  const report = (bytes, version) => process.send({ version, sum: lib.checksum(bytes) });
  if (mode === 'memseal') {
    const reader = await memseal.SnapshotReader.attach(memseal.Channel.fromParent(), { maxSize: 2 ** 31 });
    global.gc();   // start-up garbage gone before the parent's baseline, so it does not drift down
    process.send('ready');
    for (;;) {
      const snap = await reader.next().catch(() => null);
      if (snap === null) break;
      report(snap.buffer.readonlyBytes, snap.version);   // PROT_READ, MAP_SHARED: the publisher's pages
      // held until the parent has measured; the next version (if any) replaces it
    }
    reader.close();
    return;
  }
  let held = null;   // what the worker has, kept until it is killed (as a real worker keeps its dataset)
  process.on('message', (m) => {
    if (m === 'build') {
      held = lib.pattern(Buffer.allocUnsafe(size));
      report(held, 1);
    } else {
      held = Buffer.isBuffer(m) ? m : Buffer.from(m.buffer, m.byteOffset, m.byteLength);
      report(held, 1);
    }
  });
  global.gc();
  process.send('ready');
}

// ---- parent ---------------------------------------------------------------------------------

function totalPss(pids) {
  let sum = 0;
  for (const pid of pids) sum += lib.pss(pid);
  return sum;
}

/**
 * Total PSS once the parent's garbage is gone: a previous trial's buffers (child.send() keeps
 * serialized copies) are freed some time after they are collected, which would otherwise show as
 * a drop in this trial. Collects until the figure stops moving.
 */
async function settledPss(pids) {
  let last = -Infinity;
  for (let i = 0; i < 20; i++) {
    global.gc?.();
    await new Promise((resolve) => setTimeout(resolve, 25));
    const now = totalPss(pids);
    if (Math.abs(now - last) < MiB) return now;
    last = now;
  }
  return last;
}

/** Starts `n` workers of `mode`; resolves once each said 'ready'. */
async function startWorkers(mode, n, size) {
  const memseal = require('..');
  const workers = [];
  for (let i = 0; i < n; i++) {
    const args = ['--worker', mode, String(size)];
    if (mode === 'memseal') {
      const { child, channel } = memseal.spawnWithChannel(process.execPath, ['--expose-gc', __filename, ...args],
        { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      workers.push({ child, channel });
    } else {
      workers.push({ child: fork(__filename, args, { execArgv: ['--expose-gc'], serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }) });
    }
  }
  await Promise.all(workers.map(({ child }) => once(child, 'message')));
  return workers;
}

async function stopWorkers(workers) {
  for (const { child } of workers) {
    child.kill('SIGKILL');
    if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
  }
}

/** Resolves with the times at which each worker reported; checks each checksum. */
function reports(workers, expected) {
  return Promise.all(workers.map(async ({ child }) => {
    const [m] = await once(child, 'message');
    if (m.sum !== expected) throw new Error(`worker ${child.pid}: checksum ${m.sum}, expected ${expected}`);
    return performance.now();
  }));
}

async function trial(method, size, readers) {
  const memseal = require('..');
  const expected = lib.checksum(lib.pattern(Buffer.allocUnsafe(size)));   // (a scratch copy, collected before the baseline)
  const workers = await startWorkers(method, readers, size);
  try {
    const pids = [process.pid, ...workers.map(({ child }) => child.pid)];
    const before = await settledPss(pids);
    const all = reports(workers, expected);
    let t0;
    let mappedMs = null;
    let release = () => {};
    if (method === 'memseal') {
      const publisher = memseal.SnapshotPublisher.create({ name: 'bench-snapshot' });
      for (const { channel } of workers) await publisher.attach(channel);
      const sb = memseal.SealedBuffer.create(size, (b) => { lib.pattern(b); }, { name: 'bench-snapshot' });
      release = () => { sb.close(); publisher.close(); };
      t0 = performance.now();
      const delivery = await publisher.publish(sb);
      mappedMs = performance.now() - t0;
      if (delivery.delivered !== readers) throw new Error(`delivered to ${delivery.delivered} of ${readers}`);
    } else {
      const data = method === 'ipc' ? lib.pattern(Buffer.allocUnsafe(size)) : 'build';   // the primary's copy counts
      t0 = performance.now();
      for (const { child } of workers) child.send(data);
    }
    const done = await all;
    const pssGrowth = totalPss(pids) - before;
    release();
    return { ms: Math.max(...done) - t0, mappedMs, pssGrowth };
  } finally {
    await stopWorkers(workers);
  }
}

const METHODS = [
  { key: 'memseal', label: 'memseal SnapshotPublisher' },
  { key: 'ipc', label: 'child.send() to each (advanced)' },
  { key: 'build', label: 'each worker builds its own' },
];

async function run({ quick = false, size = (quick ? 32 : 200) * MiB, readers = 4, rounds = quick ? 1 : 3, log = console.error } = {}) {
  const samples = Object.fromEntries(METHODS.map((m) => [m.key, []]));
  for (let round = 0; round < rounds; round++) {
    for (const m of METHODS) {
      const r = await trial(m.key, size, readers);
      samples[m.key].push(r);
      log(`snapshot cluster ${lib.fmtSize(size)} x${readers}, round ${round + 1}: ${m.key} ${r.ms.toFixed(1)} ms` +
        `${r.mappedMs === null ? '' : ` (mapped ${r.mappedMs.toFixed(1)} ms)`}, PSS +${(r.pssGrowth / MiB).toFixed(0)} MiB`);
    }
  }
  const summary = (xs) => ({ ...lib.stats(xs.map((x) => x.ms)), pssGrowth: lib.stats(xs.map((x) => x.pssGrowth)).median });
  const out = { size, readers, rounds };
  for (const m of METHODS) out[m.key] = summary(samples[m.key]);
  out.memseal.mapped = lib.stats(samples.memseal.map((x) => x.mappedMs));
  return out;
}

function report(r) {
  const L = [`## Cluster snapshot: one ${lib.fmtSize(r.size)} version to ${r.readers} workers`, ''];
  L.push('Until every worker has the version and has read one byte per page; fresh workers per trial, methods interleaved, ' +
    `${r.rounds} rounds (median). Standalone: \`node --expose-gc bench/snapshot-cluster.js\`.`, '');
  L.push('| method | time (ms) | total PSS growth, all processes | × payload |', '|---|---:|---:|---:|');
  for (const m of METHODS) {
    const x = r[m.key];
    L.push(`| ${m.label} | ${lib.fmtMs(x.median)} | ${(x.pssGrowth / MiB).toFixed(0)} MiB | ${(x.pssGrowth / r.size).toFixed(2)}× |`);
  }
  L.push('', `memseal: every reader had it mapped (\`publish()\` resolved) after ${lib.fmtMs(r.memseal.mapped.median)} ms; ` +
    `${(r.ipc.median / r.memseal.median).toFixed(1)}× faster than child.send(), ${(r.build.median / r.memseal.median).toFixed(1)}× faster than building it in each worker.`, '');
  return L;
}

module.exports = { run, report };

if (require.main === module) {
  const argv = process.argv.slice(2);
  if (argv[0] === '--worker') {
    worker(argv[1], Number(argv[2])).catch((err) => { console.error(err); process.exit(1); });
  } else {
    const opt = (name, dflt) => (argv.includes(name) ? Number(argv[argv.indexOf(name) + 1]) : dflt);
    const quick = argv.includes('--quick');
    run({ quick, size: opt('--size', quick ? 32 : 200) * MiB, readers: opt('--readers', 4), rounds: opt('--rounds', quick ? 1 : 3) })
      .then((r) => { process.stdout.write(`${report(r).join('\n')}\n`); })
      .catch((err) => { console.error(err); process.exit(1); });
  }
}
