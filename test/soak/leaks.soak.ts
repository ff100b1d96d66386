// Leak soak: 10^5 cycles of each operation, then the open-descriptor count must
// be back where it was, the number of mappings in /proc/self/maps within
// MAPS_TOLERANCE of it, and RSS within RSS_TOLERANCE. Baselines are taken after
// a warm-up (V8 and libuv settle their own allocations first).
//   npm run test:soak          (about 30 s; MEMSEAL_SOAK_CYCLES=N to change the count)
import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import * as memseal from '../../src';
import { addSeals, constants as C, getSeals, memfdCreate, mmap, SealedBuffer, socketPair, DEFAULT_SEALS } from '../../src';
import { collectGarbage, countMappings } from '../helpers';

const CYCLES = Number(process.env.MEMSEAL_SOAK_CYCLES ?? 100_000);
const WARMUP = Math.max(1000, Math.floor(CYCLES / 20));
/**
 * All VMAs: V8 grows its heap in separately mapped pages, so the total may drift by
 * a few dozen; a leak of ours would be thousands. memfd-backed VMAs (always ours) must match exactly.
 */
const MAPS_TOLERANCE = 64;
/** RSS: allocator and JIT noise; a leaked page per cycle would be 400 MiB. */
const RSS_TOLERANCE = 48 * 1024 * 1024;

function rss(): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  assert.ok(m);
  return Number(m[1]) * 1024;
}

/** Descriptors, less tsx's own (its cache directory and esbuild pipes come and go on their own). */
function ourFds(): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    let what = '?';
    try { what = readlinkSync(`/proc/self/fd/${fd}`); } catch { /* readdir's own */ }
    if (!what.startsWith('/tmp/tsx-') && !what.startsWith('pipe:')) n++;
  }
  return n;
}

function memfdMappings(): number {
  return readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('/memfd:')).length;
}

interface Snapshot { fds: number; maps: number; memfdMaps: number; rss: number }
async function snapshot(): Promise<Snapshot> {
  // finalizers of external ArrayBuffers run on later turns of the loop: give them time
  await collectGarbage(20);
  await new Promise((resolve) => setTimeout(resolve, 50));
  await collectGarbage(6);
  return { fds: ourFds(), maps: countMappings(), memfdMaps: memfdMappings(), rss: rss() };
}

/** Runs `op` WARMUP times, takes the baseline, runs it CYCLES times, and checks nothing grew. */
async function soak(name: string, op: (i: number) => void | Promise<void>, batch = 1): Promise<void> {
  const run = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i += batch) {
      const r = op(i);
      if (r instanceof Promise) await r;
      if (i % 5000 < batch) await new Promise((resolve) => setImmediate(resolve)); // let finalizers and libuv run
    }
  };
  await run(WARMUP);
  const before = await snapshot();
  const t0 = process.hrtime.bigint();
  await run(CYCLES);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const after = await snapshot();
  console.log(`      ${name}: ${CYCLES} cycles in ${ms.toFixed(0)} ms; fds ${before.fds} -> ${after.fds}, ` +
    `maps ${before.maps} -> ${after.maps} (memfd ${before.memfdMaps} -> ${after.memfdMaps}), rss ${(before.rss / 2 ** 20).toFixed(1)} -> ${(after.rss / 2 ** 20).toFixed(1)} MiB`);
  assert.equal(after.fds, before.fds, `${name}: descriptors leaked`);
  assert.equal(after.memfdMaps, before.memfdMaps, `${name}: memfd mappings leaked`);
  assert.ok(after.maps - before.maps <= MAPS_TOLERANCE, `${name}: mappings grew by ${after.maps - before.maps}`);
  assert.ok(after.rss - before.rss <= RSS_TOLERANCE, `${name}: RSS grew by ${((after.rss - before.rss) / 2 ** 20).toFixed(1)} MiB`);
}

describe(`soak: ${CYCLES} cycles per operation`, function () {
  this.timeout(300000);

  it('memfdCreate + ftruncate + addSeals + getSeals + close', async () => {
    await soak('memfd', () => {
      const fd = memfdCreate('soak');
      ftruncateSync(fd, 4096);
      addSeals(fd, DEFAULT_SEALS);
      getSeals(fd);
      closeSync(fd);
    });
  });

  it('mmap + write through a view + unmap (anonymous and memfd-backed)', async () => {
    const fd = memfdCreate('soak-map');
    ftruncateSync(fd, 65536);
    try {
      await soak('mmap', (i) => {
        const m = i % 2 === 0
          ? mmap(65536, C.PROT_READ | C.PROT_WRITE, C.MAP_PRIVATE)
          : mmap(65536, C.PROT_READ | C.PROT_WRITE, C.MAP_SHARED, fd);
        m.bytes(0, 8).writeUInt32LE(i);
        m.unmap();
      });
    } finally {
      closeSync(fd);
    }
  });

  it('forgotten mappings are reclaimed by the GC finalizer', async () => {
    // memfd-backed, so that every one of them is countable in /proc/self/maps
    const fd = memfdCreate('soak-finalizer');
    ftruncateSync(fd, 16384);
    try {
      await soak('mmap (finalizer)', () => {
        mmap(16384, C.PROT_READ | C.PROT_WRITE, C.MAP_SHARED, fd).bytes(0, 4)[0] = 1;
      });
    } finally {
      closeSync(fd);
    }
  });

  it('SealedBuffer.from + bytes + close', async () => {
    const payload = Buffer.alloc(8192, 7);
    await soak('SealedBuffer.from', () => {
      const b = SealedBuffer.from(payload);
      assert.equal(b.bytes[8191], 7);
      b.close();
    });
  });

  it('SealedBuffer.open (verify, map, close), including rejected descriptors', async () => {
    await soak('SealedBuffer.open', (i) => {
      const fd = memfdCreate('soak-open');
      ftruncateSync(fd, 4096);
      if (i % 4 !== 0) addSeals(fd, DEFAULT_SEALS);
      try {
        const b = SealedBuffer.open(fd);
        void b.bytes;
        b.close();
      } catch (err) {
        assert.equal((err as { code?: string }).code, 'ERR_MEMSEAL_NOT_SEALED'); // open() closed fd
      }
    });
  });

  it('Channel send + receive of one fd per message (the receiver closes what it gets)', async () => {
    const [a, b] = socketPair();
    const fd = memfdCreate('soak-pass');
    try {
      const BATCH = 64;
      await soak('Channel fd passing', async () => {
        const sends: Promise<void>[] = [];
        for (let k = 0; k < BATCH; k++) sends.push(a.send('fd', [fd]));
        for (let k = 0; k < BATCH; k++) {
          const m = await b.receive();
          for (const got of m.fds) closeSync(got);
        }
        await Promise.all(sends);
      }, BATCH);
    } finally {
      a.close();
      b.close();
      closeSync(fd);
    }
  });

  it('socketPair + close (poll handles released)', async () => {
    await soak('socketPair', async (i) => {
      const [a, b] = socketPair();
      if (i % 2 === 0) await a.send('x');
      a.close();
      b.close();
    });
  });

  it('Channel.sendBuffer + receiveBuffer', async function () {
    const proto = memseal.Channel.prototype as unknown as Record<string, unknown>;
    if (typeof proto.sendBuffer !== 'function' || typeof proto.receiveBuffer !== 'function') {
      console.log('      (skipped: Channel.sendBuffer/receiveBuffer are not in this build)');
      this.skip();
    }
    const [a, b] = socketPair();
    const sb = SealedBuffer.from('soak payload');
    type WithBuffers = { sendBuffer(buf: SealedBuffer, meta?: string): Promise<void>; receiveBuffer(): Promise<{ buffer: SealedBuffer; meta: Buffer }> };
    try {
      await soak('sendBuffer/receiveBuffer', async () => {
        const sent = (a as unknown as WithBuffers).sendBuffer(sb, 'm');
        const { buffer } = await (b as unknown as WithBuffers).receiveBuffer();
        assert.equal(buffer.size, sb.size);
        buffer.close();
        await sent;
      });
    } finally {
      sb.close();
      a.close();
      b.close();
    }
  });

  it('WriteOnceArena: alloc, seal (mprotect), destroy', async function () {
    const Arena = (memseal as Record<string, unknown>).WriteOnceArena as
      (new (capacity: number) => { alloc(n: number): Buffer; seal(o?: { mseal?: boolean }): void; destroy(): void }) | undefined;
    if (typeof Arena !== 'function') {
      console.log('      (skipped: WriteOnceArena is not in this build)');
      this.skip();
    }
    await soak('WriteOnceArena', () => {
      const arena = new Arena(16384);
      arena.alloc(64).fill(1);
      arena.seal({ mseal: false }); // mseal'd arenas live until exit by design
      arena.destroy();
    });
  });

  it('SecretBuffer: alloc, write, dispose', async function () {
    const SB = (memseal as Record<string, unknown>).SecretBuffer as
      { alloc(n: number, o?: { fallback?: 'mlock' }): { bytes: Buffer; dispose(): void } } | undefined;
    if (SB === undefined) {
      console.log('      (skipped: SecretBuffer is not in this build)');
      this.skip();
    }
    await soak('SecretBuffer', () => {
      const s = SB.alloc(64, { fallback: 'mlock' });
      s.bytes.fill(9);
      s.dispose();
    });
  });
});
