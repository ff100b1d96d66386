// The bottom layer of Channel (channel.ts): its limits, options and socket
// type (SO_TYPE), SO_PEERCRED, the checks of send()'s arguments and of a socket
// fromFd() adopts, ERR_MEMSEAL_CLOSED, the libuv poll watcher and close(2) for
// descriptors we own. It imports nothing of the Channel it serves.
import { native, type PollHandle } from '../kernel/binding';
import { closedError as closed, E, invalidArgType, MemsealError, outOfRange, systemError } from '../kernel/errors';
import { toBytes, validateFd, validateInteger, validateObject } from '../kernel/validate';

const K = native.channelConstants;

/** Most payload bytes one message may carry (64 KiB). Bulk data belongs in a memfd passed as a descriptor. */
export const MAX_PAYLOAD = 65536;
/** Most descriptors one message may carry: SCM_MAX_FD (253 since Linux 2.6.38; include/net/scm.h). */
export const MAX_FDS: number = K.SCM_MAX_FD;
/** Default bound of a channel's send queue in bytes ({@link ChannelOptions.maxQueuedBytes}): 8 MiB. */
export const DEFAULT_MAX_QUEUED_BYTES = 8 * 1024 * 1024;
/** Default bound of the descriptors a channel's send queue holds ({@link ChannelOptions.maxQueuedFds}): 1024. */
export const DEFAULT_MAX_QUEUED_FDS = 1024;
/**
 * What one queued message costs in {@link Channel.queuedBytes} besides its payload:
 * the bookkeeping of a pending promise, so that a flood of tiny messages is bounded too.
 */
export const QUEUED_MESSAGE_OVERHEAD = 256;

/** Credentials of the process at the other end, from SO_PEERCRED (taken when it connected). */
export interface PeerCredentials {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
}

/**
 * The kind of AF_UNIX socket under a Channel: 'seqpacket' (SOCK_SEQPACKET, the
 * default: message boundaries kept), 'stream' (SOCK_STREAM: a message is what
 * one read returned) or 'dgram' (SOCK_DGRAM: one datagram, no connection).
 */
export type SocketType = 'seqpacket' | 'stream' | 'dgram';

/** @internal SocketType -> SOCK_* (from native), and back. */
export function sockTypeNumber(type: SocketType): number {
  return type === 'stream' ? K.SOCK_STREAM : type === 'dgram' ? K.SOCK_DGRAM : K.SOCK_SEQPACKET;
}

/** @internal SOCK_* (SO_TYPE) -> SocketType; null for a type a Channel does not take. */
export function socketType(n: number): SocketType | null {
  if (n === K.SOCK_SEQPACKET) return 'seqpacket';
  if (n === K.SOCK_STREAM) return 'stream';
  if (n === K.SOCK_DGRAM) return 'dgram';
  return null;
}

export interface ChannelOptions {
  /**
   * Most descriptors accepted per received message (0..253, default 253):
   * sizes the recvmsg control buffer. A message carrying more is refused with
   * ERR_MEMSEAL_CTRUNC and every descriptor of it that arrived is closed.
   */
  maxFds?: number;
  /**
   * Bound of the send queue in bytes (default {@link DEFAULT_MAX_QUEUED_BYTES},
   * 8 MiB): each queued message counts its payload plus
   * {@link QUEUED_MESSAGE_OVERHEAD}. A send that has to wait and would go
   * beyond it is refused at once with ERR_MEMSEAL_QUEUE_FULL, taking nothing.
   * 0: never queue.
   */
  maxQueuedBytes?: number;
  /**
   * Bound of the descriptors the send queue holds (default
   * {@link DEFAULT_MAX_QUEUED_FDS}, 1024): a queued message owns a duplicate
   * of each descriptor it carries. Beyond it: ERR_MEMSEAL_QUEUE_FULL, nothing taken.
   */
  maxQueuedFds?: number;
}

/** @internal SO_PEERCRED of a connected socket; uid/gid -1 when the kernel cannot say. */
export function peerCredentials(fd: number): PeerCredentials {
  const cred = native.peerCred(fd);
  return Object.freeze(typeof cred === 'number' ? { pid: 0, uid: -1, gid: -1 } : { pid: cred[0], uid: cred[1], gid: cred[2] });
}

/** @internal ChannelOptions, validated, with their defaults. */
export function channelOptions(options: ChannelOptions): Required<ChannelOptions> {
  validateObject(options, 'options');
  const given: ChannelOptions = options;
  const o: Required<ChannelOptions> = {
    maxFds: given.maxFds ?? MAX_FDS,
    maxQueuedBytes: given.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES,
    maxQueuedFds: given.maxQueuedFds ?? DEFAULT_MAX_QUEUED_FDS,
  };
  validateInteger(o.maxFds, 'options.maxFds', 0, MAX_FDS);
  validateInteger(o.maxQueuedBytes, 'options.maxQueuedBytes', 0, Number.MAX_SAFE_INTEGER);
  validateInteger(o.maxQueuedFds, 'options.maxQueuedFds', 0, Number.MAX_SAFE_INTEGER);
  return o;
}

// ---- sending ----

/**
 * @internal Checks the arguments of Channel#send() and sendDatagram() for a socket of `type` (TypeError/RangeError,
 * nothing sent) and returns the payload's bytes.
 */
export function sendBytes(
  data: Uint8Array | ArrayBufferView | string, fds: readonly number[], type: SocketType, payloadName = 'Channel.MAX_PAYLOAD',
): Buffer {
  const bytes = toBytes(data);
  if (bytes.byteLength > MAX_PAYLOAD) throw outOfRange('data.byteLength', `<= ${MAX_PAYLOAD} (${payloadName})`, bytes.byteLength);
  if (!Array.isArray(fds)) throw invalidArgType('fds', 'an array of file descriptors', fds);
  if (fds.length > MAX_FDS) throw outOfRange('fds.length', `<= ${MAX_FDS} (SCM_MAX_FD)`, fds.length);
  for (let i = 0; i < fds.length; i++) validateFd(fds[i], `fds[${i}]`);
  if (bytes.byteLength === 0 && type === 'stream') {
    throw outOfRange('data.byteLength', '>= 1 on a stream socket (descriptors travel with a byte; an empty write sends nothing)', 0);
  }
  if (bytes.byteLength === 0 && fds.length === 0 && type === 'seqpacket') {
    throw outOfRange('data.byteLength', '>= 1 when no descriptors are sent (an empty message reads as end-of-stream)', 0);
  }
  return bytes;
}

/**
 * @internal Channel.fromFd()'s checks of the socket it is about to adopt (an AF_UNIX
 * socket of a type it takes), then O_NONBLOCK and FD_CLOEXEC on it.
 */
export function prepareSocket(fd: number): void {
  const type = native.sockType(fd);
  if (typeof type === 'number') throw systemError(type, 'getsockopt', 'SO_TYPE', 'the descriptor is not a socket');
  if (type[0] !== K.AF_UNIX || socketType(type[1]) === null) {
    throw systemError(-E.EPROTOTYPE, 'getsockopt', 'SO_TYPE', 'a Channel needs an AF_UNIX SOCK_SEQPACKET, SOCK_STREAM or SOCK_DGRAM socket');
  }
  const r = native.setNonblockCloexec(fd);
  if (r < 0) throw systemError(r, 'fcntl', 'F_SETFL');
}

/** @internal ERR_MEMSEAL_CLOSED for Channel.<op>(). */
export function closedError(op: string): MemsealError {
  return closed(`Channel.${op}()`, 'the channel');
}

// ---- the socket ----

/**
 * @internal A poll watcher that adopts `fd` when it returns. When it throws,
 * `fd` is untouched and still the caller's: ERR_MEMSEAL_FD_IN_USE when another
 * handle of this loop watches it (uv_poll_init: EEXIST), else as epoll_ctl(2).
 */
export function openPoll(fd: number, callback: (status: number, events: number) => void): PollHandle {
  const handle = native.pollOpen(fd, callback);
  if (typeof handle !== 'number') return handle;
  // Never close `fd` here: whoever passed it still owns it when this throws. With EEXIST it
  // is another handle's socket, and closing it would pull that channel's socket from under it.
  if (handle === -E.EEXIST) {
    throw new MemsealError('ERR_MEMSEAL_FD_IN_USE',
      `descriptor ${fd} is already watched on this thread's event loop (by another Channel or a Node handle); it was left alone`,
      { hint: 'use the Channel that already owns it; a socket can belong to one Channel only' });
  }
  throw systemError(handle, 'epoll_ctl');
}

/** @internal close(2), ignoring the result: for descriptors we own and are giving up. */
export function closeQuietly(fd: number): void {
  native.close(fd);
}

/** @internal An empty descriptor list (never written to). */
export const NO_FDS = new Int32Array(0);
const ONE_FD = new Int32Array(1);

/**
 * @internal `fds` as the Int32Array a synchronous call into the addon takes, without a new typed array
 * for 0 or 1 descriptors (a scratch array: valid until the next call, never to be kept).
 */
export function fdArgs(fds: readonly number[]): Int32Array {
  if (fds.length === 0) return NO_FDS;
  if (fds.length === 1) {
    ONE_FD[0] = fds[0]!;
    return ONE_FD;
  }
  return Int32Array.from(fds);
}
