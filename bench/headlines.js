// The headline ratios: what docs/bench.md's targets table and the README quote, each with the standalone
// command that reproduces it. One list, read by the report (bench/run.js), the README block, the check
// (`node bench/run.js --check`) and test/package/bench-docs.test.ts, so the four cannot disagree.
'use strict';
const MiB = 2 ** 20;
const med = (x) => x?.median;
const div = (a, b) => (a === undefined || b === undefined || !b ? null : a / b);
const row64 = (r) => r.handoff?.rows.find((x) => x.size === 64 * MiB);
const ch = (r) => r.channel?.pinned ?? r.channel?.any;

/**
 * Each headline: `id` (stable), `label`, `only` and `args` (the standalone command), `value(r)` from a
 * bench.json (null where not measured), how to print it, and the design target where there is one
 * (`want(v)` true when met). Ratios are of medians, measured side by side in one run.
 */
const HEADLINES = [
  { id: 'handoff-c', label: '64 MiB handoff, SealedBuffer.from ÷ the C floor taking the same steps', only: 'handoff', args: ['--sizes', '64M'],
    value: (r) => div(med(row64(r)?.memsealFrom), med(row64(r)?.c)), unit: '× C', target: '≤ 1.25× C', want: (v) => v <= 1.25 },
  { id: 'handoff-huge-c', label: '64 MiB handoff with hugePages ÷ the C floor with hugetlb', only: 'handoff', args: ['--sizes', '64M'],
    value: (r) => div(med(row64(r)?.memsealHuge), med(row64(r)?.cHuge)), unit: '× C', target: '≤ 1.3× C', want: (v) => v <= 1.3 },
  { id: 'handoff-ipc', label: '64 MiB handoff, child.send() advanced ÷ SealedBuffer.from (how much faster)', only: 'handoff', args: ['--sizes', '64M'],
    value: (r) => div(med(row64(r)?.ipcAdvanced), med(row64(r)?.memsealFrom)), unit: '×' },
  { id: 'fanout-ipc', label: 'fan-out of 64 MiB to 8 children, child.send() ÷ memseal (how much faster)', only: 'fanout', args: [],
    value: (r) => div(med(r.fanout?.ipcAdvanced), med(r.fanout?.memseal)), unit: '×', target: '≥ 20×', want: (v) => v >= 20 },
  { id: 'fanout-c', label: 'fan-out of 64 MiB to 8 children, memseal ÷ the C floor taking the same steps', only: 'fanout', args: [],
    value: (r) => div(med(r.fanout?.memseal), med(r.fanout?.c)), unit: '× C' },
  { id: 'fanout-memory', label: 'fan-out of 64 MiB to 8 children, total PSS growth ÷ payload', only: 'fanout', args: [],
    value: (r) => r.fanout?.memseal?.rssMultiple ?? null, unit: '× payload', target: '≤ 1.2×', want: (v) => v <= 1.2 },
  { id: 'cycle-c', label: 'per-call cycle (memfd_create … close), JS ÷ C', only: 'cycle', args: [],
    value: (r) => div(med(r.cycle?.jsUs), med(r.cycle?.cUs)), unit: '× C', target: '≤ 1.3× C', want: (v) => v <= 1.3 },
  { id: 'channel-pipelined-c', label: 'Channel, one CPU: pipelined descriptors per second, memseal ÷ C (queued: the sender waits only at maxQueuedFds)', only: 'channel', args: [],
    value: (r) => div(med(ch(r)?.fdsPerSec), med(ch(r)?.c.fdsPerSec)), unit: '× C', target: '≥ 0.6× C', want: (v) => v >= 0.6 },
  { id: 'channel-pipelined-paced-c', label: 'Channel, one CPU: pipelined descriptors per second, memseal ÷ C (paced: the sender waits for \'drain\' when the kernel pushes back, as C blocks)', only: 'channel', args: [],
    value: (r) => div(med(ch(r)?.fdsPerSecPaced), med(ch(r)?.c.fdsPerSec)), unit: '× C', target: '≥ 0.6× C', want: (v) => v >= 0.6 },
  { id: 'channel-pingpong-net', label: 'Channel, one CPU: ping-pong with a descriptor each way ÷ Node net round trip without', only: 'channel', args: [],
    value: (r) => div(med(ch(r)?.pingPongUs), med(ch(r)?.nodeNetUs)), unit: '× net', target: '≤ 1.2× net', want: (v) => v <= 1.2 },
  { id: 'stream-fanout-memory', label: 'fan-out of a 1 MiB stream to 8, PSS growth beyond the processes\' own warm-up ÷ pool', only: 'pubsub', args: [],
    value: (r) => poolCost(r.pubsub?.fanout), unit: '× pool', target: '≤ 1.2× pool', want: (v) => v <= 1.2 },
];

/** The pool's cost in the stream fan-out: PSS growth less the same processes' growth in a run with no samples. */
function poolCost(f) {
  if (!f?.publish || !f.poolSize) return null;
  return (f.publish.pssDelta - (f.idle?.pssDelta ?? 0)) / f.poolSize;
}

const command = (h) => ['node bench/run.js --only', h.only, ...h.args].join(' ');
const fmt = (h, v) => (v === null || v === undefined ? '—' : `${v.toFixed(2)}${h.unit}`);

/** The headlines of a bench.json: [{ id, label, value, text, command, target, met }] (value null where not measured). */
function compute(r) {
  return HEADLINES.map((h) => {
    const value = h.value(r);
    return { id: h.id, label: h.label, value, text: fmt(h, value), command: command(h),
      target: h.target ?? null, met: h.want && value !== null ? h.want(value) : null };
  });
}

const README_START = '<!-- bench:headlines (written by `npm run bench` from docs/bench.json) -->';
const README_END = '<!-- /bench:headlines -->';

/** The README's block of headline figures (a table), from a bench.json. */
function readmeBlock(r) {
  const L = [README_START, '', '| figure | this run | target | reproduce it alone |', '|---|---:|---|---|'];
  for (const h of compute(r)) {
    if (h.value === null) continue;
    L.push(`| ${h.label} | ${h.text} | ${h.target ?? '—'} | \`${h.command}\` |`);
  }
  L.push('', README_END);
  return L.join('\n');
}

/** `text` with its headline block replaced by `block` (the README keeps everything around it). */
function replaceBlock(text, block) {
  const a = text.indexOf(README_START), b = text.indexOf(README_END);
  if (a < 0 || b < a) throw new Error('README.md has no bench:headlines block to replace');
  return text.slice(0, a) + block + text.slice(b + README_END.length);
}

/** The rows of a README's headline block: [{ label, text, target, command }]. */
function parseReadme(text) {
  const a = text.indexOf(README_START), b = text.indexOf(README_END);
  if (a < 0 || b < a) return null;
  return text.slice(a, b).split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| figure')).map((l) => {
    const cells = l.slice(2, -2).split(' | ');
    return { label: cells[0], text: cells[1], target: cells[2], command: cells[3].replace(/`/g, '') };
  });
}

/**
 * How a README's headline block differs from what `r` (a bench.json) gives: one line per difference, none
 * when the rows are the same figures in the same order with the same targets and commands.
 */
function readmeMismatches(text, r) {
  const rows = parseReadme(text);
  if (!rows) return ['README.md has no bench:headlines block'];
  const want = compute(r).filter((h) => h.value !== null).map((h) => ({ label: h.label, text: h.text, target: h.target ?? '—', command: h.command }));
  const out = [];
  if (rows.length !== want.length) out.push(`README lists ${rows.length} figures, docs/bench.json gives ${want.length}`);
  want.forEach((w, i) => {
    const got = rows[i];
    for (const k of ['label', 'text', 'target', 'command']) {
      if (got?.[k] !== w[k]) out.push(`row ${i + 1} ${k}: README '${got?.[k]}', docs/bench.json '${w[k]}'`);
    }
  });
  return out;
}

/** Markdown lines: the targets table of docs/bench.md, each row with its standalone command. */
function targetsTable(r, extra = []) {
  const L = ['| figure | target | this run | | reproduce it alone |', '|---|---|---|---|---|'];
  const yes = (ok) => (ok ? 'met' : '**missed**');
  for (const h of compute(r)) {
    if (h.target === null || h.value === null) continue;
    L.push(`| ${h.label} | ${h.target} | ${h.text} | ${yes(h.met)} | \`${h.command}\` |`);
  }
  for (const [what, target, got, ok, cmd] of extra) L.push(`| ${what} | ${target} | ${got} | ${ok === null ? '' : yes(ok)} | ${cmd ? `\`${cmd}\`` : ''} |`);
  return L;
}

module.exports = { HEADLINES, compute, readmeBlock, replaceBlock, parseReadme, readmeMismatches, targetsTable, poolCost };
