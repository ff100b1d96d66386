// The FIFO behind a Channel's send queue, receive queue and waiting receive()
// calls: O(1) push and shift, because a send queue may hold hundreds of thousands
// of messages. A ring over an array that only grows (doubling) while the queue does:
// a queue that fills and empties, one item at a time as in request/response, never
// allocates.

const SHRINK_ABOVE = 1024;  // an emptied queue with room for more than this many goes back to 8

/** FIFO with O(1) push and shift. */
export class Queue<T> {
  #items: (T | undefined)[] = new Array<T | undefined>(8).fill(undefined);
  #mask = 7;     // capacity - 1; the capacity is a power of two
  #head = 0;
  #length = 0;

  get length(): number { return this.#length; }

  push(item: T): void {
    if (this.#length > this.#mask) this.#grow();
    this.#items[(this.#head + this.#length) & this.#mask] = item;
    this.#length++;
  }

  peek(): T | undefined {
    return this.#length === 0 ? undefined : this.#items[this.#head];
  }

  /** The first `n` items (fewer if it holds fewer), left in the queue. */
  peekFirst(n: number): T[] {
    const count = Math.min(n, this.#length);
    const out = new Array<T>(count);
    for (let i = 0; i < count; i++) out[i] = this.#items[(this.#head + i) & this.#mask] as T;
    return out;
  }

  shift(): T | undefined {
    if (this.#length === 0) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head] = undefined;  // the queue must not keep what it handed out alive
    this.#head = (this.#head + 1) & this.#mask;
    this.#length--;
    if (this.#length === 0 && this.#mask >= SHRINK_ABOVE) this.#reset();  // a burst is over: give its room back
    return item;
  }

  /** Empties the queue, returning what it held. */
  drain(): T[] {
    const out = this.peekFirst(this.#length);
    this.#reset();
    return out;
  }

  #reset(): void {
    this.#items = new Array<T | undefined>(8).fill(undefined);
    this.#mask = 7;
    this.#head = 0;
    this.#length = 0;
  }

  #grow(): void {
    const items = new Array<T | undefined>((this.#mask + 1) * 2).fill(undefined);
    for (let i = 0; i < this.#length; i++) items[i] = this.#items[(this.#head + i) & this.#mask];
    this.#items = items;
    this.#mask = items.length - 1;
    this.#head = 0;
  }
}
