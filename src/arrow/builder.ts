// createTableBuilder(): an Arrow table of fixed-width numeric columns built in place in a new
// memfd — the stream's metadata is written first (layout.ts), each column is a typed array over
// its values in the writable mapping, and seal() makes it a SealedBuffer (SealedBuffer.alloc()):
// no copy of any value, and no apache-arrow needed to build one.
import { invalidArgType, invalidArgValue, outOfRange } from '../kernel/errors';
import { validateInteger, validateObject } from '../kernel/validate';
import { SealedBuffer, type SealedBufferBuilder } from '../sealed/sealed';
import { BODY_ALIGNMENT, type ColumnType, planTable } from './layout';

/** A column type createTableBuilder() lays out: the fixed-width numeric typed arrays. */
export type ColumnArrayConstructor =
  | Int8ArrayConstructor | Uint8ArrayConstructor | Int16ArrayConstructor | Uint16ArrayConstructor
  | Int32ArrayConstructor | Uint32ArrayConstructor | Float32ArrayConstructor | Float64ArrayConstructor
  | BigInt64ArrayConstructor | BigUint64ArrayConstructor;

/** Options for {@link createTableBuilder}. */
export interface TableBuilderOptions<S extends Record<string, ColumnArrayConstructor>> {
  /** Rows of every column (at least 1). */
  rows: number;
  /** Column name -> typed array class, in schema order: Int8…Int64, Uint8…Uint64, Float32, Float64 (Arrow Int, FloatingPoint). */
  columns: S;
  /** The memfd's name (see SealedBufferOptions.name). Default 'memseal-arrow'. */
  name?: string;
  /** As SealedBufferOptions.hugePages. */
  hugePages?: boolean | number;
}

/**
 * An Arrow table being written in place: `columns` are typed arrays over the
 * column bodies of the new memfd (zero at first). seal() returns the
 * SealedBuffer holding a valid Arrow IPC stream (openTable(), apache-arrow's
 * tableFromIPC(), pyarrow, Python's open_table_columns() read it); the
 * column arrays are detached then (length 0: writes through them are dropped).
 */
export interface TableBuilder<S extends Record<string, ColumnArrayConstructor>> {
  /** One typed array per column, `rows` long, over the writable mapping. */
  readonly columns: { readonly [K in keyof S]: InstanceType<S[K]> };
  readonly rows: number;
  /** seal() or close() was called. */
  readonly closed: boolean;
  /** Unmaps the writable mapping (detaching `columns`), seals and returns the table's SealedBuffer. Once only. */
  seal(): SealedBuffer;
  /** Frees everything without sealing; does nothing after seal(). */
  close(): void;
  [Symbol.dispose](): void;
}

const TYPES = new Map<unknown, ColumnType>([
  [Int8Array, { int: { bits: 8, signed: true } }], [Uint8Array, { int: { bits: 8, signed: false } }],
  [Int16Array, { int: { bits: 16, signed: true } }], [Uint16Array, { int: { bits: 16, signed: false } }],
  [Int32Array, { int: { bits: 32, signed: true } }], [Uint32Array, { int: { bits: 32, signed: false } }],
  [BigInt64Array, { int: { bits: 64, signed: true } }], [BigUint64Array, { int: { bits: 64, signed: false } }],
  [Float32Array, { float: 'single' }], [Float64Array, { float: 'double' }],
]);

/**
 * Lays out an Arrow table of `rows` rows and the given numeric `columns`
 * (no nulls) in a new memfd and returns a builder whose `columns` are typed
 * arrays over the column bodies: fill them, then seal(). Zero copies: the
 * table is the sealed memory. The stream is one schema message, one record
 * batch with every column body 64-byte aligned, and the end-of-stream marker.
 * @throws TypeError ERR_INVALID_ARG_TYPE for a column type other than the ten
 *   numeric typed arrays; RangeError ERR_OUT_OF_RANGE for zero rows or a size
 *   past 2^53 bytes or past buffer.constants.MAX_LENGTH; TypeError ERR_INVALID_ARG_VALUE for no
 *   columns or a name with a lone surrogate (Arrow names are UTF-8)
 * @example
 * ```ts
 * import { createTableBuilder, openTable } from 'memseal/arrow';
 * using b = createTableBuilder({ rows: 3, columns: { id: Int32Array, price: Float64Array } });
 * b.columns.id.set([1, 2, 3]);
 * b.columns.price.set([9.5, 10, 10.5]);
 * using sb = b.seal();
 * openTable(sb).getChild('price')!.get(1);   // 10
 * ```
 */
export function createTableBuilder<S extends Record<string, ColumnArrayConstructor>>(
  options: TableBuilderOptions<S>): TableBuilder<S> {
  validateObject(options as unknown, 'options');
  validateInteger(options.rows, 'options.rows', 1, Number.MAX_SAFE_INTEGER);
  validateObject(options.columns as unknown, 'options.columns');
  const names = Object.keys(options.columns);
  if (names.length === 0) throw invalidArgValue('options.columns', 'must name at least one column', options.columns);
  const rows = options.rows;
  const specs = names.map((name) => {
    // Arrow names are UTF-8: a lone surrogate would be written as U+FFFD, a column under another name.
    if (/\p{Surrogate}/u.test(name)) {
      throw invalidArgValue('options.columns', 'has a name that is not well-formed Unicode', name);
    }
    const ctor = options.columns[name];
    const type = TYPES.get(ctor);
    if (type === undefined) {
      throw invalidArgType(`options.columns.${name}`,
        'one of Int8Array, Uint8Array, Int16Array, Uint16Array, Int32Array, Uint32Array, BigInt64Array, ' +
        'BigUint64Array, Float32Array, Float64Array', ctor);
    }
    const array = ctor as ColumnArrayConstructor;
    return { name, type, ctor: array, itemSize: array.BYTES_PER_ELEMENT };
  });
  const bodyBytes = specs.reduce((n, s) => n + rows * s.itemSize + BODY_ALIGNMENT, 0);
  if (!Number.isSafeInteger(bodyBytes)) throw outOfRange('options.rows', 'a table below 2^53 bytes', rows);
  const layout = planTable(rows, specs);
  const builder: SealedBufferBuilder = SealedBuffer.alloc(layout.byteLength,
    { name: options.name ?? 'memseal-arrow', hugePages: options.hugePages });
  const columns: Record<string, unknown> = Object.create(null) as Record<string, unknown>;   // a column may be named __proto__
  try {
    const bytes = builder.bytes;
    layout.write(bytes);
    specs.forEach((s, i) => {
      columns[s.name] = new s.ctor(bytes.buffer as ArrayBuffer, bytes.byteOffset + layout.valueOffsets[i]!, rows);
    });
  } catch (err) {
    builder.close();
    throw err;
  }
  return {
    columns: Object.freeze(columns) as TableBuilder<S>['columns'],
    rows,
    get closed() { return builder.closed; },
    seal: () => builder.seal(),
    close: () => builder.close(),
    [Symbol.dispose]: () => builder.close(),
  };
}
