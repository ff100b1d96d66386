// Publisher: one writer over a reusable pool of slots in a memfd sealed
// SHRINK | GROW | FUTURE_WRITE | SEAL (F_SEAL_FUTURE_WRITE: Linux 5.1). The
// publisher keeps the only writable mapping; subscribers can only map it
// read-only. A sample costs one small message per subscriber (protocol.ts).
// Its options and events are in publisher-options.ts, the Loan of a slot in loan.ts.
import { type FdHandle, native } from '../kernel/binding';
import { Channel } from '../channel/channel';
import { type ChannelServer, listen, type ListenOptions } from '../channel/channel-server';
import { constants as C, Seal } from '../kernel/constants';
import { check, closedError, illegalConstructor, invalidArgType, MemsealError, outOfRange } from '../kernel/errors';
import { TypedEventEmitter } from '../util/events';
import { features } from '../kernel/features';
import { DEFERRED_RELEASE_BYTES, type Mapping, mmap } from '../kernel/mapping';
import { createMemfd } from '../sealed/sealed-create';
import { type Message } from '../channel/message';
import { toBytes } from '../kernel/validate';
import { type Lender, type Loan, newLoan, toMeta } from './loan';
import * as P from './protocol';
import {
  type DetachReason, type PublisherEvents, type PublisherOptions, publisherOptions, type SlowPolicy, type SubscriberInfo,
} from './publisher-options';

const PAGE = native.pageSize();
const construct = Symbol('Publisher.construct');

/** The seals a pool carries: nobody can resize it, nobody but the publisher's existing mapping can write it. */
export const POOL_SEALS = Seal.SHRINK | Seal.GROW | Seal.FUTURE_WRITE | Seal.SEAL;

interface Sub {
  id: number;
  channel: Channel;
  held: Map<number, number>;  // slot -> sequence
  pending: P.SampleEntry[];
  flushScheduled: boolean;
  gone: boolean;
}

interface LoanWaiter {
  resolve: (loan: Loan) => void;
  reject: (err: Error) => void;
}

const DATA_TYPES = 'a string, an ArrayBuffer or an ArrayBufferView';

function publisherClosed(op: string): MemsealError {
  return closedError(`Publisher.${op}()`, 'the publisher');
}

/**
 * The writing end of a stream over a sealed slot pool. `loan()` a slot,
 * fill it, `send()` it — or `publish(data)` (one copy). Subscribers get the
 * pool's memfd once (`attach()`/`listen()`) and map it read-only; after
 * that each sample is one small message. A slot is reused when every
 * subscriber that got it released it or went away; the newest sample stays
 * in its slot for subscribers that attach later (unless a loan needs that slot).
 *
 * Events (typed in {@link PublisherEvents}): `'attach'` (SubscriberInfo),
 * `'detach'` (SubscriberInfo, reason).
 */
export class Publisher extends TypedEventEmitter<PublisherEvents> {
  /** The pool's memfd (close-on-exec); -1 once closed. */
  get fd(): number { return this.#closed ? -1 : this.#fd; }
  readonly slots: number;
  readonly slotSize: number;
  /** Bytes of the whole pool file (header + slots). */
  readonly size: number;
  readonly name: string;
  readonly maxHeld: number;
  readonly onSlow: SlowPolicy;
  readonly slowTimeout: number;

  #fd: number;
  // Owns the pool's descriptor natively: closed by close(), by the garbage collector, or at
  // environment teardown (a worker's end), where FinalizationRegistry callbacks never run.
  #fdHandle: FdHandle;
  #mapping: Mapping;
  #header: Buffer;
  #views: Buffer[] = [];
  #geometry: P.PoolGeometry;
  #refs: Int32Array;
  #loaned: Uint8Array;
  #seq: Float64Array;
  #free: number[] = [];
  #latest = -1;
  #latestEntry: P.SampleEntry | null = null;
  #nextSeq = 0;
  #subs = new Set<Sub>();
  #nextId = 1;
  #waiters: LoanWaiter[] = [];
  #timer: NodeJS.Timeout | null = null;
  #servers: ChannelServer[] = [];
  #closed = false;
  // what a Loan may do to the pool
  #lender: Lender = {
    publish: (slot, length, meta) => {
      if (this.#closed) throw publisherClosed('send');
      this.#publish(slot, length, meta);
    },
    cancel: (slot) => {
      if (this.#closed) return;
      this.#loaned[slot] = 0;
      this.#unref(slot, 0);
      this.#wake();
    },
  };

  /** Not public: use Publisher.create(). */
  private constructor(token: symbol, fd: number, handle: FdHandle, mapping: Mapping, g: P.PoolGeometry,
    o: Required<Omit<PublisherOptions, 'slots' | 'slotSize'>>) {
    if (token !== construct) throw illegalConstructor('Publisher.create()');
    super();
    this.#fd = fd;
    this.#fdHandle = handle;
    this.#mapping = mapping;
    this.#geometry = g;
    this.slots = g.slots;
    this.slotSize = g.slotSize;
    this.size = g.poolSize;
    this.name = o.name;
    this.maxHeld = o.maxHeld;
    this.onSlow = o.onSlow;
    this.slowTimeout = o.slowTimeout;
    this.#header = mapping.bytes(0, g.headerSize);
    this.#refs = new Int32Array(g.slots);
    this.#loaned = new Uint8Array(g.slots);
    this.#seq = new Float64Array(g.slots);
    for (let i = g.slots - 1; i >= 0; i--) this.#free.push(i);
  }

  /**
   * Creates the pool: memfd_create(2), ftruncate(2), one writable shared
   * mapping, then F_ADD_SEALS SHRINK | GROW | FUTURE_WRITE | SEAL (Linux 5.1).
   * @throws MemsealError ERR_MEMSEAL_UNSUPPORTED without F_SEAL_FUTURE_WRITE; RangeError/TypeError for bad options
   */
  static create(options: PublisherOptions): Publisher {
    const { slots, slotSize, name, maxHeld, onSlow, slowTimeout } = publisherOptions(options);
    if (!features.futureWrite) {
      throw new MemsealError('ERR_MEMSEAL_UNSUPPORTED', 'Publisher.create(): this kernel lacks F_SEAL_FUTURE_WRITE',
        { hint: 'needs Linux ≥ 5.1 (F_SEAL_FUTURE_WRITE)' });
    }
    const g = P.geometry(slots, slotSize, PAGE);
    // MFD_NOEXEC_SEAL (6.3) where the kernel has it: the pool is never executable. Not F_SEAL_EXEC on an
    // executable memfd: on such a file the kernel turns F_SEAL_EXEC into WRITE too (W^X), which would
    // fail with EBUSY against our own writable mapping.
    // The same creation as SealedBuffer's: owned natively from the moment it exists (a worker
    // terminated at any point after this closes it), errors with their hints.
    const [fd, handle] = createMemfd({ name, seals: 0, hugeFlags: 0, hugeSize: 0, exact: false });
    let mapping: Mapping | undefined;
    try {
      check(native.ftruncate(fd, g.poolSize), 'ftruncate');
      mapping = mmap(g.poolSize, C.PROT_READ | C.PROT_WRITE, C.MAP_SHARED, fd);
      P.writeHeader(mapping.bytes(0, g.headerSize), g);
      check(native.addSeals(fd, POOL_SEALS), 'fcntl', 'F_ADD_SEALS');
      return new Publisher(construct, fd, handle, mapping, g, { name, maxHeld, onSlow, slowTimeout });
    } catch (err) {
      mapping?.unmap();
      native.fdClose(handle, false);
      throw err;
    }
  }

  /** Attached subscribers. */
  get subscribers(): number { return this.#subs.size; }

  /** A snapshot of the attached subscribers. */
  get subscriberList(): SubscriberInfo[] { return [...this.#subs].map((s) => this.#info(s)); }

  /** Samples published so far (the last sequence number). */
  get sequence(): number { return this.#nextSeq; }

  get closed(): boolean { return this.#closed; }

  /**
   * Hands the pool to the subscriber at the other end of `channel` (one
   * HELLO message carrying the memfd), then the newest sample if there is
   * one. The publisher owns the channel from now on: it closes it when the
   * subscriber is detached or the publisher closes.
   * @rejects TypeError if `channel` is not a Channel; ERR_MEMSEAL_CLOSED; EPIPE when the peer is gone
   */
  async attach(channel: Channel): Promise<void> {
    if (!(channel instanceof Channel)) throw invalidArgType('channel', 'an instance of Channel', channel);
    if (this.#closed) throw publisherClosed('attach');
    if (channel.closed) throw closedError('Publisher.attach()', 'the channel');
    channel.maxFds = 0;  // a subscriber sends no descriptors: any that come are closed with ERR_MEMSEAL_CTRUNC
    const sub: Sub = { id: this.#nextId++, channel, held: new Map(), pending: [], flushScheduled: false, gone: false };
    const hello = channel.send(P.encodeHello(this.#geometry), [this.#fd]);
    this.#subs.add(sub);
    channel.on('message', (m: Message) => this.#onMessage(sub, m));
    channel.on('error', () => this.#detach(sub, 'protocol', 'sent a message the channel refused'));
    channel.on('close', () => this.#drop(sub, 'closed'));
    if (this.#latestEntry !== null) this.#hold(sub, this.#latestEntry);
    try {
      await hello;
    } catch (err) {
      this.#drop(sub, 'error');
      throw err;
    }
    if (!sub.gone) this.emit('attach', this.#info(sub));
  }

  /**
   * Listens on a path or abstract name ({@link listen}) and attaches every
   * subscriber that connects. The publisher closes the server when it closes.
   */
  async listen(path: string, options?: ListenOptions): Promise<ChannelServer> {
    if (this.#closed) throw publisherClosed('listen');
    const server = await listen(path, options);
    if (this.#closed) {
      server.close();
      throw publisherClosed('listen');
    }
    this.#servers.push(server);
    server.on('connection', (ch: Channel) => {
      this.attach(ch).catch(() => ch.close());  // the subscriber went before it got the pool: 'detach' said so
    });
    server.on('close', () => {
      const i = this.#servers.indexOf(server);
      if (i >= 0) this.#servers.splice(i, 1);
    });
    return server;
  }

  /**
   * A free slot to write into. Resolves at once while one is free; waits
   * while every slot is held (or a subscriber holds `maxHeld` samples: see
   * `onSlow`). The slot's sequence word is made odd first, so a subscriber
   * still copying an older sample from it sees ERR_MEMSEAL_TORN.
   * @rejects ERR_MEMSEAL_CLOSED when the publisher closes
   */
  loan(): Promise<Loan> {
    if (this.#closed) return Promise.reject(publisherClosed('loan'));
    const slot = this.#take();
    if (slot >= 0) return Promise.resolve(newLoan(this.#lender, slot, this.#view(slot)));
    return new Promise<Loan>((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      this.#armTimer();
    });
  }

  /**
   * loan() + one copy of `data` into the slot + send(). Strings are sent as UTF-8.
   * When every slot is held, the copy happens once one is free: do not change `data`
   * until the returned promise settles.
   * @rejects RangeError if data is larger than slotSize (nothing loaned); ERR_MEMSEAL_CLOSED
   */
  publish(data: ArrayBufferView | ArrayBuffer | string, meta?: Uint8Array | string): Promise<void> {
    try {
      const src = toBytes(data, DATA_TYPES, { arrayBuffers: true });
      if (src.length > this.slotSize) throw outOfRange('data.byteLength', `<= ${this.slotSize} (slotSize)`, src.length);
      const m = toMeta(meta);
      if (this.#closed) throw publisherClosed('publish');
      const slot = this.#take();
      if (slot >= 0) {
        this.#view(slot).set(src);
        this.#publish(slot, src.length, m);
        return Promise.resolve();
      }
      // no copy while waiting: the bytes are read when a slot is free (a stream's steady state)
      return this.loan().then((loan) => {
        loan.bytes.set(src);
        return loan.send(src.length, m);
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Hangs up on every subscriber (each sees ERR_MEMSEAL_CLOSED after the
   * samples it already has; its mapping stays valid until it releases them),
   * closes the servers of `listen()`, rejects waiting loans, unmaps the pool
   * (outstanding Loan views become length 0) and closes the memfd. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    for (const w of this.#waiters.splice(0)) w.reject(publisherClosed('loan'));
    for (const sub of [...this.#subs]) this.#drop(sub, 'publisher-closed');
    for (const s of this.#servers.splice(0)) s.close();
    this.#views = [];
    this.#mapping.unmap();
    native.fdClose(this.#fdHandle, this.size >= DEFERRED_RELEASE_BYTES);
  }

  [Symbol.dispose](): void { this.close(); }

  // ---- internals ----

  #view(slot: number): Buffer {
    let v = this.#views[slot];
    if (v === undefined) {
      v = this.#mapping.bytes(this.#geometry.headerSize + slot * this.#geometry.slotStride, this.slotSize);
      this.#views[slot] = v;
    }
    return v;
  }

  #info(s: Sub): SubscriberInfo {
    return Object.freeze({ id: s.id, peer: s.channel.peer, held: s.held.size });
  }

  /** A slot for a loan, or -1. Applies the per-subscriber bound first. */
  #take(): number {
    for (const sub of this.#subs) {
      if (sub.held.size < this.maxHeld) continue;
      if (this.onSlow === 'detach') this.#detach(sub, 'slow', `held ${sub.held.size} samples (maxHeld ${this.maxHeld})`);
      else return -1;
    }
    let slot = this.#free.pop() ?? -1;
    if (slot < 0 && this.#latest >= 0 && this.#refs[this.#latest] === 1) {
      // only the retained newest sample holds it: a loan needs the slot more than late joiners do
      slot = this.#latest;
      this.#refs[slot] = 0;
      this.#latest = -1;
      this.#latestEntry = null;
    }
    if (slot < 0) return -1;
    this.#loaned[slot] = 1;
    native.poolBegin(this.#header, P.wordOffset(slot), 2 * this.#seq[slot]! + 1);
    return slot;
  }

  #publish(slot: number, length: number, meta: Uint8Array): void {
    const seq = ++this.#nextSeq;
    this.#seq[slot] = seq;
    this.#loaned[slot] = 0;
    native.poolEnd(this.#header, P.wordOffset(slot), 2 * seq);
    const entry: P.SampleEntry = { slot, sequence: seq, length, meta };
    const previous = this.#latest;
    this.#latest = slot;
    this.#latestEntry = entry;
    this.#refs[slot] = 1;  // retained as the newest sample
    for (const sub of this.#subs) this.#hold(sub, entry);
    if (previous >= 0) {
      this.#unref(previous, 1);
      this.#wake();
    }
  }

  #hold(sub: Sub, entry: P.SampleEntry): void {
    if (sub.held.has(entry.slot)) return;  // cannot happen for a slot we hand out; never announce a slot twice
    sub.held.set(entry.slot, entry.sequence);
    this.#refs[entry.slot]!++;
    sub.pending.push(entry);
    if (!sub.flushScheduled) {
      sub.flushScheduled = true;
      process.nextTick(() => this.#flush(sub));
    }
  }

  /** Sends what was announced this tick: as few SAMPLES messages as fit 64 KiB each. */
  #flush(sub: Sub): void {
    sub.flushScheduled = false;
    if (sub.gone) return;
    const all = sub.pending;
    sub.pending = [];
    for (let i = 0; i < all.length;) {
      let size = P.BATCH_HEAD;
      let j = i;
      while (j < all.length && j - i < 0xffff && size + P.SAMPLE_ENTRY_SIZE + all[j]!.meta.length <= 65536) {
        size += P.SAMPLE_ENTRY_SIZE + all[j]!.meta.length;
        j++;
      }
      const batch = P.encodeSamples(all.slice(i, j));
      sub.channel.send(batch).catch(() => this.#drop(sub, 'error'));
      i = j;
    }
  }

  #unref(slot: number, by: number): void {
    this.#refs[slot]! -= by;
    if (this.#refs[slot] === 0 && this.#loaned[slot] === 0) {
      if (this.#latest === slot) {
        this.#latest = -1;
        this.#latestEntry = null;
      }
      this.#free.push(slot);
    }
  }

  #onMessage(sub: Sub, m: Message): void {
    m.closeFds();
    if (sub.gone) return;
    const type = m.data[0] ?? 0;
    if (type === P.MsgType.RELEASE) {
      const pairs = P.decodeRelease(m.data);
      if (pairs === null) {
        this.#detach(sub, 'protocol', 'sent a malformed RELEASE');
        return;
      }
      for (const [slot, seq] of pairs) {
        // only what this subscriber was given: a stray or repeated release changes nothing
        if (sub.held.get(slot) === seq) {
          sub.held.delete(slot);
          this.#unref(slot, 1);
        }
      }
      this.#wake();
    } else if (type < 0x80) {
      this.#detach(sub, 'protocol', `sent an unknown message type ${type}`);
    }
  }

  /** Tells the subscriber why (best effort), then drops it. */
  #detach(sub: Sub, reason: DetachReason, text: string): void {
    if (sub.gone) return;
    const code = reason === 'slow' ? P.DetachReason.SLOW : P.DetachReason.PROTOCOL;
    const ch = sub.channel;
    ch.send(P.encodeDetach(code, text)).catch(() => { /* the subscriber is gone already */ });
    this.#drop(sub, reason, false);
    // let the DETACH go out, but never keep the socket for a peer that does not read
    const t = setTimeout(() => ch.close(), 1000);
    t.unref();
    ch[Symbol.asyncDispose]().then(() => clearTimeout(t), () => clearTimeout(t));
  }

  /** Forgets a subscriber: every sample it holds is released, its channel closed. */
  #drop(sub: Sub, reason: DetachReason, closeChannel = true): void {
    if (sub.gone) return;
    const info = this.#info(sub);
    sub.gone = true;
    this.#subs.delete(sub);
    for (const slot of sub.held.keys()) this.#unref(slot, 1);
    sub.held.clear();
    sub.pending = [];
    if (closeChannel) sub.channel.close();
    this.emit('detach', info, reason);
    this.#wake();
  }

  /** Serves waiting loans while slots are free. */
  #wake(): void {
    while (this.#waiters.length > 0 && !this.#closed) {
      const slot = this.#take();
      if (slot < 0) return;
      this.#waiters.shift()!.resolve(newLoan(this.#lender, slot, this.#view(slot)));
    }
    if (this.#waiters.length === 0 && this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
  }

  #armTimer(): void {
    if (this.#timer !== null || this.slowTimeout === Infinity || this.#subs.size === 0) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (this.#waiters.length === 0 || this.#closed) return;
      // the ones at their bound; else the one holding the most
      let victims = [...this.#subs].filter((s) => s.held.size >= this.maxHeld);
      if (victims.length === 0) {
        let worst: Sub | null = null;
        for (const s of this.#subs) if (s.held.size > 0 && (worst === null || s.held.size > worst.held.size)) worst = s;
        victims = worst === null ? [] : [worst];
      }
      for (const s of victims) this.#detach(s, 'slow', `kept the publisher waiting ${this.slowTimeout} ms (holds ${s.held.size} samples)`);
      this.#wake();
      if (this.#waiters.length > 0) this.#armTimer();
    }, this.slowTimeout);
  }
}
