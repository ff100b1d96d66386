// A Python worker: the parent hands a sealed buffer to a Python process, which
// verifies the seals itself and reads the bytes without a copy
// (examples/python_worker.py; Python >= 3.9, standard library only).
// Run: npm run example:python-worker
import { createHash } from 'node:crypto';
import path from 'node:path';
import { SealedBuffer, spawnWithChannel } from '../src';

async function main(): Promise<void> {
  using sb = SealedBuffer.create(8 << 20, (bytes) => {
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) & 0xff;
  }, { name: 'for-python' });
  const digest = createHash('sha256').update(sb.bytes).digest('hex').slice(0, 16);
  const { child, channel } = spawnWithChannel('python3', [path.join(__dirname, 'python_worker.py')], { stdio: 'inherit' });
  await channel.sendBuffer(sb, 'frame 1');
  const reply = (await channel.receive()).data.toString();
  console.log(reply);
  console.log(reply.endsWith(`sha256 ${digest}`) ? 'python read the same bytes: checksum ok' : `checksum MISMATCH (node: ${digest})`);
  channel.close();
  await new Promise<void>((resolve) => child.once('exit', () => resolve()));
}

main().catch((err) => { console.error(err); process.exit(1); });
