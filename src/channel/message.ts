// Message, and reading messages from the kernel: recvmsg(2) with SCM_RIGHTS and
// MSG_CMSG_CLOEXEC, as many as wait (bounded) in one call into the addon, into one
// shared receive area; the refusals of a message with too
// many descriptors (MSG_CTRUNC) or too many bytes (MSG_TRUNC), end-of-stream and
// ECONNRESET; and who owns a received message's descriptors until it is
// delivered. The receiving half of a Channel (channel.ts), which calls it.
import { native } from '../kernel/binding';
import { E, MemsealError, systemError } from '../kernel/errors';
import { type EmitterEvents } from '../util/events';
import { closeQuietly, fdArgs, MAX_FDS, MAX_PAYLOAD, type PeerCredentials, type SocketType } from './channel-util';

const K = native.channelConstants;

// One receive area per module instance (per JS thread), shared by every channel: recvBatch packs
// the payloads of a batch into it and the descriptors into batchFds; each payload is copied out at
// its exact length before any message is delivered, so a listener reading another channel cannot
// overwrite a batch still being decoded. Bounds of one batch (so one busy peer cannot starve the
// loop): BATCH_MESSAGES messages, about BATCH_BYTES bytes of payload, BATCH_FDS descriptors.
/** @internal Most messages read per batch (per wake-up of the socket). */
export const BATCH_MESSAGES = 256;
const BATCH_BYTES = 256 * 1024;
const BATCH_FDS = 1024;
const RECV_CHUNK = 8;
const SMALL_COPY = 64;  // payloads up to this many bytes are copied out byte by byte
const ENTRY = 8;  // [bytes, offset, fds stored, msg_flags, fds installed, pid, uid, gid]
const batchBuf = Buffer.allocUnsafe(BATCH_BYTES + MAX_PAYLOAD);
const batchFds = new Int32Array(BATCH_FDS + MAX_FDS);
const batchInfo = new Int32Array(2 + ENTRY * BATCH_MESSAGES);
// Who sent a refused message (bindDatagram reports it with 'dropped').
const senders = new WeakMap<Error, PeerCredentials | null>();
/** @internal recvBatch(): end-of-stream. */
export const EOF = Symbol('eof');
// ECONNRESET: the peer went while our messages sat unread in its queue. The kernel reports it
// once (sock_error clears it) before the messages the peer sent, so reading goes on after it.
/** @internal recvBatch(): ECONNRESET. */
export const RESET = Symbol('reset');

/** What a bindDatagram() socket dropped, as its `'dropped'` event says. */
export interface DroppedMessage {
  /** 'refused': `allow` turned the sender away; 'invalid': too large, or more descriptors than maxFds. */
  reason: 'refused' | 'invalid';
  /** The sender's credentials (SCM_CREDENTIALS), when the datagram carried them. */
  sender: PeerCredentials | null;
  /** For 'invalid': what was wrong (ERR_MEMSEAL_SIZE, ERR_MEMSEAL_CTRUNC, EMFILE); for 'refused': what `allow` threw, if it threw. */
  error?: Error;
}

/**
 * One received message. The receiver owns `fds` (open, close-on-exec):
 * use them, close them, or let `closeFds()` / `using` do it. `takeFds()`
 * hands them over explicitly so a later `closeFds()` leaves them alone.
 * Until the message is delivered (`receive()` settles, `'message'` is
 * emitted) its descriptors are the channel's: a worker terminated before that
 * leaks none of them; from then on they are the program's, like any fd it opened.
 */
let newMessage: (data: Buffer, fds: number[], sender: PeerCredentials | null) => Message;

export class Message {
  /** The payload, a private copy. */
  readonly data: Buffer;
  /** Descriptors that came with the message and have not been taken or closed. */
  fds: number[];
  /**
   * Who sent it (SCM_CREDENTIALS, as the kernel shows them in this process's
   * namespaces): set for a datagram received by a bindDatagram() socket, which
   * turns SO_PASSCRED on; null otherwise (a connection's `peer` says who is there).
   */
  readonly sender: PeerCredentials | null;

  // Messages come from a Channel, never from the program: decode() below is the one caller.
  private constructor(data: Buffer, fds: number[], sender: PeerCredentials | null) {
    this.data = data;
    this.fds = fds;
    this.sender = sender;
  }

  static {
    newMessage = (data, fds, sender) => new Message(data, fds, sender);
  }

  /** Returns the descriptors and forgets them: from now on the caller alone closes them. */
  takeFds(): number[] {
    const fds = this.fds;
    this.fds = [];
    return fds;
  }

  /** Closes every descriptor not taken yet (all in one call into the addon: a terminated worker closes all or none). Idempotent. */
  closeFds(): void {
    const fds = this.takeFds();
    if (fds.length > 0) native.closeAll(fdArgs(fds));
  }

  [Symbol.dispose](): void {
    this.closeFds();
  }
}

/** The events of a {@link Channel} and their listeners' arguments. */
export interface ChannelEvents extends EmitterEvents {
  /** A received message; it and its descriptors belong to the listener. */
  message: [message: Message];
  /** Once: after `close()`, or when the peer hung up (what it sent before can still be received). */
  close: [];
  /** A refused incoming message (ERR_MEMSEAL_CTRUNC, ERR_MEMSEAL_SIZE) while `'message'` listeners are attached. */
  error: [error: Error];
  /** The send queue has emptied: its messages sent, or rejected by `close()` or a hang-up. */
  drain: [];
  /** A bindDatagram() socket dropped a datagram (a refused sender, or an invalid datagram): not an error. */
  dropped: [info: DroppedMessage];
}

/** @internal A pending receive(). */
export interface Waiter {
  resolve: (m: Message) => void;
  reject: (err: Error) => void;
  handOver: boolean;  // a receive() by the program (else memseal's own, which adopts the descriptors)
}

/**
 * @internal Channel#[receiveOwned]() is receive() for memseal's own callers
 * (receiveBuffer): the descriptors stay tracked natively, closed if the
 * environment is torn down, until the caller adopts (fdOpen) or closes them.
 */
export const receiveOwned: unique symbol = Symbol('memseal.receiveOwned');

/**
 * @internal A received message's descriptors are the channel's (closed with the worker
 * or process environment if it is torn down first) until the program gets the
 * message: from then on they are the program's, like any fd it opened.
 */
export function handOver(m: Message): Message {
  // all in one call into the addon: a worker terminated here leaves every one tracked or none
  if (m.fds.length > 0) native.untrackAll(fdArgs(m.fds));
  return m;
}

/** @internal What reading a socket yields: a message, an error about a bad message, end-of-stream or ECONNRESET. */
export type Received = Message | Error | typeof EOF | typeof RESET;

/**
 * @internal One recvmsg on `fd` (room for `maxFds` descriptors): a message, an error about a bad
 * message, null (nothing yet), EOF or RESET.
 */
export function recvMessage(fd: number, maxFds: number, type: SocketType): Received | null {
  const batch = recvBatch(fd, 1, maxFds, type);
  return batch.length === 0 ? null : batch[0]!;
}

/**
 * @internal Drains `fd` in one call into the addon: up to `maxMsgs` messages (and the batch
 * bounds), in order. The last item may be EOF, RESET or a system error that ended the batch;
 * an empty array means nothing was waiting. Every descriptor received belongs to one item
 * (tracked natively until delivered); a refused message's were closed by the addon.
 */
export function recvBatch(fd: number, maxMsgs: number, maxFds: number, type: SocketType): Received[] {
  // recvmmsg takes up to RECV_CHUNK messages per system call; a datagram socket one (see recvBatch in socket.cc)
  const chunk = type === 'dgram' ? 1 : RECV_CHUNK;
  const n = native.recvBatch(fd, batchBuf, batchFds, batchInfo, Math.min(maxMsgs, BATCH_MESSAGES), maxFds, MAX_PAYLOAD, chunk);
  const items: Received[] = new Array<Received>(n);
  for (let i = 0, fdAt = 0; i < n; i++) {
    const e = 2 + i * ENTRY;
    const nfds = batchInfo[e + 2]!;
    // a plain loop: a subarray() view and Array.from() cost more than the message's own work
    const fds: number[] = [];
    for (let k = 0; k < nfds; k++) fds.push(batchFds[fdAt + k]!);
    items[i] = decode(e, fds, maxFds, type);
    fdAt += nfds;
  }
  const end = batchInfo[1]!;
  if (end === -E.ECONNRESET) items.push(RESET);
  else if (end < 0 && end !== -E.EAGAIN) items.push(systemError(end, 'recvmsg'));
  return items;
}

/** One message of the batch, from its entry at batchInfo[e]: the checks of every message, in order. */
function decode(e: number, fds: number[], maxFds: number, type: SocketType): Received {
  const r = batchInfo[e]!;
  const flags = batchInfo[e + 3]!;
  const installed = batchInfo[e + 4]!;
  const sender = batchInfo[e + 5]! < 0 ? null : { pid: batchInfo[e + 5]!, uid: batchInfo[e + 6]! >>> 0, gid: batchInfo[e + 7]! >>> 0 };
  const refuse = (err: Error): Error => {
    for (const fd of fds) closeQuietly(fd);
    senders.set(err, sender);
    return err;
  };
  if ((flags & K.MSG_CTRUNC) !== 0) {
    // The kernel stops installing descriptors when this process has no slot left (scm_detach_fds):
    // fewer than the control buffer holds means RLIMIT_NOFILE, not maxFds.
    if (installed < maxFds) {
      return refuse(systemError(-E.EMFILE, 'recvmsg', undefined,
        `this process ran out of file descriptors (RLIMIT_NOFILE, ulimit -n) while receiving a message's descriptors: ` +
        `it was dropped and the ${installed} that arrived were closed; raise the limit or hold fewer descriptors`));
    }
    return refuse(new MemsealError('ERR_MEMSEAL_CTRUNC',
      `a message carried more file descriptors than this channel accepts (maxFds ${maxFds}): every one that arrived was closed`,
      { hint: 'raise channel.maxFds (up to 253) if the peer is meant to send that many' }));
  }
  if ((flags & K.MSG_TRUNC) !== 0 || r > MAX_PAYLOAD) {
    return refuse(new MemsealError('ERR_MEMSEAL_SIZE',
      `a message of ${r} bytes exceeds Channel.MAX_PAYLOAD (${MAX_PAYLOAD}): dropped, its descriptors closed`));
  }
  if (r === 0 && fds.length === 0 && type !== 'dgram') return EOF;  // an empty datagram is a message
  const data = Buffer.allocUnsafe(r);
  const at = batchInfo[e + 1]!;
  if (r <= SMALL_COPY) {
    for (let k = 0; k < r; k++) data[k] = batchBuf[at + k]!;  // Buffer#copy() makes a view first
  } else {
    batchBuf.copy(data, 0, at, at + r);
  }
  return newMessage(data, fds, sender);
}

/** @internal The sender's credentials of a refused message, when it carried them. */
export function senderOf(err: Error): PeerCredentials | null {
  return senders.get(err) ?? null;
}

/**
 * @internal A Channel with this hook runs every message read (recvBatch, recvMessage) through it first
 * (bindDatagram: drops what strangers send); null means the message was dropped.
 */
export const screenIncoming: unique symbol = Symbol('memseal.screenIncoming');
/** @internal Counts a dropped incoming message and emits 'dropped'. */
export const dropIncoming: unique symbol = Symbol('memseal.dropIncoming');

/** @internal After a hang-up: whether a message is still unread (MSG_PEEK: nothing is taken, no descriptor installed). */
export function somethingLeft(fd: number): boolean {
  for (let resets = 0; ; resets++) {
    const r = native.recvPeek(fd);
    if (r === -E.ECONNRESET && resets < 3) continue;
    return r === 1;
  }
}
