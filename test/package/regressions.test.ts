// Regression tests for bugs found by the hardening work (fuzzing, conformance).
// Each names what was wrong before.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import path from 'node:path';
import {
  addSeals, Channel, ChannelServer, constants as C, Loan, Mapping, memfdCreate, mmap, Publisher, Sample, SealedBuffer, Seal, SecretBuffer,
  Subscriber, WriteOnceArena,
} from '../../src';
import { native } from '../../src/kernel/binding';

const ROOT = path.resolve(__dirname, '..', '..');
const { MAP_FIXED, MADV_HWPOISON, MADV_SOFT_OFFLINE } = native.internalConstants;

describe('hardening regressions', () => {
  it('mmap() refuses MAP_FIXED (it unmapped the process\'s own code: abort / SIGSEGV)', () => {
    // In a child: if the check were missing, this would kill the process, not the test run.
    const script = `const m = require(${JSON.stringify(ROOT)});
      try { m.mmap(2 ** 46 + 2 ** 45, m.constants.PROT_READ, m.constants.MAP_PRIVATE | ${MAP_FIXED}); process.stdout.write('mapped'); }
      catch (e) { process.stdout.write(e.code); }`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    assert.equal(r.signal, null, `child died of ${r.signal}`);
    assert.equal(r.stdout, 'ERR_INVALID_ARG_VALUE');
    assert.throws(() => mmap(4096, C.PROT_READ, C.MAP_PRIVATE | MAP_FIXED), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
  });

  it('mmap() still allows MAP_FIXED_NOREPLACE (fails safely: EEXIST, or maps at a free address)', () => {
    try {
      const m = mmap(4096, C.PROT_READ, C.MAP_PRIVATE | 0x100000);
      m.unmap();
    } catch (err) {
      assert.ok(typeof (err as { code?: unknown }).code === 'string');
    }
  });

  it('memfdCreate() with a NUL in the name is ERR_INVALID_ARG_VALUE (was a TypeError without a code from native)', () => {
    assert.throws(() => memfdCreate('a\0b'), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
  });

  it('SealedBuffer.create() with a NUL in options.name is ERR_INVALID_ARG_VALUE (was a TypeError without a code)', () => {
    assert.throws(() => SealedBuffer.create(4, () => {}, { name: 'a\0' }), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
  });

  it('direct construction throws ERR_ILLEGAL_CONSTRUCTOR (was a TypeError without a code)', () => {
    for (const Cls of [Mapping, SealedBuffer, Channel, ChannelServer, SecretBuffer, Publisher, Subscriber, Sample, Loan]) {
      assert.throws(() => new (Cls as unknown as new (...a: unknown[]) => unknown)(1, 2, 3, 4), { name: 'TypeError', code: 'ERR_ILLEGAL_CONSTRUCTOR' });
    }
  });

  it('SealedBuffer.from() of a detached buffer or view is empty (was a TypeError without a code)', () => {
    const ab = new ArrayBuffer(16);
    const view = new Uint8Array(ab, 4, 8);
    structuredClone(ab, { transfer: [ab] });
    for (const data of [ab, view]) {
      const b = SealedBuffer.from(data);
      try {
        assert.equal(b.size, 0);
      } finally {
        b.close();
      }
    }
  });

  it('WriteOnceArena#allocJSON of a BigInt or a cycle is ERR_INVALID_ARG_VALUE (was JSON.stringify\'s codeless TypeError)', () => {
    const arena = new WriteOnceArena(4096);
    try {
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      for (const v of [10n, cyclic]) assert.throws(() => arena.allocJSON(v), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
    } finally {
      arena.destroy();
    }
  });

  it('WriteOnceArena#allocFrom of a detached buffer is empty (was a TypeError without a code)', () => {
    const arena = new WriteOnceArena(4096);
    try {
      const ab = new ArrayBuffer(16);
      const view = new Uint8Array(ab, 2, 4);
      structuredClone(ab, { transfer: [ab] });
      assert.equal(arena.allocFrom(ab).length, 0);
      assert.equal(arena.allocFrom(view).length, 0);
    } finally {
      arena.destroy();
    }
  });

  it('addSeals() EPERM on a read-only descriptor says so (the hint blamed F_SEAL_SEAL)', () => {
    const fd = memfdCreate('ro');
    const ro = openSync(`/proc/self/fd/${fd}`, 'r');
    try {
      assert.throws(() => addSeals(ro, Seal.WRITE), (e: Error & { code?: string; hint?: string }) =>
        e.code === 'EPERM' && /not open for writing/.test(e.hint ?? ''));
    } finally {
      closeSync(ro);
      closeSync(fd);
    }
  });

  it('Mapping#advise() refuses MADV_HWPOISON and MADV_SOFT_OFFLINE (as root they took RAM out of service)', () => {
    const m = mmap(4096, C.PROT_READ | C.PROT_WRITE, C.MAP_PRIVATE);
    try {
      for (const advice of [MADV_HWPOISON, MADV_SOFT_OFFLINE]) {
        assert.throws(() => m.advise(advice), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
      }
      m.advise(C.MADV_DONTNEED);   // ordinary advice still goes through
    } finally {
      m.unmap();
    }
  });
});
