// One road for errors: the same misuse gives the same code, message and hint
// whether it comes through the low level or a high-level class.
import assert from 'node:assert/strict';
import { closeSync } from 'node:fs';
import {
  addSeals, constants as C, features, MemsealError, memfdCreate, mmap, Publisher, SealedBuffer, SnapshotPublisher, socketPair,
  Subscriber, WriteOnceArena,
} from '../../src';
import { skipUnless } from '../helpers';

function caught(fn: () => unknown): Error & { code?: string; hint?: string; syscall?: string } {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  assert.fail('expected a throw');
}

describe('errors', () => {
  it('an unknown seal bit has the same code, message and hint from addSeals() and SealedBuffer.from()', () => {
    const fd = memfdCreate('unknown-seal');
    try {
      const low = caught(() => addSeals(fd, 0x40));
      const high = caught(() => SealedBuffer.from('x', { seals: 0x40 }));
      assert.equal(low.code, 'EINVAL');
      assert.match(low.hint!, /unknown seal bits 0x40/);
      for (const key of ['code', 'message', 'hint', 'syscall'] as const) assert.equal(high[key], low[key], key);
    } finally {
      closeSync(fd);
    }
  });

  it('ERR_MEMSEAL_CLOSED has one message shape everywhere: "<call>: <object> is <state>"', async () => {
    const m = mmap(4096, C.PROT_READ, C.MAP_PRIVATE);
    m.unmap();
    const b = SealedBuffer.from('x');
    b.close();
    const a = new WriteOnceArena(4096, { name: 'cfg' });
    a.destroy();
    const [x, y] = socketPair();
    x.close();
    y.close();
    const errors = [
      caught(() => m.protect(C.PROT_READ)),
      caught(() => b.bytes),
      caught(() => a.alloc(1)),
      await x.send('hi').then(() => assert.fail('sent'), (e: Error) => e),
    ];
    for (const e of errors) {
      assert.ok(e instanceof MemsealError, e.message);
      assert.equal(e.code, 'ERR_MEMSEAL_CLOSED');
      assert.match(e.message, /^[\w.]+(\(\))?: .+ is (closed|unmapped|destroyed|disposed)$/);
    }
  });

  // "<call>: <object> is <state>", and ": <reason>" when someone else ended it for a known reason
  const CLOSED_SHAPE = /^[\w.]+(\(\))?: .+ is (closed|released|sent or cancelled|detached by the publisher)(: .+)?$/;

  it('ERR_MEMSEAL_CLOSED from Publisher, Loan, Sample, Subscriber and SnapshotPublisher has the same shape', async function () {
    skipUnless(this, features.futureWrite, 'needs F_SEAL_FUTURE_WRITE (Linux 5.1)');
    const errors: Error[] = [];
    const rejection = (p: Promise<unknown>) => p.then(() => assert.fail('resolved'), (e: Error) => e);

    // a subscriber whose publisher closed, one closed here (one it detached has its own code)
    const pub = Publisher.create({ slots: 4, slotSize: 16, maxHeld: 1, onSlow: 'detach' });
    const [a, b] = socketPair();
    const attached = pub.attach(a);
    const slow = await Subscriber.attach(b);
    await attached;
    await pub.publish('1');
    const held = await slow.receive();
    await pub.publish('2');  // slow holds maxHeld: detached
    // a detach is not a clean end: its own code (ERR_MEMSEAL_DETACHED), carrying the publisher's reason
    const detached = await rejection(slow.receive()) as MemsealError;
    assert.equal(detached.code, 'ERR_MEMSEAL_DETACHED');
    assert.match(detached.message, /^Subscriber\.receive\(\): the publisher detached this subscriber \(too slow\): held 1 samples/);
    held.release();
    errors.push(caught(() => held.copy()));

    pub.close();
    errors.push(await rejection(pub.publish('x')));
    errors.push(await rejection(pub.loan()));

    const pubB = Publisher.create({ slots: 4, slotSize: 16 });
    const [c, d] = socketPair();
    const attached2 = pubB.attach(c);
    const sub = await Subscriber.attach(d);
    await attached2;
    const loan = await pubB.loan();
    await loan.send(1);
    errors.push(caught(() => loan.bytes));
    (await sub.receive()).release();
    pubB.close();
    const hungUp = await rejection(sub.receive());
    assert.equal((hungUp as MemsealError).hint, 'the publisher closed the stream');
    errors.push(hungUp);

    const [e, f] = socketPair();
    const pub2 = Publisher.create({ slots: 2, slotSize: 16 });
    const attached3 = pub2.attach(e);
    const sub2 = await Subscriber.attach(f);
    await attached3;
    sub2.close();
    errors.push(await rejection(sub2.receive()));
    pub2.close();

    const snap = SnapshotPublisher.create();
    snap.close();
    const [g, h] = socketPair();
    errors.push(await rejection(snap.publish('x')));
    errors.push(await rejection(snap.attach(g)));
    errors.push(caught(() => snap.publishSync('x')));
    g.close();
    h.close();

    for (const err of errors) {
      assert.ok(err instanceof MemsealError, err.message);
      assert.equal(err.code, 'ERR_MEMSEAL_CLOSED');
      assert.match(err.message, CLOSED_SHAPE);
    }
  });

  it('SealedBuffer#close() does not throw when the caller closed its fd already (native close, as elsewhere)', () => {
    const b = SealedBuffer.from('x');
    closeSync(b.fd);
    assert.doesNotThrow(() => b.close());
    assert.equal(b.closed, true);
  });

  it('a full WriteOnceArena throws a MemsealError with ERR_MEMSEAL_SIZE', () => {
    const a = new WriteOnceArena(4096);
    try {
      const e = caught(() => a.alloc(a.capacity + 1));
      assert.ok(e instanceof MemsealError);
      assert.equal(e.code, 'ERR_MEMSEAL_SIZE');
    } finally {
      a.destroy();
    }
  });
});
