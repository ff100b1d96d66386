// Property-based fuzzing of the public API (test/fuzz/targets.ts), each group
// in its own child process so a crash (abort, SIGSEGV) fails this test instead
// of killing mocha. MEMSEAL_FUZZ_RUNS sets the cases per target (default 60:
// about 2,000 calls in a few seconds); MEMSEAL_FUZZ_SEED replays a failure.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { GROUPS } from '../fuzz/targets';

const RUNNER = path.join(__dirname, '..', 'fuzz', 'run.ts');

describe('fuzzing (fast-check, in child processes)', function () {
  this.timeout(180000);
  let total = 0;
  after(() => { if (total > 0) console.log(`      (${total} fuzz cases run)`); });

  for (const group of Object.keys(GROUPS)) {
    it(`${group}: every call returns or throws an error with a code; no crash, no leaked fd or memfd mapping`, () => {
      const r = spawnSync(process.execPath, ['--expose-gc', '--require', 'tsx/cjs', RUNNER, group], {
        encoding: 'utf8', timeout: 170000, cwd: path.join(__dirname, '..', '..'),
      });
      assert.equal(r.signal, null, `fuzz child for ${group} died of ${r.signal}:\n${r.stderr.slice(-4000)}`);
      const line = r.stdout.trim().split('\n').pop() ?? '';
      let report: { seed: number; runs: number; failures: string[] };
      try {
        report = JSON.parse(line) as typeof report;
      } catch {
        assert.fail(`fuzz child for ${group} exited ${r.status} without a report:\n${r.stderr.slice(-4000)}`);
      }
      assert.deepEqual(report.failures, [], `replay with MEMSEAL_FUZZ_SEED=${report.seed}`);
      assert.equal(r.status, 0, r.stderr.slice(-4000));
      assert.ok(report.runs > 0);
      total += report.runs;
    });
  }
});
