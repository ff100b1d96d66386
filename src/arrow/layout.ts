// The Arrow IPC stream of a table of fixed-width numeric columns without nulls, laid out before
// any value exists, so that the columns can be written in place (createTableBuilder()): a schema
// message, one record batch whose body holds each column's values at a 64-byte-aligned offset,
// and the end-of-stream marker (Arrow columnar format, "Encapsulated message format"; Message.fbs,
// Schema.fbs). The FlatBuffers metadata is written front to back: every table's vtable just
// before it, every object a field refers to after that field, so every offset is forward.
// Metadata only; no apache-arrow needed.

/** A column's Arrow type: Int { bitWidth, is_signed } or FloatingPoint { precision }. */
export interface ColumnType { int?: { bits: 8 | 16 | 32 | 64; signed: boolean }; float?: 'single' | 'double' }

/** Where each column's values lie in the stream, and its total length. */
export interface TableLayout { byteLength: number; valueOffsets: number[]; metadataEnd: number }

/** Column bodies start at multiples of this (the format asks for 8, recommends 64). */
export const BODY_ALIGNMENT = 64;
const CONTINUATION = -1;
const V5 = 4;                                 // MetadataVersion.V5
const HEADER_SCHEMA = 1;
const HEADER_RECORD_BATCH = 3;
const TYPE_INT = 2;
const TYPE_FLOATING_POINT = 3;
const PRECISION = { single: 1, double: 2 } as const;

type Scalar = { size: 1 | 2 | 4 | 8; put: (dv: DataView, at: number) => void };
type Node =
  | { kind: 'table'; fields: (Scalar | Node | undefined)[] }
  | { kind: 'structs'; size: number; items: bigint[][] }      // a vector of structs of int64 members
  | { kind: 'tables'; items: Node[] }
  | { kind: 'string'; bytes: Uint8Array };

const u8 = (v: number): Scalar => ({ size: 1, put: (dv, at) => dv.setUint8(at, v) });
const i16 = (v: number): Scalar => ({ size: 2, put: (dv, at) => dv.setInt16(at, v, true) });
const i32 = (v: number): Scalar => ({ size: 4, put: (dv, at) => dv.setInt32(at, v, true) });
const i64 = (v: number): Scalar => ({ size: 8, put: (dv, at) => dv.setBigInt64(at, BigInt(v), true) });
const table = (...fields: (Scalar | Node | undefined)[]): Node => ({ kind: 'table', fields });
const isScalar = (x: Scalar | Node): x is Scalar => 'put' in x;

class Writer {
  bytes: Uint8Array;
  dv: DataView;
  pos = 4;                                    // the root offset comes first
  constructor(capacity: number) {
    this.bytes = new Uint8Array(capacity);
    this.dv = new DataView(this.bytes.buffer);
  }

  /** Moves to the next position p with p % to === rem. */
  align(to: number, rem = 0): void { while (this.pos % to !== rem) this.pos++; }

  /** Writes `node` at the current position (its vtable first for a table) and returns where it is. */
  write(node: Node): number {
    const refs: [at: number, target: Node][] = [];
    let at: number;
    if (node.kind === 'string') {
      this.align(4);
      at = this.pos;
      this.dv.setUint32(at, node.bytes.length, true);
      this.bytes.set(node.bytes, at + 4);
      this.pos = at + 4 + node.bytes.length + 1;              // NUL-terminated
    } else if (node.kind === 'structs') {
      this.align(8, 4);                                       // int64 members start 8-aligned
      at = this.pos;
      this.dv.setUint32(at, node.items.length, true);
      let p = at + 4;
      for (const item of node.items) for (const v of item) { this.dv.setBigInt64(p, v, true); p += 8; }
      this.pos = p;
    } else if (node.kind === 'tables') {
      this.align(4);
      at = this.pos;
      this.dv.setUint32(at, node.items.length, true);
      node.items.forEach((item, i) => refs.push([at + 4 + 4 * i, item]));
      this.pos = at + 4 + 4 * node.items.length;
    } else {
      at = this.#table(node.fields, refs);
    }
    for (const [from, target] of refs) this.dv.setUint32(from, this.write(target) - from, true);
    return at;
  }

  #table(fields: (Scalar | Node | undefined)[], refs: [number, Node][]): number {
    // Inline members largest first, so each is aligned once the table's first member is.
    const members = fields.map((f, index) => ({ f, index, size: f === undefined ? 0 : isScalar(f) ? f.size : 4 }))
      .filter((m) => m.f !== undefined).sort((a, b) => b.size - a.size);
    this.align(2);
    const vtable = this.pos;
    const vtSize = 4 + 2 * fields.length;
    this.pos += vtSize;
    this.align(members.some((m) => m.size === 8) ? 8 : 4, members.some((m) => m.size === 8) ? 4 : 0);
    const at = this.pos;
    this.dv.setInt32(at, at - vtable, true);                  // soffset: vtable = table - soffset
    let p = at + 4;
    for (const m of members) {
      this.dv.setUint16(vtable + 4 + 2 * m.index, p - at, true);
      if (isScalar(m.f!)) m.f.put(this.dv, p);
      else refs.push([p, m.f!]);
      p += m.size;
    }
    this.dv.setUint16(vtable, vtSize, true);
    this.dv.setUint16(vtable + 2, p - at, true);
    this.pos = p;
    return at;
  }

  /** The FlatBuffer with `root` as its root table. */
  finish(root: Node): Uint8Array {
    this.dv.setUint32(0, this.write(root) - 0, true);
    return this.bytes.subarray(0, this.pos);
  }
}

function encode(message: Node, nameBytes: number, columns: number): Uint8Array {
  return new Writer(256 + 160 * columns + 2 * nameBytes).finish(message);
}

function fieldOf(name: Uint8Array, type: ColumnType): Node {
  const typeTable = type.int !== undefined ? table(i32(type.int.bits), u8(type.int.signed ? 1 : 0))
    : table(i16(PRECISION[type.float!]));
  return table({ kind: 'string', bytes: name }, u8(0), u8(type.int !== undefined ? TYPE_INT : TYPE_FLOATING_POINT),
    typeTable, undefined, { kind: 'tables', items: [] });
}

/** Writes the framed message (continuation, metadata length, metadata padded so the body starts `bodyAlign`-aligned). */
function frame(out: Uint8Array, at: number, meta: Uint8Array, bodyAlign: number): number {
  const metaLength = Math.ceil((at + 8 + meta.length) / bodyAlign) * bodyAlign - at - 8;
  const dv = new DataView(out.buffer, out.byteOffset + at, 8);
  dv.setInt32(0, CONTINUATION, true);
  dv.setInt32(4, metaLength, true);
  out.set(meta, at + 8);
  out.fill(0, at + 8 + meta.length, at + 8 + metaLength);
  return at + 8 + metaLength;
}

/**
 * The stream's metadata for `rows` rows of `columns` (name, type, bytes per value): returns the
 * layout and `write(target)`, which writes every message but no value into `target` (a fresh,
 * zero-filled mapping of `byteLength` bytes).
 */
export function planTable(rows: number, columns: readonly { name: string; type: ColumnType; itemSize: number }[]):
  TableLayout & { write(target: Uint8Array): void } {
  const names = columns.map((c) => new TextEncoder().encode(c.name));
  const nameBytes = names.reduce((n, b) => n + b.length, 0);
  const schema = encode(table(i16(V5), u8(HEADER_SCHEMA),
    table(i16(0), { kind: 'tables', items: columns.map((c, i) => fieldOf(names[i]!, c.type)) }), i64(0)), nameBytes, columns.length);
  const buffers: bigint[][] = [];
  const bodyOffsets: number[] = [];
  let body = 0;
  for (const c of columns) {
    const length = rows * c.itemSize;
    buffers.push([BigInt(body), 0n], [BigInt(body), BigInt(length)]);   // no validity bitmap: no nulls
    bodyOffsets.push(body);
    body += Math.ceil(length / BODY_ALIGNMENT) * BODY_ALIGNMENT;
  }
  const batch = encode(table(i16(V5), u8(HEADER_RECORD_BATCH), table(i64(rows),
    { kind: 'structs', size: 16, items: columns.map(() => [BigInt(rows), 0n]) },
    { kind: 'structs', size: 16, items: buffers }), i64(body)), 0, columns.length);
  const schemaEnd = 8 + Math.ceil(schema.length / 8) * 8;
  const bodyStart = Math.ceil((schemaEnd + 8 + batch.length) / BODY_ALIGNMENT) * BODY_ALIGNMENT;
  const byteLength = bodyStart + body + 8;
  return {
    byteLength,
    metadataEnd: bodyStart,
    valueOffsets: bodyOffsets.map((o) => bodyStart + o),
    write(target) {
      const afterSchema = frame(target, 0, schema, 8);
      frame(target, afterSchema, batch, BODY_ALIGNMENT);
      const eos = new DataView(target.buffer, target.byteOffset + bodyStart + body, 8);
      eos.setInt32(0, CONTINUATION, true);
      eos.setInt32(4, 0, true);
    },
  };
}
