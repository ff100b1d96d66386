// SnapshotPublisher / SnapshotReader with real reader processes (test/fixtures/snapshot-reader.js):
// a version held across awaits, a reader that never reads, a killed reader, `using` with publish().
import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { type Delivery, SealedBuffer, SnapshotPublisher, type SnapshotReaderInfo, spawnWithChannel } from '../../src';
import { FIXTURES, killChildren, memfdFds } from '../helpers';

const READER = path.join(FIXTURES, 'snapshot-reader.js');
// Under 1 MiB: a SealedBuffer that small closes its descriptor at once (larger ones on the thread
// pool), so the publisher's descriptor counts below are exact.
const VERSION_SIZE = 512 * 1024;

/** Descriptors of this process open on a memfd named `name`. */
const memfds = memfdFds;

/** A version whose first word is `v` and whose other words depend on it. */
function versionBytes(v: number, size = 64 * 1024): Uint32Array {
  const words = new Uint32Array(size / 4);
  for (let i = 0; i < words.length; i++) words[i] = (v * 2654435761 + i) >>> 0;
  words[0] = v;
  return words;
}

interface Spawned { child: ChildProcess; lines: Interface; next(): Promise<Record<string, unknown>> }

describe('snapshot readers in other processes', function () {
  this.timeout(60_000);
  const children: ChildProcess[] = [];
  let pub: SnapshotPublisher | null = null;

  function spawnReader(args: string[], stdin: 'ignore' | 'pipe' = 'ignore'): Spawned & { channel: ReturnType<typeof spawnWithChannel>['channel'] } {
    const { child, channel } = spawnWithChannel(process.execPath, [READER, ...args], { stdio: [stdin, 'pipe', 'inherit'] });
    children.push(child);
    const lines = createInterface({ input: child.stdout! });
    const it = lines[Symbol.asyncIterator]();
    return {
      child, channel, lines,
      async next() {
        const r = await it.next();
        assert.ok(!r.done, 'the reader process ended without its report');
        return JSON.parse(r.value) as Record<string, unknown>;
      },
    };
  }

  afterEach(async () => {
    pub?.close();
    pub = null;
    await killChildren(children);
  });

  it('a pinned version stays byte-identical across awaits while 20 newer versions arrive, and is closed once released', async () => {
    pub = SnapshotPublisher.create();
    const r = spawnReader(['hold', '20']);
    await pub.attach(r.channel);
    const first = await pub.publish(versionBytes(1));
    assert.deepEqual([first.version, first.delivered, first.dropped], [1, 1, 0]);
    assert.deepEqual(await r.next(), { step: 'holding', version: 1, w0: 1 });
    for (let v = 2; v <= 21; v++) {
      const d: Delivery = await pub.publish(versionBytes(v), `v${v}`);   // resolves once the reader has it mapped
      assert.equal(d.delivered, 1, `version ${v} reached the reader`);
    }
    const after = await r.next();
    assert.equal(after.latest, 21);
    assert.equal(after.w0, 1, 'a Uint32Array taken before the awaits still reads the held version');
    assert.equal(after.length, 64 * 1024);
    assert.equal(after.identical, true, 'the held bytes are byte-identical to what they were');
    assert.equal(after.closed, false);
    assert.deepEqual(await r.next(), { step: 'released', closed: true });
    const [code] = await once(r.child, 'exit');
    assert.equal(code, 0);
  });

  it('a reader that never reads pins one version in flight; the publisher and another reader go on', async () => {
    pub = SnapshotPublisher.create({ name: 'snap-stuck', slowTimeout: Infinity });
    const left: string[] = [];
    pub.on('detach', (r, why) => left.push(`${r.id} ${why}`));
    const stuck = spawnReader(['never'], 'pipe');
    assert.deepEqual(await stuck.next(), { step: 'ready' });
    const good = spawnReader(['follow', '100']);
    await pub.attach(stuck.channel);
    await pub.attach(good.channel);
    const goodId = pub.readers[1]!.id;
    const deliveries: Promise<Delivery>[] = [];
    let mostOpen = 0;
    for (let v = 1; v <= 100; v++) {
      const taken = new Promise<void>((resolve) => {
        const onTaken = (info: SnapshotReaderInfo, version: number) => {
          if (info.id === goodId && version === v) { pub!.off('taken', onTaken); resolve(); }
        };
        pub!.on('taken', onTaken);
      });
      deliveries.push(pub.publish(Buffer.alloc(VERSION_SIZE, v)));
      await taken;   // the good reader has version v mapped: the stuck one does not hold it back
      mostOpen = Math.max(mostOpen, memfds('snap-stuck'));
    }
    // (the good reader exits once it has version 100: it may be gone from the list already)
    assert.ok(!left.some((l) => !l.startsWith(`${goodId} `)), `only the good reader may have left: ${left.join(', ')}`);
    const stuckInfo = pub.readers.find((r) => r.id !== goodId)!;
    assert.deepEqual([stuckInfo.version, stuckInfo.inFlight], [0, 1], 'the stuck reader has version 1 in flight, nothing more');
    // the publisher's own versions: the latest, and the one in flight to the stuck reader
    assert.ok(mostOpen <= 3, `at most 3 versions open in the publisher at any time (saw ${mostOpen})`);
    assert.equal(memfds('snap-stuck'), 2);
    assert.deepEqual(await good.next(), { step: 'followed', seen: Array.from({ length: 100 }, (_, i) => i + 1) });

    pub.close();
    const settled = await Promise.all(deliveries);
    assert.ok(settled.every((d) => d.delivered === 1 && d.dropped === 1 && d.drops[0]!.reason === 'publisher-closed'));
    assert.equal(memfds('snap-stuck'), 0, 'every version is closed with the publisher');
    stuck.child.stdin!.end('drain\n');
    const drained = await stuck.next();
    assert.deepEqual(drained, { step: 'drained', queued: 1, versions: [1] }, 'the kernel held one version (512 KiB) for it, not 100 (50 MiB)');
  });

  it('a killed reader is detached with its pid; the delivery it was awaited for counts it as dropped, saying why', async () => {
    pub = SnapshotPublisher.create({ name: 'snap-killed', slowTimeout: Infinity });
    const address = `\0memseal-test-snap-${process.pid}`;
    await pub.listen(address);
    const attached = once(pub, 'attach');
    // connects (SO_PEERCRED names the reader's own pid) and takes nothing: version 1 stays in flight to it
    const r = spawnReader(['never', '-', `@${address.slice(1)}`], 'pipe');   // (stdin open: it waits on it)
    r.channel.close();
    const pid = r.child.pid!;
    assert.equal(((await attached) as [SnapshotReaderInfo])[0].pid, pid);
    const delivery = pub.publish(versionBytes(1));
    assert.deepEqual(pub.readers.map((x) => [x.pid, x.inFlight]), [[pid, 1]]);
    const detached = once(pub, 'detach');
    r.child.kill('SIGKILL');
    const d = await delivery;
    assert.deepEqual([d.delivered, d.dropped, d.drops[0]!.reader.pid, d.drops[0]!.reason], [0, 1, pid, 'closed']);
    const [info, reason] = (await detached) as [SnapshotReaderInfo, string];
    assert.deepEqual([info.pid, reason], [pid, 'closed']);
    assert.deepEqual(pub.readers, []);
    assert.equal(memfds('snap-killed'), 1, 'only the latest version is left open');
    const none = await pub.publish(versionBytes(2));
    assert.deepEqual([none.version, none.delivered, none.dropped], [2, 0, 0], 'with no readers, publish() resolves at once');
  });

  it('publish() of a buffer in a `using` scope: the caller closes theirs, a reader that comes later still gets the version', async () => {
    pub = SnapshotPublisher.create();
    {
      using sb = SealedBuffer.from(versionBytes(7), { name: 'mine' });
      const d = await pub.publish(sb, 'seven');
      assert.equal(d.version, 1);
      assert.equal(sb.closed, false, 'publish() leaves the caller\'s buffer open');
    }
    assert.equal(memfds('mine'), 1, 'the publisher holds its own descriptor of the version');
    const closed = SealedBuffer.from('gone');
    closed.close();
    await assert.rejects(pub.publish(closed), { code: 'ERR_MEMSEAL_CLOSED', message: /^SnapshotPublisher\.publish\(\): the SealedBuffer is closed/ });
    assert.equal(pub.version, 1, 'a refused publish() takes no version number');
    const r = spawnReader(['hold', '1']);
    await pub.attach(r.channel);
    assert.deepEqual(await r.next(), { step: 'holding', version: 1, w0: 7 });
    await pub.publish('v2');
    assert.equal((await r.next()).identical, true);
  });
});
