// The channel's side of the trust boundary (issue 14): a queued send owns what it
// sends, fromFd() never closes what it did not adopt, the send queue is bounded,
// a hang-up does not make the receiver read everything in, running out of
// descriptors does not kill a server, and a server chooses who may connect.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  Channel, type ChannelOptions, type ChannelServer, connect, listen, SealedBuffer, socketPair, spawnWithChannel,
} from '../../src';
import { native } from '../../src/kernel/binding';
import { countFds, FIXTURES, killChildren, readableCheckout, runFixture, tick, Tracker } from '../helpers';

const FIXTURE = path.join(FIXTURES, 'trust-channel.js');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function code(expected: string) {
  return (err: unknown) => {
    assert.equal((err as { code?: string }).code, expected, String(err));
    return true;
  };
}

/** Settles now (already rejected or resolved) or is still pending after a turn of the loop. */
async function settledAtOnce(p: Promise<unknown>): Promise<'resolved' | Error | 'pending'> {
  return Promise.race([
    p.then(() => 'resolved' as const, (err: Error) => err),
    new Promise<'pending'>((resolve) => setImmediate(() => resolve('pending'))),
  ]);
}

/** Fills the kernel's send buffer of `a` (nobody reads `b`) so the next send queues. */
function fillKernelBuffer(a: Channel): Promise<void>[] {
  const sends: Promise<void>[] = [];
  while (a.pendingSends === 0) sends.push(a.send(Buffer.alloc(60000)));
  return sends;
}

describe('Channel trust boundary', () => {
  const tracker = new Tracker();
  const track = <T extends { close(): void }>(x: T): T => tracker.track(x);
  const pair = (options?: ChannelOptions): [Channel, Channel] => socketPair(options).map(track) as [Channel, Channel];
  const children: ChildProcess[] = [];
  let baseline = 0;

  beforeEach(() => {
    baseline = countFds();
  });
  afterEach(async () => {
    tracker.closeAll();
    await killChildren(children);
    await tick();
    assert.equal(countFds(), baseline, 'open descriptors are back at their baseline');
  });

  describe('sendBuffer() owns what it queues', () => {
    it('never sends another file when the caller closes the buffer at once', async () => {
      const [a, b] = pair({ maxQueuedFds: 4096 });  // room for the whole burst
      const sends: Promise<void>[] = [];
      const n = 2000;
      for (let i = 0; i < n; i++) {
        const sb = SealedBuffer.from(`item ${i}`);
        sends.push(a.sendBuffer(sb, `item ${i}`));
        sb.close();
      }
      assert.ok(a.pendingSends > 0, 'some sends had to wait for buffer space');
      const secret = SealedBuffer.from('UNRELATED PRIVATE DATA');
      try {
        const wrong: string[] = [];
        for (let i = 0; i < n; i++) {
          const { buffer, meta } = await b.receiveBuffer();
          const text = buffer.bytes.toString();
          if (text !== meta.toString() || text !== `item ${i}`) wrong.push(`meta "${meta.toString()}" carried "${text}"`);
          buffer.close();
        }
        await Promise.all(sends);
        assert.deepEqual(wrong.slice(0, 5), [], `${wrong.length} messages carried the wrong file`);
      } finally {
        secret.close();
      }
    });

    it('a send that waits holds its own duplicate, released when it goes out', async () => {
      const [a, b] = pair();
      const first = fillKernelBuffer(a);
      const before = countFds();
      const sb = SealedBuffer.from('queued');
      const p = a.sendBuffer(sb, 'queued');
      sb.close();
      assert.equal(countFds(), before + 1, 'the queued message holds one duplicate');
      assert.equal(a.queuedFds, 1);
      for (let i = 0; i < first.length; i++) (await b.receive()).closeFds();
      const { buffer, meta } = await b.receiveBuffer();
      assert.equal(meta.toString(), 'queued');
      assert.equal(buffer.bytes.toString(), 'queued');
      buffer.close();
      await p;
      await Promise.all(first);
      assert.equal(countFds(), before);
    });
  });

  describe('Channel.fromFd() on a descriptor in use', () => {
    it('refuses with a clear error and leaves the descriptor and its channel alone', () => {
      const r = runFixture('trust-channel.js', ['fromfd-in-use']);
      assert.equal(r.signal, null, `the process died of ${r.signal}: ${r.stderr}`);
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { error: { code: string; message: string } | null; stillOpen: boolean; toA: string; toB: string };
      assert.ok(out.error !== null, 'fromFd() refused');
      assert.equal(out.error.code, 'ERR_MEMSEAL_FD_IN_USE');
      assert.match(out.error.message, /already/);
      assert.equal(out.stillOpen, true, 'the descriptor is still open');
      assert.equal(out.toA, 'to a');
      assert.equal(out.toB, 'to b');
    });

    it("leaves the descriptor open and the caller's on every failure", () => {
      // (a descriptor a Channel already watches: in the child above, as the old code aborted)
      // not a socket: the caller still owns it and must close it
      const fd = fs.openSync('/dev/null', 'r');
      assert.throws(() => Channel.fromFd(fd), code('ENOTSOCK'));
      fs.fstatSync(fd);
      fs.closeSync(fd);
      // bad options: nothing adopted either
      const [x, y] = native.socketpair() as [number, number];
      assert.throws(() => Channel.fromFd(x, { maxFds: 999 }), code('ERR_OUT_OF_RANGE'));
      fs.fstatSync(x);
      fs.closeSync(x);
      fs.closeSync(y);
    });
  });

  describe('the send queue is bounded', () => {
    it('rejects at once with ERR_MEMSEAL_QUEUE_FULL beyond the default byte bound, and emits drain', async () => {
      const [a, b] = pair();
      const first = fillKernelBuffer(a);
      const sends: Promise<void>[] = [];
      let refused: Error | undefined;
      for (let i = 0; i < 2000 && refused === undefined; i++) {
        const p = a.send(Buffer.alloc(65536, 1));
        const state = await settledAtOnce(p);
        if (state instanceof Error) refused = state;
        else sends.push(p);
      }
      assert.ok(refused !== undefined, 'a send beyond the bound was refused');
      assert.equal((refused as Error & { code?: string }).code, 'ERR_MEMSEAL_QUEUE_FULL');
      assert.ok(a.queuedBytes > 0 && a.queuedBytes <= 8 * 1024 * 1024, `queuedBytes ${a.queuedBytes} within the 8 MiB default`);
      const queued = a.queuedBytes;
      const drained = once(a, 'drain');
      const all = first.length + sends.length;
      for (let i = 0; i < all; i++) await b.receive();
      await drained;
      assert.equal(a.queuedBytes, 0);
      assert.equal(a.pendingSends, 0);
      await Promise.all([...first, ...sends]);
      assert.ok(queued >= 8 * 1024 * 1024 - 2 * 65536);
    });

    it('bounds the descriptors queued sends hold; a refused sendBuffer takes nothing', async () => {
      const [a, b] = pair({ maxQueuedFds: 4 });
      assert.equal(a.maxQueuedFds, 4);
      const first = fillKernelBuffer(a);
      const buffers = [0, 1, 2, 3, 4].map((i) => SealedBuffer.from(`b${i}`));
      try {
        const sends = buffers.slice(0, 4).map((sb, i) => a.sendBuffer(sb, `b${i}`));
        assert.equal(a.queuedFds, 4);
        const before = countFds();
        await assert.rejects(a.sendBuffer(buffers[4]!, 'b4'), code('ERR_MEMSEAL_QUEUE_FULL'));
        await assert.rejects(a.send('x', [buffers[4]!.fd]), code('ERR_MEMSEAL_QUEUE_FULL'));
        assert.equal(countFds(), before, 'the refused send took no descriptor');
        assert.equal(a.queuedFds, 4);
        assert.equal(a.pendingSends, 4 + 1);
        for (let i = 0; i < first.length; i++) await b.receive();
        for (let i = 0; i < 4; i++) {
          const { buffer, meta } = await b.receiveBuffer();
          assert.equal(buffer.bytes.toString(), meta.toString());
          buffer.close();
        }
        await Promise.all([...first, ...sends]);
        assert.equal(a.queuedFds, 0);
      } finally {
        for (const sb of buffers) sb.close();
      }
    });

    it('maxQueuedBytes 0 never queues: a send that would wait is refused', async () => {
      const [a, b] = pair({ maxQueuedBytes: 0 });
      const sends: Promise<void>[] = [];
      let refused: unknown;
      for (let i = 0; i < 100 && refused === undefined; i++) {
        const p = a.send(Buffer.alloc(60000));
        const state = await settledAtOnce(p);
        if (state instanceof Error) refused = state;
        else sends.push(p);
      }
      assert.equal((refused as { code?: string }).code, 'ERR_MEMSEAL_QUEUE_FULL');
      assert.equal(a.pendingSends, 0);
      for (let i = 0; i < sends.length; i++) await b.receive();
    });

    it('validates the bounds', () => {
      assert.throws(() => socketPair({ maxQueuedBytes: -1 }), code('ERR_OUT_OF_RANGE'));
      assert.throws(() => socketPair({ maxQueuedFds: 1.5 }), code('ERR_OUT_OF_RANGE'));
    });
  });

  describe('a hang-up does not read everything in', () => {
    it('a server taking one message at a time holds a bounded number of descriptors', async function () {
      this.timeout(60000);
      const { child, channel } = spawnWithChannel(process.execPath, [FIXTURE, 'flood-exit'], { stdio: ['ignore', 'pipe', 'inherit'] });
      children.push(child);
      track(channel);
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d));
      await once(child, 'exit');
      const sent = Number(out.trim());
      assert.ok(sent >= 10, `the peer queued ${sent} messages of 253 descriptors`);
      const before = countFds();
      let most = before;
      let received = 0;
      for (;;) {
        let m;
        try {
          m = await channel.receive();
        } catch (err) {
          assert.equal((err as { code?: string }).code, 'ERR_MEMSEAL_CLOSED');
          break;
        }
        received++;
        await tick();  // one at a time, with the loop turning in between
        most = Math.max(most, countFds());
        m.closeFds();
      }
      assert.equal(received, sent);
      assert.ok(most <= before + 2 * 253, `at most two messages' descriptors open at once (before ${before}, most ${most})`);
    });

    it('messages nobody takes die with the socket', async () => {
      const [a, b] = pair();
      const memfd = SealedBuffer.from('x');
      const fds = new Array(253).fill(memfd.fd) as number[];
      for (let i = 0; i < 5; i++) await a.send('m', fds);
      memfd.close();
      a.close();
      await once(b, 'close');
      await tick();  // a turn of the loop in which a wrong channel would read them in
      assert.ok(countFds() <= baseline + 1, `nothing was read in on hang-up (${countFds() - baseline} more descriptors)`);
      b.close();
    });
  });

  describe('running out of descriptors', () => {
    it('a server with no error listener keeps serving under a low RLIMIT_NOFILE', async function () {
      this.timeout(60000);
      const address = `@memseal-emfile-${process.pid}-${Date.now()}`;
      const n = 200;
      const server = spawn('prlimit', ['--nofile=48:48', process.execPath, FIXTURE, 'accept-server', address, String(n)],
        { stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(server);
      let out = '';
      let err = '';
      server.stdout!.on('data', (d: Buffer) => (out += d));
      server.stderr!.on('data', (d: Buffer) => (err += d));
      // listened for from the start: a server that dies early must fail the test, not hang it
      const serverExit = once(server, 'exit') as Promise<[number | null, string | null]>;
      let exited = false;
      void serverExit.then(() => { exited = true; });
      while (!out.includes('listening')) {
        if (exited) assert.fail(`server exited: ${err}`);
        await sleep(20);
      }
      const client = spawn(process.execPath, [FIXTURE, 'connect-many', address, String(n)], { stdio: ['ignore', 'pipe', 'inherit'] });
      children.push(client);
      const clientExit = once(client, 'exit');  // the client may well exit before the server does
      let clientOut = '';
      client.stdout!.on('data', (d: Buffer) => (clientOut += d));
      const [serverCode, serverSignal] = await serverExit;
      assert.equal(serverSignal, null);
      assert.equal(serverCode, 0, `the server died: ${err}`);
      await clientExit;
      assert.equal(Number(clientOut.trim()), n, 'every client got its answer');
      const result = JSON.parse(out.split('\n')[1]!) as { served: number; warnings: number };
      assert.equal(result.served, n);
      assert.ok(result.warnings > 0, 'the server said it ran out of descriptors');
    });
  });

  describe('who may connect', () => {
    let dir: string;
    beforeEach(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memseal-trust-'));
      fs.chmodSync(dir, 0o755);
    });
    afterEach(() => {
      fs.rmSync(dir, { recursive: true, force: true });
    });

    const root = process.getuid!() === 0;
    /** Runs the connect-as fixture as uid/gid 65534 with no capabilities (asynchronously: the server is in this process). */
    async function asNobody(address: string): Promise<{ result: string; uid: number }> {
      const child = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all',
        process.execPath, path.join(readableCheckout(), 'test', 'fixtures', 'trust-channel.js'), 'connect-as', address],
        { stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      let out = '';
      let err = '';
      child.stdout!.on('data', (d: Buffer) => (out += d));
      child.stderr!.on('data', (d: Buffer) => (err += d));
      const [status] = (await once(child, 'close')) as [number | null];
      assert.equal(status, 0, err);
      return JSON.parse(out) as { result: string; uid: number };
    }
    function serve(server: ChannelServer): { connections: number } {
      const seen = { connections: 0 };
      server.on('connection', async (ch: Channel) => {
        track(ch);
        seen.connections++;
        try {
          await ch.receive();
          await ch.send('served');
        } catch {
          // the client went
        }
      });
      return seen;
    }

    it('by default refuses another user (abstract name: no permissions at all)', async function () {
      if (!root) {
        console.log('      (skipped: needs root to run a client as uid 65534)');
        this.skip();
      }
      const address = `@memseal-allow-${process.pid}-${Date.now()}`;
      const server = track(await listen(`\0${address.slice(1)}`));
      const seen = serve(server);
      const refused: { uid: number }[] = [];
      server.on('refused', (peer: { uid: number }) => refused.push(peer));
      const r = await asNobody(address);
      assert.equal(r.uid, 65534);
      assert.equal(r.result, 'closed');
      assert.equal(seen.connections, 0, "no 'connection' for a refused peer");
      await tick();
      assert.deepEqual(refused.map((p) => p.uid), [65534]);
    });

    it('allow() decides, before connection, with the peer credentials', async function () {
      if (!root) {
        console.log('      (skipped: needs root to run a client as uid 65534)');
        this.skip();
      }
      const address = `@memseal-allow2-${process.pid}-${Date.now()}`;
      const asked: number[] = [];
      const server = track(await listen(`\0${address.slice(1)}`, { allow: (peer) => { asked.push(peer.uid); return peer.uid === 65534; } }));
      const seen = serve(server);
      assert.equal((await asNobody(address)).result, 'served');
      assert.equal(seen.connections, 1);
      // and this process (root) is now refused by this allow()
      const self = track(await connect(`\0${address.slice(1)}`));
      await once(self, 'close');
      assert.deepEqual(asked, [65534, process.getuid!()]);
      assert.equal(seen.connections, 1);
    });

    it('mode sets the socket file permissions exactly, whatever the umask', async () => {
      const old = process.umask(0);
      try {
        const p = path.join(dir, 'open.sock');
        const server = track(await listen(p, { mode: 0o600 }));
        assert.equal(fs.statSync(p).mode & 0o7777, 0o600);
        server.close();
        process.umask(0o077);
        const q = path.join(dir, 'group.sock');
        track(await listen(q, { mode: 0o660 }));
        assert.equal(fs.statSync(q).mode & 0o7777, 0o660);
      } finally {
        process.umask(old);
      }
    });

    it('a filesystem socket with mode 0600 keeps another user out; 0666 lets allow() decide', async function () {
      if (!root) {
        console.log('      (skipped: needs root to run a client as uid 65534)');
        this.skip();
      }
      const closed = path.join(dir, 'closed.sock');
      track(await listen(closed, { mode: 0o600, allow: () => true }));
      assert.equal((await asNobody(closed)).result, 'EACCES');
      const opened = path.join(dir, 'opened.sock');
      const server = track(await listen(opened, { mode: 0o666, allow: (peer) => peer.uid === 65534 }));
      serve(server);
      assert.equal((await asNobody(opened)).result, 'served');
    });

    it('validates allow and mode before any syscall', async () => {
      await assert.rejects(listen(path.join(dir, 'a.sock'), { allow: 1 as never }), code('ERR_INVALID_ARG_TYPE'));
      await assert.rejects(listen(path.join(dir, 'b.sock'), { mode: 0o10000 }), code('ERR_OUT_OF_RANGE'));
      await assert.rejects(listen('\0abstract-with-mode', { mode: 0o600 }), code('ERR_INVALID_ARG_VALUE'));
      assert.deepEqual(fs.readdirSync(dir), []);
    });
  });
});
