// mmap(2) and the operations on one mapping: munmap(2), mprotect(2),
// madvise(2), msync(2), mlock(2)/munlock(2) and mseal(2).
import { constants as bufferConstants } from 'node:buffer';
import { native, type RegionHandle } from './binding';
import { constants as C } from './constants';
import { check, closedError, E, illegalConstructor, invalidArgType, invalidArgValue, outOfRange, systemError, tooLargeForBuffer } from './errors';
import { features } from './features';
import { validateFd, validateInt32, validateInteger, validateLength } from './validate';

const MAX_ARRAY_BUFFER = bufferConstants.MAX_LENGTH;
const { MAP_FIXED, MADV_HWPOISON, MADV_SOFT_OFFLINE } = native.internalConstants;
const SEALED_HINT = 'the mapping is mseal\'d: it cannot be changed or unmapped until the process exits';
const construct = Symbol('Mapping.construct');

/** @internal The page size (sysconf(_SC_PAGESIZE)). */
export const PAGE_SIZE: number = native.pageSize();

/** @internal `n` rounded up to a multiple of `to` (a page size, a huge page size). */
export function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** @internal `n` bytes rounded up to whole pages. */
export function roundToPages(n: number): number {
  return roundUp(n, PAGE_SIZE);
}

/**
 * @internal Regions at least this large are released on the libuv thread pool
 * (the views are detached at once; the page-table teardown and the freeing of
 * the pages happen off the event loop). Below it the synchronous munmap is
 * cheaper than the hand-off. Measured with bench/release.js.
 */
export const DEFERRED_RELEASE_BYTES = 1024 * 1024;

/**
 * @internal The native handle of a mapping, for the high-level classes in this
 * package (arena.ts, secret.ts). Not re-exported from index.ts.
 */
export let regionHandle: (m: Mapping) => RegionHandle;

/**
 * @internal Unmaps on the event loop whatever the size: for callers that need
 * the pages gone before they go on (F_SEAL_WRITE refuses while a writable
 * shared mapping exists).
 */
export let unmapNow: (m: Mapping) => void;

/**
 * One mapped region, owned. Its pages are reachable through `buffer` (an
 * external ArrayBuffer: zero copies) and `bytes()`. `unmap()` detaches every
 * view before munmap, so a stale view has length 0 instead of pointing at
 * freed memory. A forgotten mapping is unmapped when it and all its views are
 * garbage-collected; that is a safety net, not the plan: call `unmap()` or use
 * `using`.
 */
export class Mapping {
  /** Bytes mapped. */
  readonly length: number;
  /** Start address (for diagnostics and /proc/self/maps). */
  readonly address: bigint;
  /** MAP_* flags it was created with. */
  readonly flags: number;
  #prot: number;
  #handle: RegionHandle;
  #buffer: ArrayBuffer | null = null; // created on first use: many mappings are never touched from JS
  #closed = false;
  #sealed = false;

  /** Not public: use {@link mmap}. */
  private constructor(token: symbol, handle: RegionHandle, address: bigint, length: number, prot: number, flags: number) {
    if (token !== construct) throw illegalConstructor('mmap()');
    this.#handle = handle;
    this.address = address;
    this.length = length;
    this.#prot = prot;
    this.flags = flags;
  }

  /** Current protection (PROT_*), as last set by mmap or {@link protect}. */
  get prot(): number { return this.#prot; }
  /** mseal'd: can never be unmapped or re-protected; `unmap()` throws EPERM. */
  get sealed(): boolean { return this.#sealed; }
  /** Unmapped. */
  get closed(): boolean { return this.#closed; }

  /**
   * The whole region as an ArrayBuffer, zero-copy; detached (byteLength 0)
   * once unmapped. Touching a page the protection forbids kills the process
   * (SIGSEGV), as it would in C.
   * @throws RangeError (ERR_OUT_OF_RANGE) if the region is larger than this
   *   Node's ArrayBuffer limit (4 GiB on Node 20); use `bytes(offset, length)`.
   */
  get buffer(): ArrayBuffer {
    if (this.#buffer === null) {
      if (this.#closed) return new ArrayBuffer(0);
      if (this.length > MAX_ARRAY_BUFFER) {
        throw tooLargeForBuffer('this mapping', this.length, MAX_ARRAY_BUFFER, 'mapping.bytes(offset, length)');
      }
      this.#buffer = this.#window(0, this.length);
    }
    return this.#buffer;
  }

  /**
   * A Buffer view of `[offset, offset + length)` of the region, zero-copy.
   * Any window of a mapping of any size, as long as the window itself fits in
   * an ArrayBuffer (buffer.constants.MAX_LENGTH).
   * @throws RangeError (ERR_OUT_OF_RANGE) for a window outside the region, or
   *   larger than buffer.constants.MAX_LENGTH (the default window of a larger
   *   mapping is); MemsealError ERR_MEMSEAL_CLOSED after unmap()
   */
  bytes(offset = 0, length?: number): Buffer {
    this.#assertOpen('bytes');
    validateInteger(offset, 'offset', 0, this.length);
    const len = length ?? this.length - offset;
    validateInteger(len, 'length', 0, this.length - offset);
    if (len > MAX_ARRAY_BUFFER) {
      throw tooLargeForBuffer(`a view of ${length === undefined ? 'this mapping' : 'this window'}`, len, MAX_ARRAY_BUFFER,
        'mapping.bytes(offset, length)');
    }
    if (this.length <= MAX_ARRAY_BUFFER) return Buffer.from(this.buffer, offset, len);
    return Buffer.from(this.#window(offset, len));
  }

  /** A new external ArrayBuffer over part of the region (it keeps the pages mapped while alive). */
  #window(offset: number, length: number): ArrayBuffer {
    const ab = native.view(this.#handle, offset, length);
    // -EINVAL only for a window outside the region, which every caller has ruled out: not a syscall's error
    if (typeof ab === 'number') throw outOfRange('offset + length', `<= ${this.length} (the mapping's length)`, offset + length);
    return ab;
  }

  /**
   * Changes the protection of the whole region: mprotect(2).
   * @throws EPERM on an mseal'd mapping, EACCES (e.g. PROT_WRITE on a
   *   MAP_SHARED mapping of a file opened read-only or write-sealed)
   */
  protect(prot: number): void {
    this.#assertOpen('protect');
    validateInt32(prot, 'prot');
    check(native.mprotect(this.#handle, prot), 'mprotect', undefined, (e) => this.#sealedHint(e));
    this.#prot = prot;
  }

  /**
   * Gives the kernel advice about a range: madvise(2). MADV_POPULATE_* need
   * Linux 5.14, MADV_WIPEONFORK 4.14.
   */
  advise(advice: number, offset = 0, length?: number): void {
    this.#assertOpen('advise');
    validateInt32(advice, 'advice');
    // MADV_HWPOISON and MADV_SOFT_OFFLINE take physical pages out of
    // service for the whole machine (with CAP_SYS_ADMIN): a memory-failure test
    // tool, never advice about a mapping.
    if (advice === MADV_HWPOISON || advice === MADV_SOFT_OFFLINE) {
      throw invalidArgValue('advice', 'MADV_HWPOISON and MADV_SOFT_OFFLINE are not passed to the kernel', advice);
    }
    validateInteger(offset, 'offset', 0, this.length);
    const len = length ?? this.length - offset;
    validateInteger(len, 'length', 0, this.length - offset);
    check(native.madvise(this.#handle, advice, offset, len), 'madvise', undefined, (e) => {
      if (e === -E.EINVAL && !features.madvisePopulate && (advice === C.MADV_POPULATE_READ || advice === C.MADV_POPULATE_WRITE)) {
        return 'needs Linux ≥ 5.14 (MADV_POPULATE_READ / MADV_POPULATE_WRITE)';
      }
      return this.#sealedHint(e);
    });
  }

  /** Flushes a shared file mapping: msync(2), MS_SYNC by default. */
  sync(flags: number = C.MS_SYNC): void {
    this.#assertOpen('sync');
    validateInt32(flags, 'flags');
    check(native.msync(this.#handle, flags), 'msync');
  }

  /** Locks the pages in RAM: mlock(2). Counts against RLIMIT_MEMLOCK. */
  lock(): void {
    this.#assertOpen('lock');
    check(native.mlock(this.#handle), 'mlock', undefined, memlockHint);
  }

  /** munlock(2). */
  unlock(): void {
    this.#assertOpen('unlock');
    check(native.munlock(this.#handle), 'munlock');
  }

  /**
   * Seals the mapping: mseal(2), Linux 6.10, 64-bit only. From then on the
   * kernel refuses munmap, mprotect, mremap and destructive madvise on it
   * (EPERM) for the life of the process; the memory is never freed.
   * @throws ENOSYS on older kernels (hint names the version)
   */
  seal(): void {
    this.#assertOpen('seal');
    if (this.#sealed) return;
    check(native.mseal(this.#handle), 'mseal', undefined, msealHint);
    this.#sealed = true;
  }

  /**
   * Detaches every view (they read as length 0), then gives the pages back:
   * munmap(2). Safe to call twice. Asynchronous work still running on a view
   * (crypto.randomFill, fs.read, zlib on the thread pool) cannot crash the
   * process or write into other memory: while a view object is alive the
   * pages are replaced by fresh anonymous memory (mmap MAP_FIXED) and the
   * address range is released when the last view is collected. Mappings of
   * 1 MiB and more are released on the libuv thread pool: this returns at once.
   * @throws EPERM on an mseal'd mapping; its views stay valid (still mapped)
   */
  close(): void {
    this.#unmap(this.length >= DEFERRED_RELEASE_BYTES);
  }

  /** @deprecated The same as {@link close}, the name every memseal object uses; kept for existing callers. */
  unmap(): void { this.close(); }

  #unmap(deferred: boolean): void {
    if (this.#closed) return;
    // A sealed mapping is put to the kernel too: the EPERM is its answer, not ours.
    const r = native.munmap(this.#handle, deferred);
    if (r < 0) {
      const err = systemError(r, 'munmap', undefined, this.#sealedHint(r));
      Error.captureStackTrace(err, this.close);
      throw err;
    }
    this.#closed = true;
    this.#buffer = null; // the detached view must not keep the address range reserved
  }

  /** `using m = mmap(...)` unmaps at scope exit; a sealed mapping is left alone. */
  [Symbol.dispose](): void {
    if (!this.#sealed) this.close();
  }

  static {
    regionHandle = (m) => m.#handle;
    unmapNow = (m) => m.#unmap(false);
  }

  #assertOpen(op: string): void {
    if (this.#closed) throw closedError(`Mapping.${op}()`, 'the mapping', 'unmapped');
  }

  #sealedHint(e: number): string | undefined {
    return e === -E.EPERM && this.#sealed ? SEALED_HINT : undefined;
  }
}

/** Hint for mlock-family failures: RLIMIT_MEMLOCK. */
export function memlockHint(e: number): string | undefined {
  if (e !== -E.EAGAIN && e !== -E.ENOMEM && e !== -E.EPERM) return undefined;
  return 'locked memory is limited by RLIMIT_MEMLOCK (ulimit -l); raise it or lock less';
}

function msealHint(e: number): string | undefined {
  if (e === -E.ENOSYS) return 'needs Linux ≥ 6.10 (mseal), on a 64-bit architecture';
  if (e === -E.EPERM) return 'mseal is not permitted here (e.g. a 32-bit process)';
  return undefined;
}

/**
 * Maps memory: mmap(2). With `fd` -1 (default) the mapping is anonymous
 * (MAP_ANONYMOUS is added). Lengths and offsets are full 64-bit.
 * @param prot PROT_* bits
 * @param flags MAP_SHARED or MAP_PRIVATE, plus MAP_POPULATE, MAP_NORESERVE, …; never MAP_FIXED
 *   (there is no address to fix: TypeError ERR_INVALID_ARG_VALUE)
 * @throws EPERM (PROT_WRITE + MAP_SHARED on a write-sealed memfd), EACCES,
 *   EINVAL (length 0, bad flags), ENOMEM, EBADF
 * @example
 * ```ts
 * import { constants as C, mmap } from 'memseal';
 * using m = mmap(1 << 20, C.PROT_READ | C.PROT_WRITE, C.MAP_PRIVATE);   // anonymous
 * m.bytes().fill(7);
 * m.protect(C.PROT_READ);
 * ```
 */
export function mmap(length: number, prot: number, flags: number, fd = -1, offset = 0): Mapping {
  validateLength(length, 'length');
  validateInt32(prot, 'prot');
  validateInt32(flags, 'flags');
  if ((flags & MAP_FIXED) !== 0) {
    // There is no address argument: MAP_FIXED would mean "replace whatever is mapped at 0..length",
    // which can unmap this process's own code and heap. (MAP_FIXED_NOREPLACE fails safely: allowed.)
    throw invalidArgValue('flags', 'must not include MAP_FIXED (mmap() chooses the address)', flags);
  }
  if (fd !== -1) validateFd(fd);
  validateLength(offset, 'offset');
  const mapFlags = fd === -1 ? flags | C.MAP_ANONYMOUS : flags;
  const r = native.mmap(length, prot, mapFlags, fd, offset);
  if (typeof r === 'number') {
    check(r, 'mmap', undefined, (e) => {
      if (e === -E.EPERM && fd !== -1) {
        return 'the file is write-sealed (F_SEAL_WRITE / F_SEAL_FUTURE_WRITE): map it read-only, or MAP_PRIVATE';
      }
      // mmap(2): EAGAIN is "too much memory has been locked" (MAP_LOCKED, memfd_secret pages)
      return e === -E.EAGAIN ? memlockHint(e) : undefined;
    });
  }
  const [handle, address] = r as Exclude<typeof r, number>;
  // The constructor is private to the public types; mmap() is its one caller.
  return new (Mapping as unknown as new (...args: [symbol, RegionHandle, bigint, number, number, number]) => Mapping)(
    construct, handle, address, length, prot, mapFlags);
}

/**
 * Seals a whole mapping: mseal(2), Linux 6.10. Same as `mapping.seal()`.
 * @example
 * ```ts
 * const m = mmap(4096, C.PROT_READ, C.MAP_PRIVATE);
 * if (features.mseal) mseal(m);   // from now on munmap/mprotect of it fail with EPERM, until exit
 * ```
 */
export function mseal(mapping: Mapping): void {
  if (!(mapping instanceof Mapping)) throw invalidArgType('mapping', 'an instance of Mapping', mapping);
  mapping.seal();
}
