// SecretBuffer (src/memory/secret.ts): memfd_secret pages outside the kernel's
// direct map, and the mlock fallback.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, ftruncateSync, openSync, readSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { inspect } from 'node:util';
import { Worker } from 'node:worker_threads';
import { native } from '../../src/kernel/binding';
import { constants as C, features, type Mapping, memfdCreate, MemsealError, mmap, SecretBuffer, type SecretKind } from '../../src';
import { regionHandle } from '../../src/kernel/mapping';
import { collectGarbage, countFds, FIXTURES, mapsLineFor, releasedAt, runFixture, skipUnless, smapsFor, unmappedSince } from '../helpers';

const PAGE = native.pageSize();
const SYS_MEMFD_SECRET = 447; // x86_64 and aarch64
const NEED_SECRETMEM = 'memfd_secret(2) needs Linux ≥ 5.14, enabled (default since 6.5)';

let secrets: SecretBuffer[] = [];
function secret(size: number, options?: Parameters<typeof SecretBuffer.alloc>[1]): SecretBuffer {
  const s = SecretBuffer.alloc(size, options);
  secrets.push(s);
  return s;
}
afterEach(() => {
  for (const s of secrets) s.dispose();
  secrets = [];
});

/** pread(2) of /proc/self/mem at `address`: the bytes, or the error code. */
function readProcMem(address: bigint, length: number): Buffer | string {
  const fd = openSync('/proc/self/mem', 'r');
  try {
    const out = Buffer.alloc(length);
    readSync(fd, out, 0, length, Number(address));
    return out;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err);
  } finally {
    closeSync(fd);
  }
}

function sum(b: Uint8Array): number {
  return b.reduce((a, x) => a + x, 0);
}

describe('SecretBuffer.alloc()', () => {
  it('maps memfd_secret pages: shared, locked, undumpable, not inherited by fork, and keeps no descriptor', function () {
    skipUnless(this, features.memfdSecret, NEED_SECRETMEM);
    const fds = countFds();
    const s = secret(100);
    assert.equal(s.kind, 'secretmem');
    assert.equal(s.size, 100);
    assert.equal(s.bytes.length, 100);
    assert.equal(sum(s.bytes), 0, 'zero-filled');
    assert.equal(countFds(), fds, 'the memfd is closed once mapped');
    assert.match(mapsLineFor(s.address) ?? '', /^\S+ rw-s .*\/secretmem \(deleted\)$/);
    const flags = smapsFor(s.address)?.flags ?? [];
    for (const f of ['lo', 'dd', 'dc']) assert.ok(flags.includes(f), `VmFlags has ${f}: ${flags.join(' ')}`);
    s.bytes.write('correct horse battery staple');
    assert.equal(s.bytes.subarray(0, 28).toString(), 'correct horse battery staple');
  });

  it('its pages are out of the kernel direct map: /proc/self/mem reads fail with EIO, while an ordinary mapping reads back', function () {
    skipUnless(this, features.memfdSecret, NEED_SECRETMEM);
    const s = secret(64);
    s.bytes.fill(0x5a);
    const ordinary = mmap(PAGE, C.PROT_READ | C.PROT_WRITE, C.MAP_PRIVATE);
    try {
      ordinary.bytes().fill(0x5a);
      const plain = readProcMem(ordinary.address, 64);
      assert.ok(Buffer.isBuffer(plain), `ordinary mapping: ${String(plain)}`);
      assert.equal(sum(plain), 64 * 0x5a);
      assert.equal(readProcMem(s.address, 64), 'EIO');
    } finally {
      ordinary.unmap();
    }
  });

  it('{ kind: \'mlock\' }: locked, undumpable, wipe-on-fork anonymous memory, which /proc/self/mem CAN read', () => {
    const s = secret(PAGE + 1, { kind: 'mlock' });
    assert.equal(s.kind, 'mlock');
    assert.equal(s.bytes.length, PAGE + 1);
    assert.match(mapsLineFor(s.address) ?? '', /^\S+ rw-p /);
    const smaps = smapsFor(s.address);
    for (const f of ['lo', 'dd', 'wf']) assert.ok(smaps?.flags.includes(f), `VmFlags has ${f}: ${smaps?.flags.join(' ')}`);
    assert.equal(smaps?.lockedKb, (2 * PAGE) / 1024, 'both pages are locked');
    s.bytes.fill(7);
    const seen = readProcMem(s.address, 16);
    assert.ok(Buffer.isBuffer(seen) && sum(seen) === 16 * 7, 'the fallback does not hide from /proc/<pid>/mem');
  });

  it('rejects bad sizes and options before any syscall', () => {
    const fds = countFds();
    for (const bad of [0, -1, 1.5, Number.MAX_SAFE_INTEGER]) {
      assert.throws(() => SecretBuffer.alloc(bad), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }, String(bad));
    }
    assert.throws(() => SecretBuffer.alloc('32' as unknown as number), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => SecretBuffer.alloc(32, { fallback: 'swap' as 'mlock' }), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => SecretBuffer.alloc(32, { kind: 'heap' as SecretKind }), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => SecretBuffer.alloc(32, 'mlock' as unknown as object), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.equal(countFds(), fds);
  });

  it('the constructor is not public, and inspecting one never shows the bytes', () => {
    const s = secret(8, { kind: 'mlock' });
    s.bytes.write('hunter2!');
    const Ctor = SecretBuffer as unknown as new (...a: unknown[]) => SecretBuffer;
    assert.throws(() => new Ctor(Symbol('x')), { name: 'TypeError' });
    assert.equal(inspect(s), "SecretBuffer { size: 8, kind: 'mlock' }");
    assert.doesNotMatch(inspect(s, { showHidden: true }), /hunter2/);
  });
});

describe('SecretBuffer#wipe() / dispose()', () => {
  for (const kind of ['secretmem', 'mlock'] as const) {
    it(`wipe() zeroes every byte and keeps the buffer usable (${kind})`, function () {
      if (kind === 'secretmem') skipUnless(this, features.memfdSecret, NEED_SECRETMEM);
      const s = secret(100, { kind });
      s.bytes.fill(0xff);
      s.wipe();
      assert.equal(sum(s.bytes), 0);
      s.bytes[0] = 1;
      assert.equal(s.bytes[0], 1);
    });

    it(`dispose() unmaps, detaches every view, and is idempotent (${kind})`, function () {
      if (kind === 'secretmem') skipUnless(this, features.memfdSecret, NEED_SECRETMEM);
      const s = SecretBuffer.alloc(100, { kind });
      const view = s.bytes;
      const sub = view.subarray(10, 20);
      view.fill(1);
      s.dispose();
      s.dispose();
      s.close();
      assert.equal(s.closed, true);
      assert.equal(view.length, 0);
      assert.equal(sub.length, 0);
      assert.ok(releasedAt(s.address));
      assert.throws(() => s.bytes, (e: unknown) => e instanceof MemsealError && e.code === 'ERR_MEMSEAL_CLOSED');
      assert.throws(() => s.wipe(), { code: 'ERR_MEMSEAL_CLOSED' });
      assert.equal(inspect(s), `SecretBuffer { size: 100, kind: '${kind}', closed: true }`);
    });
  }

  it('[Symbol.dispose]() disposes', () => {
    const s = SecretBuffer.alloc(8, { kind: 'mlock' });
    s[Symbol.dispose]();
    assert.equal(s.closed, true);
    assert.ok(releasedAt(s.address));
  });

  it('a forgotten SecretBuffer is unmapped by the garbage collector, but not while a view of its bytes lives', async () => {
    const kind: SecretKind = features.memfdSecret ? 'secretmem' : 'mlock';
    const forgotten = (() => {
      const address = SecretBuffer.alloc(32, { kind }).address;
      return { address, line: mapsLineFor(address) };
    })();
    const held = (() => {
      const s = SecretBuffer.alloc(32, { kind });
      s.bytes.fill(3);
      return { view: s.bytes as Buffer | null, address: s.address, line: mapsLineFor(s.address) };
    })();
    await collectGarbage();
    assert.ok(unmappedSince(forgotten.address, forgotten.line));
    assert.equal(sum(held.view as Buffer), 32 * 3, 'the key someone still holds is intact');
    assert.equal(mapsLineFor(held.address), held.line);
    held.view = null;
    await collectGarbage();
    assert.ok(unmappedSince(held.address, held.line));
  });

  for (const kind of ['secretmem', 'mlock'] as const) {
    it(`at exit every live buffer is zeroed, also one only a view still reaches (${kind})`, function () {
      if (kind === 'secretmem') skipUnless(this, features.memfdSecret, NEED_SECRETMEM);
      const r = runFixture('secret-exit.js', [kind]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, `before ${64 * 0x5a} ${64 * 0xa5}\nat exit 0 0 64 64\n`);
    });
  }
});

describe('SecretBuffer in worker threads', () => {
  it('a worker\'s exit wipes its own secrets, not the main thread\'s', async () => {
    const mine = secret(64, { kind: features.memfdSecret ? 'secretmem' : 'mlock' });
    mine.bytes.fill(9);
    const worker = new Worker(`
      const { parentPort } = require('node:worker_threads');
      const { SecretBuffer } = require(${JSON.stringify(path.join(__dirname, '..', '..'))});
      const theirs = SecretBuffer.alloc(64, { kind: 'mlock' });
      theirs.bytes.fill(5);
      parentPort.postMessage(theirs.bytes.reduce((a, x) => a + x, 0));`, { eval: true });
    // listen for 'exit' first: a worker that ends right after postMessage has its message
    // drained and 'exit' emitted in one go, before a later once(worker, 'exit') is listening
    const exited = once(worker, 'exit');
    const [sumInWorker] = await once(worker, 'message');
    await exited;
    assert.equal(sumInWorker, 64 * 5);
    assert.equal(sum(mine.bytes), 64 * 9);
  });
});

describe('wipe-on-release regions (what dispose() and the GC net rely on)', () => {
  // A memfd mapped twice: the region under test, and a second window on the
  // same pages that outlives it and shows what was left behind.
  function twoViews(): { region: Mapping; witness: Mapping; fd: number } {
    const fd = memfdCreate('wipe-test');
    ftruncateSync(fd, PAGE);
    const region = mmap(PAGE, C.PROT_READ | C.PROT_WRITE, C.MAP_SHARED, fd);
    const witness = mmap(PAGE, C.PROT_READ, C.MAP_SHARED, fd);
    assert.equal(native.wipeOnRelease(regionHandle(region)), 0);
    region.bytes().fill(0x77);
    assert.equal(sum(witness.bytes()), PAGE * 0x77);
    return { region, witness, fd };
  }

  it('munmap (dispose) zeroes the pages before they go', () => {
    const { region, witness, fd } = twoViews();
    region.unmap();
    assert.equal(sum(witness.bytes()), 0);
    witness.unmap();
    closeSync(fd);
  });

  it('the garbage collector zeroes them when the last reference goes', async () => {
    let t: ReturnType<typeof twoViews> | null = twoViews();
    const { witness, fd } = t;
    t = null;
    await collectGarbage();
    assert.equal(sum(witness.bytes()), 0);
    witness.unmap();
    closeSync(fd);
  });

  it('an unmarked region is left as it was (the witness can tell)', () => {
    const fd = memfdCreate('wipe-test');
    ftruncateSync(fd, PAGE);
    const region = mmap(PAGE, C.PROT_READ | C.PROT_WRITE, C.MAP_SHARED, fd);
    const witness = mmap(PAGE, C.PROT_READ, C.MAP_SHARED, fd);
    region.bytes().fill(1);
    region.unmap();
    assert.equal(sum(witness.bytes()), PAGE);
    witness.unmap();
    closeSync(fd);
  });
});

describe('SecretBuffer where memfd_secret is unavailable', () => {
  // A seccomp filter makes memfd_secret fail in the child: ENOSYS as on a
  // kernel without it (or with secretmem disabled), EPERM as under a
  // container runtime's default seccomp profile.
  const probe = `
    const { SecretBuffer, features } = require(${JSON.stringify(path.join(__dirname, '..', '..'))});
    const out = { feature: features.memfdSecret };
    try { SecretBuffer.alloc(32); } catch (e) { out.error = { name: e.name, code: e.code, message: e.message, hint: e.hint, cause: e.cause && e.cause.code }; }
    const s = SecretBuffer.alloc(32, { fallback: 'mlock' });
    s.bytes.fill(1);
    out.fallbackKind = s.kind;
    s.dispose();
    console.log(JSON.stringify(out));`;

  for (const errno of ['ENOSYS', 'EPERM'] as const) {
    it(`${errno}: throws ERR_MEMSEAL_UNSUPPORTED with a hint, and { fallback: 'mlock' } gives kind 'mlock'`, () => {
      const r = spawnSync('perl', [path.join(FIXTURES, 'deny-syscall.pl'), String(SYS_MEMFD_SECRET),
        String(osConstants.errno[errno]), process.execPath, '-e', probe], { encoding: 'utf8', timeout: 20000 });
      assert.equal(r.status, 0, `child ended with ${r.signal ?? r.status}: ${r.stderr}`);
      const out = JSON.parse(r.stdout);
      assert.equal(out.feature, false);
      assert.equal(out.error?.name, 'MemsealError');
      assert.equal(out.error?.code, 'ERR_MEMSEAL_UNSUPPORTED');
      assert.equal(out.error?.cause, errno);
      assert.match(out.error?.hint, errno === 'ENOSYS' ? /Linux ≥ 5\.14.*secretmem\.enable=1/ : /seccomp/);
      assert.match(out.error?.hint, /fallback: 'mlock'/);
      assert.equal(out.fallbackKind, 'mlock');
    });
  }
});

describe('SecretBuffer and RLIMIT_MEMLOCK', () => {
  // Root has CAP_IPC_LOCK, which lifts the limit: the child runs without it
  // (setpriv drops it from the bounding set, so exec does not grant it).
  function underLimit(limit: number, kind: SecretKind): { allocated: number; kinds: string[];
    error: { name: string; code: string; syscall: string; message: string; hint: string } | null } {
    const r = spawnSync('prlimit', [`--memlock=${limit}:${limit}`, 'setpriv', '--inh-caps=-all', '--bounding-set=-ipc_lock',
      process.execPath, path.join(FIXTURES, 'secret-rlimit.js'), kind], { encoding: 'utf8', timeout: 20000 });
    assert.equal(r.status, 0, `child ended with ${r.signal ?? r.status}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  }

  it('memfd_secret pages are charged to it: the third page under an 8 KiB limit fails with EAGAIN and a hint', function () {
    skipUnless(this, features.memfdSecret, NEED_SECRETMEM);
    const r = underLimit(2 * PAGE, 'secretmem');
    assert.equal(r.allocated, 2);
    assert.deepEqual(r.kinds, ['secretmem', 'secretmem']);
    assert.equal(r.error?.code, 'EAGAIN');
    assert.equal(r.error?.syscall, 'mmap');
    assert.match(r.error?.message ?? '', new RegExp(`^EAGAIN: .*, mmap\\(secretmem, RLIMIT_MEMLOCK ${2 * PAGE} bytes\\)$`));
    assert.match(r.error?.hint ?? '', new RegExp(`RLIMIT_MEMLOCK \\(ulimit -l\\), which is ${2 * PAGE} bytes; ${2 * PAGE} bytes are locked already`));
  });

  it('the mlock fallback fails with ENOMEM at the limit, and EPERM when it is 0, both naming the limit', () => {
    const r = underLimit(2 * PAGE, 'mlock');
    assert.equal(r.allocated, 2);
    assert.equal(r.error?.code, 'ENOMEM');
    assert.equal(r.error?.syscall, 'mlock');
    assert.match(r.error?.hint ?? '', new RegExp(`which is ${2 * PAGE} bytes`));
    const zero = underLimit(0, 'mlock');
    assert.equal(zero.allocated, 0);
    assert.equal(zero.error?.code, 'EPERM');
    assert.match(zero.error?.hint ?? '', /RLIMIT_MEMLOCK \(ulimit -l\), which is 0 bytes/);
  });
});
