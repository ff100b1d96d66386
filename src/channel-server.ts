// Listening and connecting: ChannelServer over a listening AF_UNIX
// SOCK_SEQPACKET socket (socket(2), bind(2), listen(2), accept4(2); Linux
// 2.6.28), connect(2), and the encoding of filesystem paths and abstract
// names into sun_path (unix(7)). Every accepted or connected socket becomes a Channel.
import fs from 'node:fs';
import { native, type PollHandle } from './binding';
import { type Channel, type ChannelOptions, closeQuietly, MAX_FDS, newChannel, openPoll, type SocketType, sockTypeNumber } from './channel';
import { E, illegalConstructor, invalidArgValue, outOfRange, systemError } from './errors';
import { type EmitterEvents, TypedEventEmitter } from './events';
import { validateInteger, validateObject, validateString } from './validate';

const K = native.channelConstants;
const P = native.pollConstants;
const construct = Symbol('ChannelServer.construct');

export interface ListenOptions extends ChannelOptions {
  /** listen(2) backlog; default 511. */
  backlog?: number;
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

export interface ChannelServerEvents extends EmitterEvents {
  /** An accepted connection (accept4(2)), non-blocking and close-on-exec; the listener owns it. */
  connection: [channel: Channel];
  /** After `close()`. */
  close: [];
  /** accept failed for a reason other than a gone peer (EMFILE...). */
  error: [error: Error];
}

/**
 * A listening SOCK_SEQPACKET (or, with `type: 'stream'`, SOCK_STREAM) socket. Emits `'connection'` (Channel) for each
 * peer that connects (accept4(2)); a connection arriving while nobody listens
 * for `'connection'` is closed at once. `'close'` after `close()`; `'error'` when
 * accept fails for a reason other than a gone peer (EMFILE...).
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
  #closed = false;

  /** 'seqpacket' or 'stream' (ListenOptions.type): the type of every accepted channel. */
  readonly type: ConnectionType;

  /** Not public: use listen(). */
  private constructor(token: symbol, fd: number, address: string, options: ChannelOptions, type: ConnectionType = 'seqpacket') {
    if (token !== construct) throw illegalConstructor('listen()');
    super();
    this.type = type;
    const handle = openPoll(fd, (status) => this.#onPoll(status));
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
        ch = newChannel(fd, this.#options);
      } catch (err) {
        this.emit('error', err as Error);
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
      if (this.#handle !== null) native.pollStart(this.#handle, P.UV_READABLE);
    }, 100).unref();
  }
}

/**
 * Listens on a filesystem path or an abstract name (a string starting with
 * '\0', Linux only: no file, gone when the socket closes): socket(2), bind(2),
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
  const addr = sunPath(path);
  validateObject(options, 'options');
  const backlog = options.backlog ?? 511;
  validateInteger(backlog, 'options.backlog', 0, 0x7fffffff);
  if (options.maxFds !== undefined) validateInteger(options.maxFds, 'options.maxFds', 0, MAX_FDS);
  const type = connectionType(options.type, 'options.type');
  const fd = openSocket(type);
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
  // The constructor is private to the public types; listen() is its one caller.
  return new (ChannelServer as unknown as new (...args: [symbol, number, string, ChannelOptions, ConnectionType]) => ChannelServer)(
    construct, fd, path, { maxFds: options.maxFds }, type);
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
  const addr = sunPath(path);
  if (options !== undefined) validateObject(options, 'options');
  if (options?.maxFds !== undefined) validateInteger(options.maxFds, 'options.maxFds', 0, MAX_FDS);
  const fd = openSocket(connectionType(options?.type, 'options.type'));
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
  return newChannel(fd, options);
}

/** @internal socket(2): AF_UNIX, non-blocking, close-on-exec. */
export function openSocket(type: SocketType): number {
  const fd = native.socket(sockTypeNumber(type));
  if (fd < 0) throw systemError(fd, 'socket', `AF_UNIX, SOCK_${type.toUpperCase()}`);
  return fd;
}

/** @internal sun_path bytes: a filesystem path plus its NUL, or an abstract name as given. */
export function sunPath(path: string): Buffer {
  validateString(path, 'path');
  const abstract = path.startsWith('\0');
  if (path.length === 0 || path === '\0') throw outOfRange('path', 'a non-empty path or abstract name', path);
  if (!abstract && path.includes('\0')) throw outOfRange('path', 'a path without NUL characters', printable(path));
  const bytes = Buffer.from(abstract ? path : `${path}\0`, 'utf8');
  if (bytes.length > K.UNIX_PATH_MAX) {
    throw outOfRange('path', `at most ${K.UNIX_PATH_MAX - (abstract ? 0 : 1)} bytes (sun_path)`, Buffer.byteLength(path),
      'use a shorter path (e.g. a relative one) or an abstract name');
  }
  return bytes;
}

/** @internal How a path appears in messages: an abstract name as '@name'. */
export function printable(path: string): string {
  return path.startsWith('\0') ? `@${path.slice(1)}` : path;
}

function connectHint(r: number): string | undefined {
  if (r === -E.ENOENT) return 'no socket at this path';
  if (r === -E.ECONNREFUSED) return 'nobody listens there (a stale socket file, or an abstract name nobody holds)';
  if (r === -E.EPROTOTYPE) return 'the listener is of another socket type (options.type: seqpacket or stream)';
  if (r === -E.EAGAIN) return "the listener's backlog stayed full for 5 s";
  return undefined;
}

