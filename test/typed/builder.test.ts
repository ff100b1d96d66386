// Tensors built in place: SealedBuffer.allocTensor() / alloc() hand the producer the new memfd's
// writable pages, seal() makes them a SealedBuffer without a copy; read back in this process, a
// Node reader process and a Python (numpy) one. After seal() no writable view of the file is left.
import assert from 'node:assert/strict';
import { constants as bufferConstants } from 'node:buffer';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, read, readFileSync, rmSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_SEALS, hugePageSettings, SealedBuffer, type TypedArrayConstructor } from '../../src';
import { countFds, keepUntilTestEnds } from '../helpers';
import { settledOwnFds } from '../fd-count';
import { skipUnlessReader, startReader } from '../typed-readers';

const TYPES: [TypedArrayConstructor, string][] = [
  [Int8Array, 'int8'], [Uint8Array, 'uint8'], [Uint8ClampedArray, 'uint8'], [Int16Array, 'int16'], [Uint16Array, 'uint16'],
  [Int32Array, 'int32'], [Uint32Array, 'uint32'], [Float32Array, 'float32'], [Float64Array, 'float64'],
  [BigInt64Array, 'int64'], [BigUint64Array, 'uint64'],
];

/** Fills `array` with 1, 2, 3, … (BigInts for the 64-bit integer types). */
function fillCounting(array: ArrayLike<number | bigint> & { [i: number]: number | bigint }): void {
  const big = typeof array[0] === 'bigint';
  for (let i = 0; i < array.length; i++) array[i] = big ? BigInt(i + 1) : i + 1;
}

/** Lines of /proc/self/maps of the memfd `name`: its mappings in this process. */
function mapsOf(name: string): string[] {
  return readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes(`/memfd:${name} `));
}

describe('SealedBuffer.allocTensor()', () => {
  const keep = keepUntilTestEnds<SealedBuffer>();

  for (const [type, label] of TYPES) {
    it(`builds a ${type.name} (${label}) in place that typed() reads back with its shape`, () => {
      using t = SealedBuffer.allocTensor(type, [3, 4], { name: 'tensor-builder' });
      assert.equal(t.array.constructor, type);
      assert.equal(t.array.length, 12);
      assert.deepEqual(t.shape, [3, 4]);
      fillCounting(t.array);
      const expected = [...t.array as Iterable<number | bigint>];
      const sb = keep(t.seal());
      assert.equal(sb.seals, sb.seals | DEFAULT_SEALS, 'sealed like every SealedBuffer');
      const { array, shape } = sb.typed();
      assert.equal(array.constructor, type);
      assert.deepEqual(shape, [3, 4]);
      assert.deepEqual([...array as Iterable<number | bigint>], expected);
    });
  }

  it('detaches the builder\'s array at seal(): a write through it is dropped and no writable mapping is left', () => {
    const t = SealedBuffer.allocTensor(Float64Array, [1024], { name: 'tensor-detach' });
    const kept = t.array;
    kept.fill(2);
    assert.ok(mapsOf('tensor-detach').some((l) => l.split(' ')[1]!.startsWith('rw-s')), 'writable and shared while building');
    const sb = keep(t.seal());
    assert.equal(kept.length, 0, 'the kept view is detached');
    assert.equal(kept.byteLength, 0);
    kept[0] = 99;  // dropped: a detached typed array has no elements
    assert.equal(kept[0], undefined);
    assert.deepEqual(mapsOf('tensor-detach'), [], 'the writable mapping is gone');
    assert.equal((sb.typed().array as Float64Array)[0], 2, 'the sealed file keeps what was written before seal()');
    assert.ok(t.closed);
  });

  it('keeps a read still in flight at seal() out of the sealed file', async () => {
    // A read(2) blocked on the thread pool with the builder's pages as its destination: seal()
    // happens, then the data arrives. It must land anywhere but in the sealed file.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'memseal-inflight-'));
    const fifo = path.join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const fd = openSync(fifo, 'r+');   // read and write ends at once: a read blocks until data comes
    try {
      const b = SealedBuffer.alloc(4096, { name: 'inflight' });
      const done = new Promise<number>((resolve, reject) => {
        read(fd, b.bytes, 0, 4096, null, (err, n) => (err ? reject(err) : resolve(n)));
      });
      const sb = keep(b.seal());
      writeSync(fd, Buffer.alloc(4096, 0x41));
      assert.equal(await done, 4096, 'the read completed');
      assert.equal(sb.bytes.indexOf(0x41), -1, 'none of it reached the sealed file');
      assert.deepEqual(mapsOf('inflight').filter((l) => l.split(' ')[1] === 'rw-s'), [], 'no writable shared mapping is left');
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a second seal() and gives the generic builder\'s bytes only while open', () => {
    const b = SealedBuffer.alloc(100, { name: 'alloc-builder' });
    b.bytes.write('in place');
    const sb = keep(b.seal());
    assert.equal(sb.bytes.toString('latin1', 0, 8), 'in place');
    assert.equal(sb.size, 100);
    assert.throws(() => b.bytes, { name: 'MemsealError', code: 'ERR_MEMSEAL_SEALED' });
    assert.throws(() => b.seal(), { code: 'ERR_MEMSEAL_SEALED' });
    b.close();  // after seal(): nothing to do
    assert.equal(sb.closed, false, 'close() after seal() leaves the SealedBuffer alone');
    const c = SealedBuffer.alloc(0);
    c.close();
    assert.throws(() => c.bytes, { code: 'ERR_MEMSEAL_CLOSED' });
    assert.throws(() => c.seal(), { code: 'ERR_MEMSEAL_CLOSED' });
  });

  it('lets the producer fill across awaits before sealing', async () => {
    using t = SealedBuffer.allocTensor(Int32Array, [4, 2]);
    for (let row = 0; row < 4; row++) {
      await new Promise((resolve) => setImmediate(resolve));
      t.array.subarray(row * 2, row * 2 + 2).fill(row);
    }
    assert.deepEqual([...keep(t.seal()).typed().array as Int32Array], [0, 0, 1, 1, 2, 2, 3, 3]);
  });

  it('frees the memfd and its mapping on close() without seal()', async () => {
    const before = countFds();
    const t = SealedBuffer.allocTensor(Float32Array, [1024, 1024], { name: 'tensor-unsealed' });  // 4 MiB: released off-thread
    t.array.fill(1);
    assert.equal(countFds(), before + 1);
    assert.equal(mapsOf('tensor-unsealed').length, 1);
    t.close();
    t.close();
    assert.equal(t.array.length, 0, 'the array is detached');
    assert.throws(() => t.seal(), { code: 'ERR_MEMSEAL_CLOSED' });
    assert.equal(await settledOwnFds(before), before, 'the descriptor is closed');
    assert.deepEqual(mapsOf('tensor-unsealed'), []);
  });

  it('closes everything at the end of a `using` scope when the builder was never sealed', async () => {
    const before = countFds();
    {
      using t = SealedBuffer.allocTensor(Uint8Array, [10]);
      t.array[0] = 1;
    }
    assert.equal(await settledOwnFds(before), before);
  });

  it('refuses an unknown type, a bad shape and bad options before any syscall', () => {
    const before = countFds();
    const type = { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' };
    assert.throws(() => SealedBuffer.allocTensor(Array as never, [2]), type);
    assert.throws(() => SealedBuffer.allocTensor(DataView as never, [2]), type);
    assert.throws(() => SealedBuffer.allocTensor('Float32Array' as never, [2]), type);
    assert.throws(() => SealedBuffer.allocTensor(Float32Array, 4 as never), type);
    assert.throws(() => SealedBuffer.allocTensor(Float32Array, [2, -1]), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => SealedBuffer.allocTensor(Float32Array, [1.5]), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => SealedBuffer.allocTensor(Float32Array, new Array(33).fill(1)), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => SealedBuffer.allocTensor(Float64Array, [2 ** 30, 2 ** 30]), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => SealedBuffer.allocTensor(Float32Array, [2], 'x' as never), type);
    assert.throws(() => SealedBuffer.allocTensor(Float32Array, [2], { hugePages: 'yes' as never }), type);
    assert.throws(() => SealedBuffer.alloc(-1), { code: 'ERR_OUT_OF_RANGE' });
    // past one Buffer (buffer.constants.MAX_LENGTH: 4 GiB on Node 20, 2^53 - 1 from Node 22 on)
    assert.throws(() => SealedBuffer.alloc(bufferConstants.MAX_LENGTH + 1), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    assert.equal(countFds(), before, 'nothing was opened');
  });

  it('builds on hugetlb pages with hugePages', async function () {
    const settings = hugePageSettings();  // the pool now, not as it was when the module loaded
    const pool = settings.hugetlbDefaultSize;
    const free = pool === null ? 0 : (settings.hugetlbPools.find((p) => p.size === pool)?.free ?? 0);
    if (free < 1) {
      console.log('      skipped: needs one free default-size hugetlb page');
      this.skip();
    }
    const before = countFds();
    let t;
    try {
      t = SealedBuffer.allocTensor(Float32Array, [256], { hugePages: true, name: 'tensor-huge' });
    } catch (err) {
      // the pool is machine-wide: another process may have taken its last free page since we looked
      const now = hugePageSettings().hugetlbPools.find((p) => p.size === pool)?.free ?? 0;
      if ((err as NodeJS.ErrnoException).code !== 'ENOMEM' || now > 0) throw err;
      console.log('      skipped: another process took the hugetlb pool\'s free pages meanwhile');
      this.skip();
    }
    t.array.fill(3);
    const sb = t.seal();
    assert.ok(sb.hugetlb);
    assert.equal(sb.size, pool);
    assert.equal((sb.typed().array as Float32Array)[255], 3);
    sb.close();  // a whole huge page: released on the thread pool, its descriptor a moment later
    assert.equal(await settledOwnFds(before), before);
  });

  it('fails with the pool\'s hint and leaves nothing open when the hugetlb pool cannot back it', function () {
    // Asks for one page more than the whole pool holds, read now: whatever other processes take
    // from or give back to the pool meanwhile, it cannot back this (unless surplus pages may be made).
    const settings = hugePageSettings();
    const size = settings.hugetlbDefaultSize;
    const pool = settings.hugetlbPools.find((p) => p.size === size);
    const overcommit = Number(readFileSync('/proc/sys/vm/nr_overcommit_hugepages', 'utf8'));
    if (size === null || pool === undefined || overcommit > 0) {
      console.log('      skipped: needs a default huge page size and no surplus pages (vm.nr_overcommit_hugepages 0)');
      this.skip();
    }
    const before = countFds();
    assert.throws(() => SealedBuffer.allocTensor(Float32Array, [((pool.total + 1) * size) / 4], { hugePages: true }),
      (err: NodeJS.ErrnoException & { hint?: string }) => err.code === 'ENOMEM' && /hugetlb pool/.test(err.hint ?? ''));
    assert.equal(countFds(), before, 'the memfd is closed');
  });

  for (const kind of ['node', 'python'] as const) {
    describe(`read by a ${kind} process`, () => {
      before(skipUnlessReader(kind));

      it('gets every element type with its shape and values, as a view over its mapping', async () => {
        const reader = startReader(kind);
        try {
          for (const [type, label] of TYPES) {
            const t = SealedBuffer.allocTensor(type, [2, 3]);
            fillCounting(t.array);
            using sb = t.seal();
            const r = await reader.ask(sb, 'tensor');
            assert.deepEqual(r.shape, [2, 3], type.name);
            assert.equal(r.sum, 21, type.name);
            assert.equal(r.view, true, `${type.name}: no copy`);
            assert.equal(kind === 'node' ? r.type : r.dtype, kind === 'node' ? type.name : label);
          }
        } finally {
          await reader.close();
        }
      });
    });
  }
});
