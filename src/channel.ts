// Passing file descriptors between processes: AF_UNIX SOCK_SEQPACKET sockets
// (unix(7): message boundaries kept, connection-oriented), sendmsg(2)/recvmsg(2)
// with SCM_RIGHTS, driven by a libuv poll watcher so no call blocks the loop.
// Minimum kernel for everything here: Linux 2.6.28 (SOCK_SEQPACKET for AF_UNIX
// 2.6.4, SOCK_NONBLOCK/SOCK_CLOEXEC 2.6.27, MSG_CMSG_CLOEXEC 2.6.23, accept4
// 2.6.28); SCM_MAX_FD is 253 since 2.6.38 (255 before).
import { spawn, type ChildProcess, type SpawnOptions, type StdioOptions } from 'node:child_process';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import { constants as osConstants } from 'node:os';
import { native, type PollHandle } from './binding';
import { illegalConstructor, invalidArgType, MemsealError, outOfRange, systemError, type SystemError } from './errors';
import { SealedBuffer, verifyPolicy, type VerifyOptions } from './sealed';
import { validateFd, validateInteger, validateObject, validateString } from './validate';

const E = osConstants.errno;
const ETOOMANYREFS = (E as Record<string, number>).ETOOMANYREFS ?? 109;
const K = native.channelConstants;
const construct = Symbol('Channel.construct');

/** Most payload bytes one message may carry (64 KiB). Bulk data belongs in a memfd passed as a descriptor. */
export const MAX_PAYLOAD = 65536;
/** Most descriptors one message may carry: SCM_MAX_FD (253 since Linux 2.6.38; include/net/scm.h). */
export const MAX_FDS: number = K.SCM_MAX_FD;
/** The environment variable through which {@link spawnWithChannel} tells the child its socket's descriptor number. */
export const CHANNEL_FD_ENV = 'MEMSEAL_CHANNEL_FD';

// One receive buffer per module instance (per JS thread): recvmsg copies into
// it and the payload is copied out at its exact length.
const scratch = Buffer.allocUnsafe(MAX_PAYLOAD);
const recvInfo = new Int32Array(2);
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

export interface ChannelOptions {
  /**
   * Most descriptors accepted per received message (0..253, default 253):
   * sizes the recvmsg control buffer. A message carrying more is refused with
   * ERR_MEMSEAL_CTRUNC and every descriptor of it that arrived is closed.
   */
  maxFds?: number;
}

/**
 * One received message. The receiver owns `fds` (open, close-on-exec):
 * use them, close them, or let `closeFds()` / `using` do it. `takeFds()`
 * hands them over explicitly so a later `closeFds()` leaves them alone.
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
  fds: Int32Array;        // the caller's descriptors: they must stay open until the send settles
  resolve: () => void;
  reject: (err: Error) => void;
}

interface Waiter {
  resolve: (m: Message) => void;
  reject: (err: Error) => void;
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
 * are attached: ERR_MEMSEAL_CTRUNC, ERR_MEMSEAL_SIZE).
 */
export class Channel extends EventEmitter {
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
  #drained: (() => void)[] = [];  // asyncDispose waiting for the send queue to empty
  #recvq = new Queue<Message | Error>();  // read from the kernel, not delivered yet
  #waiters = new Queue<Waiter>();
  #closed = false;

  /** @internal use socketPair(), connect(), Channel.fromFd() or spawnWithChannel() */
  constructor(token: symbol, fd: number, options: ChannelOptions = {}) {
    if (token !== construct) throw illegalConstructor('socketPair(), connect() or Channel.fromFd()');
    super();
    const maxFds = options.maxFds ?? MAX_FDS;
    validateInteger(maxFds, 'options.maxFds', 0, MAX_FDS);
    this.#maxFds = maxFds;
    this.#fdBuf = new Int32Array(maxFds);
    const cred = native.peerCred(fd);
    this.#peer = typeof cred === 'number' ? { pid: 0, uid: -1, gid: -1 } : Object.freeze({ pid: cred[0], uid: cred[1], gid: cred[2] });
    const handle = native.pollOpen(fd, (status, events) => this.#onPoll(status, events));
    if (typeof handle === 'number') {
      closeQuietly(fd);
      throw systemError(handle, 'uv_poll_init');
    }
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
   * Adopts a connected AF_UNIX SOCK_SEQPACKET socket (inherited, or made
   * elsewhere); the channel owns it from now on and sets O_NONBLOCK and
   * FD_CLOEXEC on it.
   * @throws ENOTSOCK/EBADF (getsockopt), EPROTOTYPE if it is not AF_UNIX SOCK_SEQPACKET
   */
  static fromFd(fd: number, options?: ChannelOptions): Channel {
    validateFd(fd);
    if (options !== undefined) validateObject(options, 'options');
    const type = native.sockType(fd);
    if (typeof type === 'number') throw systemError(type, 'getsockopt', 'SO_TYPE', 'the descriptor is not a socket');
    if (type[0] !== K.AF_UNIX || type[1] !== K.SOCK_SEQPACKET) {
      throw systemError(-E.EPROTOTYPE, 'getsockopt', 'SO_TYPE', 'a Channel needs an AF_UNIX SOCK_SEQPACKET socket');
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
  static fromParent(options?: ChannelOptions): Channel {
    if (parentChannel !== null) {
      if (parentChannel.closed) throw closedError('fromParent');
      return parentChannel;
    }
    const raw = process.env[CHANNEL_FD_ENV];
    const fd = raw !== undefined && /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(fd)) {
      throw new MemsealError('ERR_MEMSEAL_NO_CHANNEL', `no channel from a parent: ${CHANNEL_FD_ENV} is ${raw === undefined ? 'not set' : `'${raw}'`}`,
        { hint: 'start this process with spawnWithChannel()' });
    }
    parentChannel = Channel.fromFd(fd, options);
    delete process.env[CHANNEL_FD_ENV];
    return parentChannel;
  }

  /** The socket's descriptor; -1 once closed. */
  get fd(): number { return this.#closed ? -1 : this.#fd; }
  /** Closed by `close()` or because the peer hung up. Messages already read may still be `receive()`d. */
  get closed(): boolean { return this.#closed; }
  /** The peer's pid/uid/gid when it connected (SO_PEERCRED). For socketPair(), this process. */
  get peer(): PeerCredentials { return this.#peer; }
  /** Messages waiting to be sent because the kernel's send buffer is full. */
  get pendingSends(): number { return this.#sendq.length; }

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
   * full the message is queued (payload copied) and sent when the socket
   * becomes writable; queued messages go out in order. Keep the descriptors
   * open until the promise settles: a queued message refers to them by
   * number, and the kernel checks them when it goes out (EBADF fails that
   * message alone).
   * @param data at most {@link MAX_PAYLOAD} bytes; a string is sent as UTF-8.
   *   Empty data is allowed only with descriptors (an empty message reads as end-of-stream).
   * @param fds at most 253 open descriptors
   * @rejects RangeError/TypeError for bad arguments (nothing sent); EBADF if a
   *   descriptor is not open (nothing sent); EPIPE when the peer is gone;
   *   MemsealError ERR_MEMSEAL_CLOSED after close()
   */
  send(data: Uint8Array | ArrayBufferView | string, fds: readonly number[] = []): Promise<void> {
    try {
      const bytes = toBytes(data);
      if (bytes.byteLength > MAX_PAYLOAD) throw outOfRange('data.byteLength', `<= ${MAX_PAYLOAD} (Channel.MAX_PAYLOAD)`, bytes.byteLength);
      if (!Array.isArray(fds)) throw invalidArgType('fds', 'an array of file descriptors', fds);
      if (fds.length > MAX_FDS) throw outOfRange('fds.length', `<= ${MAX_FDS} (SCM_MAX_FD)`, fds.length);
      for (let i = 0; i < fds.length; i++) validateFd(fds[i], `fds[${i}]`);
      if (bytes.byteLength === 0 && fds.length === 0) {
        throw outOfRange('data.byteLength', '>= 1 when no descriptors are sent (an empty message reads as end-of-stream)', 0);
      }
      if (this.#closed) throw closedError('send');
      const fdArr = Int32Array.from(fds);
      if (this.#sendq.length === 0) {
        const r = native.sendmsg(this.#fd, bytes, fdArr);
        if (r >= 0) return Promise.resolve();
        if (r !== -E.EAGAIN) throw sendError(r);
      }
      // the caller may reuse its buffer once send() returns; a string's bytes are ours already
      const copy = typeof data === 'string' ? bytes : Buffer.from(bytes);
      const p = new Promise<void>((resolve, reject) => {
        this.#sendq.push({ data: copy, fds: fdArr, resolve, reject });
      });
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
    const queued = this.#recvq.shift();
    if (queued !== undefined) return queued instanceof Message ? Promise.resolve(queued) : Promise.reject(queued);
    if (this.#closed) return Promise.reject(closedError('receive'));
    if (this.#waiters.length === 0) {
      const m = this.#recv();
      if (m instanceof Message) return Promise.resolve(m);
      if (m instanceof Error) return Promise.reject(m);
      if (m === EOF || m === RESET) {
        const p = new Promise<Message>((resolve, reject) => this.#waiters.push({ resolve, reject }));
        this.#hangup();
        return p;
      }
    }
    return new Promise<Message>((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
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

  /**
   * Sends a sealed buffer: one message carrying its memfd and `meta` (at most
   * {@link MAX_PAYLOAD} bytes; a string is sent as UTF-8). The receiver gets
   * its own descriptor of the same file; `buf` stays usable and may be closed
   * as soon as this returns: a send that has to wait for buffer space keeps a
   * duplicate of the descriptor until it goes out. On the wire an empty
   * `meta` is one NUL byte, so the message is never empty (docs/protocol.md);
   * a `meta` of exactly one NUL byte is therefore refused.
   * @rejects TypeError if `buf` is not a SealedBuffer; RangeError for oversized
   *   meta or a meta of one NUL byte; MemsealError ERR_MEMSEAL_CLOSED if `buf` or the channel is closed;
   *   EPIPE when the peer is gone
   */
  sendBuffer(buf: SealedBuffer, meta: Uint8Array | ArrayBufferView | string = ''): Promise<void> {
    if (!(buf instanceof SealedBuffer)) return Promise.reject(invalidArgType('buf', 'an instance of SealedBuffer', buf));
    if (buf.closed) return Promise.reject(new MemsealError('ERR_MEMSEAL_CLOSED', 'Channel.sendBuffer(): the SealedBuffer is closed'));
    let payload: Uint8Array;
    try {
      payload = encodeMeta(meta);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.#closed || this.#sendq.length === 0) return this.send(payload, [buf.fd]);
    // Queued behind other sends: the message goes out later and refers to its
    // descriptor by number, so give it one the caller cannot close or reuse.
    const dup = native.dup(buf.fd);
    if (dup < 0) return Promise.reject(systemError(dup, 'fcntl', 'F_DUPFD_CLOEXEC'));
    const release = () => closeQuietly(dup);
    const p = this.send(payload, [dup]);
    p.then(release, release);
    return p;
  }

  /**
   * Receives the next message as a sealed buffer. The message must carry
   * exactly one descriptor, which is verified before anything is mapped (see
   * {@link verifySeals}): a memfd whose seals include `options.require`
   * (default SHRINK | GROW | WRITE) and whose size is within bounds. A message
   * that fails any check is consumed and every descriptor in it is closed.
   * @returns the buffer (owned by the caller: close it) and the sender's `meta` bytes
   * @rejects MemsealError ERR_MEMSEAL_NOT_MEMFD (no descriptor, or not a memfd),
   *   ERR_MEMSEAL_CTRUNC (more than one descriptor), ERR_MEMSEAL_NOT_SEALED,
   *   ERR_MEMSEAL_SIZE, ERR_MEMSEAL_CLOSED (the channel closed or the peer hung up);
   *   TypeError/RangeError for bad options (nothing received)
   */
  async receiveBuffer(options?: VerifyOptions): Promise<{ buffer: SealedBuffer; meta: Buffer }> {
    verifyPolicy(options);
    const message = await this.receive();
    const fds = message.takeFds();
    if (fds.length !== 1) {
      for (const fd of fds) closeQuietly(fd);
      throw fds.length === 0
        ? new MemsealError('ERR_MEMSEAL_NOT_MEMFD', 'Channel.receiveBuffer(): the message carried no descriptor', {
          hint: 'the peer sent a plain message; use receive() for those' })
        : new MemsealError('ERR_MEMSEAL_CTRUNC',
          `Channel.receiveBuffer(): the message carried ${fds.length} descriptors, expected 1; all were closed`);
    }
    return { buffer: SealedBuffer.open(fds[0]!, options), meta: decodeMeta(message.data) };
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
   * still inside the channel (messages read but not delivered). Descriptors
   * of delivered messages belong to their receiver and are not touched.
   * Idempotent; `'close'` follows on the next tick.
   */
  close(): void {
    if (this.#closed) {
      this.#discardQueued();
      return;
    }
    this.#shut(true);
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
    if (this.#closed || this.#handle === null) return;
    let events = K.UV_DISCONNECT | (this.#wantRead() ? K.UV_READABLE : 0) | (this.#sendq.length > 0 ? K.UV_WRITABLE : 0);
    if (!strict) events |= this.#events & K.UV_READABLE;
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
    if ((events & K.UV_WRITABLE) !== 0) this.#flush();
    if ((events & K.UV_READABLE) !== 0 && !this.#closed) this.#readSome();
    if ((events & K.UV_DISCONNECT) !== 0 && !this.#closed) this.#hangup();
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
      return new MemsealError('ERR_MEMSEAL_CTRUNC',
        `a message carried more file descriptors than this channel accepts (maxFds ${this.#maxFds}): every one that arrived was closed`,
        { hint: 'raise channel.maxFds (up to 253) if the peer is meant to send that many' });
    }
    if ((flags & K.MSG_TRUNC) !== 0 || r > scratch.length) {
      for (const fd of fds) closeQuietly(fd);
      return new MemsealError('ERR_MEMSEAL_SIZE',
        `a message of ${r} bytes exceeds Channel.MAX_PAYLOAD (${MAX_PAYLOAD}): dropped, its descriptors closed`);
    }
    if (r === 0 && nfds === 0) return EOF;
    const data = Buffer.allocUnsafe(r);
    scratch.copy(data, 0, 0, r);
    return new Message(data, fds);
  }

  #deliver(m: Message | Error): void {
    const w = this.#waiters.shift();
    if (w !== undefined) {
      if (m instanceof Message) w.resolve(m);
      else w.reject(m);
    } else if (this.listenerCount('message') > 0) {
      if (m instanceof Message) this.emit('message', m);
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
    while (this.#sendq.length > 0 && !this.#closed) {
      const job = this.#sendq.peek()!;
      const r = native.sendmsg(this.#fd, job.data, job.fds);
      if (r === -E.EAGAIN) break;
      this.#sendq.shift();
      if (r >= 0) job.resolve();
      else job.reject(sendError(r));
    }
    if (this.#sendq.length === 0) for (const done of this.#drained.splice(0)) done();
    this.#update();
  }

  /** The peer hung up: take in what it sent before it went, then close our end. */
  #hangup(): void {
    for (let resets = 0; ;) {
      if (this.#closed) return;
      const m = this.#recv();
      if (m === RESET && ++resets < 3) continue;
      if (m === null || m === EOF || m === RESET) break;
      if (m instanceof Error && !(m instanceof MemsealError)) break;  // the socket itself failed
      this.#deliver(m);
    }
    this.#shut(false);
  }

  #shut(local: boolean): void {
    if (this.#closed) return;
    this.#closed = true;
    const handle = this.#handle;
    this.#handle = null;
    if (handle !== null) native.pollClose(handle);
    const jobs = this.#sendq.drain();
    for (const job of jobs) {
      job.reject(local ? closedError('send') : sendError(-E.EPIPE));
    }
    for (const w of this.#waiters.drain()) w.reject(closedError('receive'));
    for (const done of this.#drained.splice(0)) done();
    if (local) this.#discardQueued();
    process.nextTick(() => this.emit('close'));
  }

  #discardQueued(): void {
    for (const m of this.#recvq.drain()) if (m instanceof Message) m.closeFds();
  }
}

let parentChannel: Channel | null = null;

/** FIFO with O(1) shift: a send queue may hold hundreds of thousands of messages. */
class Queue<T> {
  #items: (T | undefined)[] = [];
  #head = 0;

  get length(): number { return this.#items.length - this.#head; }

  push(item: T): void {
    this.#items.push(item);
  }

  peek(): T | undefined {
    return this.#items[this.#head];
  }

  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  /** Empties the queue, returning what it held. */
  drain(): T[] {
    const out = this.#items.slice(this.#head) as T[];
    this.#items = [];
    this.#head = 0;
    return out;
  }
}

/**
 * A connected pair: socketpair(2) (AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK |
 * SOCK_CLOEXEC; Linux 2.6.27). Handy in one process, or to hand one end to a
 * child yourself.
 * @throws EMFILE/ENFILE
 */
export function socketPair(options?: ChannelOptions): [Channel, Channel] {
  if (options !== undefined) validateObject(options, 'options');
  const r = native.socketpair();
  if (typeof r === 'number') throw systemError(r, 'socketpair');
  let a: Channel | undefined;
  try {
    a = new Channel(construct, r[0], options);
    return [a, new Channel(construct, r[1], options)];
  } catch (err) {
    if (a === undefined) closeQuietly(r[0]);
    else a.close();
    closeQuietly(r[1]);
    throw err;
  }
}

export interface ListenOptions extends ChannelOptions {
  /** listen(2) backlog; default 511. */
  backlog?: number;
}

/**
 * A listening SOCK_SEQPACKET socket. Emits `'connection'` (Channel) for each
 * peer that connects (accept4(2)); a connection arriving while nobody listens
 * for `'connection'` is closed at once. `'close'` after `close()`; `'error'` when
 * accept fails for a reason other than a gone peer (EMFILE...).
 */
export class ChannelServer extends EventEmitter {
  /** The path or abstract name ('\0name') it listens on. */
  readonly address: string;
  #fd: number;
  #handle: PollHandle | null;
  #options: ChannelOptions;
  #closed = false;

  /** @internal use listen() */
  constructor(token: symbol, fd: number, address: string, options: ChannelOptions) {
    if (token !== construct) throw illegalConstructor('listen()');
    super();
    const handle = native.pollOpen(fd, (status) => this.#onPoll(status));
    if (typeof handle === 'number') {
      closeQuietly(fd);
      throw systemError(handle, 'uv_poll_init');
    }
    this.#fd = fd;
    this.#handle = handle;
    this.address = address;
    this.#options = options;
    const r = native.pollStart(handle, K.UV_READABLE);
    if (r < 0) {
      this.close();
      throw systemError(r, 'epoll_ctl');
    }
  }

  /** The listening socket's descriptor; -1 once closed. */
  get fd(): number { return this.#closed ? -1 : this.#fd; }
  get closed(): boolean { return this.#closed; }

  ref(): this {
    if (this.#handle !== null) native.pollRef(this.#handle, true);
    return this;
  }

  unref(): this {
    if (this.#handle !== null) native.pollRef(this.#handle, false);
    return this;
  }

  /**
   * Stops accepting, closes the socket and removes the socket file (not for
   * abstract names). Channels already accepted stay open. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const handle = this.#handle;
    this.#handle = null;
    if (handle !== null) native.pollClose(handle);
    if (!this.address.startsWith('\0')) {
      try {
        fs.unlinkSync(this.address);
      } catch {
        // already gone: nothing to clean up
      }
    }
    process.nextTick(() => this.emit('close'));
  }

  [Symbol.dispose](): void {
    this.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  #onPoll(status: number): void {
    if (this.#closed) return;
    if (status < 0) {
      this.#pause();
      this.emit('error', systemError(status, 'epoll_wait'));
      return;
    }
    for (let i = 0; i < 64 && !this.#closed; i++) {
      const fd = native.accept(this.#fd);
      if (fd === -E.EAGAIN) return;
      if (fd === -E.ECONNABORTED || fd === -E.EINTR) continue;
      if (fd < 0) {
        // EMFILE/ENFILE/ENOMEM: the connection stays in the backlog and the socket stays
        // readable; without a pause the level-triggered watcher would spin on the error
        this.#pause();
        this.emit('error', systemError(fd, 'accept4', undefined,
          fd === -E.EMFILE ? 'this process is out of descriptors (RLIMIT_NOFILE); accepting again in 100 ms' : undefined));
        return;
      }
      let ch: Channel;
      try {
        ch = new Channel(construct, fd, this.#options);
      } catch (err) {
        this.emit('error', err);
        continue;
      }
      if (this.listenerCount('connection') === 0) ch.close();
      else this.emit('connection', ch);
    }
  }

  #pause(): void {
    if (this.#handle === null) return;
    native.pollStart(this.#handle, 0);
    setTimeout(() => {
      if (this.#handle !== null) native.pollStart(this.#handle, K.UV_READABLE);
    }, 100).unref();
  }
}

/**
 * Listens on a filesystem path or an abstract name (a string starting with
 * '\0', Linux only: no file, gone when the socket closes): socket(2), bind(2),
 * listen(2); accepted with accept4(2) (Linux 2.6.28). A filesystem path must not exist yet (EADDRINUSE otherwise);
 * `server.close()` removes it.
 * @param path at most 107 bytes (108 for an abstract name, counting its leading NUL)
 */
export async function listen(path: string, options: ListenOptions = {}): Promise<ChannelServer> {
  const addr = sunPath(path);
  validateObject(options, 'options');
  const backlog = options.backlog ?? 511;
  validateInteger(backlog, 'options.backlog', 0, 0x7fffffff);
  if (options.maxFds !== undefined) validateInteger(options.maxFds, 'options.maxFds', 0, MAX_FDS);
  const fd = native.socket();
  if (fd < 0) throw systemError(fd, 'socket', 'AF_UNIX, SOCK_SEQPACKET');
  let r = native.bind(fd, addr);
  if (r < 0) {
    closeQuietly(fd);
    throw systemError(r, 'bind', printable(path), r === -E.EADDRINUSE
      ? (path.startsWith('\0') ? 'another socket has this abstract name' : 'the path exists: another server, or a stale socket file to remove')
      : undefined);
  }
  r = native.listen(fd, backlog);
  if (r < 0) {
    closeQuietly(fd);
    throw systemError(r, 'listen');
  }
  return new ChannelServer(construct, fd, path, { maxFds: options.maxFds });
}

/**
 * Connects to a {@link listen}ing path or abstract name: socket(2), connect(2).
 * While the listener's backlog is full (EAGAIN) it retries for up to 5 s.
 * @rejects ENOENT (no such path), ECONNREFUSED (nobody listening), EPROTOTYPE (not a SEQPACKET listener)
 */
export async function connect(path: string, options?: ChannelOptions): Promise<Channel> {
  const addr = sunPath(path);
  if (options !== undefined) validateObject(options, 'options');
  if (options?.maxFds !== undefined) validateInteger(options.maxFds, 'options.maxFds', 0, MAX_FDS);
  const fd = native.socket();
  if (fd < 0) throw systemError(fd, 'socket', 'AF_UNIX, SOCK_SEQPACKET');
  const deadline = Date.now() + 5000;
  for (let delay = 1; ; delay = Math.min(delay * 2, 100)) {
    const r = native.connect(fd, addr);
    if (r === 0) break;
    if (r !== -E.EAGAIN || Date.now() > deadline) {
      closeQuietly(fd);
      throw systemError(r, 'connect', printable(path), connectHint(r));
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
  return new Channel(construct, fd, options);
}

export interface SpawnWithChannelOptions extends SpawnOptions {
  /** Options for the parent's end. */
  channel?: ChannelOptions;
}

/**
 * child_process.spawn() with one end of a socketPair() inherited by the child
 * as the next descriptor after its stdio (3 by default) and named in its
 * environment (MEMSEAL_CHANNEL_FD); the child calls `Channel.fromParent()`.
 * The parent's copy of the child's end is closed, so the channel closes when
 * the child exits.
 */
export function spawnWithChannel(command: string, args: readonly string[] = [], options: SpawnWithChannelOptions = {}):
  { child: ChildProcess; channel: Channel } {
  validateString(command, 'command');
  if (!Array.isArray(args)) throw invalidArgType('args', 'an array of strings', args);
  validateObject(options as unknown, 'options');
  const { channel: channelOptions, ...spawnOptions } = options;
  if (channelOptions !== undefined) validateObject(channelOptions, 'options.channel');
  const stdio = normalizeStdio(spawnOptions.stdio);
  const pair = native.socketpair();
  if (typeof pair === 'number') throw systemError(pair, 'socketpair');
  const [ours, theirs] = pair;
  // The child's end is blocking, as most programs expect of an inherited socket
  // (Channel.fromParent() makes it non-blocking again); ours stays non-blocking.
  const blocking = native.setBlocking(theirs);
  if (blocking < 0) {
    closeQuietly(ours);
    closeQuietly(theirs);
    throw systemError(blocking, 'fcntl', 'F_SETFL');
  }
  const index = stdio.length;
  stdio.push(theirs);
  let child: ChildProcess;
  let channel: Channel;
  try {
    channel = new Channel(construct, ours, channelOptions);
  } catch (err) {
    closeQuietly(ours);
    closeQuietly(theirs);
    throw err;
  }
  try {
    child = spawn(command, args, {
      ...spawnOptions,
      stdio,
      env: { ...(spawnOptions.env ?? process.env), [CHANNEL_FD_ENV]: String(index) },
    });
  } catch (err) {
    channel.close();
    closeQuietly(theirs);
    throw err;
  }
  closeQuietly(theirs);
  return { child, channel };
}

// ---- helpers ----

// The payload of a sendBuffer() message (docs/protocol.md): `meta` verbatim,
// except that an empty meta travels as one NUL byte, so a message with a
// descriptor is never empty (Go's ReadMsgUnix reads an empty one as EOF, and
// its WriteMsgUnix sends that same NUL byte for an empty payload). One NUL
// byte is therefore reserved and cannot be sent as meta.
const EMPTY_META = new Uint8Array(1);

function encodeMeta(meta: unknown): Uint8Array {
  const bytes = toBytes(meta);
  if (bytes.byteLength === 0) return EMPTY_META;
  if (bytes.byteLength === 1 && bytes[0] === 0) {
    throw outOfRange('meta', 'not a single NUL byte (on the wire it stands for an empty meta; docs/protocol.md)', '\\0');
  }
  return bytes;
}

function decodeMeta(payload: Buffer): Buffer {
  return payload.length === 1 && payload[0] === 0 ? payload.subarray(0, 0) : payload;
}

type StdioEntry = Exclude<StdioOptions, string>[number];

function normalizeStdio(stdio: StdioOptions | undefined): StdioEntry[] {
  if (stdio === undefined) return ['pipe', 'pipe', 'pipe'];
  if (typeof stdio === 'string') return [stdio, stdio, stdio];
  if (!Array.isArray(stdio)) throw invalidArgType('options.stdio', 'a string or an array', stdio);
  const out: StdioEntry[] = [...stdio];
  while (out.length < 3) out.push(undefined);
  return out;
}

function toBytes(data: unknown): Uint8Array {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw invalidArgType('data', 'of type string or an instance of Buffer, TypedArray, or DataView', data);
}

/** sun_path bytes: a filesystem path plus its NUL, or an abstract name as given. */
function sunPath(path: string): Buffer {
  validateString(path, 'path');
  const abstract = path.startsWith('\0');
  if (path.length === 0 || path === '\0') throw outOfRange('path', 'a non-empty path or abstract name', path);
  if (!abstract && path.includes('\0')) throw outOfRange('path', 'a path without NUL characters', printable(path));
  const bytes = Buffer.from(abstract ? path : `${path}\0`, 'utf8');
  if (bytes.length > K.UNIX_PATH_MAX) {
    const err = outOfRange('path', `at most ${K.UNIX_PATH_MAX - (abstract ? 0 : 1)} bytes (sun_path)`, Buffer.byteLength(path));
    (err as RangeError & { hint?: string }).hint = 'use a shorter path (e.g. a relative one) or an abstract name';
    throw err;
  }
  return bytes;
}

function printable(path: string): string {
  return path.startsWith('\0') ? `@${path.slice(1)}` : path;
}

function connectHint(r: number): string | undefined {
  if (r === -E.ENOENT) return 'no socket at this path';
  if (r === -E.ECONNREFUSED) return 'nobody listens there (a stale socket file, or an abstract name nobody holds)';
  if (r === -E.EPROTOTYPE) return 'the listener is not a SOCK_SEQPACKET socket';
  if (r === -E.EAGAIN) return "the listener's backlog stayed full for 5 s";
  return undefined;
}

function sendError(r: number): SystemError {
  let hint: string | undefined;
  if (r === -E.EBADF) hint = 'a descriptor in fds is not open';
  else if (r === -E.EPIPE || r === -E.ECONNRESET) hint = 'the peer has closed its end';
  else if (r === -E.EMSGSIZE) hint = 'the message is larger than the socket send buffer (net.core.wmem_default)';
  else if (r === -ETOOMANYREFS) hint = 'too many descriptors in flight for this user (bounded by RLIMIT_NOFILE)';
  return systemError(r, 'sendmsg', undefined, hint);
}

function closedError(op: string): MemsealError {
  return new MemsealError('ERR_MEMSEAL_CLOSED', `the channel is closed (${op})`);
}

function closeQuietly(fd: number): void {
  native.close(fd);
}
