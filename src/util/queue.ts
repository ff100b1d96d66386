// The FIFO behind a Channel's send queue, receive queue and waiting receive()
// calls: O(1) push and shift, because a send queue may hold hundreds of thousands
// of messages. A ring over an array that doubles when full and halves when a
// quarter full (down to 1024 slots), each amortized O(1): a queue that fills and
// empties one item at a time, as in request/response, never allocates, and one
// that held a burst does not keep the burst's room.

const MIN_CAPACITY = 8;
const SHRINK_ABOVE = 1024;  // a ring larger than this halves when it is a quarter full

/** FIFO with O(1) push and shift (amortized). */
export class Queue<T> {
  #items: (T | undefined)[] = new Array<T | undefined>(MIN_CAPACITY).fill(undefined);
  #mask = MIN_CAPACITY - 1;  // capacity - 1; the capacity is a power of two
  #head = 0;
  #length = 0;

  get length(): number { return this.#length; }

  push(item: T): void {
    if (this.#length > this.#mask) this.#resize((this.#mask + 1) * 2);
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
    const capacity = this.#mask + 1;
    if (capacity > SHRINK_ABOVE && this.#length <= capacity / 4) this.#resize(capacity / 2);
    return item;
  }

  /** Empties the queue, returning what it held. */
  drain(): T[] {
    const out = this.peekFirst(this.#length);
    this.#items = new Array<T | undefined>(MIN_CAPACITY).fill(undefined);
    this.#mask = MIN_CAPACITY - 1;
    this.#head = 0;
    this.#length = 0;
    return out;
  }

  /** Moves the items, in order, to the start of a new ring of `capacity` slots (a power of two, >= length). */
  #resize(capacity: number): void {
    const items = new Array<T | undefined>(capacity).fill(undefined);
    for (let i = 0; i < this.#length; i++) items[i] = this.#items[(this.#head + i) & this.#mask];
    this.#items = items;
    this.#mask = capacity - 1;
    this.#head = 0;
  }
}
