// SOCK_STREAM and SOCK_DGRAM: listen/connect with { type }, Channel.fromFd()
// detecting the type, sendDatagram()/bindDatagram(), and the hostile cases a
// receiver must survive on each: truncated control data, a descriptor in the
// middle of a stream, a datagram with 253 descriptors. Descriptor counts are
// checked flat around every test.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bindDatagram, Channel, type ChannelServer, connect, listen, MAX_FDS, memfdCreate, sendDatagram, SealedBuffer } from '../../src';
import { native } from '../../src/kernel/binding';
import { countOwnFds as countFds } from '../fd-count';

const K = native.channelConstants;
let seq = 0;
const abstract = (what: string) => `\0memseal-test-${process.pid}-${what}-${seq++}`;

function memfdWith(text: string): number {
  const fd = memfdCreate('t');
  fs.writeSync(fd, text);
  return fd;
}

function contents(fd: number): string {
  return fs.readFileSync(`/proc/self/fd/${fd}`, 'utf8');
}

describe('stream and datagram sockets', () => {
  let before = 0;
  const open: { close(): void }[] = [];
  const fds: number[] = [];
  const keep = <T extends { close(): void }>(x: T): T => { open.push(x); return x; };
  beforeEach(() => { before = countFds(); });
  afterEach(async () => {
    for (const x of open.splice(0)) x.close();
    for (const fd of fds.splice(0)) fs.closeSync(fd);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(countFds(), before, 'descriptor count flat around the test');
  });

  async function streamPair(options: { maxFds?: number } = {}): Promise<[Channel, Channel, ChannelServer]> {
    const server = keep(await listen(abstract('stream'), { type: 'stream', ...options }));
    const accepted = once(server, 'connection') as Promise<[Channel]>;
    const client = keep(await connect(server.address, { type: 'stream' }));
    const [ch] = await accepted;
    return [client, keep(ch), server];
  }

  describe("listen()/connect() with type 'stream'", () => {
    it('connects, reports the type, and carries bytes with descriptors', async () => {
      const [client, ch, server] = await streamPair();
      assert.equal(server.type, 'stream');
      assert.equal(client.type, 'stream');
      assert.equal(ch.type, 'stream');
      assert.equal(ch.peer.pid, process.pid);
      const fd = memfdWith('over a stream');
      fds.push(fd);
      await client.send('hello', [fd]);
      using m = await ch.receive();
      assert.equal(m.data.toString(), 'hello');
      assert.equal(m.fds.length, 1);
      assert.equal(contents(m.fds[0]!), 'over a stream');
    });

    it('sendBuffer()/receiveBuffer() work when each write carries its descriptor', async () => {
      const [client, ch] = await streamPair();
      using sb = SealedBuffer.from('sealed over a stream');
      await client.sendBuffer(sb, 'meta');
      const { buffer, meta } = await ch.receiveBuffer({ maxSize: 64 });
      assert.equal(meta.toString(), 'meta');
      assert.equal(buffer.bytes.toString(), 'sealed over a stream');
      buffer.close();
    });

    it('a type mismatch: EPROTOTYPE on a path, ECONNREFUSED on an abstract name (looked up per type)', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memseal-type-'));
      try {
        const server = keep(await listen(path.join(dir, 'seq.sock')));
        assert.equal(server.type, 'seqpacket');
        await assert.rejects(connect(server.address, { type: 'stream' }), { code: 'EPROTOTYPE', hint: /options\.type/ });
        const abs = keep(await listen(abstract('seq')));
        await assert.rejects(connect(abs.address, { type: 'stream' }), { code: 'ECONNREFUSED' });
        // the same abstract name can be held by one socket of each type
        keep(await listen(abs.address, { type: 'stream' }));
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it('a bad type is ERR_INVALID_ARG_VALUE before any syscall', async () => {
      const server = keep(await listen(abstract('seq')));
      await assert.rejects(connect(server.address, { type: 'dgram' as never }), { code: 'ERR_INVALID_ARG_VALUE' });
      await assert.rejects(listen(abstract('x'), { type: 'raw' as never }), { code: 'ERR_INVALID_ARG_VALUE' });
    });

    it('refuses an empty write even with descriptors: on a stream they travel with a byte', async () => {
      const [client] = await streamPair();
      const fd = memfdWith('x');
      fds.push(fd);
      await assert.rejects(client.send('', [fd]), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    });

    it('a write the kernel takes in part is finished in order, its descriptors sent once', async () => {
      const [client, ch] = await streamPair();
      const fd = memfdWith('once per write');
      fds.push(fd);
      const chunk = Buffer.alloc(65536);
      const writes = 64;  // 4 MiB: far beyond the socket buffer, so most writes are split
      const sends: Promise<void>[] = [];
      for (let i = 0; i < writes; i++) sends.push(client.send(chunk.fill(i % 256), [fd]));
      let total = 0;
      let received = 0;
      let expect = 0;
      while (total < writes * 65536) {
        using m = await ch.receive();
        for (const byte of m.data) {
          assert.equal(byte, Math.floor(expect / 65536) % 256, `byte ${expect} in order`);
          expect++;
        }
        total += m.data.length;
        received += m.fds.length;
      }
      await Promise.all(sends);
      assert.equal(received, writes, 'each write delivered its descriptor exactly once');
    });

    it('after the kernel takes part of a queued write, the flush waits for the socket instead of trying again at once', async () => {
      // many writes (the partial one is in the middle of a flush's batch), and a few (it is the batch's last)
      for (const [count, size] of [[64, 65536], [11, 65536], [8, 60000]] as const) {
        const [client, ch] = await streamPair();
        const saved = native.sendBatch;
        let partials = 0;
        let afterPartial = false;
        let wasted = 0;  // calls made in the same flush right after a partial write, which the kernel refused
        native.sendBatch = (sock, datas, fdss, results) => {
          // entries this call does not write hold what earlier calls left there: make that a sent size,
          // so the flush cannot take a stale entry for the kernel pushing back
          results.fill(1);
          const done = saved(sock, datas, fdss, results);
          if (afterPartial && done === 0) wasted++;
          const last = done - 1;
          if (done > 0 && results[last]! >= 0 && results[last]! < datas[last]!.byteLength) {
            partials++;
            afterPartial = true;
            queueMicrotask(() => { afterPartial = false; });  // the flush is one synchronous run
          }
          return done;
        };
        try {
          const chunk = Buffer.alloc(size, 7);
          const sends: Promise<void>[] = [];
          for (let i = 0; i < count; i++) sends.push(client.send(chunk));
          let total = 0;
          while (total < count * size) total += (await ch.receive()).data.length;
          await Promise.all(sends);
        } finally {
          native.sendBatch = saved;
        }
        assert.ok(partials > 0, `some queued write of ${size} bytes was taken in part`);
        assert.equal(wasted, 0, `${count} × ${size} B: ${wasted} of ${partials} partial writes were followed at once by a send the kernel refused`);
      }
    });
  });

  describe('Channel.fromFd() detects the type (SO_TYPE)', () => {
    it("adopts a connected SOCK_STREAM socket as type 'stream'", async () => {
      const server = keep(await listen(abstract('adopt'), { type: 'stream' }));
      const accepted = once(server, 'connection') as Promise<[Channel]>;
      const raw = native.socket(K.SOCK_STREAM);
      assert.equal(native.connect(raw, Buffer.from(server.address)), 0);
      const ch = keep(Channel.fromFd(raw));
      const [other] = await accepted;
      keep(other);
      assert.equal(ch.type, 'stream');
      await other.send('adopted');
      using m = await ch.receive();
      assert.equal(m.data.toString(), 'adopted');
    });

    it("adopts a bound SOCK_DGRAM socket as type 'dgram'", async () => {
      const raw = native.socket(K.SOCK_DGRAM);
      const name = abstract('dgram-adopt');
      assert.equal(native.bind(raw, Buffer.from(name)), 0);
      const ch = keep(Channel.fromFd(raw));
      assert.equal(ch.type, 'dgram');
      await sendDatagram(name, 'to an adopted socket');
      using m = await ch.receive();
      assert.equal(m.data.toString(), 'to an adopted socket');
    });
  });

  describe('sendDatagram() / bindDatagram()', () => {
    it('one datagram with descriptors, to an abstract name and to a path', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memseal-dgram-'));
      try {
        for (const name of [abstract('dg'), path.join(dir, 'dg.sock')]) {
          const rx = keep(await bindDatagram(name));
          const fd = memfdWith(`via ${name.startsWith('\0') ? 'abstract' : 'path'}`);
          fds.push(fd);
          await sendDatagram(name, Buffer.from('entry'), [fd]);
          using m = await rx.receive();
          assert.equal(m.data.toString(), 'entry');
          assert.equal(contents(m.fds[0]!), `via ${name.startsWith('\0') ? 'abstract' : 'path'}`);
        }
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it('an empty datagram is an empty message, not end-of-stream', async () => {
      const name = abstract('empty');
      const rx = keep(await bindDatagram(name));
      await sendDatagram(name, '');
      await sendDatagram(name, 'after');
      using m1 = await rx.receive();
      assert.equal(m1.data.length, 0);
      assert.equal(rx.closed, false);
      using m2 = await rx.receive();
      assert.equal(m2.data.toString(), 'after');
    });

    it('fails like the kernel says: ENOENT, ECONNREFUSED, EPROTOTYPE, EBADF; arguments before any syscall', async () => {
      await assert.rejects(sendDatagram(path.join(os.tmpdir(), `memseal-none-${process.pid}`), 'x'), { code: 'ENOENT', syscall: 'sendmsg' });
      await assert.rejects(sendDatagram(abstract('nobody'), 'x'), { code: 'ECONNREFUSED', hint: /nobody is bound/ });
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memseal-type-'));
      try {
        const seq = keep(await listen(path.join(dir, 'seq.sock')));
        await assert.rejects(sendDatagram(seq.address, 'x'), { code: 'EPROTOTYPE', hint: /not a datagram socket/ });
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
      const name = abstract('ebadf');
      keep(await bindDatagram(name));
      await assert.rejects(sendDatagram(name, 'x', [999999]), { code: 'EBADF' });
      await assert.rejects(sendDatagram(name, Buffer.alloc(65537)), { code: 'ERR_OUT_OF_RANGE' });
      await assert.rejects(sendDatagram(name, 'x', new Array(254).fill(0) as number[]), { code: 'ERR_OUT_OF_RANGE' });
      await assert.rejects(sendDatagram(name, 42 as never), { code: 'ERR_INVALID_ARG_TYPE' });
      await assert.rejects(bindDatagram(name), { code: 'EADDRINUSE' });
    });
  });

  describe('hostile peers on stream and datagram sockets', () => {
    it('a datagram with 253 descriptors to a receiver accepting 1: dropped (ERR_MEMSEAL_CTRUNC), all closed, next datagram fine', async () => {
      const name = abstract('flood');
      const rx = keep(await bindDatagram(name, { maxFds: 1 }));
      const fd = memfdWith('flood');
      fds.push(fd);
      const mid = countFds();
      const dropped = once(rx, 'dropped');
      await sendDatagram(name, 'flood', new Array(MAX_FDS).fill(fd) as number[]);
      await sendDatagram(name, 'fine', [fd]);
      using m = await rx.receive();
      const [info] = (await dropped) as [{ reason: string; error: { code: string } }];
      assert.equal(info.reason, 'invalid');
      assert.equal(info.error.code, 'ERR_MEMSEAL_CTRUNC');
      assert.equal(rx.dropped, 1);
      assert.equal(countFds(), mid + 1, 'every descriptor of the dropped datagram was closed');
      assert.equal(m.data.toString(), 'fine');
      assert.equal(m.fds.length, 1);
    });

    it('a datagram with 253 descriptors to a receiver accepting 253: all delivered, all closable', async () => {
      const name = abstract('full');
      const rx = keep(await bindDatagram(name));
      const fd = memfdWith('many');
      fds.push(fd);
      await sendDatagram(name, 'many', new Array(MAX_FDS).fill(fd) as number[]);
      const m = await rx.receive();
      assert.equal(m.fds.length, MAX_FDS);
      assert.equal(contents(m.fds[252]!), 'many');
      m.closeFds();
    });

    it('a datagram over MAX_PAYLOAD with descriptors (a sender ignoring the limit): dropped (ERR_MEMSEAL_SIZE), closed', async () => {
      const name = abstract('big');
      const rx = keep(await bindDatagram(name));
      const fd = memfdWith('big');
      fds.push(fd);
      const raw = native.socket(K.SOCK_DGRAM);
      try {
        assert.equal(native.sendmsg(raw, Buffer.alloc(70000, 1), Int32Array.of(fd, fd), Buffer.from(name)), 70000);
      } finally {
        native.close(raw);
      }
      const mid = countFds();
      const dropped = once(rx, 'dropped');
      const pending = rx.receive();  // someone wants a datagram: the bad one is read, dropped, and receive() waits on
      const [info] = (await dropped) as [{ reason: string; error: { code: string } }];
      assert.equal(info.error.code, 'ERR_MEMSEAL_SIZE');
      assert.equal(rx.dropped, 1);
      assert.equal(countFds(), mid);
      await sendDatagram(name, 'after');
      assert.equal((await pending).data.toString(), 'after');
    });

    it('truncated control data on a stream: ERR_MEMSEAL_CTRUNC, descriptors closed, bytes of that read lost', async () => {
      const [client, ch] = await streamPair({ maxFds: 2 });
      const fd = memfdWith('x');
      fds.push(fd);
      await client.send('AAAA', [fd, fd, fd, fd, fd]);  // in the kernel once send() resolves
      const mid = countFds();
      await assert.rejects(ch.receive(), { code: 'ERR_MEMSEAL_CTRUNC' });
      assert.equal(countFds(), mid, 'every descriptor that arrived was closed');
      await client.send('next');
      using m = await ch.receive();
      assert.equal(m.data.toString(), 'next', 'the stream goes on; what came with the refused read is gone');
    });

    it('a descriptor in the middle of a stream arrives with the read holding the first byte of its write', async () => {
      const [client, ch] = await streamPair();
      const fd = memfdWith('middle');
      fds.push(fd);
      await client.send('aaa');
      await client.send('bbb', [fd]);
      await client.send('ccc');  // all three are in the kernel once send() resolves, before the first read
      const reads: { data: string; nfds: number }[] = [];
      let text = '';
      while (text.length < 9) {
        using m = await ch.receive();
        reads.push({ data: m.data.toString(), nfds: m.fds.length });
        if (m.fds.length > 0) assert.equal(contents(m.fds[0]!), 'middle');
        text += m.data.toString();
      }
      assert.equal(text, 'aaabbbccc');
      const withFd = reads.filter((r) => r.nfds > 0);
      assert.equal(withFd.length, 1, 'exactly one read carried the descriptor');
      assert.ok(withFd[0]!.data.endsWith('bbb'), `the read ends with the write that carried it: ${JSON.stringify(reads)}`);
      assert.ok(!withFd[0]!.data.includes('c'), 'a read never runs past a write that carried descriptors');
    });

    it('a peer that hangs up mid-stream: what it wrote is delivered, then the channel closes', async () => {
      const [client, ch] = await streamPair();
      await client.send('last words');
      client.close();
      using m = await ch.receive();
      assert.equal(m.data.toString(), 'last words');
      await assert.rejects(ch.receive(), { code: 'ERR_MEMSEAL_CLOSED' });
      assert.equal(ch.closed, true);
    });
  });
});
