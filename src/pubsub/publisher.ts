// Publisher: one writer over a reusable pool of slots in a memfd sealed
// SHRINK | GROW | FUTURE_WRITE | SEAL (F_SEAL_FUTURE_WRITE: Linux 5.1). The
// publisher keeps the only writable mapping; subscribers can only map it
// read-only. A sample costs one small message per subscriber (protocol.ts).
// Its options and events are in publisher-options.ts, the Loan of a slot in loan.ts.
import { type FdHandle, native } from '../kernel/binding';
import { Channel } from '../channel/channel';
import { type ChannelServer, listenAndAttach, type ListenOptions } from '../channel/channel-server';
import { closedError, illegalConstructor, invalidArgType, MemsealError, outOfRange } from '../kernel/errors';
import { TypedEventEmitter } from '../util/events';
import { features } from '../kernel/features';
import { DEFERRED_RELEASE_BYTES, type Mapping, PAGE_SIZE } from '../kernel/mapping';
import { DEFAULT_MAX_SIZE } from '../sealed/verify';
import { type Message } from '../channel/message';
import { toBytes } from '../kernel/validate';
import { type Lender, type Loan, newLoan, toMeta } from './loan';
import * as P from './protocol';
import { makePool, SlotBook } from './slots';
import { TurnBudget } from './turn';
import { SlowWatch } from './slow';
import {
  DATA_TYPES, dropReason, flushSeat, IdleWatch, type LoanWaiter, markHolder, markSeat, newSeat, now, publisherClosed, seatInfo, type Sub,
} from './seat';
import {
  type Delivery, type DetachReason, type PublisherEvents, type PublisherOptions, publisherOptions, type ResolvedOptions,
  type SlowPolicy, type SubscriberInfo,
} from './publisher-options';

const PAGE = PAGE_SIZE;

const construct = Symbol('Publisher.construct');

export { POOL_SEALS } from './slots';

/**
 * The writing end of a stream over a sealed slot pool. `loan()` a slot,
 * fill it, `send()` it — or `publish(data)` (one copy). Subscribers get the
 * pool's memfd once (`attach()`/`listen()`) and map it read-only; after
 * that each sample is one small message.
 *
 * Isolation by construction: each subscriber has a quota (`maxHeld`), the
 * pool has `maxSubscribers × maxHeld + maxLoans + 1` slots, so with
 * `delivery: 'latest'` (the default) `loan()` never waits on a subscriber: one
 * at its quota is skipped and gets the newest sample when it releases. A slot
 * is reused only once every subscriber that got it released it or hung up —
 * a detached subscriber keeps its slots until then.
 *
 * Events (typed in {@link PublisherEvents}): `'attach'` (SubscriberInfo),
 * `'detach'` (SubscriberInfo, reason), `'slow'` (SubscriberInfo, 'skipped' | 'waited').
 */
export class Publisher extends TypedEventEmitter<PublisherEvents> {
  /** The pool's memfd (close-on-exec); -1 once closed. */
  get fd(): number { return this.#closed ? -1 : this.#fd; }
  readonly slots: number;
  readonly slotSize: number;
  /** Bytes of the whole pool file (header + slots). */
  readonly size: number;
  readonly name: string;
  /** Each subscriber's quota: held + announced and not yet received. */
  readonly maxHeld: number;
  /** Subscribers at once (detached ones count until they hang up). */
  readonly maxSubscribers: number;
  /** Loans served without waiting. */
  readonly maxLoans: number;
  readonly delivery: Delivery;
  readonly slowTimeout: number;
  readonly idleTimeout: number;
  /** @deprecated since 0.2: use `delivery` ('wait' or 'detach' when delivery is 'all', else null). */
  get onSlow(): SlowPolicy | null { return this.delivery === 'all' ? (this.slowTimeout === 0 ? 'detach' : 'wait') : null; }

  #fd: number;
  // Owns the pool's descriptor natively: closed by close(), by the garbage collector, or at
  // environment teardown (a worker's end), where FinalizationRegistry callbacks never run.
  #fdHandle: FdHandle;
  #mapping: Mapping;
  #header: Buffer;
  #views: Buffer[] = [];
  #geometry: P.PoolGeometry;
  #hello: Buffer;
  #book: SlotBook;
  #turn = new TurnBudget(() => this.#wake());
  #subs = new Set<Sub>();
  #nextId = 1;
  #waiters: LoanWaiter[] = [];
  #slow: SlowWatch;
  #idle = new IdleWatch({
    subs: () => this.#subs, timeout: () => this.idleTimeout, quota: () => this.maxHeld,
    detach: (sub, reason, text) => this.#detach(sub, reason, text), drop: (sub) => this.#drop(sub, 'idle', true, false),
  });
  #waking = false;
  #wakeAgain = false;
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
      this.#book.cancel(slot);
      this.#wake();
    },
  };

  /** Not public: use Publisher.create(). */
  private constructor(token: symbol, fd: number, handle: FdHandle, mapping: Mapping, g: P.PoolGeometry, o: ResolvedOptions) {
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
    this.maxSubscribers = o.maxSubscribers;
    this.maxLoans = o.maxLoans;
    this.delivery = o.delivery;
    this.slowTimeout = o.slowTimeout;
    this.idleTimeout = o.idleTimeout;
    this.#hello = P.encodeHello(g, { quota: o.maxHeld, deliveryAll: o.delivery === 'all' });
    this.#header = mapping.bytes(0, g.headerSize);
    this.#book = new SlotBook(this.#header, g.slots);
    this.#slow = new SlowWatch({
      all: o.delivery === 'all', quota: o.maxHeld, timeout: o.slowTimeout, subs: () => this.#subs, loans: () => this.#book.loans,
      closed: () => this.#closed, detach: (sub, reason, text) => this.#detach(sub, reason, text), wake: () => this.#wake(),
      slow: (sub) => this.emit('slow', seatInfo(this.maxHeld, sub), 'waited'),
    });
  }

  /**
   * Creates the pool: memfd_create(2), ftruncate(2), one writable shared
   * mapping, then F_ADD_SEALS SHRINK | GROW | FUTURE_WRITE | SEAL (Linux 5.1).
   * `slots` is derived from the options (see {@link PublisherOptions}), or checked when given.
   * @throws MemsealError ERR_MEMSEAL_UNSUPPORTED without F_SEAL_FUTURE_WRITE; ERR_MEMSEAL_SIZE when a
   *   given `slots` cannot cover the quotas (the message says how many are missing); RangeError/TypeError for bad options
   */
  static create(options: PublisherOptions): Publisher {
    const o = publisherOptions(options);
    if (!features.futureWrite) {
      throw new MemsealError('ERR_MEMSEAL_UNSUPPORTED', 'Publisher.create(): this kernel lacks F_SEAL_FUTURE_WRITE',
        { hint: 'needs Linux ≥ 5.1 (F_SEAL_FUTURE_WRITE)' });
    }
    const g = P.geometry(o.slots, o.slotSize, PAGE);
    if (g.poolSize > DEFAULT_MAX_SIZE) {
      // Accepted (a subscriber may raise its bound), but every subscriber that keeps the default refuses it.
      process.emitWarning(`Publisher.create(): the pool is ${g.poolSize} bytes, over the ${DEFAULT_MAX_SIZE}-byte bound ` +
        'subscribers apply by default (DEFAULT_MAX_SIZE): each must pass a larger maxSize to Subscriber.attach()/connect(), ' +
        'or refuses the pool with ERR_MEMSEAL_SIZE', { code: 'MEMSEAL_POOL_OVER_DEFAULT_MAX_SIZE' });
    }
    const { fd, handle, mapping } = makePool(o.name, g);
    return new Publisher(construct, fd, handle, mapping, g, o);
  }

  /** Each subscriber: pid, quota use, missed count, state, the slots it holds (a snapshot). */
  get subscribers(): readonly SubscriberInfo[] { return Object.freeze([...this.#subs].map((s) => seatInfo(this.maxHeld, s))); }

  /** @deprecated since 0.2: use `subscribers` (now the list). */
  get subscriberList(): SubscriberInfo[] { return [...this.subscribers]; }

  /** Subscribers attached (detached ones included until they hang up). */
  get subscriberCount(): number { return this.#subs.size; }

  /** Samples published so far (the last sequence number). */
  get sequence(): number { return this.#book.nextSeq; }

  get closed(): boolean { return this.#closed; }

  /**
   * Hands the pool to the subscriber at the other end of `channel` (one
   * HELLO message carrying the memfd and declaring its quota), then the
   * newest sample if there is one. The publisher owns the channel from now
   * on. With `maxSubscribers` attached it is refused: it gets a DETACH
   * saying why instead of HELLO, and the channel is closed.
   * @rejects TypeError if `channel` is not a Channel; ERR_MEMSEAL_CLOSED; ERR_MEMSEAL_QUEUE_FULL at
   *   maxSubscribers; EPIPE when the peer is gone
   */
  async attach(channel: Channel): Promise<void> {
    if (!(channel instanceof Channel)) throw invalidArgType('channel', 'an instance of Channel', channel);
    if (this.#closed) throw publisherClosed('attach');
    if (channel.closed) throw closedError('Publisher.attach()', 'the channel');
    if (this.#subs.size >= this.maxSubscribers) {
      const why = `the publisher has maxSubscribers ${this.maxSubscribers} attached`;
      channel.send(P.encodeDetach(P.DetachReason.FULL, why)).catch(() => {}).finally(() => channel.close());
      throw new MemsealError('ERR_MEMSEAL_QUEUE_FULL', `Publisher.attach(): refused: ${why}`,
        { hint: 'raise maxSubscribers (the pool grows by maxHeld slots per seat)' });
    }
    channel.maxFds = 0;  // a subscriber sends no descriptors: any that come are closed with ERR_MEMSEAL_CTRUNC
    const taken = new Set([...this.#subs].map((x) => x.seat));
    let seat = 0;
    while (taken.has(seat)) seat++;
    const sub = newSeat(this.#nextId++, seat < P.HOLDER_SEATS ? seat : -1, channel);
    markSeat(this.#header, this.slots, sub, channel.peer.pid);
    const hello = channel.send(this.#hello, [this.#fd]);
    this.#subs.add(sub);
    this.#idle.arm();
    channel.on('message', (m: Message) => this.#onMessage(sub, m));
    channel.on('error', () => this.#detach(sub, 'protocol', 'sent a message the channel refused'));
    channel.on('close', () => this.#drop(sub, 'closed'));
    if (this.#book.latestEntry !== null) this.#hold(sub, this.#book.latestEntry);
    try {
      await hello;
    } catch (err) {
      this.#drop(sub, dropReason(err));
      throw err;
    }
    if (!sub.gone) this.emit('attach', seatInfo(this.maxHeld, sub));
  }

  /**
   * Listens on a path or abstract name ({@link listen}) and attaches every
   * subscriber that connects. The publisher closes the server when it closes.
   */
  listen(path: string, options?: ListenOptions): Promise<ChannelServer> {
    return listenAndAttach(path, options, {
      isClosed: () => this.#closed,
      servers: this.#servers,
      attach: (ch) => this.attach(ch),   // refused, or gone before it got the pool: the channel is closed
      closedError: () => publisherClosed('listen'),
    });
  }

  /**
   * A free slot to write into. With delivery 'latest' it resolves at once
   * while the caller has fewer than `maxLoans` loans out; with 'all' it also
   * waits while a subscriber is at its quota (`'slow'` names it; after
   * `slowTimeout` ms it is detached). At most 16 samples (TURN_SAMPLES) are
   * handed out with no turn of the event loop in between: past that, loan() and
   * publish() resolve on the next turn, so a producer looping on them still lets
   * subscribers' releases in. The slot's sequence word is made odd
   * first, so a subscriber still copying an older sample from it sees ERR_MEMSEAL_TORN.
   * @rejects ERR_MEMSEAL_CLOSED when the publisher closes
   */
  loan(): Promise<Loan> {
    if (this.#closed) return Promise.reject(publisherClosed('loan'));
    if (this.#waiters.length === 0 && this.#turn.open()) {
      const slot = this.#take();
      if (slot >= 0) {
        this.#turn.used();
        return Promise.resolve(newLoan(this.#lender, slot, this.#view(slot)));
      }
    }
    const p = new Promise<Loan>((resolve, reject) => this.#waiters.push({ resolve, reject }));
    this.#wake();
    return p;
  }

  /**
   * loan() + one copy of `data` into the slot + send(). Strings are sent as UTF-8.
   * With a free slot (and no loan waiting) the copy and the send happen now; past 16
   * samples since the event loop last turned, the returned promise resolves on the next
   * turn, so a loop awaiting publish() lets subscribers' releases in. When `loan()` has to
   * wait, the copy happens once it resolves: do not change `data` until the returned promise settles.
   * @rejects RangeError if data is larger than slotSize (nothing loaned); ERR_MEMSEAL_CLOSED
   */
  publish(data: ArrayBufferView | ArrayBuffer | string, meta?: Uint8Array | string): Promise<void> {
    try {
      const src = toBytes(data, DATA_TYPES, { arrayBuffers: true });
      if (src.length > this.slotSize) throw outOfRange('data.byteLength', `<= ${this.slotSize} (slotSize)`, src.length);
      const m = toMeta(meta);
      if (this.#closed) throw publisherClosed('publish');
      const slot = this.#waiters.length === 0 ? this.#take() : -1;
      if (slot >= 0) {
        const open = this.#turn.open();
        this.#turn.used();
        this.#view(slot).set(src);
        this.#publish(slot, src.length, m);
        return open ? Promise.resolve() : this.#turn.nextTurn();  // published now; the caller waits a turn
      }
      // no copy while waiting: the bytes are read when a slot is free
      return this.loan().then((loan) => {
        loan.bytes.set(src);
        return loan.send(src.length, m);
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Ends the stream cleanly: every subscriber gets what was announced, then
   * a DETACH "closing" (its iteration ends; samples it holds stay valid: the
   * pool is never written again). Closes the servers of `listen()`, rejects
   * waiting loans, unmaps the pool (outstanding Loan views become length 0)
   * and closes the memfd. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopTimers();
    for (const w of this.#waiters.splice(0)) w.reject(publisherClosed('loan'));
    for (const sub of [...this.#subs]) {
      if (sub.detached) {
        this.#drop(sub, 'publisher-closed');  // told why already; nothing of the pool is written again
        continue;
      }
      flushSeat(sub, (err) => this.#drop(sub, dropReason(err)));
      this.#detach(sub, 'publisher-closed', 'the publisher closed');
    }
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

  /** A slot for a loan, or -1. Never detaches, never calls back: the hand-out is not re-entered. */
  #take(): number {
    if (this.delivery === 'all' && this.#slow.blockers().length > 0) return -1;
    return this.#book.take();
  }

  #publish(slot: number, length: number, meta: Uint8Array): void {
    const [entry, previous] = this.#book.publish(slot, length, meta);  // retained as the newest sample
    for (const sub of this.#subs) {
      if (sub.detached) continue;
      if (sub.held.size < this.maxHeld) {
        this.#hold(sub, entry);
        continue;
      }
      // at its quota (only 'latest' gets here unless loans outran 'all''s check): skipped, owed the newest
      sub.missed++;
      if (!sub.skipping) {
        sub.skipping = true;
        this.emit('slow', seatInfo(this.maxHeld, sub), 'skipped');
      }
    }
    if (previous >= 0) this.#book.unref(previous, 1);
    this.#wake();
  }

  #hold(sub: Sub, entry: P.SampleEntry): void {
    if (sub.held.has(entry.slot)) return;  // cannot happen for a slot we hand out; never announce a slot twice
    sub.held.set(entry.slot, entry.sequence);
    markHolder(this.#header, this.slots, sub, entry.slot, true);
    sub.lastSent = entry.sequence;
    sub.skipping = false;
    this.#book.ref(entry.slot);
    sub.pending.push(entry);
    if (!sub.flushScheduled) {
      sub.flushScheduled = true;
      process.nextTick(() => flushSeat(sub, (err) => this.#drop(sub, dropReason(err))));
    }
  }

  #onMessage(sub: Sub, m: Message): void {
    m.closeFds();
    this.#turn.turned();  // I/O ran: the event loop turned since the last loan
    if (sub.gone) return;
    sub.heard = true;
    sub.since = now();
    const type = m.data[0] ?? 0;
    if (type === P.MsgType.RELEASE) {
      const pairs = P.decodeRelease(m.data);
      if (pairs === null) {
        this.#detach(sub, 'protocol', 'sent a malformed RELEASE');
        return;
      }
      let freed = 0;
      for (const [slot, seq] of pairs) {
        // only what this subscriber was given: a stray or repeated release changes nothing
        if (sub.held.get(slot) === seq) {
          sub.held.delete(slot);
          markHolder(this.#header, this.slots, sub, slot, false);
          this.#book.unref(slot, 1);
          freed++;
        }
      }
      if (freed === 0) return;
      if (sub.detached && sub.held.size === 0) {
        this.#drop(sub, 'closed', true, false);  // nothing left to read: the seat is free
        return;
      }
      // skipped at its quota: the newest sample, now that there is room
      const e = this.#book.latestEntry;
      if (sub.skipping && !sub.detached && sub.held.size < this.maxHeld && e !== null && e.sequence > sub.lastSent) {
        this.#hold(sub, e);
      }
      sub.waitedFor = false;  // a new wait on it is worth a new 'slow'
      this.#wake();
    } else if (type < 0x80) {
      this.#detach(sub, 'protocol', `sent an unknown message type ${type}`);
    }
  }

  /**
   * Tells the subscriber why (best effort) and stops announcing to it. What
   * it was sent stays reserved until it releases it or hangs up; what was
   * announced but not sent returns now.
   */
  #detach(sub: Sub, reason: DetachReason, text: string): void {
    if (sub.gone || sub.detached) return;
    sub.detached = true;
    for (const e of sub.pending) {
      sub.held.delete(e.slot);
      markHolder(this.#header, this.slots, sub, e.slot, false);
      this.#book.unref(e.slot, 1);
    }
    sub.pending = [];
    const code = reason === 'slow' ? P.DetachReason.SLOW : reason === 'idle' ? P.DetachReason.IDLE
      : reason === 'publisher-closed' ? P.DetachReason.CLOSING : P.DetachReason.PROTOCOL;
    const ch = sub.channel;
    ch.send(P.encodeDetach(code, text)).catch(() => { /* the subscriber is gone already, or does not read */ });
    this.emit('detach', seatInfo(this.maxHeld, sub), reason);
    if (this.#closed || sub.held.size === 0) {
      // nothing of the pool can be reused (closed) or nothing is held: let the DETACH go out, then hang up
      this.#drop(sub, reason, false, false);
      const t = setTimeout(() => ch.close(), 1000);
      t.unref();
      ch[Symbol.asyncDispose]().then(() => clearTimeout(t), () => clearTimeout(t));
    }
    this.#wake();
  }

  /** Forgets a subscriber (it hung up, or holds nothing): every sample it holds is released. */
  #drop(sub: Sub, reason: DetachReason, closeChannel = true, announce = true): void {
    if (sub.gone) return;
    const info = seatInfo(this.maxHeld, sub);
    sub.gone = true;
    this.#subs.delete(sub);
    for (const slot of sub.held.keys()) {
      if (!this.#closed) markHolder(this.#header, this.slots, sub, slot, false);
      this.#book.unref(slot, 1);
    }
    if (!this.#closed) markSeat(this.#header, this.slots, sub, 0);
    sub.held.clear();
    sub.pending = [];
    if (closeChannel) sub.channel.close();
    if (announce && !sub.detached) this.emit('detach', info, reason);
    if (this.#subs.size === 0) this.#idle.stop();
    this.#wake();
  }

  /**
   * Serves waiting loans while slots are free. Not re-entrant: a call from
   * inside (a detach or drop triggered while handing out) only asks for one
   * more round, so no waiter is served twice or lost.
   */
  #wake(): void {
    if (this.#waking) {
      this.#wakeAgain = true;
      return;
    }
    this.#waking = true;
    try {
      do {
        this.#wakeAgain = false;
        let slot = 0;
        while (this.#waiters.length > 0 && !this.#closed && this.#turn.open()) {
          slot = this.#take();
          if (slot < 0) break;
          this.#turn.used();
          this.#waiters.shift()!.resolve(newLoan(this.#lender, slot, this.#view(slot)));
        }
        if (slot < 0 && this.#waiters.length > 0 && !this.#closed) this.#slow.blocked();  // waiting on slots, not on the turn
      } while (this.#wakeAgain);
    } finally {
      this.#waking = false;
    }
    if (this.#waiters.length === 0) this.#slow.stop();
  }

  #stopTimers(): void {
    this.#slow.stop();
    this.#idle.stop();
  }
}
