// A bindDatagram() socket is reachable by anyone who can name it (an abstract name: every local user):
// what strangers send is dropped and counted, never an 'error', and `allow` decides whose datagrams
// count, from each sender's credentials (SO_PASSCRED).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bindDatagram, type Channel, type DroppedMessage, memfdCreate, sendDatagram } from '../../src';
import { native } from '../../src/kernel/binding';
import { FIXTURES, memfdFds, readableCheckout, tick, until } from '../helpers';

const K = native.channelConstants;
let seq = 0;
const abstract = (what: string) => `\0memseal-trust-dgram-${process.pid}-${what}-${seq++}`;

/** Sends one datagram of `size` bytes to `name`, ignoring MAX_PAYLOAD (as a stranger's own code would). */
function rawDatagram(name: string, size: number): void {
  const raw = native.socket(K.SOCK_DGRAM);
  try {
    assert.equal(native.sendmsg(raw, Buffer.alloc(size, 0x41), new Int32Array(0), Buffer.from(name)), size);
  } finally {
    native.close(raw);
  }
}

describe('bindDatagram(): what strangers send', function () {
  this.timeout(20000);
  const open: Channel[] = [];
  afterEach(() => {
    for (const c of open.splice(0)) c.close();
  });

  it('allow() that closes the socket: the rest of the batch is delivered to nobody and its descriptors are closed', async () => {
    const name = abstract('close-in-allow');
    let calls = 0;
    const ch: Channel = await bindDatagram(name, { allow: () => { if (++calls === 1) ch.close(); return true; } });
    open.push(ch);
    const memfd = memfdCreate('dgram-close-in-allow');
    try {
      for (let i = 0; i < 3; i++) await sendDatagram(name, `d${i}`, [memfd, memfd]);
    } finally {
      fs.closeSync(memfd);
    }
    const delivered: string[] = [];
    ch.on('message', (m) => {
      delivered.push(m.data.toString());
      m.closeFds();
    });
    await until(() => ch.closed, 'the channel closed from allow()');
    // a turn for anything that would still be delivered after close()
    await tick();
    await tick();
    assert.deepEqual(delivered, []);
    assert.equal(calls, 1);
    assert.equal(memfdFds('dgram-close-in-allow'), 0, 'no descriptor of the refused batch is left open');
  });

  it('an oversized datagram does not kill an application listening for \'message\' only', async () => {
    const name = `@memseal-trust-dgram-${process.pid}-${seq++}`;
    const child = spawn(process.execPath, [path.join(FIXTURES, 'trust-datagram.js'), name], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d));
    child.stderr!.on('data', (d: Buffer) => (err += d));
    const exited = once(child, 'exit');
    while (!out.includes('ready\n')) await once(child.stdout!, 'data');
    const address = `\0${name.slice(1)}`;
    rawDatagram(address, 70000);
    await sendDatagram(address, 'after');
    await sendDatagram(address, 'end');
    const [code, signal] = (await exited) as [number | null, string | null];
    assert.deepEqual([code, signal], [0, null], err);
    assert.equal(out, 'ready\nafter\nend\ndropped 1\n');
  });

  it('drops a datagram from a sender allow() refuses, counts it and says who sent it; the next is delivered', async () => {
    const name = abstract('allow');
    let admit = false;
    const asked: unknown[] = [];
    const rx = await bindDatagram(name, { allow: (s) => { asked.push(s); return admit; } });
    open.push(rx);
    const me = { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() };
    const dropped = once(rx, 'dropped');
    const got = rx.receive();
    await sendDatagram(name, 'refused');
    const [info] = (await dropped) as [DroppedMessage];
    assert.equal(info.reason, 'refused');
    assert.deepEqual(info.sender, me);
    assert.deepEqual(asked, [me], 'allow() saw the sender\'s credentials');
    assert.equal(rx.dropped, 1);
    admit = true;
    await sendDatagram(name, 'admitted');
    const m = await got;
    assert.equal(m.data.toString(), 'admitted', 'receive() waited past the dropped datagram');
    assert.deepEqual(m.sender, me);
  });

  it('by default drops datagrams from another user (an abstract name has no permissions at all)', async function () {
    if (process.getuid!() !== 0) {
      console.log('      (skipped: needs root to send as another user)');
      this.skip();
    }
    const name = abstract('stranger');
    const rx = await bindDatagram(name);
    open.push(rx);
    const dropped: DroppedMessage[] = [];
    rx.on('dropped', (info) => dropped.push(info));
    const got = rx.receive();
    const r = spawnSync('setpriv', ['--reuid=1234', '--regid=1234', '--clear-groups', process.execPath, '-e',
      `require(${JSON.stringify(readableCheckout())}).sendDatagram(${JSON.stringify(name)}, 'stranger').then(() => process.exit(0))`],
      // a cwd the other user can read: from Node 24 on, `-e` code looks for the nearest package.json from the cwd up
      { encoding: 'utf8', cwd: readableCheckout() });
    assert.equal(r.status, 0, r.stderr);
    await sendDatagram(name, 'own');
    assert.equal((await got).data.toString(), 'own', 'the stranger\'s datagram was not delivered');
    assert.equal(dropped.length, 1);
    assert.equal(dropped[0]!.reason, 'refused');
    assert.equal(dropped[0]!.sender?.uid, 1234);
  });

  it('a filesystem datagram socket gets exactly `mode`; an abstract one refuses it', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memseal-trust-'));
    try {
      const file = path.join(dir, 'dgram.sock');
      const rx = await bindDatagram(file, { mode: 0o600 });
      open.push(rx);
      assert.equal(fs.statSync(file).mode & 0o777, 0o600);
      await assert.rejects(bindDatagram(abstract('mode'), { mode: 0o600 }), { code: 'ERR_INVALID_ARG_VALUE' });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
