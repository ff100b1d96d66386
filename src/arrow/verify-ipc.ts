// A bounds check of Arrow IPC metadata (FlatBuffers: Message.fbs, Schema.fbs) before
// apache-arrow decodes it. apache-arrow trusts every count and offset in the metadata: a
// vector length of 2^31 makes it build 2^31 objects and exhaust the heap, a buffer past its
// body is silently clamped. This walks every table, vector and string the decoder will follow
// and refuses the stream (ERR_MEMSEAL_PROTOCOL) at the first one that leaves its message, the
// first body cut short and the first buffer outside its body. Metadata only: no value is read.
import { MemsealError } from '../kernel/errors';

/** How deep Field.children may nest (Arrow's own writers stay far below). */
export const MAX_NESTING = 64;

const HEADER = { Schema: 1, DictionaryBatch: 2, RecordBatch: 3 } as const;
const TYPE = { Timestamp: 10, Union: 14 } as const;

/** ERR_MEMSEAL_PROTOCOL for a stream openTable() refuses. */
export function ipcError(message: string, cause?: unknown): MemsealError {
  return new MemsealError('ERR_MEMSEAL_PROTOCOL', `openTable(): ${message}`,
    { hint: 'the buffer is not a well-formed Arrow IPC stream (sealTable() writes one)', cause });
}

class Flat {
  readonly dv: DataView;
  /** Fields left to visit: a tree of real fields takes at least 8 bytes of metadata each, so a
   *  children vector that points back at its own fields cannot make the walk (or the decoder) explode. */
  fieldBudget: number;
  constructor(readonly bytes: Uint8Array) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.fieldBudget = Math.floor(bytes.byteLength / 8);
  }

  #need(at: number, n: number): void {
    if (at < 0 || at + n > this.bytes.byteLength) throw ipcError(`metadata offset ${at} (+${n}) leaves its message`);
  }

  /** The checked table at `pos`: a function giving a field's position (or -1), its size checked. */
  table(pos: number): (index: number, size: number) => number {
    this.#need(pos, 4);
    const vt = pos - this.dv.getInt32(pos, true);
    this.#need(vt, 4);
    const vtSize = this.dv.getUint16(vt, true);
    const tableSize = this.dv.getUint16(vt + 2, true);
    if (vtSize < 4 || vtSize % 2 !== 0) throw ipcError(`a vtable of ${vtSize} bytes`);
    this.#need(vt, vtSize);
    this.#need(pos, tableSize);
    return (index, size) => {
      if (4 + 2 * index + 2 > vtSize) return -1;
      const off = this.dv.getUint16(vt + 4 + 2 * index, true);
      if (off === 0) return -1;
      if (off + size > tableSize) throw ipcError(`field ${index} runs past its table`);
      return pos + off;
    };
  }

  /** Follows the offset at `at` (-1 stays -1). */
  ref(at: number): number {
    if (at < 0) return -1;
    const target = at + this.dv.getUint32(at, true);
    this.#need(target, 4);
    return target;
  }

  /** A vector at `at` of `size`-byte elements: the position of its first element and its length. */
  vector(at: number, size: number): [start: number, count: number] {
    if (at < 0) return [0, 0];
    const count = this.dv.getUint32(at, true);
    this.#need(at + 4, count * size);
    return [at + 4, count];
  }

  /** Each table of a vector of tables at `at`. */
  tables(at: number, visit: (pos: number) => void): void {
    const [start, count] = this.vector(at, 4);
    for (let i = 0; i < count; i++) visit(this.ref(start + 4 * i));
  }
}

function keyValues(f: Flat, at: number): void {
  f.tables(at, (kv) => {
    const field = f.table(kv);
    f.vector(f.ref(field(0, 4)), 1);
    f.vector(f.ref(field(1, 4)), 1);
  });
}

function checkField(f: Flat, pos: number, depth: number): void {
  if (depth > MAX_NESTING) throw ipcError(`fields nest deeper than ${MAX_NESTING}`);
  if (--f.fieldBudget < 0) throw ipcError('more fields than the metadata can hold (a field listed twice)');
  const field = f.table(pos);
  f.vector(f.ref(field(0, 4)), 1);                                 // name
  const typeAt = f.ref(field(3, 4));
  if (typeAt >= 0) {
    const type = f.table(typeAt);
    const typeType = field(2, 1) < 0 ? 0 : f.dv.getUint8(field(2, 1));
    if (typeType === TYPE.Union) f.vector(f.ref(type(1, 4)), 4);    // typeIds
    if (typeType === TYPE.Timestamp) f.vector(f.ref(type(1, 4)), 1); // timezone
  }
  const dictAt = f.ref(field(4, 4));
  if (dictAt >= 0) { const dict = f.table(dictAt); const idx = f.ref(dict(1, 4)); if (idx >= 0) f.table(idx); }
  f.tables(f.ref(field(5, 4)), (child) => checkField(f, child, depth + 1));
  keyValues(f, f.ref(field(6, 4)));
}

function checkBatch(f: Flat, pos: number, bodyLength: number): void {
  const batch = f.table(pos);
  f.vector(f.ref(batch(1, 4)), 16);                                // nodes
  const [start, count] = f.vector(f.ref(batch(2, 4)), 16);         // buffers
  for (let i = 0; i < count; i++) {
    const offset = f.dv.getBigInt64(start + 16 * i, true);
    const length = f.dv.getBigInt64(start + 16 * i + 8, true);
    if (offset < 0n || length < 0n || offset + length > BigInt(bodyLength)) {
      throw ipcError(`buffer ${i} at ${offset} of ${length} bytes lies outside its body of ${bodyLength}`);
    }
  }
  const compression = f.ref(batch(3, 4));
  if (compression >= 0) f.table(compression);
  f.vector(f.ref(batch(4, 4)), 8);                                 // variadicBufferCounts
}

/**
 * Checks every message of the IPC stream in `bytes` (a file's stream part: after its 8-byte
 * magic): framing, metadata bounds, bodies present, buffers inside their bodies.
 * @throws MemsealError ERR_MEMSEAL_PROTOCOL
 */
export function verifyIpc(bytes: Uint8Array): void {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 0;
  for (;;) {
    if (pos + 8 > bytes.byteLength) throw ipcError('the stream ends without its end-of-stream marker');
    if (dv.getInt32(pos, true) !== -1) throw ipcError(`no continuation marker at byte ${pos}`);
    const metaLength = dv.getInt32(pos + 4, true);
    if (metaLength === 0) return;
    if (metaLength < 0 || metaLength > bytes.byteLength - pos - 8) throw ipcError(`metadata of ${metaLength} bytes runs past the buffer`);
    const f = new Flat(bytes.subarray(pos + 8, pos + 8 + metaLength));
    const message = f.table(f.ref(0));
    const bodyAt = message(3, 8);
    const body = bodyAt < 0 ? 0n : f.dv.getBigInt64(bodyAt, true);
    const bodyStart = pos + 8 + metaLength;
    if (body < 0n || body > BigInt(bytes.byteLength - bodyStart)) throw ipcError(`a body of ${body} bytes runs past the buffer`);
    const headerType = message(1, 1) < 0 ? 0 : f.dv.getUint8(message(1, 1));
    const header = f.ref(message(2, 4));
    if (header < 0) throw ipcError('a message without a header');
    if (headerType === HEADER.Schema) {
      const schema = f.table(header);
      f.tables(f.ref(schema(1, 4)), (field) => checkField(f, field, 0));
      keyValues(f, f.ref(schema(2, 4)));
      f.vector(f.ref(schema(3, 4)), 8);
    } else if (headerType === HEADER.RecordBatch) {
      checkBatch(f, header, Number(body));
    } else if (headerType === HEADER.DictionaryBatch) {
      const dict = f.table(header);
      const data = f.ref(dict(1, 4));
      if (data >= 0) checkBatch(f, data, Number(body));
    } else {
      throw ipcError(`a message of type ${headerType}, not a schema or a batch`);
    }
    keyValues(f, f.ref(message(4, 4)));
    pos = bodyStart + Number(body);
  }
}
