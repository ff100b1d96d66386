// memseal/arrow: sealTable() / openTable() round trips, columns as views over the mapping in this
// process, a Node reader and a Python (numpy) reader; and IPC metadata that lies.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import * as arrow from 'apache-arrow';
import fc from 'fast-check';
import { MemsealError, SealedBuffer } from '../../src';
import { openTable, sealTable } from '../../src/arrow';
import { writtenChunks } from '../../src/arrow/chunks';
import { ensureBuilt } from '../built';
import { keepUntilTestEnds } from '../helpers';
import { pythonFuzzPrelude, skipUnlessReader, startReader } from '../typed-readers';

const ROWS = 1000;

function numericTable(rows = ROWS): arrow.Table {
  const x = new Float64Array(rows).map((_, i) => i / 2);
  const y = new Int32Array(rows).map((_, i) => i - 500);
  const z = new BigInt64Array(rows).map((_, i) => BigInt(i) * 3n);
  const w = new Float32Array(rows).map((_, i) => i % 7);
  return arrow.tableFromArrays({ x, y, z, w });
}

function mixedTable(): arrow.Table {
  return new arrow.Table({
    name: arrow.vectorFromArray(['a', 'bb', null, 'dddd'], new arrow.Utf8()),
    tags: arrow.vectorFromArray([[1], [2, 3], [], [4]], new arrow.List(new arrow.Field('t', new arrow.Int32()))),
    maybe: arrow.vectorFromArray([1.5, null, 3.5, 4.5], new arrow.Float64()),
    kind: arrow.vectorFromArray(['p', 'q', 'p', 'p'], new arrow.Dictionary(new arrow.Utf8(), new arrow.Int32())),
    price: arrow.vectorFromArray([10, 20, 30, 40], new arrow.Float64()),
  });
}

/** The byte offset of the 16-byte little-endian pair (a, b) in `bytes`: a field node or a buffer of the metadata. */
function pairAt(bytes: Buffer, a: bigint, b: bigint): number {
  const needle = Buffer.alloc(16);
  needle.writeBigInt64LE(a, 0);
  needle.writeBigInt64LE(b, 8);
  const at = bytes.indexOf(needle);
  assert.ok(at > 0, `pair (${a}, ${b}) found in the metadata`);
  return at;
}

/** A copy of a one-column, 3-row Float64 table's IPC bytes with `edit` applied. */
function lie(edit: (b: Buffer) => void): Buffer {
  using sb = sealTable(arrow.tableFromArrays({ x: Float64Array.of(1, 2, 3) }));
  const b = Buffer.from(sb.bytes);
  edit(b);
  return b;
}

const LIES: [string, () => Buffer][] = [
  ['a values buffer longer than the body', () => lie((b) => b.writeBigInt64LE(1n << 20n, pairAt(b, 0n, 24n) + 8))],
  ['a values buffer offset past the body', () => lie((b) => b.writeBigInt64LE(1n << 40n, pairAt(b, 0n, 24n)))],
  ['more rows than the values hold', () => lie((b) => {
    b.writeBigInt64LE(1000n, pairAt(b, 3n, 0n));
    b.writeBigInt64LE(1000n, b.indexOf(Buffer.from([3, 0, 0, 0, 0, 0, 0, 0])));
  })],
  ['a metadata length past the end', () => lie((b) => b.writeInt32LE(0x7ffffff0, 4))],
  ['a truncated stream', () => lie(() => {}).subarray(0, 200)],
  ['bytes that are not Arrow at all', () => Buffer.from('just some text, no schema message')],
];

describe('sealTable() / openTable()', () => {
  const keep = keepUntilTestEnds<SealedBuffer>();

  it('gives back the same table, every primitive column a view over the sealed mapping', () => {
    const table = numericTable();
    const sb = keep(sealTable(table, { name: 'table' }));
    const back = openTable(sb);
    assert.equal(back.numRows, ROWS);
    for (const name of ['x', 'y', 'z', 'w']) {
      const col = back.getChild(name)!;
      assert.deepEqual(col.toArray(), table.getChild(name)!.toArray(), name);
      for (const d of col.data) assert.equal(d.values.buffer, sb.bytes.buffer, `${name}: a view, not a copy`);
    }
  });

  it('carries strings, lists, nulls and dictionaries intact', () => {
    const table = mixedTable();
    const back = openTable(keep(sealTable(table)));
    assert.deepEqual(back.toArray().map((r) => JSON.stringify(r)), table.toArray().map((r) => JSON.stringify(r)));
    assert.equal(back.getChild('maybe')!.nullCount, 1);
  });

  it('copies each piece once, straight from the writer (apache-arrow still keeps them where sealTable looks)', () => {
    const writer = arrow.RecordBatchStreamWriter.writeAll(numericTable(10));
    const chunks = writtenChunks(writer);
    assert.ok(chunks !== null, 'the pieces are found: no extra copy');
    assert.deepEqual(keep(sealTable(numericTable(10))).bytes, Buffer.concat(chunks));
    assert.deepEqual(Buffer.concat(chunks), Buffer.from(writer.toUint8Array(true)));
  });

  it('an ES module that imports apache-arrow itself gets tables written and returned with its own classes', () => {
    ensureBuilt();
    // Two builds of apache-arrow in one process (its ES module build here, its CommonJS build under
    // memseal): a table of one written by the other's writer had corrupt type metadata.
    const code = `
      import { tableFromArrays, Table } from 'apache-arrow';
      import { openTable, sealTable } from 'memseal/arrow';
      const sb = sealTable(tableFromArrays({ id: Int32Array.of(1, 2, 3), price: Float64Array.of(9.5, 10, 10.5) }));
      const t = openTable(sb);
      console.log(t.numRows, t.getChild('price').get(2), Object.getPrototypeOf(t) === Table.prototype);
      sb.close();`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd: path.join(__dirname, '..', '..'), encoding: 'utf8' });
    assert.equal(r.stderr, '');
    assert.equal(r.stdout.trim(), '3 10.5 true');
  });

  it('refuses what is not a Table or not a SealedBuffer', () => {
    assert.throws(() => sealTable({} as arrow.Table), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => sealTable(numericTable(1), 'x' as never), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => openTable(Buffer.alloc(8) as never), { code: 'ERR_INVALID_ARG_TYPE' });
  });

  for (const [what, bytes] of LIES) {
    it(`refuses ${what} with ERR_MEMSEAL_PROTOCOL`, () => {
      assert.throws(() => openTable(keep(SealedBuffer.from(bytes()))), { name: 'MemsealError', code: 'ERR_MEMSEAL_PROTOCOL' });
    });
  }

  it('any corruption of the stream gives a MemsealError or a table whose every value can be read', () => {
    using sb = sealTable(mixedTable());
    const good = Buffer.from(sb.bytes);
    fc.assert(fc.property(fc.array(fc.tuple(fc.nat(good.length - 1), fc.nat(255)), { minLength: 1, maxLength: 4 }), (edits) => {
      const bytes = Buffer.from(good);
      for (const [at, value] of edits) bytes[at] = value;
      using corrupt = SealedBuffer.from(bytes);
      let table: arrow.Table;
      try {
        table = openTable(corrupt);
      } catch (err) {
        assert.ok(err instanceof MemsealError, String(err));
        return;
      }
      try {
        for (const row of table) JSON.stringify(row, (_, v: unknown) => (typeof v === 'bigint' ? String(v) : v));
      } catch (err) {
        // apache-arrow's own accessors may reject a value (bad UTF-8, a dictionary index); never a crash
        assert.ok(err instanceof Error, String(err));
      }
    }), { numRuns: 300 });
  });
});

for (const kind of ['node', 'python'] as const) {
  describe(`a table read by a ${kind} reader process`, function () {
    this.timeout(30000);
    before(skipUnlessReader(kind));

    it('reads every numeric column as a view over its own mapping', async () => {
      const reader = startReader(kind);
      try {
        const table = numericTable();
        using sb = sealTable(table);
        const reply = await reader.ask(sb, 'table') as { columns: Record<string, { rows: number; sum: number; view: boolean }> };
        for (const name of ['x', 'y', 'z', 'w']) {
          const expected = [...table.getChild(name)!].reduce((s: number, v) => s + Number(v), 0);
          assert.equal(reply.columns[name]!.rows, ROWS, name);
          assert.equal(reply.columns[name]!.sum, expected, name);
          assert.equal(reply.columns[name]!.view, true, `${name}: a view, not a copy`);
        }
      } finally {
        await reader.close();
      }
    });

    it('refuses metadata that lies about offsets, lengths and rows, and keeps reading', async () => {
      const reader = startReader(kind);
      try {
        for (const [what, bytes] of LIES) {
          using sb = SealedBuffer.from(bytes());
          assert.equal((await reader.ask(sb, 'table')).error, 'ERR_MEMSEAL_PROTOCOL', what);
        }
        using good = sealTable(numericTable(4));
        assert.equal((await reader.ask(good, 'table') as { columns: { y: { sum: number } } }).columns.y.sum, -1994);
      } finally {
        await reader.close();
      }
    });
  });
}

describe('open_table_columns() (Python)', function () {
  this.timeout(30000);
  before(skipUnlessReader('python'));

  it('reads the chosen primitive columns of a mixed table and names what it does not support', async () => {
    const reader = startReader('python');
    try {
      using sb = sealTable(mixedTable());
      const some = await reader.ask(sb, 'table:["price"]') as { columns: Record<string, { sum: number; view: boolean }> };
      assert.deepEqual(Object.keys(some.columns), ['price']);
      assert.equal(some.columns.price!.sum, 100);
      assert.equal(some.columns.price!.view, true);
      const all = await reader.ask(sb, 'table') as { error: string; message: string };
      assert.equal(all.error, 'ERR_MEMSEAL_UNSUPPORTED');
      assert.match(all.message, /column 'name' is Utf8/);
      const nulls = await reader.ask(sb, 'table:["maybe"]') as { error: string; message: string };
      assert.match(nulls.message, /column 'maybe' has 1 nulls/);
    } finally {
      await reader.close();
    }
  });

  it('raises only MemsealError for any corruption of the stream (a seeded fuzz in Python)', () => {
    using sb = sealTable(mixedTable());
    const script = `${pythonFuzzPrelude()}for _ in range(3000):
    b = bytearray(good)
    for _ in range(rng.randint(1, 4)):
        b[rng.randrange(len(b))] = rng.randrange(256)
    try:
        cols = m.open_table_columns(bytes(b), columns=['price'])
        assert all(len(v) * v.itemsize <= len(b) for v in cols.values())
    except m.MemsealError:
        refused += 1
    except KeyError:
        refused += 1  # a renamed column: asked for one that is not there
print(refused)
`;
    const r = spawnSync('python3', ['-c', script], { input: sb.bytes, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(Number(r.stdout) > 0, 'some corruptions were refused');
  });
});
