// memfd_create(2), memfd_secret(2) and file seals (fcntl(2) F_ADD_SEALS / F_GET_SEALS).
import { native } from './binding';
import { constants as C, Seal } from './constants';
import { check, E, invalidArgValue } from './errors';
import { features } from './features';
import { validateFd, validateFlags, validateString } from './validate';

const { MEMSEAL_KNOWN_SEALS, MEMSEAL_MFD_NAME_MAX } = native.internalConstants;

/** Most bytes memfd_create(2) accepts in a name, excluding the NUL (NAME_MAX - strlen("memfd:")). */
export const MEMFD_NAME_MAX: number = MEMSEAL_MFD_NAME_MAX;

/**
 * Creates an anonymous memory-backed file: memfd_create(2), Linux 3.17.
 * @param name shown in /proc/<pid>/fd as `/memfd:<name> (deleted)`; at most 249 bytes, no NUL
 * @param flags MFD_* bits; default `MFD_CLOEXEC | MFD_ALLOW_SEALING`. MFD_NOEXEC_SEAL and
 *   MFD_EXEC need Linux 6.3; unknown bits go to the kernel (EINVAL).
 * @returns the new file descriptor; the caller owns it (close it with fs.closeSync).
 * @throws EINVAL (bad flags or name too long), EMFILE/ENFILE, ENOMEM, EACCES (MFD_EXEC under vm.memfd_noexec=2)
 * @example
 * ```ts
 * import { ftruncateSync, writeSync } from 'node:fs';
 * import { addSeals, memfdCreate, Seal } from 'memseal';
 * const fd = memfdCreate('config');            // MFD_CLOEXEC | MFD_ALLOW_SEALING
 * writeSync(fd, '{"port":8080}');
 * addSeals(fd, Seal.SHRINK | Seal.GROW | Seal.WRITE | Seal.SEAL);
 * ```
 */
export function memfdCreate(name: string, flags: number = C.MFD_CLOEXEC | C.MFD_ALLOW_SEALING): number {
  validateString(name, 'name');
  if (name.includes('\0')) throw invalidArgValue('name', 'must be a string without null bytes', name);
  validateFlags(flags, 'flags');
  return check(native.memfdCreate(name, flags), 'memfd_create', undefined, (e) => memfdCreateHint(e, name, flags));
}

/** @internal The hint for a memfd_create(2) failure, for every caller of it. */
export function memfdCreateHint(e: number, name: string, flags: number): string | undefined {
  if (e === -E.EACCES && (flags & C.MFD_EXEC) !== 0) return 'vm.memfd_noexec=2 forbids executable memfds';
  if (e === -E.EINVAL) {
    if ((flags & (C.MFD_NOEXEC_SEAL | C.MFD_EXEC)) !== 0 && !features.noexecSeal) {
      return 'needs Linux ≥ 6.3 (MFD_NOEXEC_SEAL / MFD_EXEC)';
    }
    if (Buffer.byteLength(name) > MEMFD_NAME_MAX) return `the name is longer than ${MEMFD_NAME_MAX} bytes`;
  }
  return undefined;
}

/**
 * Creates a file whose pages are removed from the kernel's direct map:
 * memfd_secret(2), Linux 5.14 (disabled by default before 6.5: boot with
 * secretmem.enable=1). Size it with ftruncate, map it MAP_SHARED; read(2)
 * and write(2) on it fail with EINVAL. Pages count against RLIMIT_MEMLOCK.
 * @param flags O_CLOEXEC (default) or 0
 * @throws ENOSYS where the kernel lacks or disables it
 */
export function memfdSecret(flags: number = C.O_CLOEXEC): number {
  validateFlags(flags, 'flags');
  return check(native.memfdSecret(flags), 'memfd_secret', undefined, (e) =>
    e === -E.ENOSYS ? 'needs Linux ≥ 5.14 with memfd_secret enabled (default since 6.5, else secretmem.enable=1)' : undefined);
}

/**
 * Adds seals to a memfd: fcntl(fd, F_ADD_SEALS, seals), Linux 3.17.
 * Seals only accumulate; see {@link Seal} for each bit and its kernel version.
 * @throws EPERM (F_SEAL_SEAL is set: also the case for memfds made without
 *   MFD_ALLOW_SEALING), EBUSY (F_SEAL_WRITE while a writable shared mapping
 *   exists), EINVAL (not a memfd, or a seal bit this kernel does not know)
 * @example
 * ```ts
 * addSeals(fd, Seal.SHRINK | Seal.GROW | Seal.WRITE);   // EBUSY while a writable shared mapping exists
 * ```
 */
export function addSeals(fd: number, seals: number): void {
  validateFd(fd);
  validateFlags(seals, 'seals');
  check(native.addSeals(fd, seals), 'fcntl', 'F_ADD_SEALS', (e) => addSealsHint(e, fd, seals));
}

function addSealsHint(e: number, fd: number, seals: number): string | undefined {
  if (e === -E.EBUSY && (seals & Seal.WRITE) !== 0) return 'a writable shared mapping of this memfd still exists';
  if (e === -E.EPERM) {
    // Two causes share EPERM: F_SEAL_SEAL, or a descriptor not open for writing.
    const current = native.getSeals(fd);
    if (current >= 0 && (current & Seal.SEAL) === 0) {
      return 'the descriptor is not open for writing: F_ADD_SEALS needs a writable descriptor (O_RDWR or O_WRONLY)';
    }
    return 'F_SEAL_SEAL is set: no more seals can be added (memfds created without MFD_ALLOW_SEALING start with it)';
  }
  if (e === -E.EINVAL) {
    if ((seals & Seal.FUTURE_WRITE) !== 0 && !features.futureWrite) return 'needs Linux ≥ 5.1 (F_SEAL_FUTURE_WRITE)';
    if ((seals & Seal.EXEC) !== 0 && !features.sealExec) return 'needs Linux ≥ 6.3 (F_SEAL_EXEC)';
    if (native.getSeals(fd) < 0) return 'the descriptor does not support sealing (not a memfd)';
    const unknown = seals & ~MEMSEAL_KNOWN_SEALS;
    if (unknown !== 0) return `unknown seal bits 0x${unknown.toString(16)}`;
  }
  return undefined;
}

/**
 * Reads a file's seals: fcntl(fd, F_GET_SEALS), Linux 3.17.
 * @returns the seal mask (see {@link sealNames})
 * @throws EINVAL where the file does not support sealing (not a memfd), EBADF
 * @example
 * ```ts
 * sealNames(getSeals(fd));   // [ 'seal', 'shrink', 'grow', 'write' ]
 * ```
 */
export function getSeals(fd: number): number {
  validateFd(fd);
  return check(native.getSeals(fd), 'fcntl', 'F_GET_SEALS', (e) =>
    e === -E.EINVAL ? 'the descriptor does not support sealing (not a memfd)' : undefined);
}

