// WriteOnceArena: "read-only after init" for data built at run time. Pages are
// reserved with mmap(2), handed out by bump allocation, then made PROT_READ
// with mprotect(2) and sealed with mseal(2) (Linux 6.10), after which nothing
// in the process (no bug, no native addon, no injected code) can make them
// writable, unmap them or move them again.
import { constants as C } from '../kernel/constants';
import { closedError, invalidArgType, invalidArgValue, MemsealError, outOfRange } from '../kernel/errors';
import { features } from '../kernel/features';
import { type Mapping, mmap, PAGE_SIZE as PAGE, roundToPages } from '../kernel/mapping';
import { toBytes, validateInteger, validateLength, validateObject, validateString } from '../kernel/validate';

const MSEAL_HINT = 'needs Linux ≥ 6.10 (mseal), on a 64-bit architecture; seal({ mseal: false }) protects with mprotect only';
const FOREVER_HINT = 'an mseal\'d arena cannot be unmapped: the kernel keeps its pages until the process exits. ' +
  'Seal with { mseal: false } for arenas you mean to destroy (e.g. configuration you reload)';

/** Options for {@link WriteOnceArena}. */
export interface WriteOnceArenaOptions {
  /** Shown in error messages. Default 'arena'. */
  name?: string;
}

/** Options for {@link WriteOnceArena.seal}. */
export interface ArenaSealOptions {
  /**
   * Also mseal(2) the pages (Linux 6.10). Default: `features.mseal`.
   * `true` demands it (ERR_MEMSEAL_UNSUPPORTED where the kernel lacks it);
   * `false` protects with mprotect(2) only, so the arena can still be
   * destroyed, and so can anything else in the process mprotect it back.
   */
  mseal?: boolean;
}

/** How a sealed arena is protected. */
export type ArenaSealMethod = 'mseal' | 'mprotect';

/** A typed-array class, e.g. Float64Array or BigUint64Array. */
export interface TypedArrayConstructorLike<T extends ArrayBufferView> {
  new (buffer: ArrayBuffer, byteOffset: number, length: number): T;
  readonly BYTES_PER_ELEMENT: number;
}

/**
 * Memory you write once and then only read, for data that must not change
 * after start-up: configuration, policy and lookup tables, dispatch tables,
 * parsed certificates.
 *
 * Lifecycle: `new` reserves `capacity` bytes (rounded up to whole pages; no
 * RAM is used until written) → `alloc()` hands out `Buffer` views → you write
 * them → `seal()` makes the whole arena PROT_READ and, where the kernel has
 * it, mseal(2)s it → you read, forever.
 *
 * After `seal()` a write through any view kills the process with SIGSEGV:
 * that is the protection working (it cannot be turned into an exception).
 * After an mseal'd `seal()` the kernel refuses mprotect, munmap, mremap and
 * destructive madvise on the pages with EPERM, and the memory is never freed.
 * @example
 * ```ts
 * import { WriteOnceArena } from 'memseal';
 * const arena = new WriteOnceArena(64 * 1024);
 * const config = arena.allocJSON({ listen: ':8443' });
 * arena.seal();                 // read-only for good (mseal where the kernel has it)
 * JSON.parse(config.toString());
 * ```
 */
export class WriteOnceArena {
  /** The name given at construction. */
  readonly name: string;
  #mapping: Mapping;
  #used = 0;
  #sealedWith: ArenaSealMethod | null = null;
  #closed = false;

  /**
   * Reserves `capacity` bytes of anonymous memory: mmap(2) PROT_READ|PROT_WRITE,
   * MAP_PRIVATE|MAP_ANONYMOUS. The capacity is rounded up to the page size.
   * @throws RangeError (ERR_OUT_OF_RANGE) for a capacity < 1; ENOMEM from mmap
   */
  constructor(capacity: number, options?: WriteOnceArenaOptions) {
    validateInteger(capacity, 'capacity', 1, Number.MAX_SAFE_INTEGER - PAGE);
    let name = 'arena';
    if (options !== undefined) {
      validateObject(options, 'options');
      if (options.name !== undefined) { validateString(options.name, 'options.name'); name = options.name; }
    }
    this.name = name;
    this.#mapping = mmap(roundToPages(capacity), C.PROT_READ | C.PROT_WRITE, C.MAP_PRIVATE);
  }

  /** Usable bytes: the requested capacity rounded up to whole pages. */
  get capacity(): number { return this.#mapping.length; }
  /** Bytes handed out so far, including alignment padding. */
  get used(): number { return this.#used; }
  /** Bytes still free (before alignment). */
  get available(): number { return this.capacity - this.#used; }
  /** `seal()` has run: the pages are read-only. */
  get sealed(): boolean { return this.#sealedWith !== null; }
  /** 'mseal' (the kernel refuses any change until exit), 'mprotect' (read-only, but revocable), or null. */
  get sealedWith(): ArenaSealMethod | null { return this.#sealedWith; }
  /** Destroyed: the pages are unmapped and every view has length 0. */
  get closed(): boolean { return this.#closed; }
  /**
   * The underlying {@link Mapping} (address, length, advise(), lock(), …).
   * Changing its protection or unmapping it goes behind the arena's back; on
   * an mseal'd arena the kernel refuses both.
   */
  get mapping(): Mapping { return this.#mapping; }

  /**
   * Hands out `size` bytes whose offset is a multiple of `align`, as a Buffer
   * view of the arena (zero-filled: the pages are fresh). Bump allocation: memory is
   * only given back when the whole arena is destroyed.
   * @param align a power of two, 1 … page size; default 8
   * @throws MemsealError ERR_MEMSEAL_SEALED after seal(), ERR_MEMSEAL_CLOSED after destroy();
   *   ERR_MEMSEAL_SIZE when the arena has no room left
   */
  alloc(size: number, align = 8): Buffer {
    this.#assertWritable('alloc');
    validateLength(size, 'size');
    validateInteger(align, 'align', 1, PAGE);
    if ((align & (align - 1)) !== 0) throw outOfRange('align', 'a power of two', align);
    // The base is page-aligned, so an offset aligned to align ≤ PAGE is an aligned address.
    const pad = (align - (this.#used % align)) % align;
    const offset = this.#used + pad;
    if (offset + size > this.capacity) {
      throw new MemsealError('ERR_MEMSEAL_SIZE', `WriteOnceArena '${this.name}' is full: alloc(${size}, ${align}) needs ${size + pad} ` +
        `bytes, ${this.capacity - this.#used} of ${this.capacity} are left`,
      { hint: 'create the arena with a larger capacity (untouched pages cost no memory)' });
    }
    const view = this.#mapping.bytes(offset, size);
    if (size > 0) this.#used = offset + size;
    return view;
  }

  /**
   * Copies a string into the arena, encoded (UTF-8 by default); returns the
   * view of exactly its bytes. Read it back with `view.toString()`.
   */
  allocString(value: string, encoding: BufferEncoding = 'utf8'): Buffer {
    validateString(value, 'value');
    if (!Buffer.isEncoding(encoding)) throw invalidArgType('encoding', 'a Buffer encoding', encoding);
    const view = this.alloc(Buffer.byteLength(value, encoding), 1);
    view.write(value, 0, encoding);
    return view;
  }

  /**
   * `JSON.stringify(value)` into the arena as UTF-8; returns the view. Read it
   * back with `JSON.parse(view.toString())` (that gives ordinary, mutable heap
   * objects: the arena guarantees the bytes, not the objects parsed from them).
   * @throws TypeError (ERR_INVALID_ARG_TYPE) for values JSON cannot represent (undefined, functions)
   */
  allocJSON(value: unknown, replacer?: (this: unknown, key: string, value: unknown) => unknown): Buffer {
    let text: string | undefined;
    try {
      text = JSON.stringify(value, replacer);
    } catch (err) {
      // BigInt and cycles: JSON.stringify's own TypeError has no code; say what was wrong with the argument
      if (!(err instanceof TypeError)) throw err;
      const e = invalidArgValue('value', `cannot be serialized as JSON (${err.message})`, value);
      (e as TypeError & { cause?: unknown }).cause = err;
      throw e;
    }
    if (text === undefined) throw invalidArgType('value', 'representable as JSON', value);
    return this.allocString(text, 'utf8');
  }

  /** Copies bytes (a Buffer, any ArrayBufferView or an ArrayBuffer) into the arena; returns the view. */
  allocFrom(data: ArrayBufferView | ArrayBuffer, align = 1): Buffer {
    const src = toBytes(data, 'an ArrayBuffer or an ArrayBufferView', { strings: false, arrayBuffers: true });
    const view = this.alloc(src.length, align);
    src.copy(view);
    return view;
  }

  /**
   * A typed array in the arena, aligned to its element size: `length`
   * elements (zeros), or a copy of `values`. For lookup and dispatch tables:
   * `arena.allocArray(Uint32Array, [1, 2, 3])`.
   */
  allocArray<T extends ArrayBufferView>(type: TypedArrayConstructorLike<T>,
    lengthOrValues: number | ArrayLike<number> | ArrayLike<bigint>): T {
    if (typeof type !== 'function' || typeof type.BYTES_PER_ELEMENT !== 'number') {
      throw invalidArgType('type', 'a TypedArray constructor', type);
    }
    const values = typeof lengthOrValues === 'number' ? null : lengthOrValues;
    const length = values === null ? (lengthOrValues as number) : values.length;
    validateLength(length, 'length');
    const view = this.alloc(length * type.BYTES_PER_ELEMENT, type.BYTES_PER_ELEMENT);
    const array = new type(view.buffer as ArrayBuffer, view.byteOffset, length);
    if (values !== null) (array as unknown as { set(a: ArrayLike<number | bigint>): void }).set(values);
    return array;
  }

  /**
   * Makes the whole arena read-only: mprotect(2) PROT_READ, then mseal(2)
   * (Linux 6.10) unless `{ mseal: false }` or the kernel lacks it. Costs two
   * syscalls whatever the size, no copies. Calling it again is a no-op,
   * except that `{ mseal: true }` upgrades an mprotect-only arena.
   * If mseal fails the arena is left writable and unsealed.
   * @throws MemsealError ERR_MEMSEAL_UNSUPPORTED for `{ mseal: true }` without
   *   kernel support; ERR_MEMSEAL_CLOSED after destroy(); EPERM/ENOMEM from the kernel
   */
  seal(options?: ArenaSealOptions): void {
    if (this.#closed) throw closedError('WriteOnceArena.seal()', `the arena '${this.name}'`, 'destroyed');
    let wantMseal = features.mseal;
    if (options !== undefined) {
      validateObject(options, 'options');
      if (options.mseal !== undefined) {
        if (typeof options.mseal !== 'boolean') throw invalidArgType('options.mseal', 'of type boolean', options.mseal);
        if (options.mseal && !features.mseal) {
          throw new MemsealError('ERR_MEMSEAL_UNSUPPORTED',
            `WriteOnceArena.seal({ mseal: true }): mseal(2) is not available on this kernel (${features.kernelRelease})`, { hint: MSEAL_HINT });
        }
        wantMseal = options.mseal;
      }
    }
    if (this.#sealedWith === 'mseal' || (this.#sealedWith === 'mprotect' && !wantMseal)) return;
    const wasWritable = this.#sealedWith === null;
    if (wasWritable) this.#mapping.protect(C.PROT_READ);
    if (wantMseal) {
      try {
        this.#mapping.seal();
      } catch (err) {
        if (wasWritable) this.#mapping.protect(C.PROT_READ | C.PROT_WRITE);
        throw err;
      }
    }
    this.#sealedWith = wantMseal ? 'mseal' : 'mprotect';
  }

  /**
   * Unmaps the arena (munmap(2)) and detaches every view it handed out (they
   * read as length 0). Safe to call twice. Works before seal() and after an
   * mprotect-only seal.
   * @throws MemsealError ERR_MEMSEAL_SEALED on an mseal'd arena: its memory lives until the process exits
   */
  close(): void {
    if (this.#closed) return;
    if (this.#sealedWith === 'mseal') {
      const err = new MemsealError('ERR_MEMSEAL_SEALED', `WriteOnceArena '${this.name}' is mseal'd and cannot be destroyed`,
        { hint: FOREVER_HINT });
      Error.captureStackTrace(err, this.close);
      throw err;
    }
    this.#mapping.close();
    this.#closed = true;
  }

  /** @deprecated The same as {@link close}, the name every memseal object uses; kept for existing callers. */
  destroy(): void { this.close(); }

  /** `using arena = new WriteOnceArena(…)` destroys it at scope exit; an mseal'd arena is left alone. */
  [Symbol.dispose](): void {
    if (this.#sealedWith !== 'mseal') this.close();
  }

  #assertWritable(op: string): void {
    if (this.#closed) throw closedError(`WriteOnceArena.${op}()`, `the arena '${this.name}'`, 'destroyed');
    if (this.#sealedWith !== null) {
      throw new MemsealError('ERR_MEMSEAL_SEALED', `WriteOnceArena.${op}(): '${this.name}' is sealed (${this.#sealedWith})`,
        { hint: 'allocate everything before seal(); a sealed arena is read-only for good' });
    }
  }
}
