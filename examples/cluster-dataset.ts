// Cluster: the primary builds a dataset, publishes it as a snapshot to its
// node:cluster workers (and only to them: any other process is refused), then
// swaps in a new version. Every worker maps the same pages read-only: each
// version exists once in memory, and a stray write in a worker is a fault,
// not a silent private copy.
// Run: npm run example:cluster-dataset
import cluster from 'node:cluster';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { connect, SealedBuffer, SnapshotPublisher, SnapshotReader } from '../src';

const WORKERS = 3;
const SIZE = 16 << 20;

function datasetAddress(primaryPid: number): string {
  return `\0dataset-${primaryPid}`;
}

function build(version: number): SealedBuffer {
  return SealedBuffer.create(SIZE, (bytes) => {
    for (let i = 0; i < bytes.length; i += 8) bytes.writeUInt32LE(((i >>> 3) + version) >>> 0, i);
  }, { name: 'dataset' });
}

const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex').slice(0, 16);

async function primary(): Promise<void> {
  using publisher = SnapshotPublisher.create({ name: 'dataset' });
  const workerPids = new Set<number>();
  // An abstract socket name (no file) tied to this primary; served only to our workers' pids (SO_PEERCRED).
  const server = await publisher.listen(datasetAddress(process.pid), { allow: (peer) => workerPids.has(peer.pid) });
  let refused = 0;
  server.on('refused', () => { refused++; });

  let digest = '';
  {
    using v1 = build(1);                       // publish() shares it: ours to close
    digest = sha(v1.readonlyBytes);
    await publisher.publish(v1, JSON.stringify({ digest }));
  }
  const results: string[] = [];
  const ready = new Set<number>();
  for (let i = 0; i < WORKERS; i++) {
    const worker = cluster.fork();
    workerPids.add(worker.process.pid!);
    worker.on('message', (m: string) => { if (m === 'ready') ready.add(worker.process.pid!); else results.push(m); });
  }

  // Any other process (here: the primary itself) connecting is refused.
  const stranger = await connect(datasetAddress(process.pid));
  await once(stranger, 'close');

  while (ready.size < WORKERS) await once(cluster, 'message');   // every worker holds version 1
  using v2 = build(2);
  digest = sha(v2.readonlyBytes);
  const started = performance.now();
  const { delivered } = await publisher.publish(v2, JSON.stringify({ digest }));
  console.log(`version 2 mapped by ${delivered} workers in ${(performance.now() - started).toFixed(1)} ms`);

  while (Object.keys(cluster.workers ?? {}).length > 0) await once(cluster, 'exit');
  for (const r of results.sort()) console.log(r);
  console.log(`${results.length} workers read the same ${SIZE >> 20} MiB dataset (sha256 ${digest}); ${refused} other process refused`);
}

async function worker(): Promise<void> {
  const reader = await SnapshotReader.connect(datasetAddress(process.ppid), { maxSize: 256 << 20 });   // the primary is our parent
  {
    using first = await reader.next();         // verified, mapped, pinned until the end of this block
    if (first.buffer.readonlyBytes.readUInt32LE(0) !== 1) throw new Error('version 1 holds the wrong bytes');
    process.send!('ready');
  }
  using snap = await reader.next();            // version 2
  const { digest } = JSON.parse(snap.meta) as { digest: string };
  const mine = sha(snap.buffer.readonlyBytes); // PROT_READ, MAP_SHARED: the primary's pages, no copy
  process.send!(`worker ${process.pid}: ${snap.buffer.size} bytes, checksum ${mine === digest ? 'ok' : 'MISMATCH'}`);
  reader.close();
  process.disconnect();
}

(cluster.isPrimary ? primary() : worker()).catch((err) => { console.error(err); process.exit(1); });
