// Section 1: one buffer handed from parent to child, end to end, by every method side by side.
// Each size is a row measured with fresh receivers: the methods run interleaved (lib.interleaved), the
// heap is collected before every sample, and the receivers exit before the next row starts, so no row
// inherits an earlier one's processes, heaps or queued bytes. child.send() with JSON (base64) is a slow
// reference that builds strings of 1.33× the payload in this process: it runs after the interleaved
// methods, on its own receiver, and leaves nothing behind for them.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const lib = require('./lib');
const { memsealPeer, ipcPeer, netPeer } = require('./peers');
const { SealedBuffer, features, hugePageSettings } = require('..');

const KiB = 1024, MiB = 1024 * KiB;

const METHODS = [
  { key: 'memsealFrom', name: 'memseal SealedBuffer.from', color: '#1565c0' },
  { key: 'memsealCreate', name: 'memseal SealedBuffer.create', color: '#42a5f5' },
  { key: 'ipcAdvanced', name: 'child.send() advanced', color: '#e53935' },
  { key: 'ipcJson', name: 'child.send() JSON base64', color: '#ff9800' },
  { key: 'netSocket', name: 'Unix stream socket (net)', color: '#8e24aa' },
  { key: 'c', name: 'C floor (same steps as from)', color: '#424242', dash: true },
  { key: 'memsealHuge', name: 'memseal from, hugePages', color: '#2e7d32' },
  { key: 'cHuge', name: 'C floor, hugetlb', color: '#81c784', dash: true },
  { key: 'cDefer', name: 'C floor, receiver frees after replying', color: '#9e9e9e', dash: true },
];

const HUGE = features.hugePages.hugetlbDefaultSize ?? 2 * MiB;
/** The hugetlb columns are measured where the size is whole huge pages and the pool can hold it. */
const hugetlbFits = (size) => features.hugetlb && size >= HUGE && size % HUGE === 0 &&
  (hugePageSettings().hugetlbPools.find((p) => p.size === HUGE)?.free ?? 0) >= size / HUGE;
/** The C program's mode for "the same steps as SealedBuffer.from" under this machine's settings. */
const fromMode = (size) => (features.hugePages.shmemPmd === 'advise' && size >= (features.hugePages.pmdSize ?? Infinity) ? ['mapped'] : []);
const roundsFor = (size, quick) => (quick ? 3 : size >= 64 * MiB ? 7 : size >= 16 * MiB ? 11 : size >= 1 * MiB ? 31 : 101);

/** One row: every method at one size, interleaved, with receivers started for this row alone. */
async function row(size, { quick, lean, cBin }) {
  const src = lib.pattern(Buffer.alloc(size));
  const want = lib.checksum(src);
  const expect = (got, what) => { if (got !== want) throw new Error(`${what}: checksum ${got} != ${want}`); };
  const rounds = roundsFor(size, quick);
  const ms = memsealPeer();
  const adv = ipcPeer('advanced');
  const sock = lean ? null : await netPeer();
  const cOnce = (mode) => () => lib.runC(cBin, [size, 1, ...mode]).median;  // the program warms up itself
  const methods = {
    memsealFrom: lib.timed(async () => {
      const sb = SealedBuffer.from(src);
      expect(await ms.sendAndWait(sb), 'memseal from');
      sb.close();
    }),
    memsealCreate: lib.timed(async () => {
      const sb = SealedBuffer.create(size, (b) => lib.pattern(b));
      expect(await ms.sendAndWait(sb), 'memseal create');
      sb.close();
    }),
    ipcAdvanced: lib.timed(async () => expect(await adv.sendAndWait(src), 'ipc advanced')),
    ...(sock ? { netSocket: lib.timed(async () => expect(await sock.sendAndWait(src), 'net')) } : {}),
    c: cOnce(fromMode(size)),
    cDefer: cOnce([...fromMode(size), 'defer']),
    ...(hugetlbFits(size) ? {
      memsealHuge: lib.timed(async () => {
        const sb = SealedBuffer.from(src, { hugePages: true });
        expect(await ms.sendAndWait(sb), 'memseal from hugePages');
        sb.close();
      }),
      cHuge: cOnce(['hugetlb']),
    } : {}),
  };
  const out = { size, ...(await lib.interleaved(methods, rounds)) };
  await Promise.all([ms.close(), adv.close(), sock?.close()]);
  out.ipcJson = null;
  if (!lean && size <= (quick ? 1 * MiB : 64 * MiB)) {
    const json = ipcPeer('json');
    out.ipcJson = (await lib.interleaved({
      ipcJson: lib.timed(async () => expect(await json.sendAndWait({ b64: src.toString('base64') }), 'ipc json')),
    }, Math.min(rounds, 7), 1)).ipcJson;
    await json.close();
  }
  lib.gc();
  return out;
}

/**
 * Runs the section. `lean` leaves out the JSON and net columns (scripts/bench-thp.sh's quick pass).
 * Returns { methods, rows, crossover }.
 */
async function run({ sizes, quick = false, lean = false, cBin, log = console.error }) {
  const rows = [];
  for (const size of sizes) {
    const r = await row(size, { quick, lean, cBin });
    rows.push(r);
    log(`handoff ${lib.fmtSize(size)}: ${METHODS.map((m) => `${m.key} ${r[m.key] ? lib.fmtMs(r[m.key].median) : '-'}`).join('  ')} ms`);
  }
  return { methods: METHODS, rows, crossover: crossover(rows) };
}

/** The smallest size from which memseal (from) is faster than advanced IPC at every larger size. */
function crossover(rows) {
  let at = null;
  for (let i = rows.length - 1; i >= 0; i--) {
    if (rows[i].memsealFrom.median < rows[i].ipcAdvanced.median) at = rows[i].size; else break;
  }
  return at;
}

/** Rows of several runs (one per size, as the full run makes them) as one section, sorted by size. */
function merge(parts) {
  const rows = parts.flatMap((p) => p.rows).sort((a, b) => a.size - b.size);
  return { methods: METHODS, rows, crossover: crossover(rows) };
}

/** One line on the machine's huge-page settings and what memseal does under them. */
function hugePagesLine(h) {
  if (!h) return 'Huge pages: not recorded.';
  const pmd = h.pmdSize ? lib.fmtSize(h.pmdSize) : null;
  const pool = h.hugetlbPools.find((p) => p.size === h.hugetlbDefaultSize);
  const small = 'SealedBuffer.from writes into 4 KiB pages with write(2); create() populates 4 KiB pages';
  const does = {
    never: small,
    deny: small,
    advise: `SealedBuffer.from and create map with MADV_HUGEPAGE and populate ${pmd} pages`,
    within_size: `write(2) and page faults get ${pmd} pages wherever the file covers them (from() sizes the file first)`,
    always: `write(2) and page faults get ${pmd} pages`,
    force: `write(2) and page faults get ${pmd} pages`,
  }[h.shmemPmd] ?? 'no transparent huge pages';
  return `Huge pages on this machine: shmem THP \`shmem_enabled\` = \`${h.shmemEnabled ?? 'absent'}\`` +
    (pmd ? `, ${pmd} pages: \`${h.shmemPmd}\`` : '') + ` — ${does}. ` +
    (pool ? `hugetlb pool: ${pool.total} × ${lib.fmtSize(pool.size)} reserved (${pool.free} free at the start).` : 'No hugetlb pool.');
}

const ratio = (a, b) => (a && b ? `${(a.median / b.median).toFixed(2)}×` : '—');

function table(h) {
  const { fmtSize, fmtMs } = lib;
  const methods = h.methods.filter((x) => h.rows.some((r) => r[x.key]));
  const L = [];
  L.push(`| size | ${methods.map((x) => x.name).join(' | ')} | memseal ÷ C | memseal hugePages ÷ C hugetlb | advanced IPC ÷ memseal | reproduce |`);
  L.push(`|---|${methods.map(() => '---:').join('|')}|---:|---:|---:|---|`);
  for (const r of h.rows) {
    const cells = methods.map((x) => (r[x.key] ? fmtMs(r[x.key].median) : '—'));
    L.push(`| ${fmtSize(r.size)} | ${cells.join(' | ')} | ${ratio(r.memsealFrom, r.c)} | ${ratio(r.memsealHuge, r.cHuge)} | ` +
      `${ratio(r.ipcAdvanced, r.memsealFrom)} | \`node bench/run.js --only handoff --sizes ${lib.sizeArg(r.size)}\` |`);
  }
  return L;
}

/** The handoff under each shmem THP policy, from scripts/bench-thp.sh (docs/bench-thp.json), if it was run. */
function thpRuns() {
  try {
    return JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'docs', 'bench-thp.json'), 'utf8'));
  } catch {
    return null;
  }
}

function thpSection(thp = thpRuns()) {
  if (!thp) return [];
  const L = ['### With shmem transparent huge pages (scripts/bench-thp.sh)', ''];
  L.push(`Measured ${thp.date} by \`sudo scripts/bench-thp.sh\`, which sets \`shmem_enabled\` to each policy below, runs the handoff ` +
    `and restores the original value (\`${thp.original}\`); \`npm run bench\` never changes it. Same machine, same code.`, '');
  L.push('| shmem_enabled | size | memseal SealedBuffer.from | memseal SealedBuffer.create | child.send() advanced | C floor (same steps) | advanced IPC ÷ memseal (from) | memseal ÷ C |');
  L.push('|---|---|---:|---:|---:|---:|---:|---:|');
  for (const t of thp.runs) {
    for (const r of t.handoff.rows) {
      L.push(`| \`${t.policy}\` | ${lib.fmtSize(r.size)} | ${lib.fmtMs(r.memsealFrom.median)} | ${lib.fmtMs(r.memsealCreate.median)} | ` +
        `${lib.fmtMs(r.ipcAdvanced.median)} | ${lib.fmtMs(r.c.median)} | ${ratio(r.ipcAdvanced, r.memsealFrom)} | ${ratio(r.memsealFrom, r.c)} |`);
    }
  }
  L.push('');
  return L;
}

module.exports = { METHODS, run, merge, table, hugePagesLine, thpRuns, thpSection };
