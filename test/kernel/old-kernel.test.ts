// Old kernels, emulated: test/fixtures/old-kernel.c installs a seccomp filter
// that makes this kernel answer like Linux 5.10-5.13 (no mseal, memfd_secret,
// MFD_NOEXEC_SEAL/MFD_EXEC, F_SEAL_EXEC, MADV_POPULATE_*), then runs
// test/fixtures/old-kernel.js under it. memseal must detect each as missing,
// keep its high-level objects working, and explain every refusal.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FIXTURES } from '../helpers';

interface Failure { code: string; hint: string | null; message: string }
interface Report {
  features: Record<string, unknown>;
  errors: Record<string, Failure | null>;
  sealed: { seals: string[]; mode: string; text: string };
  channel: { text: string; meta: string };
  arena: { sealed: boolean; sealedWith: string };
  secretFallback: { kind: string; length: number };
}

describe('on an emulated old kernel (seccomp: Linux 5.10-5.13 answers)', function () {
  this.timeout(60000);
  let dir = '';
  let report: Report;

  before(function () {
    const cc = spawnSync('sh', ['-c', 'command -v cc'], { encoding: 'utf8' });
    if (cc.status !== 0) {
      console.log('      (skipped: no C compiler (cc) to build the seccomp launcher)');
      this.skip();
    }
    dir = mkdtempSync(path.join(os.tmpdir(), 'memseal-old-kernel-'));
    const launcher = path.join(dir, 'old-kernel');
    const build = spawnSync('cc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', launcher, path.join(FIXTURES, 'old-kernel.c')], { encoding: 'utf8' });
    assert.equal(build.status, 0, build.stderr);
    const run = spawnSync(launcher, [process.execPath, path.join(FIXTURES, 'old-kernel.js')], { encoding: 'utf8', timeout: 30000 });
    assert.equal(run.status, 0, `${run.stderr}${run.stdout}`);
    report = JSON.parse(run.stdout) as Report;
  });
  after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

  it('features reports the newer features as missing, the old ones as present', () => {
    const f = report.features;
    assert.deepEqual(
      { mseal: f.mseal, memfdSecret: f.memfdSecret, noexecSeal: f.noexecSeal, sealExec: f.sealExec, madvisePopulate: f.madvisePopulate },
      { mseal: false, memfdSecret: false, noexecSeal: false, sealExec: false, madvisePopulate: false });
    assert.deepEqual({ memfd: f.memfd, sealing: f.sealing, futureWrite: f.futureWrite }, { memfd: true, sealing: true, futureWrite: true });
  });

  it('SealedBuffer still works: created without MFD_NOEXEC_SEAL, sealed, verified, passed over a channel', () => {
    assert.deepEqual(report.sealed.seals, ['seal', 'shrink', 'grow', 'write']);
    assert.equal(report.sealed.text, 'still works');
    assert.deepEqual(report.channel, { text: 'still works', meta: 'meta' });
  });

  it('WriteOnceArena seals with mprotect only, and says so when mseal is demanded', () => {
    assert.deepEqual(report.arena, { sealed: true, sealedWith: 'mprotect' });
    assert.equal(report.errors.arenaDemandsMseal?.code, 'ERR_MEMSEAL_UNSUPPORTED');
    assert.match(report.errors.arenaDemandsMseal!.message + (report.errors.arenaDemandsMseal!.hint ?? ''), /6\.10/);
  });

  it('SecretBuffer throws ERR_MEMSEAL_UNSUPPORTED with a hint, and the mlock fallback works', () => {
    assert.equal(report.errors.secretBuffer?.code, 'ERR_MEMSEAL_UNSUPPORTED');
    assert.ok(report.errors.secretBuffer!.hint, 'a hint');
    assert.deepEqual(report.secretFallback, { kind: 'mlock', length: 32 });
  });

  it('every low-level refusal carries a hint naming the kernel version', () => {
    const expect: [string, string, RegExp][] = [
      ['memfdNoexecSeal', 'EINVAL', /6\.3/],
      ['memfdExec', 'EINVAL', /6\.3/],
      ['sealExec', 'EINVAL', /6\.3/],
      ['memfdSecret', 'ENOSYS', /5\.14/],
      ['mseal', 'ENOSYS', /6\.10/],
      ['populateWrite', 'EINVAL', /5\.14/],
    ];
    for (const [name, code, version] of expect) {
      const err = report.errors[name];
      assert.ok(err, `${name} did not fail`);
      assert.equal(err.code, code, name);
      assert.match(err.hint ?? '', version, `${name}: hint ${err.hint}`);
    }
  });
});
