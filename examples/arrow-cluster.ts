// Typed data for a cluster: the primary builds one Arrow table and one float32 matrix (say,
// embeddings) in place — straight into the memory it then seals, no copy — and its node:cluster workers — plus a Python process when numpy is
// there — read them in place: the columns and the matrix are views over the same sealed pages in
// every process, nothing is copied or parsed per reader.
// Run: npm run example:arrow-cluster
import { spawnSync } from 'node:child_process';
import cluster from 'node:cluster';
import { once } from 'node:events';
import path from 'node:path';
import { connect, listen, SealedBuffer, spawnWithChannel } from '../src';
import { createTableBuilder, openTable } from '../src/arrow';

const WORKERS = 4;
const ROWS = 1_000_000;
const DIM = 64;
const VECTORS = 20_000;

const address = (primaryPid: number): string => `\0arrow-cluster-${primaryPid}`;

async function primary(): Promise<void> {
  // price[i] = i % 100, qty[i] = 1 + i % 3: sum(price * qty) is known in closed form for the check below.
  const trades = createTableBuilder({ rows: ROWS, columns: { id: Int32Array, price: Float64Array, qty: Int32Array }, name: 'trades' });
  const { id, price, qty } = trades.columns;            // typed arrays over the memfd's own pages
  for (let i = 0; i < ROWS; i++) { id[i] = i; price[i] = i % 100; qty[i] = 1 + (i % 3); }
  using table = trades.seal();                          // sealed as written: the columns are detached now
  const embeddings = SealedBuffer.allocTensor(Float32Array, [VECTORS, DIM], { name: 'embeddings' });
  for (let i = 0; i < embeddings.array.length; i++) embeddings.array[i] = (i % DIM) / DIM;
  using matrix = embeddings.seal();

  const server = await listen(address(process.pid));
  const readers = new Set<number>();
  server.on('connection', (ch) => {
    if (!readers.has(ch.peer.pid)) { ch.close(); return; }             // only our own readers (SO_PEERCRED)
    void (async () => {
      await ch.sendBuffer(table, 'table');
      await ch.sendBuffer(matrix, 'tensor');
    })().finally(() => ch.close());
  });

  const lines: string[] = [];
  for (let i = 0; i < WORKERS; i++) {
    const worker = cluster.fork();
    readers.add(worker.process.pid!);
    worker.on('message', (m: string) => lines.push(m));
  }

  // A Python reader gets the same two buffers over a channel of its own (numpy: views over the mapping).
  const hasNumpy = spawnSync('python3', ['-c', 'import numpy']).status === 0;
  if (hasNumpy) {
    const script = path.join(__dirname, 'python', 'typed_reader.py');
    // memseal_peer.py ships in the package's python/ folder (`npx memseal python-path` prints it).
    const env = { ...process.env, PYTHONPATH: path.join(__dirname, '..', 'python') };
    const { child, channel } = spawnWithChannel('python3', [script], { stdio: ['ignore', 'pipe', 'inherit'], env });
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => { out += s; });
    await channel.sendBuffer(table, 'table');
    await channel.sendBuffer(matrix, 'tensor');
    await once(child, 'exit');
    channel.close();
    lines.push(out.trim());
  } else {
    console.log('(python3 with numpy not found: the Python reader is skipped)');
  }

  while (Object.keys(cluster.workers ?? {}).length > 0) await once(cluster, 'exit');
  server.close();
  let expected = 0;
  for (let i = 0; i < 300; i++) expected += (i % 100) * (1 + (i % 3));
  expected *= ROWS / 300 | 0;
  for (let i = (ROWS / 300 | 0) * 300; i < ROWS; i++) expected += (i % 100) * (1 + (i % 3));
  for (const line of lines.sort()) console.log(line);
  console.log(`${lines.length} readers shared a ${(table.size / 2 ** 20).toFixed(1)} MiB table and a ` +
    `${(matrix.size / 2 ** 20).toFixed(1)} MiB matrix; expected sum(price*qty) = ${expected}`);
}

async function worker(): Promise<void> {
  const ch = await connect(address(process.ppid));
  const a = await ch.receiveBuffer({ maxSize: 1 << 30 });
  const b = await ch.receiveBuffer({ maxSize: 1 << 30 });
  ch.close();
  const trades = openTable(a.buffer);                       // columns: views over the sealed pages
  const price = trades.getChild('price')!.data[0]!.values as Float64Array;
  const qty = trades.getChild('qty')!.data[0]!.values as Int32Array;
  let turnover = 0;
  for (let i = 0; i < trades.numRows; i++) turnover += price[i]! * qty[i]!;
  const { array, shape } = b.buffer.typed();              // a Float32Array over the sealed pages
  let first = 0;
  for (let r = 0; r < shape[0]!; r++) first += array[r * shape[1]! + 1]! as number;
  const views = price.buffer === a.buffer.bytes.buffer && array.buffer === b.buffer.bytes.buffer;
  process.send!(`node worker: sum(price*qty) = ${turnover}, mean(matrix[:, 1]) = ${(first / shape[0]!).toFixed(6)}, ` +
    `${views ? 'views over the mapping' : 'COPIES'}`);
  a.buffer.close();
  b.buffer.close();
  process.disconnect();
}

(cluster.isPrimary ? primary() : worker()).catch((err) => { console.error(err); process.exit(1); });
