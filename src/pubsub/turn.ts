// How much of one turn of the event loop the Publisher's slot hand-out (publisher.ts) may take before
// it lets I/O in. loan() and publish() resolve at once while a slot is free, so a producer that
// loops on them (`for (;;) await pub.publish(frame)`) never gave the event loop a turn: subscribers'
// RELEASEs were never read, announcements (sent on the next tick) never left, and every subscriber
// starved while the publisher published hundreds of thousands of samples to nobody.

/** Samples handed out in one turn of the event loop before the next loan waits for the next turn. */
export const TURN_SAMPLES = 16;
/** Milliseconds of one turn the hand-out may use before the next loan waits for the next turn. */
export const TURN_MS = 1;

/**
 * Counts the loans handed out in the current turn of the event loop. A turn starts with its first
 * loan (a setImmediate marks its end); once it has handed out TURN_SAMPLES or lasted TURN_MS, `open()`
 * says no until the next turn, whose start calls `next` (the publisher serves the loans that waited).
 */
export class TurnBudget {
  #start = -1;
  #count = 0;
  #next: () => void;

  constructor(next: () => void) { this.#next = next; }

  /** Whether this turn may hand out one more loan (starts the turn's count on its first). */
  open(): boolean {
    if (this.#start < 0) {
      this.#start = performance.now();
      this.#count = 0;
      setImmediate(() => {
        this.#start = -1;
        this.#next();
      });
      return true;
    }
    return this.#count < TURN_SAMPLES && performance.now() - this.#start < TURN_MS;
  }

  /** One loan handed out in this turn. */
  used(): void { this.#count++; }
}
