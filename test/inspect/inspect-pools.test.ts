// memseal inspect: pools, their publisher and the processes that map them read-only.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import { features, inspect, inspectPools, Publisher, SealedBuffer } from '../../src';
import { FIXTURES, skipUnless } from '../helpers';

describe('inspectPools()', () => {
  it('finds a pool, its publisher and a subscriber process that maps it read-only', async function () {
    skipUnless(this, features.futureWrite, 'needs F_SEAL_FUTURE_WRITE (Linux 5.1)');
    const sock = path.join(os.tmpdir(), `memseal-inspect-pool-${process.pid}.sock`);
    using pub = Publisher.create({ slots: 3, slotSize: 8192, name: 'inspected-pool' });
    await pub.listen(sock);
    const child = spawn(process.execPath, [path.join(FIXTURES, 'pool-subscriber.js'), sock, '1'], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await once(pub, 'attach');
      await pub.publish('x');
      await new Promise<void>((resolve) => child.stdout!.on('data', (d: Buffer) => { if (/holding 1/.test(String(d))) resolve(); }));
      const pools = inspectPools(inspect([process.pid, child.pid!])).filter((p) => p.name === 'inspected-pool');
      assert.equal(pools.length, 1);
      const [p] = pools;
      assert.deepEqual([p!.slots, p!.slotSize, p!.size], [3, 8192, pub.size]);
      assert.equal(p!.publisher?.pid, process.pid);
      assert.deepEqual(p!.subscribers.map((s) => s.pid), [child.pid]);
      // which subscriber holds which slots, as the publisher marks them in the header
      const holding = pub.subscribers[0]!;
      assert.deepEqual(p!.holders, [{ pid: child.pid, slots: [...holding.slots] }]);
      assert.equal(holding.slots.length, 1);
    } finally {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  });

  it('does not take a sealed buffer (no FUTURE_WRITE, no pool header) for a pool', () => {
    using sb = SealedBuffer.from('pool'.repeat(100), { name: 'not-a-pool' });
    const report = inspect([process.pid]);
    assert.ok(report[0]!.memfds.some((m) => m.name === 'not-a-pool' && m.fd === sb.fd));
    assert.deepEqual(inspectPools(report).filter((p) => p.name === 'not-a-pool'), []);
  });
});
