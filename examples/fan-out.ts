// Fan-out: one 64 MiB sealed buffer, handed to four workers at once. Every
// worker maps the same page-cache pages: the bytes exist once, however many
// processes read them.
// Run: npm run example:fan-out
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { Channel, inspect, SealedBuffer, spawnWithChannel } from '../src';

const WORKERS = 4;
const SIZE = 64 << 20;

/** A field of a /proc file in kB: `Pss_Shmem` of /proc/self/smaps_rollup. */
function kB(file: string, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(file, 'utf8'));
  return m ? Number(m[1]) : NaN;
}
const MiB = (kb: number) => `${(kb / 1024).toFixed(1)} MiB`;

async function parent(): Promise<void> {
  using sb = SealedBuffer.create(SIZE, (bytes) => bytes.fill(7));
  const inode = inspect(process.pid)[0]!.memfds.find((m) => m.fd === sb.fd)!.inode;
  const workers = Array.from({ length: WORKERS }, () =>
    spawnWithChannel(process.execPath, [...process.execArgv, __filename, 'worker'], { stdio: 'inherit' }));
  await Promise.all(workers.map((w) => w.channel.receive()));   // 'ready': start-up is not part of the handoff
  const t0 = process.hrtime.bigint();
  await Promise.all(workers.map((w, i) => w.channel.sendBuffer(sb, `worker ${i}`)));
  await Promise.all(workers.map((w) => w.channel.receive()));  // 'mapped': every worker has read every page
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  // The buffer's own pages, summed over the workers that map it (inspect(): their smaps): the proportional
  // shares add up to one payload, not one per worker. Counts only this file, so nothing else on the
  // machine moves the figure.
  const maps = inspect(workers.map((w) => w.child.pid!)).flatMap((p) => p.memfds.filter((m) => m.inode === inode && m.mappings?.length));
  const pss = maps.reduce((n, m) => n + (m.pss ?? 0), 0);
  const summary = `the buffer's pages: ${MiB(pss / 1024)} in all for ${maps.length} readers of ${SIZE >> 20} MiB (PSS summed)`;
  // Now that all of them map it, each worker reports its share.
  const replies = await Promise.all(workers.map(async (w) => { await w.channel.send('report'); return w.channel.receive(); }));
  for (const r of replies) console.log(`  ${r.data.toString()}`);
  console.log(`${WORKERS} workers received, verified and read all ${SIZE >> 20} MiB in ${ms.toFixed(1)} ms`);
  console.log(summary);
  for (const w of workers) w.channel.close();
  await Promise.all(workers.map((w) => once(w.child, 'exit')));
}

async function worker(): Promise<void> {
  const channel = Channel.fromParent();
  await channel.send('ready');
  const { buffer, meta } = await channel.receiveBuffer({ exactSize: SIZE });
  let sum = 0;
  const bytes = buffer.bytes;
  for (let i = 0; i < bytes.length; i += 4096) sum += bytes[i]!;   // touch every page
  await channel.send('mapped');
  await channel.receive();   // 'report', once every worker maps the buffer
  // PSS (proportional set size) divides each shared page among the processes mapping it: with the
  // pages mapped by all four workers, each holds a quarter of 64 MiB. VmRSS would count all 64 MiB in
  // every worker although the kernel holds one copy.
  const pss = kB('/proc/self/smaps_rollup', 'Pss_Shmem');
  await channel.send(`${meta.toString()} (pid ${process.pid}): sum of one byte per page ${sum}, PSS of shared memory ${MiB(pss)}`);
  buffer.close();
  await once(channel, 'close');
}

(process.argv[2] === 'worker' ? worker() : parent()).catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
