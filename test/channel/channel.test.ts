// Channel: SOCK_SEQPACKET + SCM_RIGHTS over real sockets and real child processes.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import fs from 'node:fs';
import { Channel, MAX_FDS, MAX_PAYLOAD, Message, socketPair } from '../../src';
import { native } from '../../src/kernel/binding';
import { countFds, tick } from '../helpers';
import { channelHarness, code, isCloexec, memfdWith, readFd } from './harness';

describe('Channel', () => {
  const { pair, fdLater } = channelHarness();

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

    it('a detached Buffer reads as an empty payload, sent at once or queued, and leaks no duplicate', async () => {
      const [a, b] = pair();
      const fd = fdLater(memfdWith('detached payload'));
      const detached = (): Buffer => {
        const buf = Buffer.from(new ArrayBuffer(16));
        structuredClone(buf.buffer, { transfer: [buf.buffer] });  // detaches buf's memory
        assert.equal(buf.byteLength, 0);
        return buf;
      };
      const before = countFds();
      await a.send(detached(), [fd]);  // straight to the kernel
      const sends: Promise<void>[] = [];
      while (a.pendingSends === 0) sends.push(a.send(Buffer.alloc(60000)));
      sends.push(a.send(detached(), [fd]));  // waits in the queue with a duplicate of fd
      const got: Message[] = [];
      while (got.length < sends.length + 1) got.push(await b.receive());
      await Promise.all(sends);
      const empty = got.filter((m) => m.fds.length === 1);
      assert.equal(empty.length, 2);
      for (const m of empty) {
        assert.equal(m.data.length, 0);
        assert.equal(readFd(m.fds[0]!), 'detached payload');
      }
      for (const m of got) m.closeFds();
      assert.equal(a.queuedFds, 0);
      assert.equal(countFds(), before, 'the queue closed its duplicate once the message went');
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

});
