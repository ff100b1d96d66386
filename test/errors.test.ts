// One road for errors: the same misuse gives the same code, message and hint
// whether it comes through the low level or a high-level class.
import assert from 'node:assert/strict';
import { closeSync } from 'node:fs';
import { addSeals, constants as C, MemsealError, memfdCreate, mmap, SealedBuffer, socketPair, WriteOnceArena } from '../src';

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
