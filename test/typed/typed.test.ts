// Tensors: SealedBuffer.fromTypedArray() / typed(), writeTensor() / readTensor(), read in place
// by this process, a Node reader process and a Python (numpy) one; and headers that lie.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import {
  MemsealError, Publisher, readTensor, SealedBuffer, socketPair, Subscriber, tensorByteLength, TENSOR_ALIGNMENT,
  type TypedArray, writeTensor,
} from '../../src';
import { keepUntilTestEnds } from '../helpers';
import { pythonFuzzPrelude, skipUnlessReader, startReader } from '../typed-readers';

const KINDS: [TypedArray, string][] = [
  [Int8Array.of(-1, 2, -3, 4, -5, 6), 'int8'], [Uint8Array.of(1, 2, 3, 4, 5, 6), 'uint8'],
  [Uint8ClampedArray.of(1, 2, 3, 4, 5, 6), 'uint8'], [Int16Array.of(-1, 2, -3, 4, -5, 6), 'int16'],
  [Uint16Array.of(1, 2, 3, 4, 5, 6), 'uint16'], [Int32Array.of(-1, 2, -3, 4, -5, 6), 'int32'],
  [Uint32Array.of(1, 2, 3, 4, 5, 6), 'uint32'], [Float32Array.of(0.5, 1, 1.5, 2, 2.5, 3), 'float32'],
  [Float64Array.of(0.25, 1, 2, 3, 4, 5), 'float64'], [BigInt64Array.of(-1n, 2n, -3n, 4n, -5n, 6n), 'int64'],
  [BigUint64Array.of(1n, 2n, 3n, 4n, 5n, 6n), 'uint64'],
];

/** A header as docs/protocol.md describes it, with any field overridden, followed by `data` bytes. */
function header(f: { magic?: string; version?: number; code?: number; flags?: number; ndim?: number;
  offset?: bigint; length?: bigint; dims?: bigint[]; data?: number; size?: number }): Buffer {
  const dims = f.dims ?? [2n, 3n];
  const size = 64 + (f.data ?? 24);
  const b = Buffer.alloc(size);
  b.write(f.magic ?? 'MSTENSOR', 0, 'latin1');
  b.writeUInt16LE(f.version ?? 1, 8);
  b.writeUInt8(f.code ?? 8, 10);
  b.writeUInt8(f.flags ?? 0, 11);
  b.writeUInt32LE(f.ndim ?? dims.length, 12);
  b.writeBigUInt64LE(f.offset ?? 64n, 16);
  b.writeBigUInt64LE(f.length ?? 24n, 24);
  dims.forEach((d, i) => b.writeBigUInt64LE(d, 32 + 8 * i));
  return f.size === undefined ? b : Buffer.from(b.subarray(0, f.size));
}

describe('SealedBuffer.fromTypedArray() / typed()', () => {
  const keep = keepUntilTestEnds<SealedBuffer>();

  for (const [array, label] of KINDS) {
    it(`gives back a ${array.constructor.name} (${label}) with its shape, as a view over the mapping`, () => {
      const sb = keep(SealedBuffer.fromTypedArray(array, { shape: [2, 3], name: 'tensor' }));
      const { array: view, shape } = sb.typed();
      assert.equal(view.constructor, array.constructor);
      assert.deepEqual(shape, [2, 3]);
      assert.deepEqual([...view as Iterable<number | bigint>], [...array as Iterable<number | bigint>]);
      assert.equal(view.buffer, sb.bytes.buffer, 'a view of the buffer\'s mapping, not a copy');
      assert.equal(view.byteOffset % TENSOR_ALIGNMENT, 0, 'the data starts 64-byte aligned');
    });
  }

  it('defaults the shape to [length], takes a subarray, an empty array and a 0-d shape', () => {
    const base = Float64Array.of(9, 1, 2, 3, 9);
    assert.deepEqual(keep(SealedBuffer.fromTypedArray(base.subarray(1, 4))).typed(),
      { array: Float64Array.of(1, 2, 3), shape: [3] });
    assert.deepEqual(keep(SealedBuffer.fromTypedArray(new Int32Array(0), { shape: [0, 5] })).typed().shape, [0, 5]);
    assert.deepEqual(keep(SealedBuffer.fromTypedArray(Int32Array.of(7), { shape: [] })).typed(),
      { array: Int32Array.of(7), shape: [] });
  });

  it('refuses what is not a typed array, and a shape that does not fit, before any syscall', () => {
    const bad: [unknown, unknown, string][] = [
      [new DataView(new ArrayBuffer(8)), undefined, 'ERR_INVALID_ARG_TYPE'], [[1, 2], undefined, 'ERR_INVALID_ARG_TYPE'],
      [new Float32Array(6), { shape: [4, 2] }, 'ERR_INVALID_ARG_VALUE'],
      [new Float32Array(6), { shape: [-2, -3] }, 'ERR_INVALID_ARG_VALUE'], [new Float32Array(6), { shape: '2x3' }, 'ERR_INVALID_ARG_TYPE'],
      [new Float32Array(1), { shape: new Array(33).fill(1) }, 'ERR_OUT_OF_RANGE'], [new Float32Array(6), 'big', 'ERR_INVALID_ARG_TYPE'],
    ];
    for (const [array, options, code] of bad) {
      assert.throws(() => SealedBuffer.fromTypedArray(array as TypedArray, options as never), { code });
    }
  });

  it('throws ERR_MEMSEAL_CLOSED after close()', () => {
    const sb = SealedBuffer.fromTypedArray(new Float32Array(4));
    sb.close();
    assert.throws(() => sb.typed(), { code: 'ERR_MEMSEAL_CLOSED' });
  });

  it('refuses a buffer that holds no tensor with ERR_MEMSEAL_PROTOCOL', () => {
    for (const data of ['', 'hello', 'x'.repeat(100)]) {
      assert.throws(() => keep(SealedBuffer.from(data)).typed(), { name: 'MemsealError', code: 'ERR_MEMSEAL_PROTOCOL' });
    }
  });
});

describe('tensor headers that lie', () => {
  const keep = keepUntilTestEnds<SealedBuffer>();
  const lies: [string, Buffer, string][] = [
    ['bad magic', header({ magic: 'MSTENSOX' }), 'ERR_MEMSEAL_PROTOCOL'],
    ['a newer version', header({ version: 2 }), 'ERR_MEMSEAL_UNSUPPORTED'],
    ['an unknown element type', header({ code: 99 }), 'ERR_MEMSEAL_PROTOCOL'],
    ['unknown flags (big-endian data)', header({ flags: 1 }), 'ERR_MEMSEAL_PROTOCOL'],
    ['a shape larger than the data', header({ dims: [4n, 3n] }), 'ERR_MEMSEAL_PROTOCOL'],
    ['a data length past the end', header({ length: 4096n, dims: [1024n] }), 'ERR_MEMSEAL_PROTOCOL'],
    ['a data offset past the end', header({ offset: 1n << 40n }), 'ERR_MEMSEAL_PROTOCOL'],
    ['a misaligned data offset', header({ offset: 36n }), 'ERR_MEMSEAL_PROTOCOL'],
    ['a data offset inside the dimensions', header({ offset: 0n }), 'ERR_MEMSEAL_PROTOCOL'],
    ['more dimensions than fit', header({ ndim: 1000 }), 'ERR_MEMSEAL_PROTOCOL'],
    ['dimensions whose product wraps at 2^64', header({ dims: [1n << 62n, 4n, 6n], length: 24n }), 'ERR_MEMSEAL_PROTOCOL'],
    ['a truncated header', header({ size: 20 }), 'ERR_MEMSEAL_PROTOCOL'],
  ];
  for (const [what, bytes, code] of lies) {
    it(`refuses ${what} (${code}) in typed() and readTensor()`, () => {
      assert.throws(() => keep(SealedBuffer.from(bytes)).typed(), { name: 'MemsealError', code });
      assert.throws(() => readTensor(bytes), { name: 'MemsealError', code });
    });
  }

  it('any corruption of a valid header gives a MemsealError or a view inside the data it states', () => {
    const good = Buffer.alloc(tensorByteLength(Float64Array, [3, 4]));
    writeTensor(good, Float64Array, [3, 4]).fill(1);
    fc.assert(fc.property(fc.array(fc.tuple(fc.nat(63), fc.nat(255)), { minLength: 1, maxLength: 6 }),
      fc.nat(good.length), (edits, cut) => {
        const bytes = Buffer.from(good.subarray(0, Math.max(cut, 1)));
        for (const [at, value] of edits) if (at < bytes.length) bytes[at] = value;
        try {
          const { array, shape } = readTensor(bytes);
          const end = array.byteOffset + array.byteLength;
          assert.ok(end <= bytes.byteOffset + bytes.length, 'the view ends inside the bytes');
          assert.equal(shape.reduce((a, b) => a * b, 1), array.length, 'the shape describes the view');
        } catch (err) {
          assert.ok(err instanceof MemsealError, String(err));
        }
      }), { numRuns: 2000 });
  });
});

describe('open_tensor() (Python)', function () {
  this.timeout(30000);
  before(skipUnlessReader('python'));

  it('raises only MemsealError for any corruption of a header, and never views past the data (a seeded fuzz)', () => {
    const good = Buffer.alloc(tensorByteLength(Float64Array, [3, 4]));
    writeTensor(good, Float64Array, [3, 4]).fill(1);
    const script = `${pythonFuzzPrelude()}for _ in range(5000):
    b = bytearray(good[:rng.randint(1, len(good))])
    for _ in range(rng.randint(1, 6)):
        at = rng.randrange(min(64, len(b)))
        b[at] = rng.randrange(256)
    try:
        a = m.open_tensor(bytes(b))
        assert a.nbytes <= len(b) and a.size == len(a.reshape(-1))
    except m.MemsealError:
        refused += 1
print(refused)
`;
    const r = spawnSync('python3', ['-c', script], { input: good, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(Number(r.stdout) > 1000, `refused ${r.stdout.trim()} of 5000`);
  });
});

describe('writeTensor() / readTensor() in a pool slot', () => {
  it('a Float32 matrix written in place in a loan reaches a subscriber as a view over the pool', async () => {
    const shape = [64, 32];
    const publisher = Publisher.create({ slotSize: tensorByteLength(Float32Array, shape), slots: 4 });
    const [a, b] = socketPair();
    const [subscriber] = await Promise.all([Subscriber.attach(b), publisher.attach(a)]);
    try {
      const loan = await publisher.loan();
      const m = writeTensor(loan.bytes, Float32Array, shape);
      for (let i = 0; i < m.length; i++) m[i] = i;
      await loan.send(tensorByteLength(Float32Array, shape));
      const sample = await subscriber.receive();
      const { array, shape: got } = readTensor(sample.bytes);
      assert.deepEqual(got, shape);
      assert.ok(array instanceof Float32Array);
      assert.equal(array[2047], 2047);
      assert.equal(array.buffer, sample.bytes.buffer, 'a view of the pool mapping');
      sample.release();
    } finally {
      subscriber.close();
      publisher.close();
      a.close();
      b.close();
    }
  });

  it('refuses a target too small or misaligned, and bytes at a misaligned offset', () => {
    assert.throws(() => writeTensor(Buffer.alloc(10), Float64Array, [2]), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => writeTensor(new Uint8Array(200).subarray(4), Float64Array, [2]), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => writeTensor(Buffer.alloc(100), Array as never, [2]), { code: 'ERR_INVALID_ARG_TYPE' });
    const good = new Uint8Array(tensorByteLength(Float64Array, [2]));
    writeTensor(good, Float64Array, [2]);
    const moved = new Uint8Array(good.length + 4);
    moved.set(good, 4);
    assert.throws(() => readTensor(moved.subarray(4)), { code: 'ERR_MEMSEAL_UNSUPPORTED' });
  });
});

for (const kind of ['node', 'python'] as const) {
  describe(`a ${kind} reader process`, function () {
    this.timeout(30000);
    before(skipUnlessReader(kind));

    it('reads every element type with its shape as a view over its own mapping', async () => {
      const reader = startReader(kind);
      try {
        for (const [array, label] of KINDS) {
          using sb = SealedBuffer.fromTypedArray(array, { shape: [3, 2] });
          const reply = await reader.ask(sb, 'tensor');
          const expected = [...array as Iterable<number | bigint>].reduce((s: number, v) => s + Number(v), 0);
          assert.deepEqual(reply.shape, [3, 2], label);
          assert.equal(reply.sum, expected, label);
          assert.equal(reply.view, true, `${label}: a view, not a copy`);
          assert.equal(kind === 'node' ? reply.type : reply.dtype, kind === 'node' ? array.constructor.name : label);
        }
      } finally {
        await reader.close();
      }
    });

    it('refuses every lying header with its code and keeps reading', async () => {
      const reader = startReader(kind);
      try {
        for (const [what, bytes, code] of [
          ['shape larger than the data', header({ dims: [4n, 3n] }), 'ERR_MEMSEAL_PROTOCOL'],
          ['length past the end', header({ length: 4096n, dims: [1024n] }), 'ERR_MEMSEAL_PROTOCOL'],
          ['offset past the end', header({ offset: 1n << 40n }), 'ERR_MEMSEAL_PROTOCOL'],
          ['product wrapping at 2^64', header({ dims: [1n << 62n, 4n, 6n], length: 24n }), 'ERR_MEMSEAL_PROTOCOL'],
          ['unknown type', header({ code: 99 }), 'ERR_MEMSEAL_PROTOCOL'],
          ['no header', Buffer.from('plain bytes'), 'ERR_MEMSEAL_PROTOCOL'],
        ] as const) {
          using sb = SealedBuffer.from(bytes);
          assert.equal((await reader.ask(sb, 'tensor')).error, code, what);
        }
        using good = SealedBuffer.fromTypedArray(Float64Array.of(1, 2, 3));
        assert.equal((await reader.ask(good, 'tensor')).sum, 6);
      } finally {
        await reader.close();
      }
    });
  });
}
