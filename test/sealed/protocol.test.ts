// The wire format of docs/protocol.md, checked byte for byte with raw
// send()/receive(): what sendBuffer() puts on the wire and what
// receiveBuffer() accepts from peers that are not memseal.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { memfdCreate, addSeals, type Channel, Seal, SealedBuffer, socketPair } from '../../src';
import { countFds } from '../helpers';

describe('protocol: sendBuffer()/receiveBuffer() payload', () => {
  let a: Channel;
  let b: Channel;
  let before = 0;
  beforeEach(() => {
    before = countFds();
    [a, b] = socketPair();
  });
  afterEach(() => {
    a.close();
    b.close();
    assert.equal(countFds(), before, 'descriptor count flat');
  });

  it('an empty meta goes out as one NUL byte: a message with a descriptor is never empty', async () => {
    using sb = SealedBuffer.from('x');
    await a.sendBuffer(sb);
    using m = await b.receive();
    assert.deepEqual([...m.data], [0]);
    assert.equal(m.fds.length, 1);
  });

  it('a non-empty meta goes out verbatim', async () => {
    using sb = SealedBuffer.from('x');
    await a.sendBuffer(sb, Buffer.from([0, 1, 2]));
    using m = await b.receive();
    assert.deepEqual([...m.data], [0, 1, 2]);
  });

  it('receiveBuffer() reads one NUL byte and an empty payload (older senders) both as empty meta', async () => {
    for (const payload of [Buffer.from([0]), Buffer.alloc(0)]) {
      using sb = SealedBuffer.from('abc');
      await a.send(payload, [sb.fd]);
      const { buffer, meta } = await b.receiveBuffer({ maxSize: 16 });
      assert.equal(meta.length, 0);
      assert.equal(buffer.bytes.toString(), 'abc');
      buffer.close();
    }
    using sb = SealedBuffer.from('abc');
    await a.send(Buffer.from([0, 0]), [sb.fd]);
    const { buffer, meta } = await b.receiveBuffer();
    assert.deepEqual([...meta], [0, 0], 'only a lone NUL byte is special');
    buffer.close();
  });

  it('refuses a meta of exactly one NUL byte before sending anything', async () => {
    using sb = SealedBuffer.from('x');
    await assert.rejects(a.sendBuffer(sb, '\0'), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    await assert.rejects(a.sendBuffer(sb, 42 as never), { code: 'ERR_INVALID_ARG_TYPE' });
    await a.send('marker');
    using m = await b.receive();
    assert.equal(m.data.toString(), 'marker', 'nothing was sent before it');
  });

  it('a detached Uint8Array meta is empty, as send() reads it (found by the fuzzer)', async () => {
    using sb = SealedBuffer.from('x');
    const meta = new Uint8Array(4);
    structuredClone(meta.buffer, { transfer: [meta.buffer] });
    await a.sendBuffer(sb, meta);
    using m = await b.receive();
    assert.deepEqual([...m.data], [0]);
  });

  it('a round trip keeps meta intact, including binary and UTF-8', async () => {
    for (const meta of ['', 'v1', 'héllo', Buffer.from([0xff, 0, 0xfe])]) {
      using sb = SealedBuffer.from('payload');
      await a.sendBuffer(sb, meta);
      const got = await b.receiveBuffer({ maxSize: 64 });
      assert.deepEqual(got.meta, Buffer.from(meta as string));
      got.buffer.close();
    }
  });

  it('a raw memfd sealed by hand is accepted the same way (what a foreign peer sends)', async () => {
    const fd = memfdCreate('foreign');
    fs.writeSync(fd, 'from elsewhere');
    addSeals(fd, Seal.SHRINK | Seal.GROW | Seal.WRITE);
    await a.send('\0', [fd]);
    fs.closeSync(fd);
    const { buffer, meta } = await b.receiveBuffer({ maxSize: 64 });
    assert.equal(meta.length, 0);
    assert.equal(buffer.bytes.toString(), 'from elsewhere');
    buffer.close();
  });
});
