// SealedBuffer options.seals: a buffer carries exactly the seals asked for
// (F_SEAL_EXEC only when asked, or when vm.memfd_noexec forces it).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fstatSync } from 'node:fs';
import path from 'node:path';
import { features, getSeals, Seal, SealedBuffer } from '../../src';
import { FIXTURES, keepUntilTestEnds, skipUnless } from '../helpers';

const S = Seal;
const JOURNAL = S.SHRINK | S.GROW | S.WRITE | S.SEAL;  // what systemd-journald ≤ 252 demands, exactly

describe('SealedBuffer options.seals: exactly those seals', () => {
  const keep = keepUntilTestEnds<SealedBuffer>();

  it('from() without EXEC in options.seals carries no F_SEAL_EXEC', function () {
    skipUnless(this, features.memfdNoexecSysctl !== 2, 'vm.memfd_noexec=2 makes every memfd exec-sealed');
    const b = keep(SealedBuffer.from('entry', { seals: JOURNAL }));
    assert.equal(b.seals, JOURNAL);
    assert.equal(getSeals(b.fd), JOURNAL);
    assert.equal(b.bytes.toString(), 'entry');
  });

  it('create() too, for any subset', function () {
    skipUnless(this, features.memfdNoexecSysctl !== 2, 'vm.memfd_noexec=2 makes every memfd exec-sealed');
    for (const seals of [0, S.WRITE, S.SHRINK | S.GROW, JOURNAL, S.SHRINK | S.GROW | S.FUTURE_WRITE | S.SEAL]) {
      const b = keep(SealedBuffer.create(3, (bytes) => bytes.write('abc'), { seals }));
      assert.equal(getSeals(b.fd), seals, `seals 0x${seals.toString(16)}`);
    }
  });

  it('EXEC asked for: F_SEAL_EXEC and a non-executable mode (MFD_NOEXEC_SEAL)', function () {
    skipUnless(this, features.noexecSeal, 'MFD_NOEXEC_SEAL needs Linux ≥ 6.3');
    const b = keep(SealedBuffer.from('x', { seals: JOURNAL | S.EXEC }));
    assert.equal(getSeals(b.fd), JOURNAL | S.EXEC);
    assert.equal(fstatSync(b.fd).mode & 0o111, 0);
  });

  it('the default is unchanged: SHRINK|GROW|WRITE|SEAL, plus EXEC where the kernel has MFD_NOEXEC_SEAL', () => {
    const b = keep(SealedBuffer.from('x'));
    assert.equal(getSeals(b.fd), JOURNAL | (features.noexecSeal ? S.EXEC : 0));
  });

  it('vm.memfd_noexec 0/1/2 (own pid namespace): exact under 0 and 1, EXEC forced under 2', function () {
    skipUnless(this, features.noexecSeal && features.memfdNoexecSysctl !== null, 'vm.memfd_noexec needs Linux ≥ 6.3');
    const r = spawnSync('unshare', ['--pid', '--fork', process.execPath, path.join(FIXTURES, 'exact-seals-sysctl.js')],
      { encoding: 'utf8', timeout: 20000 });
    if (r.error || r.status === 125 || /unshare failed|Operation not permitted/.test(r.stderr)) {
      console.log(`      (skipped: cannot make a pid namespace here: ${r.error?.message ?? r.stderr.trim()})`);
      this.skip();
    }
    assert.equal(r.status, 0, r.stderr);
    const got = JSON.parse(r.stdout) as Record<string, Record<string, { seals: number; mode: number }>>;
    const exec = JOURNAL | S.EXEC;
    for (const v of ['0', '1']) {
      assert.deepEqual(got[v], {
        dfl: { seals: exec, mode: 0o666 }, exact: { seals: JOURNAL, mode: 0o777 }, exec: { seals: exec, mode: 0o666 },
      }, `vm.memfd_noexec=${v}`);
    }
    assert.deepEqual(got['2'], {
      dfl: { seals: exec, mode: 0o666 }, exact: { seals: exec, mode: 0o666 }, exec: { seals: exec, mode: 0o666 },
    }, 'vm.memfd_noexec=2');
  });
});
