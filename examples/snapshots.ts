// Periodic snapshots: the parent publishes a new version of a table every
// 20 ms and learns when each reader has it; each reader always has the latest.
// A slow reader is not sent the versions it has no time for: it skips them,
// and the version it is working on stays pinned (intact) until it releases it.
// Run: npm run example:snapshots
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { Channel, SnapshotPublisher, SnapshotReader, spawnWithChannel } from '../src';

const VERSIONS = 10;

async function parent(): Promise<void> {
  using publisher = SnapshotPublisher.create({ name: 'table' });
  const readers = ['fast', 'slow'].map((pace) =>
    spawnWithChannel(process.execPath, [...process.execArgv, __filename, pace], { stdio: 'inherit' }));
  // Listen for every exit now: a reader may finish (and exit) before the last
  // publish settles, and an 'exit' emitted before once() is attached is missed.
  const exited = readers.map(({ child }) => once(child, 'exit'));
  for (const { channel } of readers) await publisher.attach(channel);   // the publisher owns the channels
  for (let v = 1; v <= VERSIONS; v++) {
    const table = Array.from({ length: 1000 }, (_, i) => i * v);   // the dataset at version v
    // Resolves when every reader has this version (or a newer one) mapped.
    const delivery = publisher.publish(JSON.stringify(table), `built ${new Date().toISOString()}`);
    if (v === 1) console.log(`version 1 mapped by ${(await delivery).delivered} readers`);   // both are up
    // later versions are not awaited: a slow reader must not hold the producer back
    await sleep(20);
  }
  const codes = await Promise.all(exited);
  if (codes.some(([code]) => code !== 0)) throw new Error(`a reader failed: exit codes ${JSON.stringify(codes)}`);
  console.log(`published ${publisher.version} versions to ${readers.length} readers`);
}

async function reader(pace: string): Promise<void> {
  using snapshots = await SnapshotReader.attach(Channel.fromParent(), { maxSize: 16 << 20 });
  const seen: number[] = [];
  for (;;) {
    using snap = await snapshots.next();   // pinned: intact until the end of this iteration
    const table = JSON.parse(snap.buffer.readonlyBytes.toString()) as number[];   // a read-only view of the sealed pages
    if (table[1] !== snap.version) throw new Error(`version ${snap.version} holds ${table[1]}`);
    seen.push(snap.version);
    if (pace === 'slow') await sleep(70);   // busy with other work: newer versions arrive meanwhile
    if (snap.buffer.readonlyBytes.toString() !== JSON.stringify(table)) throw new Error('a pinned version changed');
    if (snap.version === VERSIONS) break;
  }
  console.log(`${pace} reader saw versions ${seen.join(',')}; latest ${seen.at(-1)}`);
}

if (process.argv[2] === undefined) parent().catch((err) => { console.error(err); process.exit(1); });
else reader(process.argv[2]).catch((err) => { console.error(err); process.exit(1); });
