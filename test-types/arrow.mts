// Must compile: the 'memseal/arrow' entry through the package's exports, with apache-arrow's own types,
// and the typed-array additions of 'memseal'.
import { type Table, tableFromArrays } from 'apache-arrow';
import { SealedBuffer, type TypedView } from 'memseal';
import { openTable, type SealTableOptions, sealTable } from 'memseal/arrow';

export function roundTrip(): number {
  const options: SealTableOptions = { name: 'prices' };
  using sb: SealedBuffer = sealTable(tableFromArrays({ price: Float64Array.of(1, 2) }), options);
  const table: Table = openTable(sb);
  using m = SealedBuffer.fromTypedArray(new Float32Array(6), { shape: [2, 3] as const });
  const view: TypedView = m.typed();
  const shape: number[] = view.shape;
  return table.numRows + shape.length + view.array.length;
}
