// WriteOnceArena (src/memory/arena.ts): private anonymous memory handed out in
// zero-filled pieces, each sealed read-only by mprotect/mseal once written.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import { native } from '../../src/kernel/binding';
import { regionHandle } from '../../src/kernel/mapping';
import { constants as C, features, MemsealError, WriteOnceArena } from '../../src';
import { collectGarbage, FIXTURES, mapsLineFor, releasedAt, runFixture, skipUnless, smapsFor, unmappedSince } from '../helpers';

const PAGE = native.pageSize();
const { EPERM } = osConstants.errno;
const RW = C.PROT_READ | C.PROT_WRITE;

/** Arenas a test made; mprotect-only and unsealed ones are destroyed after it (mseal'd ones live until exit). */
let arenas: WriteOnceArena[] = [];
function arena(capacity = PAGE, name?: string): WriteOnceArena {
  const a = new WriteOnceArena(capacity, name === undefined ? undefined : { name });
  arenas.push(a);
  return a;
}
afterEach(() => {
  for (const a of arenas) if (a.sealedWith !== 'mseal') a.destroy();
  arenas = [];
});

const ERRNO = { ENOSYS: osConstants.errno.ENOSYS, ENOMEM: osConstants.errno.ENOMEM };
const SYS_MSEAL = 462; // x86_64 and aarch64

interface DeniedReport {
  mseal: boolean;
  defaultError: { code: string; message: string; hint?: string } | null; defaultSealedWith: string | null; defaultPerms: string;
  demandError: { code: string; message: string; hint?: string } | null; demandSealedWith: string | null; demandPerms: string;
  demandWritable: boolean;
}

/** Runs test/fixtures/arena-seal-denied.js with mseal(2) failing with `errno` (seccomp, see deny-syscall.pl). */
function denied(errno: number, filterArgs: string[] = []): DeniedReport {
  const r = spawnSync('perl', [path.join(FIXTURES, 'deny-syscall.pl'), String(SYS_MSEAL), String(errno), ...filterArgs,
    process.execPath, path.join(FIXTURES, 'arena-seal-denied.js')], { encoding: 'utf8', timeout: 20000 });
  assert.equal(r.status, 0, `child ended with ${r.signal ?? r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout) as DeniedReport;
}

function perms(a: WriteOnceArena): string | undefined {
  return mapsLineFor(a.mapping.address)?.split(/\s+/)[1];
}

describe('new WriteOnceArena()', () => {
  it('reserves whole pages of private anonymous read-write memory', () => {
    const a = arena(100, 'cfg');
    assert.equal(a.capacity, PAGE);
    assert.equal(a.used, 0);
    assert.equal(a.available, PAGE);
    assert.equal(a.name, 'cfg');
    assert.equal(a.sealed, false);
    assert.equal(a.sealedWith, null);
    assert.equal(a.closed, false);
    assert.equal(perms(a), 'rw-p');
    assert.equal(arena(PAGE + 1).capacity, 2 * PAGE);
  });

  it('rejects bad capacities and options before any syscall', () => {
    for (const bad of [0, -1, 1.5, Number.MAX_SAFE_INTEGER]) {
      assert.throws(() => new WriteOnceArena(bad), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    }
    assert.throws(() => new WriteOnceArena('4096' as unknown as number), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => new WriteOnceArena(PAGE, { name: 1 as unknown as string }), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => new WriteOnceArena(PAGE, 'x' as unknown as object), { code: 'ERR_INVALID_ARG_TYPE' });
  });
});

describe('WriteOnceArena#alloc()', () => {
  it('hands out zero-filled, non-overlapping views of the arena', () => {
    const a = arena();
    const x = a.alloc(10, 1);
    const y = a.alloc(10, 1);
    assert.ok(Buffer.isBuffer(x));
    assert.equal(x.length, 10);
    assert.deepEqual([...x], new Array(10).fill(0));
    x.fill(1);
    y.fill(2);
    assert.equal(y.byteOffset, x.byteOffset + 10);
    assert.equal(x.buffer, a.mapping.buffer, 'views of the mapping, not copies');
    assert.deepEqual([...a.mapping.bytes(0, 20)], [...new Array(10).fill(1), ...new Array(10).fill(2)]);
    assert.equal(a.used, 20);
  });

  it('honours alignment (default 8), counting the padding as used', () => {
    const a = arena();
    a.alloc(3, 1);
    assert.equal(a.alloc(8).byteOffset, 8);
    a.alloc(1, 1);
    assert.equal(a.alloc(16, 16).byteOffset, 32);
    assert.equal(a.used, 48);
    assert.throws(() => a.alloc(1, PAGE), { code: 'ERR_MEMSEAL_SIZE' }, 'the next page boundary is the end');
    const b = arena(2 * PAGE);
    b.alloc(1, 1);
    assert.equal(b.alloc(1, PAGE).byteOffset, PAGE);
    assert.equal(b.mapping.address % BigInt(PAGE), 0n, 'offsets are addresses modulo the page size');
  });

  it('rejects alignments that are not powers of two up to the page size', () => {
    const a = arena();
    for (const bad of [0, 3, 12, PAGE * 2, 1.5]) {
      assert.throws(() => a.alloc(8, bad), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }, String(bad));
    }
    assert.throws(() => a.alloc(-1), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => a.alloc('8' as unknown as number), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    assert.equal(a.used, 0);
  });

  it('fills exactly to capacity, then throws MemsealError ERR_MEMSEAL_SIZE and changes nothing', () => {
    const a = arena(PAGE, 'small');
    a.alloc(PAGE - 8, 1);
    const last = a.alloc(8);
    assert.equal(last.byteOffset, PAGE - 8);
    assert.equal(a.available, 0);
    assert.equal(a.alloc(0).length, 0, 'an empty allocation still fits');
    assert.throws(() => a.alloc(1, 1), (e: unknown) => {
      assert.ok(e instanceof MemsealError);
      assert.equal(e.code, 'ERR_MEMSEAL_SIZE');
      assert.match(e.message, /'small' is full: alloc\(1, 1\)/);
      assert.match(e.hint!, /larger capacity/);
      return true;
    });
    assert.equal(a.used, PAGE);
  });

  it('throws ERR_MEMSEAL_SIZE when only the padding does not fit', () => {
    const a = arena(PAGE);
    a.alloc(PAGE - 4, 1);
    assert.throws(() => a.alloc(4, 8), { code: 'ERR_MEMSEAL_SIZE' });
    assert.equal(a.alloc(4, 4).byteOffset, PAGE - 4);
  });
});

describe('WriteOnceArena#allocString() / allocJSON() / allocFrom() / allocArray()', () => {
  it('allocString() writes the encoded bytes and returns exactly them', () => {
    const a = arena();
    const v = a.allocString('grüße');
    assert.equal(v.length, Buffer.byteLength('grüße'));
    assert.equal(v.toString(), 'grüße');
    assert.equal(a.allocString('abc', 'utf16le').toString('utf16le'), 'abc');
    assert.throws(() => a.allocString(1 as unknown as string), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => a.allocString('x', 'nope' as BufferEncoding), { code: 'ERR_INVALID_ARG_TYPE' });
  });

  it('allocJSON() stores JSON text that parses back to the value', () => {
    const a = arena();
    const config = { listen: 8080, hosts: ['a', 'b'], tls: { ciphers: 'X:Y' } };
    const v = a.allocJSON(config);
    assert.deepEqual(JSON.parse(v.toString()), config);
    assert.equal(a.allocJSON({ a: 1, b: 2 }, (k, val) => (k === 'b' ? undefined : val)).toString(), '{"a":1}');
    assert.throws(() => a.allocJSON(undefined), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => a.allocJSON(() => 1), { code: 'ERR_INVALID_ARG_TYPE' });
  });

  it('allocFrom() copies any bytes in', () => {
    const a = arena();
    assert.deepEqual([...a.allocFrom(new Uint8Array([1, 2, 3]))], [1, 2, 3]);
    assert.deepEqual([...a.allocFrom(new Uint16Array([0x0201]).buffer)], [1, 2]);
    assert.deepEqual([...a.allocFrom(Buffer.from('hey').subarray(1))], [0x65, 0x79]);
    assert.throws(() => a.allocFrom('str' as unknown as Uint8Array), { code: 'ERR_INVALID_ARG_TYPE' });
  });

  it('allocArray() gives element-aligned typed arrays over the arena', () => {
    const a = arena();
    a.alloc(1, 1);
    const f = a.allocArray(Float64Array, [1.5, 2.5]);
    assert.ok(f instanceof Float64Array);
    assert.equal(f.byteOffset % 8, 0);
    assert.deepEqual([...f], [1.5, 2.5]);
    assert.equal(f.buffer, a.mapping.buffer);
    const z = a.allocArray(Uint32Array, 4);
    assert.deepEqual([...z], [0, 0, 0, 0]);
    assert.deepEqual([...a.allocArray(BigInt64Array, [1n, -1n])], [1n, -1n]);
    assert.throws(() => a.allocArray(Array as unknown as Uint8ArrayConstructor, 1), { code: 'ERR_INVALID_ARG_TYPE' });
  });
});

describe('WriteOnceArena#seal()', () => {
  it('with mseal (the default where the kernel has it): read-only, sealed, alloc refused, reads still work', function () {
    skipUnless(this, features.mseal, 'mseal(2) needs Linux ≥ 6.10');
    const a = arena(PAGE, 'cfg');
    const v = a.allocJSON({ mode: 'strict' });
    a.seal();
    assert.equal(a.sealed, true);
    assert.equal(a.sealedWith, 'mseal');
    assert.equal(a.mapping.sealed, true);
    assert.equal(perms(a), 'r--p');
    assert.ok(smapsFor(a.mapping.address)?.flags.includes('sl'), 'the kernel marks the VMA sealed (VmFlags sl)');
    assert.deepEqual(JSON.parse(v.toString()), { mode: 'strict' });
    assert.throws(() => a.alloc(1), (e: unknown) => e instanceof MemsealError && e.code === 'ERR_MEMSEAL_SEALED' &&
      /'cfg' is sealed \(mseal\)/.test(e.message));
    assert.throws(() => a.allocString('x'), { code: 'ERR_MEMSEAL_SEALED' });
    a.seal();
    a.seal({ mseal: false });
    assert.equal(a.sealedWith, 'mseal', 'sealing again is a no-op and never downgrades');
  });

  it('after mseal the kernel refuses mprotect, munmap, mremap and MADV_DONTNEED with EPERM', function () {
    skipUnless(this, features.mseal, 'mseal(2) needs Linux ≥ 6.10');
    const a = arena(2 * PAGE);
    const v = a.allocString('do not change me');
    a.seal();
    const m = a.mapping;
    assert.throws(() => m.protect(RW), { code: 'EPERM', syscall: 'mprotect' });
    assert.throws(() => m.unmap(), (e: unknown) => (e as { code: string }).code === 'EPERM' &&
      (e as { syscall: string }).syscall === 'munmap' && /until the process exits/.test((e as { hint: string }).hint));
    const handle = regionHandle(m);
    assert.equal(native.mremap(handle, PAGE), -EPERM, 'shrink in place');
    assert.equal(native.mremap(handle, 4 * PAGE), -EPERM, 'grow in place');
    assert.equal(native.mremap(handle, 2 * PAGE), -EPERM, 'same size');
    assert.throws(() => m.advise(C.MADV_DONTNEED), { code: 'EPERM', syscall: 'madvise' });
    assert.equal(m.closed, false);
    assert.equal(perms(a), 'r--p');
    assert.equal(v.toString(), 'do not change me', 'the views are intact');
  });

  it('destroy() on an mseal\'d arena throws ERR_MEMSEAL_SEALED; dispose leaves it alone; GC never frees it', async function () {
    skipUnless(this, features.mseal, 'mseal(2) needs Linux ≥ 6.10');
    const address = (() => {
      const a = new WriteOnceArena(PAGE);
      a.allocString('forever');
      a.seal();
      assert.throws(() => a.destroy(), (e: unknown) => e instanceof MemsealError && e.code === 'ERR_MEMSEAL_SEALED' &&
        /until the process exits/.test(e.hint ?? ''));
      a[Symbol.dispose]();
      assert.equal(a.closed, false);
      return a.mapping.address;
    })();
    await collectGarbage();
    assert.match(mapsLineFor(address) ?? 'unmapped', /^\S+ r--p /, 'still mapped after its objects were collected');
  });

  it('{ mseal: false } protects with mprotect only: read-only, but revocable and destroyable', () => {
    const a = arena();
    const v = a.allocString('reloadable');
    a.seal({ mseal: false });
    assert.equal(a.sealedWith, 'mprotect');
    assert.equal(a.mapping.sealed, false);
    assert.equal(perms(a), 'r--p');
    assert.ok(!smapsFor(a.mapping.address)?.flags.includes('sl'));
    assert.throws(() => a.alloc(1), { code: 'ERR_MEMSEAL_SEALED' });
    a.mapping.protect(RW); // what mseal exists to prevent
    a.mapping.protect(C.PROT_READ);
    a.destroy();
    assert.equal(a.closed, true);
    assert.equal(v.length, 0, 'views are detached');
    assert.ok(releasedAt(a.mapping.address));
  });

  it('{ mseal: true } upgrades an mprotect-only arena', function () {
    skipUnless(this, features.mseal, 'mseal(2) needs Linux ≥ 6.10');
    const a = arena();
    a.seal({ mseal: false });
    a.seal({ mseal: true });
    assert.equal(a.sealedWith, 'mseal');
    assert.ok(smapsFor(a.mapping.address)?.flags.includes('sl'));
  });

  it('where mseal(2) is missing: seal() protects with mprotect, { mseal: true } throws ERR_MEMSEAL_UNSUPPORTED and changes nothing', () => {
    // A seccomp filter makes mseal ENOSYS in the child, as on a kernel before 6.10.
    const r = denied(ERRNO.ENOSYS);
    assert.equal(r.mseal, false, 'features.mseal sees the missing syscall');
    assert.equal(r.defaultError, null);
    assert.equal(r.defaultSealedWith, 'mprotect');
    assert.equal(r.defaultPerms, 'r--p');
    assert.equal(r.demandError?.code, 'ERR_MEMSEAL_UNSUPPORTED');
    assert.match(r.demandError?.hint ?? '', /6\.10/);
    assert.equal(r.demandSealedWith, null);
    assert.equal(r.demandPerms, 'rw-p');
    assert.equal(r.demandWritable, true);
  });

  it('when mseal(2) itself fails, seal() throws the kernel\'s error and leaves the arena writable and unsealed', () => {
    // mseal(addr, len, 0) fails with ENOMEM; the load-time probe (flags 1) still sees the syscall.
    const r = denied(ERRNO.ENOMEM, ['--arg2=0']);
    assert.equal(r.mseal, true);
    assert.equal(r.defaultError?.code, 'ENOMEM');
    assert.match(r.defaultError?.message ?? '', /^ENOMEM: .*, mseal$/);
    assert.equal(r.defaultSealedWith, null);
    assert.equal(r.defaultPerms, 'rw-p', 'the mprotect was rolled back');
    assert.equal(r.demandWritable, true);
  });

  it('validates its options', () => {
    const a = arena();
    assert.throws(() => a.seal({ mseal: 1 as unknown as boolean }), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => a.seal(null as unknown as object), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.equal(a.sealed, false);
  });

  for (const how of ['mseal', 'mprotect'] as const) {
    it(`a write after seal() (${how}) kills the process with SIGSEGV`, function () {
      if (how === 'mseal') skipUnless(this, features.mseal, 'mseal(2) needs Linux ≥ 6.10');
      const r = runFixture('arena-segv.js', [how]);
      assert.equal(r.stdout, `sealed with ${how}, reads 1\n`);
      assert.equal(r.signal, 'SIGSEGV', `child ended with ${r.signal ?? r.status}: ${r.stderr}`);
    });
  }
});

describe('WriteOnceArena#destroy()', () => {
  it('unmaps an unsealed arena, detaches its views, and is idempotent', () => {
    const a = arena();
    const v = a.alloc(16);
    const t = a.allocArray(Uint8Array, 4);
    const address = a.mapping.address;
    a.destroy();
    a.destroy();
    a.close();
    assert.equal(a.closed, true);
    assert.equal(v.length, 0);
    assert.equal(t.length, 0);
    assert.ok(releasedAt(address));
    assert.throws(() => a.alloc(1), { code: 'ERR_MEMSEAL_CLOSED' });
    assert.throws(() => a.seal(), { code: 'ERR_MEMSEAL_CLOSED' });
  });

  it('[Symbol.dispose]() destroys an unsealed or mprotect-only arena', () => {
    const a = arena();
    a.alloc(1);
    a.seal({ mseal: false });
    a[Symbol.dispose]();
    assert.equal(a.closed, true);
  });

  it('a forgotten, unsealed arena is unmapped by the garbage collector', async () => {
    const address = (() => new WriteOnceArena(PAGE).mapping.address)();
    const before = mapsLineFor(address);
    assert.ok(before);
    await collectGarbage();
    assert.ok(unmappedSince(address, before));
  });
});
