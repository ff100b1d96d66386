// Arrow tables built in place: createTableBuilder() lays out a valid Arrow IPC stream whose
// columns are filled through typed arrays over the memfd; read by apache-arrow's own
// tableFromIPC (the format's reference reader in JS), openTable() in a Node process, and the
// Python peer. A reader that aggregates one column faults in that column's pages, not the others'.
import assert from 'node:assert/strict';
import { constants as bufferConstants } from 'node:buffer';
import path from 'node:path';
import * as arrow from 'apache-arrow';
import fc from 'fast-check';
import { SealedBuffer, SnapshotPublisher, SnapshotReader, socketPair, spawnWithChannel } from '../../src';
import { type ColumnArrayConstructor, createTableBuilder, openTable } from '../../src/arrow';
import { ensureBuilt } from '../built';
import { countFds, keepUntilTestEnds } from '../helpers';
import { settledOwnFds } from '../fd-count';
import { pythonNumpyMissing, skipUnlessReader, startReader } from '../typed-readers';

const { MAX_LENGTH } = bufferConstants;

const COLUMNS = {
  i8: Int8Array, u8: Uint8Array, i16: Int16Array, u16: Uint16Array, i32: Int32Array, u32: Uint32Array,
  i64: BigInt64Array, u64: BigUint64Array, f32: Float32Array, f64: Float64Array,
} satisfies Record<string, ColumnArrayConstructor>;
const ARROW_TYPES: Record<keyof typeof COLUMNS, string> = {
  i8: 'Int8', u8: 'Uint8', i16: 'Int16', u16: 'Uint16', i32: 'Int32', u32: 'Uint32', i64: 'Int64', u64: 'Uint64',
  f32: 'Float32', f64: 'Float64',
};
const ROWS = 1001;
const ROOT = path.join(__dirname, '..', '..');

/** A table of every column type, row i holding (i % 100) in each column. */
function buildAll(rows = ROWS, name = 'table-builder'): SealedBuffer {
  const b = createTableBuilder({ rows, columns: COLUMNS, name });
  for (const column of Object.values(b.columns)) {
    const big = column instanceof BigInt64Array || column instanceof BigUint64Array;
    for (let i = 0; i < rows; i++) column[i] = big ? BigInt(i % 100) as never : i % 100;
  }
  return b.seal();
}

const SUM = Array.from({ length: ROWS }, (_, i) => i % 100).reduce((a, b) => a + b, 0);

describe('createTableBuilder()', () => {
  const keep = keepUntilTestEnds<SealedBuffer>();

  it('writes a stream that apache-arrow\'s tableFromIPC reads: every column type, no nulls, one batch', () => {
    const sb = keep(buildAll());
    const table = arrow.tableFromIPC(Buffer.from(sb.bytes));   // a copy: apache-arrow judges the bytes alone
    assert.equal(table.numRows, ROWS);
    assert.equal(table.batches.length, 1);
    assert.deepEqual(table.schema.fields.map((f) => [f.name, String(f.type), f.nullable]),
      Object.entries(ARROW_TYPES).map(([name, type]) => [name, type, false]));
    for (const name of Object.keys(COLUMNS)) {
      const col = table.getChild(name)!;
      assert.equal(col.nullCount, 0, name);
      assert.equal(Number(col.get(ROWS - 1)), (ROWS - 1) % 100, name);
      assert.equal([...col].reduce((s: number, v) => s + Number(v), 0), SUM, name);
    }
  });

  it('writes a stream apache-arrow reads back exactly for any columns, names and row count', () => {
    const ctors = Object.values(COLUMNS);
    fc.assert(fc.property(
      fc.uniqueArray(fc.tuple(fc.string({ unit: 'grapheme', maxLength: 40 }), fc.constantFrom(...ctors)),
        { minLength: 1, maxLength: 7, selector: ([name]) => name }),
      fc.integer({ min: 1, max: 300 }), fc.integer(),
      (spec, rows, seed) => {
        const b = createTableBuilder({ rows, columns: Object.fromEntries(spec) as Record<string, ColumnArrayConstructor> });
        const expected = spec.map(([name, ctor], c) => {
          const col = (b.columns as Record<string, Iterable<number | bigint> & { [i: number]: number | bigint }>)[name]!;
          const big = ctor === BigInt64Array || ctor === BigUint64Array;
          for (let i = 0; i < rows; i++) col[i] = big ? BigInt((seed + i * 7 + c) & 0xff) : (seed + i * 7 + c) & 0x7f;
          return [...col];
        });
        using sb = b.seal();
        const table = arrow.tableFromIPC(Buffer.from(sb.bytes));
        assert.deepEqual(table.schema.fields.map((f) => f.name), spec.map(([name]) => name));
        spec.forEach(([name], c) => assert.deepEqual([...table.getChild(name)!], expected[c], name));
        const viewed = openTable(sb);
        assert.equal(viewed.numRows, rows);
      }), { numRuns: 150, seed: 27 });
  });

  it('lays every column body out 64-byte aligned, and openTable() gives views over the mapping', () => {
    const sb = keep(buildAll());
    const table = openTable(sb);
    for (const name of Object.keys(COLUMNS)) {
      const [data] = table.getChild(name)!.data;
      assert.equal(data!.values.buffer, sb.bytes.buffer, `${name}: a view, not a copy`);
      assert.equal(data!.values.byteOffset % 64, 0, `${name}: 64-byte aligned`);
    }
  });

  it('takes a column named __proto__ and names in any script', () => {
    const columns = { ['__proto__']: Float64Array, 'prix €': Int16Array };   // computed: an own property
    const b = createTableBuilder({ rows: 2, columns });
    assert.ok(b.columns['__proto__'] instanceof Float64Array);
    b.columns['__proto__'].set([1.5, 2.5]);
    b.columns['prix €'].set([-3, 4]);
    const table = openTable(keep(b.seal()));
    assert.deepEqual(table.schema.fields.map((f) => f.name), ['__proto__', 'prix €']);
    assert.deepEqual([...table.getChild('__proto__')!], [1.5, 2.5]);
    assert.deepEqual([...table.getChild('prix €')!], [-3, 4]);
  });

  it('detaches the columns at seal(): writes through them are dropped', () => {
    const b = createTableBuilder({ rows: 4, columns: { x: Float64Array } });
    const x = b.columns.x;
    x.set([1, 2, 3, 4]);
    const sb = keep(b.seal());
    assert.equal(x.length, 0);
    x[0] = 100;
    assert.deepEqual([...openTable(sb).getChild('x')!], [1, 2, 3, 4]);
    assert.ok(b.closed);
    assert.throws(() => b.seal(), { code: 'ERR_MEMSEAL_SEALED' });
  });

  it('goes to every snapshot reader as built, read there as views', async () => {
    using publisher = SnapshotPublisher.create({ name: 'table-snapshots' });
    const [producerEnd, readerEnd] = socketPair();
    await publisher.attach(producerEnd);
    using reader = await SnapshotReader.attach(readerEnd, { maxSize: 1 << 30 });
    for (const version of [1, 2]) {
      const b = createTableBuilder({ rows: 3, columns: { price: Float64Array } });
      b.columns.price.set([version, version * 10, version * 100]);
      using sb = b.seal();
      await publisher.publish(sb, `v${version}`);
      using snap = await reader.next();
      const price = openTable(snap.buffer).getChild('price')!;
      assert.deepEqual([snap.meta, [...price]], [`v${version}`, [version, version * 10, version * 100]]);
      assert.equal(price.data[0]!.values.buffer, snap.buffer.bytes.buffer, 'a view of the snapshot');
    }
  });

  it('frees everything on close() without seal()', async () => {
    const before = countFds();
    const b = createTableBuilder({ rows: 1 << 20, columns: { a: Float64Array, b: Int32Array } });
    b.columns.a.fill(1);
    b.close();
    b.close();
    assert.equal(b.columns.a.length, 0);
    assert.equal(await settledOwnFds(before), before);
  });

  it('refuses zero rows, an unknown column type and no columns before any syscall', () => {
    const before = countFds();
    const columns = { a: Float64Array };
    assert.throws(() => createTableBuilder({ rows: 0, columns }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => createTableBuilder({ rows: -1, columns }), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => createTableBuilder({ rows: 1.5, columns }), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => createTableBuilder({ rows: 2 ** 52, columns }), { code: 'ERR_OUT_OF_RANGE' });
    // past one Buffer (buffer.constants.MAX_LENGTH: 4 GiB on Node 20, 2^53 - 1 from Node 22 on)
    assert.throws(() => createTableBuilder({ rows: Math.floor(MAX_LENGTH / 8) + 1, columns }), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => createTableBuilder({ rows: 2, columns: { a: Uint8ClampedArray as never } }),
      { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => createTableBuilder({ rows: 2, columns: { a: Array as never } }), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => createTableBuilder({ rows: 2, columns: { a: 'Float64Array' as never } }), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => createTableBuilder({ rows: 2, columns: {} }), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => createTableBuilder({ rows: 2, columns: { ['a\ud800']: Int8Array } }), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => createTableBuilder({ rows: 2, columns: null as never }), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => createTableBuilder(undefined as never), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.equal(countFds(), before, 'nothing was opened');
  });

  for (const kind of ['node', 'python'] as const) {
    describe(`read by a ${kind} process`, () => {
      before(skipUnlessReader(kind));

      it('gets every column with its rows and values, as views over its mapping', async () => {
        const reader = startReader(kind);
        try {
          using sb = buildAll();
          const r = await reader.ask(sb, 'table') as { columns: Record<string, { rows: number; sum: number; view: boolean }> };
          assert.deepEqual(Object.keys(r.columns), Object.keys(COLUMNS));
          for (const [name, c] of Object.entries(r.columns)) {
            assert.deepEqual([c.rows, c.sum, c.view], [ROWS, SUM, true], name);
          }
        } finally {
          await reader.close();
        }
      });
    });
  }

});

describe('createTableBuilder(): a reader aggregating one column', () => {
  {
    const MiB = 1 << 20;
    const ROWS_BIG = 4 * MiB;  // a: 32 MiB of Float64, b: 32 MiB of BigInt64
    // The reader sums column `a` and reports the resident size of its mappings of the memfd (its
    // own /proc/self/smaps: nobody else's pages are counted).
    const NODE_READER = `
      const { Channel } = require(${JSON.stringify(ROOT)});
      const { openTable } = require(${JSON.stringify(path.join(ROOT, 'dist', 'arrow'))});
      const fs = require('node:fs');
      const ch = Channel.fromParent();
      ch.receiveBuffer({ maxSize: 1 << 30 }).then(async ({ buffer }) => {
        const a = openTable(buffer).getChild('a').data[0].values;
        let s = 0;
        for (let i = 0; i < a.length; i++) s += a[i];
        await ch.send(JSON.stringify({ sum: s, rss: rss() }));
        buffer.close(); ch.close();
      });
      ${rssSource('js')}`;
    const PY_READER = `
import sys
sys.path.insert(0, ${JSON.stringify(path.join(ROOT, 'python'))})
import json, memseal_peer as m
ch = m.Channel.from_parent()
buf = ch.receive_buffer(max_size=1 << 30)
a = m.open_table_columns(buf.view, columns=['a'])['a']
s = float(a.sum())
${rssSource('py')}
ch.send(json.dumps({'sum': s, 'rss': rss()}).encode())
`;

    function rssSource(lang: 'js' | 'py'): string {
      const pattern = '/memfd:one-column ';
      return lang === 'js'
        ? `function rss() { let kb = 0, on = false;
             for (const l of fs.readFileSync('/proc/self/smaps', 'utf8').split('\\n')) {
               if (/^[0-9a-f]+-[0-9a-f]+ /.test(l)) on = l.includes(${JSON.stringify(pattern)});
               else if (on && l.startsWith('Rss:')) kb += Number(l.split(/\\s+/)[1]);
             } return kb * 1024; }`
        : `def rss():
    kb, on = 0, False
    for l in open('/proc/self/smaps'):
        if l[:1] in '0123456789abcdef' and '-' in l.split(' ')[0]:
            on = ${JSON.stringify(pattern)} in l
        elif on and l.startswith('Rss:'):
            kb += int(l.split()[1])
    return kb * 1024`;
    }

    for (const kind of ['node', 'python'] as const) {
      it(`faults in that column's pages, not the others', in a ${kind} reader`, async function () {
        if (kind === 'python' && pythonNumpyMissing() !== null) this.skip();
        if (kind === 'node') ensureBuilt();
        const b = createTableBuilder({ rows: ROWS_BIG, columns: { a: Float64Array, b: BigInt64Array }, name: 'one-column' });
        b.columns.a.fill(0.5);
        b.columns.b.fill(7n);
        using sb = b.seal();
        const { child, channel } = kind === 'node'
          ? spawnWithChannel(process.execPath, ['-e', NODE_READER], { stdio: ['ignore', 'inherit', 'inherit'] })
          : spawnWithChannel('python3', ['-c', PY_READER], { stdio: ['ignore', 'inherit', 'inherit'] });
        try {
          const reply = channel.receive();
          await channel.sendBuffer(sb);
          const r = JSON.parse((await reply).data.toString()) as { sum: number; rss: number };
          assert.equal(r.sum, ROWS_BIG / 2);
          // Column a is 32 MiB; with b touched it would be 64. Slack: fault-around and a 2 MiB page at an edge.
          assert.ok(r.rss >= 30 * MiB && r.rss <= 40 * MiB, `resident: ${(r.rss / MiB).toFixed(1)} MiB of 64`);
        } finally {
          channel.close();
          child.kill();
        }
      });
    }
  }
});
