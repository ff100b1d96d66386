// The FIFO behind a channel's send queue, receive queue and pending receive() calls: a ring that
// grows by doubling and gives its room back when a burst is over. Checked against a plain array.
import assert from 'node:assert/strict';
import { Queue } from '../../src/util/queue';

describe('util: Queue', () => {
  it('keeps FIFO order through wrap-around, growth, peekFirst, drain and shrinking', () => {
    const q = new Queue<number>();
    const model: number[] = [];
    let next = 0;
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    for (let step = 0; step < 20000; step++) {
      const op = rand(100);
      if (op < 50) {
        // bursts of pushes, some large enough to grow past the shrink threshold
        const k = rand(10) === 0 ? rand(3000) : 1 + rand(5);
        for (let i = 0; i < k; i++) {
          q.push(next);
          model.push(next++);
        }
      } else if (op < 90) {
        const k = 1 + rand(8);
        for (let i = 0; i < k; i++) assert.equal(q.shift(), model.shift());
      } else if (op < 98) {
        const k = rand(12);
        assert.deepEqual(q.peekFirst(k), model.slice(0, k));
        assert.equal(q.peek(), model[0]);
      } else {
        assert.deepEqual(q.drain(), model.splice(0));
      }
      assert.equal(q.length, model.length);
    }
    assert.deepEqual(q.drain(), model);
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
