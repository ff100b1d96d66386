// Channel and Message: one AF_UNIX socket passing file descriptors between
// processes (unix(7)): SOCK_SEQPACKET by default (message boundaries kept,
// connection-oriented), also SOCK_STREAM and SOCK_DGRAM (docs/protocol.md), sendmsg(2)/recvmsg(2) with SCM_RIGHTS, driven by a
// libuv poll watcher so no call blocks the loop. Listening and connecting live
// in channel-server.ts, the spawn protocol in spawn.ts, and the SealedBuffer
// methods (sendBuffer/receiveBuffer) in sealed.ts: the transport imports none of them.
// Minimum kernel for everything here: Linux 2.6.28 (SOCK_SEQPACKET for AF_UNIX
// 2.6.4, SOCK_NONBLOCK/SOCK_CLOEXEC 2.6.27, MSG_CMSG_CLOEXEC 2.6.23, accept4
// 2.6.28); SCM_MAX_FD is 253 since 2.6.38 (255 before).
import { native, type PollHandle } from './binding';
import { closedError as closed, E, illegalConstructor, invalidArgType, MemsealError, outOfRange, systemError, type SystemError } from './errors';
import { type EmitterEvents, TypedEventEmitter } from './events';
import { Queue } from './queue';
import { toBytes, validateFd, validateInteger, validateObject } from './validate';

const K = native.channelConstants;
const P = native.pollConstants;
const construct = Symbol('Channel.construct');

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

// One receive buffer per module instance (per JS thread): recvmsg copies into
// it and the payload is copied out at its exact length.
const scratch = Buffer.allocUnsafe(MAX_PAYLOAD);
const recvInfo = new Int32Array(3); // [fds stored, msg_flags, fds the kernel installed]
const EOF = Symbol('eof');
// ECONNRESET: the peer went while our messages sat unread in its queue. The kernel reports it
// once (sock_error clears it) before the messages the peer sent, so reading goes on after it.
const RESET = Symbol('reset');

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

function socketType(n: number): SocketType | null {
  if (n === K.SOCK_SEQPACKET) return 'seqpacket';
  if (n === K.SOCK_STREAM) return 'stream';
  if (n === K.SOCK_DGRAM) return 'dgram';
  return null;
}

const NO_FDS = new Int32Array(0);

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

/**
 * One received message. The receiver owns `fds` (open, close-on-exec):
 * use them, close them, or let `closeFds()` / `using` do it. `takeFds()`
 * hands them over explicitly so a later `closeFds()` leaves them alone.
 * Until the message is delivered (`receive()` settles, `'message'` is
 * emitted) its descriptors are the channel's: a worker terminated before that
 * leaks none of them; from then on they are the program's, like any fd it opened.
 */
export class Message {
  /** The payload, a private copy. */
  readonly data: Buffer;
  /** Descriptors that came with the message and have not been taken or closed. */
  fds: number[];

  constructor(data: Buffer, fds: number[]) {
    this.data = data;
    this.fds = fds;
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

interface SendJob {
  data: Uint8Array;
  fds: Int32Array;        // duplicates the job owns (F_DUPFD_CLOEXEC), closed when it settles
  cost: number;           // what it counts in queuedBytes
  resolve: () => void;
  reject: (err: Error) => void;
}

interface Waiter {
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
 * A received message's descriptors are the channel's (closed with the worker
 * or process environment if it is torn down first) until the program gets the
 * message: from then on they are the program's, like any fd it opened.
 */
function handOver(m: Message): Message {
  for (const fd of m.fds) native.untrack(fd);
  return m;
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
}

/**
 * One end of a SOCK_SEQPACKET connection. Each `send()` is one message: up to
 * {@link MAX_PAYLOAD} bytes and up to 253 descriptors, delivered whole or not
 * at all, in order. Received messages arrive as `'message'` events, through
 * `receive()`, or through `for await`. The channel reads from the kernel only
 * while someone wants messages (a `'message'` listener, a pending
 * `receive()`), so an unread channel pushes back on its sender.
 *
 * Events: `'message'` (Message), `'close'` (after `close()` or when the peer
 * hung up), `'error'` (a bad incoming message while `'message'` listeners
 * are attached: ERR_MEMSEAL_CTRUNC, ERR_MEMSEAL_SIZE), `'drain'` (the send
 * queue has emptied: sent, or failed by close() or a hang-up).
 *
 * Sends that have to wait for the kernel are queued, up to
 * {@link ChannelOptions.maxQueuedBytes} and {@link ChannelOptions.maxQueuedFds};
 * a queued message owns duplicates of its descriptors, so the caller's may be
 * closed as soon as `send()` returns.
 *
 * @example
 * ```ts
 * import { socketPair } from 'memseal';
 * const [a, b] = socketPair();
 * b.on('message', (m) => { console.log(m.data.toString(), m.fds); m.closeFds(); });
 * await a.send('hello');
 * ```
 */
export class Channel extends TypedEventEmitter<ChannelEvents> {
  /** Most payload bytes per message: 65536. */
  static readonly MAX_PAYLOAD = MAX_PAYLOAD;
  /** Most descriptors per message: 253 (SCM_MAX_FD). */
  static readonly MAX_FDS = MAX_FDS;

  #fd: number;
  #handle: PollHandle | null;
  #events = 0;
  #peer: PeerCredentials;
  #maxFds: number;
  #fdBuf: Int32Array;
  #sendq = new Queue<SendJob>();
  #queuedBytes = 0;
  #queuedFds = 0;
  #maxQueuedBytes: number;
  #maxQueuedFds: number;
  #drained: (() => void)[] = [];  // asyncDispose waiting for the send queue to empty
  #recvq = new Queue<Message | Error>();  // read from the kernel, not delivered yet
  #waiters = new Queue<Waiter>();
  #closed = false;       // by close() or because the peer hung up
  #peerGone = false;     // hung up: the socket stays open only while it holds unread messages
  #type: SocketType;

  /**
   * Not public: use socketPair(), connect(), Channel.fromFd() or spawnWithChannel().
   * Adopts `fd` only when it returns: if it throws, the caller still owns `fd`.
   */
  private constructor(token: symbol, fd: number, options: ChannelOptions = {}, peer?: PeerCredentials) {
    if (token !== construct) throw illegalConstructor('socketPair(), connect() or Channel.fromFd()');
    super();
    const o = channelOptions(options);
    this.#maxFds = o.maxFds;
    this.#maxQueuedBytes = o.maxQueuedBytes;
    this.#maxQueuedFds = o.maxQueuedFds;
    this.#fdBuf = new Int32Array(o.maxFds);
    this.#peer = peer ?? peerCredentials(fd);
    const kind = native.sockType(fd);
    this.#type = (typeof kind === 'number' ? null : socketType(kind[1])) ?? 'seqpacket';
    const handle = openPoll(fd, (status, events) => this.#onPoll(status, events));
    this.#fd = fd;
    this.#handle = handle;
    this.on('newListener', (event) => {
      if (event === 'message') process.nextTick(() => this.#update());
    });
    this.on('removeListener', (event) => {
      if (event === 'message') this.#update();
    });
    this.#update();
  }

  /**
   * Adopts an AF_UNIX socket (inherited, or made elsewhere): a connected
   * SOCK_SEQPACKET or SOCK_STREAM socket, or a SOCK_DGRAM socket (bound to
   * receive, or connected); the type is read with getsockopt(SO_TYPE) and is
   * `channel.type`. The channel owns the socket once this returns and sets
   * O_NONBLOCK and FD_CLOEXEC on it. If it throws, for any reason, the
   * descriptor is left open and is still the caller's.
   * @throws ENOTSOCK/EBADF (getsockopt), EPROTOTYPE if it is not one of those,
   *   MemsealError ERR_MEMSEAL_FD_IN_USE if a Channel (or another handle of this
   *   thread's event loop) already watches it, RangeError/TypeError for bad arguments
   */
  static fromFd(fd: number, options?: ChannelOptions): Channel {
    validateFd(fd);
    if (options !== undefined) channelOptions(options);
    const type = native.sockType(fd);
    if (typeof type === 'number') throw systemError(type, 'getsockopt', 'SO_TYPE', 'the descriptor is not a socket');
    if (type[0] !== K.AF_UNIX || socketType(type[1]) === null) {
      throw systemError(-E.EPROTOTYPE, 'getsockopt', 'SO_TYPE', 'a Channel needs an AF_UNIX SOCK_SEQPACKET, SOCK_STREAM or SOCK_DGRAM socket');
    }
    const r = native.setNonblockCloexec(fd);
    if (r < 0) throw systemError(r, 'fcntl', 'F_SETFL');
    return new Channel(construct, fd, options);
  }

  /**
   * The channel {@link spawnWithChannel} gave this process (descriptor number
   * in the MEMSEAL_CHANNEL_FD environment variable, which is then removed so
   * this process's own children do not inherit the claim). Calling it again
   * returns the same channel.
   * @throws MemsealError ERR_MEMSEAL_NO_CHANNEL when this process was not started by spawnWithChannel
   */
  // Assigned by spawn.ts, which keeps the claimed channel: the spawn protocol sits above the transport.
  declare static fromParent: (options?: ChannelOptions) => Channel;

  /** The socket's descriptor; -1 once closed. */
  get fd(): number { return this.#closed ? -1 : this.#fd; }
  /** Closed by `close()` or because the peer hung up. Messages already read may still be `receive()`d. */
  get closed(): boolean { return this.#closed; }
  /** The peer's pid/uid/gid when it connected (SO_PEERCRED). For socketPair(), this process. */
  get peer(): PeerCredentials { return this.#peer; }
  /** The socket's type (SO_TYPE): 'seqpacket', 'stream' or 'dgram'. */
  get type(): SocketType { return this.#type; }
  /** Messages waiting to be sent because the kernel's send buffer is full. */
  get pendingSends(): number { return this.#sendq.length; }
  /** What the send queue holds, in bytes: payloads plus {@link QUEUED_MESSAGE_OVERHEAD} per message. */
  get queuedBytes(): number { return this.#queuedBytes; }
  /** Descriptors the send queue holds (its own duplicates, one per descriptor of each queued message). */
  get queuedFds(): number { return this.#queuedFds; }

  /** Bound of {@link queuedBytes}; see {@link ChannelOptions.maxQueuedBytes}. Lowering it refuses new sends only. */
  get maxQueuedBytes(): number { return this.#maxQueuedBytes; }
  set maxQueuedBytes(value: number) {
    validateInteger(value, 'maxQueuedBytes', 0, Number.MAX_SAFE_INTEGER);
    this.#maxQueuedBytes = value;
  }

  /** Bound of {@link queuedFds}; see {@link ChannelOptions.maxQueuedFds}. Lowering it refuses new sends only. */
  get maxQueuedFds(): number { return this.#maxQueuedFds; }
  set maxQueuedFds(value: number) {
    validateInteger(value, 'maxQueuedFds', 0, Number.MAX_SAFE_INTEGER);
    this.#maxQueuedFds = value;
  }

  /** Most descriptors accepted per received message (0..253); see {@link ChannelOptions.maxFds}. */
  get maxFds(): number { return this.#maxFds; }
  set maxFds(value: number) {
    validateInteger(value, 'maxFds', 0, MAX_FDS);
    this.#maxFds = value;
    this.#fdBuf = new Int32Array(value);
  }

  /**
   * Sends one message: sendmsg(2) with SCM_RIGHTS and MSG_NOSIGNAL. The kernel
   * duplicates the descriptors into the receiver; the caller keeps its own.
   * Resolves once the kernel has taken the message. When the send buffer is
   * full the message is queued and sent when the socket becomes writable;
   * queued messages go out in order. A queued message owns copies of what it
   * carries: the payload, and a duplicate of each descriptor
   * (fcntl(F_DUPFD_CLOEXEC)), so the caller may reuse its buffer and close its
   * descriptors as soon as this returns. The queue is bounded
   * ({@link ChannelOptions.maxQueuedBytes}, {@link ChannelOptions.maxQueuedFds}).
   * @param data at most {@link MAX_PAYLOAD} bytes; a string is sent as UTF-8.
   *   Empty data is allowed only with descriptors (an empty message reads as end-of-stream).
   * @param fds at most 253 open descriptors
   * @rejects RangeError/TypeError for bad arguments (nothing sent); EBADF if a
   *   descriptor is not open (nothing sent); MemsealError ERR_MEMSEAL_QUEUE_FULL
   *   when the message would have to wait and the queue is at its bound (nothing
   *   taken; wait for `'drain'`); EMFILE when duplicating for the queue fails;
   *   EPIPE when the peer is gone; MemsealError ERR_MEMSEAL_CLOSED after close()
   */
  send(data: Uint8Array | ArrayBufferView | string, fds: readonly number[] = []): Promise<void> {
    try {
      const bytes = toBytes(data);
      if (bytes.byteLength > MAX_PAYLOAD) throw outOfRange('data.byteLength', `<= ${MAX_PAYLOAD} (Channel.MAX_PAYLOAD)`, bytes.byteLength);
      if (!Array.isArray(fds)) throw invalidArgType('fds', 'an array of file descriptors', fds);
      if (fds.length > MAX_FDS) throw outOfRange('fds.length', `<= ${MAX_FDS} (SCM_MAX_FD)`, fds.length);
      for (let i = 0; i < fds.length; i++) validateFd(fds[i], `fds[${i}]`);
      if (bytes.byteLength === 0 && this.#type === 'stream') {
        throw outOfRange('data.byteLength', '>= 1 on a stream socket (descriptors travel with a byte; an empty write sends nothing)', 0);
      }
      if (bytes.byteLength === 0 && fds.length === 0 && this.#type === 'seqpacket') {
        throw outOfRange('data.byteLength', '>= 1 when no descriptors are sent (an empty message reads as end-of-stream)', 0);
      }
      if (this.#closed) throw closedError('send');
      const fdArr = Int32Array.from(fds);
      let sent = 0;
      if (this.#sendq.length === 0) {
        const r = native.sendmsg(this.#fd, bytes, fdArr);
        if (r >= bytes.byteLength) return Promise.resolve();
        if (r < 0 && r !== -E.EAGAIN) throw sendError(r);
        sent = Math.max(r, 0);  // a stream took a prefix (and the descriptors with it)
      }
      const cost = bytes.byteLength + QUEUED_MESSAGE_OVERHEAD;
      // A stream that took a prefix took the descriptors with it; the rest must follow whatever the bound.
      const owned = sent > 0 ? NO_FDS : fdArr;
      if (sent === 0 && (this.#queuedBytes + cost > this.#maxQueuedBytes || this.#queuedFds + owned.length > this.#maxQueuedFds)) {
        throw queueFullError(this, cost, owned.length);
      }
      // A queued message must never refer to a descriptor number it does not own: the caller may
      // close its descriptor as soon as send() returns and the number may then name another file.
      dupAll(owned);
      // the caller may reuse its buffer once send() returns; a string's bytes are ours already
      const rest = bytes.subarray(sent);
      const copy = typeof data === 'string' ? rest : Buffer.from(rest);
      const p = new Promise<void>((resolve, reject) => {
        this.#sendq.push({ data: copy, fds: owned, cost, resolve, reject });
      });
      this.#queuedBytes += cost;
      this.#queuedFds += owned.length;
      this.#update();
      return p;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * The next message. Tries recvmsg(2) at once, else waits for one. Pending
   * `receive()` calls are served before `'message'` listeners.
   * @rejects MemsealError ERR_MEMSEAL_CLOSED once closed and every message read is delivered;
   *   ERR_MEMSEAL_CTRUNC (more descriptors than maxFds: the message is dropped, its
   *   descriptors closed); ERR_MEMSEAL_SIZE (payload over MAX_PAYLOAD from a foreign peer: dropped)
   */
  receive(): Promise<Message> {
    return this.#receive(true);
  }

  /** @internal receive() whose descriptors stay tracked until the caller adopts them (see receiveOwned). */
  [receiveOwned](): Promise<Message> {
    return this.#receive(false);
  }

  #receive(handOverFds: boolean): Promise<Message> {
    const give = handOverFds ? handOver : (m: Message) => m;
    const queued = this.#recvq.shift();
    if (queued !== undefined) return queued instanceof Message ? Promise.resolve(give(queued)) : Promise.reject(queued);
    if (this.#closed) {
      // after a hang-up, what the peer left in the socket is read one message per request
      const m = this.#recvLeft();
      if (m === null) return Promise.reject(closedError('receive'));
      return m instanceof Message ? Promise.resolve(give(m)) : Promise.reject(m);
    }
    if (this.#waiters.length === 0) {
      const m = this.#recv();
      if (m instanceof Message) return Promise.resolve(give(m));
      if (m instanceof Error) return Promise.reject(m);
      if (m === EOF || m === RESET) {
        const p = new Promise<Message>((resolve, reject) => this.#waiters.push({ resolve, reject, handOver: handOverFds }));
        this.#hangup();
        return p;
      }
    }
    return new Promise<Message>((resolve, reject) => {
      this.#waiters.push({ resolve, reject, handOver: handOverFds });
      this.#update();
    });
  }

  /**
   * `for await (const message of channel)`: messages until the channel closes.
   * Leaving the loop early leaves the channel open.
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<Message, void, undefined> {
    for (;;) {
      let m: Message;
      try {
        m = await this.receive();
      } catch (err) {
        if ((err as MemsealError).code === 'ERR_MEMSEAL_CLOSED') return;
        throw err;
      }
      yield m;
    }
  }


  /** Lets the channel keep the event loop alive (the default). */
  ref(): this {
    if (this.#handle !== null) native.pollRef(this.#handle, true);
    return this;
  }

  /** An idle channel no longer keeps the process alive (uv_unref). */
  unref(): this {
    if (this.#handle !== null) native.pollRef(this.#handle, false);
    return this;
  }

  /**
   * Closes the socket (the peer sees a hang-up), rejects pending sends and
   * receives with ERR_MEMSEAL_CLOSED and closes every received descriptor
   * still inside the channel (messages read but not delivered). Messages a
   * peer that hung up left unread die with the socket (the kernel closes their
   * descriptors). Descriptors of delivered messages belong to their receiver
   * and are not touched. Idempotent; `'close'` follows on the next tick.
   */
  close(): void {
    if (this.#closed) {
      this.#release();
      this.#discardQueued();
      return;
    }
    this.#closed = true;
    this.#release();
    this.#failQueued(() => closedError('send'));
    for (const w of this.#waiters.drain()) w.reject(closedError('receive'));
    this.#discardQueued();
    process.nextTick(() => this.emit('close'));
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Waits for queued sends to go out (or fail), then closes. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#sendq.length > 0 && !this.#closed) await new Promise<void>((resolve) => this.#drained.push(resolve));
    this.close();
  }

  // ---- internals ----

  #wantRead(): boolean {
    return this.#waiters.length > 0 || this.listenerCount('message') > 0;
  }

  /**
   * Arms the watcher for what is wanted. READABLE is disarmed lazily (only
   * when `strict`, i.e. a readable event found nobody wanting messages): in
   * request/response use that saves an epoll_ctl pair per receive().
   */
  #update(strict = false): void {
    // messages read before the peer hung up, for listeners added later
    while (this.#recvq.length > 0 && this.listenerCount('message') > 0) this.#deliver(this.#recvq.shift()!);
    if (this.#closed) {
      if (this.listenerCount('message') > 0) this.#serveLeft();  // a listener asks for all the peer left
      return;
    }
    if (this.#handle === null) return;
    let events = P.UV_DISCONNECT | (this.#wantRead() ? P.UV_READABLE : 0) | (this.#sendq.length > 0 ? P.UV_WRITABLE : 0);
    if (!strict) events |= this.#events & P.UV_READABLE;
    if (events === this.#events) return;
    this.#events = events;
    const r = native.pollStart(this.#handle, events);
    if (r < 0) process.nextTick(() => this.emit('error', systemError(r, 'epoll_ctl')));
  }

  #onPoll(status: number, events: number): void {
    if (this.#closed) return;
    if (status < 0) {
      // POLLERR (ECONNRESET: the peer went with our messages unread); libuv stopped the watcher
      this.#events = 0;
      this.#hangup();
      return;
    }
    if ((events & P.UV_WRITABLE) !== 0) this.#flush();
    if ((events & P.UV_READABLE) !== 0 && !this.#closed) this.#readSome();
    if ((events & P.UV_DISCONNECT) !== 0 && !this.#closed) this.#hangup();
  }

  /** One recvmsg: a message, an error about a bad message, null (nothing yet), EOF or RESET. */
  #recv(): Message | Error | null | typeof EOF | typeof RESET {
    const fdBuf = this.#fdBuf;
    const r = native.recvmsg(this.#fd, scratch, fdBuf, recvInfo);
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
      if (recvInfo[2]! < this.#maxFds) {
        return systemError(-E.EMFILE, 'recvmsg', undefined,
          `this process ran out of file descriptors (RLIMIT_NOFILE, ulimit -n) while receiving a message's descriptors: ` +
          `it was dropped and the ${recvInfo[2]} that arrived were closed; raise the limit or hold fewer descriptors`);
      }
      return new MemsealError('ERR_MEMSEAL_CTRUNC',
        `a message carried more file descriptors than this channel accepts (maxFds ${this.#maxFds}): every one that arrived was closed`,
        { hint: 'raise channel.maxFds (up to 253) if the peer is meant to send that many' });
    }
    if ((flags & K.MSG_TRUNC) !== 0 || r > scratch.length) {
      for (const fd of fds) closeQuietly(fd);
      return new MemsealError('ERR_MEMSEAL_SIZE',
        `a message of ${r} bytes exceeds Channel.MAX_PAYLOAD (${MAX_PAYLOAD}): dropped, its descriptors closed`);
    }
    if (r === 0 && nfds === 0 && this.#type !== 'dgram') return EOF;  // an empty datagram is a message
    const data = Buffer.allocUnsafe(r);
    scratch.copy(data, 0, 0, r);
    return new Message(data, fds);
  }

  #deliver(m: Message | Error): void {
    const w = this.#waiters.shift();
    if (w !== undefined) {
      if (m instanceof Message) w.resolve(w.handOver ? handOver(m) : m);
      else w.reject(m);
    } else if (this.listenerCount('message') > 0) {
      if (m instanceof Message) this.emit('message', handOver(m));
      else this.emit('error', m);
    } else {
      this.#recvq.push(m);
    }
  }

  #readSome(): void {
    if (!this.#wantRead()) {
      this.#update(true);  // readable, but nobody wants messages: leave them in the kernel
      return;
    }
    // bounded so one busy channel cannot starve the rest of the loop; the poll is level-triggered
    for (let i = 0; i < 256 && !this.#closed && this.#wantRead(); i++) {
      const m = this.#recv();
      if (m === null) return;
      if (m === EOF || m === RESET) {
        this.#hangup();
        return;
      }
      this.#deliver(m);
    }
    this.#update();
  }

  #flush(): void {
    const had = this.#sendq.length > 0;
    while (this.#sendq.length > 0 && !this.#closed) {
      const job = this.#sendq.peek()!;
      const r = native.sendmsg(this.#fd, job.data, job.fds);
      if (r === -E.EAGAIN) break;
      if (r >= 0 && r < job.data.byteLength) {
        // a stream took a prefix and the descriptors with it: the rest goes next, alone
        job.data = job.data.subarray(r);
        for (const fd of job.fds) closeQuietly(fd);  // our duplicates: the kernel holds its own now
        this.#queuedFds -= job.fds.length;
        job.fds = NO_FDS;
        continue;
      }
      this.#sendq.shift();
      this.#dequeued(job);
      if (r >= 0) job.resolve();
      else job.reject(sendError(r));
    }
    const drained = had && this.#sendq.length === 0;
    if (drained) for (const done of this.#drained.splice(0)) done();
    this.#update();
    if (drained && !this.#closed) this.emit('drain');
  }

  /** A job left the queue: its duplicates are closed (the kernel holds its own references once sent). */
  #dequeued(job: SendJob): void {
    for (const fd of job.fds) closeQuietly(fd);
    this.#queuedBytes -= job.cost;
    this.#queuedFds -= job.fds.length;
  }

  /**
   * Rejects every queued send (the channel closed or the peer went). 'drain'
   * follows too, so a sender waiting for it wakes up (and its next send rejects).
   */
  #failQueued(error: () => Error): void {
    const jobs = this.#sendq.drain();
    for (const job of jobs) {
      this.#dequeued(job);
      job.reject(error());
    }
    for (const done of this.#drained.splice(0)) done();
    if (jobs.length > 0) process.nextTick(() => this.emit('drain'));
  }

  /**
   * The peer hung up (end-of-stream, EPOLLRDHUP or ECONNRESET). Sending is over;
   * what the peer sent before it went is read only as far as someone asks (a
   * pending receive(), a 'message' listener): a peer cannot make this process
   * hold more descriptors than its receiver takes. Messages nobody takes die
   * with the socket when close() releases it (or at once if nothing is left).
   */
  #hangup(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#peerGone = true;
    this.#events = 0;
    if (this.#handle !== null) native.pollStart(this.#handle, 0);  // a level-triggered hang-up would spin
    this.#failQueued(() => sendError(-E.EPIPE));
    this.#serveLeft();
    if (this.#handle !== null && !this.#somethingLeft()) this.#release();
    process.nextTick(() => this.emit('close'));
  }

  /** After a hang-up: hands what the peer left to pending receive() calls and 'message' listeners. */
  #serveLeft(): void {
    // bounded per turn of the loop, like #readSome: a listener asks for everything, but not all at once
    for (let budget = 256; this.#handle !== null && this.#wantRead(); budget--) {
      if (budget === 0) {
        setImmediate(() => this.#serveLeft());
        return;
      }
      const m = this.#recvLeft();
      if (m === null) break;
      this.#deliver(m);
    }
    if (this.#handle === null) for (const w of this.#waiters.drain()) w.reject(closedError('receive'));
  }

  /** After a hang-up: the next message the peer left, or null at the end (the socket is then released). */
  #recvLeft(): Message | Error | null {
    for (let resets = 0; this.#peerGone && this.#handle !== null;) {
      const m = this.#recv();
      if (m === RESET && ++resets < 3) continue;
      if (m instanceof Message || m instanceof MemsealError) return m;  // a refused message: the next may be fine
      this.#release();  // end-of-stream, or the socket itself failed
      return m instanceof Error ? m : null;
    }
    return null;
  }

  /** After a hang-up: whether a message is still unread (MSG_PEEK: nothing is taken, no descriptor installed). */
  #somethingLeft(): boolean {
    for (let resets = 0; ; resets++) {
      const r = native.recvPeek(this.#fd);
      if (r === -E.ECONNRESET && resets < 3) continue;
      return r === 1;
    }
  }

  /** Closes the socket, once; unread messages in it die with it and the kernel closes their descriptors. */
  #release(): void {
    const handle = this.#handle;
    this.#handle = null;
    if (handle !== null) native.pollClose(handle);
  }

  #discardQueued(): void {
    for (const m of this.#recvq.drain()) if (m instanceof Message) m.closeFds();
  }
}


/**
 * A connected pair: socketpair(2) (AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK |
 * SOCK_CLOEXEC; Linux 2.6.27). Handy in one process, or to hand one end to a
 * child yourself.
 * @throws EMFILE/ENFILE
 */
export function socketPair(options?: ChannelOptions): [Channel, Channel] {
  if (options !== undefined) channelOptions(options);
  const r = native.socketpair();
  if (typeof r === 'number') throw systemError(r, 'socketpair');
  let a: Channel | undefined;
  try {
    a = newChannel(r[0], options);
    return [a, newChannel(r[1], options)];
  } catch (err) {
    if (a === undefined) closeQuietly(r[0]);
    else a.close();
    closeQuietly(r[1]);
    throw err;
  }
}

/**
 * @internal: a Channel over a connected socket it adopts (listen/connect/spawn).
 * If it throws, `fd` is still the caller's to close.
 */
export function newChannel(fd: number, options?: ChannelOptions, peer?: PeerCredentials): Channel {
  // The constructor is private to the public types; this module is its one other caller.
  return new (Channel as unknown as new (token: symbol, fd: number, options?: ChannelOptions, peer?: PeerCredentials) => Channel)(
    construct, fd, options, peer);
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

// ---- helpers ----

/** Replaces each descriptor in `fds` by a close-on-exec duplicate; all or none (then it throws). */
function dupAll(fds: Int32Array): void {
  for (let i = 0; i < fds.length; i++) {
    const dup = native.dup(fds[i]!);
    if (dup < 0) {
      for (let k = 0; k < i; k++) closeQuietly(fds[k]!);
      throw dup === -E.EBADF ? sendError(dup) : systemError(dup, 'fcntl', 'F_DUPFD_CLOEXEC',
        dup === -E.EMFILE ? 'this process is out of descriptors (RLIMIT_NOFILE) for the send queue; lower maxQueuedFds or wait for \'drain\'' : undefined);
    }
    fds[i] = dup;
  }
}

function queueFullError(ch: Channel, cost: number, nfds: number): MemsealError {
  const fdsFull = ch.queuedFds + nfds > ch.maxQueuedFds;
  return new MemsealError('ERR_MEMSEAL_QUEUE_FULL', fdsFull
    ? `the send queue holds ${ch.queuedFds} descriptors; ${nfds} more would exceed maxQueuedFds (${ch.maxQueuedFds}): nothing was taken`
    : `the send queue holds ${ch.queuedBytes} bytes; ${cost} more would exceed maxQueuedBytes (${ch.maxQueuedBytes}): nothing was taken`,
  { hint: "the peer is not reading fast enough: wait for the channel's 'drain' event before sending more" });
}

function sendError(r: number): SystemError {
  let hint: string | undefined;
  if (r === -E.EBADF) hint = 'a descriptor in fds is not open';
  else if (r === -E.EPIPE || r === -E.ECONNRESET) hint = 'the peer has closed its end';
  else if (r === -E.EMSGSIZE) hint = 'the message is larger than the socket send buffer (net.core.wmem_default)';
  else if (r === -E.ETOOMANYREFS) hint = 'too many descriptors in flight for this user (bounded by RLIMIT_NOFILE)';
  return systemError(r, 'sendmsg', undefined, hint);
}

/** @internal ERR_MEMSEAL_CLOSED for Channel.<op>(). */
export function closedError(op: string): MemsealError {
  return closed(`Channel.${op}()`, 'the channel');
}

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
