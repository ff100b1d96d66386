// Containers on one node: a sender and a receiver, and a publisher and a subscriber, in separate
// user, pid, network and mount namespaces (made with unshare(1)), meeting at a socket file in a
// directory both see — as a sidecar and its service sharing a volume do. docs/recipes.md, "Containers".
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Channel, listen, Publisher, SealedBuffer, type PeerCredentials } from '../../src';
import { readableCheckout } from '../helpers';

/** The command prefix that puts a child in new user (root mapped to our uid), pid, network and mount namespaces. */
const UNSHARE = ['unshare', '--user', '--map-root-user', '--pid', '--fork', '--net', '--mount'];

function namespacesAvailable(): string | null {
  const r = spawnSync(UNSHARE[0]!, [...UNSHARE.slice(1), 'true'], { encoding: 'utf8' });
  if (r.error) return `unshare(1) is not installed (${r.error.message})`;
  if (r.status !== 0) return `unshare --user --pid --net --mount fails here (unprivileged user namespaces off?): ${r.stderr.trim()}`;
  return null;
}

/** Runs the container-peer fixture in its own namespaces; resolves with its stdout once it exits 0. */
async function inNamespaces(...args: string[]): Promise<string> {
  const fixture = path.join(readableCheckout(), 'test', 'fixtures', 'container-peer.js');
  const child = spawn(UNSHARE[0]!, [...UNSHARE.slice(1), process.execPath, fixture, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  child.stderr!.on('data', (d: Buffer) => (err += d));
  const [code] = (await once(child, 'close')) as [number | null];
  assert.equal(code, 0, `${args.join(' ')}: ${err}`);
  return out;
}

describe('containers on one node (separate user, pid, network and mount namespaces)', function () {
  this.timeout(60000);
  let dir = '';

  before(function () {
    const why = namespacesAvailable();
    if (why !== null) {
      console.log(`      (skipped: ${why})`);
      this.skip();
    }
  });
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'memseal-volume-'));   // the shared volume
    chmodSync(dir, 0o755);
  });
  afterEach(() => { rmSync(dir, { recursive: true, force: true }); });

  it('a SealedBuffer crosses to a receiver in its own namespaces through a socket file, intact and verified', async () => {
    const sock = path.join(dir, 'handoff.sock');
    const peers: PeerCredentials[] = [];
    // allow by uid: root mapped to our own uid arrives as our uid (the default allow() admits it too)
    const server = await listen(sock, { mode: 0o660, allow: (peer) => { peers.push(peer); return peer.uid === process.getuid!(); } });
    try {
      const data = Buffer.alloc(3 << 20, 0x5a);
      data.write('sidecar', 0);
      using sb = SealedBuffer.from(data, { name: 'container-handoff' });
      server.on('connection', (ch: Channel) => { void ch.sendBuffer(sb, 'from the host'); });
      const replyP = new Promise<string>((resolve, reject) => {
        server.once('connection', (ch: Channel) => { ch.receive().then((m) => { resolve(m.data.toString()); ch.close(); }, reject); });
      });
      const [reply] = await Promise.all([replyP, inNamespaces('receive', sock)]);
      const r = JSON.parse(reply) as { sha256: string; meta: string; size: number; pid: number; uid: number; peer: PeerCredentials };
      assert.equal(r.sha256, createHash('sha256').update(data).digest('hex'));
      assert.equal(r.meta, 'from the host');
      assert.equal(r.size, data.length);
      assert.equal(r.pid, 1, 'the receiver is pid 1 of its own pid namespace');
      assert.equal(r.uid, 0, 'and root of its own user namespace');
      // What each side reads of the other: the host sees the receiver's host pid and real uid; the receiver
      // sees the host's pid as 0 (not in its pid namespace) and our uid through its uid map.
      assert.equal(peers.length, 1);
      assert.ok(peers[0]!.pid > 1, `host sees pid ${peers[0]!.pid}`);
      assert.equal(peers[0]!.uid, process.getuid!());
      assert.equal(r.peer.pid, 0, 'a peer outside the pid namespace reads as pid 0');
    } finally {
      server.close();
    }
  });

  it('a Subscriber in its own namespaces reads a Publisher\'s pool byte for byte', async () => {
    const sock = path.join(dir, 'frames.sock');
    const N = 200;
    using pub = Publisher.create({ slotSize: 4096, slots: 64, name: 'container-frames' });
    await pub.listen(sock, { mode: 0o660 });
    const done = inNamespaces('subscribe', sock, String(N));
    while (pub.subscriberCount === 0) await once(pub, 'attach');
    for (let n = 0; n < N; n++) {
      const loan = await pub.loan();
      loan.bytes.fill(n & 0xff, 0, 4096);
      loan.bytes.writeUInt32LE(n, 0);
      await loan.send(4096);
    }
    const report = JSON.parse(await done) as { samples: number; wrong: number; pid: number };
    assert.equal(report.wrong, 0);
    assert.ok(report.samples >= 1 && report.samples <= N, JSON.stringify(report));
    assert.equal(report.pid, 1);
  });

  it('an abstract socket name does not reach across network namespaces (use a socket file)', async () => {
    const name = `memseal-container-${process.pid}`;
    const server = await listen(`\0${name}`);
    try {
      const out = JSON.parse(await inNamespaces('abstract', name)) as { code: string | null };
      assert.equal(out.code, 'ECONNREFUSED');
    } finally {
      server.close();
    }
  });
});
