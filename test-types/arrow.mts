// Must compile: the 'memseal/arrow' entry through the package's exports, with apache-arrow's own types,
// and the typed-array additions of 'memseal' (built in place too).
import { type Table, tableFromArrays } from 'apache-arrow';
import { SealedBuffer, type TypedView } from 'memseal';
import { openTable, type SealTableOptions, sealTable } from 'memseal/arrow';
import type { SealedBufferBuilder, TensorBuilder } from 'memseal';
import { createTableBuilder, type TableBuilder } from 'memseal/arrow';

export function roundTrip(): number {
  const options: SealTableOptions = { name: 'prices' };
  using sb: SealedBuffer = sealTable(tableFromArrays({ price: Float64Array.of(1, 2) }), options);
  const table: Table = openTable(sb);
  using m = SealedBuffer.fromTypedArray(new Float32Array(6), { shape: [2, 3] as const });
  const view: TypedView = m.typed();
  const shape: number[] = view.shape;
  return table.numRows + shape.length + view.array.length;
}

// Built in place: the builders' arrays keep their element types, column by column.

export function inPlace(): number {
  using t: TensorBuilder<Float64ArrayConstructor> = SealedBuffer.allocTensor(Float64Array, [2, 2], { name: 'm' });
  const row: Float64Array = t.array.subarray(0, 2);
  using sb: SealedBuffer = t.seal();
  using raw: SealedBufferBuilder = SealedBuffer.alloc(16);
  raw.bytes.writeUInt32LE(1, 0);
  const b: TableBuilder<{ id: Int32ArrayConstructor; ts: BigInt64ArrayConstructor }> =
    createTableBuilder({ rows: 2, columns: { id: Int32Array, ts: BigInt64Array } });
  const ids: Int32Array = b.columns.id;
  const ts: BigInt64Array = b.columns.ts;
  ts[0] = 1n;
  // @ts-expect-error a column that was not declared
  void b.columns.price;
  using table = b.seal();
  return row.length + sb.size + ids.length + table.size;
}
