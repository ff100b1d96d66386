// features: what the running kernel and machine can do, probed once at load,
// frozen, and consistent with the kernel version.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { features } from '../../src';
import { countFds } from '../helpers';

function kernelAtLeast(major: number, minor: number): boolean {
  const [a = 0, b = 0] = release().split(/[.-]/).map(Number);
  return a > major || (a === major && b >= minor);
}

describe('features', () => {
  it('is frozen and fully typed', () => {
    assert.ok(Object.isFrozen(features));
    for (const key of ['memfd', 'sealing', 'futureWrite', 'sealExec', 'noexecSeal', 'hugetlb', 'mseal',
      'memfdSecret', 'madvisePopulate'] as const) {
      assert.equal(typeof features[key], 'boolean', key);
    }
  });

  it('reports the running kernel release', () => {
    assert.equal(features.kernelRelease, release());
  });

  it('reads vm.memfd_noexec, or null where the sysctl is absent', () => {
    let expected: number | null = null;
    try { expected = Number(readFileSync('/proc/sys/vm/memfd_noexec', 'utf8')); } catch { /* absent */ }
    assert.equal(features.memfdNoexecSysctl, expected);
  });

  it('is consistent with the kernel version (mainline kernels; backports only add)', () => {
    assert.equal(features.memfd, true, 'memfd_create exists on every supported kernel');
    assert.equal(features.sealing, true);
    if (kernelAtLeast(5, 1)) assert.equal(features.futureWrite, true);
    if (kernelAtLeast(6, 3)) {
      assert.equal(features.sealExec, true);
      assert.equal(features.noexecSeal, true);
    }
    if (kernelAtLeast(6, 10) && process.arch === 'x64') assert.equal(features.mseal, true);
    if (kernelAtLeast(5, 14)) assert.equal(features.madvisePopulate, true);
  });

  it('probing left nothing behind', () => {
    // Loading the module already probed; re-running the probe must not change the counts.
    const fds = countFds();
    delete require.cache[require.resolve('../../src/kernel/features')];
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const again = require('../../src/kernel/features') as typeof import('../../src/kernel/features');
    // The hugetlb pools' page counts are the whole machine's (any process moves them): compare the rest.
    const stable = (f: typeof features) => JSON.parse(JSON.stringify(f, (k, v: unknown) => (k === 'free' || k === 'total' ? undefined : v))) as unknown;
    assert.deepEqual(stable(again.features), stable(features));
    assert.equal(countFds(), fds);
    assert.doesNotMatch(readFileSync('/proc/self/maps', 'utf8'), /memseal-probe|secretmem/, 'no probe mapping left');
  });
});
