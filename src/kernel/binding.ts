// The only place that loads the native addon. Everything the C++ side exports
// is typed here; native functions return the result or a negative errno and
// throw only TypeError for arguments the TypeScript layer already validated.
//
// Resolution (node-gyp-build): a source build first (build/Release, then
// build/Debug, as `bindings` did), then the prebuilt binary shipped in the
// package, prebuilds/<platform>-<arch>/memseal.napi.<libc>.node. The addon uses
// only N-API 8, so one binary serves every Node version from 20 on.
import path from 'node:path';

/** An opaque, type-tagged handle to one native mapping. */
export type RegionHandle = { readonly __region: unique symbol };

/** An opaque, type-tagged handle to one native poll watcher (poll.cc); it owns its descriptor. */
export type PollHandle = { readonly __poll: unique symbol };

/** An opaque, type-tagged handle that owns one descriptor (release.cc). */
export type FdHandle = { readonly __fd: unique symbol };

export interface NativeConstants {
  readonly [name: string]: number;
}

/** Kernel numbers the TypeScript layer needs but does not export (constants.cc). */
export interface InternalConstants {
  readonly MAP_FIXED: number; readonly MADV_HWPOISON: number; readonly MADV_SOFT_OFFLINE: number;
  /** Every seal bit this version knows. */
  readonly MEMSEAL_KNOWN_SEALS: number;
  /** memfd_create(2)'s longest name in bytes (MFD_NAME_MAX_LEN), from native/kernel.h. */
  readonly MEMSEAL_MFD_NAME_MAX: number;
  readonly S_IFMT: number; readonly S_IFREG: number; readonly S_IFDIR: number; readonly S_IFCHR: number;
  readonly S_IFBLK: number; readonly S_IFIFO: number; readonly S_IFSOCK: number; readonly S_IFLNK: number;
  readonly ETOOMANYREFS: number;
  readonly O_PATH: number; readonly O_ACCMODE: number; readonly O_WRONLY: number;
}

export interface NativeBinding {
  readonly constants: NativeConstants;
  readonly internalConstants: InternalConstants;
  // memfd.cc
  memfdCreate(name: string, flags: number): number;
  memfdSecret(flags: number): number;
  /** memfd_create(flags), then F_ADD_SEALS `seal` (> 0) or F_GET_SEALS (0), then close: 0 | -errno. */
  memfdProbe(flags: number, seal: number): number;
  /** memfd_secret(O_CLOEXEC) then close: 0 | -errno. */
  memfdSecretProbe(): number;
  addSeals(fd: number, seals: number): number;
  getSeals(fd: number): number;
  // fd.cc
  /** [size, mode] or -errno */
  /** statx(2) and fcntl(F_GETFL) of one descriptor. */
  fstat(fd: number): [size: number, mode: number, blksize: number, flags: number] | number;
  ftruncate(fd: number, length: number): number;
  close(fd: number): number;
  dup(fd: number): number;
  /** The program takes a descriptor recvmsg() or dup() returned: teardown no longer closes it. */
  untrack(fd: number): void;
  untrackAll(fds: Int32Array): void;
  closeAll(fds: Int32Array): void;
  errorName(negErrno: number): string;
  errorMessage(negErrno: number): string;
  // mapping.cc
  /** [handle, address] or -errno */
  mmap(length: number, prot: number, flags: number, fd: number, offset: number): [RegionHandle, bigint] | number;
  /** Detaches every view, then lets the pages go (on the libuv thread pool when `deferred`). */
  munmap(handle: RegionHandle, deferred: boolean): number;
  mprotect(handle: RegionHandle, prot: number): number;
  madvise(handle: RegionHandle, advice: number, offset: number, length: number): number;
  msync(handle: RegionHandle, flags: number): number;
  mlock(handle: RegionHandle): number;
  munlock(handle: RegionHandle): number;
  mseal(handle: RegionHandle): number;
  msealProbe(): number;
  /** mremap(2) in place (no MREMAP_MAYMOVE): a test seam showing sealed regions refuse it. On success every view is detached. */
  mremap(handle: RegionHandle, newLength: number): number;
  /** Zero the region (explicit_bzero) before it is unmapped, however that happens, and in wipeLive(). EPERM if sealed. */
  wipeOnRelease(handle: RegionHandle): number;
  /** explicit_bzero of the whole region; -EACCES if it is not PROT_WRITE. */
  wipe(handle: RegionHandle): number;
  /** Zeroes every still-mapped wipe-on-release region of this thread; returns how many. */
  wipeLive(): number;
  /** An external ArrayBuffer over [offset, offset + length) of the region, or -errno */
  view(handle: RegionHandle, offset: number, length: number): ArrayBuffer | number;
  /** [holders of the address range, 1 while it is still mapped by this region] (for tests) */
  regionState(handle: RegionHandle): [number, number];
  pageSize(): number;
  // release.cc
  /** Adopts fd: fdClose, the garbage collector or environment teardown closes it. */
  fdOpen(fd: number): FdHandle;
  /** Idempotent; `deferred` closes on the libuv thread pool. */
  fdClose(handle: FdHandle, deferred: boolean): number;
  /** memfd_create(2), the descriptor owned from the start: [fd, handle] or -errno */
  memfdCreateOwned(name: string, flags: number): [number, FdHandle] | number;
  /** memfd_secret(2), the descriptor owned from the start: [fd, handle] or -errno */
  memfdSecretOwned(flags: number): [number, FdHandle] | number;
  // socket.cc: AF_UNIX (SOCK_SEQPACKET unless told), non-blocking and close-on-exec
  /** [fd0, fd1] or -errno */
  socketpair(): [number, number] | number;
  /** type: SOCK_SEQPACKET (default), SOCK_STREAM or SOCK_DGRAM; fd or -errno */
  socket(type?: number): number;
  /** sunPath: raw sun_path bytes (a filesystem path with its NUL, or '\0name') */
  bind(fd: number, sunPath: Uint8Array): number;
  connect(fd: number, sunPath: Uint8Array): number;
  listen(fd: number, backlog: number): number;
  accept(fd: number): number;
  /** bytes sent (a stream may take a prefix) or -errno; `to`: sun_path bytes for an unconnected datagram socket */
  sendmsg(fd: number, data: Uint8Array, fds: Int32Array, to?: Uint8Array): number;
  /** bytes (the real length if larger than buf) or -errno; out = [fds stored, msg_flags, fds the kernel installed] */
  recvmsg(fd: number, buf: Uint8Array, fds: Int32Array, out: Int32Array): number;
  /**
   * Drains up to maxMsgs messages (each with `room` payload bytes and maxFds descriptors) packed into
   * buf and fds; info = [messages, 0 | -errno that ended it, then per message: bytes, offset, fds
   * stored, msg_flags, fds installed, pid (-1: none), uid, gid]; returns the message count
   */
  recvBatch(fd: number, buf: Uint8Array, fds: Int32Array, info: Int32Array, maxMsgs: number, maxFds: number, room: number, chunk: number): number;
  /**
   * sendmsg of datas[i] with fds[i] in order until EAGAIN or a stream's partial write; results[i] = bytes
   * or -errno; closes the descriptors of each message it returns as done; returns how many are done
   */
  sendBatch(fd: number, datas: Uint8Array[], fds: Int32Array[], results: Int32Array): number;
  /** MSG_PEEK, nothing taken: 0 end-of-stream, 1 a message waits, or -errno */
  recvPeek(fd: number): number;
  /** setsockopt(SO_PASSCRED, 1): 0 | -errno. */
  passCred(fd: number): number;
  /** [pid, uid, gid] or -errno */
  peerCred(fd: number): [number, number, number] | number;
  /** [domain, type] or -errno */
  sockType(fd: number): [number, number] | number;
  setNonblockCloexec(fd: number): number;
  setBlocking(fd: number): number;
  readonly channelConstants: {
    readonly SCM_MAX_FD: number; readonly UNIX_PATH_MAX: number; readonly MSG_TRUNC: number;
    readonly MSG_CTRUNC: number; readonly AF_UNIX: number; readonly SOCK_SEQPACKET: number;
    readonly SOCK_STREAM: number; readonly SOCK_DGRAM: number;
  };
  // poll.cc
  /** Adopts fd (pollClose closes it); callback(status: 0 | -errno, events: UV_* bits). */
  pollOpen(fd: number, callback: (status: number, events: number) => void): PollHandle | number;
  pollStart(handle: PollHandle, events: number): number;
  /** Stops polling for good and drops the callback: the handle's finalizer then closes the fd once unreachable. */
  pollForget(handle: PollHandle): number;
  pollRef(handle: PollHandle, ref: boolean): number;
  pollClose(handle: PollHandle): number;
  // pool.cc: a pool's per-slot sequence words (8-byte aligned offsets into a header view)
  /** Publisher: store an odd word, then a full fence, before the slot is rewritten. */
  poolBegin(header: Uint8Array, offset: number, word: number): void;
  /** Publisher: full fence, then a release store of the even word: the slot is complete. */
  poolEnd(header: Uint8Array, offset: number, word: number): void;
  /** Acquire load of a word. */
  poolLoad(header: Uint8Array, offset: number): number;
  /** Seqcount-checked copy: 0 copied, 1 the word differed before (dst untouched), 2 it changed during the copy. */
  poolCopy(header: Uint8Array, offset: number, word: number, src: Uint8Array, dst: Uint8Array): number;
  readonly pollConstants: { readonly UV_READABLE: number; readonly UV_WRITABLE: number; readonly UV_DISCONNECT: number };
}

// node-gyp-build ships no types: one function from a package root to the addon path.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const nodeGypBuild = require('node-gyp-build') as { path(root: string): string };

/** The package root: dist/kernel/ (installed) and src/kernel/ (tests through tsx) both sit two levels below it. */
const ROOT = path.join(__dirname, '..', '..');

function loadNative(): { native: NativeBinding; addonPath: string } {
  let file: string;
  try {
    file = nodeGypBuild.path(ROOT);
  } catch (err) {
    const why = err instanceof Error ? err.message.trim() : String(err);
    throw new Error(
      `memseal: no native addon fits this machine (${process.platform}-${process.arch}, Node ${process.version}).\n` +
      `  ${why}\n` +
      'Prebuilt binaries cover linux-x64 with glibc; elsewhere memseal builds from source at install time, ' +
      'which needs python3, make and a C++17 compiler, and an install script npm may have skipped. ' +
      'Run `npm install-scripts approve memseal && npm rebuild memseal` (npm ≥ 11) or `npm rebuild memseal`.',
      { cause: err });
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return { native: require(file) as NativeBinding, addonPath: file };
  } catch (err) {
    const why = err instanceof Error ? err.message.trim() : String(err);
    throw new Error(
      `memseal: the native addon ${file} does not load here.\n  ${why}\n` +
      'The prebuilt linux binaries need glibc ≥ 2.28 and libstdc++ from GCC ≥ 5; on other systems build from ' +
      'source with `npm rebuild memseal --build-from-source` (python3, make and a C++17 compiler).',
      { cause: err });
  }
}

const loaded = loadNative();

export const native: NativeBinding = loaded.native;

/** Absolute path of the addon file this process loaded (a source build or a prebuilt binary). */
export const addonPath: string = loaded.addonPath;
