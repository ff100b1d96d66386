// A hostile peer process (test/fixtures/hostile-peer.js) sends everything a
// receiver must refuse; this process receives with Channel.receiveBuffer() and
// must survive each case with a clear error and no descriptor left behind.
import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { type Channel, type ChannelOptions, memfdCreate, addSeals, Seal, SealedBuffer, socketPair, spawnWithChannel } from '../../src';
import { countFds, FIXTURES } from '../helpers';

const PEER = path.join(FIXTURES, 'hostile-peer.js');
const READER = path.join(FIXTURES, 'unverified-reader.js');

interface Peer { child: ChildProcess; channel: Channel; lines: Record<string, unknown>[]; closed: Promise<unknown> }

function startPeer(steps: string[], channel?: ChannelOptions): Peer {
  const { child, channel: ch } = spawnWithChannel(process.execPath, [PEER, steps.join(',')], {
    stdio: ['ignore', 'pipe', 'inherit'],
    channel,
  });
  const lines: Record<string, unknown>[] = [];
  let text = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    text += chunk;
    let nl;
    while ((nl = text.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(text.slice(0, nl)) as Record<string, unknown>);
      text = text.slice(nl + 1);
    }
  });
  return { child, channel: ch, lines, closed: once(child, 'close') };
}

/** receiveBuffer(), expecting a refusal; returns the error. */
async function refused(ch: Channel, options?: Parameters<Channel['receiveBuffer']>[0]): Promise<Error & { code?: string }> {
  try {
    const got = await ch.receiveBuffer(options);
    got.buffer.close();
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new assert.AssertionError({ message: 'receiveBuffer() accepted what it must refuse' });
}

describe('hostile peers (Channel.receiveBuffer against a real child process)', () => {
  // Descriptor counts around the whole suite, for the record.
  let suiteBefore = 0;
  before(() => { suiteBefore = countFds(); });
  after(() => {
    const suiteAfter = countFds();
    console.log(`      open fds before the hostile-peer suite: ${suiteBefore}, after: ${suiteAfter}`);
    assert.equal(suiteAfter, suiteBefore);
  });

  it('refuses every bad message with a clear error, keeps working, and leaks no descriptor', async () => {
    const before = countFds();
    const peer = startPeer(['unsealed', 'noshrink', 'regular', 'pipe', 'socket', 'huge', 'many', 'garbage', 'good']);
    const ch = peer.channel;
    const next = () => ch.send('next');
    const errors: Record<string, Error & { code?: string }> = {};

    errors.unsealed = await refused(ch); await next();
    errors.noshrink = await refused(ch);
    await ch.send('looked');            // now the peer truncates the file to 0
    await next();
    errors.regular = await refused(ch); await next();
    errors.pipe = await refused(ch); await next();
    errors.socket = await refused(ch); await next();
    errors.huge = await refused(ch, { maxSize: 1 << 30 }); await next();
    errors.many = await refused(ch); await next();
    errors.garbage = await refused(ch); await next();
    const good = await ch.receiveBuffer();
    assert.equal(good.meta.toString(), 'good');
    assert.equal(good.buffer.bytes.toString(), 'a good buffer');
    good.buffer.close();
    await next();
    await peer.closed;
    ch.close();

    assert.equal(errors.unsealed!.code, 'ERR_MEMSEAL_NOT_SEALED');
    assert.match(errors.unsealed!.message, /missing seals: shrink, grow, write/);
    assert.equal(errors.noshrink!.code, 'ERR_MEMSEAL_NOT_SEALED');
    assert.match(errors.noshrink!.message, /missing seals: shrink\b/);
    assert.equal(errors.regular!.code, 'ERR_MEMSEAL_NOT_MEMFD');
    assert.match(errors.regular!.message, /regular file/);
    assert.equal(errors.pipe!.code, 'ERR_MEMSEAL_NOT_MEMFD');
    assert.match(errors.pipe!.message, /pipe/);
    assert.equal(errors.socket!.code, 'ERR_MEMSEAL_NOT_MEMFD');
    assert.match(errors.socket!.message, /socket/);
    assert.equal(errors.huge!.code, 'ERR_MEMSEAL_SIZE');
    assert.match(errors.huge!.message, /1099511627776/);
    assert.equal(errors.many!.code, 'ERR_MEMSEAL_CTRUNC');
    assert.match(errors.many!.message, /253 descriptors/);
    assert.equal(errors.garbage!.code, 'ERR_MEMSEAL_NOT_MEMFD');
    assert.match(errors.garbage!.message, /no descriptor/);

    // What the peer saw: its 300-fd send refused before the kernel, and the truncation done.
    assert.deepEqual(peer.lines.find((l) => l.step === 'many' && 'refused300' in l), { step: 'many', refused300: 'ERR_OUT_OF_RANGE' });
    assert.ok(peer.lines.some((l) => l.step === 'noshrink' && l.truncated === true));
    assert.equal(peer.child.exitCode, 0);
    assert.equal(countFds(), before);
  });

  it('a channel with maxFds 1 drops a 253-descriptor message (MSG_CTRUNC) and closes what arrived', async () => {
    const before = countFds();
    const peer = startPeer(['many', 'good'], { maxFds: 1 });
    const ch = peer.channel;
    const err = await refused(ch);
    assert.equal(err.code, 'ERR_MEMSEAL_CTRUNC');
    await ch.send('next');
    const good = await ch.receiveBuffer();
    assert.equal(good.buffer.bytes.toString(), 'a good buffer');
    good.buffer.close();
    await ch.send('next');
    await peer.closed;
    ch.close();
    assert.equal(countFds(), before);
  });

  it('a peer that dies mid-stream: what it sent arrives, then ERR_MEMSEAL_CLOSED', async () => {
    const before = countFds();
    const peer = startPeer(['die', 'good']);
    const ch = peer.channel;
    const last = await ch.receiveBuffer();
    assert.equal(last.meta.toString(), 'die');
    assert.equal(last.buffer.bytes.toString(), 'last words');
    last.buffer.close();
    await assert.rejects(ch.receiveBuffer(), { code: 'ERR_MEMSEAL_CLOSED' });
    await peer.closed;
    assert.equal(peer.child.signalCode, 'SIGKILL');
    assert.equal(ch.closed, true);
    ch.close();
    assert.equal(countFds(), before);
  });

  it('control: the same unsealed-SHRINK memfd, mapped without verification, kills its reader with SIGBUS', async () => {
    // This process plays the hostile peer; the child maps what it gets without checking.
    const before = countFds();
    const { child, channel } = spawnWithChannel(process.execPath, [READER], { stdio: ['ignore', 'inherit', 'inherit'] });
    const fd = memfdCreate('hostile-noshrink');
    try {
      fs.ftruncateSync(fd, 1 << 20);
      fs.writeSync(fd, 'x', 0);
      addSeals(fd, Seal.GROW | Seal.WRITE);
      await channel.send('map this', [fd]);
      const m = await channel.receive();
      assert.equal(m.data.toString(), 'mapped: x');
      fs.ftruncateSync(fd, 0);
      await channel.send('read again');
      const [code, signal] = await once(child, 'exit');
      assert.equal(code, null);
      assert.equal(signal, 'SIGBUS');
    } finally {
      fs.closeSync(fd);
      channel.close();
    }
    assert.equal(countFds(), before);
  });

  it('receiveBuffer() validates its options before taking a message', async () => {
    const peer = startPeer(['good']);
    const ch = peer.channel;
    await assert.rejects(ch.receiveBuffer({ maxSize: -1 }), { code: 'ERR_OUT_OF_RANGE' });
    await assert.rejects(ch.receiveBuffer('x' as never), { code: 'ERR_INVALID_ARG_TYPE' });
    const good = await ch.receiveBuffer({ exactSize: 13 });   // the message is still there
    assert.equal(good.buffer.size, 13);
    good.buffer.close();
    await ch.send('next');
    await peer.closed;
    ch.close();
  });

  it('sendBuffer() refuses a closed buffer and a non-SealedBuffer without sending', async () => {
    const peer = startPeer(['good']);
    const ch = peer.channel;
    const sb = SealedBuffer.from('x');
    sb.close();
    await assert.rejects(ch.sendBuffer(sb), { code: 'ERR_MEMSEAL_CLOSED' });
    await assert.rejects(ch.sendBuffer({ fd: 0 } as never), { code: 'ERR_INVALID_ARG_TYPE' });
    const good = await ch.receiveBuffer();
    good.buffer.close();
    await ch.send('next');
    await peer.closed;
    ch.close();
  });
});

describe('Channel.sendBuffer() / receiveBuffer() in one process', () => {
  it('hands over a SealedBuffer: same bytes, its seals, the meta', async () => {
    const [a, b] = socketPair();
    try {
      const sb = SealedBuffer.from('hello, sealed');
      await a.sendBuffer(sb, Buffer.from([1, 2, 3]));
      sb.close();
      const { buffer, meta } = await b.receiveBuffer({ exactSize: 13 });
      assert.deepEqual([...meta], [1, 2, 3]);
      assert.equal(buffer.bytes.toString(), 'hello, sealed');
      assert.equal(buffer.seals & (Seal.SHRINK | Seal.GROW | Seal.WRITE | Seal.SEAL), Seal.SHRINK | Seal.GROW | Seal.WRITE | Seal.SEAL);
      buffer.close();
    } finally {
      a.close();
      b.close();
    }
  });

  it('a send queued under backpressure survives the caller closing the buffer at once', async () => {
    const [a, b] = socketPair();
    const before = countFds();
    try {
      // Fill the socket until sends queue.
      const filler = Buffer.alloc(60000, 1);
      const fills: Promise<void>[] = [];
      while (a.pendingSends === 0) fills.push(a.send(filler));
      const sbs = [SealedBuffer.from('first queued'), SealedBuffer.from('second queued')];
      const sent = sbs.map((sb, i) => a.sendBuffer(sb, `q${i}`));
      for (const sb of sbs) sb.close();      // the queued messages hold their own duplicates
      // A new memfd now may reuse the closed numbers: it must not be what arrives.
      const decoy = memfdCreate('decoy');
      for (let i = 0; i < fills.length; i++) (await b.receive()).closeFds();
      for (let i = 0; i < 2; i++) {
        const { buffer, meta } = await b.receiveBuffer();
        assert.equal(meta.toString(), `q${i}`);
        assert.equal(buffer.bytes.toString(), i === 0 ? 'first queued' : 'second queued');
        buffer.close();
      }
      await Promise.all([...fills, ...sent]);
      fs.closeSync(decoy);
      assert.equal(countFds(), before, 'the duplicates are closed once sent');
    } finally {
      a.close();
      b.close();
    }
  });
});
