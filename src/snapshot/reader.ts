// SnapshotReader: the reading end of a SnapshotPublisher. Each version arrives
// as a sealed memfd, is verified and mapped, then acknowledged (TAKEN), which
// is what lets the publisher send the next. Versions are handed out as
// Snapshots: pinned ones (next(), hold()) stay mapped until released;
// `latest` is the moving convenience.
import { constants as bufferConstants } from 'node:buffer';
import { Channel } from '../sealed/channel';
import { connect } from '../channel/channel-server';
import { type ChannelOptions } from '../channel/channel-util';
import { closedError, invalidArgType, MemsealError } from '../kernel/errors';
import { SealedBuffer } from '../sealed/sealed';
import { verifyPolicy } from '../sealed/verify';
import { validateObject } from '../kernel/validate';
import { type SnapshotReaderOptions } from './options';
import * as P from './protocol';

/** One version of the dataset, as a reader hands it out. */
export interface Snapshot {
  /** 1, 2, 3 … in publishing order. */
  readonly version: number;
  /**
   * The sealed bytes (`readonlyBytes` is mapped already; `bytes` is a private
   * copy-on-write view made on first use). Do not close it: `release()` the snapshot.
   */
  readonly buffer: SealedBuffer;
  /** What the publisher passed with this version. */
  readonly meta: string;
  /** Unpins the version (idempotent); its buffer is closed once nothing holds it. */
  release(): void;
  [Symbol.dispose](): void;
}

/** A version the reader has: its buffer lives while it is the latest or anything pins it. */
interface Entry {
  readonly version: number;
  readonly buffer: SealedBuffer;
  readonly meta: string;
  pins: number;
  current: boolean;
}

function unpin(e: Entry): void {
  if (--e.pins === 0 && !e.current) e.buffer.close();
}

// A pinned snapshot that is collected without release() gives its pin back.
const collected = new FinalizationRegistry<Entry>(unpin);

class PinnedSnapshot implements Snapshot {
  readonly version: number;
  readonly buffer: SealedBuffer;
  readonly meta: string;
  #entry: Entry | null;

  constructor(e: Entry) {
    this.version = e.version;
    this.buffer = e.buffer;
    this.meta = e.meta;
    this.#entry = e;
    e.pins++;
    collected.register(this, e, this);
  }

  get released(): boolean { return this.#entry === null; }

  release(): void {
    const e = this.#entry;
    if (e === null) return;
    this.#entry = null;
    collected.unregister(this);
    unpin(e);
  }

  [Symbol.dispose](): void { this.release(); }
}

/** `latest`: valid until a newer version arrives; release() does nothing. */
class MovingSnapshot implements Snapshot {
  constructor(readonly version: number, readonly buffer: SealedBuffer, readonly meta: string) {}
  release(): void { /* not pinned: nothing to give back */ }
  [Symbol.dispose](): void { /* not pinned */ }
}

interface Waiter {
  after: number;
  resolve: (s: Snapshot) => void;
  reject: (e: Error) => void;
}

const NEXT = 'SnapshotReader.next()';
// Set by attach()/connect() around their `new`: a reader made by the deprecated constructor keeps the
// first API's semantics (next() hands out the moving latest, closed when a newer version arrives).
let fromFactory = false;

/**
 * Receives the versions a {@link SnapshotPublisher} sends over one channel.
 * `next()` and `hold()` hand out pinned snapshots: mapped and byte-identical
 * until you release them (`using`), whatever arrives meanwhile. `latest` moves
 * with every new version: not for use across an `await`.
 * Memory: the versions you hold, the latest, and at most one in flight.
 * @example
 * ```ts
 * const reader = await SnapshotReader.connect('\0routes', { maxSize: 256 << 20 });
 * using snap = await reader.next();                   // pinned until the end of the scope
 * const table = JSON.parse(snap.buffer.readonlyBytes.toString());
 * ```
 */
export class SnapshotReader {
  #channel: Channel;
  #options: SnapshotReaderOptions;
  #latest: Entry | null = null;
  #latestView: Snapshot | null = null;
  #waiters: Waiter[] = [];
  #error: Error | null = null;
  #given = 0;
  #closed = false;
  #legacy: boolean;

  /**
   * @deprecated Use {@link SnapshotReader.attach} (or {@link SnapshotReader.connect}): the one
   * documented way. Kept so that code written against the first snapshot API still runs, with that
   * API's semantics: `next()` resolves with the unpinned latest version, closed when a newer one arrives.
   */
  constructor(channel: Channel, options: SnapshotReaderOptions = {}) {
    this.#legacy = !fromFactory;
    fromFactory = false;
    if (!(channel instanceof Channel)) throw invalidArgType('channel', 'an instance of Channel', channel);
    validateObject(options, 'options');
    verifyPolicy(options);   // maxSize defaults to DEFAULT_MAX_SIZE, as every receiver's
    this.#channel = channel;
    this.#options = { ...options };
    channel.maxFds = 1;  // a version carries one descriptor: a message with more is refused, all of them closed
    void this.#read();
  }

  /**
   * Reads the versions the publisher at the other end of `channel` sends. The
   * reader owns the channel from now on. Resolves at once: the first version
   * comes when the publisher has one (`next()`).
   * @throws TypeError/RangeError for a bad channel or options
   */
  static async attach(channel: Channel, options: SnapshotReaderOptions = {}): Promise<SnapshotReader> {
    fromFactory = true;
    return new SnapshotReader(channel, options);
  }

  /** connect(path) (ChannelOptions too: `maxQueuedBytes`…), then attach(). */
  static async connect(path: string, options: SnapshotReaderOptions & ChannelOptions = {}): Promise<SnapshotReader> {
    validateObject(options, 'options');
    const { require, forbid, minSize, maxSize, exactSize, ...channelOptions } = options;
    const verify = Object.fromEntries(Object.entries({ require, forbid, minSize, maxSize, exactSize })
      .filter(([, v]) => v !== undefined)) as SnapshotReaderOptions;
    verifyPolicy(verify);
    const channel = await connect(path, channelOptions);
    fromFactory = true;
    return new SnapshotReader(channel, verify);
  }

  /** The newest version received, or null before the first. It moves: hold() it to keep it. */
  get latest(): Snapshot | null { return this.#latestView; }

  /** Closed locally, or the publisher hung up. */
  get closed(): boolean { return this.#closed; }

  /** The publisher's process (SO_PEERCRED). */
  get peer(): Channel['peer'] { return this.#channel.peer; }

  /**
   * Resolves, pinned, with the latest version once it is newer than `after`
   * (default: the version the previous `next()` resolved with; 0 at first).
   * Versions that came and went in between are skipped. Release it when done.
   * @rejects MemsealError naming SnapshotReader.next(): ERR_MEMSEAL_CLOSED (closed here, or the
   *   publisher hung up), ERR_MEMSEAL_SIZE / NOT_SEALED / NOT_MEMFD / PROTOCOL (the publisher sent
   *   something refused; the reader then stops)
   */
  next(after: number = this.#given): Promise<Snapshot> {
    if (typeof after !== 'number' || Number.isNaN(after)) return Promise.reject(invalidArgType('after', 'of type number', after));
    const e = this.#latest;
    if (e !== null && e.version > after) return Promise.resolve(this.#give(e));
    if (this.#error !== null) return Promise.reject(this.#error);
    return new Promise<Snapshot>((resolve, reject) => { this.#waiters.push({ after, resolve, reject }); });
  }

  /**
   * Pins the latest version: it stays mapped and intact until released.
   * @throws MemsealError ERR_MEMSEAL_CLOSED after close(); ERR_MEMSEAL_NO_SNAPSHOT before the first version
   */
  hold(): Snapshot {
    if (this.#closed && this.#latest === null) throw closedError('SnapshotReader.hold()', 'the reader');
    if (this.#latest === null) {
      throw new MemsealError('ERR_MEMSEAL_NO_SNAPSHOT', 'SnapshotReader.hold(): no version has arrived yet',
        { hint: 'await reader.next() for the first one' });
    }
    return new PinnedSnapshot(this.#latest);
  }

  /**
   * Hangs up (the publisher detaches this reader). Pending `next()` calls
   * reject; pinned snapshots stay valid until released. Idempotent.
   */
  close(): void {
    this.#end(closedError(NEXT, 'the reader'));
    this.#error = closedError(NEXT, 'the reader');  // closed here: say so, even after the publisher hung up
    const e = this.#latest;
    this.#latest = null;
    this.#latestView = null;
    if (e !== null) {
      e.current = false;
      if (e.pins === 0) e.buffer.close();
    }
  }

  [Symbol.dispose](): void { this.close(); }

  // ---- internals ----

  #give(e: Entry): Snapshot {
    this.#given = Math.max(this.#given, e.version);
    // the deprecated constructor's readers: the first API's unpinned snapshot, closed by the next version
    return this.#legacy && e === this.#latest ? this.#latestView! : new PinnedSnapshot(e);
  }

  async #read(): Promise<void> {
    for (;;) {
      let buffer: SealedBuffer;
      let header: { version: number; meta: string };
      try {
        const got = await this.#channel.receiveBuffer(this.#options);
        buffer = got.buffer;
        try {
          header = P.decodeVersion(got.meta);
          const last = this.#latest?.version ?? 0;
          if (header.version <= last) {
            throw new MemsealError('ERR_MEMSEAL_PROTOCOL', `the publisher sent version ${header.version} after ${last}`);
          }
          // Taken means mapped: a read-only shared view, the one a dataset should be read through.
          // (past what one Buffer can show, the application reads it through range())
          if (buffer.size <= bufferConstants.MAX_LENGTH) void buffer.readonlyBytes;
        } catch (err) {
          buffer.close();
          throw err;
        }
      } catch (err) {
        this.#end(this.#closed ? closedError(NEXT, 'the reader') : asNextError(err as Error));
        return;
      }
      if (this.#closed) { buffer.close(); return; }
      this.#arrive({ version: header.version, buffer, meta: header.meta, pins: 0, current: true });
      this.#channel.send(P.encodeTaken(header.version)).catch(() => { /* the publisher is gone: the next receive says so */ });
    }
  }

  #arrive(e: Entry): void {
    const previous = this.#latest;
    this.#latest = e;
    this.#latestView = new MovingSnapshot(e.version, e.buffer, e.meta);
    if (previous !== null) {
      previous.current = false;
      if (previous.pins === 0) previous.buffer.close();
    }
    const ready = this.#waiters.filter((w) => w.after < e.version);
    this.#waiters = this.#waiters.filter((w) => w.after >= e.version);
    for (const w of ready) w.resolve(this.#give(e));
  }

  #end(err: Error): void {
    this.#closed = true;
    this.#error ??= err;
    this.#channel.close();
    for (const w of this.#waiters.splice(0)) w.reject(this.#error);
  }
}

/** A receive failure, named for the call the application made. */
function asNextError(err: Error): Error {
  const e = err as MemsealError;
  if (!(err instanceof MemsealError)) return err;
  if (e.code === 'ERR_MEMSEAL_CLOSED') {
    return closedError(NEXT, 'the reader', 'closed', { reason: 'the publisher hung up', hint: 'the publisher closed, or detached this reader', cause: err });
  }
  const message = err.message.replace(/^Channel\.receiveBuffer\(\): /, '');
  return new MemsealError(e.code, `${NEXT}: ${message}`, { hint: e.hint, cause: err });
}
