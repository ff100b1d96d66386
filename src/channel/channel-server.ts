// Listening and connecting: ChannelServer over a listening AF_UNIX
// SOCK_SEQPACKET socket (socket(2), bind(2), listen(2), accept4(2); Linux
// 2.6.28), connect(2), and the encoding of filesystem paths and abstract
// names into sun_path (unix(7)). Every accepted or connected socket becomes a Channel.
import fs from 'node:fs';
import { native, type PollHandle } from '../kernel/binding';
import { type Channel, newChannel } from './channel';
import {
  type ChannelOptions, channelOptions, closeQuietly, openPoll, type PeerCredentials, peerCredentials, type SocketType,
} from './channel-util';
import { E, illegalConstructor, invalidArgValue, systemError, type SystemError } from '../kernel/errors';
import { type EmitterEvents, TypedEventEmitter } from '../util/events';
import { validateInteger, validateObject } from '../kernel/validate';
import { accessOptions, addressHint, bindMode, openSocket, printable, retryWhileFull, socketAddress, sunPath } from './unix-socket';

const P = native.pollConstants;
const construct = Symbol('ChannelServer.construct');

export interface ListenOptions extends ChannelOptions {
  /** listen(2) backlog; default 511. */
  backlog?: number;
  /**
   * Who may connect, decided from the peer's SO_PEERCRED before `'connection'`:
   * return true to accept. A refused peer's socket is closed at once (it sees
   * a hang-up) and the server emits `'refused'` (PeerCredentials). Default:
   * only the server's own effective uid, and root (uid 0), never a peer whose
   * uid or gid reads as the overflow id (an id with no mapping in this user
   * namespace, /proc/sys/kernel/overflowuid: 65534). An abstract name has no
   * file permissions at all, so this is its only gate.
   */
  allow?: (peer: PeerCredentials) => boolean;
  /**
   * Permission bits of a filesystem socket (e.g. 0o600; connect(2) needs
   * write permission). Set on the socket before bind(2) (so the file appears
   * with at most these bits, whatever the umask) and then exactly with
   * chmod(2): never more open than asked. Default: 0o777 less the umask.
   * Not for abstract names (ERR_INVALID_ARG_VALUE).
   */
  mode?: number;
  /**
   * 'seqpacket' (default: SOCK_SEQPACKET, one message per send) or 'stream'
   * (SOCK_STREAM: bytes, a message is what one read returned; bring your own
   * framing, see docs/protocol.md). Accepted channels have this type.
   */
  type?: ConnectionType;
}

/** The socket types a listener or a connection can have: SOCK_SEQPACKET or SOCK_STREAM. */
export type ConnectionType = Exclude<SocketType, 'dgram'>;

/** Options of {@link connect}. */
export interface ConnectOptions extends ChannelOptions {
  /** The listener's type: 'seqpacket' (default) or 'stream'. A mismatch fails with EPROTOTYPE. */
  type?: ConnectionType;
}

function connectionType(type: unknown, name: string): ConnectionType {
  if (type === undefined) return 'seqpacket';
  if (type !== 'seqpacket' && type !== 'stream') throw invalidArgValue(name, "must be 'seqpacket' or 'stream'", type);
  return type;
}

/** Accept failures that mean "out of resources": the server backs off and retries instead of failing. */
const ACCEPT_SHORTAGES = new Set([E.EMFILE, E.ENFILE, E.ENOBUFS, E.ENOMEM]);
/** The first and the longest pause after an accept shortage, in ms (doubling in between). */
const ACCEPT_RETRY_FIRST = 10;
const ACCEPT_RETRY_MAX = 1000;

export interface ChannelServerEvents extends EmitterEvents {
  /** An accepted connection (accept4(2)) that `allow()` admitted, non-blocking and close-on-exec; the listener owns it. */
  connection: [channel: Channel];
  /** A peer `allow()` turned away; its socket was closed. */
  refused: [peer: PeerCredentials];
  /**
   * accept4 ran out of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM): accepting
   * pauses for `warning.retryIn` ms and resumes; nothing is lost or thrown.
   */
  warning: [warning: SystemError & { retryIn: number }];
  /** After `close()`. */
  close: [];
  /** accept failed otherwise (not a gone peer, not a shortage), or `allow()` threw. */
  error: [error: Error];
}

/**
 * A listening SOCK_SEQPACKET (or, with `type: 'stream'`, SOCK_STREAM) socket.
 * Emits `'connection'` (Channel) for each peer that connects (accept4(2)) and
 * that `allow()` accepts; a connection arriving while nobody listens for
 * `'connection'` is closed at once.
 * `'refused'` (PeerCredentials) for a peer `allow()` turned away.
 * `'warning'` (SystemError with `retryIn` ms) when accepting ran out of
 * resources (EMFILE, ENFILE, ENOBUFS, ENOMEM): the server pauses and retries,
 * connections wait in the backlog, nothing is lost and nothing is thrown.
 * `'close'` after `close()`; `'error'` for any other accept failure.
 *
 * @example
 * ```ts
 * import { listen } from 'memseal';
 * const server = await listen('\\0my-service');
 * server.on('connection', (ch) => { console.log('pid', ch.peer.pid); ch.close(); });
 * ```
 */
export class ChannelServer extends TypedEventEmitter<ChannelServerEvents> {
  /** The path or abstract name ('\0name') it listens on. */
  readonly address: string;
  #fd: number;
  #handle: PollHandle | null;
  #options: ChannelOptions;
  #allow: (peer: PeerCredentials) => boolean;
  #closed = false;
  #retryIn = 0;            // the next pause after an accept shortage; 0 while accepting works
  #retryTimer: NodeJS.Timeout | null = null;
  #shortages = 0;
  #refed = true;

  /** 'seqpacket' or 'stream' (ListenOptions.type): the type of every accepted channel. */
  readonly type: ConnectionType;

  /** Not public: use listen(). */
  private constructor(token: symbol, fd: number, address: string, options: ChannelOptions, allow: (peer: PeerCredentials) => boolean,
    type: ConnectionType = 'seqpacket') {
    if (token !== construct) throw illegalConstructor('listen()');
    super();
    this.#allow = allow;
    this.type = type;
    let handle: PollHandle;
    try {
      handle = openPoll(fd, (status) => this.#onPoll(status));
    } catch (err) {
      closeQuietly(fd);  // the listening socket is ours (listen() made it) either way
      throw err;
    }
    this.#fd = fd;
    this.#handle = handle;
    this.address = address;
    this.#options = options;
    const r = native.pollStart(handle, P.UV_READABLE);
    if (r < 0) {
      this.close();
      throw systemError(r, 'epoll_ctl');
    }
  }

  /** The listening socket's descriptor; -1 once closed. */
  get fd(): number { return this.#closed ? -1 : this.#fd; }
  get closed(): boolean { return this.#closed; }
  /** True while accepting is paused after a resource shortage (see the `'warning'` event). */
  get paused(): boolean { return this.#retryTimer !== null; }
  /** How many times accepting ran out of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM) since listen(). */
  get acceptShortages(): number { return this.#shortages; }

  ref(): this {
    this.#refed = true;
    if (this.#handle !== null) native.pollRef(this.#handle, true);
    this.#retryTimer?.ref();
    return this;
  }

  unref(): this {
    this.#refed = false;
    if (this.#handle !== null) native.pollRef(this.#handle, false);
    this.#retryTimer?.unref();
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
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
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
      this.#pause(100);
      this.emit('error', systemError(status, 'epoll_wait'));
      return;
    }
    for (let i = 0; i < 64 && !this.#closed; i++) {
      const fd = native.accept(this.#fd);
      if (fd === -E.EAGAIN) break;
      if (fd === -E.ECONNABORTED || fd === -E.EINTR) continue;
      if (fd < 0) {
        if (ACCEPT_SHORTAGES.has(-fd)) {
          this.#shortage(fd);
        } else {
          this.#pause(100);  // level-triggered: without a pause the watcher would spin on the error
          this.emit('error', systemError(fd, 'accept4'));
        }
        return;
      }
      this.#retryIn = 0;
      this.#admit(fd);
    }
  }

  /** One accepted socket: allow() decides, then it becomes a Channel for 'connection'. */
  #admit(fd: number): void {
    const peer = peerCredentials(fd);
    let allowed: boolean;
    try {
      allowed = this.#allow(peer) === true;
    } catch (err) {
      closeQuietly(fd);
      this.emit('error', err as Error);  // as a throwing 'connection' listener would
      return;
    }
    if (!allowed) {
      closeQuietly(fd);
      this.emit('refused', peer);
      return;
    }
    if (this.listenerCount('connection') === 0) {
      closeQuietly(fd);
      return;
    }
    let ch: Channel;
    try {
      ch = newChannel(fd, this.#options, peer);
    } catch (err) {
      closeQuietly(fd);
      this.emit('error', err as Error);
      return;
    }
    this.emit('connection', ch);
  }

  /**
   * accept4 ran out of resources. The connection stays in the backlog and the
   * socket stays readable: pause (doubling from 10 ms to 1 s), say so, retry.
   * Throwing here would take down every server without an 'error' listener.
   */
  #shortage(r: number): void {
    this.#shortages++;
    this.#retryIn = Math.min(Math.max(this.#retryIn * 2, ACCEPT_RETRY_FIRST), ACCEPT_RETRY_MAX);
    const retryIn = this.#retryIn;
    this.#pause(retryIn);
    const hint = r === -E.EMFILE ? `this process is out of descriptors (RLIMIT_NOFILE); accepting again in ${retryIn} ms`
      : r === -E.ENFILE ? `the system is out of open files (fs.file-max); accepting again in ${retryIn} ms`
        : `the kernel is short of memory; accepting again in ${retryIn} ms`;
    const warning = systemError(r, 'accept4', undefined, hint) as SystemError & { retryIn: number };
    warning.retryIn = retryIn;
    this.emit('warning', warning);
  }

  #pause(ms: number): void {
    if (this.#handle === null || this.#retryTimer !== null) return;
    native.pollStart(this.#handle, 0);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      if (this.#handle !== null) native.pollStart(this.#handle, P.UV_READABLE);
    }, ms);
    // while paused the watcher is stopped: the timer keeps a ref()d server alive in its place
    if (!this.#refed) this.#retryTimer.unref();
  }
}

/**
 * Listens on a filesystem path or an abstract name (a string starting with
 * '\0' or '@', Linux only: no file, gone when the socket closes): socket(2), bind(2),
 * listen(2); accepted with accept4(2) (Linux 2.6.28). A filesystem path must not exist yet (EADDRINUSE otherwise);
 * `server.close()` removes it.
 * @param path at most 107 bytes (108 for an abstract name, counting its leading NUL)
 * @example
 * ```ts
 * const server = await listen('\\0my-service');
 * server.on('connection', (ch) => { void ch.send(`hello ${ch.peer.pid}`); });
 * ```
 */
export async function listen(path: string, options: ListenOptions = {}): Promise<ChannelServer> {
  path = socketAddress(path);
  const addr = sunPath(path);
  validateObject(options, 'options');
  const backlog = options.backlog ?? 511;
  validateInteger(backlog, 'options.backlog', 0, 0x7fffffff);
  const { backlog: _backlog, allow: allowOption, mode, type: typeOption, ...rest } = options;
  const type = connectionType(typeOption, 'options.type');
  const channel = channelOptions(rest);
  const allow = accessOptions(path, allowOption, mode);  // mode validated: a number or undefined
  const abstract = path.startsWith('\0');
  const fd = openSocket(type);
  try {
    bindMode(fd, addr, path, mode as number | undefined);
    const r = native.listen(fd, backlog);
    if (r < 0) throw systemError(r, 'listen');
  } catch (err) {
    closeQuietly(fd);
    throw err;
  }
  try {
    // The constructor is private to the public types; listen() is its one caller.
    return new (ChannelServer as unknown as new (...args: [symbol, number, string, ChannelOptions, ListenOptions['allow'], ConnectionType]) => ChannelServer)(
      construct, fd, path, channel, allow, type);
  } catch (err) {
    if (!abstract) fs.rmSync(path, { force: true });  // the constructor has closed the socket
    throw err;
  }
}

/**
 * Connects to a {@link listen}ing path or abstract name: socket(2), connect(2).
 * While the listener's backlog is full (EAGAIN) it retries for up to 5 s.
 * @rejects ENOENT (no such path), ECONNREFUSED (nobody listening), EPROTOTYPE (not a SEQPACKET listener)
 * @example
 * ```ts
 * await using ch = await connect('\\0my-service');
 * const greeting = await ch.receive();
 * ```
 */
export async function connect(path: string, options?: ConnectOptions): Promise<Channel> {
  path = socketAddress(path);
  const addr = sunPath(path);
  if (options !== undefined) channelOptions(options);
  const fd = openSocket(connectionType(options?.type, 'options.type'));
  const r = await retryWhileFull(() => native.connect(fd, addr));
  if (r !== 0) {
    closeQuietly(fd);
    throw systemError(r, 'connect', printable(path), addressHint(r, 'listener'));
  }
  try {
    return newChannel(fd, options);
  } catch (err) {
    closeQuietly(fd);
    throw err;
  }
}

/** @internal What {@link listenAndAttach} needs of the object that owns the server (Publisher, SnapshotPublisher). */
export interface AttachingOwner {
  /** Whether the owner is closed: then no server may be added. */
  isClosed(): boolean;
  /** The owner's servers: the new one is added, and removed when it closes (the owner closes them all when it closes). */
  readonly servers: ChannelServer[];
  /** Takes a channel that connected; when it rejects (refused, gone), the channel is closed. */
  attach(channel: Channel): Promise<unknown>;
  /** The error for a listen() on a closed owner. */
  closedError(): Error;
}

/** @internal listen() on behalf of an owner that attaches every channel that connects. */
export async function listenAndAttach(path: string, options: ListenOptions | undefined, owner: AttachingOwner): Promise<ChannelServer> {
  if (owner.isClosed()) throw owner.closedError();
  const server = await listen(path, options);
  if (owner.isClosed()) {
    server.close();
    throw owner.closedError();
  }
  owner.servers.push(server);
  server.on('connection', (ch: Channel) => { owner.attach(ch).catch(() => ch.close()); });
  server.on('close', () => {
    const i = owner.servers.indexOf(server);
    if (i >= 0) owner.servers.splice(i, 1);
  });
  return server;
}
