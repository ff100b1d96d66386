// Kernel constants by their kernel names and values, frozen like fs.constants.
import { native } from './binding';
import { validateFlags } from './validate';

const NAMES = [
  'F_ADD_SEALS', 'F_GET_SEALS', 'F_SEAL_SEAL', 'F_SEAL_SHRINK', 'F_SEAL_GROW', 'F_SEAL_WRITE',
  'F_SEAL_FUTURE_WRITE', 'F_SEAL_EXEC',
  'MFD_CLOEXEC', 'MFD_ALLOW_SEALING', 'MFD_HUGETLB', 'MFD_NOEXEC_SEAL', 'MFD_EXEC',
  'MFD_HUGE_SHIFT', 'MFD_HUGE_MASK', 'MFD_HUGE_64KB', 'MFD_HUGE_512KB', 'MFD_HUGE_1MB', 'MFD_HUGE_2MB',
  'MFD_HUGE_8MB', 'MFD_HUGE_16MB', 'MFD_HUGE_32MB', 'MFD_HUGE_256MB', 'MFD_HUGE_512MB', 'MFD_HUGE_1GB',
  'MFD_HUGE_2GB', 'MFD_HUGE_16GB',
  'O_CLOEXEC',
  'PROT_NONE', 'PROT_READ', 'PROT_WRITE', 'PROT_EXEC',
  'MAP_SHARED', 'MAP_PRIVATE', 'MAP_ANONYMOUS', 'MAP_POPULATE', 'MAP_NORESERVE', 'MAP_LOCKED',
  'MADV_NORMAL', 'MADV_RANDOM', 'MADV_SEQUENTIAL', 'MADV_WILLNEED', 'MADV_DONTNEED', 'MADV_FREE',
  'MADV_REMOVE', 'MADV_DONTFORK', 'MADV_DOFORK', 'MADV_HUGEPAGE', 'MADV_NOHUGEPAGE', 'MADV_DONTDUMP',
  'MADV_DODUMP', 'MADV_WIPEONFORK', 'MADV_KEEPONFORK', 'MADV_COLD', 'MADV_PAGEOUT', 'MADV_POPULATE_READ',
  'MADV_POPULATE_WRITE',
  'MS_SYNC', 'MS_ASYNC', 'MS_INVALIDATE',
] as const;

/** The name of one constant in {@link constants}. */
export type ConstantName = (typeof NAMES)[number];

/**
 * Kernel constants (memfd_create(2), fcntl(2), mmap(2), madvise(2), msync(2)),
 * with the values of the kernel's uapi headers. Values newer than the
 * machine's C library headers (MFD_EXEC, MFD_NOEXEC_SEAL, F_SEAL_EXEC, …) are
 * still present; whether the running kernel accepts them is in `features`.
 */
export const constants: Readonly<Record<ConstantName, number>> = Object.freeze(
  Object.fromEntries(NAMES.map((name) => {
    const value = native.constants[name];
    if (typeof value !== 'number') throw new Error(`memseal: native constant ${name} is missing (stale build?)`);
    return [name, value];
  })) as Record<ConstantName, number>,
);

/**
 * File seal bits for fcntl(F_ADD_SEALS), by short name.
 * SEAL (3.17), SHRINK (3.17), GROW (3.17), WRITE (3.17), FUTURE_WRITE (5.1), EXEC (6.3).
 */
export const Seal = Object.freeze({
  SEAL: 0x1,
  SHRINK: 0x2,
  GROW: 0x4,
  WRITE: 0x8,
  FUTURE_WRITE: 0x10,
  EXEC: 0x20,
} as const);

/** A seal's lower-case name, as returned by {@link sealNames}. */
export type SealName = 'seal' | 'shrink' | 'grow' | 'write' | 'future_write' | 'exec';

const SEAL_NAMES: ReadonlyArray<readonly [number, SealName]> = [
  [Seal.SEAL, 'seal'], [Seal.SHRINK, 'shrink'], [Seal.GROW, 'grow'], [Seal.WRITE, 'write'],
  [Seal.FUTURE_WRITE, 'future_write'], [Seal.EXEC, 'exec'],
];

/**
 * Names of the seals set in `mask`, lowest bit first: `sealNames(0x0e)` is
 * `['shrink', 'grow', 'write']`. Bits this version does not know are left out.
 */
export function sealNames(mask: number): SealName[] {
  validateFlags(mask, 'mask');
  return SEAL_NAMES.filter(([bit]) => (mask & bit) !== 0).map(([, name]) => name);
}
