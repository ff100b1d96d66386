// SealedBuffers built in place: the producer holds the new memfd's writable
// shared mapping for as long as it likes (across awaits, unlike create()'s
// synchronous fill), writes its data straight into the pages, then seal()
// unmaps, seals and hands back the SealedBuffer — zero copies. The memfd, its
// mapping and the seals are made by sealed-create.ts and SealedBuffer's own
// sealing step (passed in by sealed.ts): there is no second creation path.
// A tensor builder puts the tensor header (typed/) in front of the elements.
import { type FdHandle, native } from '../kernel/binding';
import { constants as bufferConstants } from 'node:buffer';
import { closedError, MemsealError, outOfRange } from '../kernel/errors';
import { DEFERRED_RELEASE_BYTES, type Mapping, roundUp, unmapNow } from '../kernel/mapping';
import { validateLength, validateObject } from '../kernel/validate';
import { type TypedArrayConstructor, tensorByteLength, writeTensor } from '../typed/tensor';
import { type Creation, createMemfd, creationOptions, mapWritable, type SealedBufferOptions } from './sealed-create';

/** @internal SealedBuffer's own sealing step (F_ADD_SEALS, F_GET_SEALS, the object): `S` is SealedBuffer. */
export type Sealer<S> = (fd: number, handle: FdHandle, size: number, seals: number, hugetlb: boolean) => S;

/** Options for SealedBuffer.allocTensor(). */
export interface AllocTensorOptions {
  /** The memfd's name (see SealedBufferOptions.name). */
  name?: string;
  /** As SealedBufferOptions.hugePages. */
  hugePages?: boolean | number;
}

/**
 * A SealedBuffer being written in place (SealedBuffer.alloc()): `bytes` is a
 * writable shared mapping of the new memfd, and nobody else has the file yet.
 * seal() unmaps it, seals the file (the seals of SealedBufferOptions) and
 * returns the SealedBuffer; close() without seal() frees everything.
 * After either, `bytes` and every view over it are detached (byteLength 0):
 * a write through a kept view is dropped, it never reaches the sealed file.
 */
export class BufferBuilder<S> {
  /** The size of the SealedBuffer seal() returns (hugetlb: rounded up to whole huge pages). */
  readonly size: number;
  #c: Creation;
  #seal: Sealer<S>;
  #fd: number;
  #handle: FdHandle;
  #mapping: Mapping | null;
  #bytes: Buffer | null;
  #state: 'open' | 'sealed' | 'closed' = 'open';

  /** @internal Use SealedBuffer.alloc(). */
  constructor(size: number, options: SealedBufferOptions | undefined, seal: Sealer<S>) {
    validateLength(size, 'size');
    // One Buffer (and the typed arrays over it) shows the whole builder: refused before any syscall.
    if (size > bufferConstants.MAX_LENGTH) throw outOfRange('size', `<= ${bufferConstants.MAX_LENGTH} (buffer.constants.MAX_LENGTH)`, size);
    this.#c = creationOptions(options);
    this.#seal = seal;
    [this.#fd, this.#handle] = createMemfd(this.#c);
    const fileSize = this.#c.hugeFlags ? roundUp(size, this.#c.hugeSize) : size;
    this.#mapping = null;
    try {
      this.#mapping = fileSize > 0 ? mapWritable(this.#fd, this.#c, fileSize) : null;
      this.#bytes = this.#mapping === null ? Buffer.alloc(0) : this.#mapping.bytes(0, size);
    } catch (err) {
      if (this.#mapping !== null) unmapNow(this.#mapping);
      native.fdClose(this.#handle, false);
      throw err;
    }
    this.size = fileSize;
  }

  /**
   * The writable pages (the `size` asked for), shared with the memfd.
   * @throws MemsealError ERR_MEMSEAL_SEALED after seal(), ERR_MEMSEAL_CLOSED after close()
   */
  get bytes(): Buffer {
    this.#assertOpen('bytes');
    return this.#bytes!;
  }

  /** seal() or close() was called: the writable mapping is gone. */
  get closed(): boolean { return this.#state !== 'open'; }

  #assertOpen(op: string): void {
    if (this.#state === 'sealed') {
      throw new MemsealError('ERR_MEMSEAL_SEALED', `SealedBufferBuilder.${op}: the buffer is sealed`,
        { hint: 'read it through the SealedBuffer seal() returned' });
    }
    if (this.#state === 'closed') throw closedError(`SealedBufferBuilder.${op}`, 'the builder');
  }

  /**
   * Unmaps the writable mapping (detaching `bytes` and every view over it),
   * seals the file and returns it as a SealedBuffer, which the caller owns.
   * Once only.
   * @throws MemsealError ERR_MEMSEAL_SEALED when called twice, ERR_MEMSEAL_CLOSED after close()
   */
  seal(): S {
    this.#assertOpen('seal()');
    this.#state = 'sealed';
    this.#release();
    try {
      return this.#seal(this.#fd, this.#handle, this.size, this.#c.seals, this.#c.hugeFlags !== 0);
    } catch (err) {
      native.fdClose(this.#handle, false);
      throw err;
    }
  }

  /** Frees the mapping and the memfd without sealing. Safe to call twice, and after seal() (then it does nothing). */
  close(): void {
    if (this.#state !== 'open') return;
    this.#state = 'closed';
    this.#release();
    native.fdClose(this.#handle, this.size >= DEFERRED_RELEASE_BYTES);
  }

  #release(): void {
    const m = this.#mapping;
    this.#mapping = null;
    this.#bytes = null;
    if (m !== null) unmapNow(m); // F_SEAL_WRITE refuses while a writable mapping is left
  }

  [Symbol.dispose](): void { this.close(); }
}

/**
 * A tensor being written in place (SealedBuffer.allocTensor()): its header is
 * written, `array` is the typed view of its elements over the writable pages.
 * Fill `array`, then seal(). After seal() or close(), `array` is detached
 * (length 0): writes through it are dropped, never reaching the sealed file.
 */
export class TypedBuilder<S, C extends TypedArrayConstructor = TypedArrayConstructor> {
  /** The elements, row-major, over the writable mapping (zero-filled at first). */
  readonly array: InstanceType<C>;
  /** The tensor's dimensions. */
  readonly shape: number[];
  #builder: BufferBuilder<S>;

  /** @internal Use SealedBuffer.allocTensor(). */
  constructor(type: C, shape: readonly number[], options: AllocTensorOptions | undefined, seal: Sealer<S>) {
    const size = tensorByteLength(type, shape);   // checks type and shape before any syscall
    if (options !== undefined) validateObject(options as unknown, 'options');
    this.#builder = new BufferBuilder(size, options === undefined ? undefined
      : { name: options.name, hugePages: options.hugePages }, seal);
    try {
      this.array = writeTensor(this.#builder.bytes, type, shape);
    } catch (err) {
      this.#builder.close();
      throw err;
    }
    this.shape = [...shape];
  }

  /** seal() or close() was called. */
  get closed(): boolean { return this.#builder.closed; }

  /**
   * Seals the tensor (see SealedBufferBuilder#seal()): readers get it with
   * SealedBuffer#typed() or Python's open_tensor().
   */
  seal(): S { return this.#builder.seal(); }

  /** Frees everything without sealing; does nothing after seal(). */
  close(): void { this.#builder.close(); }

  [Symbol.dispose](): void { this.close(); }
}
