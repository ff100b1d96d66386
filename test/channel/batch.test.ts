// Channel receive batches: what waits in the socket is read in one call into the addon per
// wake-up (bounded), then delivered in order. Real sockets, a real child process as the sender.
import assert from 'node:assert/strict';
import { type ChildProcess, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { Channel, memfdCreate, type Message, socketPair, spawnWithChannel } from '../../src';
import { native } from '../../src/kernel/binding';
import { FIXTURES, killChildren, memfdFds, until } from '../helpers';

const PEER = path.join(FIXTURES, 'burst-peer.js');

/** Descriptors of this process open on a memfd the burst peer made (burst-i). */
function burstFds(): string[] {
  return fs.readdirSync('/proc/self/fd').flatMap((f) => {
    try {
      const link = fs.readlinkSync(`/proc/self/fd/${f}`);
      return link.startsWith('/memfd:burst-') ? [link] : [];
    } catch {
      return [];
    }
  });
}

describe('Channel: messages are received in batches', function () {
  this.timeout(30000);
  const children: ChildProcess[] = [];
  const channels: Channel[] = [];
  afterEach(async () => {
    for (const ch of channels.splice(0)) ch.close();
    await killChildren(children.splice(0));
  });

  /** A child that sends a burst of `n` messages (one memfd each) and says 'sent' once the socket holds them all. */
  async function burst(n: number, ...more: string[]): Promise<Channel> {
    const { child, channel } = spawnWithChannel(process.execPath, [PEER, 'burst', String(n), ...more], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    channels.push(channel);
    let out = '';
    child.stdout!.setEncoding('utf8');
    while (!out.includes('sent\n')) out += (await once(child.stdout!, 'data'))[0] as string;
    return channel;
  }

  /** Collects `n` messages (and 'error's) from listeners attached now. */
  function collect(channel: Channel, n: number): Promise<(Message | Error)[]> {
    const got: (Message | Error)[] = [];
    return new Promise((resolve) => {
      const add = (m: Message | Error) => { got.push(m); if (got.length === n) resolve(got); };
      channel.on('message', add);
      channel.on('error', add);
    });
  }

  it('a burst of 100 messages with descriptors arrives in order, each with its own, in far fewer calls into the addon than messages', async () => {
    const channel = await burst(100);
    const calls = { recvmsg: 0, recvBatch: 0 };
    const saved = { recvmsg: native.recvmsg, recvBatch: native.recvBatch };
    const bound = native as unknown as Record<string, (...args: unknown[]) => unknown>;
    for (const name of ['recvmsg', 'recvBatch'] as const) {
      const real = saved[name] as ((...args: unknown[]) => unknown) | undefined;
      bound[name] = (...args: unknown[]) => { calls[name]++; return real!(...args); };
    }
    let got: (Message | Error)[];
    try {
      got = await collect(channel, 100);
    } finally {
      Object.assign(native, saved);
    }
    got.forEach((m, i) => {
      assert.ok(!(m instanceof Error), String(m));
      const msg = m as Message;
      assert.equal(msg.data.toString(), String(i));
      assert.equal(msg.fds.length, 1);
      assert.ok(fs.readlinkSync(`/proc/self/fd/${msg.fds[0]}`).startsWith(`/memfd:burst-${i} `), `message ${i} carries its own memfd`);
      assert.equal(fs.readFileSync(`/proc/self/fd/${msg.fds[0]}`, 'utf8'), String(i));
      msg.closeFds();
    });
    const total = calls.recvmsg + calls.recvBatch;
    assert.ok(total <= 10, `${total} calls into the addon to read 100 messages (recvmsg ${calls.recvmsg}, recvBatch ${calls.recvBatch})`);
  });

  it('a message with more descriptors than maxFds in the middle of a batch is refused alone: its neighbours arrive whole', async () => {
    const channel = await burst(20, '7');
    channel.maxFds = 2;
    const got = await collect(channel, 20);
    got.forEach((m, i) => {
      if (i === 7) {
        assert.equal((m as Error & { code?: string }).code, 'ERR_MEMSEAL_CTRUNC');
        return;
      }
      const msg = m as Message;
      assert.equal(msg.data.toString(), String(i));
      assert.equal(msg.fds.length, 1);
      assert.equal(fs.readFileSync(`/proc/self/fd/${msg.fds[0]}`, 'utf8'), String(i));
      msg.closeFds();
    });
    assert.deepEqual(burstFds(), [], 'every descriptor of the refused message was closed');
  });

  it('close() from a listener in the middle of a batch: no message after it, no descriptor of the rest left open', async () => {
    const channel = await burst(100);
    let seen = 0;
    channel.on('message', (m) => {
      seen++;
      m.closeFds();
      if (seen === 10) channel.close();
    });
    await once(channel, 'close');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(seen, 10);
    assert.deepEqual(burstFds(), []);
  });

  it('a listener that throws at message 5: the exception reaches the process, the rest arrive next, in order', async () => {
    const channel = await burst(30);
    const thrown: unknown[] = [];
    const mochas = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    process.on('uncaughtException', (err) => thrown.push(err));
    const got: string[] = [];
    try {
      await new Promise<void>((resolve) => {
        channel.on('message', (m) => {
          got.push(m.data.toString());
          m.closeFds();
          if (got.length === 30) resolve();
          if (got.length === 6) throw new Error('listener failed');
        });
      });
    } finally {
      process.removeAllListeners('uncaughtException');
      for (const l of mochas) process.on('uncaughtException', l);
    }
    assert.equal(thrown.length, 1);
    assert.deepEqual(got, Array.from({ length: 30 }, (_, i) => String(i)));
    assert.deepEqual(burstFds(), []);
  });

  it('a peer that floods the channel cannot starve a timer: timers fire while its messages keep coming', async () => {
    const { child, channel } = spawnWithChannel(process.execPath, [PEER, 'flood'], { stdio: ['ignore', 'inherit', 'inherit'] });
    children.push(child);
    channels.push(channel);
    let count = 0;
    channel.on('message', () => { count++; });
    while (count === 0) await once(channel, 'message');
    // The timer must fire between deliveries again and again: count the ticks that saw more messages
    // than the tick before. A starved loop never gets there; a loaded machine only takes longer.
    let last = count;
    let advances = 0;
    await new Promise<void>((resolve) => {
      const t = setInterval(() => {
        if (count > last) advances++;
        last = count;
        if (advances === 5) { clearInterval(t); resolve(); }
      }, 5);
    });
    assert.equal(advances, 5);
  });

  it('an empty message in the middle of what a peer sent: every descriptor after it is delivered, none leaks', async () => {
    const pair = native.socketpair();
    assert.ok(typeof pair !== 'number');
    const [raw, ours] = pair;
    // A foreign peer on a raw socket: an empty message (which reads as end-of-stream), then three with a memfd each.
    assert.equal(native.sendmsg(raw, new Uint8Array(0), new Int32Array(0)), 0);
    for (const text of ['a', 'b', 'c']) {
      const fd = memfdCreate(`burst-${text}`);
      assert.equal(native.sendmsg(raw, Buffer.from(text), Int32Array.of(fd)), 1);
      fs.closeSync(fd);
    }
    native.close(raw);
    const channel = Channel.fromFd(ours);
    channels.push(channel);
    const got: string[] = [];
    channel.on('message', (m) => { got.push(`${m.data.toString()}:${m.fds.length}`); m.closeFds(); });
    if (!channel.closed || got.length < 3) await once(channel, 'close');
    while (got.length < 3) await once(channel, 'message');
    assert.deepEqual(got, ['a:1', 'b:1', 'c:1']);
    assert.deepEqual(burstFds(), []);
  });

  it('two empty datagrams waiting together are two messages', async () => {
    // a datagram socket without SO_PASSCRED: an empty datagram carries nothing at all
    const K = native.channelConstants;
    const name = Buffer.from(`\0memseal-batch-empty-${process.pid}`);
    const rxFd = native.socket(K.SOCK_DGRAM);
    const txFd = native.socket(K.SOCK_DGRAM);
    assert.ok(rxFd >= 0 && txFd >= 0);
    assert.equal(native.bind(rxFd, name), 0);
    const rx = Channel.fromFd(rxFd);
    channels.push(rx);
    try {
      for (let i = 0; i < 2; i++) assert.equal(native.sendmsg(txFd, new Uint8Array(0), new Int32Array(0), name), 0);
      const texts: string[] = [];
      rx.on('message', (m) => texts.push(m.data.toString()));
      await once(rx, 'message');  // the two were read in one turn: 'after' was not sent yet
      assert.equal(native.sendmsg(txFd, Buffer.from('after'), new Int32Array(0), name), 5);
      while (!texts.includes('after')) await once(rx, 'message');
      assert.deepEqual(texts, ['', '', 'after']);
    } finally {
      native.close(txFd);
    }
  });

  it('a once() listener: a wake-up takes in only the message it wants, none for nobody', async () => {
    const [a, b] = socketPair({ maxFds: 253 });
    channels.push(a, b);
    const memfd = memfdCreate('batch-once');
    try {
      for (let i = 0; i < 10; i++) await a.send(`m${i}`, new Array(253).fill(memfd));
    } finally {
      fs.closeSync(memfd);
    }
    // this process's descriptors of that memfd (no other test's come and go in between)
    const count = (): number => memfdFds('batch-once');
    const before = count();
    let inListener = -1;
    b.once('message', (m: Message) => {
      inListener = count() - before;
      m.closeFds();
    });
    await until(() => inListener >= 0, 'the once() listener');
    // the listener took one message and closed its 253; nothing else was read from the socket
    assert.ok(inListener <= 253, `one wake-up installed ${inListener} descriptors (the message wanted has 253)`);
    assert.ok(count() - before <= 0, `${count() - before} descriptors held for nobody after the listener`);
    const next = await b.receive();
    assert.equal(next.data.toString(), 'm1');
    assert.equal(next.fds.length, 253);
    next.closeFds();
  });

  it('empty messages whose descriptors did not fit (out of descriptors) are each reported, not taken for end-of-stream', () => {
    const fixture = path.join(FIXTURES, 'batch-emfile.js');
    const r = spawnSync('sh', ['-c', `ulimit -n 64 && exec "${process.execPath}" "${fixture}"`], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { got: ['error EMFILE', 'error EMFILE', "message 'after' with 0 fds"], closed: false });
  });

  it('a message\'s descriptors are handed over and closed in one call into the addon each: a worker terminated in between leaves all tracked or none', async () => {
    const [a, b] = socketPair({ maxFds: 253 });
    channels.push(a, b);
    const memfd = memfdCreate('batch-handover');
    try {
      await a.send('many', new Array(200).fill(memfd));
    } finally {
      fs.closeSync(memfd);
    }
    const calls: Record<string, number> = { untrack: 0, untrackAll: 0, close: 0, closeAll: 0 };
    const saved = { untrack: native.untrack, untrackAll: native.untrackAll, close: native.close, closeAll: native.closeAll };
    const bound = native as unknown as Record<string, (...args: unknown[]) => unknown>;
    for (const name of Object.keys(saved) as (keyof typeof saved)[]) {
      const real = saved[name] as ((...args: unknown[]) => unknown) | undefined;
      bound[name] = (...args: unknown[]) => { calls[name]!++; return real?.(...args); };
    }
    try {
      const m = await b.receive();
      assert.equal(m.fds.length, 200);
      assert.equal(calls.untrack! + calls.untrackAll!, 1, `handed over in ${JSON.stringify(calls)}`);
      m.closeFds();
      assert.equal(calls.close! + calls.closeAll!, 1, `closed in ${JSON.stringify(calls)}`);
    } finally {
      Object.assign(native, saved);
    }
    assert.equal(memfdFds('batch-handover'), 0, 'every descriptor closed');
  });
});

