// Channel methods that carry a SealedBuffer (one memfd per message, docs/protocol.md):
// plain functions over a Channel. They never touch Channel's prototype; the one
// place that puts them on the class is ./channel.ts.
import { type Channel } from '../channel/channel';
import { closeQuietly } from '../channel/channel-util';
import { receiveOwned } from '../channel/message';
import { closedError, invalidArgType, MemsealError, outOfRange } from '../kernel/errors';
import { toBytes } from '../kernel/validate';
import { openSealed, SealedBuffer } from './sealed';
import { verifyPolicy, type VerifyOptions } from './verify';

export function sendBuffer(channel: Channel, buf: SealedBuffer, meta: Uint8Array | ArrayBufferView | string = ''): Promise<void> {
  if (!(buf instanceof SealedBuffer)) return Promise.reject(invalidArgType('buf', 'an instance of SealedBuffer', buf));
  if (buf.closed) return Promise.reject(closedError('Channel.sendBuffer()', 'the SealedBuffer'));
  let payload: Uint8Array;
  try {
    payload = encodeMeta(meta);
  } catch (err) {
    return Promise.reject(err);
  }
  // send() gives a message that has to wait its own duplicate of the descriptor (F_DUPFD_CLOEXEC),
  // so `buf` may be closed, and its number reused, as soon as this returns.
  return channel.send(payload, [buf.fd]);
}

export async function receiveBuffer(channel: Channel, options?: VerifyOptions): Promise<{ buffer: SealedBuffer; meta: Buffer }> {
  verifyPolicy(options);
  const message = await channel[receiveOwned]();  // its descriptor is never untracked: adopted or closed below
  const fds = message.takeFds();
  if (fds.length !== 1) {
    for (const fd of fds) closeQuietly(fd);
    throw fds.length === 0
      ? new MemsealError('ERR_MEMSEAL_NOT_MEMFD', 'Channel.receiveBuffer(): the message carried no descriptor', {
        hint: 'the peer sent a plain message; use receive() for those' })
      : new MemsealError('ERR_MEMSEAL_CTRUNC',
        `Channel.receiveBuffer(): the message carried ${fds.length} descriptors, expected 1; all were closed`);
  }
  return { buffer: openSealed(fds[0]!, options, 'Channel.receiveBuffer()'), meta: decodeMeta(message.data) };
}

// The payload of a sendBuffer() message (docs/protocol.md): `meta` verbatim,
// except that an empty meta travels as one NUL byte, so a message with a
// descriptor is never empty (Go's ReadMsgUnix reads an empty one as EOF, and
// its WriteMsgUnix sends that same NUL byte for an empty payload). One NUL
// byte is therefore reserved and cannot be sent as meta.
const EMPTY_META = new Uint8Array(1);

function encodeMeta(meta: unknown): Uint8Array {
  const bytes = toBytes(meta);  // as Channel#send() reads data: a detached view is empty
  if (bytes.byteLength === 0) return EMPTY_META;
  if (bytes.byteLength === 1 && bytes[0] === 0) {
    throw outOfRange('meta', 'not a single NUL byte (on the wire it stands for an empty meta; docs/protocol.md)', '\\0');
  }
  return bytes;
}

function decodeMeta(payload: Buffer): Buffer {
  return payload.length === 1 && payload[0] === 0 ? payload.subarray(0, 0) : payload;
}
