// SealedBuffer: an immutable byte range in a sealed memfd that another
// process can map and trust without copying; also Channel#sendBuffer() and
// Channel#receiveBuffer(), which carry a SealedBuffer over a Channel. How one
// is made lives in sealed-create.ts, the check a receiver runs before it maps
// anything (verifySeals) in verify.ts.
import { constants as bufferConstants } from 'node:buffer';
import { readSync, writeSync } from 'node:fs';
import { type FdHandle, native } from '../kernel/binding';
import { constants as C } from '../kernel/constants';
import { check, closedError, illegalConstructor, MemsealError, tooLargeForBuffer } from '../kernel/errors';
import { features } from '../kernel/features';
import { DEFERRED_RELEASE_BYTES, type Mapping, mmap, roundUp } from '../kernel/mapping';
import { addSeals, getSeals } from '../kernel/memfd';
import {
  asyncFill, createMemfd, creationOptions, fillMapped, isAsyncFunction, isThenable, type SealedBufferOptions,
} from './sealed-create';
import { type AllocTensorOptions, BufferBuilder, type Sealer, TypedBuilder } from './builder';
import {
  planTypedArray, type TypedArray, type TypedArrayConstructor, type TypedArrayOptions, typedViewOf, type TypedView,
} from '../typed/tensor';
import { toBytes, validateFd, validateFunction, validateInteger, validateLength } from '../kernel/validate';
import { populatePeerMapping, verifyFd, type VerifyOptions, type VerifyResult } from './verify';

/**
 * How a SealedBuffer's bytes reach JS: `private` (a copy-on-write mapping),
 * `copy` (read into memory: the kernel refused the mapping), `readonly` (a
 * PROT_READ mapping: hugetlb buffers, where a private mapping would reserve
 * a second set of huge pages).
 */
export type SealedBufferView = 'private' | 'copy' | 'readonly';

const construct = Symbol('SealedBuffer.construct');
// SealedBuffer.#seal, for the builders (builder.ts): set in the class's static block.
let sealOwned: Sealer<SealedBuffer>;
const mapReadonly = Symbol('SealedBuffer.mapReadonly');

/** The most one Buffer can show: above it `bytes` refuses and `range()` maps windows. */
const MAX_VIEW = bufferConstants.MAX_LENGTH;

/**
 * An immutable byte range another process can trust: a memfd sealed against
 * shrinking, growing and writing. Send its `fd` (see `channel.sendBuffer`);
 * the receiver runs {@link SealedBuffer.open}, which verifies before mapping.
 * `bytes` is a private copy-on-write mapping: reading it costs no copy, and
 * writing to it changes only this process's view, never the file.
 * @example
 * ```ts
 * import { SealedBuffer } from 'memseal';
 * using sb = SealedBuffer.from(JSON.stringify({ routes: [200, 404] }));
 * await channel.sendBuffer(sb, 'routes v1');            // the peer: await channel.receiveBuffer({ maxSize })
 * ```
 */
export class SealedBuffer {
  /** The memfd this buffer owns (close-on-exec). */
  readonly fd: number;
  /** Size in bytes. */
  readonly size: number;
  /** The file's seals (F_GET_SEALS) when it was created or verified. */
  readonly seals: number;
  #mapping: Mapping | null = null;
  #bytes: Buffer | null = null;
  #view: SealedBufferView | null = null;
  #readonlyMapping: Mapping | null = null;
  #readonlyBytes: Buffer | null = null;
  #hugetlb: boolean;
  #closed = false;
  // Owns the descriptor natively: closed by close(), by the garbage collector, or at
  // environment teardown (a worker's end), where FinalizationRegistry callbacks never run.
  #fdHandle: FdHandle;

  /** Not public: use from(), create() or open(). */
  private constructor(token: symbol, fd: number, size: number, seals: number, hugetlb = false, handle?: FdHandle) {
    if (token !== construct) throw illegalConstructor('SealedBuffer.from(), create() or open()');
    this.#fdHandle = handle ?? native.fdOpen(fd);
    this.fd = fd;
    this.size = size;
    this.seals = seals;
    this.#hugetlb = hugetlb;
  }

  /**
   * Copies `data` into a new sealed memfd. Strings are encoded as UTF-8.
   * For large payloads prefer {@link create}, which lets you write in place.
   * @example
   * ```ts
   * using sb = SealedBuffer.from('hello');   // sb.size === 5, sealed SHRINK|GROW|WRITE|SEAL
   * ```
   */
  static from(data: ArrayBufferView | ArrayBuffer | string, options?: SealedBufferOptions): SealedBuffer {
    const src = toBytes(data, 'a string, an ArrayBuffer or an ArrayBufferView', { arrayBuffers: true });
    const c = creationOptions(options);
    const [fd, handle] = createMemfd(c);
    try {
      if (c.hugeFlags) {
        // write(2) to a hugetlb file fails with EINVAL: fill through a mapping.
        const fileSize = roundUp(src.length, c.hugeSize);
        if (fileSize > 0) fillMapped(fd, c, src.length, fileSize, (b) => { src.copy(b); });
        return SealedBuffer.#seal(fd, handle, fileSize, c.seals, true);
      }
      const pmd = features.hugePages.pmdSize;
      if (features.hugePages.shmemPmd === 'advise' && pmd !== null && src.length >= pmd) {
        // Under `advise` only a page fault in a MADV_HUGEPAGE mapping gets a 2 MiB page, never
        // write(2): mapping, populating and copying is then the faster path (scripts/bench-thp.sh).
        fillMapped(fd, c, src.length, src.length, (b) => { src.copy(b); });
      } else if (src.length > 0) {
        // The final size first: shmem THP `within_size` judges each 2 MiB range by it, and the
        // file is not grown page by page.
        check(native.ftruncate(fd, src.length), 'ftruncate');
        // write(2) into the memfd: the kernel allocates each page and copies into
        // it in one pass, without zeroing it first or building page tables that
        // then have to be torn down — about twice as fast as mapping and copying.
        for (let done = 0; done < src.length;) done += writeSync(fd, src, done, src.length - done, done);
      }
      return SealedBuffer.#seal(fd, handle, src.length, c.seals);
    } catch (err) {
      native.fdClose(handle, false);
      throw err;
    }
  }

  static #seal(fd: number, handle: FdHandle, size: number, seals: number, hugetlb = false): SealedBuffer {
    addSeals(fd, seals); // the low-level call, for its hints
    return new SealedBuffer(construct, fd, size, getSeals(fd), hugetlb, handle);
  }

  static {
    sealOwned = (fd, handle, size, seals, hugetlb) => SealedBuffer.#seal(fd, handle, size, seals, hugetlb);
  }

  /**
   * Creates a sealed buffer of `size` bytes, letting `fill` write straight into
   * the shared pages (no intermediate copy). The writable mapping is unmapped
   * before sealing, and the `bytes` view passed to `fill` is detached then:
   * do not keep it. `fill` must finish synchronously. The pages are faulted
   * in before `fill` runs, as 2 MiB pages where the shmem THP policy allows it
   * (MADV_HUGEPAGE, then MADV_POPULATE_WRITE). With `hugePages`, `fill` sees
   * `size` bytes and the file is rounded up to whole huge pages.
   * @throws TypeError ERR_INVALID_RETURN_VALUE if `fill` is an async function or returns a
   *   promise (nothing is sealed, the memfd is closed)
   * @example
   * ```ts
   * using sb = SealedBuffer.create(64 << 20, (bytes) => { bytes.fill(0x2a); });   // synchronous fill only
   * ```
   */
  static create(size: number, fill: (bytes: Buffer) => void, options?: SealedBufferOptions): SealedBuffer {
    validateLength(size, 'size');
    validateFunction(fill, 'fill');
    // An async fill would write after the view is detached and the file sealed: refuse it before any syscall.
    if (isAsyncFunction(fill)) throw asyncFill(Promise.prototype, ' (fill is an async function)');
    const c = creationOptions(options);
    const [fd, handle] = createMemfd(c);
    try {
      const fileSize = c.hugeFlags ? roundUp(size, c.hugeSize) : size;
      const returned = fileSize > 0 ? fillMapped(fd, c, size, fileSize, fill) : fill(Buffer.alloc(0));
      if (isThenable(returned)) {
        // Its continuation will find the view detached and reject; the error thrown here already says why.
        try { returned.then(undefined, () => {}); } catch { /* a hostile thenable: nothing to silence */ }
        throw asyncFill(returned);
      }
      return SealedBuffer.#seal(fd, handle, fileSize, c.seals, c.hugeFlags !== 0);
    } catch (err) {
      native.fdClose(handle, false);
      throw err;
    }
  }

  /**
   * Seals a typed array with its shape behind a checked header (docs/protocol.md,
   * "Tensors"): one copy of its bytes into the new memfd. Readers get a view
   * with {@link typed}, or numpy's `open_tensor()` in Python.
   * @example
   * ```ts
   * using sb = SealedBuffer.fromTypedArray(new Float32Array(6), { shape: [2, 3] });
   * ```
   */
  static fromTypedArray(array: TypedArray, options?: TypedArrayOptions): SealedBuffer {
    const plan = planTypedArray(array, options);
    return SealedBuffer.create(plan.size, plan.fill, plan.options);
  }

  /**
   * A SealedBuffer to be written in place, with no deadline (unlike
   * {@link create}'s synchronous fill): the builder's `bytes` is a writable
   * shared mapping of the new memfd, filled across awaits if need be; its
   * `seal()` unmaps it (detaching every view over it), seals the file and
   * returns the SealedBuffer. `close()` without seal() frees everything.
   * Pages are faulted in up front as in create().
   * @example
   * ```ts
   * using b = SealedBuffer.alloc(4096);
   * b.bytes.write('hello');
   * using sb = b.seal();   // b.bytes now throws ERR_MEMSEAL_SEALED
   * ```
   */
  static alloc(size: number, options?: SealedBufferOptions): SealedBufferBuilder {
    return new BufferBuilder(size, options, sealOwned);
  }

  /**
   * A tensor of `type` and `shape` to be filled in place: the builder's
   * `array` is a typed view over the writable pages of the new memfd (header
   * already written, elements zero). `seal()` returns the SealedBuffer — no
   * copy at all, unlike {@link fromTypedArray}; `array` is detached then
   * (length 0: a write through it is dropped). Readers use {@link typed} or
   * Python's `open_tensor()`.
   * @throws TypeError/RangeError for an unknown type or a bad shape, before any syscall
   * @example
   * ```ts
   * using t = SealedBuffer.allocTensor(Float32Array, [1024, 768]);
   * t.array.fill(0.5);
   * using sb = t.seal();
   * ```
   */
  static allocTensor<C extends TypedArrayConstructor>(type: C, shape: readonly number[],
    options?: AllocTensorOptions): TensorBuilder<C> {
    return new TypedBuilder(type, shape, options, sealOwned);
  }

  /**
   * Adopts a descriptor (typically received from a peer): verifies it with
   * {@link verifySeals} and only then makes it a SealedBuffer. Takes ownership
   * of `fd` in every case: a rejected descriptor is closed.
   * @throws MemsealError ERR_MEMSEAL_NOT_MEMFD, ERR_MEMSEAL_NOT_SEALED (the message names the missing
   *   seals), ERR_MEMSEAL_SIZE; EBADF if `fd` is not open
   * @example
   * ```ts
   * const { fds: [fd] } = await channel.receive();
   * using sb = SealedBuffer.open(fd!, { maxSize: 1 << 20 });   // closed and thrown if it fails a check
   * ```
   */
  static open(fd: number, options?: VerifyOptions): SealedBuffer {
    return openSealed(fd, options, 'SealedBuffer.open()');
  }

  /**
   * The contents, zero-copy: a private copy-on-write mapping made on first
   * access. Writes change only this process's view, never the file. If the
   * kernel refuses such a mapping, the bytes are read into memory instead
   * (`view` says which). A hugetlb buffer's `bytes` is its {@link readonlyBytes}
   * (`view` 'readonly'): a private mapping would reserve a second set of huge
   * pages, and a write kills the process (SIGSEGV).
   * @throws RangeError (ERR_OUT_OF_RANGE) for a buffer larger than
   *   buffer.constants.MAX_LENGTH (only with an explicit `maxSize`): read it
   *   with {@link range}; nothing is released. MemsealError ERR_MEMSEAL_CLOSED after close()
   */
  get bytes(): Buffer {
    if (this.#bytes !== null) return this.#bytes;
    this.#assertOpen('bytes');
    if (this.size > MAX_VIEW) {
      throw tooLargeForBuffer('this SealedBuffer', this.size, MAX_VIEW, 'sealedBuffer.range(offset, length)');
    }
    if (this.size === 0) {
      this.#view = 'private';
      return (this.#bytes = Buffer.alloc(0));
    }
    if (this.#hugetlb) {
      this.#bytes = this.readonlyBytes;
      this.#view = 'readonly';
      return this.#bytes;
    }
    if (this.#map()) this.#bytes = this.#mapping!.bytes();
    else this.#bytes = this.#read(0, this.size);
    return this.#bytes;
  }

  /**
   * A window `[offset, offset + length)` of the contents, zero-copy (the same
   * private copy-on-write mapping as `bytes`, or a copy where the kernel
   * refused it). Works on a buffer of any size; the window itself may be up to
   * buffer.constants.MAX_LENGTH. Views are detached by close().
   * @throws RangeError (ERR_OUT_OF_RANGE) for a window outside the buffer or
   *   larger than buffer.constants.MAX_LENGTH; MemsealError ERR_MEMSEAL_CLOSED after close()
   */
  range(offset: number, length: number): Buffer {
    this.#assertOpen('range');
    validateInteger(offset, 'offset', 0, this.size);
    validateInteger(length, 'length', 0, this.size - offset);
    if (length > MAX_VIEW) {
      throw tooLargeForBuffer('this window', length, MAX_VIEW, 'sealedBuffer.range(offset, length)');
    }
    if (this.size <= MAX_VIEW) return this.bytes.subarray(offset, offset + length);
    return this.#map() ? this.#mapping!.bytes(offset, length) : this.#read(offset, length);
  }

  /**
   * The tensor in this buffer as a typed view over its mapping (no copy) and
   * its shape, after the header's type, shape, offsets and alignment are checked.
   * @throws MemsealError ERR_MEMSEAL_PROTOCOL (no tensor, or a header that lies), ERR_MEMSEAL_CLOSED
   */
  typed(): TypedView { return typedViewOf(this.size, (offset, length) => this.range(offset, length)); }

  /** Maps the whole file privately, once; false where the kernel refuses (then `view` is 'copy'). */
  #map(): boolean {
    if (this.#view !== null) return this.#view === 'private';
    try {
      this.#mapping = mmap(this.size, C.PROT_READ | C.PROT_WRITE, C.MAP_PRIVATE, this.fd);
      this.#view = 'private';
      return true;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code !== 'EPERM' && code !== 'EACCES' && code !== 'EINVAL') throw err;
      this.#view = 'copy';
      return false;
    }
  }

  #assertOpen(op: string): void {
    if (this.#closed) throw closedError(`SealedBuffer.${op}`, 'the buffer');
  }

  /** 'private' (copy-on-write mapping), 'copy' (the kernel refused the mapping) or 'readonly' (hugetlb); null until `bytes` is used. */
  get view(): SealedBufferView | null { return this.#view; }

  /**
   * The contents through a read-only mapping (PROT_READ), made on first
   * access: the kernel itself refuses writes, and a write through this Buffer
   * kills the process with SIGSEGV (as it would in C) — use it where a stray
   * write must never go unnoticed. Shared with every other mapping of the file
   * (MAP_SHARED: no copy-on-write bookkeeping, and the only form hugetlb pages
   * allow without reserving a second set); private on kernels that refuse a
   * shared mapping of a write-sealed file (before ~6.1). Independent of
   * `bytes`: both can be used, and `close()` detaches both.
   */
  get readonlyBytes(): Buffer {
    return this[mapReadonly]('SealedBuffer.readonlyBytes');
  }

  /** @internal readonlyBytes, with the call the user made named in a hugetlb refusal. */
  [mapReadonly](caller: string): Buffer {
    if (this.#readonlyBytes !== null) return this.#readonlyBytes;
    if (this.#closed) throw closedError('SealedBuffer.readonlyBytes', 'the buffer');
    if (this.size === 0) return (this.#readonlyBytes = Buffer.alloc(0));
    let mapping: Mapping;
    try {
      mapping = mmap(this.size, C.PROT_READ, C.MAP_SHARED, this.fd);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (this.#hugetlb || (code !== 'EPERM' && code !== 'EACCES')) throw err;
      mapping = mmap(this.size, C.PROT_READ, C.MAP_PRIVATE, this.fd);
    }
    // A hugetlb file may be sparse: its pages are faulted in (or refused) before any view exists.
    populatePeerMapping(mapping, { hugetlb: this.#hugetlb }, this.fd, caller);
    this.#readonlyMapping = mapping;
    return (this.#readonlyBytes = mapping.bytes());
  }

  /** A hugetlb buffer (MFD_HUGETLB): sent with `hugePages`, or so detected by `open()`. */
  get hugetlb(): boolean { return this.#hugetlb; }

  /** Closed: the fd is closed and the view detached. */
  get closed(): boolean { return this.#closed; }

  #read(offset: number, length: number): Buffer {
    const out = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, out, done, length - done, offset + done);
      if (n === 0) break;
      done += n;
    }
    return out.subarray(0, done);
  }

  /**
   * Detaches every view (of `bytes` and `range()`: they read as length 0),
   * unmaps and closes the fd. Safe to call twice. A buffer of 1 MiB or more
   * is released on the libuv thread pool: this returns at once and the pages
   * are freed shortly after. Asynchronous work still running on a view cannot
   * crash the process (see Mapping#unmap).
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#mapping?.close();
    this.#mapping = null;
    this.#bytes = null;
    this.#readonlyMapping?.close();
    this.#readonlyMapping = null;
    this.#readonlyBytes = null;
    // like every close here: no throw if the caller already closed the fd
    native.fdClose(this.#fdHandle, this.size >= DEFERRED_RELEASE_BYTES);
  }

  [Symbol.dispose](): void { this.close(); }
}

/** A SealedBuffer being written in place: SealedBuffer.alloc() (see BufferBuilder in builder.ts). */
export type SealedBufferBuilder = BufferBuilder<SealedBuffer>;
/** A tensor being written in place: SealedBuffer.allocTensor() (see TypedBuilder in builder.ts). */
export type TensorBuilder<C extends TypedArrayConstructor = TypedArrayConstructor> = TypedBuilder<SealedBuffer, C>;

/**
 * @internal SealedBuffer.open() for callers that adopt a descriptor on the
 * user's behalf (Channel.receiveBuffer()): a refusal names `caller`, the call
 * the user made, rather than SealedBuffer.open().
 */
export function openSealed(fd: number, options: VerifyOptions | undefined, caller: string): SealedBuffer {
  validateFd(fd);
  let result: VerifyResult;
  try {
    result = verifyFd(fd, options);
  } catch (err) {
    native.close(fd);
    throw err;
  }
  if (!result.ok) {
    native.close(fd);
    throw new MemsealError(result.code ?? 'ERR_MEMSEAL_NOT_SEALED', `${caller}: ${result.reason}`, { hint: result.hint });
  }
  // The constructor is private to the public types; the static factories and this are its callers.
  const sb = new (SealedBuffer as unknown as new (...args: [symbol, number, number, number, boolean]) => SealedBuffer)(
    construct, fd, result.size, result.seals, result.hugetlb === true);
  if (sb.hugetlb) {
    // A peer's hugetlb file is mapped and its pages faulted in now: a missing page is this call's
    // error (EFAULT, ENOMEM), not a SIGBUS at the first read of `bytes`.
    try {
      sb[mapReadonly](caller);
    } catch (err) {
      sb.close();
      throw err;
    }
  }
  return sb;
}

/**
 * @internal A second SealedBuffer over the same file (F_DUPFD_CLOEXEC), closed on
 * its own: for a holder that must not take the caller's buffer away (SnapshotPublisher).
 * @throws MemsealError ERR_MEMSEAL_CLOSED (naming `caller`) when `sb` is closed
 */
export function duplicateSealed(sb: SealedBuffer, caller: string): SealedBuffer {
  if (sb.closed) throw closedError(caller, 'the SealedBuffer');
  const fd = check(native.dup(sb.fd), 'fcntl', 'F_DUPFD_CLOEXEC');
  return new (SealedBuffer as unknown as new (...args: [symbol, number, number, number, boolean]) => SealedBuffer)(
    construct, fd, sb.size, sb.seals, sb.hugetlb);
}
