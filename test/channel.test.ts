// Channel: SOCK_SEQPACKET + SCM_RIGHTS over real sockets and real child processes.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import path from 'node:path';
import { type ChildProcess, spawn } from 'node:child_process';
import {
  Channel, type ChannelOptions, ChannelServer, connect, listen, MAX_FDS, MAX_PAYLOAD, memfdCreate, Message, socketPair, spawnWithChannel,
} from '../src';
import { native } from '../src/kernel/binding';
import { collectGarbage, countFds, FIXTURES, killChildren, runFixture, tick } from './helpers';

const PEER = path.join(FIXTURES, 'channel-peer.js');

function memfdWith(text: string): number {
  const fd = memfdCreate('channel-test');
  fs.writeSync(fd, text);
  return fd;
}

function readFd(fd: number): string {
  const buf = Buffer.alloc(256);
  return buf.subarray(0, fs.readSync(fd, buf, 0, buf.length, 0)).toString();
}

function isCloexec(fd: number): boolean {
  const flags = /flags:\s+(\d+)/.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1]!;
  return (parseInt(flags, 8) & 0o2000000) !== 0;
}

function code(expected: string) {
  return (err: unknown) => {
    assert.equal((err as { code?: string }).code, expected, String(err));
    return true;
  };
}


describe('Channel', () => {
  let baseline: number;
  const open: { close(): void }[] = [];
  const children: ChildProcess[] = [];
  const fdsToClose: number[] = [];

  function track<T extends { close(): void }>(x: T): T {
    open.push(x);
    return x;
  }
  function pair(options?: ChannelOptions): [Channel, Channel] {
    const [a, b] = socketPair(options);
    return [track(a), track(b)];
  }
  function fdLater(fd: number): number {
    fdsToClose.push(fd);
    return fd;
  }

  beforeEach(() => {
    baseline = countFds();
  });

  afterEach(async () => {
    for (const x of open.splice(0)) x.close();
    for (const fd of fdsToClose.splice(0)) fs.closeSync(fd);
    await killChildren(children);
    await tick();
    assert.equal(countFds(), baseline, 'open descriptors are back at their baseline');
  });

  describe('socketPair()', () => {
    it('carries data and a descriptor that refers to the same memfd', async () => {
      const [a, b] = pair();
      const fd = fdLater(memfdWith('shared bytes'));
      await a.send('hello', [fd]);
      const m = await b.receive();
      assert.ok(m instanceof Message);
      assert.equal(m.data.toString(), 'hello');
      assert.equal(m.fds.length, 1);
      const got = m.fds[0]!;
      assert.notEqual(got, fd);
      assert.equal(readFd(got), 'shared bytes');
      assert.equal(fs.fstatSync(got).ino, fs.fstatSync(fd).ino);
      assert.ok(isCloexec(got), 'received descriptors are close-on-exec (MSG_CMSG_CLOEXEC)');
      m.closeFds();
      assert.deepEqual(m.fds, []);
    });

    it('delivers messages whole and in order through events, receive() and for await', async () => {
      const [a, b] = pair();
      for (let i = 0; i < 5; i++) void a.send(`m${i}`);
      const seen: string[] = [];
      const first = await b.receive();
      seen.push(first.data.toString());
      const onMessage = (m: Message) => {
        seen.push(m.data.toString());
        if (seen.length === 3) b.off('message', onMessage);
      };
      b.on('message', onMessage);
      while (seen.length < 3) await tick();
      for await (const m of b) {
        seen.push(m.data.toString());
        if (seen.length === 5) break;
      }
      assert.deepEqual(seen, ['m0', 'm1', 'm2', 'm3', 'm4']);
      assert.equal(b.closed, false, 'leaving for await early keeps the channel open');
    });

    it('sends 253 descriptors in one message', async () => {
      const [a, b] = pair();
      const fd = fdLater(memfdWith('many'));
      await a.send('x', new Array(MAX_FDS).fill(fd));
      const m = await b.receive();
      assert.equal(m.fds.length, 253);
      const ino = fs.fstatSync(fd).ino;
      for (const got of m.fds) assert.equal(fs.fstatSync(got).ino, ino);
      m.closeFds();
    });

    it('refuses 254 descriptors before sending anything', async () => {
      const [a, b] = pair();
      const fd = fdLater(memfdWith('x'));
      await assert.rejects(a.send('too many', new Array(254).fill(fd)), code('ERR_OUT_OF_RANGE'));
      await a.send('marker');
      const m = await b.receive();
      assert.equal(m.data.toString(), 'marker', 'the refused message never arrived');
    });

    it('refuses a closed descriptor with EBADF and sends nothing', async () => {
      const [a, b] = pair();
      const fd = memfdWith('x');
      fs.closeSync(fd);
      await assert.rejects(a.send('bad', [fd]), (err: NodeJS.ErrnoException) => {
        assert.equal(err.code, 'EBADF');
        assert.equal(err.syscall, 'sendmsg');
        return true;
      });
      await a.send('marker');
      assert.equal((await b.receive()).data.toString(), 'marker');
    });

    it('enforces the payload limit with RangeError before sending', async () => {
      const [a, b] = pair();
      await assert.rejects(a.send(Buffer.alloc(MAX_PAYLOAD + 1)), code('ERR_OUT_OF_RANGE'));
      await assert.rejects(a.send(''), code('ERR_OUT_OF_RANGE'));
      await assert.rejects(a.send(42 as never), code('ERR_INVALID_ARG_TYPE'));
      await assert.rejects(a.send('x', [-1]), code('ERR_OUT_OF_RANGE'));
      await a.send(Buffer.alloc(MAX_PAYLOAD, 7));
      const m = await b.receive();
      assert.equal(m.data.length, MAX_PAYLOAD);
      assert.equal(m.data[MAX_PAYLOAD - 1], 7);
    });

    it('allows an empty payload when descriptors travel', async () => {
      const [a, b] = pair();
      const fd = fdLater(memfdWith('only fds'));
      await a.send(new Uint8Array(0), [fd]);
      const m = await b.receive();
      assert.equal(m.data.length, 0);
      assert.equal(readFd(m.fds[0]!), 'only fds');
      m.closeFds();
    });

    it('queues under backpressure and delivers everything in order', async () => {
      const [a, b] = pair();
      const n = 64;
      const sends: Promise<void>[] = [];
      for (let i = 0; i < n; i++) {
        const buf = Buffer.alloc(60000, i);
        buf.writeUInt32LE(i, 0);
        sends.push(a.send(buf));
      }
      assert.ok(a.pendingSends > 0, 'the kernel send buffer filled up, so messages were queued');
      const got: number[] = [];
      for (let i = 0; i < n; i++) {
        const m = await b.receive();
        assert.equal(m.data.length, 60000);
        assert.equal(m.data[59999], i & 0xff);
        got.push(m.data.readUInt32LE(0));
      }
      await Promise.all(sends);
      assert.deepEqual(got, Array.from({ length: n }, (_, i) => i));
      assert.equal(a.pendingSends, 0);
    });

    it('sends descriptors from a queue of thousands; each queued message holds one duplicate, released as it goes', async () => {
      const [a, b] = pair({ maxQueuedFds: 5000 });
      const fd = fdLater(memfdWith('queued'));
      const before = countFds();
      let received = 0;
      b.on('message', (m: Message) => {
        received++;
        m.closeFds();
      });
      const sends: Promise<void>[] = [];
      for (let i = 0; i < 5000; i++) sends.push(a.send('.', [fd]));
      assert.ok(a.pendingSends > 0, 'some messages had to wait');
      assert.equal(countFds(), before + a.queuedFds, 'a queued message owns a duplicate of its descriptor');
      assert.equal(a.queuedFds, a.pendingSends);
      await Promise.all(sends);
      assert.equal(countFds(), before, 'every duplicate is closed once its message went out');
      while (received < 5000) await tick();
    });

    it('a queued send is not affected by the caller closing its descriptor; a descriptor closed before send() is EBADF', async () => {
      const [a, b] = pair();
      const sends: Promise<void>[] = [];
      for (let i = 0; i < 8; i++) sends.push(a.send(Buffer.alloc(60000)));
      assert.ok(a.pendingSends > 0);
      const fd = memfdWith('closed at once');
      sends.push(a.send('queued', [fd]));
      fs.closeSync(fd);
      const gone = memfdWith('closed before');
      fs.closeSync(gone);
      await assert.rejects(a.send('doomed', [gone]), code('EBADF'));
      sends.push(a.send('marker'));
      for (let i = 0; i < 8; i++) assert.equal((await b.receive()).data.length, 60000);
      const m = await b.receive();
      assert.equal(m.data.toString(), 'queued');
      assert.equal(readFd(m.fds[0]!), 'closed at once', 'the file the caller passed, though it closed its descriptor');
      m.closeFds();
      assert.equal((await b.receive()).data.toString(), 'marker', 'the doomed message never arrived');
      await Promise.all(sends);
    });

    it('gives this process as the peer (SO_PEERCRED)', () => {
      const [a] = pair();
      assert.deepEqual({ ...a.peer }, { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
    });

    it('emits close on both ends and rejects what is pending', async () => {
      const [a, b] = pair();
      const pending = assert.rejects(b.receive(), code('ERR_MEMSEAL_CLOSED'));
      const bClosed = once(b, 'close');
      a.close();
      a.close();
      assert.equal(a.closed, true);
      assert.equal(a.fd, -1);
      await bClosed;
      assert.equal(b.closed, true);
      await pending;
      await assert.rejects(a.send('x'), code('ERR_MEMSEAL_CLOSED'));
      await assert.rejects(b.receive(), code('ERR_MEMSEAL_CLOSED'));
    });

    it('notices a peer that went with our messages unread (ECONNRESET)', async () => {
      const [a, b] = pair();
      await a.send('never read');
      b.close();
      a.on('message', () => assert.fail('nothing was sent to a'));
      await once(a, 'close');
      assert.equal(a.closed, true);
    });

    it('still delivers what a peer sent before it went with our messages unread (ECONNRESET first)', async () => {
      const [a, b] = pair();
      await a.send('unread by b');
      await b.send('for a');
      b.close();
      const m = await a.receive();
      assert.equal(m.data.toString(), 'for a');
      await assert.rejects(a.receive(), code('ERR_MEMSEAL_CLOSED'));
      assert.equal(a.closed, true);
    });

    it('still delivers what the peer sent before it hung up', async () => {
      const [a, b] = pair();
      const fd = fdLater(memfdWith('last words'));
      await a.send('one', [fd]);
      await a.send('two');
      a.close();
      await once(b, 'close');
      const m1 = await b.receive();
      assert.equal(m1.data.toString(), 'one');
      assert.equal(readFd(m1.fds[0]!), 'last words');
      m1.closeFds();
      assert.equal((await b.receive()).data.toString(), 'two');
      await assert.rejects(b.receive(), code('ERR_MEMSEAL_CLOSED'));
    });

    it("hands messages read at hang-up to a 'message' listener added later", async () => {
      const [a, b] = pair();
      await a.send('early');
      a.close();
      await once(b, 'close');
      const [m] = (await once(b, 'message')) as [Message];
      assert.equal(m.data.toString(), 'early');
    });

    it('after a hang-up nothing is read ahead; close() lets unread messages die with the socket', async () => {
      const [a, b] = pair();
      const before = countFds();
      const fd = memfdWith('x');
      await a.send('fds', [fd, fd, fd]);
      await a.send('more', [fd]);
      fs.closeSync(fd);
      a.close();
      await once(b, 'close');
      // -1 memfd, -1 a; b keeps its socket (not its fd number: b.fd is -1) while messages are unread
      assert.equal(countFds(), before - 1, 'the hang-up read nothing in');
      assert.equal(b.fd, -1);
      const m = await b.receive();
      assert.equal(m.fds.length, 3);
      m.closeFds();
      assert.equal(countFds(), before - 1);
      b.close();  // 'more' and its descriptor die with the socket: the kernel closes them
      assert.equal(countFds(), before - 2);
      await assert.rejects(b.receive(), code('ERR_MEMSEAL_CLOSED'));
    });

    it('Message.takeFds() hands descriptors over; dispose closes the rest', async () => {
      const [a, b] = pair();
      const fd = fdLater(memfdWith('x'));
      await a.send('two', [fd, fd]);
      const m = await b.receive();
      const taken = m.takeFds();
      assert.equal(taken.length, 2);
      assert.deepEqual(m.fds, []);
      m[Symbol.dispose]();
      for (const t of taken) assert.equal(readFd(t), 'x', 'a taken descriptor stays open');
      taken.forEach((t) => fs.closeSync(t));
      await a.send('again', [fd]);
      const before = countFds();
      {
        using m2 = await b.receive();
        assert.equal(countFds(), before + 1);
        assert.equal(m2.fds.length, 1);
      }
      assert.equal(countFds(), before, 'disposing a message closes what was not taken');
    });

    it('Symbol.asyncDispose sends what is queued, then closes', async () => {
      const [a, b] = pair();
      const got: number[] = [];
      b.on('message', (m: Message) => got.push(m.data[0]!));
      const bClosed = once(b, 'close');
      {
        await using sender = a;
        for (let i = 0; i < 16; i++) void sender.send(Buffer.alloc(60000, i));
        assert.ok(sender.pendingSends > 0);
      }
      assert.equal(a.closed, true);
      await bClosed;
      assert.deepEqual(got, Array.from({ length: 16 }, (_, i) => i));
    });

    it('validates maxFds', () => {
      assert.throws(() => socketPair({ maxFds: 254 }), code('ERR_OUT_OF_RANGE'));
      const [a] = pair();
      assert.throws(() => { a.maxFds = -1; }, code('ERR_OUT_OF_RANGE'));
      a.maxFds = 1;
      assert.equal(a.maxFds, 1);
    });

    it('Symbol.dispose closes the channel', () => {
      let ch: Channel;
      {
        using a = socketPair()[0];
        ch = a;
      }
      assert.equal(ch.closed, true);
    });
  });

  describe('receiving from a misbehaving peer', () => {
    it('refuses more descriptors than maxFds with ERR_MEMSEAL_CTRUNC and closes every one that arrived', async () => {
      const [a, b] = pair();
      b.maxFds = 2;
      const fd = fdLater(memfdWith('x'));
      const before = countFds();
      await a.send('five', [fd, fd, fd, fd, fd]);
      await assert.rejects(b.receive(), code('ERR_MEMSEAL_CTRUNC'));
      assert.equal(countFds(), before, 'no descriptor of the truncated message is left open');
      await a.send('next', [fd]);
      const m = await b.receive();
      assert.equal(m.data.toString(), 'next', 'the channel keeps working');
      m.closeFds();
    });

    it('with maxFds 0 refuses any descriptor, through the error event for listeners', async () => {
      const [a, b] = pair({ maxFds: 0 });
      const fd = fdLater(memfdWith('x'));
      const before = countFds();
      const errored = once(b, 'error');
      b.on('message', () => assert.fail('a truncated message must not be delivered'));
      await a.send('one', [fd]);
      const [err] = await errored;
      assert.equal((err as { code: string }).code, 'ERR_MEMSEAL_CTRUNC');
      assert.equal(countFds(), before);
    });

    it('refuses a payload over MAX_PAYLOAD from a peer that ignores the limit', async () => {
      const [a, b] = pair();
      const fd = fdLater(memfdWith('x'));
      const before = countFds();
      // past the TypeScript checks, straight to sendmsg(2)
      assert.equal(native.sendmsg(a.fd, Buffer.alloc(MAX_PAYLOAD + 100), Int32Array.of(fd)), MAX_PAYLOAD + 100);
      await assert.rejects(b.receive(), code('ERR_MEMSEAL_SIZE'));
      assert.equal(countFds(), before);
    });

    it('takes garbage bytes with no descriptors as a plain message', async () => {
      const [a, b] = pair();
      const garbage = Buffer.from([0xff, 0x00, 0xfe, 0x13, 0x37]);
      assert.equal(native.sendmsg(a.fd, garbage, new Int32Array(0)), garbage.length);
      const m = await b.receive();
      assert.deepEqual(m.data, garbage);
      assert.deepEqual(m.fds, []);
    });
  });

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
      fdsToClose.push(r[0], r[1]);
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
