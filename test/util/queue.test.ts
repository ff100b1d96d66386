// The FIFO behind a channel's send queue, receive queue and pending receive() calls: a ring that
// grows by doubling and gives its room back when a burst is over. Checked against a plain array.
import assert from 'node:assert/strict';
import { Queue } from '../../src/util/queue';

describe('util: Queue', () => {
  it('keeps FIFO order through wrap-around, growth, peekFirst, drain and shrinking', () => {
    const q = new Queue<number>();
    // the model: items model[head..] in order (an index, not Array#shift, keeps the test linear)
    let model: number[] = [];
    let head = 0;
    let next = 0;
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    for (let step = 0; step < 6000; step++) {
      const op = rand(100);
      if (op < 50) {
        // bursts of pushes, some past the size above which an emptying ring shrinks
        const k = rand(20) === 0 ? 1000 + rand(1500) : 1 + rand(5);
        for (let i = 0; i < k; i++) {
          q.push(next);
          model.push(next++);
        }
      } else if (op < 90) {
        // runs of shifts, some long enough to take a burst's ring down past a quarter full
        const k = rand(10) === 0 ? rand(2000) : 1 + rand(8);
        for (let i = 0; i < k; i++) assert.equal(q.shift(), head < model.length ? model[head++] : undefined);
      } else if (op < 98) {
        const k = rand(12);
        assert.deepEqual(q.peekFirst(k), model.slice(head, head + k));
        assert.equal(q.peek(), model[head]);
      } else {
        assert.deepEqual(q.drain(), model.slice(head));
        model = [];
        head = 0;
      }
      assert.equal(q.length, model.length - head);
    }
    assert.deepEqual(q.drain(), model.slice(head));
    assert.equal(q.shift(), undefined);
    assert.equal(q.peek(), undefined);
    assert.equal(q.length, 0);
  });

  it('an emptied queue holds nothing: undefined entries are items like any other', () => {
    const q = new Queue<number | undefined>();
    q.push(undefined);
    q.push(1);
    assert.equal(q.length, 2);
    assert.equal(q.shift(), undefined);
    assert.equal(q.length, 1);
    assert.equal(q.shift(), 1);
    assert.equal(q.length, 0);
  });
});
