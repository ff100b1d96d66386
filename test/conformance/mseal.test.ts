// Kernel conformance: mseal(2), case by case after the kernel's
// tools/testing/selftests/mm/mseal_test.c, driven through memseal's Mapping
// (seal, protect, advise, unmap). memseal seals whole mappings only, so the
// selftest's cases on partial ranges, several VMAs, gaps, mremap and MAP_FIXED
// have no counterpart; test/conformance/CASES.md lists them with the reason.
// Every sealed mapping made here stays mapped until mocha exits (a few pages).
import assert from 'node:assert/strict';
import { ftruncateSync } from 'node:fs';
import { constants as C, features, type Mapping, memfdCreate, mmap, mseal } from '../../src';
import { mapsLineFor, releasedAt, skipUnless } from '../helpers';
import { Fds, throwsSys } from './helpers';

const PAGE = 4096;
const SIZE = 4 * PAGE;

describe('conformance: mseal_test.c', () => {
  const fds = new Fds();
  const live: Mapping[] = [];
  beforeEach(function () {
    skipUnless(this, features.mseal, 'mseal needs Linux ≥ 6.10 on a 64-bit architecture');
  });
  afterEach(() => {
    for (const m of live.splice(0)) if (!m.sealed) m.unmap();
    fds.closeAll();
  });

  function map(prot = C.PROT_READ | C.PROT_WRITE, flags = C.MAP_PRIVATE, fd = -1): Mapping {
    const m = mmap(SIZE, prot, flags, fd);
    live.push(m);
    return m;
  }

  /** The selftest's final step: munmap works unsealed, fails (EPERM, from the kernel) sealed. */
  function munmapOutcome(m: Mapping, sealed: boolean): void {
    if (sealed) {
      const e = throwsSys(() => m.unmap(), 'EPERM', 'munmap');
      assert.match(e.hint ?? '', /mseal/);
      assert.equal(m.closed, false);
      assert.ok(mapsLineFor(m.address), 'still mapped');
    } else {
      m.unmap();
      assert.ok(releasedAt(m.address));
    }
  }

  it('addseal: mseal of a whole mapping succeeds', () => {
    const m = map();
    mseal(m);
    assert.equal(m.sealed, true);
  });

  it('twice: sealing a sealed mapping again succeeds', () => {
    const m = map();
    m.seal();
    m.seal();
    mseal(m);
    assert.equal(m.sealed, true);
  });

  for (const seal of [false, true]) {
    const tag = seal ? 'sealed' : 'unsealed';

    it(`mprotect (${tag}): ${seal ? 'EPERM, protection unchanged' : 'allowed'}`, () => {
      const m = map();
      if (seal) m.seal();
      if (seal) {
        const e = throwsSys(() => m.protect(C.PROT_READ), 'EPERM', 'mprotect');
        assert.match(e.hint ?? '', /mseal/);
        assert.match(mapsLineFor(m.address) ?? '', / rw/);
        m.bytes(0, 1)[0] = 1; // still writable
      } else {
        m.protect(C.PROT_READ);
        assert.match(mapsLineFor(m.address) ?? '', / r--/);
      }
    });

    it(`munmap (${tag}): ${seal ? 'EPERM from the kernel, views stay valid' : 'allowed'}`, () => {
      const m = map();
      const view = m.bytes(0, 8);
      view.write('sealed!');
      if (seal) m.seal();
      munmapOutcome(m, seal);
      if (seal) assert.equal(view.toString('utf8', 0, 7), 'sealed!');
      else assert.equal(view.length, 0, 'detached by unmap');
    });

    it(`madvise_nodiscard (${tag}): MADV_RANDOM is allowed`, () => {
      const m = map();
      if (seal) m.seal();
      m.advise(C.MADV_RANDOM);
      munmapOutcome(m, seal);
    });

    it(`discard_ro_anon (${tag}): MADV_DONTNEED on read-only private anonymous memory ${seal ? 'is EPERM' : 'works'}`, () => {
      const m = map(C.PROT_READ);
      if (seal) m.seal();
      if (seal) {
        const e = throwsSys(() => m.advise(C.MADV_DONTNEED), 'EPERM', 'madvise');
        assert.match(e.hint ?? '', /mseal/);
      } else {
        m.advise(C.MADV_DONTNEED);
      }
      munmapOutcome(m, seal);
    });

    it(`discard_ro_anon_on_rw (${tag}): MADV_DONTNEED on writable anonymous memory works`, () => {
      const m = map(C.PROT_READ | C.PROT_WRITE);
      m.bytes(0, 1)[0] = 9;
      if (seal) m.seal();
      m.advise(C.MADV_DONTNEED);
      assert.equal(m.bytes(0, 1)[0], 0, 'the page was discarded');
      munmapOutcome(m, seal);
    });

    it(`discard_ro_anon_on_shared (${tag}): MADV_DONTNEED on a shared mapping works`, () => {
      const m = map(C.PROT_READ, C.MAP_SHARED);
      if (seal) m.seal();
      m.advise(C.MADV_DONTNEED);
      munmapOutcome(m, seal);
    });

    it(`discard_ro_anon_on_filebacked (${tag}): MADV_DONTNEED on a file mapping works`, () => {
      const fd = fds.track(memfdCreate('mseal_filebacked'));
      ftruncateSync(fd, SIZE);
      const m = map(C.PROT_READ, C.MAP_PRIVATE, fd);
      if (seal) m.seal();
      m.advise(C.MADV_DONTNEED);
      munmapOutcome(m, seal);
    });
  }

  it('a sealed mapping still allows mlock, munlock and msync (not in the selftest: non-destructive)', () => {
    const fd = fds.track(memfdCreate('mseal_sync'));
    ftruncateSync(fd, SIZE);
    const m = map(C.PROT_READ | C.PROT_WRITE, C.MAP_SHARED, fd);
    m.seal();
    m.lock();
    m.unlock();
    m.sync();
  });
});
