// Huge pages: the THP and hugetlb settings features reports, and how
// SealedBuffer.create()/from() ask for and populate huge pages.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { features, hugePageSettings, SealedBuffer, socketPair } from '../../src';
import { runFixture, skipUnless } from '../helpers';

const THP = '/sys/kernel/mm/transparent_hugepage';

function sysfs(path: string): string | null {
  try { return readFileSync(path, 'utf8').trim(); } catch { return null; }
}

/** The default-size hugetlb pool as the kernel reports it now. */
function pool(): { size: number; total: number; free: number } | undefined {
  const s = hugePageSettings();
  return s.hugetlbPools.find((p) => p.size === s.hugetlbDefaultSize);
}

/** HugePages_Rsvd: pages promised to mappings but not yet faulted in. */
function reserved(): number {
  return Number(/^HugePages_Rsvd:\s+(\d+)/m.exec(readFileSync('/proc/meminfo', 'utf8'))![1]);
}

/** Skips unless the default-size pool has `pages` free pages, saying why. */
function needPool(ctx: Mocha.Context, pages: number): number {
  const p = pool();
  skipUnless(ctx, features.hugetlb && p !== undefined && p.free >= pages,
    `needs ${pages} free hugetlb pages; the pool has ${p?.free ?? 0} free of ${p?.total ?? 0} ` +
    '(reserve some as root: echo 64 > /proc/sys/vm/nr_hugepages)');
  return p!.size;
}

describe('features.hugePages / hugePageSettings()', () => {
  it('reports the shmem THP policy that shmem_enabled selects', () => {
    const text = sysfs(`${THP}/shmem_enabled`);
    const want = text === null ? null : /\[(\w+)\]/.exec(text)![1];
    assert.equal(hugePageSettings().shmemEnabled, want);
    assert.equal(features.hugePages.shmemEnabled, want, 'unchanged since load');
    assert.ok(Object.isFrozen(features.hugePages));
  });

  it('reports the per-size policies and resolves inherit for the PMD size', function () {
    const s = hugePageSettings();
    skipUnless(this, s.shmemEnabled !== null, 'the kernel has no transparent huge pages');
    assert.equal(s.pmdSize, Number(sysfs(`${THP}/hpage_pmd_size`)));
    for (const { size, policy } of s.shmemSizes) {
      assert.match(sysfs(`${THP}/hugepages-${size / 1024}kB/shmem_enabled`)!, new RegExp(`\\[${policy}\\]`));
    }
    const own = s.shmemSizes.find((x) => x.size === s.pmdSize)?.policy ?? 'inherit';
    assert.equal(s.shmemPmd, own === 'inherit' ? s.shmemEnabled : own);
    assert.notEqual(s.shmemPmd, 'inherit');
  });

  it('lists every hugetlb pool with its reserved and free pages', () => {
    const s = hugePageSettings();
    let dirs: string[] = [];
    try { dirs = readdirSync('/sys/kernel/mm/hugepages'); } catch { /* no hugetlbfs */ }
    assert.equal(s.hugetlbPools.length, dirs.length);
    for (const p of s.hugetlbPools) {
      const dir = `/sys/kernel/mm/hugepages/hugepages-${p.size / 1024}kB`;
      assert.equal(p.total, Number(sysfs(`${dir}/nr_hugepages`)));
      assert.ok(p.free <= p.total);
    }
    const m = /^Hugepagesize:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
    assert.equal(s.hugetlbDefaultSize, m === null ? null : Number(m[1]) * 1024);
  });
});

/** The smaps entry of the memfd mapping named `name`: its VmFlags and Rss in kB. */
function smapsOfMemfd(name: string): { flags: string[]; rssKb: number } | undefined {
  const text = readFileSync('/proc/self/smaps', 'utf8');
  const at = text.indexOf(`/memfd:${name} (deleted)\n`);
  if (at < 0) return undefined;
  const next = text.slice(at).search(/\n[0-9a-f]+-[0-9a-f]+ /);
  const entry = next < 0 ? text.slice(at) : text.slice(at, at + next);
  return {
    flags: /^VmFlags:(.*)$/m.exec(entry)![1]!.trim().split(/\s+/),
    rssKb: Number(/^Rss:\s+(\d+) kB/m.exec(entry)![1]),
  };
}

describe('SealedBuffer.create() page population', () => {
  it('asks for huge pages (MADV_HUGEPAGE) and populates them before fill runs, from 2 MiB up', function () {
    const pmd = features.hugePages.pmdSize;
    skipUnless(this, pmd !== null, 'the kernel has no transparent huge pages (no hpage_pmd_size)');
    let seen: { flags: string[]; rssKb: number } | undefined;
    const sb = SealedBuffer.create(2 * pmd!, () => { seen = smapsOfMemfd('create-populate'); }, { name: 'create-populate' });
    sb.close();
    assert.ok(seen, 'the writable mapping was in /proc/self/smaps during fill');
    assert.ok(seen.flags.includes('hg'), `VmFlags ${seen.flags.join(' ')} lack hg (MADV_HUGEPAGE)`);
    assert.equal(seen.rssKb, (2 * pmd!) / 1024, 'every page populated before fill');
  });

  it('leaves a buffer smaller than a huge page without the advice', function () {
    const pmd = features.hugePages.pmdSize;
    skipUnless(this, pmd !== null, 'the kernel has no transparent huge pages (no hpage_pmd_size)');
    let seen: { flags: string[]; rssKb: number } | undefined;
    SealedBuffer.create(8192, () => { seen = smapsOfMemfd('create-small'); }, { name: 'create-small' }).close();
    assert.ok(seen);
    assert.ok(!seen.flags.includes('hg'));
    assert.equal(seen.rssKb, 8);
  });
});

/** Waits (up to 2 s) for the pool's free pages to come back to `expected`; returns the last count. */
async function freeSettled(expected: number): Promise<number> {
  const deadline = Date.now() + 2000;
  let free = pool()!.free;
  while (free < expected && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    free = pool()!.free;
  }
  return free;
}

describe('SealedBuffer with hugePages', () => {
  // Each test starts with the pool as the suite found it: a closed hugetlb buffer goes back on the thread pool.
  let startFree: number | undefined;
  before(() => { startFree = pool()?.free; });
  afterEach(async () => { if (startFree !== undefined) await freeSettled(startFree); });

  it('rejects a malformed hugePages option before any syscall', () => {
    assert.throws(() => SealedBuffer.from('x', { hugePages: 'yes' as unknown as boolean }), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => SealedBuffer.from('x', { hugePages: 3 * 2 ** 20 }), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => SealedBuffer.create(1, () => {}, { hugePages: 1024 }), { code: 'ERR_INVALID_ARG_VALUE' });
  });

  it('from(): a hugetlb memfd, rounded up to whole huge pages, sealed, read-only shared', async function () {
    const huge = needPool(this, 1);
    const before = pool()!.free;
    const sb = SealedBuffer.from('hello huge', { hugePages: true, name: 'huge-from' });
    try {
      assert.equal(sb.hugetlb, true);
      assert.equal(sb.size, huge);
      assert.equal(sb.bytes.subarray(0, 10).toString(), 'hello huge');
      assert.equal(sb.bytes[huge - 1], 0, 'the padding reads as zeros');
      assert.equal(sb.view, 'readonly');
      assert.equal(pool()!.free, before - 1, 'one huge page in use');
      const line = readFileSync('/proc/self/maps', 'utf8').split('\n').find((l) => l.endsWith('/memfd:huge-from (deleted)'));
      assert.match(line ?? '', / r--s /);
    } finally {
      sb.close();
    }
    // a buffer of 1 MiB or more is released on the thread pool, a moment after close()
    assert.equal(await freeSettled(before), before, 'the page went back to the pool');
  });

  it('create(): fill sees the requested size; an explicit page size works', function () {
    const huge = needPool(this, 2);
    let seen = -1;
    const sb = SealedBuffer.create(huge + 1, (b) => { seen = b.length; b.fill(9); }, { hugePages: huge });
    try {
      assert.equal(seen, huge + 1);
      assert.equal(sb.size, 2 * huge);
      assert.equal(sb.bytes[huge], 9);
      assert.equal(sb.bytes[huge + 1], 0);
    } finally {
      sb.close();
    }
  });

  it('a receiver detects hugetlb and maps it without reserving a second set of pages', async function () {
    const huge = needPool(this, 2);
    const [a, b] = socketPair();
    try {
      const sb = SealedBuffer.create(2 * huge, (x) => x.fill(3), { hugePages: true });
      const before = pool()!.free;
      const rsvd = reserved();
      await a.sendBuffer(sb);
      const { buffer } = await b.receiveBuffer();
      try {
        assert.equal(buffer.hugetlb, true);
        assert.equal(buffer.bytes[2 * huge - 1], 3);
        assert.equal(buffer.view, 'readonly');
        // A MAP_PRIVATE mapping would have reserved two more pages for copy-on-write (HugePages_Rsvd).
        assert.equal(pool()!.free, before);
        assert.equal(reserved(), rsvd);
      } finally {
        buffer.close();
        sb.close();
      }
    } finally {
      a.close();
      b.close();
    }
  });

  it('an ordinary buffer is not hugetlb, sent or received', async () => {
    const [a, b] = socketPair();
    try {
      const sb = SealedBuffer.from('small pages');
      assert.equal(sb.hugetlb, false);
      await a.sendBuffer(sb);
      sb.close();
      const { buffer } = await b.receiveBuffer();
      assert.equal(buffer.hugetlb, false);
      buffer.close();
    } finally {
      a.close();
      b.close();
    }
  });

  it('an exhausted pool fails with ENOMEM and a hint naming the pool', function () {
    const huge = needPool(this, 1);
    const free = pool()!.free;
    assert.throws(() => SealedBuffer.create((free + 1) * huge, () => {}, { hugePages: true }),
      (e: Error & { code?: string; hint?: string }) => e.code === 'ENOMEM' && /nr_hugepages/.test(e.hint ?? ''));
    assert.equal(pool()!.free, free, 'nothing left behind');
  });

  it('a write to a hugetlb buffer\'s bytes kills the process with SIGSEGV (child process)', function () {
    needPool(this, 1);
    const r = runFixture('segv-readonly-bytes.js', ['hugetlb']);
    assert.equal(r.stdout, 'readable abc\n');
    assert.equal(r.signal, 'SIGSEGV', `child ended with ${r.signal ?? r.status}: ${r.stderr}`);
  });
});

describe('SealedBuffer.from() with hugePages: true', () => {
  it('reads no sysfs or procfs file to learn the default huge page size once the module is loaded', function () {
    needPool(this, 1);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const fs = require('node:fs') as { readFileSync: (...args: unknown[]) => unknown };
    const original = fs.readFileSync;
    const paths: string[] = [];
    fs.readFileSync = (...args: unknown[]) => { paths.push(String(args[0])); return original(...args); };
    let sb: SealedBuffer | undefined;
    try {
      sb = SealedBuffer.from(Buffer.from('huge'), { hugePages: true });
    } finally {
      fs.readFileSync = original;
      sb?.close();
    }
    assert.deepEqual(paths.filter((p) => p.startsWith('/sys/') || p.startsWith('/proc/')), []);
  });
});
