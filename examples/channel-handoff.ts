// Raw descriptor passing: the parent writes a memfd, seals it, and hands the
// descriptor to a child over spawnWithChannel(); the child maps it read-only,
// checks the seals itself, and answers with its own memfd.
// Run: npm run example:channel-handoff
import { closeSync, ftruncateSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { addSeals, Channel, constants as C, getSeals, memfdCreate, mmap, Seal, sealNames, spawnWithChannel } from '../src';

async function parent(): Promise<void> {
  const text = 'a page the child can trust\n'.repeat(100);
  const fd = memfdCreate('handoff');
  writeSync(fd, text);
  addSeals(fd, Seal.SHRINK | Seal.GROW | Seal.WRITE | Seal.SEAL);

  // the child runs this same file under the same loader (tsx)
  const { child, channel } = spawnWithChannel(process.execPath, [...process.execArgv, __filename, 'child'], { stdio: 'inherit' });
  await channel.send('sealed text', [fd]);  // the kernel dups fd into the child
  closeSync(fd);                            // ours is no longer needed

  using reply = await channel.receive();
  const [answer] = reply.takeFds();
  const view = mmap(4096, C.PROT_READ, C.MAP_SHARED, answer!);
  console.log(`parent: child says "${reply.data.toString()}"; its memfd holds "${view.bytes(0, 20).toString()}"`);
  view.unmap();
  closeSync(answer!);
  channel.close();
  await new Promise((resolve) => child.on('exit', resolve));
}

async function childMain(): Promise<void> {
  const channel = Channel.fromParent();
  const msg = await channel.receive();
  const [fd] = msg.takeFds();
  const seals = getSeals(fd!);
  const need = Seal.SHRINK | Seal.GROW | Seal.WRITE;
  if ((seals & need) !== need) throw new Error(`refusing an unsealed memfd (${sealNames(seals).join(',')})`);
  const map = mmap(4096, C.PROT_READ, C.MAP_PRIVATE, fd!);
  const digest = createHash('sha256').update(map.bytes().subarray(0, 2700)).digest('hex').slice(0, 16);
  console.log(`child ${process.pid}: got "${msg.data.toString()}" (seals ${sealNames(seals).join(', ')}), sha256 ${digest}`);
  map.unmap();
  closeSync(fd!);

  const mine = memfdCreate('answer');
  ftruncateSync(mine, 4096);
  writeSync(mine, 'written by the child', 0);
  await channel.send(`checked ${digest}`, [mine]);
  closeSync(mine);
  await new Promise<void>((resolve) => channel.once('close', resolve));  // the parent hangs up when done
}

(process.argv[2] === 'child' ? childMain() : parent()).catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
