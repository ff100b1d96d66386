// The only place that loads the native addon. Everything the C++ side exports
// is typed here; native functions return the result or a negative errno and
// throw only TypeError for arguments the TypeScript layer already validated.
import bindings from 'bindings';

/** An opaque, type-tagged handle to one native mapping. */
export type RegionHandle = { readonly __region: unique symbol };

/** An opaque, type-tagged handle to one native poll watcher (channel.cc); it owns its descriptor. */
export type PollHandle = { readonly __poll: unique symbol };

export interface NativeConstants {
  readonly [name: string]: number;
}

export interface NativeBinding {
  readonly constants: NativeConstants;
  // memfd.cc
  memfdCreate(name: string, flags: number): number;
  memfdSecret(flags: number): number;
  addSeals(fd: number, seals: number): number;
  getSeals(fd: number): number;
  /** [size, mode] or -errno */
  fstat(fd: number): [number, number] | number;
  ftruncate(fd: number, length: number): number;
  close(fd: number): number;
  dup(fd: number): number;
  errorName(negErrno: number): string;
  errorMessage(negErrno: number): string;
  // mapping.cc
  /** [handle, address] or -errno */
  mmap(length: number, prot: number, flags: number, fd: number, offset: number): [RegionHandle, bigint] | number;
  munmap(handle: RegionHandle): number;
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
  pageSize(): number;
  // channel.cc: AF_UNIX SOCK_SEQPACKET, non-blocking and close-on-exec
  /** [fd0, fd1] or -errno */
  socketpair(): [number, number] | number;
  socket(): number;
  /** sunPath: raw sun_path bytes (a filesystem path with its NUL, or '\0name') */
  bind(fd: number, sunPath: Uint8Array): number;
  connect(fd: number, sunPath: Uint8Array): number;
  listen(fd: number, backlog: number): number;
  accept(fd: number): number;
  sendmsg(fd: number, data: Uint8Array, fds: Int32Array): number;
  /** bytes (the real length if larger than buf) or -errno; out = [fds stored, msg_flags] */
  recvmsg(fd: number, buf: Uint8Array, fds: Int32Array, out: Int32Array): number;
  /** [pid, uid, gid] or -errno */
  peerCred(fd: number): [number, number, number] | number;
  /** [domain, type] or -errno */
  sockType(fd: number): [number, number] | number;
  setNonblockCloexec(fd: number): number;
  /** Adopts fd (pollClose closes it); callback(status: 0 | -errno, events: UV_* bits). */
  pollOpen(fd: number, callback: (status: number, events: number) => void): PollHandle | number;
  pollStart(handle: PollHandle, events: number): number;
  pollRef(handle: PollHandle, ref: boolean): number;
  pollClose(handle: PollHandle): number;
  readonly channelConstants: {
    readonly SCM_MAX_FD: number; readonly UNIX_PATH_MAX: number; readonly MSG_TRUNC: number;
    readonly MSG_CTRUNC: number; readonly AF_UNIX: number; readonly SOCK_SEQPACKET: number;
    readonly UV_READABLE: number; readonly UV_WRITABLE: number; readonly UV_DISCONNECT: number;
  };
}

export const native: NativeBinding = bindings('memseal');
