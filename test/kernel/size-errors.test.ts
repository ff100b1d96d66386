// A refused size names the call the user made and the option that refused it.
import assert from 'node:assert/strict';
import { openSync } from 'node:fs';
import { DEFAULT_MAX_SIZE, SealedBuffer, socketPair } from '../../src';

describe('size refusals name the call and the option', () => {
  it('Channel.receiveBuffer() with a too-small maxSize', async () => {
    const [a, b] = socketPair();
    try {
      using sb = SealedBuffer.from(Buffer.alloc(8192, 1));
      await a.sendBuffer(sb);
      await assert.rejects(b.receiveBuffer({ maxSize: 4096 }), {
        code: 'ERR_MEMSEAL_SIZE',
        message: 'Channel.receiveBuffer(): size 8192 bytes exceeds maxSize (4096 bytes); accepted: 0..4096 bytes',
      });
    } finally {
      a.close();
      b.close();
    }
  });

  it('SealedBuffer.open() names minSize and exactSize', () => {
    const fromFd = () => {
      const sb = SealedBuffer.from('0123456789');
      const fd = openSync(`/proc/self/fd/${sb.fd}`, 'r');
      sb.close();
      return fd;
    };
    assert.throws(() => SealedBuffer.open(fromFd(), { minSize: 11 }),
      { message: `SealedBuffer.open(): size 10 bytes is below minSize (11 bytes); accepted: 11..${DEFAULT_MAX_SIZE} bytes` });
    assert.throws(() => SealedBuffer.open(fromFd(), { exactSize: 9, maxSize: 100 }),
      { message: 'SealedBuffer.open(): size 10 bytes is not exactSize (9 bytes); accepted: exactly 9 bytes' });
  });
});
