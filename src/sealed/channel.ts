// Channel as the package exports it, assembled in this one file: the transport
// class (../channel/channel.ts: send, receive, fromFd, fromParent, …) plus the
// methods that carry a SealedBuffer (./transfer.ts). The transport imports
// nothing above it; the method modules never patch the class. Everything that
// calls sendBuffer()/receiveBuffer() imports Channel from here.
import { Channel } from '../channel/channel';
import { type SealedBuffer } from './sealed';
import { receiveBuffer, sendBuffer } from './transfer';
import { type VerifyOptions } from './verify';

declare module '../channel/channel' {
  interface Channel {
    /**
     * Sends a sealed buffer: one message carrying its memfd and `meta` (at most
     * MAX_PAYLOAD bytes; a string is sent as UTF-8). The receiver gets
     * its own descriptor of the same file; `buf` stays usable and may be closed
     * as soon as this returns: a send that has to wait for buffer space keeps a
     * duplicate of the descriptor (F_DUPFD_CLOEXEC) until it goes out. On the
     * wire an empty `meta` is one NUL byte, so the message is never empty
     * (docs/protocol.md); a `meta` of exactly one NUL byte is therefore refused.
     * @rejects TypeError if `buf` is not a SealedBuffer; RangeError for oversized
     *   meta or a meta of one NUL byte; MemsealError ERR_MEMSEAL_CLOSED if `buf`
     *   or the channel is closed; ERR_MEMSEAL_QUEUE_FULL when the send would wait
     *   and the queue is at its bound (nothing taken); EPIPE when the peer is gone
     */
    sendBuffer(buf: SealedBuffer, meta?: Uint8Array | ArrayBufferView | string): Promise<void>;

    /**
     * Receives the next message as a sealed buffer. The message must carry
     * exactly one descriptor, which is verified before anything is mapped (see
     * {@link verifySeals}): a memfd whose seals include `options.require`
     * (default SHRINK | GROW | WRITE) and whose size is within bounds. A message
     * that fails any check is consumed and every descriptor in it is closed.
     * @returns the buffer (owned by the caller: close it) and the sender's `meta` bytes
     * @rejects MemsealError ERR_MEMSEAL_NOT_MEMFD (no descriptor, or not a memfd),
     *   ERR_MEMSEAL_CTRUNC (more than one descriptor), ERR_MEMSEAL_NOT_SEALED,
     *   ERR_MEMSEAL_SIZE, ERR_MEMSEAL_CLOSED (the channel closed or the peer hung up);
     *   TypeError/RangeError for bad options (nothing received)
     */
    receiveBuffer(options?: VerifyOptions): Promise<{ buffer: SealedBuffer; meta: Buffer }>;
  }
}


// Defined like class methods: non-enumerable, writable, configurable.
Object.defineProperties(Channel.prototype, {
  sendBuffer: {
    value: function (this: Channel, buf: SealedBuffer, meta?: Uint8Array | ArrayBufferView | string) { return sendBuffer(this, buf, meta); },
    writable: true, configurable: true,
  },
  receiveBuffer: {
    value: function (this: Channel, options?: VerifyOptions) { return receiveBuffer(this, options); },
    writable: true, configurable: true,
  },
});

export { Channel };
