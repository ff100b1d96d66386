// Waiting on slow subscribers (delivery 'all', publisher.ts): who is in the way of a loan, the
// 'slow' event naming each once per wait, and the timer that detaches exactly those after
// `slowTimeout` ms (at once for 0; never for Infinity).
import { type DetachReason } from './publisher-options';
import { type Sub } from './seat';

/** What the slow check may see and do at the publisher. */
export interface Waiting {
  all: boolean;
  quota: number;
  timeout: number;
  subs(): Iterable<Sub>;
  loans(): number;
  closed(): boolean;
  detach(sub: Sub, reason: DetachReason, text: string): void;
  /** Says 'slow' (the subscriber, 'waited'). */
  slow(sub: Sub): void;
  wake(): void;
}

export class SlowWatch {
  #timer: NodeJS.Timeout | null = null;
  #p: Waiting;

  constructor(p: Waiting) { this.#p = p; }

  /** Attached subscribers that a loan would take past their quota (delivery 'all' only). */
  blockers(): Sub[] {
    const out: Sub[] = [];
    if (!this.#p.all) return out;
    const { quota } = this.#p, loans = this.#p.loans();
    for (const sub of this.#p.subs()) if (!sub.detached && sub.held.size + loans >= quota) out.push(sub);
    return out;
  }

  /** Loans wait on slots: name the subscribers in the way; detach them now (timeout 0) or arm the timer. */
  blocked(): void {
    const p = this.#p;
    const blockers = this.blockers();
    if (p.timeout === 0) {
      for (const s of blockers) p.detach(s, 'slow', `held ${s.held.size} samples (maxHeld ${p.quota})`);
      return;
    }
    for (const s of blockers) {
      if (s.waitedFor) continue;
      s.waitedFor = true;
      p.slow(s);
    }
    if (this.#timer !== null || blockers.length === 0 || p.timeout === Infinity) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (p.closed()) return;
      // exactly the subscribers at their quota: never an honest one that merely holds newer samples
      for (const s of this.blockers()) p.detach(s, 'slow', `kept the publisher waiting ${p.timeout} ms (holds ${s.held.size} samples)`);
      p.wake();
    }, p.timeout);
  }

  /** No loan waits any more (or the publisher closed). */
  stop(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }
}
