// How many samples the Publisher's slot hand-out (publisher.ts) gives out before it lets the event
// loop turn. loan() and publish() resolve at once while a slot is free, so a producer that loops on
// them (`for (;;) await pub.publish(frame)`) never gave the event loop a turn: subscribers' RELEASEs
// were never read, announcements (sent on the next tick) never left, and every subscriber starved
// while the publisher published hundreds of thousands of samples to nobody.

/** Samples handed out with no sign of a turn of the event loop before the next loan waits for one. */
export const TURN_SAMPLES = 16;

/**
 * Counts the loans handed out since the event loop last showed it turned — a subscriber's message
 * handled (I/O ran), or this budget's own setImmediate. Past TURN_SAMPLES, `open()` says no and
 * schedules that setImmediate, whose run calls `next` (the publisher serves the loans that waited)
 * and settles `nextTurn()` (publish() publishes at once and has its caller wait for the turn).
 * Nothing is scheduled while the loop turns on its own: a producer that awaits anything else, or
 * subscribers that release, cost one counter.
 */
export class TurnBudget {
  #count = 0;
  #scheduled = false;
  #turned: Array<() => void> = [];
  #next: () => void;

  constructor(next: () => void) { this.#next = next; }

  /** Whether one more loan may be handed out before the event loop turns. */
  open(): boolean {
    if (this.#count < TURN_SAMPLES) return true;
    this.#schedule();
    return false;
  }

  /** Resolves once the event loop turned (after `open()` said no). */
  nextTurn(): Promise<void> {
    this.#schedule();
    return new Promise((resolve) => this.#turned.push(resolve));
  }

  /** One loan handed out. */
  used(): void { this.#count++; }

  /** The event loop turned (I/O ran): a new budget. */
  turned(): void { this.#count = 0; }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#count = 0;
      for (const resolve of this.#turned.splice(0)) resolve();
      this.#next();
    });
  }
}
