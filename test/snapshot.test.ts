// SnapshotPublisher / SnapshotReader: latest-version delivery over SealedBuffer.
import assert from 'node:assert/strict';
import { readdirSync, readlinkSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { SnapshotPublisher, SnapshotReader, socketPair } from '../src';

/** Descriptors of this process open on a snapshot memfd. */
function snapshotFds(): string[] {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try { return readlinkSync(`/proc/self/fd/${fd}`).startsWith('/memfd:snapshot '); } catch { return false; }
  });
}

describe('SnapshotPublisher / SnapshotReader', () => {
  it('a reader attached later gets the latest version at once; every reader ends at the newest', async () => {
    const pub = new SnapshotPublisher();
    assert.equal(pub.publish('v1', 'first'), 1);
    const [a, b] = socketPair();
    pub.attach(a);
    const reader = new SnapshotReader(b, { maxSize: 1 << 20 });
    const first = await reader.next(0);
    assert.equal(first.version, 1);
    assert.equal(first.meta, 'first');
    assert.equal(first.buffer.bytes.toString(), 'v1');
    assert.equal(pub.publish('v2'), 2);
    const second = await reader.next();
    assert.equal(second.version, 2);
    assert.equal(second.buffer.bytes.toString(), 'v2');
    assert.equal(first.buffer.closed, true, 'the previous version is closed when a newer one arrives');
    assert.equal(pub.subscribers, 1);
    reader.close();
    await sleep(20);
    assert.equal(pub.subscribers, 0, 'a closed subscriber is dropped');
    pub.close();
    a.close();
    await sleep(20);
    assert.deepEqual(snapshotFds(), [], 'no snapshot memfd left open');
  });

  it('keeps one buffer in flight per subscriber: 200 versions published at once reach a reader as a few, ending at 200', async () => {
    const pub = new SnapshotPublisher();
    const [a, b] = socketPair();
    pub.attach(a);
    let received = 0;
    const reader = new SnapshotReader(b, { maxSize: 1 << 20 });
    for (let v = 1; v <= 200; v++) pub.publish(`version ${v}`);
    let snap = await reader.next(0);
    received++;
    while (snap.version < 200) { snap = await reader.next(snap.version); received++; }
    assert.equal(snap.buffer.bytes.toString(), 'version 200');
    assert.ok(received < 10, `the reader was handed ${received} versions`);
    reader.close();
    pub.close();
    a.close();
  });

  it('refuses a snapshot over maxSize (the reader stops with ERR_MEMSEAL_SIZE)', async () => {
    const pub = new SnapshotPublisher();
    const [a, b] = socketPair();
    pub.attach(a);
    const reader = new SnapshotReader(b, { maxSize: 4 });
    pub.publish('too large');
    await assert.rejects(reader.next(0), { code: 'ERR_MEMSEAL_SIZE' });
    reader.close();
    pub.close();
    a.close();
  });
});
