// The main job: a parent builds an immutable buffer, hands it to a child, and
// the child trusts it without copying — receiveBuffer() checks the seals and
// the size before anything is mapped.
// Run: npm run example:handoff
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { Channel, SealedBuffer, sealNames, spawnWithChannel } from '../src';

async function parent(): Promise<void> {
  // The producer writes straight into the shared pages; create() then seals them.
  using sb = SealedBuffer.create(1 << 20, (bytes) => {
    for (let i = 0; i < bytes.length; i++) bytes[i] = i % 251;
  }, { name: 'handoff' });
  const digest = createHash('sha256').update(sb.bytes).digest('hex').slice(0, 16);
  console.log(`parent: 1 MiB sealed (${sealNames(sb.seals).join(', ')}), sha256 ${digest}`);

  // The child runs this same file under the same loader (tsx).
  const { child, channel } = spawnWithChannel(process.execPath, [...process.execArgv, __filename, 'child'], { stdio: 'inherit' });
  await channel.sendBuffer(sb, JSON.stringify({ digest }));
  const reply = await channel.receive();
  console.log(`parent: child says "${reply.data.toString()}"`);
  channel.close();
  await once(child, 'exit');
}

async function child(): Promise<void> {
  const channel = Channel.fromParent();
  // Refuses (and closes) anything that is not a memfd sealed against SHRINK,
  // GROW and WRITE, or is bigger than we are willing to map.
  const { buffer, meta } = await channel.receiveBuffer({ maxSize: 16 << 20 });
  using _ = buffer;
  const expected = (JSON.parse(meta.toString()) as { digest: string }).digest;
  const digest = createHash('sha256').update(buffer.bytes).digest('hex').slice(0, 16);
  console.log(`child ${process.pid}: ${buffer.size} bytes, mapped ${buffer.view}, sha256 ${digest}`);
  await channel.send(digest === expected ? 'checksum ok' : `checksum MISMATCH ${digest}`);
  await once(channel, 'close');
}

(process.argv[2] === 'child' ? child() : parent()).catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
