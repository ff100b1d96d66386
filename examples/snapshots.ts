// Periodic snapshots: the parent publishes a new version of a table every
// 20 ms; each reader always has the latest one. A slow reader is not sent the
// versions it has no time for: it skips them, and still ends at the newest.
// Run: npm run example:snapshots
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { Channel, SnapshotPublisher, SnapshotReader, spawnWithChannel } from '../src';

const VERSIONS = 10;

async function parent(): Promise<void> {
  using publisher = new SnapshotPublisher();
  const readers = ['fast', 'slow'].map((pace) =>
    spawnWithChannel(process.execPath, [...process.execArgv, __filename, pace], { stdio: 'inherit' }));
  // Listen for every exit now: a reader may finish (and exit) before the last
  // publish returns, and an 'exit' emitted before once() is attached is missed.
  const exited = readers.map(({ child }) => once(child, 'exit'));
  for (const { channel } of readers) publisher.attach(channel);
  for (let v = 1; v <= VERSIONS; v++) {
    const table = Array.from({ length: 1000 }, (_, i) => i * v);   // the dataset at version v
    publisher.publish(JSON.stringify(table), `built ${new Date().toISOString()}`);
    await sleep(20);
  }
  const codes = await Promise.all(exited);
  if (codes.some(([code]) => code !== 0)) throw new Error(`a reader failed: exit codes ${JSON.stringify(codes)}`);
  console.log(`published ${publisher.version} versions to ${readers.length} readers`);
}

async function reader(pace: string): Promise<void> {
  const snapshots = new SnapshotReader(Channel.fromParent(), { maxSize: 16 << 20 });
  const seen: number[] = [];
  let snap = await snapshots.next(0);
  for (;;) {
    const table = JSON.parse(snap.buffer.bytes.toString()) as number[];   // zero-copy view of the sealed bytes
    if (table[1] !== snap.version) throw new Error(`version ${snap.version} holds ${table[1]}`);
    seen.push(snap.version);
    if (snap.version === VERSIONS) break;
    if (pace === 'slow') await sleep(70);   // busy with other work: versions pile up meanwhile
    snap = await snapshots.next();
  }
  console.log(`${pace} reader saw versions ${seen.join(',')}; latest ${snap.version}`);
  snapshots.close();
}

if (process.argv[2] === undefined) parent().catch((err) => { console.error(err); process.exit(1); });
else reader(process.argv[2]).catch((err) => { console.error(err); process.exit(1); });
