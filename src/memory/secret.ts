// SecretBuffer: memory for keys that the kernel itself does not map.
// memfd_secret(2) (Linux 5.14, on by default since 6.5) gives pages that are
// removed from the kernel's direct map: /proc/<pid>/mem, ptrace peeks,
// process_vm_readv and kernel code cannot read them, and they are locked
// (never swapped) and left out of core dumps. Where it is missing, an
// explicit { fallback: 'mlock' } gives locked, undumpable, wipe-on-fork
// anonymous memory instead.
import { readFileSync } from 'node:fs';
import { inspect } from 'node:util';
import { type FdHandle, native } from '../kernel/binding';
import { constants as C } from '../kernel/constants';
import { check, closedError, E, illegalConstructor, invalidArgType, MemsealError, type SystemError, systemError } from '../kernel/errors';
import { type Mapping, mmap, regionHandle, roundToPages, PAGE_SIZE as PAGE } from '../kernel/mapping';
import { validateInteger, validateObject } from '../kernel/validate';

const construct = Symbol('SecretBuffer.construct');

/** Where a SecretBuffer's pages come from. */
export type SecretKind = 'secretmem' | 'mlock';

/** Options for {@link SecretBuffer.alloc}. */
export interface SecretBufferOptions {
  /**
   * 'mlock': where memfd_secret is unavailable (ENOSYS: missing or disabled;
   * EPERM: forbidden by a seccomp filter), use locked anonymous memory
   * instead of throwing. Check `kind` to see what you got.
   */
  fallback?: 'mlock';
  /**
   * Ask for one kind. Default 'secretmem'. 'mlock' skips memfd_secret, e.g.
   * where the machine must hibernate (the kernel refuses to hibernate while
   * secretmem is in use) or to avoid splitting the kernel's direct map.
   */
  kind?: SecretKind;
}

/**
 * A few bytes the rest of the process, and the kernel, should not see: keys,
 * tokens, passwords.
 *
 * `'secretmem'` (memfd_secret(2), Linux 5.14): the pages are out of the
 * kernel's direct map, so reading them through /proc/<pid>/mem or ptrace
 * fails even for root; they are locked in RAM, excluded from core dumps and
 * not inherited by fork(2) (MADV_DONTFORK). `'mlock'`: mlock(2) +
 * MADV_DONTDUMP + MADV_WIPEONFORK; not swapped or dumped, but readable
 * through /proc/<pid>/mem by a sufficiently privileged process.
 *
 * Both count against RLIMIT_MEMLOCK and take whole pages: keep many small
 * keys in one buffer. `dispose()` zeroes, then unmaps; so does the garbage
 * collector once the object and all views of `bytes` are gone, and every live
 * buffer is zeroed in the process 'exit' event.
 * @example
 * ```ts
 * import { randomFillSync } from 'node:crypto';
 * import { SecretBuffer } from 'memseal';
 * using key = SecretBuffer.alloc(32, { fallback: 'mlock' });
 * randomFillSync(key.bytes);    // generated in place, never in ordinary memory
 * ```
 */
export class SecretBuffer {
  /** Bytes requested; `bytes.length`. The mapping is rounded up to whole pages. */
  readonly size: number;
  /** 'secretmem' (memfd_secret) or 'mlock' (the fallback). */
  readonly kind: SecretKind;
  #mapping: Mapping;
  #bytes: Buffer;
  #closed = false;

  /** Not public: use {@link SecretBuffer.alloc}. */
  private constructor(token: symbol, mapping: Mapping, size: number, kind: SecretKind) {
    if (token !== construct) throw illegalConstructor('SecretBuffer.alloc()');
    this.#mapping = mapping;
    this.size = size;
    this.kind = kind;
    this.#bytes = mapping.bytes(0, size);
  }

  /**
   * Allocates `size` bytes of secret memory, zero-filled: memfd_secret(2) +
   * ftruncate(2) + mmap(2) MAP_SHARED (the descriptor is closed once mapped:
   * nothing else can map the pages). With `{ fallback: 'mlock' }`, or
   * `{ kind: 'mlock' }`: mmap(2) MAP_PRIVATE|MAP_ANONYMOUS + mlock(2) +
   * madvise(MADV_DONTDUMP, MADV_WIPEONFORK).
   * @throws MemsealError ERR_MEMSEAL_UNSUPPORTED where memfd_secret is missing,
   *   disabled or forbidden and no fallback was allowed; EAGAIN (secretmem) or
   *   ENOMEM/EPERM (mlock) when RLIMIT_MEMLOCK is exhausted, with a hint naming
   *   the limit, its value and what is already locked
   */
  static alloc(size: number, options?: SecretBufferOptions): SecretBuffer {
    validateInteger(size, 'size', 1, Number.MAX_SAFE_INTEGER - PAGE);
    let fallback = false;
    let want: SecretKind = 'secretmem';
    if (options !== undefined) {
      validateObject(options, 'options');
      if (options.fallback !== undefined) {
        if (options.fallback !== 'mlock') throw invalidArgType('options.fallback', "'mlock'", options.fallback);
        fallback = true;
      }
      if (options.kind !== undefined) {
        if (options.kind !== 'secretmem' && options.kind !== 'mlock') {
          throw invalidArgType('options.kind', "'secretmem' or 'mlock'", options.kind);
        }
        want = options.kind;
      }
    }
    const length = roundToPages(size);
    let mapping: Mapping | null = null;
    let kind: SecretKind = want;
    if (want === 'secretmem') {
      // owned from the start: a worker terminated mid-allocation leaks no descriptor
      const owned = native.memfdSecretOwned(C.O_CLOEXEC);
      const fd = typeof owned === 'number' ? owned : owned[0];
      if (typeof owned !== 'number') {
        mapping = mapSecretmem(owned, length);
      } else if (fd === -E.ENOSYS || fd === -E.EPERM) {
        if (!fallback) {
          throw new MemsealError('ERR_MEMSEAL_UNSUPPORTED',
            `SecretBuffer.alloc(): memfd_secret is not available here (${native.errorName(fd)})`, {
              cause: systemError(fd, 'memfd_secret'),
              hint: (fd === -E.EPERM
                ? 'a seccomp filter (e.g. a container runtime\'s default profile) forbids memfd_secret. '
                : 'needs Linux ≥ 5.14 with memfd_secret enabled (default since 6.5, else boot with secretmem.enable=1). ') +
                "Pass { fallback: 'mlock' } to accept locked anonymous memory instead",
            });
        }
        kind = 'mlock';
      } else {
        check(fd, 'memfd_secret');
      }
    }
    if (mapping === null) mapping = mapLocked(length);
    if (native.wipeOnRelease(regionHandle(mapping)) < 0) {
      // -EPERM for an mseal'd region only, which a fresh mapping never is
      mapping.close();
      throw new MemsealError('ERR_MEMSEAL_SEALED', 'SecretBuffer.alloc(): the new mapping is sealed and could never be wiped');
    }
    installExitHook();
    return new SecretBuffer(construct, mapping, size, kind);
  }

  /**
   * The secret bytes: a Buffer view of the pages, zero-copy. Do not copy them
   * into ordinary memory (strings, `Buffer.from`, `toString`) if you can help
   * it; every copy is one the protection does not cover.
   * @throws MemsealError ERR_MEMSEAL_CLOSED after dispose()
   */
  get bytes(): Buffer {
    if (this.#closed) throw closedError('SecretBuffer.bytes', 'the buffer', 'disposed');
    return this.#bytes;
  }

  /** Start address of the pages (for /proc/self/maps and diagnostics). */
  get address(): bigint { return this.#mapping.address; }

  /** Disposed: zeroed and unmapped; old views of `bytes` have length 0. */
  get closed(): boolean { return this.#closed; }

  /** Zeroes every byte (explicit_bzero(3) over the whole pages) and keeps the buffer. */
  wipe(): void {
    if (this.#closed) throw closedError('SecretBuffer.wipe()', 'the buffer', 'disposed');
    // explicit_bzero(3), not a syscall: it fails (-EACCES) only on pages that are not writable, which ours always are
    if (native.wipe(regionHandle(this.#mapping)) < 0) {
      throw new MemsealError('ERR_MEMSEAL_SEALED', 'SecretBuffer.wipe(): the pages are not writable');
    }
  }

  /**
   * Zeroes the pages, detaches every view of `bytes` (they read as length 0),
   * then unmaps them: munmap(2). Safe to call twice.
   */
  close(): void {
    if (this.#closed) return;
    this.#mapping.close(); // the native region zeroes itself first (wipe-on-release)
    this.#closed = true;
  }

  /** @deprecated The same as {@link close}, the name every memseal object uses; kept for existing callers. */
  dispose(): void { this.close(); }

  /** `using key = SecretBuffer.alloc(32)` closes it at scope exit. */
  [Symbol.dispose](): void { this.close(); }

  /** Never prints the contents. */
  [inspect.custom](): string {
    return `SecretBuffer { size: ${this.size}, kind: '${this.kind}'${this.#closed ? ', closed: true' : ''} }`;
  }
}

function mapSecretmem([fd, handle]: [number, FdHandle], length: number): Mapping {
  try {
    check(native.ftruncate(fd, length), 'ftruncate');
    let mapping: Mapping;
    try {
      mapping = mmap(length, C.PROT_READ | C.PROT_WRITE, C.MAP_SHARED, fd);
    } catch (err) {
      throw withMemlockHint(err, length, 'memfd_secret pages', 'secretmem', ['EAGAIN']); // mlock_future_ok() in secretmem_mmap
    }
    try {
      mapping.advise(C.MADV_DONTFORK); // MAP_SHARED: a forked child would otherwise share the live secret
    } catch (err) {
      mapping.close();
      throw err;
    }
    return mapping;
  } finally {
    native.fdClose(handle, false); // the mapping keeps the file alive
  }
}

function mapLocked(length: number): Mapping {
  const mapping = mmap(length, C.PROT_READ | C.PROT_WRITE, C.MAP_PRIVATE);
  try {
    try {
      mapping.lock();
    } catch (err) {
      throw withMemlockHint(err, length, 'mlock()ed pages', 'SecretBuffer', ['EAGAIN', 'ENOMEM', 'EPERM']);
    }
    mapping.advise(C.MADV_DONTDUMP);
    mapping.advise(C.MADV_WIPEONFORK);
    return mapping;
  } catch (err) {
    mapping.close();
    throw err;
  }
}

/** Replaces the hint of an RLIMIT_MEMLOCK failure with one that names the limit, its value and the usage. */
function withMemlockHint(err: unknown, needed: number, what: string, detail: string, codes: readonly string[]): unknown {
  const e = err as SystemError;
  if (!codes.includes(e.code)) return err;
  const limit = readMemlockLimit();
  const locked = readLockedBytes();
  const shown = limit === null ? 'unknown' : limit === Infinity ? 'unlimited' : `${limit} bytes`;
  const hint = `${what} count against RLIMIT_MEMLOCK (ulimit -l), which is ${shown}` +
    `${locked === null ? '' : `; ${locked} bytes are locked already`} and ${needed} more were needed. Raise the limit ` +
    '(ulimit -l, prlimit --memlock, systemd LimitMEMLOCK=, docker --ulimit memlock=), grant CAP_IPC_LOCK, or keep fewer, smaller secrets';
  const out = systemError(e.errno, e.syscall, `${detail}, RLIMIT_MEMLOCK ${shown}`, hint);
  out.stack = `${out.name}: ${out.message}${e.stack?.slice(e.stack.indexOf('\n')) ?? ''}`;
  return out;
}

/** The soft RLIMIT_MEMLOCK in bytes (Infinity for unlimited), from /proc/self/limits. */
function readMemlockLimit(): number | null {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max locked memory'));
    const soft = line?.slice('Max locked memory'.length).trim().split(/\s+/)[0];
    if (soft === undefined) return null;
    return soft === 'unlimited' ? Infinity : Number(soft);
  } catch {
    return null;
  }
}

function readLockedBytes(): number | null {
  try {
    const m = /^VmLck:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

let exitHookInstalled = false;

/**
 * At 'exit', zero every SecretBuffer still alive in this thread (they stay
 * mapped: 'exit' listeners added later read zeros rather than freed memory).
 */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => { native.wipeLive(); });
}
