// Loan: a slot of a Publisher's pool (publisher.ts) lent to the caller, who
// writes the sample in place and send()s it, or cancel()s; and the checks of a
// sample's meta bytes. What a loan does to the pool it asks of its Lender, so
// this file imports nothing of the Publisher.
import { closedError, illegalConstructor, invalidArgType, outOfRange } from '../kernel/errors';
import { toBytes, validateInteger } from '../kernel/validate';
import * as P from './protocol';

const EMPTY = Buffer.alloc(0);
const construct = Symbol('Loan.construct');

/** @internal What a Loan asks of the Publisher that lent it: publish its slot, or take it back. */
export interface Lender {
  /** Publishes the slot; throws ERR_MEMSEAL_CLOSED once the publisher is closed. */
  publish(slot: number, length: number, meta: Uint8Array): void;
  /** Takes the slot back unpublished; nothing once the publisher is closed. */
  cancel(slot: number): void;
}

/** @internal A sample's meta: checked (at most P.MAX_META bytes) and copied. */
export function toMeta(meta: unknown): Uint8Array {
  if (meta === undefined) return EMPTY;
  if (typeof meta !== 'string' && !ArrayBuffer.isView(meta)) throw invalidArgType('meta', 'a string or an ArrayBufferView', meta);
  const b = toBytes(meta);
  if (b.length > P.MAX_META) throw outOfRange('meta.byteLength', `<= ${P.MAX_META}`, b.length);
  // the caller may reuse its buffer; the announcement goes out on the next tick
  return b.length === 0 ? EMPTY : Buffer.from(b);
}

// Loan's constructor is private to the public types; its static block sets this for newLoan().
let makeLoan: (lender: Lender, slot: number, bytes: Buffer) => Loan;

/**
 * A slot lent to the caller: write up to `bytes.length` bytes into `bytes`,
 * then `send()`. The view writes straight into the shared pages (zero
 * copies). After `send()` or `cancel()` the slot belongs to the publisher
 * again: do not keep `bytes`.
 */
export class Loan {
  /** The slot's index in the pool. */
  readonly slot: number;
  #lender: Lender;
  #bytes: Buffer | null;

  /** Not public: use publisher.loan(). */
  private constructor(token: symbol, lender: Lender, slot: number, bytes: Buffer) {
    if (token !== construct) throw illegalConstructor('publisher.loan()');
    this.#lender = lender;
    this.slot = slot;
    this.#bytes = bytes;
  }

  /** The slot's bytes, writable, `slotSize` long. Throws ERR_MEMSEAL_CLOSED once sent or cancelled. */
  get bytes(): Buffer {
    if (this.#bytes === null) throw closedError('Loan.bytes', 'the loan', 'sent or cancelled');
    return this.#bytes;
  }

  /** Sent or cancelled. */
  get done(): boolean { return this.#bytes === null; }

  /**
   * Publishes the first `length` bytes (default: all of the slot) with
   * optional `meta` (at most 4096 bytes) to every attached subscriber.
   * Resolves once the announcement is queued; it goes out on the next tick,
   * batched with others published in the same tick.
   * @rejects RangeError for a bad length or meta; ERR_MEMSEAL_CLOSED if already sent or the publisher is closed
   */
  send(length?: number, meta?: Uint8Array | string): Promise<void> {
    try {
      const bytes = this.#bytes;
      if (bytes === null) throw closedError('Loan.send()', 'the loan', 'sent or cancelled');
      const len = length ?? bytes.length;
      validateInteger(len, 'length', 0, bytes.length);
      const m = toMeta(meta);
      this.#bytes = null;
      this.#lender.publish(this.slot, len, m);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Gives the slot back unpublished. Idempotent; does nothing after send(). */
  cancel(): void {
    if (this.#bytes === null) return;
    this.#bytes = null;
    this.#lender.cancel(this.slot);
  }

  [Symbol.dispose](): void { this.cancel(); }

  static {
    makeLoan = (lender, slot, bytes) => new Loan(construct, lender, slot, bytes);
  }
}

/** @internal A Loan of `slot` (`bytes` is its view), for Publisher#loan(). */
export function newLoan(lender: Lender, slot: number, bytes: Buffer): Loan {
  return makeLoan(lender, slot, bytes);
}
