// Fan-out: one 64 MiB sealed buffer, handed to four workers at once. Every
// worker maps the same page-cache pages: the bytes exist once, however many
// processes read them.
// Run: npm run example:fan-out
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { Channel, SealedBuffer, spawnWithChannel } from '../src';

const WORKERS = 4;
const SIZE = 64 << 20;

function rssKiB(pid: number | string): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

async function parent(): Promise<void> {
  using sb = SealedBuffer.create(SIZE, (bytes) => bytes.fill(7));
  const workers = Array.from({ length: WORKERS }, () =>
    spawnWithChannel(process.execPath, [...process.execArgv, __filename, 'worker'], { stdio: 'inherit' }));
  await Promise.all(workers.map((w) => w.channel.receive()));   // 'ready': start-up is not part of the handoff
  const t0 = process.hrtime.bigint();
  await Promise.all(workers.map((w, i) => w.channel.sendBuffer(sb, `worker ${i}`)));
  const replies = await Promise.all(workers.map((w) => w.channel.receive()));
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  for (const r of replies) console.log(`  ${r.data.toString()}`);
  console.log(`${WORKERS} workers received, verified and read all ${SIZE >> 20} MiB in ${ms.toFixed(1)} ms`);
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
  // Resident pages include the shared ones, counted once per process here; the
  // kernel holds one copy (see PSS in `npm run bench` for the fair share).
  await channel.send(`${meta.toString()} (pid ${process.pid}): sum of one byte per page ${sum}, VmRSS ${rssKiB('self') >> 10} MiB`);
  buffer.close();
  await once(channel, 'close');
}

(process.argv[2] === 'worker' ? worker() : parent()).catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
