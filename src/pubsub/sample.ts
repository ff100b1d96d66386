// Sample: one sample a Subscriber (subscriber.ts) received — a read-only view of a slot of the pool,
// held until release(). What a sample does to the stream (copy with the sequence check, release)
// it asks of its SampleOwner, so this file imports nothing of the Subscriber.
import { closedError, illegalConstructor, invalidArgType, MemsealError, outOfRange } from '../kernel/errors';
import type * as P from './protocol';

const construct = Symbol('Sample.construct');

/** @internal What a Sample asks of the Subscriber that received it. */
export interface SampleOwner {
  /** Copies `src` into `dst` checking the slot's sequence word before and after: 0, or 1/2 if reused before/during. */
  copy(slot: number, sequence: number, src: Buffer, dst: Buffer): number;
  /** Gives the slot back (once). */
  release(slot: number, sequence: number): void;
}

// Sample's constructor is private to the public types; its static block sets this for newSample().
let makeSample: (owner: SampleOwner, e: P.SampleEntry, bytes: Buffer) => Sample;

/**
 * One sample: a read-only view of a slot of the pool, held until
 * `release()`. While held, a cooperating publisher does not reuse the slot.
 */
export class Sample {
  /** The publisher's sequence number: 1, 2, 3… in publishing order (gaps: samples sent before you attached, or skipped: see `missed`). */
  readonly sequence: number;
  /** Bytes in the sample. */
  readonly length: number;
  /** The publisher's meta bytes (a private copy). */
  readonly meta: Buffer;
  /** The slot it lives in. */
  readonly slot: number;
  #owner: SampleOwner;
  #bytes: Buffer;
  #released = false;

  /** Not public: made by subscriber.receive(). */
  private constructor(token: symbol, owner: SampleOwner, e: P.SampleEntry, bytes: Buffer) {
    if (token !== construct) throw illegalConstructor('subscriber.receive()');
    this.#owner = owner;
    this.sequence = e.sequence;
    this.length = e.length;
    this.meta = e.meta as Buffer;
    this.slot = e.slot;
    this.#bytes = bytes;
  }

  /**
   * The live bytes: a view of the shared pages (PROT_READ, MAP_SHARED), no
   * copy. Nobody but the publisher can change them and the file cannot
   * shrink (no SIGBUS); a misbehaving publisher can still write while you
   * read. Writing to this view kills the process (SIGSEGV). For a stable
   * copy, use {@link copy}.
   */
  get bytes(): Buffer { return this.#bytes; }

  /** Released (the view may still read, but the publisher may reuse the slot). */
  get released(): boolean { return this.#released; }

  /**
   * Copies the sample into private memory (`target`, or a new Buffer) and
   * checks the slot's sequence word before and after the copy in native code
   * with acquire ordering. Returns the copy (`length` bytes).
   * @throws MemsealError ERR_MEMSEAL_TORN if the publisher had started to reuse the slot
   *   (before or during the copy); ERR_MEMSEAL_CLOSED after release(); RangeError if `target` is too small
   */
  copy(target?: Uint8Array): Buffer {
    if (this.#released) {
      const err = closedError('Sample.copy()', `sample ${this.sequence}`, 'released');
      err.hint = 'copy before release(): once released the publisher may reuse the slot';
      throw err;
    }
    let dst: Buffer;
    if (target === undefined) dst = Buffer.allocUnsafe(this.length);
    else {
      if (!(target instanceof Uint8Array)) throw invalidArgType('target', 'an instance of Uint8Array', target);
      if (target.byteLength < this.length) throw outOfRange('target.byteLength', `>= ${this.length} (sample.length)`, target.byteLength);
      dst = Buffer.from(target.buffer, target.byteOffset, this.length);
    }
    const r = this.#owner.copy(this.slot, this.sequence, this.#bytes, dst);
    if (r !== 0) {
      throw new MemsealError('ERR_MEMSEAL_TORN', `Sample.copy(): the publisher reused slot ${this.slot} ` +
        `${r === 1 ? 'before' : 'during'} the copy of sample ${this.sequence}`,
        { hint: 'the sample was released (or this subscriber detached) before it was copied; copy before release()' });
    }
    return dst;
  }

  /** Gives the slot back to the publisher. Idempotent. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#owner.release(this.slot, this.sequence);
  }

  [Symbol.dispose](): void { this.release(); }

  static {
    makeSample = (owner, e, bytes) => new Sample(construct, owner, e, bytes);
  }
}

/** @internal A Sample of entry `e` (`bytes` is its view), for Subscriber. */
export function newSample(owner: SampleOwner, e: P.SampleEntry, bytes: Buffer): Sample {
  return makeSample(owner, e, bytes);
}
