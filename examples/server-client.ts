// A server on an abstract socket name hands each client a sealed, read-only
// "config" memfd; clients are separate processes that connect(), map it and
// answer. The server sees who connected (SO_PEERCRED).
// Run: npm run example:server-client
import { closeSync, writeSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { addSeals, connect, constants as C, listen, memfdCreate, mmap, Seal, type Channel } from '../src';

const NAME = `memseal-example-${process.pid}`;
const ADDRESS = `\0${NAME}`;  // an abstract name: no file to clean up

async function server(): Promise<void> {
  const config = memfdCreate('config');
  writeSync(config, JSON.stringify({ greeting: 'hello', limit: 42 }));
  addSeals(config, Seal.SHRINK | Seal.GROW | Seal.WRITE | Seal.SEAL);

  const srv = await listen(ADDRESS);
  let served = 0;
  srv.on('connection', async (ch: Channel) => {
    console.log(`server: connection from pid ${ch.peer.pid} (uid ${ch.peer.uid})`);
    await ch.send('config', [config]);
    const answer = await ch.receive();
    console.log(`server: ${answer.data.toString()}`);
    ch.close();
    if (++served === 2) {
      srv.close();
      closeSync(config);
    }
  });

  const clients = [1, 2].map(() =>
    spawn(process.execPath, [...process.execArgv, __filename, 'client', NAME], { stdio: 'inherit' }));
  await Promise.all(clients.map((c) => new Promise((resolve) => c.on('exit', resolve))));
}

async function client(address: string): Promise<void> {
  const ch = await connect(address);
  using msg = await ch.receive();   // disposing the message closes its descriptors
  const map = mmap(4096, C.PROT_READ, C.MAP_PRIVATE, msg.fds[0]!);
  const text = map.bytes().toString('utf8').replace(/\0+$/, '');
  const config = JSON.parse(text) as { greeting: string; limit: number };
  map.unmap();
  await ch.send(`client ${process.pid} read greeting=${config.greeting} limit=${config.limit}`);
  await new Promise<void>((resolve) => ch.once('close', resolve));
}

(process.argv[2] === 'client' ? client(`\0${process.argv[3]!}`) : server()).catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
