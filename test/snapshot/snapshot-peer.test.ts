// The Python reference peer's SnapshotReader (python/memseal_snapshot.py, reached through memseal_peer) against the Node
// SnapshotPublisher: it verifies, maps and acknowledges each version, and the publisher awaits it.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { type Delivery, SnapshotPublisher, type SnapshotReaderInfo } from '../../src';

const PY_DIR = path.join(__dirname, '..', '..', 'python');

describe('the Python snapshot reader (memseal_peer.py)', function () {
  this.timeout(30_000);
  let pub: SnapshotPublisher | null = null;
  afterEach(() => { pub?.close(); pub = null; });

  before(function () {
    const r = spawnSync('python3', ['-c', 'import socket,sys; socket.recv_fds; sys.exit(sys.version_info < (3, 9))']);
    if (r.status !== 0) this.skip();   // python3 >= 3.9 (socket.recv_fds) not available
  });

  it('takes every version a Node publisher awaits, byte for byte, and is listed with its own pid', async () => {
    pub = SnapshotPublisher.create();
    const address = `\0memseal-test-pysnap-${process.pid}`;
    await pub.listen(address);
    const attached = once(pub, 'attach');
    const child = spawn('python3', ['-c', 'import sys, memseal_peer; sys.exit(memseal_peer.snapshot_main(sys.argv[1:]))',
      `@${address.slice(1)}`, '5'], { cwd: PY_DIR, stdio: ['ignore', 'pipe', 'inherit'] });
    const [info] = (await attached) as [SnapshotReaderInfo];
    assert.equal(info.pid, child.pid);
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    for (let v = 1; v <= 5; v++) {
      const bytes = Buffer.alloc(256 * 1024 + v, v);
      const d: Delivery = await pub.publish(bytes, `from node ${v}`);
      assert.deepEqual([d.version, d.delivered, d.dropped], [v, 1, 0], 'publish() resolved once Python had it mapped');
      const line = JSON.parse((await lines.next()).value as string);
      assert.deepEqual(line, { version: v, meta: `from node ${v}`, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') });
    }
    const [code] = await once(child, 'exit');
    assert.equal(code, 0);
  });
});
