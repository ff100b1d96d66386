// A subscriber as the Publisher (publisher.ts) keeps it — its seat: quota
// use, what is announced and not yet sent, its state — and what is done
// with one without the rest of the publisher: its public info, and sending
// this tick's announcements to it in as few messages as fit.
import { type Channel } from '../channel/channel';
import { closedError, type MemsealError } from '../kernel/errors';
import { type Loan } from './loan';
import * as P from './protocol';
import { type DetachReason, type SubscriberInfo } from './publisher-options';

/** One attached subscriber. */
export interface Sub {
  id: number;
  seat: number;               // its row in the header's holder table (`memseal inspect`), -1 past HOLDER_SEATS
  channel: Channel;
  held: Map<number, number>;  // slot -> sequence: announced (sent or pending) and not released
  pending: P.SampleEntry[];   // announced this tick, not sent yet (a subset of held)
  flushScheduled: boolean;
  gone: boolean;              // hung up, or dropped: its slots are back
  detached: boolean;          // told to go (DETACH): gets nothing new, keeps its slots until it releases or hangs up
  missed: number;
  skipping: boolean;          // at its quota in 'latest': owed the newest sample on its next release
  waitedFor: boolean;         // 'slow' said once for this wait of loan()
  lastSent: number;           // sequence of the newest sample announced to it
  heard: boolean;             // said anything since HELLO
  since: number;              // ms (monotonic) of the last message from it, or of HELLO
}

export interface LoanWaiter {
  resolve: (loan: Loan) => void;
  reject: (err: Error) => void;
}

export const DATA_TYPES = 'a string, an ArrayBuffer or an ArrayBufferView';

export const now = (): number => performance.now();

/**
 * Why a subscriber whose send failed is dropped: a subscriber that hung up is 'closed' whichever side
 * notices first (a send meeting EPIPE/ECONNRESET, or the channel closed under it), anything else 'error'.
 */
export function dropReason(err: unknown): 'closed' | 'error' {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'EPIPE' || code === 'ECONNRESET' || code === 'ERR_MEMSEAL_CLOSED' ? 'closed' : 'error';
}

export function publisherClosed(op: string): MemsealError {
  return closedError(`Publisher.${op}()`, 'the publisher');
}

export function newSeat(id: number, seat: number, channel: Channel): Sub {
  return { id, seat, channel, held: new Map(), pending: [], flushScheduled: false, gone: false, detached: false, missed: 0,
    skipping: false, waitedFor: false, lastSent: 0, heard: false, since: now() };
}

/** What events and `publisher.subscribers` say about a subscriber. */
export function seatInfo(quota: number, s: Sub): SubscriberInfo {
  return Object.freeze({ id: s.id, pid: s.channel.peer.pid, peer: s.channel.peer, held: s.held.size, quota,
    missed: s.missed, state: s.detached ? 'detached' : 'attached', slots: Object.freeze([...s.held.keys()]) } as const);
}

/** Sends what was announced this tick: as few SAMPLES messages as fit 64 KiB each. */
export function flushSeat(sub: Sub, onError: (err: unknown) => void): void {
  sub.flushScheduled = false;
  if (sub.gone || sub.detached) return;
  const all = sub.pending;
  sub.pending = [];
  for (let i = 0; i < all.length;) {
    let size = P.BATCH_HEAD;
    let j = i;
    while (j < all.length && j - i < 0xffff && size + P.SAMPLE_ENTRY_SIZE + all[j]!.meta.length <= 65536) {
      size += P.SAMPLE_ENTRY_SIZE + all[j]!.meta.length;
      j++;
    }
    sub.channel.send(P.encodeSamples(all.slice(i, j))).catch(onError);
    i = j;
  }
}

/** What the idle check may see and do at the publisher. */
export interface Watched {
  subs(): Iterable<Sub>;
  timeout(): number;
  quota(): number;
  detach(sub: Sub, reason: DetachReason, text: string): void;
  drop(sub: Sub): void;
}

/**
 * Lets go of subscribers that never acknowledged HELLO (dropped) or sit at
 * their quota releasing nothing (detached 'slow') for `timeout` ms. Runs
 * while anyone is attached, whether or not the publisher publishes.
 */
export class IdleWatch {
  #timer: NodeJS.Timeout | null = null;
  #p: Watched;

  constructor(p: Watched) { this.#p = p; }

  arm(): void {
    const ms = this.#p.timeout();
    if (this.#timer !== null || ms === Infinity) return;
    this.#timer = setInterval(() => this.#check(), Math.max(1, Math.ceil(ms / 4)));
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  #check(): void {
    const ms = this.#p.timeout();
    const t = now() - ms;
    for (const sub of [...this.#p.subs()]) {
      if (sub.gone || sub.since > t) continue;
      if (!sub.heard) {
        // never acknowledged HELLO: nothing it could have read is ours to protect
        this.#p.detach(sub, 'idle', `said nothing for ${ms} ms after HELLO`);
        this.#p.drop(sub);
      } else if (!sub.detached && sub.held.size >= this.#p.quota()) {
        this.#p.detach(sub, 'slow', `released nothing for ${ms} ms at its quota (${sub.held.size} samples)`);
      }
    }
  }
}

/**
 * Marks in the pool header whether `sub` holds `slot` (advisory, for `memseal inspect`: the
 * publisher's own bookkeeping decides reuse; the header only shows it to other processes).
 */
export function markHolder(h: Buffer, slots: number, sub: Sub, slot: number, on: boolean): void {
  if (sub.seat < 0) return;
  const off = P.holderMask(slots, slot) + (sub.seat >= 32 ? 4 : 0);
  const bit = 2 ** (sub.seat & 31);
  const v = h.readUInt32LE(off);
  h.writeUInt32LE(on ? (v | bit) >>> 0 : (v & ~bit) >>> 0, off);
}

/** Names (pid) or frees (0) a seat of the holder table. */
export function markSeat(h: Buffer, slots: number, sub: Sub, pid: number): void {
  if (sub.seat >= 0) h.writeUInt32LE(pid, P.holderTable(slots) + 4 * sub.seat);
}
