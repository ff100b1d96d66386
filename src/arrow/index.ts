// 'memseal/arrow': Apache Arrow tables in sealed memory. A table is sealed in
// the Arrow IPC stream format (the format's own encoding, so any Arrow library
// reads it: pyarrow, arrow-rs, and the stdlib+numpy reader in
// python/memseal_peer.py) and read back as a Table whose columns are
// views over the mapping. `apache-arrow` is an optional peer dependency: it is
// loaded on the first call, never when memseal itself loads. This entry sits
// above sealed/ and imports nothing from channels or pools.
import type { Data, Table } from 'apache-arrow';
import { invalidArgType, MemsealError } from '../kernel/errors';
import { SealedBuffer } from '../sealed/sealed';
import { validateObject } from '../kernel/validate';
import { writtenChunks } from './chunks';
import { type Arrow, arrowFor } from './modules';
import { ipcError, verifyIpc } from './verify-ipc';

export { createTableBuilder } from './builder';
export type { ColumnArrayConstructor, TableBuilder, TableBuilderOptions } from './builder';

/** Options for {@link sealTable}. */
export interface SealTableOptions {
  /** The memfd's name (see SealedBufferOptions.name). Default 'memseal-arrow'. */
  name?: string;
}

/**
 * Seals `table` as an Arrow IPC stream: the writer's pieces (its metadata and
 * the columns' own buffers) are copied once, straight into the sealed memory.
 * Send the result like any SealedBuffer (Channel#sendBuffer,
 * SnapshotPublisher#publish); readers call {@link openTable}.
 * @throws TypeError if `table` is not an apache-arrow Table; MemsealError
 *   ERR_MEMSEAL_UNSUPPORTED without the apache-arrow package
 * @example
 * ```ts
 * import { tableFromArrays } from 'apache-arrow';
 * import { sealTable } from 'memseal/arrow';
 * using sb = sealTable(tableFromArrays({ price: new Float64Array([1.5, 2.5]) }));
 * ```
 */
export function sealTable(table: Table, options?: SealTableOptions): SealedBuffer {
  const a = arrowFor(table);
  if (!(table instanceof a.Table)) throw invalidArgType('table', 'an instance of apache-arrow Table', table);
  if (options !== undefined) validateObject(options as unknown, 'options');
  const name = options?.name ?? 'memseal-arrow';
  const writer = a.RecordBatchStreamWriter.writeAll(table);
  const chunks = writtenChunks(writer);
  if (chunks === null) return SealedBuffer.from(writer.toUint8Array(true), { name });
  const size = chunks.reduce((n, c) => n + c.byteLength, 0);
  return SealedBuffer.create(size, (bytes) => {
    let at = 0;
    for (const c of chunks) { bytes.set(c, at); at += c.byteLength; }
  }, { name });
}

function lastOffset(offsets: ArrayLike<number | bigint>, at: number): number {
  return Number(offsets[at]);
}

/**
 * Checks that every buffer of `data` (and its children) holds what its length
 * and type say: a stated length larger than the bytes behind it — a lie about
 * an offset or a length — is refused rather than read as missing values.
 */
function checkData(a: Arrow, data: Data, column: string): void {
  const { type } = data;
  const end = data.offset + data.length;
  const fail = (what: string): never => { throw ipcError(`column '${column}' (${type}): ${what}`); };
  if (data.nullCount > 0 && data.nullBitmap !== undefined && data.nullBitmap.length * 8 < end) fail('validity bitmap too short');
  const offsets = data.valueOffsets as ArrayLike<number | bigint> | undefined;
  if (a.DataType.isUtf8(type) || a.DataType.isBinary(type) || a.DataType.isLargeUtf8(type) || a.DataType.isLargeBinary(type)) {
    if (offsets === undefined || offsets.length < end + 1) fail('offsets too short');
    if (lastOffset(offsets!, end) > data.values.length || lastOffset(offsets!, data.offset) < 0) fail('offsets beyond the data');
  } else if (a.DataType.isList(type) || a.DataType.isMap(type) || a.DataType.isLargeList(type)) {
    if (offsets === undefined || offsets.length < end + 1) fail('offsets too short');
    if (lastOffset(offsets!, end) > (data.children[0]?.length ?? 0)) fail('offsets beyond the child values');
  } else if (a.DataType.isFixedSizeList(type)) {
    if ((data.children[0]?.length ?? 0) < end * type.listSize) fail('child values too short');
  } else if (a.DataType.isStruct(type)) {
    if (data.children.some((c) => c.length < end)) fail('a child is shorter than the struct');
  } else if (a.DataType.isBool(type)) {
    if (data.values.length * 8 < end) fail('values too short');
  } else if (data.values !== undefined && !a.DataType.isNull(type) && !a.DataType.isUnion(type)) {
    if (data.values.length < end * data.stride) fail(`values too short: ${data.values.length} for ${data.length} rows`);
  }
  for (const child of data.children) checkData(a, child, column);
  if (data.dictionary !== undefined) for (const d of data.dictionary.data) checkData(a, d, column);
}

/**
 * Reads the Arrow IPC stream (or file) in `buffer` as a Table whose columns
 * are views over the buffer's mapping: the values are neither copied nor
 * parsed. Every column's buffers are checked against its stated length before
 * the table is returned. Keep `buffer` open while the table is used: close()
 * detaches the views (they then read as empty, never as freed memory).
 * @throws MemsealError ERR_MEMSEAL_PROTOCOL for bytes that are not a
 *   well-formed stream or whose metadata lies about lengths or offsets;
 *   ERR_MEMSEAL_CLOSED; ERR_MEMSEAL_UNSUPPORTED without the apache-arrow package
 * @example
 * ```ts
 * const { buffer } = await channel.receiveBuffer({ maxSize: 1 << 30 });
 * const table = openTable(buffer);
 * table.getChild('price')!.data[0]!.values;   // a Float64Array over the sealed pages
 * ```
 */
export function openTable(buffer: SealedBuffer): Table {
  const a = arrowFor();
  if (!(buffer instanceof SealedBuffer)) throw invalidArgType('buffer', 'an instance of SealedBuffer', buffer);
  const bytes = buffer.bytes;
  // A stream opens with a schema message (continuation marker, then its length) and a file with
  // ARROW1: anything else, an empty buffer and a bare end-of-stream marker included, is not a table.
  const isFile = bytes.length >= 8 && bytes.toString('latin1', 0, 6) === 'ARROW1';
  if (!isFile && !(bytes.length >= 8 && bytes.readInt32LE(0) === -1 && bytes.readInt32LE(4) > 0)) {
    throw ipcError('no Arrow IPC stream here: it does not start with a schema message');
  }
  let table: Table;
  try {
    verifyIpc(isFile ? bytes.subarray(8) : bytes);
    table = a.tableFromIPC(bytes);
  } catch (err) {
    if (err instanceof MemsealError) throw err;
    throw ipcError(`apache-arrow could not read it: ${(err as Error)?.message}`, err);
  }
  table.schema.fields.forEach((field, i) => {
    for (const data of table.getChildAt(i)?.data ?? []) checkData(a, data, field.name);
  });
  return table;
}
