// A Wayland client's shared-memory pool from a SealedBuffer: the compositor maps a wl_shm pool
// writable and shared, so the buffer carries the seals it accepts (SHRINK | GROW | SEAL) rather than
// the default WRITE. Speaks just enough of the Wayland wire protocol (wayland.xml) over a stream
// Channel: get the registry, bind wl_shm, create a pool from the memfd, and sync.
// Run (inside a Wayland session, or beside `weston --backend=headless-backend.so`):
//   npx tsx examples/wayland-shm.ts
import path from 'node:path';
import { type Channel, connect, Seal, SealedBuffer } from '../src';

/** One request: object id, then size << 16 | opcode, then the arguments as 32-bit words (strings padded). */
function request(object: number, opcode: number, ...args: (number | string)[]): Buffer {
  const words: Buffer[] = args.map((a) => {
    if (typeof a === 'number') { const b = Buffer.alloc(4); b.writeUInt32LE(a >>> 0); return b; }
    const text = Buffer.from(`${a}\0`);
    const b = Buffer.alloc(4 + Math.ceil(text.length / 4) * 4);
    b.writeUInt32LE(text.length);
    text.copy(b, 4);
    return b;
  });
  const body = Buffer.concat(words);
  const head = Buffer.alloc(8);
  head.writeUInt32LE(object);
  head.writeUInt32LE(((8 + body.length) << 16) | opcode, 4);
  return Buffer.concat([head, body]);
}

/** Events as they arrive, split by their own size fields (a read may hold several, or part of one). */
async function* events(ch: Channel): AsyncGenerator<{ object: number; opcode: number; body: Buffer }> {
  let pending = Buffer.alloc(0);
  for await (const m of ch) {
    m.closeFds();   // no event this client asks for carries a descriptor
    pending = Buffer.concat([pending, m.data]);
    while (pending.length >= 8 && pending.length >= pending.readUInt32LE(4) >>> 16) {
      const size = pending.readUInt32LE(4) >>> 16;
      yield { object: pending.readUInt32LE(0), opcode: pending.readUInt32LE(4) & 0xffff, body: pending.subarray(8, size) };
      pending = pending.subarray(size);
    }
  }
}

function string(body: Buffer, at: number): string {
  const len = body.readUInt32LE(at);
  return body.subarray(at + 4, at + 4 + len - 1).toString();
}

/**
 * Offers `pool` to the compositor at `socketPath` as a wl_shm pool.
 * @returns 'accepted', or the compositor's protocol error ("wl_shm error 2: failed mmap fd …")
 */
export async function offerPool(socketPath: string, pool: SealedBuffer): Promise<string> {
  const ch = await connect(socketPath, { type: 'stream' });
  try {
    // New object ids are the client's, handed out in order from 2.
    const DISPLAY = 1; const REGISTRY = 2; const LISTED = 3; const SHM = 4; const POOL = 5; const HANDLED = 6;
    await ch.send(request(DISPLAY, 1, REGISTRY));   // wl_display.get_registry
    await ch.send(request(DISPLAY, 0, LISTED));     // wl_display.sync: every global has been announced once it is done
    let shm: number | null = null;
    for await (const e of events(ch)) {
      if (e.object === DISPLAY && e.opcode === 0) {   // wl_display.error(object, code, message)
        return `error ${e.body.readUInt32LE(4)} on object ${e.body.readUInt32LE(0)}: ${string(e.body, 8)}`;
      }
      if (e.object === REGISTRY && e.opcode === 0 && string(e.body, 4) === 'wl_shm') shm = e.body.readUInt32LE(0);  // wl_registry.global
      if (e.object === LISTED && e.opcode === 0) {    // wl_callback.done
        if (shm === null) return 'the compositor has no wl_shm';
        // One write: a compositor that refuses the pool hangs up at once, and a later write would meet EPIPE.
        // The fd travels beside the bytes; the compositor hands it to the first request that takes one.
        await ch.send(Buffer.concat([
          request(REGISTRY, 0, shm, 'wl_shm', 1, SHM),   // wl_registry.bind
          request(SHM, 0, POOL, pool.size),              // wl_shm.create_pool(id, fd, size)
          request(DISPLAY, 0, HANDLED),                  // wl_display.sync
        ]), [pool.fd]);
      }
      if (e.object === HANDLED && e.opcode === 0) return 'accepted';   // the pool request was handled without an error
    }
    return 'the compositor hung up';
  } finally {
    ch.close();
  }
}

if (require.main === module) {
  const runtime = process.env.XDG_RUNTIME_DIR ?? `/run/user/${process.getuid!()}`;
  const socketPath = path.join(runtime, process.env.WAYLAND_DISPLAY ?? 'wayland-0');
  (async () => {
    using pool = SealedBuffer.from(new Uint8Array(64 * 64 * 4), { seals: Seal.SHRINK | Seal.GROW | Seal.SEAL, name: 'wl_shm pool' });
    console.log(`SHRINK|GROW|SEAL pool: ${await offerPool(socketPath, pool)}`);
    using sealed = SealedBuffer.from(new Uint8Array(64 * 64 * 4), { name: 'wl_shm pool' });
    console.log(`default seals (WRITE): ${await offerPool(socketPath, sealed)}`);
  })().catch((err) => { console.error(err); process.exit(1); });
}
