// The published types (dist/*.d.ts, dist/index.d.mts through package.json "exports"), as a strict
// TypeScript consumer sees them: test-types/ok.* must compile and every line of test-types/fail.mts
// marked @ts-expect-error must not, under module node16, nodenext and bundler.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ensureBuilt } from '../built';

const ROOT = path.join(__dirname, '..', '..');
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

describe('published types (test-types/)', function () {
  this.timeout(120000);

  before(function () {
    this.timeout(120000);
    ensureBuilt();
  });

  it('fail.mts holds the mistakes it claims (one @ts-expect-error per mistake)', () => {
    const text = readFileSync(path.join(ROOT, 'test-types', 'fail.mts'), 'utf8');
    assert.ok((text.match(/@ts-expect-error/g) ?? []).length >= 12);
  });

  for (const mode of ['node16', 'nodenext', 'bundler']) {
    it(`compiles under module ${mode}, and the mistakes do not`, () => {
      const r = spawnSync(process.execPath, [TSC, '-p', path.join(ROOT, 'test-types', `tsconfig.${mode}.json`)],
        { cwd: ROOT, encoding: 'utf8' });
      assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    });
  }
});
