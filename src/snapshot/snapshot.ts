// Periodic snapshots over SealedBuffer: a publisher hands every subscriber the
// latest version of a dataset, a reader keeps the latest one it was given.
// One buffer in flight per subscriber: a slow reader skips versions instead of
// queueing them (and their memory), and always ends up with the newest.
// Wire: one sendBuffer() message per version, meta = JSON {"version": n, "meta": "..."}.
import { type Channel } from '../sealed/channel';
import { closedError } from '../kernel/errors';
import { SealedBuffer } from '../sealed/sealed';
import { type VerifyOptions } from '../sealed/verify';
import { validateObject } from '../kernel/validate';

/** One version of the dataset, as a reader holds it. */
export interface Snapshot {
  /** 1, 2, 3 … in publishing order. */
  readonly version: number;
  /** The sealed bytes; closed by the reader when a newer version arrives, or by `close()`. */
  readonly buffer: SealedBuffer;
  /** What the publisher passed with this version. */
  readonly meta: string;
}

interface Subscriber { busy: boolean; sent: number }
interface Held extends Snapshot { inflight: number }

/**
 * Publishes versions of a dataset to any number of channels. `publish()` seals
 * the new version and sends it to every subscriber that is not still taking
 * the previous one; those get the newest when they catch up. A channel attached
 * later gets the latest version at once.
 * @example
 * ```ts
 * const pub = new SnapshotPublisher();
 * server.on('connection', (ch) => pub.attach(ch));
 * pub.publish(JSON.stringify(table), 'nightly');     // version 1, 2, …
 * ```
 */
export class SnapshotPublisher {
  #latest: Held | null = null;
  #subscribers = new Map<Channel, Subscriber>();
  #closed = false;

  /** The version last published (0 before the first). */
  get version(): number { return this.#latest?.version ?? 0; }
  /** Channels currently attached. */
  get subscribers(): number { return this.#subscribers.size; }

  /**
   * Seals `data` (or takes `buffer`, which the publisher then owns and closes
   * once a newer version replaces it) as the next version and sends it.
   * @returns the new version number
   */
  publish(data: SealedBuffer | ArrayBufferView | ArrayBuffer | string, meta = ''): number {
    if (this.#closed) throw closedError('SnapshotPublisher.publish()', 'the publisher');
    const buffer = data instanceof SealedBuffer ? data : SealedBuffer.from(data, { name: 'snapshot' });
    const previous = this.#latest;
    this.#latest = { version: this.version + 1, buffer, meta, inflight: 0 };
    if (previous !== null && previous.inflight === 0) previous.buffer.close(); // else when its last send settles
    for (const [ch, sub] of this.#subscribers) this.#push(ch, sub);
    return this.#latest.version;
  }

  /** Sends the latest version to `channel` now, and every later one; detaches when it closes. */
  attach(channel: Channel): void {
    if (this.#closed) throw closedError('SnapshotPublisher.attach()', 'the publisher');
    if (this.#subscribers.has(channel) || channel.closed) return;
    const sub: Subscriber = { busy: false, sent: 0 };
    this.#subscribers.set(channel, sub);
    channel.once('close', () => { this.#subscribers.delete(channel); });
    this.#push(channel, sub);
  }

  #push(ch: Channel, sub: Subscriber): void {
    const latest = this.#latest;
    if (sub.busy || latest === null || sub.sent >= latest.version || ch.closed) return;
    sub.busy = true;
    sub.sent = latest.version;
    latest.inflight++;
    // A send waiting for socket space may refer to the buffer's descriptor: keep it open until it settles.
    const settled = () => {
      if (--latest.inflight === 0 && latest !== this.#latest) latest.buffer.close();
    };
    ch.sendBuffer(latest.buffer, JSON.stringify({ version: latest.version, meta: latest.meta })).then(
      () => { settled(); sub.busy = false; if (!this.#closed) this.#push(ch, sub); },
      () => { settled(); this.#subscribers.delete(ch); ch.close(); }, // a subscriber that cannot take it is dropped
    );
  }

  /** Closes the latest buffer; attached channels stay open (they are the caller's). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const latest = this.#latest;
    this.#latest = null;
    if (latest !== null && latest.inflight === 0) latest.buffer.close(); // else when its last send settles
    this.#subscribers.clear();
  }

  [Symbol.dispose](): void { this.close(); }
}

export interface SnapshotReaderOptions extends VerifyOptions {
  /** Largest snapshot accepted, in bytes (as receiveBuffer's maxSize). Required: a peer could send anything. */
  maxSize: number;
}

/**
 * Keeps the latest snapshot a {@link SnapshotPublisher} sent over `channel`.
 * Each new version replaces (and closes) the one before: copy what must outlive
 * it. `latest` is the current one; `next()` waits for a newer one.
 * @example
 * ```ts
 * const reader = new SnapshotReader(await connect('\0dataset'), { maxSize: 256 << 20 });
 * const snap = await reader.next();           // the first version
 * JSON.parse(snap.buffer.bytes.toString());
 * ```
 */
export class SnapshotReader {
  #channel: Channel;
  #latest: Snapshot | null = null;
  #waiters: { after: number; resolve: (s: Snapshot) => void; reject: (e: Error) => void }[] = [];
  #error: Error | null = null;
  #given = 0;

  constructor(channel: Channel, options: SnapshotReaderOptions) {
    validateObject(options, 'options');
    this.#channel = channel;
    void this.#read(options);
  }

  /** The newest version received, or null before the first. */
  get latest(): Snapshot | null { return this.#latest; }

  /**
   * Resolves with the latest version once it is newer than `after` (default: the
   * version the previous `next()` resolved with; 0 at first). Versions that came
   * and went in between are skipped.
   */
  next(after = this.#given): Promise<Snapshot> {
    const p = this.#latest !== null && this.#latest.version > after ? Promise.resolve(this.#latest)
      : this.#error !== null ? Promise.reject(this.#error)
        : new Promise<Snapshot>((resolve, reject) => { this.#waiters.push({ after, resolve, reject }); });
    return p.then((snap) => { this.#given = Math.max(this.#given, snap.version); return snap; });
  }

  async #read(options: SnapshotReaderOptions): Promise<void> {
    try {
      for (;;) {
        const { buffer, meta } = await this.#channel.receiveBuffer(options);
        const header = parseHeader(meta);
        if (header === null || header.version <= (this.#latest?.version ?? 0)) {
          buffer.close(); // malformed or out of order: keep what we have
          continue;
        }
        this.#latest?.buffer.close();
        const snap: Snapshot = { version: header.version, buffer, meta: header.meta };
        this.#latest = snap;
        const ready = this.#waiters.filter((w) => w.after < snap.version);
        this.#waiters = this.#waiters.filter((w) => w.after >= snap.version);
        for (const w of ready) w.resolve(snap);
      }
    } catch (err) {
      this.#error = err as Error;
      for (const w of this.#waiters.splice(0)) w.reject(this.#error);
    }
  }

  /** Closes the channel and the latest snapshot. Idempotent. */
  close(): void {
    this.#channel.close();
    this.#latest?.buffer.close();
    this.#latest = null;
  }

  [Symbol.dispose](): void { this.close(); }
}

function parseHeader(meta: Buffer): { version: number; meta: string } | null {
  try {
    const h = JSON.parse(meta.toString()) as { version?: unknown; meta?: unknown };
    if (typeof h.version !== 'number' || !Number.isSafeInteger(h.version)) return null;
    return { version: h.version, meta: typeof h.meta === 'string' ? h.meta : '' };
  } catch {
    return null;
  }
}
