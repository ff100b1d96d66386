// Typed data to node:cluster workers (+ one Python reader when numpy is there): a table of numeric
// columns and a float32 matrix, each SIZE bytes, and the time until every reader has computed one
// aggregate over it, four ways, interleaved round by round:
//   inplace  the producer built the data in place (createTableBuilder() / SealedBuffer.allocTensor(),
//            filled before the clock starts, as a producer computing into it would): seal(),
//            sendBuffer() to each reader, which aggregates over views — no copy anywhere
//   memseal  sealTable()/fromTypedArray() (one copy into the memfd), sendBuffer() to each reader,
//            which aggregates over views (openTable() / typed(); numpy views in Python)
//   send     (a) tableToIPC() and worker.send() of the bytes (advanced serialization), tableFromIPC()
//            in each worker; the matrix as a Float32Array through worker.send()
//   own      (b) each worker builds its own copy of the same data, then aggregates
//   floor    no handoff at all: every reader (the Python one too) already holds a private copy,
//            built before the clock starts, and is only told to aggregate it — the readers' own
//            arithmetic on this machine's cores, a floor under every other row's "aggregated"
// and the growth of all processes' PSS when every reader holds the data, the sealed file's own
// pages (fstat blocks: pages no process maps count in no PSS), and a reader's private memory
// (Private_Clean + Private_Dirty) for it.
// Usage: node bench/typed.js [--quick]    (also a section of `npm run bench`)
'use strict';
const cluster = require('node:cluster');
const { spawnSync } = require('node:child_process');
const { once } = require('node:events');
const fs = require('node:fs');
const path = require('node:path');
const memseal = require('..');
const lib = require('./lib');

const MiB = 1 << 20;
// A full collection in this process too, so a round's baseline does not include the last one's garbage.
require('node:v8').setFlagsFromString('--expose-gc');
const gc = require('node:vm').runInNewContext('gc');
/** Wall-clock ms comparable across processes (each process's timeOrigin is an epoch time). */
const now = () => performance.timeOrigin + performance.now();
const WORKERS = 4;
const DIM = 64;
const ROW_BYTES = 4 + 8 + 4 + 8;                 // id Int32, price Float64, qty Float32, ts BigInt64
const METHODS = ['inplace', 'memseal', 'send', 'own', 'floor'];
const arrow = () => require('apache-arrow');     // optional: the section is skipped without it

function makeTable(rows) {
  const id = new Int32Array(rows);
  const price = new Float64Array(rows);
  const qty = new Float32Array(rows);
  const ts = new BigInt64Array(rows);
  const tsWords = new Uint32Array(ts.buffer);      // little-endian: the low word of ts[i] is i
  for (let i = 0; i < rows; i++) { id[i] = i; price[i] = i % 1000; qty[i] = i % 7; tsWords[2 * i] = i; }
  return arrow().tableFromArrays({ id, price, qty, ts });
}

function makeMatrix(rows) {
  const m = new Float32Array(rows * DIM);
  for (let i = 0; i < m.length; i++) m[i] = i % DIM;
  return m;
}

function sumColumn(table) {
  let s = 0;
  for (const data of table.getChild('price').data) {
    const v = data.values;
    for (let i = 0; i < data.length; i++) s += v[data.offset + i];
  }
  return s;
}

function sumArray(a) {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  return s;
}

/** Private_Clean + Private_Dirty of a process, in bytes. */
function privateBytes(pid) {
  const t = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  let n = 0;
  for (const m of t.matchAll(/^Private_(?:Clean|Dirty):\s+(\d+) kB/gm)) n += Number(m[1]) * 1024;
  return n;
}

function pss(pid) {
  const m = /^Pss:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

// ---- the readers -------------------------------------------------------------------------------

async function workerMain() {
  const ch = await memseal.connect(`\0memseal-typed-bench-${process.env.MEMSEAL_TYPED_BENCH}`);
  let held = [];
  let own = null;                                  // the floor row's private copy
  const release = () => { for (const x of held) x.close?.(); held = []; own = null; global.gc?.(); };
  (async () => {
    for await (const msg of ch) {
      const text = msg.data.toString();
      if (text.startsWith('{')) {                  // the floor row: build a private copy (untimed), or aggregate it
        const m = JSON.parse(text);
        if (m.prepare) { own = m.kind === 'table' ? makeTable(m.rows) : makeMatrix(m.rows); await ch.send('prepared'); continue; }
        const arrivedAt = now();
        const t0 = performance.now();
        const agg = m.kind === 'table' ? sumColumn(own) : sumArray(own);
        await ch.send(JSON.stringify({ agg, readyAt: arrivedAt, doneAt: now(), arrivedAt, work: performance.now() - t0 }));
        continue;
      }
      if (msg.fds.length === 0) { release(); await ch.send('released'); continue; }
      const arrivedAt = now();
      const t0 = performance.now();
      const sb = memseal.SealedBuffer.open(msg.fds[0], { maxSize: 1 << 30 });
      held.push(sb);
      const t1 = performance.now();
      let agg;
      let readyAt;
      // The view over the mapping first (openTable()/typed() would make it): V8 counts its length as
      // external memory and may start a collection there, which is the view's cost, not the parser's.
      void sb.bytes;
      const t2 = performance.now();
      if (text === 'table') {
        const { openTable } = require('memseal/arrow');
        const table = openTable(sb);
        readyAt = now();
        agg = sumColumn(table);
      } else {
        const { array } = sb.typed();
        readyAt = now();
        agg = sumArray(array);
      }
      const t3 = performance.now();
      await ch.send(JSON.stringify({ agg, readyAt, doneAt: now(), arrivedAt, work: t3 - t0,
        steps: { open: t1 - t0, view: t2 - t1, parse: readyAt - (performance.timeOrigin + t2), sum: now() - readyAt } }));
    }
  })().catch((err) => { console.error(err); process.exit(1); });
  process.on('message', (m) => {
    if (m.release) { release(); process.send({ released: true }); return; }
    const t0 = performance.now();
    let agg;
    let readyAt;
    if (m.kind === 'table') {
      const table = m.own ? makeTable(m.rows) : arrow().tableFromIPC(m.bytes);
      readyAt = now();
      held.push(table);
      agg = sumColumn(table);
    } else {
      const matrix = m.own ? makeMatrix(m.rows) : m.matrix;
      readyAt = now();
      held.push(matrix);
      agg = sumArray(matrix);
    }
    process.send({ agg, readyAt, doneAt: now(), work: performance.now() - t0 });
  });
  process.send({ ready: true });
}

const PY_READER = `
import json, os, sys
sys.path.insert(0, ${JSON.stringify(path.join(__dirname, '..', 'python'))})
import memseal_peer as m
ch = m.Channel.from_parent()
bufs, held = [], []
own = None
while True:
    got = ch.receive()
    if got is None:
        break
    data, fds = got
    if data.startswith(b'{'):
        req = json.loads(data)
        if req.get('prepare'):
            import numpy as np
            i = np.arange(req['rows'])
            own = (i % 1000).astype('float64') if req['kind'] == 'table' else (np.arange(req['rows'] * 64) % 64).astype('float32')
            ch.send(b'prepared')
            continue
        agg = float(own.sum()) if req['kind'] == 'table' else float(own.sum(dtype='float64'))
        ch.send(json.dumps({'agg': agg, 'work': 0}).encode())
        continue
    if not fds:
        own = None
        held.clear()
        for b in bufs:
            b.close()
        bufs.clear()
        ch.send(b'released')
        continue
    seals, size = m.verify(fds[0], max_size=1 << 30)
    sv = m.SealedView(fds[0], size, seals, data)
    bufs.append(sv)
    if data == b'table':
        a = m.open_table_columns(sv.view, columns=['price'])['price']
        agg = float(a.sum())
    else:
        a = m.open_tensor(sv.view)
        agg = float(a.sum(dtype='float64'))
    held.append(a)
    del a
    ch.send(json.dumps({'agg': agg, 'work': 0}).encode())
`;

// ---- the primary -------------------------------------------------------------------------------

async function start(withPython) {
  const address = `\0memseal-typed-bench-${process.pid}`;
  const server = await memseal.listen(address);
  const channels = [];
  const accepted = new Promise((resolve) => server.on('connection', (ch) => {
    channels.push(ch);
    if (channels.length === WORKERS) resolve();
  }));
  cluster.setupPrimary({ exec: __filename, serialization: 'advanced', execArgv: ['--expose-gc'], silent: false });
  const workers = [];
  for (let i = 0; i < WORKERS; i++) {
    workers.push(cluster.fork({ MEMSEAL_TYPED_BENCH: String(process.pid) }));
  }
  await Promise.all(workers.map((w) => once(w, 'message')));
  await accepted;
  server.close();
  let py = null;
  if (withPython) py = memseal.spawnWithChannel('python3', ['-c', PY_READER], { stdio: 'inherit' });
  return { workers, channels, py };
}

function pids(readers) {
  return [process.pid, ...readers.workers.map((w) => w.process.pid), ...(readers.py ? [readers.py.child.pid] : [])];
}

async function releaseAll(readers) {
  await Promise.all(readers.channels.map(async (ch) => { const r = ch.receive(); await ch.send('release'); await r; }));
  await Promise.all(readers.workers.map(async (w) => { const r = once(w, 'message'); w.send({ release: true }); await r; }));
  if (readers.py) { const r = readers.py.channel.receive(); await readers.py.channel.send('release'); await r; }
  gc();
}

/** The data built in place in a new memfd, filled from `data` (the producer's work, not timed). */
function buildInPlace(kind, data, rows) {
  if (kind === 'tensor') {
    const t = memseal.SealedBuffer.allocTensor(Float32Array, [rows, DIM], { name: 'bench-matrix' });
    t.array.set(data);
    return t;
  }
  const b = require('memseal/arrow').createTableBuilder({ rows, name: 'bench-table',
    columns: { id: Int32Array, price: Float64Array, qty: Float32Array, ts: BigInt64Array } });
  for (const name of Object.keys(b.columns)) b.columns[name].set(data.getChild(name).data[0].values);
  return b;
}

/** One delivery of `kind` by `method`: ms until every reader aggregated, PSS growth, a reader's private growth. */
async function round(readers, method, kind, data, rows) {
  await releaseAll(readers);
  const all = pids(readers);
  // every process idle before the clock starts: the last round's collections and unmaps (200 MiB
  // each) otherwise run into this one, on whichever method comes next
  await lib.settle(all);
  const base = all.map(pss);
  const basePrivate = privateBytes(readers.workers[0].process.pid);
  const builder = method === 'inplace' ? buildInPlace(kind, data, rows) : null;
  const targets = [...readers.channels, ...(readers.py ? [readers.py.channel] : [])];
  if (method === 'floor') {
    // Every reader builds its private copy before the clock starts.
    const prepare = JSON.stringify({ prepare: true, kind, rows });
    await Promise.all(targets.map(async (ch) => { const r = ch.receive(); await ch.send(prepare); await r; }));
  }
  const t0 = process.hrtime.bigint();
  const start = now();
  let replies;
  let sb = null;
  let prepared = 0;
  let sentAt = 0;
  if (method === 'floor') {
    const msg = JSON.stringify({ kind });
    replies = await Promise.all(targets.map(async (ch) => {
      const r = ch.receive();
      await ch.send(msg);
      return JSON.parse((await r).data.toString());
    }));
  } else if (method === 'memseal' || method === 'inplace') {
    sb = builder !== null ? builder.seal()
      : kind === 'table' ? require('memseal/arrow').sealTable(data, { name: 'bench-table' })
        : memseal.SealedBuffer.fromTypedArray(data, { shape: [rows, DIM], name: 'bench-matrix' });
    prepared = Number(process.hrtime.bigint() - t0) / 1e6;
    replies = await Promise.all(targets.map(async (ch) => {
      const r = ch.receive();
      await ch.sendBuffer(sb, kind);
      sentAt = now() - start;
      return JSON.parse((await r).data.toString());
    }));
  } else {
    const msg = method === 'own' ? { kind, own: true, rows }
      : kind === 'table' ? { kind, bytes: arrow().tableToIPC(data) } : { kind, matrix: data };
    prepared = Number(process.hrtime.bigint() - t0) / 1e6;
    replies = await Promise.all(readers.workers.map(async (w) => { const r = once(w, 'message'); w.send(msg); return (await r)[0]; }));
  }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const growth = all.map(pss).reduce((s, v, i) => s + v - base[i], 0);
  const readerPrivate = privateBytes(readers.workers[0].process.pid) - basePrivate;
  const fileBytes = sb === null ? 0 : fs.fstatSync(sb.fd).blocks * 512;
  sb?.close();
  const nodeReplies = replies.filter((r) => r.readyAt !== undefined);
  // The slowest Node reader's steps (memseal rows), in ms: when its message arrived (from the clock's
  // start), SealedBuffer.open(), the view over the mapping, openTable()/typed(), the aggregate.
  const slowest = nodeReplies.reduce((a, b) => (b.readyAt > a.readyAt ? b : a));
  const steps = slowest.steps === undefined ? undefined
    : { seal: prepared, sent: sentAt, arrived: slowest.arrivedAt - start, ...slowest.steps };
  return { ms, ready: Math.max(...nodeReplies.map((r) => r.readyAt)) - start,
    nodeMs: Math.max(...nodeReplies.map((r) => r.doneAt)) - start, prepared, steps,
    work: Math.max(...replies.map((r) => r.work)), pssGrowth: growth, readerPrivate, fileBytes,
    aggs: replies.map((r) => r.agg), readers: replies.length };
}

async function run({ quick = false, log = console.error, size } = {}) {
  try { arrow(); } catch { log('typed: apache-arrow is not installed; skipped'); return null; }
  const bytes = size ?? (quick ? 8 * MiB : 200 * MiB);
  const rounds = 2;
  const withPython = spawnSync('python3', ['-c', 'import numpy']).status === 0;
  const tableRows = Math.floor(bytes / ROW_BYTES);
  const matrixRows = Math.floor(bytes / (4 * DIM));
  const readers = await start(withPython);
  const out = { bytes, workers: WORKERS, python: withPython, rounds, table: {}, tensor: {} };
  try {
    // Warm-up, not counted: every reader loads apache-arrow and compiles its loops once.
    for (const kind of ['table', 'tensor']) {
      const rows = kind === 'table' ? 1024 : 256;
      const data = kind === 'table' ? makeTable(rows) : makeMatrix(rows);
      for (const method of METHODS) await round(readers, method, kind, data, rows);
    }
    for (const kind of ['table', 'tensor']) {
      const rows = kind === 'table' ? tableRows : matrixRows;
      const data = kind === 'table' ? makeTable(rows) : makeMatrix(rows);
      const results = Object.fromEntries(METHODS.map((m) => [m, []]));
      for (let r = 0; r < rounds; r++) {
        for (const method of METHODS) {
          const x = await round(readers, method, kind, data, rows);
          if (new Set(x.aggs).size !== 1) throw new Error(`${kind}/${method}: readers disagree: ${x.aggs}`);
          results[method].push(x);
          const st = x.steps === undefined ? '' : `; steps: seal ${x.steps.seal.toFixed(1)}, all sent ${x.steps.sent.toFixed(1)}, ` +
            `the slowest Node reader's message arrived ${x.steps.arrived.toFixed(1)}, open ${x.steps.open.toFixed(2)}, ` +
            `view ${x.steps.view.toFixed(2)}, ${kind === 'table' ? 'openTable' : 'typed'} ${x.steps.parse.toFixed(2)}, sum ${x.steps.sum.toFixed(1)}`;
          log(`typed ${kind} ${bytes / MiB} MiB ${method}: ${x.ms.toFixed(1)} ms to ${x.readers} readers ` +
            `(every Node reader holding the data after ${x.ready.toFixed(1)} ms, every Node reader aggregated after ${x.nodeMs.toFixed(1)} ms; ` +
            `producer ${x.prepared.toFixed(0)} ms, slowest Node reader's own work ${x.work.toFixed(0)} ms${st}), ` +
            `PSS +${(x.pssGrowth / MiB).toFixed(0)} MiB, sealed file ${(x.fileBytes / MiB).toFixed(0)} MiB, reader private +${(x.readerPrivate / MiB).toFixed(1)} MiB`);
        }
      }
      for (const method of Object.keys(results)) {
        const best = results[method].reduce((a, b) => (b.ms < a.ms ? b : a));
        const ready = Math.min(...results[method].map((x) => x.ready));
        const nodeMs = Math.min(...results[method].map((x) => x.nodeMs));
        out[kind][method] = { ms: best.ms, ready, nodeMs, pssGrowth: best.pssGrowth, fileBytes: best.fileBytes,
          readerPrivate: best.readerPrivate, readers: best.readers };
      }
    }
  } finally {
    await releaseAll(readers).catch(() => {});
    for (const ch of readers.channels) ch.close();
    if (readers.py) readers.py.channel.close();
    for (const w of readers.workers) w.kill();
  }
  return out;
}

/** Markdown lines for docs/bench.md. */
function report(x) {
  if (!x) return [];
  const mib = (n) => (n / MiB).toFixed(1);
  const L = ['## Typed data: an Arrow table and a float32 matrix to every worker', '',
    `${mib(x.bytes)} MiB each, to ${x.workers} node:cluster workers${x.python ? ' (+ 1 Python/numpy reader on the memseal and floor rows)' : ''}: ` +
    'time from the data in the producer\'s memory until every reader has computed one aggregate over it (a column\'s sum; ' +
    'the whole matrix\'s sum). inplace: the producer built it in place (createTableBuilder()/SealedBuffer.allocTensor(), ' +
    'filled before the clock starts), then seal(), sendBuffer(), openTable()/typed(); memseal: sealTable()/fromTypedArray() ' +
    '(one copy), then the same; send: tableToIPC() + worker.send() with advanced serialization + tableFromIPC(); own: every ' +
    'worker builds its own copy; floor: no handoff, every reader sums a private copy it already holds (its own arithmetic ' +
    'on this machine\'s cores: no row can aggregate faster). "send ÷" is the send row\'s time over this row\'s (the target: ≥ 50× for the time until ' +
    'every reader computed the aggregate; the Node-only column has the same four readers in every row). PSS growth: all processes, while every reader holds the data; the sealed file\'s ' +
    `pages (fstat) count in no PSS where no process maps them. Best of ${x.rounds} interleaved rounds. Standalone: \`node bench/typed.js\`.`, '',
    '| data | method | ms until every Node reader holds the data | send ÷ | ms until every Node reader computed the aggregate | send ÷ | ms until every reader computed the aggregate | send ÷ | total PSS growth (MiB) | × data | sealed file (MiB) | one reader\'s private growth (MiB) |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|'];
  for (const kind of ['table', 'tensor']) {
    const send = x[kind].send;
    for (const method of METHODS) {
      const m = x[kind][method];
      if (m === undefined) continue;
      // The floor row's readers hold the data before the clock starts: no "holds" figure.
      const holds = method === 'floor' ? '– | –' : `${m.ready.toFixed(1)} | ${(send.ready / m.ready).toFixed(1)}×`;
      L.push(`| ${kind === 'table' ? 'Arrow table' : 'float32 matrix'} | ${method} | ${holds} | ` +
        `${m.nodeMs.toFixed(1)} | ${(send.nodeMs / m.nodeMs).toFixed(1)}× | ${m.ms.toFixed(1)} | ${(send.ms / m.ms).toFixed(1)}× | ${mib(m.pssGrowth)} | ${(m.pssGrowth / x.bytes).toFixed(2)} | ` +
        `${m.fileBytes === undefined ? '–' : mib(m.fileBytes)} | ${mib(m.readerPrivate)} |`);
    }
  }
  L.push('');
  return L;
}

module.exports = { run, report };

if (cluster.isWorker) {
  workerMain().catch((err) => { console.error(err); process.exit(1); });
} else if (require.main === module) {
  run({ quick: process.argv.includes('--quick') }).then((x) => {
    process.stdout.write(`${report(x).join('\n')}\n`);
    process.exit(0);
  }).catch((err) => { console.error(err); process.exit(1); });
}
