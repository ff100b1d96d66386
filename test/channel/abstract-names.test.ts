// '@name' is the abstract socket name '\0name' everywhere a path is taken: the spelling memseal prints,
// and one that can travel in an environment variable or argv (neither can carry a NUL).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bindDatagram, type Channel, connect, listen, sendDatagram } from '../../src';
import { readableCheckout } from '../helpers';

const name = (what: string) => `memseal-at-${what}-${process.pid}`;

describe("abstract socket names written '@name'", () => {
  it("listen('@name') and connect('\\0name') meet, and the reverse", async () => {
    for (const [server, client] of [[`@${name('a')}`, `\0${name('a')}`], [`\0${name('b')}`, `@${name('b')}`]] as const) {
      const s = await listen(server);
      try {
        assert.equal(s.address, `\0${server.slice(1)}`, 'the server reports the kernel name');
        const accepted = once(s, 'connection') as Promise<[Channel]>;
        const c = await connect(client);
        const [ch] = await accepted;
        await c.send('hi');
        assert.equal((await ch.receive()).data.toString(), 'hi');
        c.close(); ch.close();
      } finally {
        s.close();
      }
    }
  });

  it("sendDatagram('@name') reaches bindDatagram('\\0name'), and an error names the address as '@name'", async () => {
    const rx = await bindDatagram(`\0${name('d')}`);
    try {
      await sendDatagram(`@${name('d')}`, 'datagram');
      assert.equal((await rx.receive()).data.toString(), 'datagram');
    } finally {
      rx.close();
    }
    await assert.rejects(connect(`@${name('nobody')}`), (err: Error & { code?: string }) =>
      err.code === 'ECONNREFUSED' && err.message.includes(`@${name('nobody')}`));
  });

  it('a child process given the name in an environment variable connects with it', async () => {
    const s = await listen(`@${name('env')}`);
    try {
      const accepted = once(s, 'connection') as Promise<[Channel]>;
      const dist = path.join(readableCheckout(), 'dist', 'index.js');
      const child = spawn(process.execPath, ['-e', `require(${JSON.stringify(dist)}).connect(process.env.ADDR)
        .then(async (ch) => { await ch.send('from env'); ch.close(); })`], { env: { ...process.env, ADDR: `@${name('env')}` }, stdio: 'inherit' });
      const exited = once(child, 'exit');
      const [ch] = await accepted;
      assert.equal((await ch.receive()).data.toString(), 'from env');
      ch.close();
      assert.deepEqual(await exited, [0, null]);
    } finally {
      s.close();
    }
  });

  it("'./@name' is a file, not an abstract name", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'memseal-at-'));
    const cwd = process.cwd();
    try {
      process.chdir(dir);
      const s = await listen('./@sock');
      assert.ok(existsSync(path.join(dir, '@sock')));
      s.close();
    } finally {
      process.chdir(cwd);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
