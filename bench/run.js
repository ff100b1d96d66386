// memseal benchmarks, side by side with the alternatives.
// Usage: npm run bench [-- --quick] [-- --out DIR]
//   full run: every section in a fresh Node process of its own (the handoff: one process per size), exactly
//             as the standalone command printed beside each figure runs it; then writes docs/bench.md,
//             docs/bench.json, the charts and the README's headline block
//   --quick:  a smoke run (about a minute) written to bench/out/ (CI runs it so the code cannot rot)
//   --only SECTION[,SECTION] [--sizes 4K,64M]: only those sections (handoff, fanout, cycle, channel, pubsub,
//             release), written to --out (default bench/out/) as bench.json; prints the headline ratios
//   --handoff-only [--sizes 16,64]: the handoff without the JSON and net columns, written to --out as
//             handoff.json (scripts/bench-thp.sh runs it under each shmem THP policy)
//   --check:  runs the standalone command of every headline ratio in DIR/bench.json (default docs/) and
//             says whether each lands within ±25 % of the published one (scripts/bench-check.sh)
//   --report-only: rewrite DIR/bench.md, the charts and the README block from DIR/bench.json
// Within a section, methods are measured interleaved (bench/lib.js interleaved()). The machine's huge-page
// settings are read, never changed: see scripts/bench-thp.sh for that. No pass/fail on speed.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const lib = require('./lib');
const handoff = require('./handoff');
const headlines = require('./headlines');
const sections = require('./sections');
const pubsub = require('./pubsub');
const release = require('./release');
const snapshotCluster = require('./snapshot-cluster');
const typed = require('./typed');
const { hugePageSettings } = require('..');

const argv = process.argv.slice(2);
const opt = (name) => (argv.indexOf(name) >= 0 ? argv[argv.indexOf(name) + 1] : undefined);
const quick = argv.includes('--quick');
const handoffOnly = argv.includes('--handoff-only');
const only = handoffOnly ? ['handoff'] : opt('--only')?.split(',');
const DOCS = path.join(__dirname, '..', 'docs');
const outDir = opt('--out') ? path.resolve(opt('--out')) : quick || only ? path.join(__dirname, 'out') : DOCS;
const KiB = 1024, MiB = 1024 * KiB;
const SIZES = opt('--sizes') ? lib.parseSizes(opt('--sizes'))
  : quick ? [4 * KiB, 1 * MiB, 16 * MiB] : [4 * KiB, 64 * KiB, 1 * MiB, 16 * MiB, 64 * MiB, 256 * MiB];
const log = (...a) => console.error(...a);
const bin = (name) => lib.buildC(name);

// Hand-written notes at the end of docs/bench.md (what this machine is like) survive a regeneration.
const KEEP = '<!-- Hand-written from here on: `npm run bench` keeps everything below this line. -->';

/**
 * The sections, in the order the full run takes them. `run()` measures in this process; `parts()` (if
 * given) splits the section into standalone runs (extra arguments each) whose results `merge()` joins.
 * A new section is one entry here and one line in report().
 */
const SECTIONS = {
  handoff: { run: () => handoff.run({ sizes: SIZES, quick, lean: handoffOnly, cBin: bin('handoff'), log }),
    parts: () => SIZES.map((s) => ['--sizes', lib.sizeArg(s)]), merge: handoff.merge },
  fanout: { run: () => sections.fanout({ quick, cBin: bin('handoff') }) },
  cycle: { run: () => sections.cycle({ quick, cBin: bin('cycle') }) },
  channel: { run: () => sections.channel({ quick, cBin: bin('pingpong') }) },
  pubsub: { run: () => pubsub.run({ quick, log }) },
  release: { run: () => release.run({ rounds: quick ? 3 : 15, log }) },
  snapshotCluster: { run: () => snapshotCluster.run({ quick, log }) },
  typed: { run: () => typed.run({ quick, log }) },
};

const load = () => Number(os.loadavg()[0].toFixed(2));
const machine = () => ({ ...lib.machine(), hugePages: hugePageSettings(), loadAverage: [load()] });

/** Runs `node bench/run.js --only <key> <extra>` in a fresh process; returns its bench.json. */
function standalone(key, extra, { quiet = false } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `memseal-bench-${key}-`));
  try {
    const args = [__filename, '--only', key, ...extra, ...(quick ? ['--quick'] : []), '--out', dir];
    const res = spawnSync(process.execPath, args, { stdio: ['ignore', quiet ? 'ignore' : 2, 2] });
    if (res.status !== 0) throw new Error(`node bench/run.js --only ${key} ${extra.join(' ')} failed (${res.status ?? res.signal})`);
    return JSON.parse(fs.readFileSync(path.join(dir, 'bench.json'), 'utf8'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The full run: each section (each part of one) in a process of its own, the results joined. */
function full() {
  const r = { quick, machine: machine(), loadBySection: {} };
  for (const [key, s] of Object.entries(SECTIONS)) {
    const parts = (s.parts?.() ?? [[]]).map((extra) => standalone(key, extra));
    r[key] = s.merge ? s.merge(parts.map((p) => p[key])) : parts[0][key];
    r.loadBySection[key] = parts.map((p) => p.machine.loadAverage);
  }
  r.machine.loadAverage.push(load());
  return r;
}

/** --check: the standalone command of each published headline, and how far from the published figure it lands. */
function check() {
  const published = JSON.parse(fs.readFileSync(path.join(outDir, 'bench.json'), 'utf8'));
  const want = headlines.compute(published).filter((h) => h.value !== null);
  const runs = new Map();
  const L = ['| figure | published | standalone | difference | within ±25 % | command |', '|---|---:|---:|---:|---|---|'];
  let bad = 0;
  for (const h of want) {
    const def = headlines.HEADLINES.find((x) => x.id === h.id);
    if (!runs.has(h.command)) {
      log(`check: ${h.command}`);
      runs.set(h.command, standalone(def.only, def.args, { quiet: true }));
    }
    const got = headlines.compute(runs.get(h.command)).find((x) => x.id === h.id);
    const diff = got.value === null ? null : got.value / h.value - 1;
    const ok = diff !== null && Math.abs(diff) <= 0.25;
    if (!ok) bad++;
    L.push(`| ${h.label} | ${h.text} | ${got.text} | ${diff === null ? '—' : `${diff >= 0 ? '+' : ''}${(diff * 100).toFixed(0)} %`} | ` +
      `${ok ? 'yes' : '**no**'} | \`${h.command}\` |`);
  }
  L.push('', `${want.length - bad} of ${want.length} within ±25 %; load average (1 min) now ${load()} on ${os.cpus().length} cores.`);
  process.stdout.write(`${L.join('\n')}\n`);
  return bad ? 1 : 0;
}

// ---- report -----------------------------------------------------------------

function loadLine(r) {
  const m = r.machine;
  if (!m.loadAverage) return [];
  const busy = Math.max(...m.loadAverage, ...Object.values(r.loadBySection ?? {}).flat(2)) > m.cores;
  return [`Load average (1 min) at the start and the end of the run: ${m.loadAverage.map((x) => x.toFixed(1)).join(' and ')} on ${m.cores} cores` +
    `${busy ? ' — a busy machine (other work shared the CPUs): absolute figures are inflated and ratios noisy; re-run on an idle machine before quoting them' : ''}.`, ''];
}

function report(r) {
  const { fmtSize, fmtMs } = lib;
  const m = r.machine;
  const L = [];
  L.push('# memseal benchmarks', '');
  L.push(`Measured ${m.date} on ${m.cores} cores (${m.cpu}), ${m.memoryGiB} GiB, Linux ${m.kernel}, Node ${m.node}` +
    `${r.quick ? ' — QUICK smoke run, not for comparison' : ''}. Regenerate with \`npm run bench\`. ` +
    'Every section runs in a fresh Node process of its own (the handoff: one per size) with fresh peer processes, exactly as ' +
    'the standalone command beside each figure runs it; within a section the methods are measured interleaved (round 1: A, B, C; ' +
    'round 2: B, C, A; …) after warm-up rounds, with a garbage collection before every round, so drift and leftover state hit all ' +
    'alike. Each figure is the median (min–max in the JSON); ratios are of medians from the same run; lower is better unless said otherwise. ' +
    '`node bench/run.js --check` re-runs each headline\'s command and compares.', '');
  L.push(handoff.hugePagesLine(m.hugePages), '');
  L.push(...loadLine(r));
  L.push('## 1. Handoff parent → child, end to end (ms)', '');
  L.push('From "the sender holds the bytes" to "the receiver has verified them and read a checksum of one byte per page". ' +
    'The C floor takes the same steps as `SealedBuffer.from` under these settings (memfd_create, ftruncate, write or a mapped fill, ' +
    'seals, SCM_RIGHTS; the child verifies, maps, reads, unmaps and closes, then replies); "receiver frees after replying" moves the ' +
    'unmap and close off the critical path. The hugePages columns need a reserved hugetlb pool large enough for the size ' +
    '(`echo N > /proc/sys/vm/nr_hugepages`); "—" where it was not. `child.send()` with JSON runs after the interleaved methods, on its own receiver.', '');
  L.push(...handoff.table(r.handoff));
  L.push('', r.handoff.crossover === null
    ? 'memseal was not faster than advanced IPC at the largest size measured.'
    : `Crossover: from ${fmtSize(r.handoff.crossover)} up, memseal (from) is faster than \`child.send()\` with advanced serialization; below it, the fixed cost of a memfd, a mapping and an fd passed through the kernel dominates.`, '');
  L.push('![handoff time by size](bench-handoff.svg)', '');
  L.push(...handoff.thpSection());
  const f = r.fanout;
  L.push(`## 2. Fan-out: one ${fmtSize(f.size)} buffer to ${f.children} child processes`, '');
  L.push('Reproduce: `node bench/run.js --only fanout`. Both groups of children are up at once and take turns' +
    (f.c ? ', with the C floor between them: a C program taking SealedBuffer.from()\'s steps (memfd, write, seals) and sending the file ' +
      `to ${f.children} children of its own, each of which maps it, reads one byte per page and replies (\`bench/c/handoff.c children=${f.children}\`).` : '.'), '');
  L.push('| method | time (ms) | total PSS growth, all processes | × payload |', '|---|---:|---:|---:|');
  L.push(`| memseal | ${fmtMs(f.memseal.median)} | ${(f.memseal.rssDelta / MiB).toFixed(1)} MiB | ${f.memseal.rssMultiple.toFixed(2)}× |`);
  L.push(`| child.send() advanced | ${fmtMs(f.ipcAdvanced.median)} | ${(f.ipcAdvanced.rssDelta / MiB).toFixed(1)} MiB | ${f.ipcAdvanced.rssMultiple.toFixed(2)}× |`);
  if (f.c) L.push(`| C floor, the same steps | ${fmtMs(f.c.median)} | — | — |`);
  const floor = f.c ? ` The C floor is ${(f.ipcAdvanced.median / f.c.median).toFixed(1)}× faster than \`child.send()\` and memseal takes ` +
    `${(f.memseal.median / f.c.median).toFixed(2)}× its time: with fresh 4 KiB pages the one-shot path is bounded by the kernel's per-page work ` +
    '(writing the pages once, and a page table per child), so a fan-out ratio past the floor\'s needs huge pages or the pool.' : '';
  L.push('', `memseal is ${(f.ipcAdvanced.median / f.memseal.median).toFixed(1)}× faster.${floor} PSS (proportional set size, /proc/<pid>/smaps_rollup) splits shared pages among the processes that map them, so the sum counts each page once; it is measured at the peak, less each process's value just before the send.`, '');
  const c = r.cycle;
  L.push('## 3. Per-call overhead (µs per cycle)', '');
  L.push('memfdCreate + ftruncate + addSeals + getSeals + mmap + close + close, 4 KiB. Reproduce: `node bench/run.js --only cycle`.', '');
  L.push('| JS (memseal) | C | JS ÷ C |', '|---:|---:|---:|');
  L.push(`| ${c.jsUs.median.toFixed(2)} | ${c.cUs.median.toFixed(2)} | ${(c.jsUs.median / c.cUs.median).toFixed(2)}× |`, '');
  L.push('## 4. Channel: one fd per message', '');
  L.push('Ping-pong: one round trip, a descriptor each way (a message with one byte and one fd, echoed back); the ' +
    '"Node net" column is Node\'s own floor for a round trip on the same machine — one byte echoed over a Unix ' +
    'stream socket with `net`, no descriptors. Pipelined: messages of one fd each, sent without waiting for an ' +
    'answer, by two senders: "paced" waits for `\'drain\'` as soon as the kernel pushes back (a message waits in the ' +
    'send queue), as the C program blocks in `sendmsg()` and as a Node stream\'s writer waits when `write()` returns ' +
    'false; "queued" waits only when the send queue is at its bound (`maxQueuedFds`, 1024), so most of its messages ' +
    'wait in the queue, each owning a duplicate of its descriptor (`fcntl(F_DUPFD_CLOEXEC)`, closed once sent: what ' +
    'lets `send()`\'s caller close its own at once). The five are interleaved in rounds of the same number of ' +
    'messages. Reproduce: `node bench/run.js --only channel`.', '');
  L.push('| | ping-pong latency (µs) | C | ratio | Node net, no fds (µs) | ping-pong ÷ net | pipelined fds/s, paced | queued | C | paced ÷ C | queued ÷ C |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const [label, x] of [['parent and child on any CPU', r.channel.any], ['both pinned to one CPU', r.channel.pinned]]) {
    if (!x) continue;
    const paced = x.fdsPerSecPaced?.median;
    L.push(`| ${label} | ${x.pingPongUs.median.toFixed(1)} | ${x.c.pingPongUs.median.toFixed(1)} | ${(x.pingPongUs.median / x.c.pingPongUs.median).toFixed(2)}× | ` +
      `${x.nodeNetUs.median.toFixed(1)} | ${(x.pingPongUs.median / x.nodeNetUs.median).toFixed(2)}× | ` +
      `${paced === undefined ? '—' : Math.round(paced)} | ${Math.round(x.fdsPerSec.median)} | ${Math.round(x.c.fdsPerSec.median)} | ` +
      `${paced === undefined ? '—' : `${(paced / x.c.fdsPerSec.median).toFixed(2)}×`} | ${(x.fdsPerSec.median / x.c.fdsPerSec.median).toFixed(2)}× |`);
  }
  L.push('');
  if (r.pubsub) L.push(...pubsub.report(r.pubsub, r.pubsubMachine));
  if (r.release) L.push(...release.report(r.release));
  if (r.snapshotCluster) L.push(...snapshotCluster.report(r.snapshotCluster));
  if (r.typed) L.push(...typed.report(r.typed));
  L.push(...targets(r));
  return `${L.join('\n')}\n`;
}

/** The design targets next to what this run measured, each with the command that reproduces it. */
function targets(r) {
  const thp = handoff.thpRuns();
  const big = thp?.runs.find((x) => x.policy === 'within_size')?.handoff.rows.find((row) => row.size === 64 * MiB);
  const extra = big ? [[`64 MiB handoff vs child.send() advanced, shmem THP \`within_size\` (${thp.date})`, '≥ 10×',
    `${(big.ipcAdvanced.median / big.memsealFrom.median).toFixed(2)}×`, big.ipcAdvanced.median / big.memsealFrom.median >= 10,
    'sudo scripts/bench-thp.sh within_size']] : [];
  const L = ['## Targets (from the design)', '',
    'Where the C floor is the limit, a target is a multiple of it: a baseline such as `child.send()` moves with the state a ' +
    'benchmark leaves behind, the floor taking the same kernel steps does not.', ''];
  L.push(...headlines.targetsTable(r, [...extra, ...(r.pubsub ? pubsub.targets(r.pubsub).map((t) => [...t, 'node bench/run.js --only pubsub']) : [])]));
  L.push('', 'Where the one-shot handoff is limited, it is by the kernel\'s per-page work, which the C floor pays too: a ' +
    'handoff allocates and fills every page of a new memfd and every receiver maps the pages it reads. That work is per 4 KiB ' +
    'page: with 2 MiB pages (shmem THP `within_size`, or a hugetlb pool and `hugePages`) it mostly goes away — see the THP table, ' +
    'the hugePages columns and docs/huge-pages.md. Ping-pong: each hop crosses the Node event loop (epoll wake-up, a callback ' +
    'into JS, a promise) where C blocks in recvmsg, which is why the target compares with Node\'s own `net` round trip.', '');
  return L;
}

/** The generated report followed by the hand-written part of the file it replaces, if that has one. */
function withHandWritten(generated, file) {
  let old = '';
  try {
    old = fs.readFileSync(file, 'utf8');
  } catch {
    return generated;  // first run into this directory
  }
  const at = old.indexOf(KEEP);
  return at < 0 ? generated : generated + old.slice(at);
}

function write(r) {
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, 'bench.json'), `${JSON.stringify(r, null, 2)}\n`);
  fs.writeFileSync(path.join(outDir, 'bench.md'), withHandWritten(report(r), path.join(outDir, 'bench.md')));
  const series = r.handoff.methods.map((m) => ({ ...m, points: r.handoff.rows.filter((row) => row[m.key]).map((row) => [row.size, row[m.key].median]) }));
  fs.writeFileSync(path.join(outDir, 'bench-handoff.svg'), lib.handoffSvg(series, `memseal handoff vs alternatives (${r.machine.cores} cores, Linux ${r.machine.kernel}, Node ${r.machine.node})`));
  if (r.pubsub) fs.writeFileSync(path.join(outDir, 'bench-pubsub.svg'), pubsub.svg(r.pubsub, r.pubsubMachine ?? r.machine));
  if (outDir === DOCS && !r.quick) {
    const readme = path.join(__dirname, '..', 'README.md');
    fs.writeFileSync(readme, headlines.replaceBlock(fs.readFileSync(readme, 'utf8'), headlines.readmeBlock(r)));
  }
}

async function main() {
  const t0 = Date.now();
  if (argv.includes('--check')) {
    process.exitCode = check();
    return;
  }
  if (only) {
    const unknown = only.filter((k) => !SECTIONS[k]);
    if (unknown.length) throw new RangeError(`--only: no section ${unknown.join(', ')} (there are ${Object.keys(SECTIONS).join(', ')})`);
    const r = { quick, machine: machine() };
    for (const key of only) r[key] = await SECTIONS[key].run();
    r.machine.loadAverage.push(load());
    fs.mkdirSync(outDir, { recursive: true });
    fs.writeFileSync(path.join(outDir, 'bench.json'), `${JSON.stringify(r, null, 2)}\n`);
    if (handoffOnly) fs.writeFileSync(path.join(outDir, 'handoff.json'), `${JSON.stringify(r, null, 2)}\n`);
    const L = only.includes('handoff') ? [handoff.hugePagesLine(r.machine.hugePages), '', ...handoff.table(r.handoff), ''] : [];
    for (const h of headlines.compute(r)) if (h.value !== null) L.push(`${h.label}: ${h.text}`);
    process.stdout.write(`${L.join('\n')}\n`);
    return;
  }
  const r = argv.includes('--report-only') ? JSON.parse(fs.readFileSync(path.join(outDir, 'bench.json'), 'utf8')) : full();
  write(r);
  process.stdout.write(report(r));
  log(`wrote ${path.relative(process.cwd(), outDir) || '.'}/bench.{md,json} and the charts in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}

main().catch((err) => { console.error(err); process.exit(1); });
