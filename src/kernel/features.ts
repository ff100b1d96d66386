// Kernel feature detection, probed once at load by real calls that leave
// nothing behind: every probe fd is closed and every probe mapping unmapped.
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { native } from './binding';
import { constants as C } from './constants';
import { E } from './errors';
import { type HugePageSettings, hugePageSettings } from './hugepages';

/** What the running kernel supports, probed once when memseal loads. */
export interface Features {
  /** memfd_create(2) works (Linux 3.17). */
  readonly memfd: boolean;
  /** F_ADD_SEALS / F_GET_SEALS on a memfd (Linux 3.17). */
  readonly sealing: boolean;
  /** F_SEAL_FUTURE_WRITE (Linux 5.1). */
  readonly futureWrite: boolean;
  /** F_SEAL_EXEC (Linux 6.3). */
  readonly sealExec: boolean;
  /** MFD_NOEXEC_SEAL / MFD_EXEC (Linux 6.3). */
  readonly noexecSeal: boolean;
  /** memfd_create accepts MFD_HUGETLB (Linux 4.14); huge pages may still need reserving. */
  readonly hugetlb: boolean;
  /** mseal(2) (Linux 6.10, 64-bit). */
  readonly mseal: boolean;
  /** memfd_secret(2) is available and enabled (Linux 5.14; on by default since 6.5). */
  readonly memfdSecret: boolean;
  /** MADV_POPULATE_READ / MADV_POPULATE_WRITE (Linux 5.14). */
  readonly madvisePopulate: boolean;
  /** uname -r */
  readonly kernelRelease: string;
  /** /proc/sys/vm/memfd_noexec (Linux 6.3), or null where the sysctl does not exist. */
  readonly memfdNoexecSysctl: 0 | 1 | 2 | null;
  /**
   * Huge pages as the machine was set up at load: the shmem transparent-huge-page
   * policy (sysfs shmem_enabled, top-level and per size) and the hugetlb pools.
   * Call `hugePageSettings()` for current values.
   */
  readonly hugePages: HugePageSettings;
}

/**
 * memfd_create with `flags`, then F_ADD_SEALS of `seal` (> 0) or F_GET_SEALS (0), then close —
 * in one native call: a worker terminated during require() must not leak a probe descriptor.
 */
function probeMemfd(flags: number, seal = -1): boolean {
  return native.memfdProbe(flags, seal) === 0;
}

function probeMadvisePopulate(): boolean {
  const page = native.pageSize();
  const r = native.mmap(page, C.PROT_READ | C.PROT_WRITE, C.MAP_PRIVATE | C.MAP_ANONYMOUS, -1, 0);
  if (typeof r === 'number') return false;
  try {
    return native.madvise(r[0], C.MADV_POPULATE_READ, 0, page) === 0;
  } finally {
    native.munmap(r[0], false);
  }
}

function probeMemfdSecret(): boolean {
  return native.memfdSecretProbe() === 0;
}

function readNoexecSysctl(): 0 | 1 | 2 | null {
  try {
    const v = Number.parseInt(readFileSync('/proc/sys/vm/memfd_noexec', 'utf8'), 10);
    return v === 0 || v === 1 || v === 2 ? v : null;
  } catch {
    return null;
  }
}

function probe(): Features {
  const memfd = probeMemfd(C.MFD_CLOEXEC);
  const sealing = probeMemfd(C.MFD_CLOEXEC | C.MFD_ALLOW_SEALING, 0);
  return Object.freeze({
    memfd,
    sealing,
    futureWrite: sealing && probeMemfd(C.MFD_CLOEXEC | C.MFD_ALLOW_SEALING, C.F_SEAL_FUTURE_WRITE),
    sealExec: sealing && probeMemfd(C.MFD_CLOEXEC | C.MFD_ALLOW_SEALING, C.F_SEAL_EXEC),
    noexecSeal: probeMemfd(C.MFD_CLOEXEC | C.MFD_NOEXEC_SEAL),
    hugetlb: probeMemfd(C.MFD_CLOEXEC | C.MFD_HUGETLB),
    // mseal(NULL, 0, 1): EINVAL (flags must be 0) where the syscall exists, ENOSYS where not.
    mseal: native.msealProbe() === -E.EINVAL,
    memfdSecret: probeMemfdSecret(),
    madvisePopulate: probeMadvisePopulate(),
    kernelRelease: release(),
    memfdNoexecSysctl: readNoexecSysctl(),
    hugePages: hugePageSettings(),
  });
}

/**
 * Kernel features, probed once at load. Tests and the high-level API consult
 * these instead of comparing kernel versions: distributions backport.
 */
export const features: Features = probe();
