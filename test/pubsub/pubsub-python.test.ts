// The reference Python peer's pool subscriber (python/memseal_pool.py, reached through memseal_peer)
// against the Node Publisher, in both delivery modes.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { features, Publisher, spawnWithChannel } from '../../src';
import { skipUnless, until } from '../helpers';

const PY_DIR = path.join(__dirname, '..', '..', 'python');
const ENTRY = 'import sys; sys.path.insert(0, sys.argv[1]); import memseal_peer as m; sys.exit(m.pool_main(sys.argv[1:]))';

function pythonMissing(): string | null {
  const r = spawnSync('python3', ['-c', 'import socket,sys; socket.recv_fds; sys.exit(sys.version_info < (3, 9))'], { encoding: 'utf8' });
  return r.status === 0 ? null : `python3 ≥ 3.9 not available (${r.error?.message ?? r.stderr.trim()})`;
}

/** Runs the Python pool subscriber on a channel, returns its JSON lines as they come. */
function spawnPy(n: number) {
  const { child, channel } = spawnWithChannel('python3', ['-c', ENTRY, PY_DIR, 'pool', String(n)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const out: Array<Record<string, unknown>> = [];
  let buf = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (d: string) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      out.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
      buf = buf.slice(i + 1);
    }
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, channel, out, exited };
}

function frame(bytes: Buffer, seq: number): number {
  bytes.writeDoubleLE(seq, 0);
  bytes.fill(seq & 0xff, 8, 4096);
  return 4096;
}

describe('Python pool subscriber (reference peer)', function () {
  this.timeout(60000);
  before(function () {
    skipUnless(this, features.futureWrite, 'needs F_SEAL_FUTURE_WRITE (Linux 5.1)');
    const why = pythonMissing();
    if (why !== null) this.skip();
  });

  for (const delivery of ['all', 'latest'] as const) {
    it(`receives, copies with the sequence check and releases, delivery '${delivery}'`, async () => {
      const pub = Publisher.create({ slotSize: 4096, maxSubscribers: 1, maxHeld: 2, delivery, slowTimeout: Infinity });
      const py = spawnPy(1000);
      await pub.attach(py.channel);
      for (let seq = 1; seq <= 40; seq++) {
        const loan = await pub.loan();
        await loan.send(frame(loan.bytes, seq), `m${seq}`);
        if (delivery === 'latest' && seq % 10 === 0) await until(() => pub.subscribers[0]!.held === 0, 'the peer to catch up', 30000);
      }
      await until(() => pub.subscribers[0]!.held === 0, 'every sample released', 30000);
      pub.close();  // a clean end: the peer's stream ends quietly
      assert.equal(await py.exited, 0);
      const samples = py.out.filter((l) => 'seq' in l);
      const end = py.out.at(-1)!;
      assert.equal(end.end, 'closed');
      assert.equal(end.quota, 2, 'the quota HELLO declared');
      assert.ok(samples.every((s) => s.ok === true && s.len === 4096 && s.meta === `m${s.seq as number}`), 'every copy intact');
      const seqs = samples.map((s) => s.seq as number);
      assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
      if (delivery === 'all') {
        assert.deepEqual(seqs, Array.from({ length: 40 }, (_, i) => i + 1), 'lossless');
        assert.equal(end.missed, 0);
      } else {
        assert.equal(seqs.at(-1), 40, 'it ends with the newest');
        assert.equal(end.missed, 40 - seqs[0]! + 1 - seqs.length, 'missed counts the gaps');
      }
    });
  }
});
