// verifySeals(): the check a receiver runs on a descriptor a peer sent before
// it maps anything — a memfd (F_GET_SEALS, fstat(2)), with the seals it
// requires and none it forbids, of a size within bounds — and the defaults of
// that policy. SealedBuffer.open() and Channel#receiveBuffer() (sealed.ts) and
// the pub/sub subscriber build on it.
import { native } from '../kernel/binding';
import { constants as C, Seal, sealNames } from '../kernel/constants';
import { E, MemsealError, type MemsealErrorCode, systemError } from '../kernel/errors';
import { features } from '../kernel/features';
import { type Mapping, PAGE_SIZE } from '../kernel/mapping';
import { validateFd, validateFlags, validateLength, validateObject } from '../kernel/validate';
import { hugetlbHint } from './sealed-create';

const { S_IFMT, S_IFREG, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK, S_IFDIR, O_PATH, O_ACCMODE, O_WRONLY } = native.internalConstants;
/**
 * The largest buffer a receiver accepts unless `maxSize` says otherwise: 1 GiB
 * (2^30 bytes), the same on every Node version and in every receiver
 * (receiveBuffer(), SealedBuffer.open(), Subscriber, the Python peer, the C
 * header). A peer cannot make a receiver map more without the receiver saying so.
 */
export const DEFAULT_MAX_SIZE: number = 2 ** 30;

/** The seals a receiver requires unless told otherwise: the file can neither shrink, grow nor change. */
export const DEFAULT_REQUIRED_SEALS = Seal.SHRINK | Seal.GROW | Seal.WRITE;

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
   * Default {@link DEFAULT_MAX_SIZE} (1 GiB) on every Node version; a larger
   * one must be allowed explicitly. Buffers over buffer.constants.MAX_LENGTH
   * are read with `range()`.
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
  code?: Extract<MemsealErrorCode, 'ERR_MEMSEAL_NOT_SEALED' | 'ERR_MEMSEAL_NOT_MEMFD' | 'ERR_MEMSEAL_SIZE' | 'ERR_MEMSEAL_ACCESS'>;
  /** What the sender (or the caller) can do about a rejection; absent when ok or nothing useful is known. */
  hint?: string;
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

const ACCESS_HINT = 'the sender must pass the descriptor memfd_create(2) returned (O_RDWR) or one opened for reading';

/** An O_PATH or write-only descriptor: nothing can be read or mapped through it, whatever the file. */
function accessRefusal(flags: number, seals: number, size: number, p: Policy): VerifyResult | null {
  const reason = (flags & O_PATH) !== 0 ? 'the descriptor was opened with O_PATH: it grants no access to the file'
    : (flags & O_ACCMODE) === O_WRONLY ? 'the descriptor is write-only (O_WRONLY): the file cannot be read or mapped through it'
      : null;
  return reason === null ? null
    : { ok: false, seals, size, missing: p.require & ~seals, code: 'ERR_MEMSEAL_ACCESS', reason, hint: ACCESS_HINT };
}

function verify(fd: number, p: Policy): VerifyResult {
  // Seals first, then the size: seals only accumulate, so once SHRINK and GROW
  // are seen the size read afterwards is final.
  const seals = native.getSeals(fd);
  if (seals < 0) {
    // F_GET_SEALS answers EBADF for an O_PATH descriptor too: tell that from a closed one.
    if (seals !== -E.EINVAL && seals !== -E.EBADF) throw systemError(seals, 'fcntl', 'F_GET_SEALS');
    const st = native.fstat(fd);
    if (typeof st === 'number') throw systemError(seals, 'fcntl', 'F_GET_SEALS');
    const refused = accessRefusal(st[3], 0, 0, p);
    if (refused !== null) return refused;
    if (seals === -E.EBADF) throw systemError(seals, 'fcntl', 'F_GET_SEALS');
    return { ok: false, seals: 0, size: 0, missing: p.require, code: 'ERR_MEMSEAL_NOT_MEMFD',
      reason: `the descriptor is ${fileKind(st[1])}, not a memfd: it cannot be sealed` };
  }
  const st = native.fstat(fd);
  if (typeof st === 'number') throw systemError(st, 'fstat');
  const [size, mode, blksize, flags] = st;
  const refused = accessRefusal(flags, seals, size, p);
  if (refused !== null) return refused;
  if ((mode & S_IFMT) !== S_IFREG) {
    return { ok: false, seals, size, missing: 0, code: 'ERR_MEMSEAL_NOT_MEMFD',
      reason: `the descriptor is ${fileKind(mode)}, not a memfd` };
  }
  const missing = p.require & ~seals;
  if (missing !== 0) {
    return { ok: false, seals, size, missing, code: 'ERR_MEMSEAL_NOT_SEALED',
      reason: `missing seals: ${describeSeals(missing)} (has: ${describeSeals(seals)})`,
      hint: 'the sender must add the seals before sending (SealedBuffer.from/create do)' };
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
 * a memfd (F_GET_SEALS works) opened for reading (neither O_PATH nor
 * O_WRONLY: fcntl(F_GETFL)), that its seals include `require` (a superset is
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

/** @internal verifySeals() for a caller that has validated `fd` already (openSealed). */
export function verifyFd(fd: number, options: VerifyOptions | undefined): VerifyResult {
  return verify(fd, policy(options));
}

/**
 * @internal The second half of the check, once a peer's hugetlb file is mapped
 * and before any view of it exists: a hugetlb memfd may be sparse, and the
 * first read of a missing page allocates a huge page charged to *this*
 * process (its pool, its hugetlb cgroup); when that fails the kernel answers
 * with SIGBUS. MADV_POPULATE_READ (Linux 5.14) faults every page in now and
 * turns that SIGBUS into EFAULT (ENOMEM when memory runs out). Where the
 * kernel lacks it, a peer's hugetlb file is refused. On failure the mapping
 * is unmapped. Ordinary (shmem) files are left alone: their missing pages
 * are the shared zero page.
 * @throws EFAULT/ENOMEM (madvise) with a hint naming the pool and the cgroup limit;
 *   MemsealError ERR_MEMSEAL_UNSUPPORTED before Linux 5.14
 */
export function populatePeerMapping(mapping: Mapping, verdict: Pick<VerifyResult, 'hugetlb'>, fd: number, caller: string): void {
  if (verdict.hugetlb !== true) return;
  let r: number;
  if (!features.madvisePopulate) {
    mapping.unmap();
    throw new MemsealError('ERR_MEMSEAL_UNSUPPORTED', `${caller}: the peer sent a hugetlb memfd, and this kernel cannot check ` +
      'that its pages exist before they are read (MADV_POPULATE_READ needs Linux 5.14): a missing page would raise SIGBUS',
    { hint: 'send an ordinary (not hugePages) buffer to this receiver' });
  }
  try {
    mapping.advise(C.MADV_POPULATE_READ);
    return;
  } catch (err) {
    mapping.unmap();
    if (typeof (err as { errno?: unknown }).errno !== 'number') throw err;
    r = (err as { errno: number }).errno;
    if (r !== -E.EFAULT && r !== -E.ENOMEM) throw err;
  }
  const st = native.fstat(fd);
  const pageSize = typeof st === 'number' ? 0 : st[2];
  throw systemError(r, 'madvise', 'MADV_POPULATE_READ', `${caller}: the peer's hugetlb memfd has pages that were never ` +
    `allocated, and this process could not get them: ${hugetlbHint(pageSize)(-E.ENOMEM) ?? ''}, or this process's hugetlb ` +
    `cgroup limit (hugetlb.${pageSize >> 20}MB.max) is reached; nothing was mapped`);
}
