// Leak soak: runs each operation 10^5 times (MEMSEAL_SOAK_CYCLES to change) and
// checks that open descriptors, mappings and RSS are flat at the end.
// Not part of `npm test` (it takes ~30 s); run with `npm run test:soak`; CI runs it.
// Tolerances, per operation: descriptors exactly back where they were;
// /proc/self/maps within MAPS_SLACK lines (V8 maps and unmaps heap pages on its
// own); RSS growth over the second half of the cycles within RSS_SLACK_MIB (the
// first half lets V8's heap and malloc grow to their steady size). A leak of one
// descriptor, one mapping, or 512 bytes per cycle over 10^5 cycles fails.
'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const m = require('../..');

const CYCLES = Number(process.env.MEMSEAL_SOAK_CYCLES ?? 100000);
const MAPS_SLACK = 32;
const RSS_SLACK_MIB = 16;
const C = m.constants;
const PAGE = 4096;

/** Counts after the garbage collector and the finalizers and close callbacks it queued have run. */
async function snapshot() {
  for (let i = 0; i < 6; i++) {
    global.gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
  const maps = fs.readFileSync('/proc/self/maps', 'utf8').trimEnd().split('\n').length;
  const rss = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
  return { fds: fs.readdirSync('/proc/self/fd').length, maps, rss };
}

const ops = [];
const op = (name, n, fn) => ops.push({ name, n, fn });

op('memfdCreate + ftruncate + addSeals + getSeals + close', CYCLES, () => {
  const fd = m.memfdCreate('soak');
  fs.ftruncateSync(fd, PAGE);
  m.addSeals(fd, m.Seal.SHRINK | m.Seal.GROW | m.Seal.WRITE);
  m.getSeals(fd);
  fs.closeSync(fd);
});
op('mmap + bytes() + unmap', CYCLES, () => {
  const map = m.mmap(PAGE, C.PROT_READ | C.PROT_WRITE, C.MAP_PRIVATE);
  map.bytes()[0] = 1;
  map.unmap();
});
op('mmap, forgotten (GC finalizer unmaps)', CYCLES, () => {
  m.mmap(PAGE, C.PROT_READ | C.PROT_WRITE, C.MAP_PRIVATE).bytes()[0] = 1;
});
const payload = Buffer.alloc(PAGE, 7);
op('SealedBuffer.from + bytes + close', CYCLES, () => {
  const sb = m.SealedBuffer.from(payload);
  if (sb.bytes[0] !== 7) throw new Error('bytes');
  sb.close();
});
const source = m.SealedBuffer.from(payload);
// From DEFERRED_RELEASE_BYTES (1 MiB, src/mapping.ts) on, close() and unmap() hand the munmap and the
// final close(2) to the libuv thread pool: these two cover that path. Each cycle writes 1 MiB, so they
// run CYCLES / 50 times (still far more than MAPS_SLACK, and a leaked MiB per cycle is far over RSS_SLACK_MIB).
const BIG = 1 << 20;
const bigPayload = Buffer.alloc(BIG, 5);
op('SealedBuffer.from 1 MiB + bytes + close (released on the thread pool)', CYCLES / 50, () => {
  const sb = m.SealedBuffer.from(bigPayload);
  if (sb.bytes[0] !== 5 || sb.bytes[BIG - 1] !== 5) throw new Error('bytes');
  sb.close();
});
op('mmap 1 MiB + bytes() + unmap (unmapped on the thread pool)', CYCLES / 50, () => {
  const map = m.mmap(BIG, C.PROT_READ | C.PROT_WRITE, C.MAP_PRIVATE);
  const bytes = map.bytes();
  // every 16th page: faulting in all 256 while the pool unmaps the last cycle's costs ~5 ms a cycle
  for (let i = 0; i < BIG; i += 16 * PAGE) bytes[i] = 1;
  map.unmap();
});
op('SealedBuffer.open (verify, map) + close', CYCLES, () => {
  const sb = m.SealedBuffer.open(fs.openSync(`/proc/self/fd/${source.fd}`, 'r'), { exactSize: PAGE });
  if (sb.bytes[PAGE - 1] !== 7) throw new Error('bytes');
  sb.close();
});
op('SealedBuffer.open refusing an unsealed memfd', CYCLES, () => {
  const fd = m.memfdCreate('soak-unsealed');
  try {
    m.SealedBuffer.open(fd);
  } catch (err) {
    if (err.code !== 'ERR_MEMSEAL_NOT_SEALED') throw err;
    return;
  }
  throw new Error('accepted an unsealed memfd');
});
const [a, b] = m.socketPair();
op('Channel sendBuffer + receiveBuffer + close', CYCLES, async () => {
  const sent = a.sendBuffer(source, 'meta');
  const { buffer } = await b.receiveBuffer({ exactSize: PAGE });
  await sent;
  if (buffer.bytes[0] !== 7) throw new Error('bytes');
  buffer.close();
});
op('Channel send + receive of 3 fds, closed by Message dispose', CYCLES, async () => {
  const sent = a.send('x', [source.fd, source.fd, source.fd]);
  const msg = await b.receive();
  await sent;
  msg.closeFds();
});
op('Channel refusing a message with 2 fds (receiveBuffer)', CYCLES, async () => {
  const sent = a.send('x', [source.fd, source.fd]);
  try {
    await b.receiveBuffer();
  } catch (err) {
    if (err.code !== 'ERR_MEMSEAL_CTRUNC') throw err;
    await sent;
    return;
  }
  throw new Error('accepted two fds');
});
op('socketPair + close', CYCLES / 2, () => {
  const [x, y] = m.socketPair();
  x.close();
  y.close();
});
op('WriteOnceArena new + allocString + seal({ mseal: false }) + destroy', CYCLES, () => {
  const arena = new m.WriteOnceArena(PAGE);
  arena.allocString('config');
  arena.seal({ mseal: false });
  arena.destroy();
});
if (m.features.memfdSecret) {
  op('SecretBuffer.alloc + wipe + dispose', CYCLES / 4, () => {
    const s = m.SecretBuffer.alloc(32);
    s.bytes.fill(9);
    s.wipe();
    s.dispose();
  });
} else {
  console.log('(SecretBuffer secretmem cycle skipped: features.memfdSecret is false on this kernel)');
}
op('SecretBuffer mlock fallback alloc + dispose', CYCLES / 4, () => {
  m.SecretBuffer.alloc(32, { kind: 'mlock' }).dispose();
});
op('verifySeals on a sealed memfd', CYCLES, () => {
  if (!m.verifySeals(source.fd).ok) throw new Error('verify');
});
const cleanups = [];
if (m.features.futureWrite) {
  // Publisher/Subscriber: a stream through one pool, and whole attach/detach cycles
  const pool = m.Publisher.create({ slotSize: PAGE, name: 'soak-pool' });  // slots derived: 8 subscribers × quota 2 + 1 + 1
  const [pa, sa] = m.socketPair();
  let streamSub = null;
  op('Publisher publish + Subscriber receive + copy + release', CYCLES, async () => {
    if (streamSub === null) {
      // Attached when the stream starts, both ends at once: a subscriber that leaves HELLO unanswered for
      // idleTimeout (10 s, while the ops before this one run) is detached as idle, as it should be.
      const attached = pool.attach(pa);
      streamSub = await m.Subscriber.attach(sa);
      await attached;
    }
    await pool.publish(payload, 'meta');
    const s = await streamSub.receive();
    if (s.copy()[0] !== 7) throw new Error('bytes');
    s.release();
  });
  op('Subscriber attach (verify, map) + first sample + close', CYCLES / 10, async () => {
    const [x, y] = m.socketPair();
    pool.attach(x);
    const sub = await m.Subscriber.attach(y);
    (await sub.receive()).release();
    sub.close();
  });
  // closed when the run ends ('beforeExit' would never come: the pool's channels keep the loop alive)
  cleanups.push(() => { streamSub?.close(); pool.close(); pa.close(); sa.close(); });
} else {
  console.log('(Publisher/Subscriber cycles skipped: features.futureWrite is false on this kernel)');
}
op('inspect(process.pid)', Math.max(1, CYCLES / 500), () => {
  m.inspect(process.pid);
});

async function main() {
  const rows = [];
  const started = Date.now();
  for (const { name, n, fn } of ops) {
    // warm-up: JIT, caches and the allocators' pools reach their steady state
    for (let i = 0; i < Math.max(1000, n / 4); i++) await fn();
    const before = await snapshot();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n / 2; i++) await fn();
    const mid = await snapshot();
    for (let i = 0; i < n / 2; i++) await fn();
    const us = Number(process.hrtime.bigint() - t0) / n / 1000;
    const after = await snapshot();
    // descriptors and mappings over the whole run; RSS over the second half, once
    // the heap and malloc have grown to what this operation needs
    const row = { name, cycles: n, us, fds: after.fds - before.fds, maps: after.maps - before.maps,
      rssMiB: (after.rss - mid.rss) / 2 ** 20 };
    rows.push(row);
    console.log(`${name}: ${n} cycles, ${us.toFixed(1)} µs each; fds ${row.fds >= 0 ? '+' : ''}${row.fds}, ` +
      `maps ${row.maps >= 0 ? '+' : ''}${row.maps}, RSS ${row.rssMiB >= 0 ? '+' : ''}${row.rssMiB.toFixed(1)} MiB (2nd half)`);
  }
  a.close();
  b.close();
  source.close();
  for (const cleanup of cleanups) cleanup();
  const failures = rows.filter((r) => r.fds !== 0 || Math.abs(r.maps) > MAPS_SLACK || r.rssMiB > RSS_SLACK_MIB);
  const total = rows.reduce((s, r) => s + r.cycles, 0);
  console.log(`soak: ${rows.length} operations, ${total} cycles in ${((Date.now() - started) / 1000).toFixed(1)} s; ` +
    `tolerances: fds exact, maps ±${MAPS_SLACK}, RSS +${RSS_SLACK_MIB} MiB over the second half`);
  assert.deepEqual(failures, [], 'resource counts not flat');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
