// The suite imports ../src through tsx while fixtures and benchmarks
// require('../..'), which is dist/. `npm test` builds dist first; this proves
// that what a child process loads was compiled from src/ as it is now.
import assert from 'node:assert/strict';
import path from 'node:path';
import * as memseal from '../src';
import { runFixture } from './helpers';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { sourceHash } = require('../scripts/source-hash.js') as { sourceHash(): string };

describe('the build that fixtures load', () => {
  it('was compiled from src/ as it is now, and exports what the suite imports', () => {
    const r = runFixture('source-hash.js');
    assert.equal(r.status, 0, r.stderr);
    const loaded = JSON.parse(r.stdout) as { entry: string; sha256: string; exports: string[] };
    assert.equal(loaded.entry, path.join(__dirname, '..', 'dist', 'index.js'));
    assert.equal(loaded.sha256, sourceHash(),
      'dist/ is stale: a fixture would run old code (npm test runs `npm run build:ts` first)');
    assert.deepEqual(loaded.exports, Object.keys(memseal).filter((k) => k !== 'default').sort());
  });
});
