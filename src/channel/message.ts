// Message, and reading one from the kernel: recvmsg(2) with SCM_RIGHTS and
// MSG_CMSG_CLOEXEC into one scratch buffer, the refusals of a message with too
// many descriptors (MSG_CTRUNC) or too many bytes (MSG_TRUNC), end-of-stream and
// ECONNRESET; and who owns a received message's descriptors until it is
// delivered. The receiving half of a Channel (channel.ts), which calls it.
import { native } from '../kernel/binding';
import { E, MemsealError, systemError } from '../kernel/errors';
import { closeQuietly, MAX_PAYLOAD, type PeerCredentials, type SocketType } from './channel-util';

const K = native.channelConstants;

// One receive buffer per module instance (per JS thread): recvmsg copies into
// it and the payload is copied out at its exact length.
const scratch = Buffer.allocUnsafe(MAX_PAYLOAD);
// [fds stored, msg_flags, fds the kernel installed, sender pid (-1: none), uid, gid]
const recvInfo = new Int32Array(6);
/** @internal recvMessage(): end-of-stream. */
export const EOF = Symbol('eof');
// ECONNRESET: the peer went while our messages sat unread in its queue. The kernel reports it
// once (sock_error clears it) before the messages the peer sent, so reading goes on after it.
/** @internal recvMessage(): ECONNRESET. */
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

  // Messages come from a Channel, never from the program: recvMessage() below is the one caller.
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

  /** Closes every descriptor not taken yet. Idempotent. */
  closeFds(): void {
    for (const fd of this.takeFds()) closeQuietly(fd);
  }

  [Symbol.dispose](): void {
    this.closeFds();
  }
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
  for (const fd of m.fds) native.untrack(fd);
  return m;
}

/**
 * @internal One recvmsg on `fd` into `fdBuf` (room for `maxFds` descriptors): a message,
 * an error about a bad message, null (nothing yet), EOF or RESET.
 */
export function recvMessage(fd: number, fdBuf: Int32Array, maxFds: number, type: SocketType): Message | Error | null | typeof EOF | typeof RESET {
  const r = native.recvmsg(fd, scratch, fdBuf, recvInfo);
  if (r < 0) {
    if (r === -E.EAGAIN) return null;
    if (r === -E.ECONNRESET) return RESET;
    return systemError(r, 'recvmsg');
  }
  const nfds = recvInfo[0]!;
  const flags = recvInfo[1]!;
  const fds: number[] = [];
  for (let i = 0; i < nfds; i++) fds.push(fdBuf[i]!);
  if ((flags & K.MSG_CTRUNC) !== 0) {
    for (const fd of fds) closeQuietly(fd);
    // The kernel stops installing descriptors when this process has no slot left (scm_detach_fds):
    // fewer than the control buffer holds means RLIMIT_NOFILE, not maxFds.
    if (recvInfo[2]! < maxFds) {
      return systemError(-E.EMFILE, 'recvmsg', undefined,
        `this process ran out of file descriptors (RLIMIT_NOFILE, ulimit -n) while receiving a message's descriptors: ` +
        `it was dropped and the ${recvInfo[2]} that arrived were closed; raise the limit or hold fewer descriptors`);
    }
    return new MemsealError('ERR_MEMSEAL_CTRUNC',
      `a message carried more file descriptors than this channel accepts (maxFds ${maxFds}): every one that arrived was closed`,
      { hint: 'raise channel.maxFds (up to 253) if the peer is meant to send that many' });
  }
  if ((flags & K.MSG_TRUNC) !== 0 || r > scratch.length) {
    for (const fd of fds) closeQuietly(fd);
    return new MemsealError('ERR_MEMSEAL_SIZE',
      `a message of ${r} bytes exceeds Channel.MAX_PAYLOAD (${MAX_PAYLOAD}): dropped, its descriptors closed`);
  }
  if (r === 0 && nfds === 0 && type !== 'dgram') return EOF;  // an empty datagram is a message
  const data = Buffer.allocUnsafe(r);
  scratch.copy(data, 0, 0, r);
  return newMessage(data, fds, lastSender());
}

/** @internal The sender's credentials of the message (or refusal) recvMessage() just returned, if it carried them. */
export function lastSender(): PeerCredentials | null {
  return recvInfo[3]! < 0 ? null : { pid: recvInfo[3]!, uid: recvInfo[4]! >>> 0, gid: recvInfo[5]! >>> 0 };
}

/**
 * @internal A Channel with this hook runs every recvMessage() result through it first
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
