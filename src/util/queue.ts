// The FIFO behind a Channel's send queue, receive queue and waiting receive()
// calls: O(1) shift, because a send queue may hold hundreds of thousands of messages.

/** FIFO with O(1) shift. */
export class Queue<T> {
  #items: (T | undefined)[] = [];
  #head = 0;

  get length(): number { return this.#items.length - this.#head; }

  push(item: T): void {
    this.#items.push(item);
  }

  peek(): T | undefined {
    return this.#items[this.#head];
  }

  /** The first `n` items (fewer if it holds fewer), left in the queue. */
  peekFirst(n: number): T[] {
    return this.#items.slice(this.#head, this.#head + n) as T[];
  }

  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  /** Empties the queue, returning what it held. */
  drain(): T[] {
    const out = this.#items.slice(this.#head) as T[];
    this.#items = [];
    this.#head = 0;
    return out;
  }
}

