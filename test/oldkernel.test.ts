// Old kernels, emulated: test/fixtures/old-kernel.c installs a seccomp filter
// that answers mseal/memfd_secret with ENOSYS and MFD_NOEXEC_SEAL/MFD_EXEC/
// F_SEAL_EXEC with EINVAL, as Linux < 6.3 does, then runs a fixture that
// exercises memseal. memseal must report the features as absent, keep the
// high level working, and give every error its hint.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as memseal from '../src';
import { FIXTURES } from './helpers';

type Outcome = { ok: true; value: unknown } | { ok: false; name: string; code?: string; message: string; hint: string | null };
interface Report { features: typeof memseal.features; steps: Record<string, Outcome> }

function failure(o: Outcome | undefined): Extract<Outcome, { ok: false }> {
  assert.ok(o, 'step missing');
  assert.equal(o.ok, false, `expected a failure, got ${JSON.stringify(o)}`);
  return o as Extract<Outcome, { ok: false }>;
}

function success(o: Outcome | undefined): unknown {
  assert.ok(o, 'step missing');
  assert.equal(o.ok, true, `expected success, got ${JSON.stringify(o)}`);
  return (o as { value: unknown }).value;
}

/** Compiles old-kernel.c with cc; null (and the reason) if there is no compiler. */
export function buildOldKernelLauncher(dir: string): { bin: string | null; why?: string } {
  const bin = path.join(dir, 'old-kernel');
  const cc = process.env.CC ?? 'cc';
  const r = spawnSync(cc, ['-O2', '-Wall', '-Wextra', '-Werror', '-o', bin, path.join(FIXTURES, 'old-kernel.c')], { encoding: 'utf8' });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') return { bin: null, why: `no C compiler (${cc})` };
  assert.equal(r.status, 0, `cc failed: ${r.stderr}`);
  return { bin };
}

describe('old kernels (seccomp emulation of Linux < 6.3 without mseal / memfd_secret)', function () {
  this.timeout(60000);
  let dir: string;
  let report: Report;

  before(function () {
    dir = mkdtempSync(path.join(tmpdir(), 'memseal-oldkernel-'));
    const { bin, why } = buildOldKernelLauncher(dir);
    if (bin === null) {
      console.log(`      (skipped: ${why}; cannot build the seccomp launcher)`);
      this.skip();
    }
    const r = spawnSync(bin, [process.execPath, path.join(FIXTURES, 'old-kernel-check.js')], { encoding: 'utf8', timeout: 30000 });
    assert.equal(r.status, 0, `fixture failed (signal ${r.signal}): ${r.stderr}`);
    report = JSON.parse(r.stdout) as Report;
  });

  after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

  it('reports mseal, memfd_secret, MFD_NOEXEC_SEAL and F_SEAL_EXEC as absent', () => {
    const f = report.features;
    assert.equal(f.mseal, false);
    assert.equal(f.memfdSecret, false);
    assert.equal(f.noexecSeal, false);
    assert.equal(f.sealExec, false);
    // what the filter leaves alone is still there
    assert.equal(f.memfd, true);
    assert.equal(f.sealing, true);
    assert.equal(f.futureWrite, memseal.features.futureWrite);
  });

  it('memfdCreate(MFD_NOEXEC_SEAL / MFD_EXEC) throws EINVAL with a version hint', () => {
    for (const step of ['memfdNoexecSeal', 'memfdExec']) {
      const e = failure(report.steps[step]);
      assert.equal(e.code, 'EINVAL');
      assert.match(e.message, /^EINVAL: invalid argument, memfd_create$/);
      assert.match(e.hint ?? '', /Linux ≥ 6\.3/);
    }
    assert.equal(success(report.steps.memfdPlain), true);
  });

  it('addSeals(F_SEAL_EXEC) throws EINVAL with a version hint; FUTURE_WRITE still works', () => {
    const e = failure(report.steps.sealExec);
    assert.equal(e.code, 'EINVAL');
    assert.match(e.hint ?? '', /Linux ≥ 6\.3 \(F_SEAL_EXEC\)/);
    if (memseal.features.futureWrite) assert.equal(success(report.steps.sealFutureWrite), memseal.Seal.FUTURE_WRITE);
  });

  it('memfdSecret() throws ENOSYS with a hint', () => {
    const e = failure(report.steps.memfdSecret);
    assert.equal(e.code, 'ENOSYS');
    assert.match(e.hint ?? '', /Linux ≥ 5\.14/);
  });

  it('mseal() and Mapping#seal() throw ENOSYS with a hint, and leave the mapping unsealed', () => {
    for (const step of ['mseal', 'mappingSeal']) {
      const e = failure(report.steps[step]);
      assert.equal(e.code, 'ENOSYS');
      assert.match(e.hint ?? '', /Linux ≥ 6\.10/);
    }
  });

  it('SealedBuffer still works (created without MFD_NOEXEC_SEAL, no EXEC seal)', () => {
    const v = success(report.steps.sealedBuffer) as { seals: number; verified: boolean; text: string };
    const { Seal } = memseal;
    assert.equal(v.seals, Seal.SHRINK | Seal.GROW | Seal.WRITE | Seal.SEAL);
    assert.equal(v.verified, true);
    assert.equal(v.text, 'hello, old kernel');
  });

  it('WriteOnceArena falls back to mprotect', function () {
    if (!('arena' in report.steps)) {
      console.log('      (skipped: WriteOnceArena is not in this build)');
      this.skip();
    }
    const v = success(report.steps.arena) as { sealed: boolean; sealedWith: string; text: string };
    assert.deepEqual(v, { sealed: true, sealedWith: 'mprotect', text: 'write once' });
    const forced = report.steps.arenaMsealForced;
    if (forced && !forced.ok) {
      assert.ok(forced.code === 'ENOSYS' || forced.code === 'ERR_MEMSEAL_UNSUPPORTED', JSON.stringify(forced));
      assert.ok(forced.hint, 'the error carries a hint');
    }
  });

  it('SecretBuffer throws ERR_MEMSEAL_UNSUPPORTED with a hint, or uses its mlock fallback', function () {
    if (!('secret' in report.steps)) {
      console.log('      (skipped: SecretBuffer is not in this build)');
      this.skip();
    }
    const e = failure(report.steps.secret);
    assert.equal(e.code, 'ERR_MEMSEAL_UNSUPPORTED');
    assert.ok(e.hint, 'the error carries a hint');
    assert.equal(success(report.steps.secretFallback), 'mlock');
  });

  it('every failure carries a hint', () => {
    for (const [name, o] of Object.entries(report.steps)) {
      if (!o.ok) assert.ok(o.hint, `${name}: ${o.message} has no hint`);
    }
  });
});
