// SnapshotPublisher / SnapshotReader in one process, over real socket pairs: the contract,
// errors, peers that break the protocol, and the deprecated first API.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { closeSync, ftruncateSync } from 'node:fs';
import {
  addSeals, type Channel, DEFAULT_MAX_SIZE, memfdCreate, MemsealError, Seal, SealedBuffer, type SnapshotDetachReason, SnapshotPublisher, SnapshotReader, type SnapshotReaderInfo, socketPair,
} from '../../src';
import { collectGarbage, countFds, memfdFds } from '../helpers';

/** Descriptors of this process open on a memfd named `name`. */
const memfds = (name = 'snapshot'): number => memfdFds(name);

describe('SnapshotPublisher / SnapshotReader', () => {
  const open: { close(): void }[] = [];
  const track = <T extends { close(): void }>(x: T): T => { open.push(x); return x; };
  let fdsBefore = 0;
  beforeEach(() => { fdsBefore = countFds(); });
  afterEach(async () => {
    for (const x of open.splice(0)) x.close();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(countFds(), fdsBefore, 'every descriptor the test opened is closed');
  });

  async function pair(o?: Parameters<typeof SnapshotPublisher.create>[0], maxSize = 1 << 20): Promise<[SnapshotPublisher, SnapshotReader, Channel]> {
    const pub = track(SnapshotPublisher.create(o));
    const [a, b] = socketPair();
    await pub.attach(a);
    return [pub, track(await SnapshotReader.attach(b, { maxSize })), a];
  }

  it('publish() resolves once the reader has the version mapped, with counts; attach and taken events carry the reader', async () => {
    const pub = track(SnapshotPublisher.create());
    const events: string[] = [];
    pub.on('attach', (r) => events.push(`attach ${r.id} ${r.version}`));
    pub.on('taken', (r, v) => events.push(`taken ${r.id} ${v}`));
    const [a, b] = socketPair();
    await pub.attach(a);
    const reader = track(await SnapshotReader.attach(b, { maxSize: 1 << 20 }));
    const d = await pub.publish('v1', 'first');
    assert.deepEqual({ ...d }, { version: 1, delivered: 1, dropped: 0, drops: [] });
    assert.equal(reader.latest?.version, 1, 'delivered means the reader has it');
    assert.deepEqual(events, ['attach 1 0', 'taken 1 1']);
    const [info] = pub.readers;
    assert.deepEqual([info!.id, info!.pid, info!.version, info!.inFlight], [1, process.pid, 1, 0]);
    using snap = await reader.next();
    assert.deepEqual([snap.version, snap.meta, snap.buffer.readonlyBytes.toString()], [1, 'first', 'v1']);
  });

  it('hold() pins the latest: it stays open and intact after newer versions; latest moves', async () => {
    const [pub, reader] = await pair();
    await pub.publish('one');
    const held = reader.hold();
    const view = held.buffer.bytes;
    for (let v = 2; v <= 5; v++) await pub.publish(`v${v}`);
    assert.equal(reader.latest?.version, 5);
    assert.equal(held.buffer.closed, false);
    assert.equal(view.toString(), 'one');
    const fds = memfds();
    held.release();
    held.release();   // idempotent
    assert.equal(held.buffer.closed, true, 'released and not the latest: closed');
    assert.equal(memfds(), fds - 1);
  });

  it('a pinned snapshot that is collected without release() gives its version back', async function () {
    if (typeof global.gc !== 'function') this.skip();
    const [pub, reader] = await pair({ name: 'snap-gc' });
    await pub.publish('a');
    await (async () => { await reader.next(); })();   // pinned, then dropped on the floor
    await pub.publish('b');
    assert.equal(memfds('snap-gc'), 3, "the publisher's version 2, the reader's 2 and its pinned 1");
    await collectGarbage();
    assert.equal(memfds('snap-gc'), 2, 'the collected pin gave version 1 back: closed');
  });

  it('next(after) skips versions that came and went; next() waits for a newer one', async () => {
    const [pub, reader] = await pair();
    for (let v = 1; v <= 50; v++) void pub.publish(`version ${v}`);
    const d = await pub.publish('version 51');
    assert.equal(d.delivered, 1);
    using s = await reader.next(0);
    assert.equal(s.buffer.bytes.toString(), 'version 51');
    const later = reader.next();
    let resolved = false;
    void later.then(() => { resolved = true; });
    await new Promise((r) => setImmediate(r));
    assert.equal(resolved, false, 'nothing newer yet');
    await pub.publish('version 52');
    using s2 = await later;
    assert.equal(s2.version, 52);
  });

  it('a SealedBuffer is shared, never taken: the caller may close theirs at once; a closed one is ERR_MEMSEAL_CLOSED before any version', async () => {
    const [pub, reader] = await pair({ name: 'snap-own' });
    const sb = SealedBuffer.from('shared', { name: 'callers' });
    const delivery = pub.publish(sb, 'm');
    sb.close();
    assert.equal((await delivery).delivered, 1);
    using s = await reader.next();
    assert.equal(s.buffer.bytes.toString(), 'shared');
    await assert.rejects(pub.publish(sb), (err: MemsealError) => {
      assert.equal(err.code, 'ERR_MEMSEAL_CLOSED');
      assert.match(err.message, /^SnapshotPublisher\.publish\(\): the SealedBuffer is closed$/);
      return true;
    });
    assert.equal(pub.version, 1);
  });

  it('without maxSize a reader refuses a version over DEFAULT_MAX_SIZE (1 GiB), as every receiver does', async () => {
    const [a, b] = socketPair();
    track(a);
    const reader = track(await SnapshotReader.attach(b));
    const fd = memfdCreate('snapshot-huge');   // sparse: 2 GiB that cost nothing
    try {
      ftruncateSync(fd, 2 * DEFAULT_MAX_SIZE);
      addSeals(fd, Seal.SHRINK | Seal.GROW | Seal.WRITE | Seal.SEAL);
      await a.send(JSON.stringify({ version: 1, meta: '' }), [fd]);
    } finally {
      closeSync(fd);   // the message holds its own reference
    }
    await assert.rejects(reader.next(), { code: 'ERR_MEMSEAL_SIZE' });
  });

  it('misuse is TypeError/RangeError with Node codes, rejected before anything is sent', async () => {
    const pub = track(SnapshotPublisher.create());
    await assert.rejects(pub.publish(42 as unknown as string), { code: 'ERR_INVALID_ARG_TYPE', name: 'TypeError' });
    await assert.rejects(pub.publish('x', 7 as unknown as string), { code: 'ERR_INVALID_ARG_TYPE' });
    await assert.rejects(pub.publish('x', 'm'.repeat(70_000)), { code: 'ERR_OUT_OF_RANGE', name: 'RangeError' });
    await assert.rejects(pub.attach({} as Channel), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => SnapshotPublisher.create({ slowTimeout: -1 }), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => SnapshotPublisher.create({ name: 'a\0b' }), { code: 'ERR_INVALID_ARG_VALUE' });
    const [a, b] = socketPair();
    track(a);
    track(b);
    await assert.rejects(SnapshotReader.attach(b, { maxSize: -1 }), { code: 'ERR_OUT_OF_RANGE' });
    await assert.rejects(SnapshotReader.attach(b, 'big' as unknown as object), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.equal(pub.version, 0);
  });

  it('errors after close() name the call made: SnapshotReader.next(), SnapshotPublisher.publish()/attach()', async () => {
    const [pub, reader] = await pair();
    await pub.publish('x');
    reader.close();
    await assert.rejects(reader.next(), { code: 'ERR_MEMSEAL_CLOSED', message: 'SnapshotReader.next(): the reader is closed' });
    assert.throws(() => reader.hold(), { code: 'ERR_MEMSEAL_CLOSED', message: 'SnapshotReader.hold(): the reader is closed' });
    pub.close();
    await assert.rejects(pub.publish('y'), { code: 'ERR_MEMSEAL_CLOSED', message: 'SnapshotPublisher.publish(): the publisher is closed' });
    const [c, d] = socketPair();
    track(d);
    await assert.rejects(pub.attach(c), { code: 'ERR_MEMSEAL_CLOSED', message: 'SnapshotPublisher.attach(): the publisher is closed' });
    c.close();
  });

  it('a reader whose publisher closes keeps what it holds; next() then says the publisher hung up', async () => {
    const [pub, reader] = await pair();
    await pub.publish('last');
    using held = await reader.next();
    const next = reader.next();
    pub.close();
    await assert.rejects(next, (err: MemsealError) => {
      assert.equal(err.code, 'ERR_MEMSEAL_CLOSED');
      assert.equal(err.message, 'SnapshotReader.next(): the reader is closed: the publisher hung up');
      return true;
    });
    assert.equal(held.buffer.bytes.toString(), 'last');
    assert.equal(reader.latest?.version, 1);
    const [c, d] = socketPair();
    track(d);
    const early = track(new SnapshotReader(c, { maxSize: 1 }));
    assert.throws(() => early.hold(), { code: 'ERR_MEMSEAL_NO_SNAPSHOT', message: /^SnapshotReader\.hold\(\): no version has arrived yet$/ });
  });

  it('a reader that does not take its version within slowTimeout is detached as slow; the delivery says so', async () => {
    const pub = track(SnapshotPublisher.create({ slowTimeout: 50 }));
    const [a, b] = socketPair();
    track(b);   // never read: the version stays queued in the kernel, untaken
    await pub.attach(a);
    const detached = once(pub, 'detach');
    const d = await pub.publish('stuck');
    assert.deepEqual([d.delivered, d.dropped, d.drops[0]!.reason], [0, 1, 'slow']);
    const [, reason] = (await detached) as [SnapshotReaderInfo, SnapshotDetachReason];
    assert.equal(reason, 'slow');
    assert.deepEqual(pub.readers, []);
  });

  describe('peers that break the protocol', () => {
    it('a reader sending garbage or descriptors is detached (protocol); the publisher serves the others', async () => {
      const [pub, reader] = await pair();
      const reasons: string[] = [];
      pub.on('detach', (_r, why) => reasons.push(why));
      for (const bad of [Buffer.from('{"taken":"1"}'), Buffer.alloc(100, 0x7b)]) {
        const [x, y] = socketPair();
        track(y);
        await pub.attach(x);
        const gone = once(pub, 'detach');
        await y.send(bad);
        await gone;
      }
      const [x, y] = socketPair();
      track(y);
      await pub.attach(x);
      using sb = SealedBuffer.from('fd');
      const gone = once(pub, 'detach');
      await y.send('{"taken":1}', [sb.fd]);
      await gone;
      assert.equal(x.closed, true);
      assert.deepEqual(reasons, ['protocol', 'protocol', 'protocol']);
      assert.equal((await pub.publish('fine')).delivered, 1);
      assert.equal(reader.latest?.buffer.bytes.toString(), 'fine');
    });

    it('a stray or repeated TAKEN changes nothing', async () => {
      const pub = track(SnapshotPublisher.create());
      const [a, b] = socketPair();
      track(b);
      await pub.attach(a);
      const d = pub.publish('v1');
      await b.send('{"taken":7}');            // a version it was never sent
      const m = await b.receive();
      m.closeFds();
      await b.send('{"taken":1}');
      await b.send('{"taken":1}');
      assert.equal((await d).delivered, 1);
      assert.deepEqual(pub.readers.map((r) => [r.version, r.inFlight]), [[1, 0]]);
    });

    it('a publisher sending a version message without the version header: next() rejects ERR_MEMSEAL_PROTOCOL, nothing kept', async () => {
      const [a, b] = socketPair();
      track(a);
      const reader = track(await SnapshotReader.attach(b, { maxSize: 1 << 20 }));
      using sb = SealedBuffer.from('x');
      await a.sendBuffer(sb, 'not json');
      await assert.rejects(reader.next(), (err: MemsealError) => {
        assert.equal(err.code, 'ERR_MEMSEAL_PROTOCOL');
        assert.match(err.message, /^SnapshotReader\.next\(\): the publisher sent a version message/);
        return true;
      });
      assert.equal(reader.latest, null);
    });

    it('a publisher sending an older version again, or an oversized one, is refused, naming SnapshotReader.next()', async () => {
      const [a, b] = socketPair();
      track(a);
      const reader = track(await SnapshotReader.attach(b, { maxSize: 4 }));
      using sb = SealedBuffer.from('1234');
      await a.sendBuffer(sb, '{"version":2}');
      (await reader.next()).release();
      await a.sendBuffer(sb, '{"version":2}');
      await assert.rejects(reader.next(), { code: 'ERR_MEMSEAL_PROTOCOL', message: /SnapshotReader\.next\(\): the publisher sent version 2 after 2/ });
      const [c, d] = socketPair();
      track(c);
      const small = track(await SnapshotReader.attach(d, { maxSize: 2 }));
      await c.sendBuffer(sb, '{"version":1}');
      await assert.rejects(small.next(), { code: 'ERR_MEMSEAL_SIZE', message: /^SnapshotReader\.next\(\): / });
    });
  });

  describe('the first snapshot API (deprecated, still working)', () => {
    it('new SnapshotPublisher(), publishSync() returning the version, new SnapshotReader(channel, options)', async () => {
      const pub = track(new SnapshotPublisher());
      assert.equal(pub.publishSync('v1', 'first'), 1);
      const [a, b] = socketPair();
      void pub.attach(a);
      const reader = track(new SnapshotReader(b, { maxSize: 1 << 20 }));
      const first = await reader.next(0);
      assert.deepEqual([first.version, first.meta, first.buffer.bytes.toString()], [1, 'first', 'v1']);
      assert.equal(pub.publishSync('v2'), 2);
      assert.equal((await reader.next()).buffer.bytes.toString(), 'v2');
      assert.equal(first.buffer.closed, true, 'as in the first API: next() hands out the moving latest, closed by the next version');
      assert.equal(pub.subscribers, 1);
      pub.close();
      assert.throws(() => pub.publishSync('x'), { code: 'ERR_MEMSEAL_CLOSED', message: /^SnapshotPublisher\.publishSync\(\)/ });
    });
  });
});
