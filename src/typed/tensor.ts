// Typed data without copies: a typed array with a shape ("tensor") behind a
// small self-describing header (docs/protocol.md, "Tensors"), written by a
// producer into sealed memory or a pool slot and read by any peer as a typed
// view over the mapping. Every field a peer controls (type, shape, offsets,
// lengths, alignment) is checked before a view exists. This layer knows only
// bytes: SealedBuffer (sealed/) attaches fromTypedArray() and typed() by
// delegating here; it imports nothing above errors and validation.
import { endianness } from 'node:os';
import { invalidArgType, invalidArgValue, MemsealError, outOfRange } from '../kernel/errors';
import { validateObject } from '../kernel/validate';

/** Every typed array a tensor can hold. */
export type TypedArray =
  | Int8Array | Uint8Array | Uint8ClampedArray | Int16Array | Uint16Array | Int32Array | Uint32Array
  | Float32Array | Float64Array | BigInt64Array | BigUint64Array;

/** A typed-array class a tensor can hold (Float32Array, BigInt64Array, …). */
export type TypedArrayConstructor =
  | Int8ArrayConstructor | Uint8ArrayConstructor | Uint8ClampedArrayConstructor | Int16ArrayConstructor
  | Uint16ArrayConstructor | Int32ArrayConstructor | Uint32ArrayConstructor | Float32ArrayConstructor
  | Float64ArrayConstructor | BigInt64ArrayConstructor | BigUint64ArrayConstructor;

/** A tensor read back: a view over the memory (no copy) and its shape (row-major, C order). */
export interface TypedView<T extends TypedArray = TypedArray> {
  array: T;
  shape: number[];
}

/** Options for SealedBuffer.fromTypedArray(). */
export interface TypedArrayOptions {
  /** Row-major dimensions whose product is `array.length`. Default `[array.length]`. */
  shape?: readonly number[];
  /** The memfd's name (see SealedBufferOptions.name). */
  name?: string;
  /** As SealedBufferOptions.hugePages. */
  hugePages?: boolean | number;
}

/** The header's magic, "MSTENSOR" in ASCII. */
export const TENSOR_MAGIC = 'MSTENSOR';
/** The header version this code writes and reads. */
export const TENSOR_VERSION = 1;
/** Data starts at a multiple of this many bytes (a cache line; enough for every element type and SIMD loads). */
export const TENSOR_ALIGNMENT = 64;
/** The most dimensions a header may state (numpy's limit before 2.0). */
export const TENSOR_MAX_DIMS = 32;
/** The fixed part of the header, before the dimensions. */
const FIXED = 32;
/** Enough to read any valid header's fixed part and dimensions. */
const MAX_HEADER = FIXED + 8 * TENSOR_MAX_DIMS;

// The element types by wire code (docs/protocol.md): stable numbers, never reused.
const TYPES: readonly (readonly [code: number, ctor: TypedArrayConstructor])[] = [
  [1, Int8Array], [2, Uint8Array], [3, Uint8ClampedArray], [4, Int16Array], [5, Uint16Array],
  [6, Int32Array], [7, Uint32Array], [8, Float32Array], [9, Float64Array], [10, BigInt64Array], [11, BigUint64Array],
];
const byCode = new Map(TYPES.map(([code, ctor]) => [code, ctor]));
const byName = new Map<string, number>(TYPES.map(([code, ctor]) => [ctor.name, code]));
// %TypedArray%.prototype[@@toStringTag]: the real kind of a typed array, whatever its prototype says.
const tagOf = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Int8Array.prototype), Symbol.toStringTag)!.get!;
const LITTLE_ENDIAN = endianness() === 'LE';

function protocolError(message: string, hint?: string): MemsealError {
  return new MemsealError('ERR_MEMSEAL_PROTOCOL', `tensor header: ${message}`, hint === undefined ? undefined : { hint });
}

function codeOfArray(array: unknown): number {
  const tag = ArrayBuffer.isView(array) ? tagOf.call(array) as string | undefined : undefined;
  const code = tag === undefined ? undefined : byName.get(tag);
  if (code === undefined) throw invalidArgType('array', 'a TypedArray (Float32Array, BigInt64Array, …)', array);
  return code;
}

function codeOfType(type: unknown): number {
  const code = typeof type === 'function' ? TYPES.find(([, ctor]) => ctor === type)?.[0] : undefined;
  if (code === undefined) throw invalidArgType('type', 'a TypedArray constructor (Float32Array, BigInt64Array, …)', type);
  return code;
}

function validateShape(shape: unknown, name: string): number[] {
  if (!Array.isArray(shape)) throw invalidArgType(name, 'an array of integers', shape);
  if (shape.length > TENSOR_MAX_DIMS) throw outOfRange(`${name}.length`, `<= ${TENSOR_MAX_DIMS}`, shape.length);
  for (const d of shape as unknown[]) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw invalidArgValue(name, 'must hold non-negative safe integers', shape);
    }
  }
  return [...shape] as number[];
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Where the data starts for `ndim` dimensions. */
function dataOffsetFor(ndim: number): number {
  return Math.ceil((FIXED + 8 * ndim) / TENSOR_ALIGNMENT) * TENSOR_ALIGNMENT;
}

/**
 * The bytes a tensor of `type` and `shape` takes: header, padding and data.
 * Use it to size a pool slot or a SealedBuffer.create() for {@link writeTensor}.
 * @example
 * ```ts
 * tensorByteLength(Float32Array, [1024, 768]);   // 64 + 1024 * 768 * 4
 * ```
 */
export function tensorByteLength(type: TypedArrayConstructor, shape: readonly number[]): number {
  const itemSize = byCode.get(codeOfType(type))!.BYTES_PER_ELEMENT;
  const dims = validateShape(shape, 'shape');
  const total = dataOffsetFor(dims.length) + product(dims) * itemSize;
  if (!Number.isSafeInteger(total)) throw outOfRange('shape', 'a size below 2^53 bytes', shape);
  return total;
}

function writeHeader(target: Uint8Array, code: number, dims: readonly number[], dataLength: number): number {
  const dataOffset = dataOffsetFor(dims.length);
  const dv = new DataView(target.buffer, target.byteOffset, dataOffset);
  for (let i = 0; i < 8; i++) dv.setUint8(i, TENSOR_MAGIC.charCodeAt(i));
  dv.setUint16(8, TENSOR_VERSION, true);
  dv.setUint8(10, code);
  dv.setUint8(11, 0);  // flags: little-endian data, nothing else defined
  dv.setUint32(12, dims.length, true);
  dv.setBigUint64(16, BigInt(dataOffset), true);
  dv.setBigUint64(24, BigInt(dataLength), true);
  dims.forEach((d, i) => dv.setBigUint64(FIXED + 8 * i, BigInt(d), true));
  target.fill(0, FIXED + 8 * dims.length, dataOffset);
  return dataOffset;
}

/**
 * Writes a tensor header for `type` and `shape` at the start of `target` (a
 * Loan's `bytes`, a SealedBuffer.create() fill view) and returns the typed view
 * of its data, to be filled in place: zero copies. `target` must hold
 * {@link tensorByteLength} bytes and start 8-byte aligned (a mapping, a pool slot).
 * @throws TypeError/RangeError for a bad type or shape, or a `target` too small or misaligned
 * @example
 * ```ts
 * const loan = await publisher.loan();
 * const m = writeTensor(loan.bytes, Float32Array, [256, 256]);   // m: Float32Array over the slot
 * m.fill(1);
 * await loan.send(tensorByteLength(Float32Array, [256, 256]));
 * ```
 */
export function writeTensor<C extends TypedArrayConstructor>(target: Uint8Array, type: C,
  shape: readonly number[]): InstanceType<C> {
  if (!(target instanceof Uint8Array)) throw invalidArgType('target', 'an instance of Uint8Array', target);
  const total = tensorByteLength(type, shape);
  if (target.byteLength < total) throw outOfRange('target.byteLength', `>= ${total} for this type and shape`, target.byteLength);
  if (target.byteOffset % 8 !== 0) throw invalidArgValue('target', 'must start 8-byte aligned', target.byteOffset);
  const dims = [...shape];
  const dataLength = total - dataOffsetFor(dims.length);
  const dataOffset = writeHeader(target, codeOfType(type), dims, dataLength);
  return new type(target.buffer as ArrayBuffer, target.byteOffset + dataOffset, product(dims)) as InstanceType<C>;
}

/**
 * @internal What SealedBuffer.fromTypedArray() creates: its size and a fill
 * that writes the header and copies the array's bytes in (the one copy).
 */
export function planTypedArray(array: unknown, options: TypedArrayOptions | undefined):
  { size: number; fill: (bytes: Buffer) => void; options: { name?: string; hugePages?: boolean | number } } {
  const code = codeOfArray(array);
  const typed = array as TypedArray;
  if (options !== undefined) validateObject(options as unknown, 'options');
  const dims = options?.shape === undefined ? [typed.length] : validateShape(options.shape, 'options.shape');
  if (product(dims) !== typed.length) {
    throw invalidArgValue('options.shape', `must have a product equal to array.length (${typed.length})`, options?.shape);
  }
  const src = new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
  const size = dataOffsetFor(dims.length) + src.byteLength;
  return {
    size,
    fill: (bytes) => { bytes.set(src, writeHeader(bytes, code, dims, src.byteLength)); },
    options: { name: options?.name, hugePages: options?.hugePages },
  };
}

/** A header, checked against the `size` bytes it sits in. */
interface Header { ctor: TypedArrayConstructor; shape: number[]; dataOffset: number; dataLength: number }

function u64(dv: DataView, at: number, what: string, max: number): number {
  const v = dv.getBigUint64(at, true);
  if (v > BigInt(max)) throw protocolError(`${what} ${v} exceeds ${max}`);
  return Number(v);
}

function parseHeader(head: Uint8Array, size: number): Header {
  if (size < FIXED || head.byteLength < FIXED) throw protocolError(`${size} bytes are too few for a header (${FIXED})`);
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  for (let i = 0; i < 8; i++) {
    if (dv.getUint8(i) !== TENSOR_MAGIC.charCodeAt(i)) {
      throw protocolError(`no ${TENSOR_MAGIC} magic`, 'the buffer was not made by fromTypedArray()/writeTensor()');
    }
  }
  const version = dv.getUint16(8, true);
  if (version !== TENSOR_VERSION) {
    throw new MemsealError('ERR_MEMSEAL_UNSUPPORTED', `tensor header: version ${version}, this reader knows ${TENSOR_VERSION}`);
  }
  const ctor = byCode.get(dv.getUint8(10));
  if (ctor === undefined) throw protocolError(`unknown element type code ${dv.getUint8(10)}`);
  const flags = dv.getUint8(11);
  if (flags !== 0) throw protocolError(`unknown flags 0x${flags.toString(16)}`);
  if (!LITTLE_ENDIAN) throw new MemsealError('ERR_MEMSEAL_UNSUPPORTED', 'tensor data is little-endian; this host is not');
  const ndim = dv.getUint32(12, true);
  if (ndim > TENSOR_MAX_DIMS) throw protocolError(`${ndim} dimensions, at most ${TENSOR_MAX_DIMS}`);
  if (FIXED + 8 * ndim > head.byteLength) throw protocolError(`${ndim} dimensions do not fit in ${size} bytes`);
  const dataOffset = u64(dv, 16, 'data offset', size);
  if (dataOffset % TENSOR_ALIGNMENT !== 0 || dataOffset < FIXED + 8 * ndim) {
    throw protocolError(`data offset ${dataOffset} is not a multiple of ${TENSOR_ALIGNMENT} after the dimensions`);
  }
  const dataLength = u64(dv, 24, 'data length', size - dataOffset);
  const shape: number[] = [];
  let count = 1n;
  for (let i = 0; i < ndim; i++) {
    const d = dv.getBigUint64(FIXED + 8 * i, true);
    count *= d;
    if (d > BigInt(Number.MAX_SAFE_INTEGER)) throw protocolError(`dimension ${i} is ${d}`);
    shape.push(Number(d));
  }
  if (count * BigInt(ctor.BYTES_PER_ELEMENT) !== BigInt(dataLength)) {
    throw protocolError(`shape [${shape.join(', ')}] of ${ctor.name} needs ${count * BigInt(ctor.BYTES_PER_ELEMENT)} bytes, ` +
      `the header states ${dataLength}`);
  }
  return { ctor, shape, dataOffset, dataLength };
}

function viewOf(h: Header, data: Uint8Array, copyIfMisaligned: boolean): TypedView {
  const count = h.dataLength / h.ctor.BYTES_PER_ELEMENT;
  if (data.byteOffset % h.ctor.BYTES_PER_ELEMENT !== 0) {
    if (!copyIfMisaligned) {
      throw new MemsealError('ERR_MEMSEAL_UNSUPPORTED',
        `tensor data at byte ${data.byteOffset} of its ArrayBuffer is not aligned for ${h.ctor.name}`,
        { hint: 'pass the bytes from the start of a mapping, a pool slot or a SealedBuffer' });
    }
    const copy = new h.ctor(count);
    new Uint8Array(copy.buffer).set(data);
    return { array: copy, shape: h.shape };
  }
  return { array: new h.ctor(data.buffer as ArrayBuffer, data.byteOffset, count), shape: h.shape };
}

/**
 * Reads a tensor from `bytes` (a Sample's or Snapshot's bytes, any mapping):
 * checks the header — magic, version, element type, endianness, dimensions,
 * offsets and lengths within `bytes`, alignment — and only then returns a
 * typed view over the data (no copy).
 * @throws MemsealError ERR_MEMSEAL_PROTOCOL for a header that is malformed or
 *   lies (a shape that does not match the data length, an offset out of
 *   bounds); ERR_MEMSEAL_UNSUPPORTED for a newer version or misaligned data
 * @example
 * ```ts
 * const sample = await subscriber.receive();
 * const { array, shape } = readTensor(sample.bytes);   // Float32Array over the pool slot
 * ```
 */
export function readTensor(bytes: Uint8Array): TypedView {
  if (!(bytes instanceof Uint8Array)) throw invalidArgType('bytes', 'an instance of Uint8Array', bytes);
  const h = parseHeader(bytes.subarray(0, MAX_HEADER), bytes.byteLength);
  return viewOf(h, bytes.subarray(h.dataOffset, h.dataOffset + h.dataLength), false);
}

/**
 * @internal SealedBuffer#typed(): the header through `range` (which checks the
 * buffer is open), then a view of exactly the data. A 'copy' view (the kernel
 * refused a mapping) is already a copy: copied again if misaligned.
 */
export function typedViewOf(size: number, range: (offset: number, length: number) => Buffer): TypedView {
  const h = parseHeader(range(0, Math.min(size, MAX_HEADER)), size);
  return viewOf(h, range(h.dataOffset, h.dataLength), true);
}
