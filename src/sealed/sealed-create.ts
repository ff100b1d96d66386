// How a SealedBuffer (sealed.ts) is made: its options (name, exact seals,
// hugetlb pages), memfd_create(2) with MFD_NOEXEC_SEAL or MFD_EXEC as the seals
// ask (Linux 6.3) and MFD_HUGETLB (4.14), and filling the new file through a
// shared mapping (ftruncate(2), mmap(2), MADV_HUGEPAGE, MADV_POPULATE_WRITE
// 5.14) before it is unmapped and sealed; plus the checks that refuse an
// asynchronous fill.
import { type FdHandle, native } from '../kernel/binding';
import { constants as C, Seal } from '../kernel/constants';
import { check, E, invalidArgType, invalidArgValue, invalidReturnValue, MemsealError } from '../kernel/errors';
import { features } from '../kernel/features';
import { hugePageSettings, hugetlbPool } from '../kernel/hugepages';
import { type Mapping, mmap, regionHandle, unmapNow } from '../kernel/mapping';
import { memfdCreateHint } from '../kernel/memfd';
import { validateFlags, validateObject, validateString } from '../kernel/validate';

/** The seals SealedBuffer puts on what it creates. */
export const DEFAULT_SEALS = Seal.SHRINK | Seal.GROW | Seal.WRITE | Seal.SEAL;

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

/** @internal SealedBufferOptions, validated. */
export interface Creation {
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
  if (value === true) {
    // The default huge page size is fixed at boot: `features` read it once (hugePageSettings() reads
    // some twenty sysfs files, about 0.5 ms, which every hugetlb buffer would otherwise pay).
    const size = features.hugePages.hugetlbDefaultSize;
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

/** @internal SealedBufferOptions, validated, with their defaults. */
export function creationOptions(options: SealedBufferOptions | undefined): Creation {
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

/** @internal What the kernel's refusal of a hugetlb request most likely means. */
export function hugetlbHint(size: number): (e: number) => string | undefined {
  return (e) => {
    // memfd_create answers ENODEV for a size the kernel has no hugetlbfs for, EINVAL for one it cannot encode.
    if (e === -E.EINVAL || e === -E.ENODEV) return `this kernel offers no ${size}-byte huge pages (see /sys/kernel/mm/hugepages)`;
    if (e !== -E.ENOMEM && e !== -E.ENOSPC) return undefined;
    const pool = hugetlbPool(hugePageSettings(), size);
    return `the hugetlb pool of ${size}-byte pages has ${pool?.free ?? 0} free of ${pool?.total ?? 0}: reserve more ` +
      `(as root: echo N > /sys/kernel/mm/hugepages/hugepages-${size / 1024}kB/nr_hugepages)`;
  };
}

/** @internal The memfd and the native handle that owns it from the moment it exists. */
export type OwnedMemfd = [fd: number, handle: FdHandle];

/**
 * @internal Creates the memfd, owned by a native handle from the moment it exists. By
 * default with MFD_NOEXEC_SEAL where the kernel has it (Linux 6.3; it adds
 * F_SEAL_EXEC at creation), retrying without on EINVAL. With `exact` seals the
 * file carries F_SEAL_EXEC only if `seals` asks for it: without EXEC it is made
 * with MFD_EXEC, because under vm.memfd_noexec=1 a memfd made with neither flag
 * gets MFD_NOEXEC_SEAL (and so F_SEAL_EXEC) implicitly. Under vm.memfd_noexec=2
 * the kernel refuses MFD_EXEC (EACCES): then the file is made with
 * MFD_NOEXEC_SEAL after all and carries F_SEAL_EXEC too — the one case where
 * the kernel does not allow the exact set.
 */
export function createMemfd(c: Creation): OwnedMemfd {
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

/**
 * @internal Sizes the new memfd and maps it shared and writable: the one way a
 * SealedBuffer's pages are written in place (create(), the builders of
 * builder.ts). Ordinary pages are faulted in up front with MADV_POPULATE_WRITE
 * (Linux 5.14; MAP_POPULATE before), after MADV_HUGEPAGE so that a shmem THP
 * policy of `advise` gives 2 MiB pages; hugetlb pages are reserved by mmap
 * itself. The caller unmaps (unmapNow) before F_SEAL_WRITE, which refuses
 * while a writable mapping is left.
 */
export function mapWritable(fd: number, c: Creation, fileSize: number): Mapping {
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
  if (!c.hugeFlags) {
    const pmd = features.hugePages.pmdSize;
    // Advice only (the results are ignored): EINVAL where THP is compiled out changes nothing.
    if (pmd !== null && fileSize >= pmd) native.madvise(regionHandle(m), C.MADV_HUGEPAGE, 0, fileSize);
    if (!populate) native.madvise(regionHandle(m), C.MADV_POPULATE_WRITE, 0, fileSize);
  }
  return m;
}

/**
 * @internal mapWritable(), then `fill` writes the pages, then the mapping is
 * unmapped (F_SEAL_WRITE needs no writable mapping left; the view handed to
 * `fill` is detached).
 */
export function fillMapped(fd: number, c: Creation, size: number, fileSize: number, fill: (bytes: Buffer) => unknown): unknown {
  const m = mapWritable(fd, c, fileSize);
  try {
    return fill(m.bytes(0, size));
  } finally {
    unmapNow(m); // detaches the view handed to fill, and F_SEAL_WRITE needs no writable mapping left
  }
}

const AsyncFunction = (async () => {}).constructor;

/** @internal */
export function isAsyncFunction(fn: unknown): boolean {
  return fn instanceof AsyncFunction || Object.prototype.toString.call(fn) === '[object AsyncFunction]';
}

/** @internal */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null &&
    typeof (value as { then?: unknown }).then === 'function';
}

/** @internal The refusal of a fill that returned a promise (or is async). */
export function asyncFill(actual: unknown, note?: string): TypeError {
  return invalidReturnValue('fill', 'undefined (it must write synchronously)', actual,
    'SealedBuffer.create() unmaps and seals as soon as fill returns: await your data first and write it ' +
    'inside a synchronous fill, or use SealedBuffer.from(data)', note);
}
