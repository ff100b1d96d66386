// Channel: one AF_UNIX socket passing file descriptors between processes (unix(7)): SOCK_SEQPACKET by
// default, also SOCK_STREAM and SOCK_DGRAM (docs/protocol.md), sendmsg(2)/recvmsg(2) with SCM_RIGHTS, driven
// by a libuv poll watcher so no call blocks the loop; each wake-up reads a batch of messages in one call into
// the addon. Below it: Message, the events and reading (message.ts), the send queue (send-queue.ts), limits,
// options and socket helpers (channel-util.ts); socketPair() in pair.ts. Listening and connecting live in
// channel-server.ts, the spawn protocol in spawn.ts, the SealedBuffer methods in sealed.ts: the transport imports none.
// Minimum kernel: Linux 2.6.33 (AF_UNIX SOCK_SEQPACKET 2.6.4, SOCK_NONBLOCK/SOCK_CLOEXEC 2.6.27, MSG_CMSG_CLOEXEC
// 2.6.23, accept4 2.6.28, recvmmsg 2.6.33); SCM_MAX_FD is 253 since 2.6.38 (255 before).
import { native, type PollHandle } from '../kernel/binding';
import {
  type ChannelOptions, channelOptions, closedError, fdArgs, MAX_FDS, MAX_PAYLOAD, openPoll, type PeerCredentials,
  peerCredentials, prepareSocket, sendBytes, type SocketType, socketType,
} from './channel-util';
import { E, illegalConstructor, MemsealError, systemError } from '../kernel/errors';
import { TypedEventEmitter } from '../util/events';
import { claimParentChannel } from './parent';
import {
  BATCH_MESSAGES, type ChannelEvents, dropIncoming, type DroppedMessage, EOF, handOver, Message, type Received, receiveOwned, recvBatch, recvMessage, RESET,
  screenIncoming, somethingLeft, type Waiter,
} from './message';
import { Queue } from '../util/queue';
import { sendError, SendQueue } from './send-queue';
import { validateFd, validateInteger } from '../kernel/validate';

const P = native.pollConstants;
const construct = Symbol('Channel.construct');

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
  /** @deprecated The export `MAX_PAYLOAD` (most payload bytes per message: 65536). */
  static readonly MAX_PAYLOAD = MAX_PAYLOAD;
  /** @deprecated The export `MAX_FDS` (most descriptors per message: 253, SCM_MAX_FD). */
  static readonly MAX_FDS = MAX_FDS;

  #fd: number;
  #handle: PollHandle | null;
  #events = 0;
  #peer: PeerCredentials;
  #maxFds: number;
  #sendq = new SendQueue();
  #maxQueuedBytes: number;
  #maxQueuedFds: number;
  #recvq = new Queue<Message | Error>();  // read from the kernel, not delivered yet
  #waiters = new Queue<Waiter>();
  #closed = false;       // by close() or because the peer hung up
  #dropped = 0;
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
    prepareSocket(fd);
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
    return claimParentChannel((fd) => Channel.fromFd(fd, options));
  }

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
  get queuedBytes(): number { return this.#sendq.bytes; }
  /** Descriptors the send queue holds (its own duplicates, one per descriptor of each queued message). */
  get queuedFds(): number { return this.#sendq.fds; }

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
      const bytes = sendBytes(data, fds, this.#type);
      if (this.#closed) throw closedError('send');
      let sent = 0;
      if (this.#sendq.length === 0) {
        const r = native.sendmsg(this.#fd, bytes, fdArgs(fds));
        if (r >= bytes.byteLength) return Promise.resolve();
        if (r < 0 && r !== -E.EAGAIN) throw sendError(r);
        sent = Math.max(r, 0);  // a stream took a prefix (and the descriptors with it)
      }
      // the queue keeps (and duplicates into) an array of its own
      const p = this.#sendq.push(data, bytes, Int32Array.from(fds), sent, this.#maxQueuedBytes, this.#maxQueuedFds);
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
    if (this.#sendq.length > 0 && !this.#closed) await this.#sendq.drained();
    this.close();
  }

  // ---- internals ----

  #wantRead(): boolean {
    return this.#waiters.length > 0 || this.listenerCount('message') > 0;
  }

  /**
   * How many messages one read may take: a batch while any listener takes every message; with only
   * once() listeners (each takes one) and pending receive()s, exactly as many as they will take, so
   * nothing is read (and no descriptor installed) for nobody.
   */
  #wanted(): number {
    let once = 0;
    for (const l of this.rawListeners('message')) {
      // once() wraps its listener and keeps it as `listener` (events.rawListeners())
      if (typeof (l as { listener?: unknown }).listener !== 'function') return BATCH_MESSAGES;
      once++;
    }
    return Math.min(BATCH_MESSAGES, once + this.#waiters.length);
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

  /** One recvmsg: a message, an error about a bad message, null (nothing yet, or dropped), EOF or RESET. */
  #recv(): Received | null {
    const m = recvMessage(this.#fd, this.#maxFds, this.#type);
    const screen = this[screenIncoming];
    return screen === undefined ? m : screen(m);
  }

  /** @internal Set by bindDatagram(): see message.ts. */
  [screenIncoming]?: (m: Received | null) => Received | null;

  /** @internal */
  [dropIncoming](info: DroppedMessage): void {
    this.#dropped++;
    this.emit('dropped', info);
  }

  /** Datagrams a bindDatagram() socket dropped (refused senders, invalid datagrams); 0 for other channels. */
  get dropped(): number { return this.#dropped; }

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

  /**
   * A readable socket: what waits is read in one call into the addon (bounded; the poll is level-triggered),
   * queued, then delivered in order. Without a 'message' listener, only as many as receive() calls want.
   */
  #readSome(): void {
    if (!this.#wantRead()) {
      this.#update(true);  // readable, but nobody wants messages: leave them in the kernel
      return;
    }
    const want = this.#wanted();
    const batch = recvBatch(this.#fd, want, this.#maxFds, this.#type);
    const screen = this[screenIncoming];
    let end = false;
    for (const item of batch) {
      const m = this.#handle === null || screen === undefined ? item : screen(item);
      if (this.#handle === null) {
        // closed from inside the screen (bindDatagram's allow() called close()): this message and the
        // rest of the batch are nobody's, as they would have been had they stayed in the socket
        if (m instanceof Message) m.closeFds();
        continue;
      }
      if (m === EOF || m === RESET) end = true;
      else if (m !== null) this.#recvq.push(m);
    }
    this.#afterBatch(end);
  }

  /**
   * Delivers a batch's queued messages while someone wants them, then hangs up (end-of-stream) or re-arms.
   * A listener's close() closes the rest's descriptors; if it throws, the rest follow on the next turn.
   */
  #afterBatch(end: boolean): void {
    let done = false;
    try {
      while (this.#recvq.length > 0 && !this.#closed && this.#wantRead()) this.#deliver(this.#recvq.shift()!);
      done = true;
    } finally {
      if (!done) setImmediate(() => this.#afterBatch(end));
    }
    if (end) this.#hangup();
    else this.#update();
  }

  #flush(): void {
    const drained = !this.#closed && this.#sendq.flush(this.#fd);
    this.#update();
    if (drained && !this.#closed) this.emit('drain');
  }

  /**
   * Rejects every queued send (the channel closed or the peer went). 'drain'
   * follows too, so a sender waiting for it wakes up (and its next send rejects).
   */
  #failQueued(error: () => Error): void {
    if (this.#sendq.failAll(error) > 0) process.nextTick(() => this.emit('drain'));
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
    // Polling is over (a level-triggered hang-up would spin). Without the callback nothing native
    // keeps this channel alive: if it is forgotten with unread messages, the collector closes the
    // socket (and with it the descriptors in flight in it, which a hung-up peer would otherwise pin).
    if (this.#handle !== null) native.pollForget(this.#handle);
    this.#failQueued(() => sendError(-E.EPIPE));
    this.#serveLeft();
    if (this.#handle !== null && !somethingLeft(this.#fd)) this.#release();
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
 * @internal: a Channel over a connected socket it adopts (listen/connect/spawn).
 * If it throws, `fd` is still the caller's to close.
 */
export function newChannel(fd: number, options?: ChannelOptions, peer?: PeerCredentials): Channel {
  // The constructor is private to the public types; this module is its one other caller.
  return new (Channel as unknown as new (token: symbol, fd: number, options?: ChannelOptions, peer?: PeerCredentials) => Channel)(
    construct, fd, options, peer);
}
