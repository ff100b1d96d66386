// Subscriber: the reading end of a Publisher's pool. It verifies the pool's
// memfd (a memfd, sealed against shrinking, growing and writes by anyone
// without an existing writable mapping, sized as announced and within
// maxSize: pool-open.ts), maps it PROT_READ | MAP_SHARED once, and from then on
// turns each announcement into a Sample (sample.ts): a read-only view of one slot.
import { native } from '../kernel/binding';
import { type Channel } from '../channel/channel';
import { type ChannelOptions } from '../channel/channel-util';
import { type Message, receiveOwned } from '../channel/message';
import { connect } from '../channel/channel-server';
import { abortError, closedError, illegalConstructor, invalidArgType, MemsealError } from '../kernel/errors';
import { type Mapping } from '../kernel/mapping';
import { DEFAULT_MAX_SIZE } from '../sealed/verify';
import { validateAbortSignal, validateLength, validateObject } from '../kernel/validate';
import { detachedError, mapPool } from './pool-open';
import * as P from './protocol';
import { newSample, type Sample, type SampleOwner } from './sample';

export { Sample } from './sample';

const construct = Symbol('Subscriber.construct');

/** Default bound on the pool size a subscriber maps: DEFAULT_MAX_SIZE (1 GiB), as every receiver's. */
export const DEFAULT_MAX_POOL_SIZE = DEFAULT_MAX_SIZE;

export interface SubscriberOptions {
  /** Largest pool (whole file, header included) to map, in bytes. Default 1 GiB. */
  maxSize?: number;
  /**
   * Gives up waiting for the publisher's HELLO: attach() then closes the
   * channel and rejects with an AbortError (code 'ABORT_ERR'), as Node's own
   * APIs do. A peer that connects and never speaks otherwise keeps attach()
   * waiting; `AbortSignal.timeout(ms)` bounds it.
   */
  signal?: AbortSignal;
}

export interface SubscriberConnectOptions extends SubscriberOptions, ChannelOptions {}

interface Waiter {
  resolve: (s: Sample) => void;
  reject: (err: Error) => void;
}

/**
 * The reading end of a {@link Publisher}'s stream. Samples arrive in
 * publishing order; each stays valid (and its slot held) until released.
 */
export class Subscriber {
  /** The pool's seals as verified (F_GET_SEALS). */
  readonly seals: number;
  readonly slots: number;
  readonly slotSize: number;
  /** Bytes of the pool mapping. */
  readonly size: number;
  #channel: Channel;
  #mapping: Mapping;
  #header: Buffer;
  #geometry: P.PoolGeometry;
  #queue: Sample[] = [];
  #qhead = 0;
  #waiters: Waiter[] = [];
  #held: Uint8Array;       // slots this side holds (delivered or queued, not released)
  #heldCount = 0;
  #lastSeq = 0;
  #relSlots: number[] = [];
  #relSeqs: number[] = [];
  #relScheduled = false;
  #closed = false;           // nothing more is delivered (locally closed, detached, or the publisher ended)
  #cleanEnd = false;         // the publisher's clean close() (DETACH "closing"): queued samples are still delivered
  #failure: MemsealError | null = null;
  #quota: number;
  #missed = 0;
  // what a Sample may do to this stream
  #owner: SampleOwner = {
    copy: (slot, seq, src, dst) => native.poolCopy(this.#header, P.wordOffset(slot), 2 * seq, src, dst),
    release: (slot, seq) => this.#release(slot, seq),
  };

  /** Not public: use Subscriber.attach() or connect(). */
  private constructor(token: symbol, channel: Channel, mapping: Mapping, g: P.PoolGeometry, seals: number, quota: number) {
    if (token !== construct) throw illegalConstructor('Subscriber.attach() or Subscriber.connect()');
    this.#channel = channel;
    this.#mapping = mapping;
    this.#geometry = g;
    this.#header = mapping.bytes(0, g.headerSize);
    this.#held = new Uint8Array(g.slots);
    this.seals = seals;
    this.slots = g.slots;
    this.slotSize = g.slotSize;
    this.size = g.poolSize;
    this.#quota = quota;
    channel.maxFds = 0;  // nothing after HELLO carries a descriptor: any that come are closed at once
    channel.on('message', (m: Message) => this.#onMessage(m));
    channel.on('error', (err: Error) => this.#fail(P.protocolError(`the publisher sent a bad message: ${err.message}`)));
    channel.on('close', () => this.#hungUp());
    // an empty RELEASE acknowledges HELLO: the publisher lets go of peers that never read it
    channel.send(P.encodeRelease([], [], 0, 0)).catch(() => {});
  }

  /**
   * Receives the pool from the publisher at the other end of `channel`,
   * verifies it and maps it read-only. The subscriber owns the channel from
   * now on. The first message must be the pool's HELLO with exactly one
   * descriptor; whatever is refused is closed (every received descriptor,
   * and the channel).
   * @rejects MemsealError ERR_MEMSEAL_NOT_MEMFD, ERR_MEMSEAL_NOT_SEALED (no SHRINK/GROW, or
   *   neither WRITE nor FUTURE_WRITE), ERR_MEMSEAL_SIZE (not the announced size, or over maxSize),
   *   ERR_MEMSEAL_PROTOCOL (not a HELLO, bad geometry, header mismatch), ERR_MEMSEAL_CLOSED
   */
  static async attach(channel: Channel, options: SubscriberOptions = {}): Promise<Subscriber> {
    if (channel === null || typeof channel !== 'object' || typeof (channel as Channel).receive !== 'function') {
      throw invalidArgType('channel', 'an instance of Channel', channel);
    }
    validateObject(options, 'options');
    const maxSize = options.maxSize ?? DEFAULT_MAX_POOL_SIZE;
    validateLength(maxSize, 'options.maxSize');
    const { signal } = options;
    if (signal !== undefined) validateAbortSignal(signal, 'options.signal');
    let onAbort: (() => void) | undefined;
    try {
      if (signal?.aborted) throw abortError(signal, 'Subscriber.attach()');
      // the pool's descriptor stays tracked (closed if this environment is torn down) until mapped and closed
      const hello = channel[receiveOwned]?.() ?? channel.receive();
      let message: Message;
      if (signal === undefined) {
        message = await hello;
      } else {
        const aborted = new Promise<never>((_resolve, reject) => {
          onAbort = () => reject(abortError(signal, 'Subscriber.attach()'));
          signal.addEventListener('abort', onAbort, { once: true });
        });
        // once aborted, a HELLO that still arrives is nobody's: its descriptor is closed
        hello.then((m) => { if (signal.aborted) m.closeFds(); }, () => {});
        message = await Promise.race([hello, aborted]);
      }
      return Subscriber.#open(channel, message, maxSize);
    } catch (err) {
      channel.close();
      throw err;
    } finally {
      if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
    }
  }

  /** connect(path) + attach(). */
  static async connect(path: string, options: SubscriberConnectOptions = {}): Promise<Subscriber> {
    validateObject(options, 'options');
    const { maxSize, signal, ...channelOptions } = options;
    if (maxSize !== undefined) validateLength(maxSize, 'options.maxSize');
    if (signal !== undefined) validateAbortSignal(signal, 'options.signal');
    const channel = await connect(path, channelOptions);
    return Subscriber.attach(channel, { maxSize, signal });
  }

  static #open(channel: Channel, message: Message, maxSize: number): Subscriber {
    const fds = message.takeFds();
    try {
      if (message.data[0] === P.MsgType.DETACH) throw detachedError('Subscriber.attach()', message.data);  // refused (full)
      if (fds.length !== 1) {
        throw fds.length === 0
          ? new MemsealError('ERR_MEMSEAL_NOT_MEMFD', 'Subscriber.attach(): the first message carried no descriptor',
            { hint: 'the peer is not a memseal Publisher' })
          : new MemsealError('ERR_MEMSEAL_CTRUNC', `Subscriber.attach(): the first message carried ${fds.length} descriptors, expected 1`);
      }
      const g = P.decodeHello(message.data);
      const { mapping, seals } = mapPool(fds[0]!, g, maxSize);
      return new Subscriber(construct, channel, mapping, g, seals, P.helloTerms(message.data, g).quota);
    } finally {
      for (const fd of fds) native.close(fd);  // the mapping keeps the file; the descriptor is not needed
    }
  }

  /** Nothing more will be delivered: closed locally, detached, or the publisher ended the stream. */
  get closed(): boolean { return this.#closed && this.#qhead >= this.#queue.length; }
  /** Samples this side holds: received (queued or delivered) and not released. */
  get held(): number { return this.#heldCount; }
  /** The quota the publisher declared in HELLO (`maxHeld`): more announced and unreleased samples are refused. */
  get quota(): number { return this.#quota; }
  /** Samples the publisher skipped for this subscriber since its first one (gaps in `sequence`). */
  get missed(): number { return this.#missed; }
  /** The publisher's process (SO_PEERCRED). */
  get peer(): Channel['peer'] { return this.#channel.peer; }
  /** Why the stream ended, unless it ended cleanly: ERR_MEMSEAL_DETACHED, ERR_MEMSEAL_PUBLISHER_GONE or ERR_MEMSEAL_PROTOCOL. */
  get failure(): MemsealError | null { return this.#failure; }

  /**
   * The next sample.
   * @rejects ERR_MEMSEAL_DETACHED (the publisher detached this subscriber: too slow, or a protocol
   *   matter; the message says why), ERR_MEMSEAL_PUBLISHER_GONE (it hung up without close(): crashed or
   *   killed), every time once the stream failed; ERR_MEMSEAL_PROTOCOL once when the publisher sent
   *   something invalid; ERR_MEMSEAL_CLOSED after a clean end (the publisher's close(), or this side's)
   */
  receive(): Promise<Sample> {
    if (this.#qhead < this.#queue.length) return Promise.resolve(this.#shift());
    if (this.#closed) return Promise.reject(this.#takeEndError());
    return new Promise<Sample>((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /**
   * `for await (const sample of subscriber)`: samples until the stream ends.
   * Release each one. Ends quietly only after a clean end (the publisher's
   * `close()`, or this side's); throws ERR_MEMSEAL_DETACHED /
   * ERR_MEMSEAL_PUBLISHER_GONE / ERR_MEMSEAL_PROTOCOL otherwise.
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<Sample, void, undefined> {
    for (;;) {
      let s: Sample;
      try {
        s = await this.receive();
      } catch (err) {
        if ((err as MemsealError).code === 'ERR_MEMSEAL_CLOSED') return;
        throw err;
      }
      yield s;
    }
  }

  /**
   * Stops the stream: samples not yet received are dropped (released). The
   * samples already handed out stay readable — and their slots held at the
   * publisher, with the connection — until each is released; then this side
   * hangs up and unmaps the pool. Idempotent.
   */
  close(): void {
    this.#dropQueued();
    this.#end(null);
  }

  [Symbol.dispose](): void { this.close(); }

  // ---- internals ----

  #shift(): Sample {
    const s = this.#queue[this.#qhead]!;
    this.#queue[this.#qhead++] = undefined as unknown as Sample;
    if (this.#qhead === this.#queue.length) {
      this.#queue = [];
      this.#qhead = 0;
    }
    return s;
  }

  #endError(): MemsealError {
    const why = this.#failure;
    if (why !== null && why.code !== 'ERR_MEMSEAL_PROTOCOL') return why;
    return closedError('Subscriber.receive()', 'the subscriber', 'closed', why === null
      ? { hint: this.#cleanEnd ? 'the publisher closed the stream' : 'this side closed it' }
      : { reason: why.message, cause: why });
  }

  #onMessage(m: Message): void {
    m.closeFds();
    if (this.#closed) return;
    const type = m.data[0] ?? 0;
    if (type === P.MsgType.SAMPLES) {
      let entries: P.SampleEntry[];
      try {
        entries = P.decodeSamples(m.data, this.#geometry);
      } catch (err) {
        this.#fail(err as MemsealError);
        return;
      }
      if (this.#heldCount + entries.length > this.#quota) {
        this.#fail(P.protocolError(`the publisher announced ${entries.length} sample(s) to a subscriber holding ` +
          `${this.#heldCount} of its quota of ${this.#quota}`));
        return;
      }
      for (const e of entries) {
        if (this.#held[e.slot] !== 0) {
          this.#fail(P.protocolError(`the publisher announced slot ${e.slot} again while this subscriber holds it`));
          return;
        }
        if (e.sequence <= this.#lastSeq) {
          this.#fail(P.protocolError(`sample sequence ${e.sequence} is not after ${this.#lastSeq}`));
          return;
        }
        if (this.#lastSeq !== 0) this.#missed += e.sequence - this.#lastSeq - 1;
        this.#lastSeq = e.sequence;
        this.#held[e.slot] = 1;
        this.#heldCount++;
        if (this.#closed) {
          // closing or detached: nothing more is delivered; give it back at once
          this.#release(e.slot, e.sequence);
          continue;
        }
        const off = this.#geometry.headerSize + e.slot * this.#geometry.slotStride;
        const s = newSample(this.#owner, e, this.#mapping.bytes(off, e.length));
        const w = this.#waiters.shift();
        if (w !== undefined) w.resolve(s);
        else this.#queue.push(s);
      }
    } else if (type === P.MsgType.DETACH) {
      if (m.data[1] === P.DetachReason.CLOSING) {
        this.#cleanEnd = true;  // the pool is never written again: what is queued stays deliverable
        this.#end(null);
      } else {
        this.#dropQueued();
        this.#end(detachedError('Subscriber.receive()', m.data));
      }
    } else if (type < 0x80) {
      this.#fail(P.protocolError(`the publisher sent an unknown message type ${type}`));
    }
  }

  /** A protocol violation by the publisher: nothing queued is delivered; receive() rejects once with it, then ERR_MEMSEAL_CLOSED. */
  #fail(err: MemsealError): void {
    if (this.#failure !== null || this.#cleanEnd) return;
    this.#failOnce = err;
    this.#dropQueued();
    this.#end(err);
    this.#channel.close();  // a publisher that breaks the protocol is not owed our hold
    this.#unmapIfDone();
  }

  #release(slot: number, seq: number): void {
    if (this.#held[slot] === 0) return;
    this.#held[slot] = 0;
    this.#heldCount--;
    if (this.#channel.closed) {
      this.#unmapIfDone();
      return;
    }
    this.#relSlots.push(slot);
    this.#relSeqs.push(seq);
    if (!this.#relScheduled) {
      this.#relScheduled = true;
      process.nextTick(() => this.#flushReleases());
    }
  }

  #flushReleases(): void {
    this.#relScheduled = false;
    const slots = this.#relSlots;
    const seqs = this.#relSeqs;
    this.#relSlots = [];
    this.#relSeqs = [];
    if (this.#channel.closed) return;
    for (let i = 0; i < slots.length; i += P.MAX_RELEASES) {
      const n = Math.min(P.MAX_RELEASES, slots.length - i);
      this.#channel.send(P.encodeRelease(slots, seqs, i, n)).catch(() => { /* the publisher is gone: nothing to release */ });
    }
    this.#unmapIfDone();
  }

  /**
   * No more deliveries: `failure` null for a clean end. Waiting receive()s
   * settle; the connection stays until every sample handed out is released
   * (an honest subscriber's hold is what keeps the publisher off its slots).
   */
  #end(failure: MemsealError | null): void {
    if (this.#closed) return;
    this.#closed = true;
    if (failure !== null) this.#failure = failure;
    if (this.#qhead >= this.#queue.length) for (const w of this.#waiters.splice(0)) w.reject(this.#takeEndError());
    this.#unmapIfDone();
  }

  /** The publisher hung up: a clean end if it said "closing" first, else it is gone (crashed, killed). */
  #hungUp(): void {
    if (!this.#closed && !this.#cleanEnd) {
      // a publisher that lives on may reuse what it announced: nothing queued is delivered
      this.#dropQueued();
      this.#end(new MemsealError('ERR_MEMSEAL_PUBLISHER_GONE', 'Subscriber.receive(): the publisher hung up without close()',
        { hint: 'it crashed, was killed, or closed its channel; samples still held may be reused: copy() checks' }));
    }
    this.#unmapIfDone();
  }

  /** Hangs up and unmaps once nothing is delivered any more and nothing is held. */
  #unmapIfDone(): void {
    if (!this.#closed || this.#heldCount > 0 || this.#relScheduled) return;
    this.#channel.close();
    if (!this.#mapping.closed) this.#mapping.unmap();
  }

  #dropQueued(): void {
    const undelivered = this.#queue.slice(this.#qhead);
    this.#queue = [];
    this.#qhead = 0;
    for (const s of undelivered) s.release();
  }

  /** The violation once, then ERR_MEMSEAL_CLOSED. */
  #takeEndError(): MemsealError {
    const err = this.#failOnce;
    if (err !== null) {
      this.#failOnce = null;
      return err;
    }
    return this.#endError();
  }

  #failOnce: MemsealError | null = null;
}
