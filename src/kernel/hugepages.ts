// Huge-page settings of the machine, read from sysfs and /proc/meminfo:
// the shmem transparent-huge-page policy (what a memfd's pages become) and
// the hugetlb pools (what MFD_HUGETLB draws from). Reading files only: no
// syscall that could change anything.
import { readdirSync, readFileSync } from 'node:fs';

/**
 * A shmem transparent-huge-page policy, as the kernel names it in
 * /sys/kernel/mm/transparent_hugepage/shmem_enabled (Linux 4.8) and the
 * per-size hugepages-<size>kB/shmem_enabled files (Linux 6.11):
 * - `always`: every shmem/memfd page range may be a huge page;
 * - `within_size`: only where the whole huge page lies inside the file's size;
 * - `advise`: only in mappings that asked for it with MADV_HUGEPAGE (page faults, not write(2));
 * - `never`: none (the Debian/Ubuntu default);
 * - `deny` / `force`: the top-level file's emergency/testing values;
 * - `inherit` (per-size files only): the top-level value.
 */
export type ShmemThpPolicy = 'always' | 'within_size' | 'advise' | 'never' | 'deny' | 'force' | 'inherit';

/** One hugetlb pool: /sys/kernel/mm/hugepages/hugepages-<size>kB. */
export interface HugetlbPool {
  /** Huge page size in bytes. */
  readonly size: number;
  /** Pages reserved for the pool (nr_hugepages). */
  readonly total: number;
  /** Pages not yet in use (free_hugepages); reserved-but-unfaulted pages still count as free. */
  readonly free: number;
}

/** The machine's huge-page settings, see {@link hugePageSettings}. */
export interface HugePageSettings {
  /** The top-level shmem THP policy (shmem_enabled); null where the kernel has no THP. */
  readonly shmemEnabled: ShmemThpPolicy | null;
  /** Per-size shmem THP policies (Linux 6.11: hugepages-<size>kB/shmem_enabled), smallest first; empty before. */
  readonly shmemSizes: ReadonlyArray<{ readonly size: number; readonly policy: ShmemThpPolicy }>;
  /** The PMD huge page size in bytes (hpage_pmd_size, 2 MiB on x86-64); null without THP. */
  readonly pmdSize: number | null;
  /**
   * The policy a memfd's PMD-sized pages meet, with `inherit` resolved: what
   * decides whether a 2 MiB range of a SealedBuffer becomes one huge page.
   * null without THP.
   */
  readonly shmemPmd: Exclude<ShmemThpPolicy, 'inherit'> | null;
  /** The default hugetlb page size (Hugepagesize in /proc/meminfo), what MFD_HUGETLB alone uses; null without hugetlbfs. */
  readonly hugetlbDefaultSize: number | null;
  /** Every hugetlb pool the kernel offers, reserved or not, smallest first. */
  readonly hugetlbPools: readonly HugetlbPool[];
}

const THP = '/sys/kernel/mm/transparent_hugepage';
const HUGETLB = '/sys/kernel/mm/hugepages';
const POLICIES: readonly ShmemThpPolicy[] = ['always', 'within_size', 'advise', 'never', 'deny', 'force', 'inherit'];

function read(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** The bracketed value of a sysfs choice file: "always [within_size] advise never" -> 'within_size'. */
function selected(text: string | null): ShmemThpPolicy | null {
  const m = text === null ? null : /\[([a-z_]+)\]/.exec(text);
  return m !== null && (POLICIES as readonly string[]).includes(m[1]!) ? (m[1] as ShmemThpPolicy) : null;
}

function sizeDirs(dir: string): Array<{ size: number; name: string }> {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: Array<{ size: number; name: string }> = [];
  for (const name of names) {
    const m = /^hugepages-(\d+)kB$/.exec(name);
    if (m !== null) out.push({ size: Number(m[1]) * 1024, name });
  }
  return out.sort((a, b) => a.size - b.size);
}

function readInt(path: string): number | null {
  const t = read(path);
  const v = t === null ? Number.NaN : Number.parseInt(t, 10);
  return Number.isSafeInteger(v) ? v : null;
}

/**
 * Reads the machine's huge-page settings now: the shmem THP policy (top-level
 * and per size) and the hugetlb pools. `features.hugePages` holds the same,
 * read once at load; call this for current values (pools fill and drain, an
 * administrator may switch the policy). Nothing is changed.
 */
export function hugePageSettings(): HugePageSettings {
  const shmemEnabled = selected(read(`${THP}/shmem_enabled`));
  const pmd = readInt(`${THP}/hpage_pmd_size`);
  const shmemSizes = sizeDirs(THP).flatMap(({ size, name }) => {
    const policy = selected(read(`${THP}/${name}/shmem_enabled`));
    return policy === null ? [] : [Object.freeze({ size, policy })];
  });
  let shmemPmd: Exclude<ShmemThpPolicy, 'inherit'> | null = null;
  if (shmemEnabled !== null) {
    const own = shmemSizes.find((s) => s.size === pmd)?.policy ?? 'inherit';
    // 'deny' and 'force' at the top level override every size.
    const top = shmemEnabled === 'inherit' ? 'never' : shmemEnabled;
    shmemPmd = top === 'deny' || top === 'force' || own === 'inherit' ? top : own;
  }
  const meminfo = read('/proc/meminfo') ?? '';
  const def = /^Hugepagesize:\s+(\d+) kB/m.exec(meminfo);
  const hugetlbPools = sizeDirs(HUGETLB).map(({ size, name }) => Object.freeze({
    size,
    total: readInt(`${HUGETLB}/${name}/nr_hugepages`) ?? 0,
    free: readInt(`${HUGETLB}/${name}/free_hugepages`) ?? 0,
  }));
  return Object.freeze({
    shmemEnabled,
    shmemSizes: Object.freeze(shmemSizes),
    pmdSize: pmd,
    shmemPmd,
    hugetlbDefaultSize: def === null ? null : Number(def[1]) * 1024,
    hugetlbPools: Object.freeze(hugetlbPools),
  });
}

/** The pool of huge pages of `size` bytes (default: the default size), or undefined. */
export function hugetlbPool(settings: HugePageSettings, size?: number): HugetlbPool | undefined {
  const want = size ?? settings.hugetlbDefaultSize;
  return settings.hugetlbPools.find((p) => p.size === want);
}
