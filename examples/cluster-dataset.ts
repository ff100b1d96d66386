// Cluster: the primary builds one dataset and serves it to its node:cluster
// workers, and only to them — a connection from any other process is refused.
// Every worker maps the same pages: the dataset exists once in memory.
// Run: npm run example:cluster-dataset
import cluster from 'node:cluster';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { connect, listen, SealedBuffer } from '../src';

const WORKERS = 3;
const SIZE = 16 << 20;

function datasetAddress(primaryPid: number): string {
  return `\0dataset-${primaryPid}`;
}

async function primary(): Promise<void> {
  using dataset = SealedBuffer.create(SIZE, (bytes) => {
    for (let i = 0; i < bytes.length; i += 8) bytes.writeUInt32LE(i >>> 3, i);
  }, { name: 'dataset' });
  const digest = createHash('sha256').update(dataset.bytes).digest('hex').slice(0, 16);

  // An abstract socket name (no file) tied to this primary; served only to our workers' pids.
  const address = datasetAddress(process.pid);
  const server = await listen(address);
  const workerPids = new Set<number>();
  let refused = 0;
  server.on('connection', (ch) => {
    if (!workerPids.has(ch.peer.pid)) { refused++; ch.close(); return; }   // SO_PEERCRED, checked by the kernel
    ch.sendBuffer(dataset, JSON.stringify({ digest })).finally(() => ch.close());
  });

  const results: string[] = [];
  for (let i = 0; i < WORKERS; i++) {
    const worker = cluster.fork();
    workerPids.add(worker.process.pid!);
    worker.on('message', (m: string) => results.push(m));
  }

  // Any other process (here: the primary itself) connecting is refused.
  const stranger = await connect(address);
  await once(stranger, 'close');

  while (Object.keys(cluster.workers ?? {}).length > 0) await once(cluster, 'exit');
  server.close();
  for (const r of results.sort()) console.log(r);
  console.log(`${results.length} workers read the same ${SIZE >> 20} MiB dataset (sha256 ${digest}); ${refused} other process refused`);
}

async function worker(): Promise<void> {
  const ch = await connect(datasetAddress(process.ppid));   // the primary is our parent
  const { buffer, meta } = await ch.receiveBuffer({ maxSize: 256 << 20 });   // verified, then mapped
  const { digest } = JSON.parse(meta.toString()) as { digest: string };
  const mine = createHash('sha256').update(buffer.bytes).digest('hex').slice(0, 16);
  process.send!(`worker ${process.pid}: ${buffer.size} bytes, checksum ${mine === digest ? 'ok' : 'MISMATCH'}`);
  buffer.close();
  ch.close();
  process.disconnect();
}

(cluster.isPrimary ? primary() : worker()).catch((err) => { console.error(err); process.exit(1); });
