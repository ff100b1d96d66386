// What a receiver makes of the descriptors a peer sends: a fixed default size
// bound, exact descriptor counts, and refusals for the wrong kind or access
// mode of descriptor, before anything is mapped.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { addSeals, DEFAULT_MAX_SIZE, memfdCreate, Seal, socketPair, verifySeals } from '../src';
import { DEFAULT_MAX_POOL_SIZE } from '../src/pubsub/subscriber';
import { countFds } from './helpers';

const SEALS = Seal.SHRINK | Seal.GROW | Seal.WRITE | Seal.SEAL;

function code(expected: string, hint?: RegExp) {
  return (err: unknown) => {
    assert.equal((err as { code?: string }).code, expected, String(err));
    if (hint !== undefined) assert.match((err as { hint?: string }).hint ?? '', hint, String(err));
    return true;
  };
}

/** A sealed memfd of `size` bytes, never written (sparse). */
function sparseSealed(size: number): number {
  const fd = memfdCreate('memseal-test-sparse');
  fs.ftruncateSync(fd, size);
  addSeals(fd, SEALS);
  return fd;
}

describe('receivers: default size bound', function () {
  this.timeout(20000);

  it('is one fixed 1 GiB on every Node version, as the Subscriber\'s', () => {
    assert.equal(DEFAULT_MAX_SIZE, 2 ** 30);
    assert.equal(DEFAULT_MAX_POOL_SIZE, DEFAULT_MAX_SIZE);
  });

  it('receiveBuffer() without maxSize refuses a sealed sparse file over 1 GiB, below what a Buffer can show', async () => {
    const [a, b] = socketPair();
    const fd = sparseSealed(2 ** 31);
    try {
      assert.equal(verifySeals(fd).code, 'ERR_MEMSEAL_SIZE');
      const before = countFds();
      await a.send('x', [fd]);
      await assert.rejects(b.receiveBuffer(), code('ERR_MEMSEAL_SIZE'));
      assert.equal(countFds(), before, 'the refused descriptor is closed');
      // an explicit maxSize still admits it
      await a.send('x', [fd]);
      const { buffer } = await b.receiveBuffer({ maxSize: 2 ** 31 });
      assert.equal(buffer.size, 2 ** 31);
      buffer.close();
    } finally {
      fs.closeSync(fd);
      a.close();
      b.close();
    }
  });
});
