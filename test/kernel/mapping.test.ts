// mmap()/Mapping (src/kernel/mapping.ts): anonymous and memfd mappings, 64-bit
// lengths, protections, mseal, and the kernel's errors surfaced with hints.
import assert from 'node:assert/strict';
import { constants as bufferConstants } from 'node:buffer';
import { closeSync, ftruncateSync, readFileSync } from 'node:fs';
import { addSeals, constants as C, features, Mapping, memfdCreate, mmap, mseal, Seal, type SystemError } from '../../src';
import { collectGarbage, mapsLineFor, releasedAt, runFixture, skipUnless, unmappedSince } from '../helpers';

const RW = C.PROT_READ | C.PROT_WRITE;
const PAGE = 4096;

describe('mmap()', () => {
  const live: Mapping[] = [];
  const keep = (m: Mapping): Mapping => { live.push(m); return m; };
  afterEach(() => { for (const m of live.splice(0)) if (!m.sealed) m.unmap(); });

  it('maps anonymous memory by default (fd -1)', () => {
    const m = keep(mmap(2 * PAGE, RW, C.MAP_PRIVATE));
    assert.equal(m.length, 2 * PAGE);
    assert.equal(m.prot, RW);
    assert.equal(m.flags, C.MAP_PRIVATE | C.MAP_ANONYMOUS);
    assert.equal(typeof m.address, 'bigint');
    assert.equal(m.sealed, false);
    assert.equal(m.closed, false);
    assert.equal(m.buffer.byteLength, 2 * PAGE);
    const line = mapsLineFor(m.address);
    assert.ok(line, 'the region is in /proc/self/maps');
    assert.match(line, /^[0-9a-f]+-[0-9a-f]+ rw-p /);
    m.bytes().fill(0xab);
    assert.equal(new Uint8Array(m.buffer)[2 * PAGE - 1], 0xab);
  });

  it('shares a memfd\'s pages between two MAP_SHARED mappings, zero-copy', () => {
    const fd = memfdCreate('shared');
    try {
      ftruncateSync(fd, PAGE);
      const a = keep(mmap(PAGE, RW, C.MAP_SHARED, fd));
      const b = keep(mmap(PAGE, C.PROT_READ, C.MAP_SHARED, fd));
      a.bytes().write('hello', 0);
      assert.equal(b.bytes(0, 5).toString(), 'hello');
      assert.notEqual(a.address, b.address);
    } finally {
      closeSync(fd);
    }
  });

  it('maps at a page-aligned offset into a file', () => {
    const fd = memfdCreate('offset');
    try {
      ftruncateSync(fd, 2 * PAGE);
      const whole = keep(mmap(2 * PAGE, RW, C.MAP_SHARED, fd));
      whole.bytes()[PAGE] = 99;
      const tail = keep(mmap(PAGE, C.PROT_READ, C.MAP_SHARED, fd, PAGE));
      assert.equal(tail.bytes()[0], 99);
      assert.throws(() => mmap(PAGE, C.PROT_READ, C.MAP_SHARED, fd, 100),
        (e: SystemError) => e.code === 'EINVAL' && e.syscall === 'mmap');
    } finally {
      closeSync(fd);
    }
  });

  it('handles full 64-bit lengths: a 5 GiB MAP_NORESERVE mapping', () => {
    const len = 5 * 2 ** 30;
    const m = keep(mmap(len, RW, C.MAP_PRIVATE | C.MAP_NORESERVE));
    assert.equal(m.length, len);
    const [lo, hi] = mapsLineFor(m.address)!.split(' ')[0]!.split('-').map((h) => BigInt(`0x${h}`));
    assert.ok(hi! - lo! >= BigInt(len), 'one VMA (possibly merged with a neighbour) covers all 5 GiB');
    const tail = m.bytes(len - 16);
    tail[15] = 7;
    assert.equal(m.bytes(len - 1, 1)[0], 7);
    if (len > bufferConstants.MAX_LENGTH) {
      assert.throws(() => m.buffer, { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    } else {
      assert.equal(m.buffer.byteLength, len);
    }
    m.unmap();
    assert.equal(tail.length, 0, 'windows of a large mapping are detached too');
  });

  it('surfaces the kernel\'s errors', () => {
    assert.throws(() => mmap(0, RW, C.MAP_PRIVATE), (e: SystemError) => e.code === 'EINVAL' && e.errno === -22);
    assert.throws(() => mmap(PAGE, RW, C.MAP_SHARED, 1_000_000), (e: SystemError) => e.code === 'EBADF');
    assert.throws(() => mmap(PAGE, RW, 0), (e: SystemError) => e.code === 'EINVAL', 'neither SHARED nor PRIVATE');
  });

  it('rejects malformed arguments before any syscall', () => {
    for (const bad of [-1, 1.5, 2 ** 53, Number.NaN]) {
      assert.throws(() => mmap(bad, RW, C.MAP_PRIVATE), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    }
    assert.throws(() => mmap('4096' as unknown as number, RW, C.MAP_PRIVATE), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => mmap(PAGE, 'rw' as unknown as number, C.MAP_PRIVATE), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => mmap(PAGE, RW, C.MAP_PRIVATE, -2), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => mmap(PAGE, RW, C.MAP_PRIVATE, 3.5), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => mmap(PAGE, RW, C.MAP_PRIVATE, -1, -PAGE), { code: 'ERR_OUT_OF_RANGE' });
  });

  it('cannot be constructed directly', () => {
    const Ctor = Mapping as unknown as new (...args: unknown[]) => Mapping;
    assert.throws(() => new Ctor(Symbol('x')), TypeError);
  });
});

describe('Mapping#bytes()', () => {
  it('returns zero-copy views of a range, bounds-checked', () => {
    const m = mmap(PAGE, RW, C.MAP_PRIVATE);
    try {
      const all = m.bytes();
      const part = m.bytes(100, 10);
      assert.equal(all.length, PAGE);
      assert.equal(part.length, 10);
      part[0] = 5;
      assert.equal(all[100], 5);
      assert.equal(m.bytes(PAGE).length, 0);
      assert.throws(() => m.bytes(PAGE + 1), { code: 'ERR_OUT_OF_RANGE' });
      assert.throws(() => m.bytes(100, PAGE), { code: 'ERR_OUT_OF_RANGE' });
      assert.throws(() => m.bytes(-1), { code: 'ERR_OUT_OF_RANGE' });
    } finally {
      m.unmap();
    }
  });
});

describe('Mapping#unmap()', () => {
  it('detaches every view', () => {
    const m = mmap(PAGE, RW, C.MAP_PRIVATE);
    const buffer = m.buffer;
    const view = m.bytes(10, 20);
    const typed = new Uint32Array(m.buffer);
    m.unmap();
    assert.equal(m.closed, true);
    assert.equal(buffer.byteLength, 0);
    assert.equal(view.length, 0);
    assert.equal(typed.length, 0);
    assert.equal(view[0], undefined, 'a stale view reads nothing instead of freed memory');
    assert.equal(m.buffer.byteLength, 0);
    assert.ok(releasedAt(m.address), 'its pages are gone (the range is released once the views are collected)');
  });

  it('is safe to call twice, and close()/dispose do the same', () => {
    const m = mmap(PAGE, RW, C.MAP_PRIVATE);
    m.unmap();
    m.unmap();
    m.close();
    m[Symbol.dispose]();
    const n = mmap(PAGE, RW, C.MAP_PRIVATE);
    const before = mapsLineFor(n.address);
    n[Symbol.dispose]();
    assert.equal(n.closed, true);
    assert.ok(unmappedSince(n.address, before), "no view was ever made: unmapped at once");
  });

  it('makes later operations throw ERR_MEMSEAL_CLOSED', () => {
    const m = mmap(PAGE, RW, C.MAP_PRIVATE);
    m.unmap();
    for (const op of [() => m.bytes(), () => m.protect(C.PROT_READ), () => m.advise(C.MADV_DONTNEED), () => m.sync(),
      () => m.lock(), () => m.unlock(), () => m.seal()]) {
      assert.throws(op, { name: 'MemsealError', code: 'ERR_MEMSEAL_CLOSED' });
    }
  });
});

describe('Mapping lifetime under GC', () => {
  // Each test maps a memfd with a name of its own, so the mapping is recognised
  // in /proc/self/maps by that name: once unmapped, the address range may be
  // reused by anyone (V8, a sanitizer's allocator), the name cannot.
  let seq = 0;
  function namedMapping(): { map: Mapping; name: string } {
    const name = `memseal-gc-${process.pid}-${seq++}`;
    const fd = memfdCreate(name);
    try {
      ftruncateSync(fd, 16 * PAGE);
      return { map: mmap(16 * PAGE, RW, C.MAP_SHARED, fd), name };
    } finally {
      closeSync(fd);  // from here on only the mapping keeps the memfd alive
    }
  }
  const mapped = (name: string) => readFileSync('/proc/self/maps', 'utf8').includes(`/memfd:${name} `);

  it('a forgotten mapping is unmapped by its finalizer', async () => {
    let name = '';
    (() => {
      const { map, name: n } = namedMapping();
      map.bytes().fill(1);
      name = n;
    })();
    assert.ok(mapped(name));
    await collectGarbage();
    assert.equal(mapped(name), false, 'unmapped after GC');
  });

  it('a view that outlives its Mapping keeps the pages mapped', async () => {
    let view: Buffer | undefined;
    let name = '';
    (() => {
      const { map, name: n } = namedMapping();
      name = n;
      view = map.bytes();
      view.fill(3);
    })();
    await collectGarbage();
    assert.ok(mapped(name), 'still mapped while a view is alive');
    assert.equal(view![PAGE - 1], 3);
    view = undefined;
    await collectGarbage();
    assert.equal(mapped(name), false, 'unmapped once the last view is gone');
  });
});

describe('Mapping#protect()', () => {
  it('changes the protection the kernel enforces', () => {
    const m = mmap(PAGE, RW, C.MAP_PRIVATE);
    try {
      m.protect(C.PROT_READ);
      assert.equal(m.prot, C.PROT_READ);
      assert.match(mapsLineFor(m.address)!, / r--p /);
      m.protect(C.PROT_NONE);
      assert.match(mapsLineFor(m.address)!, / ---p /);
    } finally {
      m.unmap();
    }
  });

  it('EACCES for PROT_WRITE on a read-only shared mapping of a write-sealed memfd', () => {
    const fd = memfdCreate('ro');
    try {
      ftruncateSync(fd, PAGE);
      addSeals(fd, Seal.WRITE);
      const m = mmap(PAGE, C.PROT_READ, C.MAP_SHARED, fd);
      try {
        assert.throws(() => m.protect(RW), (e: SystemError) => e.code === 'EACCES' && e.syscall === 'mprotect');
      } finally {
        m.unmap();
      }
    } finally {
      closeSync(fd);
    }
  });

  it('a write through a PROT_READ mapping kills the process with SIGSEGV (in a child)', () => {
    const r = runFixture('segv-readonly.js');
    assert.equal(r.stdout, 'readable 1\n');
    assert.equal(r.signal, 'SIGSEGV', `child ended with ${r.signal ?? r.status}: ${r.stderr}`);
  });
});

describe('Mapping#advise() / sync() / lock()', () => {
  it('MADV_DONTNEED drops private anonymous pages (they read back as zero)', () => {
    const m = mmap(2 * PAGE, RW, C.MAP_PRIVATE);
    try {
      m.bytes().fill(9);
      m.advise(C.MADV_DONTNEED, PAGE, PAGE);
      assert.equal(m.bytes()[0], 9);
      assert.equal(m.bytes()[PAGE], 0);
      assert.throws(() => m.advise(C.MADV_DONTNEED, 0, 3 * PAGE), { code: 'ERR_OUT_OF_RANGE' });
      assert.throws(() => m.advise(9999), (e: SystemError) => e.code === 'EINVAL' && e.syscall === 'madvise');
    } finally {
      m.unmap();
    }
  });

  it('MADV_POPULATE_WRITE prefaults the pages', function () {
    skipUnless(this, features.madvisePopulate, 'MADV_POPULATE_* needs Linux ≥ 5.14');
    const m = mmap(64 * PAGE, RW, C.MAP_PRIVATE);
    try {
      m.advise(C.MADV_POPULATE_WRITE);
    } finally {
      m.unmap();
    }
  });

  it('msync flushes a shared mapping; MS_SYNC|MS_ASYNC is EINVAL', () => {
    const fd = memfdCreate('sync');
    try {
      ftruncateSync(fd, PAGE);
      const m = mmap(PAGE, RW, C.MAP_SHARED, fd);
      m.sync();
      m.sync(C.MS_ASYNC);
      assert.throws(() => m.sync(C.MS_SYNC | C.MS_ASYNC), (e: SystemError) => e.code === 'EINVAL' && e.syscall === 'msync');
      m.unmap();
    } finally {
      closeSync(fd);
    }
  });

  it('mlock and munlock the pages', () => {
    const m = mmap(PAGE, RW, C.MAP_PRIVATE);
    try {
      m.lock();
      m.unlock();
    } finally {
      m.unmap();
    }
  });
});

describe('Mapping#seal() / mseal()', () => {
  it('seals the mapping: mprotect and munmap fail with EPERM, views stay valid', function () {
    skipUnless(this, features.mseal, 'mseal needs Linux ≥ 6.10 on a 64-bit architecture');
    const m = mmap(PAGE, RW, C.MAP_PRIVATE);
    const view = m.bytes();
    view.write('kept');
    mseal(m);
    assert.equal(m.sealed, true);
    m.seal(); // idempotent
    assert.throws(() => m.protect(C.PROT_READ), (e: SystemError) =>
      e.code === 'EPERM' && e.syscall === 'mprotect' && /mseal/.test(e.hint ?? ''));
    assert.throws(() => m.unmap(), (e: SystemError) =>
      e.message === 'EPERM: operation not permitted, munmap' && e.errno === -1 && /until the process exits/.test(e.hint!));
    assert.equal(m.closed, false);
    assert.equal(view.toString('utf8', 0, 4), 'kept');
    assert.equal(m.buffer.byteLength, PAGE);
    m[Symbol.dispose](); // leaves a sealed mapping alone instead of throwing
    assert.ok(mapsLineFor(m.address));
  });

  it('the kernel refuses to discard sealed read-only anonymous pages (madvise EPERM)', function () {
    skipUnless(this, features.mseal, 'mseal needs Linux ≥ 6.10 on a 64-bit architecture');
    const m = mmap(PAGE, C.PROT_READ, C.MAP_PRIVATE);
    m.seal();
    assert.throws(() => m.advise(C.MADV_DONTNEED), (e: SystemError) => e.code === 'EPERM' && e.syscall === 'madvise');
  });

  it('mseal() checks its argument', () => {
    assert.throws(() => mseal({} as Mapping), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
  });
});
