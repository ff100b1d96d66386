// SealedBuffer: an immutable byte range in a sealed memfd that another
// process can map and trust without copying, and verifySeals(), the check a
// receiver runs before it maps anything a peer sent; also Channel#sendBuffer()
// and Channel#receiveBuffer(), which carry a SealedBuffer over a Channel.
import { constants as bufferConstants } from 'node:buffer';
import { readSync, writeSync } from 'node:fs';
import { type FdHandle, native } from './binding';
import { Channel, closeQuietly, receiveOwned } from './channel';
import { constants as C, Seal, sealNames } from './constants';
import { check, closedError, E, illegalConstructor, invalidArgType, invalidArgValue, invalidReturnValue, MemsealError, type MemsealErrorCode, outOfRange, systemError, tooLargeForBuffer } from './errors';
import { features } from './features';
import { hugePageSettings, hugetlbPool } from './hugepages';
import { DEFERRED_RELEASE_BYTES, type Mapping, mmap, PAGE_SIZE, regionHandle, unmapNow } from './mapping';
import { addSeals, memfdCreateHint } from './memfd';
import { toBytes, validateFd, validateFlags, validateFunction, validateInteger, validateLength, validateObject, validateString } from './validate';

const { S_IFMT, S_IFREG, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK, S_IFDIR } = native.internalConstants;
/**
 * The largest buffer a receiver accepts unless `maxSize` says otherwise: what
 * `bytes` can show in one ArrayBuffer (buffer.constants.MAX_LENGTH, 4 GiB on
 * Node 20). Larger buffers need an explicit `maxSize` and are read with `range()`.
 */
export const DEFAULT_MAX_SIZE: number = bufferConstants.MAX_LENGTH;

/** The seals a receiver requires unless told otherwise: the file can neither shrink, grow nor change. */
export const DEFAULT_REQUIRED_SEALS = Seal.SHRINK | Seal.GROW | Seal.WRITE;
/** The seals SealedBuffer puts on what it creates. */
export const DEFAULT_SEALS = Seal.SHRINK | Seal.GROW | Seal.WRITE | Seal.SEAL;

/** What a receiver demands of a descriptor before it maps it. */
export interface VerifyOptions {
  /** Seals that must all be present (a superset is fine). Default SHRINK | GROW | WRITE. */
  require?: number;
  /** Seals that must be absent. Default 0. */
  forbid?: number;
  /** Smallest acceptable size in bytes. */
  minSize?: number;
  /**
   * Largest acceptable size in bytes: bounds what a peer can make you map.
   * Default buffer.constants.MAX_LENGTH (4 GiB on Node 20), the most `bytes`
   * can show; larger buffers must be allowed explicitly and read with `range()`.
   */
  maxSize?: number;
  /** The only acceptable size. */
  exactSize?: number;
}

/** The verdict of {@link verifySeals}. */
export interface VerifyResult {
  ok: boolean;
  /** The file's seals (0 if it is not a memfd). */
  seals: number;
  /** Its size in bytes (as seen after the seals were read). */
  size: number;
  /** Required seals that are absent. */
  missing: number;
  /** Why it was rejected; absent when ok. */
  reason?: string;
  /** The MemsealError code a rejection maps to; absent when ok. */
  code?: Extract<MemsealErrorCode, 'ERR_MEMSEAL_NOT_SEALED' | 'ERR_MEMSEAL_NOT_MEMFD' | 'ERR_MEMSEAL_SIZE'>;
  /** A hugetlb memfd (MFD_HUGETLB): its block size is a huge page. Absent when false. */
  hugetlb?: boolean;
}

interface Policy {
  require: number;
  forbid: number;
  minSize: number;
  maxSize: number;
  /** Which option set each bound, so a refusal names what the caller passed. */
  minFrom?: 'minSize' | 'exactSize';
  maxFrom?: 'maxSize' | 'exactSize';
}

function policy(options: VerifyOptions | undefined): Policy {
  if (options === undefined) return { require: DEFAULT_REQUIRED_SEALS, forbid: 0, minSize: 0, maxSize: DEFAULT_MAX_SIZE };
  validateObject(options, 'options');
  const { require = DEFAULT_REQUIRED_SEALS, forbid = 0, minSize, maxSize, exactSize } = options;
  validateFlags(require, 'options.require');
  validateFlags(forbid, 'options.forbid');
  const p: Policy = { require, forbid, minSize: 0, maxSize: DEFAULT_MAX_SIZE };
  if (minSize !== undefined) { validateLength(minSize, 'options.minSize'); p.minSize = minSize; p.minFrom = 'minSize'; }
  if (maxSize !== undefined) { validateLength(maxSize, 'options.maxSize'); p.maxSize = maxSize; p.maxFrom = 'maxSize'; }
  if (exactSize !== undefined) {
    validateLength(exactSize, 'options.exactSize');
    if (exactSize >= p.minSize) { p.minSize = exactSize; p.minFrom = 'exactSize'; }
    if (exactSize <= p.maxSize) { p.maxSize = exactSize; p.maxFrom = 'exactSize'; }
  }
  return p;
}

/** @internal Validates verify options (throws TypeError/RangeError) without touching a descriptor. */
export function verifyPolicy(options: VerifyOptions | undefined): void {
  policy(options);
}

function describeSeals(mask: number): string {
  return mask === 0 ? 'none' : sealNames(mask).join(', ');
}

function verify(fd: number, p: Policy): VerifyResult {
  // Seals first, then the size: seals only accumulate, so once SHRINK and GROW
  // are seen the size read afterwards is final.
  const seals = native.getSeals(fd);
  if (seals < 0) {
    if (seals !== -E.EINVAL) throw systemError(seals, 'fcntl', 'F_GET_SEALS');
    const st = native.fstat(fd);
    const kind = typeof st === 'number' ? 'an unknown kind of file' : fileKind(st[1]);
    return { ok: false, seals: 0, size: 0, missing: p.require, code: 'ERR_MEMSEAL_NOT_MEMFD',
      reason: `the descriptor is ${kind}, not a memfd: it cannot be sealed` };
  }
  const st = native.fstat(fd);
  if (typeof st === 'number') throw systemError(st, 'fstat');
  const [size, mode, blksize] = st;
  if ((mode & S_IFMT) !== S_IFREG) {
    return { ok: false, seals, size, missing: 0, code: 'ERR_MEMSEAL_NOT_MEMFD',
      reason: `the descriptor is ${fileKind(mode)}, not a memfd` };
  }
  const missing = p.require & ~seals;
  if (missing !== 0) {
    return { ok: false, seals, size, missing, code: 'ERR_MEMSEAL_NOT_SEALED',
      reason: `missing seals: ${describeSeals(missing)} (has: ${describeSeals(seals)})` };
  }
  const forbidden = seals & p.forbid;
  if (forbidden !== 0) {
    return { ok: false, seals, size, missing, code: 'ERR_MEMSEAL_NOT_SEALED',
      reason: `forbidden seals present: ${describeSeals(forbidden)}` };
  }
  if (size < p.minSize || size > p.maxSize) {
    return { ok: false, seals, size, missing, code: 'ERR_MEMSEAL_SIZE', reason: sizeReason(size, p) };
  }
  // hugetlbfs reports its huge page size as the block size; shmem the base page.
  return blksize > PAGE_SIZE ? { ok: true, seals, size, missing: 0, hugetlb: true } : { ok: true, seals, size, missing: 0 };
}

/** Names the option that refused the size: `size 8192 bytes exceeds maxSize (4096 bytes)`. */
function sizeReason(size: number, p: Policy): string {
  const range = p.minSize === p.maxSize ? `exactly ${p.minSize}` : `${p.minSize}..${p.maxSize}`;
  const from = size > p.maxSize ? p.maxFrom : p.minFrom;
  const what = from === 'exactSize' ? `is not exactSize (${p.maxSize} bytes)`
    : from === 'maxSize' ? `exceeds maxSize (${p.maxSize} bytes)`
      : from === 'minSize' ? `is below minSize (${p.minSize} bytes)`
        : `is over the largest size accepted without a maxSize (${p.maxSize} bytes)`;
  return `size ${size} bytes ${what}; accepted: ${range} bytes`;
}

function fileKind(mode: number): string {
  switch (mode & S_IFMT) {
    case S_IFIFO: return 'a pipe';
    case S_IFSOCK: return 'a socket';
    case S_IFCHR: return 'a character device';
    case S_IFBLK: return 'a block device';
    case S_IFDIR: return 'a directory';
    case S_IFREG: return 'a regular file';
    default: return 'an unknown kind of file';
  }
}

/**
 * Checks a descriptor a peer handed over before anything is mapped: that it is
 * a memfd (F_GET_SEALS works), that its seals include `require` (a superset is
 * fine: newer kernels add bits), exclude `forbid`, and that its size is within
 * bounds. A policy failure is returned, never thrown; the descriptor is left
 * open. Without F_SEAL_SHRINK a peer could truncate the file under your
 * mapping and every access past the new end would raise SIGBUS.
 * @throws EBADF for a closed descriptor; TypeError/RangeError for bad options
 * @example
 * ```ts
 * const r = verifySeals(fd, { maxSize: 64 << 20 });
 * if (!r.ok) throw new Error(`refused: ${r.reason}`);
 * ```
 */
export function verifySeals(fd: number, options?: VerifyOptions): VerifyResult {
  validateFd(fd);
  return verify(fd, policy(options));
}

/** Options for {@link SealedBuffer.from} and {@link SealedBuffer.create}. */
export interface SealedBufferOptions {
  /** The memfd's name, shown in /proc/<pid>/fd and `memseal inspect`. Default 'memseal'. */
  name?: string;
  /**
   * Exactly the seals the buffer carries once filled (F_SEAL_* bits, see `Seal`).
   * Default SHRINK | GROW | WRITE | SEAL, plus EXEC where the kernel has
   * MFD_NOEXEC_SEAL (Linux 6.3). When given, EXEC is present only if asked for
   * (the memfd is then made with MFD_NOEXEC_SEAL, else with MFD_EXEC) — except
   * under vm.memfd_noexec=2, where every memfd is made non-executable and so
   * carries EXEC too. `seals` on the result tells what the file has.
   */
  seals?: number;
  /**
   * Back the buffer with hugetlb pages (memfd_create MFD_HUGETLB, Linux 4.14):
   * `true` for the default huge page size, or a size in bytes (a power of two
   * the kernel offers, e.g. 2 MiB or 1 GiB). The pages come from a pool the
   * administrator reserved (/proc/sys/vm/nr_hugepages); the size is rounded up
   * to a whole number of huge pages (the padding reads as zeros), and every
   * mapping of it, the receiver's included, is read-only and shared.
   * Default false: ordinary shmem pages (which become transparent huge pages
   * where shmem_enabled allows it).
   */
  hugePages?: boolean | number;
}

/**
 * How a SealedBuffer's bytes reach JS: `private` (a copy-on-write mapping),
 * `copy` (read into memory: the kernel refused the mapping), `readonly` (a
 * PROT_READ mapping: hugetlb buffers, where a private mapping would reserve
 * a second set of huge pages).
 */
export type SealedBufferView = 'private' | 'copy' | 'readonly';

const construct = Symbol('SealedBuffer.construct');

interface Creation {
  name: string;
  seals: number;
  /** MFD_HUGETLB | MFD_HUGE_<size>, or 0. */
  hugeFlags: number;
  /** The huge page size the file is rounded up to (hugetlb), or 0. */
  hugeSize: number;
  /** options.seals was given: the file carries exactly those seals where the kernel allows it. */
  exact: boolean;
}

function hugeOption(value: unknown): { hugeFlags: number; hugeSize: number } {
  if (value === undefined || value === false) return { hugeFlags: 0, hugeSize: 0 };
  const settings = hugePageSettings();
  if (value === true) {
    const size = settings.hugetlbDefaultSize;
    if (size === null) {
      throw new MemsealError('ERR_MEMSEAL_UNSUPPORTED', 'options.hugePages: this kernel has no hugetlb pages',
        { hint: 'needs CONFIG_HUGETLBFS (Hugepagesize in /proc/meminfo)' });
    }
    return { hugeFlags: C.MFD_HUGETLB, hugeSize: size };
  }
  if (typeof value !== 'number') throw invalidArgType('options.hugePages', 'of type boolean or number', value);
  const log2 = Math.log2(value);
  // MFD_HUGE_* encodes log2(size) in 6 bits at MFD_HUGE_SHIFT.
  if (!Number.isInteger(log2) || log2 < 12 || log2 > C.MFD_HUGE_MASK) {
    throw invalidArgValue('options.hugePages', 'must be true or a huge page size in bytes (a power of two)', value);
  }
  return { hugeFlags: C.MFD_HUGETLB | (log2 << C.MFD_HUGE_SHIFT), hugeSize: value };
}

function creationOptions(options: SealedBufferOptions | undefined): Creation {
  let name = 'memseal';
  let seals = DEFAULT_SEALS;
  let huge = { hugeFlags: 0, hugeSize: 0 };
  let exact = false;
  if (options !== undefined) {
    validateObject(options, 'options');
    if (options.name !== undefined) {
      validateString(options.name, 'options.name');
      if (options.name.includes('\0')) throw invalidArgValue('options.name', 'must be a string without null bytes', options.name);
      name = options.name;
    }
    if (options.seals !== undefined) {
      validateFlags(options.seals, 'options.seals');
      seals = options.seals;
      exact = true;
    }
    huge = hugeOption(options.hugePages);
  }
  return { name, seals, exact, ...huge };
}

/** What the kernel's refusal of a hugetlb request most likely means. */
function hugetlbHint(size: number): (e: number) => string | undefined {
  return (e) => {
    // memfd_create answers ENODEV for a size the kernel has no hugetlbfs for, EINVAL for one it cannot encode.
    if (e === -E.EINVAL || e === -E.ENODEV) return `this kernel offers no ${size}-byte huge pages (see /sys/kernel/mm/hugepages)`;
    if (e !== -E.ENOMEM && e !== -E.ENOSPC) return undefined;
    const pool = hugetlbPool(hugePageSettings(), size);
    return `the hugetlb pool of ${size}-byte pages has ${pool?.free ?? 0} free of ${pool?.total ?? 0}: reserve more ` +
      `(as root: echo N > /sys/kernel/mm/hugepages/hugepages-${size / 1024}kB/nr_hugepages)`;
  };
}

/** The memfd and the native handle that owns it from the moment it exists. */
type OwnedMemfd = [fd: number, handle: FdHandle];

/**
 * Creates the memfd, owned by a native handle from the moment it exists. By
 * default with MFD_NOEXEC_SEAL where the kernel has it (Linux 6.3; it adds
 * F_SEAL_EXEC at creation), retrying without on EINVAL. With `exact` seals the
 * file carries F_SEAL_EXEC only if `seals` asks for it: without EXEC it is made
 * with MFD_EXEC, because under vm.memfd_noexec=1 a memfd made with neither flag
 * gets MFD_NOEXEC_SEAL (and so F_SEAL_EXEC) implicitly. Under vm.memfd_noexec=2
 * the kernel refuses MFD_EXEC (EACCES): then the file is made with
 * MFD_NOEXEC_SEAL after all and carries F_SEAL_EXEC too — the one case where
 * the kernel does not allow the exact set.
 */
function createMemfd(c: Creation): OwnedMemfd {
  const base = C.MFD_CLOEXEC | C.MFD_ALLOW_SEALING | c.hugeFlags;
  const hint = (flags: number) => (e: number): string | undefined =>
    (c.hugeFlags ? hugetlbHint(c.hugeSize)(e) : undefined) ?? memfdCreateHint(e, c.name, flags);
  if (features.noexecSeal) {
    if (c.exact && (c.seals & Seal.EXEC) === 0) {
      const r = native.memfdCreateOwned(c.name, base | C.MFD_EXEC);
      if (typeof r !== 'number') return r;
      if (r !== -E.EACCES) check(r, 'memfd_create', undefined, hint(base | C.MFD_EXEC));
    }
    const r = native.memfdCreateOwned(c.name, base | C.MFD_NOEXEC_SEAL);
    if (typeof r !== 'number') return r;
    if (r !== -E.EINVAL) check(r, 'memfd_create', undefined, hint(base | C.MFD_NOEXEC_SEAL));
  }
  const r = native.memfdCreateOwned(c.name, base);
  if (typeof r === 'number') check(r, 'memfd_create', undefined, hint(base));
  return r as OwnedMemfd;
}

const roundUp = (n: number, to: number): number => Math.ceil(n / to) * to;

/**
 * Sizes the new memfd, maps it shared and writable, lets `fill` write the
 * pages and unmaps (F_SEAL_WRITE needs no writable mapping left; the view
 * handed to `fill` is detached). Ordinary pages are faulted in up front with
 * MADV_POPULATE_WRITE (Linux 5.14; MAP_POPULATE before), after MADV_HUGEPAGE so
 * that a shmem THP policy of `advise` gives 2 MiB pages; hugetlb pages are
 * reserved by mmap itself.
 */
function fillMapped(fd: number, c: Creation, size: number, fileSize: number, fill: (bytes: Buffer) => unknown): unknown {
  const hint = c.hugeFlags ? hugetlbHint(c.hugeSize) : undefined;
  check(native.ftruncate(fd, fileSize), 'ftruncate', undefined, hint);
  const populate = !c.hugeFlags && !features.madvisePopulate ? C.MAP_POPULATE : 0;
  let m: Mapping;
  try {
    m = mmap(fileSize, C.PROT_READ | C.PROT_WRITE, C.MAP_SHARED | populate, fd);
  } catch (err) {
    if (hint !== undefined && typeof (err as { errno?: unknown }).errno === 'number') {
      (err as { hint?: string }).hint = hint((err as { errno: number }).errno);
    }
    throw err;
  }
  try {
    if (!c.hugeFlags) {
      const pmd = features.hugePages.pmdSize;
      // Advice only: EINVAL where THP is compiled out changes nothing.
      if (pmd !== null && fileSize >= pmd) native.madvise(regionHandle(m), C.MADV_HUGEPAGE, 0, fileSize);
      if (!populate) native.madvise(regionHandle(m), C.MADV_POPULATE_WRITE, 0, fileSize);
    }
    return fill(m.bytes(0, size));
  } finally {
    unmapNow(m); // detaches the view handed to fill, and F_SEAL_WRITE needs no writable mapping left
  }
}

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
    return new SealedBuffer(construct, fd, size, native.getSeals(fd), hugetlb, handle);
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
    if (this.size > DEFAULT_MAX_SIZE) {
      throw tooLargeForBuffer('this SealedBuffer', this.size, DEFAULT_MAX_SIZE, 'sealedBuffer.range(offset, length)');
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
    if (length > DEFAULT_MAX_SIZE) {
      throw tooLargeForBuffer('this window', length, DEFAULT_MAX_SIZE, 'sealedBuffer.range(offset, length)');
    }
    if (this.size <= DEFAULT_MAX_SIZE) return this.bytes.subarray(offset, offset + length);
    return this.#map() ? this.#mapping!.bytes(offset, length) : this.#read(offset, length);
  }

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
    if (this.#readonlyBytes !== null) return this.#readonlyBytes;
    if (this.#closed) throw closedError('SealedBuffer.readonlyBytes', 'the buffer');
    if (this.size === 0) return (this.#readonlyBytes = Buffer.alloc(0));
    try {
      this.#readonlyMapping = mmap(this.size, C.PROT_READ, C.MAP_SHARED, this.fd);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (this.#hugetlb || (code !== 'EPERM' && code !== 'EACCES')) throw err;
      this.#readonlyMapping = mmap(this.size, C.PROT_READ, C.MAP_PRIVATE, this.fd);
    }
    return (this.#readonlyBytes = this.#readonlyMapping.bytes());
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
    this.#mapping?.unmap();
    this.#mapping = null;
    this.#bytes = null;
    this.#readonlyMapping?.unmap();
    this.#readonlyMapping = null;
    this.#readonlyBytes = null;
    // like every close here: no throw if the caller already closed the fd
    native.fdClose(this.#fdHandle, this.size >= DEFERRED_RELEASE_BYTES);
  }

  [Symbol.dispose](): void { this.close(); }
}

/**
 * @internal SealedBuffer.open() for callers that adopt a descriptor on the
 * user's behalf (Channel.receiveBuffer()): a refusal names `caller`, the call
 * the user made, rather than SealedBuffer.open().
 */
export function openSealed(fd: number, options: VerifyOptions | undefined, caller: string): SealedBuffer {
  validateFd(fd);
  let result: VerifyResult;
  try {
    result = verify(fd, policy(options));
  } catch (err) {
    native.close(fd);
    throw err;
  }
  if (!result.ok) {
    native.close(fd);
    throw new MemsealError(result.code ?? 'ERR_MEMSEAL_NOT_SEALED', `${caller}: ${result.reason}`, {
      hint: result.code === 'ERR_MEMSEAL_NOT_SEALED'
        ? 'the sender must add the seals before sending (SealedBuffer.from/create do)'
        : undefined,
    });
  }
  // The constructor is private to the public types; the static factories and this are its callers.
  return new (SealedBuffer as unknown as new (...args: [symbol, number, number, number, boolean]) => SealedBuffer)(
    construct, fd, result.size, result.seals, result.hugetlb === true);
}

const AsyncFunction = (async () => {}).constructor;

function isAsyncFunction(fn: unknown): boolean {
  return fn instanceof AsyncFunction || Object.prototype.toString.call(fn) === '[object AsyncFunction]';
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null &&
    typeof (value as { then?: unknown }).then === 'function';
}

function asyncFill(actual: unknown, note?: string): TypeError {
  return invalidReturnValue('fill', 'undefined (it must write synchronously)', actual,
    'SealedBuffer.create() unmaps and seals as soon as fill returns: await your data first and write it ' +
    'inside a synchronous fill, or use SealedBuffer.from(data)', note);
}

// ---- SealedBuffer over a Channel ----
// The transport (channel.ts) knows nothing of SealedBuffer: these two methods
// are declared on Channel here and attached to its prototype when this module
// loads (the package index always loads it).

declare module './channel' {
  interface Channel {
    /**
     * Sends a sealed buffer: one message carrying its memfd and `meta` (at most
     * Channel.MAX_PAYLOAD bytes; a string is sent as UTF-8). The receiver gets
     * its own descriptor of the same file; `buf` stays usable and may be closed
     * as soon as this returns: a send that has to wait for buffer space keeps a
     * duplicate of the descriptor (F_DUPFD_CLOEXEC) until it goes out. On the
     * wire an empty `meta` is one NUL byte, so the message is never empty
     * (docs/protocol.md); a `meta` of exactly one NUL byte is therefore refused.
     * @rejects TypeError if `buf` is not a SealedBuffer; RangeError for oversized
     *   meta or a meta of one NUL byte; MemsealError ERR_MEMSEAL_CLOSED if `buf`
     *   or the channel is closed; ERR_MEMSEAL_QUEUE_FULL when the send would wait
     *   and the queue is at its bound (nothing taken); EPIPE when the peer is gone
     */
    sendBuffer(buf: SealedBuffer, meta?: Uint8Array | ArrayBufferView | string): Promise<void>;

    /**
     * Receives the next message as a sealed buffer. The message must carry
     * exactly one descriptor, which is verified before anything is mapped (see
     * {@link verifySeals}): a memfd whose seals include `options.require`
     * (default SHRINK | GROW | WRITE) and whose size is within bounds. A message
     * that fails any check is consumed and every descriptor in it is closed.
     * @returns the buffer (owned by the caller: close it) and the sender's `meta` bytes
     * @rejects MemsealError ERR_MEMSEAL_NOT_MEMFD (no descriptor, or not a memfd),
     *   ERR_MEMSEAL_CTRUNC (more than one descriptor), ERR_MEMSEAL_NOT_SEALED,
     *   ERR_MEMSEAL_SIZE, ERR_MEMSEAL_CLOSED (the channel closed or the peer hung up);
     *   TypeError/RangeError for bad options (nothing received)
     */
    receiveBuffer(options?: VerifyOptions): Promise<{ buffer: SealedBuffer; meta: Buffer }>;
  }
}

function sendBuffer(this: Channel, buf: SealedBuffer, meta: Uint8Array | ArrayBufferView | string = ''): Promise<void> {
  if (!(buf instanceof SealedBuffer)) return Promise.reject(invalidArgType('buf', 'an instance of SealedBuffer', buf));
  if (buf.closed) return Promise.reject(closedError('Channel.sendBuffer()', 'the SealedBuffer'));
  let payload: Uint8Array;
  try {
    payload = encodeMeta(meta);
  } catch (err) {
    return Promise.reject(err);
  }
  // send() gives a message that has to wait its own duplicate of the descriptor (F_DUPFD_CLOEXEC),
  // so `buf` may be closed, and its number reused, as soon as this returns.
  return this.send(payload, [buf.fd]);
}

async function receiveBuffer(this: Channel, options?: VerifyOptions): Promise<{ buffer: SealedBuffer; meta: Buffer }> {
  verifyPolicy(options);
  const message = await this[receiveOwned]();  // its descriptor is never untracked: adopted or closed below
  const fds = message.takeFds();
  if (fds.length !== 1) {
    for (const fd of fds) closeQuietly(fd);
    throw fds.length === 0
      ? new MemsealError('ERR_MEMSEAL_NOT_MEMFD', 'Channel.receiveBuffer(): the message carried no descriptor', {
        hint: 'the peer sent a plain message; use receive() for those' })
      : new MemsealError('ERR_MEMSEAL_CTRUNC',
        `Channel.receiveBuffer(): the message carried ${fds.length} descriptors, expected 1; all were closed`);
  }
  return { buffer: openSealed(fds[0]!, options, 'Channel.receiveBuffer()'), meta: decodeMeta(message.data) };
}

// The payload of a sendBuffer() message (docs/protocol.md): `meta` verbatim,
// except that an empty meta travels as one NUL byte, so a message with a
// descriptor is never empty (Go's ReadMsgUnix reads an empty one as EOF, and
// its WriteMsgUnix sends that same NUL byte for an empty payload). One NUL
// byte is therefore reserved and cannot be sent as meta.
const EMPTY_META = new Uint8Array(1);

function encodeMeta(meta: unknown): Uint8Array {
  const bytes = toBytes(meta);  // as Channel#send() reads data: a detached view is empty
  if (bytes.byteLength === 0) return EMPTY_META;
  if (bytes.byteLength === 1 && bytes[0] === 0) {
    throw outOfRange('meta', 'not a single NUL byte (on the wire it stands for an empty meta; docs/protocol.md)', '\\0');
  }
  return bytes;
}

function decodeMeta(payload: Buffer): Buffer {
  return payload.length === 1 && payload[0] === 0 ? payload.subarray(0, 0) : payload;
}

// Defined like class methods: non-enumerable, writable, configurable.
Object.defineProperties(Channel.prototype, {
  sendBuffer: { value: sendBuffer, writable: true, configurable: true },
  receiveBuffer: { value: receiveBuffer, writable: true, configurable: true },
});
