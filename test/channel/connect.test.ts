// Channel: adopting descriptors, listen()/connect(), spawnWithChannel()/fromParent(), lifetime and ref().
import assert from 'node:assert/strict';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { Channel, ChannelServer, connect, listen, memfdCreate, socketPair, spawnWithChannel } from '../../src';
import { native } from '../../src/kernel/binding';
import { collectGarbage, countFds, FIXTURES, runFixture, tick } from '../helpers';
import { channelHarness, code, memfdWith, readFd } from './harness';

const PEER = path.join(FIXTURES, 'channel-peer.js');

describe('Channel', () => {
  const { track, fdLater, children } = channelHarness();

  describe('Channel.fromFd()', () => {
    it('adopts a SEQPACKET socket', async () => {
      const r = native.socketpair();
      assert.ok(Array.isArray(r));
      const a = track(Channel.fromFd(r[0]));
      const b = track(Channel.fromFd(r[1]));
      await a.send('adopted');
      assert.equal((await b.receive()).data.toString(), 'adopted');
      a.close();
      assert.throws(() => fs.fstatSync(r[0]), code('EBADF'), 'the channel owned and closed the descriptor');
    });

    it('refuses what is not an AF_UNIX socket (stream and datagram sockets are adopted: test/socket-types.test.ts)', async () => {
      const fd = fdLater(memfdWith('x'));
      assert.throws(() => Channel.fromFd(fd), code('ENOTSOCK'));
      const server = net.createServer().listen(0, '127.0.0.1');
      await once(server, 'listening');
      const sock = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
      await once(sock, 'connect');
      const tcpFd = (sock as unknown as { _handle: { fd: number } })._handle.fd;
      assert.throws(() => Channel.fromFd(tcpFd), code('EPROTOTYPE'));  // AF_INET: refused before anything is taken
      sock.destroy();
      server.close();
      await once(server, 'close');
      assert.throws(() => Channel.fromFd(-1), code('ERR_OUT_OF_RANGE'));
    });

    it('fromParent() without a parent channel says so', () => {
      assert.throws(() => Channel.fromParent(), code('ERR_MEMSEAL_NO_CHANNEL'));
    });
  });

  describe('listen() and connect()', () => {
    let dir: string;
    beforeEach(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memseal-'));
    });
    afterEach(() => {
      fs.rmSync(dir, { recursive: true, force: true });
    });

    async function roundTrip(server: ChannelServer, address: string): Promise<void> {
      const accepted = once(server, 'connection');
      const client = track(await connect(address));
      const [conn] = (await accepted) as [Channel];
      track(conn);
      assert.equal(conn.peer.pid, process.pid);
      const fd = fdLater(memfdWith('over a listener'));
      await client.send('ping', [fd]);
      const m = await conn.receive();
      assert.equal(m.data.toString(), 'ping');
      assert.equal(readFd(m.fds[0]!), 'over a listener');
      m.closeFds();
      await conn.send('pong');
      assert.equal((await client.receive()).data.toString(), 'pong');
    }

    it('works on a filesystem path, which close() removes', async () => {
      const p = path.join(dir, 'chan.sock');
      const server = track(await listen(p));
      assert.equal(server.address, p);
      assert.ok(fs.statSync(p).isSocket());
      await roundTrip(server, p);
      await assert.rejects(listen(p), code('EADDRINUSE'));
      server.close();
      assert.equal(server.closed, true);
      assert.equal(fs.existsSync(p), false);
      await assert.rejects(connect(p), code('ENOENT'));
    });

    it('works on an abstract name', async () => {
      const name = `\0memseal-test-${process.pid}-${Date.now()}`;
      const server = track(await listen(name));
      await roundTrip(server, name);
      server.close();
      await assert.rejects(connect(name), code('ECONNREFUSED'));
    });

    it('accepts a connection from another process', async () => {
      const p = path.join(dir, 'x.sock');
      const server = track(await listen(p));
      server.on('connection', async (ch: Channel) => {
        track(ch);
        const m = await ch.receive();
        await ch.send(`${m.data.toString()} / peer ${ch.peer.pid}`);
      });
      const r = await new Promise<{ out: string; pid: number }>((resolve, reject) => {
        const child = spawn(process.execPath, [PEER, 'connect', p], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d));
        child.on('error', reject);
        child.on('close', () => resolve({ out, pid: child.pid! }));
      });
      assert.equal(r.out.trim(), `hello from ${r.pid} / peer ${r.pid}`);
    });

    it('closes a connection nobody listens for', async () => {
      const server = track(await listen(path.join(dir, 'deaf.sock')));
      const client = track(await connect(server.address));
      await once(client, 'close');
      assert.equal(client.closed, true);
    });

    it('refuses bad paths before any syscall', async () => {
      await assert.rejects(listen('x'.repeat(108)), code('ERR_OUT_OF_RANGE'));
      await assert.rejects(listen(''), code('ERR_OUT_OF_RANGE'));
      await assert.rejects(connect(1 as never), code('ERR_INVALID_ARG_TYPE'));
    });
  });

  describe('spawnWithChannel() and Channel.fromParent()', () => {
    function spawnPeer(...args: string[]) {
      const r = spawnWithChannel(process.execPath, [PEER, ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
      children.push(r.child);
      track(r.channel);
      return r;
    }

    it('hands the child a channel; descriptors cross in both directions', async () => {
      const { child, channel } = spawnPeer('echo');
      assert.equal(channel.peer.pid, process.pid, 'socketpair: the creator is the peer');
      const fd = fdLater(memfdWith('from the parent'));
      await channel.send('look', [fd, fd]);
      const reply = JSON.parse((await channel.receive()).data.toString());
      assert.equal(reply.text, 'look');
      assert.deepEqual(reply.contents, ['from the parent', 'from the parent']);
      assert.equal(reply.pid, child.pid);
      assert.equal(reply.peer.pid, process.pid);
      await channel.send('quit');
      const [exitCode] = await once(child, 'exit');
      assert.equal(exitCode, 0);
    });

    it("emits close when the child dies, after delivering what it sent", async () => {
      const { child, channel } = spawnPeer('send-then-exit', '3');
      const got: string[] = [];
      for await (const m of channel) got.push(m.data.toString());
      assert.deepEqual(got, ['msg 0', 'msg 1', 'msg 2']);
      assert.equal(channel.closed, true);
      await once(child, 'exit');
    });

    it('emits close when the child is killed', async () => {
      const { child, channel } = spawnPeer('echo');
      const pending = assert.rejects(channel.receive(), code('ERR_MEMSEAL_CLOSED'));
      child.kill('SIGKILL');
      await once(channel, 'close');
      await pending;
      await assert.rejects(channel.send('anyone?'), code('ERR_MEMSEAL_CLOSED'));
    });

    it('closes the channel when the command cannot start', async () => {
      const { child, channel } = spawnWithChannel('/nonexistent/memseal-no-such-command', [], { stdio: 'ignore' });
      track(channel);
      const [err] = await once(child, 'error');
      assert.equal((err as { code: string }).code, 'ENOENT');
      if (!channel.closed) await once(channel, 'close');
    });
  });

  describe('lifetime', () => {
    it('closed channels are collected without trouble', async () => {
      for (let i = 0; i < 200; i++) {
        const [a, b] = socketPair();
        a.close();
        b.close();
      }
      await collectGarbage();
    });

    it('a channel the peer hung up on, forgotten with messages unread, is closed by the garbage collector', async () => {
      // The unread messages carry a memfd: until the socket is closed, it pins the file in flight.
      const socketOpen = (link: string) => fs.readdirSync('/proc/self/fd').some((fd) => {
        try { return fs.readlinkSync(`/proc/self/fd/${fd}`) === link; } catch { return false; }
      });
      const link = await (async () => {
        const [a, b] = socketPair();
        const target = fs.readlinkSync(`/proc/self/fd/${b.fd}`);
        const fd = memfdCreate('gc-net');
        await a.send('left unread', [fd]);
        await a.send('this too', [fd]);
        fs.closeSync(fd);
        a.close();
        await once(b, 'close');
        assert.equal(socketOpen(target), true, 'kept open for the unread messages');
        return target;
      })();
      for (let i = 0; i < 20 && socketOpen(link); i++) await collectGarbage(2);
      assert.equal(socketOpen(link), false, 'the socket is closed once nothing can reach the channel');
    });

    it('a terminated worker closes every channel it left open (environment cleanup)', async () => {
      const before = countFds();
      const worker = new Worker(path.join(FIXTURES, 'channel-worker.js'));
      await once(worker, 'message');
      assert.ok(countFds() >= before + 3, 'the worker holds a pair and a listener');
      await worker.terminate();
      await tick();
      assert.equal(countFds(), before);
    });

    it('the private binding throws TypeError for malformed arguments, never crashes', () => {
      const r = native.socketpair();
      assert.ok(Array.isArray(r));
      fdLater(r[0]); fdLater(r[1]);
      assert.throws(() => native.sendmsg(r[0], 'text' as never, new Int32Array(0)), TypeError);
      assert.throws(() => native.sendmsg(r[0], Buffer.from('x'), [1, 2] as never), TypeError);
      assert.throws(() => native.recvmsg(r[0], Buffer.alloc(1), new Int32Array(1), new Int32Array(1)), TypeError);
      assert.throws(() => native.pollStart({} as never, 1), TypeError);
      assert.throws(() => native.bind(-1, Buffer.from('x')), TypeError);
      assert.equal(native.bind(r[0], Buffer.alloc(200)), -os.constants.errno.ENAMETOOLONG);
      assert.equal(native.sendmsg(r[0], Buffer.from('x'), new Int32Array(254)), -os.constants.errno.EINVAL);
    });
  });

  describe('ref() / unref()', () => {
    it('an unref()d channel does not keep the process alive', () => {
      const r = runFixture('channel-peer.js', ['idle', 'unref'], { timeout: 10000 });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, 'exited\n');
    });

    it('a ref()d one does (control)', () => {
      const r = runFixture('channel-peer.js', ['idle', 'ref'], { timeout: 1500 });
      assert.equal(r.signal, 'SIGTERM', 'still running when the timeout killed it');
      assert.equal(r.stdout, '');
    });
  });
});
