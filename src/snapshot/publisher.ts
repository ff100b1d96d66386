// SnapshotPublisher: versions of a whole dataset, each a sealed memfd, to any
// number of readers. The same family as Publisher (create / attach / listen /
// typed events / close), with one rule of its own: a reader is sent its next
// version only once it said it took the one before (protocol.ts), so a reader
// that never reads pins at most one version, whatever the kernel would queue.
import { Channel } from '../sealed/channel';
import { type ChannelServer, listenAndAttach, type ListenOptions } from '../channel/channel-server';
import { closedError, invalidArgType } from '../kernel/errors';
import { TypedEventEmitter } from '../util/events';
import { type Message } from '../channel/message';
import { duplicateSealed, SealedBuffer } from '../sealed/sealed';
import {
  type Delivery, type SnapshotDetachReason, type SnapshotPublisherEvents, type SnapshotPublisherOptions,
  snapshotPublisherOptions, type SnapshotReaderInfo,
} from './options';
import * as P from './protocol';

interface Version {
  readonly version: number;
  readonly buffer: SealedBuffer;   // the publisher's own (made here, or a duplicate of the caller's)
  readonly payload: Buffer;        // the version message's meta
  inFlight: number;                // readers it was sent to that have not taken it yet
}

interface Reader {
  readonly id: number;
  readonly channel: Channel;
  taken: number;
  sent: number;
  inFlight: Version | null;
  timer: NodeJS.Timeout | null;
  gone: boolean;
}

/** A publish() waiting for the readers that were attached when it was called. */
interface Pending {
  readonly version: number;
  readonly waiting: Set<Reader>;
  delivered: number;
  drops: { reader: SnapshotReaderInfo; reason: SnapshotDetachReason }[];
  resolve: (d: Delivery) => void;
}

const DATA_TYPES = 'an instance of SealedBuffer, a string, an ArrayBuffer or an ArrayBufferView';

function publisherClosed(op: string): Error {
  return closedError(`SnapshotPublisher.${op}()`, 'the publisher');
}

/**
 * Publishes versions of a dataset: `publish(data)` seals it as the next version
 * (1, 2, 3 …) and sends it to every reader; a reader attached later is sent the
 * latest version at once. A reader busy with one version is sent the newest
 * when it has taken that one: versions in between are skipped, never queued.
 *
 * Events (typed in {@link SnapshotPublisherEvents}): `'attach'` (reader),
 * `'taken'` (reader, version), `'detach'` (reader, reason).
 * @example
 * ```ts
 * using pub = SnapshotPublisher.create({ name: 'routes' });
 * await pub.listen('\0routes');                      // readers: SnapshotReader.connect('\0routes', { maxSize })
 * const { delivered } = await pub.publish(JSON.stringify(table), 'nightly');
 * ```
 */
export class SnapshotPublisher extends TypedEventEmitter<SnapshotPublisherEvents> {
  readonly name: string;
  readonly slowTimeout: number;
  #latest: Version | null = null;
  #version = 0;
  #readers = new Set<Reader>();
  #pending = new Set<Pending>();
  #servers: ChannelServer[] = [];
  #nextId = 1;
  #closed = false;

  /**
   * @deprecated Use {@link SnapshotPublisher.create}: the one documented way. Kept so that code
   * written against the first snapshot API still runs.
   */
  constructor(options?: SnapshotPublisherOptions) {
    super();
    const o = snapshotPublisherOptions(options);
    this.name = o.name;
    this.slowTimeout = o.slowTimeout;
  }

  /**
   * A publisher with no readers and no version yet. Nothing is allocated
   * until the first `publish()`.
   * @throws TypeError/RangeError for bad options
   */
  static create(options?: SnapshotPublisherOptions): SnapshotPublisher {
    return new SnapshotPublisher(options);
  }

  /** The version last published (0 before the first). */
  get version(): number { return this.#version; }

  /** The attached readers: pid, the version each has taken, the one in flight. */
  get readers(): readonly SnapshotReaderInfo[] { return [...this.#readers].map((r) => this.#info(r)); }

  /** @deprecated The number of attached readers: use `readers.length`. */
  get subscribers(): number { return this.#readers.size; }

  get closed(): boolean { return this.#closed; }

  /**
   * Attaches the reader at the other end of `channel` and sends it the latest
   * version, if there is one. The publisher owns the channel from now on: it
   * closes it when the reader is detached or the publisher closes.
   * @rejects TypeError if `channel` is not a Channel; ERR_MEMSEAL_CLOSED if the publisher or the channel is closed
   */
  async attach(channel: Channel): Promise<void> {
    if (!(channel instanceof Channel)) throw invalidArgType('channel', 'an instance of Channel', channel);
    if (this.#closed) throw publisherClosed('attach');
    if (channel.closed) throw closedError('SnapshotPublisher.attach()', 'the channel');
    channel.maxFds = 0;  // a reader sends no descriptors: any that come are closed, and the reader detached
    const r: Reader = { id: this.#nextId++, channel, taken: 0, sent: 0, inFlight: null, timer: null, gone: false };
    this.#readers.add(r);
    channel.on('message', (m: Message) => this.#onMessage(r, m));
    channel.on('error', () => this.#drop(r, 'protocol'));
    channel.on('close', () => this.#drop(r, 'closed'));
    this.emit('attach', this.#info(r));
    this.#push(r);
  }

  /**
   * Listens on a path or abstract name ({@link listen}: the same default access
   * control, own euid and root) and attaches every reader that connects. The
   * publisher closes the server when it closes.
   */
  listen(path: string, options?: ListenOptions): Promise<ChannelServer> {
    return listenAndAttach(path, options, {
      isClosed: () => this.#closed,
      servers: this.#servers,
      attach: (ch) => this.attach(ch),
      closedError: () => publisherClosed('listen'),
    });
  }

  /**
   * Seals `data` as the next version and sends it to every reader that is not
   * still taking an older one (those are sent the newest when they have).
   * Bytes and strings (UTF-8) are copied into a new sealed memfd; a
   * SealedBuffer is shared, not taken: the publisher keeps a duplicate of its
   * descriptor, and the caller may close theirs at once. `version` is updated
   * before this returns.
   * @returns resolves when every reader attached now has taken this version (or a newer
   *   one), or was detached: `{ version, delivered, dropped, drops }`
   * @rejects MemsealError ERR_MEMSEAL_CLOSED (a closed publisher or SealedBuffer); TypeError for
   *   other data; RangeError for a meta that does not fit one message
   */
  publish(data: SealedBuffer | ArrayBufferView | ArrayBuffer | string, meta = ''): Promise<Delivery> {
    try {
      return this.#publish(data, meta, 'publish');
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * @deprecated The first snapshot API's synchronous publish: `publish()` does the same work
   * and tells you when the readers have the version. Throws where publish() rejects.
   * @returns the new version number
   */
  publishSync(data: SealedBuffer | ArrayBufferView | ArrayBuffer | string, meta = ''): number {
    void this.#publish(data, meta, 'publishSync');
    return this.#version;
  }

  #publish(data: unknown, meta: unknown, op: string): Promise<Delivery> {
    if (typeof meta !== 'string') throw invalidArgType('meta', 'of type string', meta);
    if (this.#closed) throw publisherClosed(op);
    const version = this.#version + 1;
    const payload = P.versionPayload(version, meta);
    let buffer: SealedBuffer;
    if (data instanceof SealedBuffer) buffer = duplicateSealed(data, `SnapshotPublisher.${op}()`);
    else if (typeof data === 'string' || ArrayBuffer.isView(data) || data instanceof ArrayBuffer) buffer = SealedBuffer.from(data, { name: this.name });
    else throw invalidArgType('data', DATA_TYPES, data);
    this.#version = version;
    const previous = this.#latest;
    this.#latest = { version, buffer, payload, inFlight: 0 };
    if (previous !== null) this.#release(previous);
    const delivery = new Promise<Delivery>((resolve) => {
      const p: Pending = { version, waiting: new Set(this.#readers), delivered: 0, drops: [], resolve };
      this.#pending.add(p);
      this.#settle(p);
    });
    for (const r of this.#readers) this.#push(r);
    return delivery;
  }

  /**
   * Detaches every reader ('publisher-closed'; each keeps the versions it
   * took), closes the servers of `listen()` and the publisher's versions.
   * Pending `publish()` promises resolve, counting those readers as dropped. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const r of [...this.#readers]) this.#drop(r, 'publisher-closed');
    for (const s of this.#servers.splice(0)) s.close();
    const latest = this.#latest;
    this.#latest = null;
    if (latest !== null) this.#release(latest);
  }

  [Symbol.dispose](): void { this.close(); }

  // ---- internals ----

  #info(r: Reader): SnapshotReaderInfo {
    const peer = r.channel.peer;
    return Object.freeze({ id: r.id, pid: peer.pid, peer, version: r.taken, inFlight: r.inFlight?.version ?? 0 });
  }

  /** Closes a version nobody needs any more: not the latest, not in flight to anyone. */
  #release(v: Version): void {
    if (v.inFlight === 0 && v !== this.#latest) v.buffer.close();
  }

  /** Sends the latest version to `r` unless it has it, or is still taking another one. */
  #push(r: Reader): void {
    const v = this.#latest;
    if (r.gone || r.inFlight !== null || v === null || r.sent >= v.version) return;
    r.inFlight = v;
    r.sent = v.version;
    v.inFlight++;
    r.channel.sendBuffer(v.buffer, v.payload).catch(() => this.#drop(r, 'error'));
    if (this.slowTimeout !== Infinity) {
      r.timer = setTimeout(() => this.#drop(r, 'slow'), this.slowTimeout);
    }
  }

  #onMessage(r: Reader, m: Message): void {
    m.closeFds();
    if (r.gone) return;
    const taken = P.decodeTaken(m.data);
    if (taken === null) {
      this.#drop(r, 'protocol');
      return;
    }
    const v = r.inFlight;
    if (v === null || taken !== v.version) return;  // a stray or repeated TAKEN changes nothing
    this.#landed(r);
    r.taken = taken;
    this.emit('taken', this.#info(r), taken);
    for (const p of this.#pending) {
      if (p.version <= taken && p.waiting.delete(r)) {
        p.delivered++;
        this.#settle(p);
      }
    }
    this.#push(r);
  }

  /** The version in flight to `r` is no longer: taken, or `r` is gone. */
  #landed(r: Reader): void {
    if (r.timer !== null) clearTimeout(r.timer);
    r.timer = null;
    const v = r.inFlight;
    r.inFlight = null;
    if (v !== null) {
      v.inFlight--;
      this.#release(v);
    }
  }

  /** Forgets a reader: closes its channel, counts it as dropped where it was awaited. */
  #drop(r: Reader, reason: SnapshotDetachReason): void {
    if (r.gone) return;
    const info = this.#info(r);
    r.gone = true;
    this.#readers.delete(r);
    this.#landed(r);
    r.channel.close();
    for (const p of this.#pending) {
      if (p.waiting.delete(r)) {
        p.drops.push({ reader: info, reason });
        this.#settle(p);
      }
    }
    this.emit('detach', info, reason);
  }

  #settle(p: Pending): void {
    if (p.waiting.size > 0) return;
    this.#pending.delete(p);
    p.resolve(Object.freeze({ version: p.version, delivered: p.delivered, dropped: p.drops.length, drops: Object.freeze(p.drops) }));
  }
}
