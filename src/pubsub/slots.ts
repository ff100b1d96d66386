// The publisher's pool (publisher.ts) as memory: making it (memfd, size, one writable mapping, seals)
// and its slot book — which slots are free, lent, or still referenced (by subscribers, or as the
// newest sample kept for late joiners), and the sequence word each slot carries in the header.
// Nothing here sends, detaches or calls back: the hand-out cannot be re-entered from here.
import { type FdHandle, native } from '../kernel/binding';
import { check } from '../kernel/errors';
import { constants as C, Seal } from '../kernel/constants';
import { type Mapping, mmap } from '../kernel/mapping';
import { addSeals } from '../kernel/memfd';
import { createMemfd } from '../sealed/sealed-create';
import * as P from './protocol';

/** The seals a pool carries: nobody can resize it, nobody but the publisher's existing mapping can write it. */
export const POOL_SEALS = Seal.SHRINK | Seal.GROW | Seal.FUTURE_WRITE | Seal.SEAL;

/** A pool file named `name` of geometry `g`: its memfd (owned natively), one writable mapping, header written, sealed. */
export function makePool(name: string, g: P.PoolGeometry): { fd: number; handle: FdHandle; mapping: Mapping } {
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
    addSeals(fd, POOL_SEALS);   // the kernel door: the same hints as every other path
    return { fd, handle, mapping };
  } catch (err) {
    mapping?.unmap();
    native.fdClose(handle, false);
    throw err;
  }
}

/**
 * Who may reuse which slot. A slot is free once it is neither lent nor referenced: each
 * subscriber that was announced it holds one reference until it releases it or is dropped,
 * and the newest sample holds one while it is kept for late joiners.
 */
export class SlotBook {
  /** The newest published sample while a slot still holds it, else null. */
  latestEntry: P.SampleEntry | null = null;
  /** Sequence number of the last sample published. */
  nextSeq = 0;
  /** Slots lent out (loaned and not yet sent or cancelled). */
  loans = 0;
  #header: Buffer;
  #refs: Int32Array;
  #loaned: Uint8Array;
  #seq: Float64Array;
  #free: number[] = [];
  #latest = -1;

  constructor(header: Buffer, slots: number) {
    this.#header = header;
    this.#refs = new Int32Array(slots);
    this.#loaned = new Uint8Array(slots);
    this.#seq = new Float64Array(slots);
    for (let i = slots - 1; i >= 0; i--) this.#free.push(i);
  }

  /**
   * A slot to lend, or -1: a free one, else the newest sample's when nothing but its keeping holds it (a loan
   * needs the slot more than late joiners do). Its sequence word is made odd, so a subscriber still copying
   * an older sample from it sees ERR_MEMSEAL_TORN.
   */
  take(): number {
    let slot = this.#free.pop() ?? -1;
    if (slot < 0 && this.#latest >= 0 && this.#refs[this.#latest] === 1 && this.#loaned[this.#latest] === 0) {
      slot = this.#latest;
      this.#refs[slot] = 0;
      this.#latest = -1;
      this.latestEntry = null;
    }
    if (slot < 0) return -1;
    this.#loaned[slot] = 1;
    this.loans++;
    native.poolBegin(this.#header, P.wordOffset(slot), 2 * this.#seq[slot]! + 1);
    return slot;
  }

  /** A lent slot given back unpublished. */
  cancel(slot: number): void {
    this.#loaned[slot] = 0;
    this.loans--;
    this.unref(slot, 0);
  }

  /**
   * Publishes a lent slot: the next sequence number (its word made even), kept as the newest sample
   * (one reference). Returns the sample and the previous newest slot (or -1), whose keeping reference the
   * caller drops (`unref(previous, 1)`) once the new sample is announced.
   */
  publish(slot: number, length: number, meta: Uint8Array): [P.SampleEntry, number] {
    const seq = ++this.nextSeq;
    this.#seq[slot] = seq;
    this.#loaned[slot] = 0;
    this.loans--;
    native.poolEnd(this.#header, P.wordOffset(slot), 2 * seq);
    const entry: P.SampleEntry = { slot, sequence: seq, length, meta };
    const previous = this.#latest;
    this.#latest = slot;
    this.latestEntry = entry;
    this.#refs[slot] = 1;
    return [entry, previous];
  }

  /** One more holder of `slot` (a subscriber it is announced to). */
  ref(slot: number): void { this.#refs[slot]!++; }

  /** `by` holders fewer; the slot is free once nobody holds it and it is not lent. */
  unref(slot: number, by: number): void {
    this.#refs[slot]! -= by;
    if (this.#refs[slot] === 0 && this.#loaned[slot] === 0) {
      if (this.#latest === slot) {
        this.#latest = -1;
        this.latestEntry = null;
      }
      this.#free.push(slot);
    }
  }
}
