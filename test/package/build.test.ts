// The suite imports ../src through tsx while fixtures and benchmarks
// require('../..'), which is dist/. `npm test` builds dist first; this proves
// that what a child process loads was compiled from src/ as it is now.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as memseal from '../../src';
import { runFixture } from '../helpers';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { sourceHash, sourceFiles } = require('../../scripts/source-hash.js') as {
  sourceHash(dir?: string): string; sourceFiles(dir: string): string[];
};

describe('the build that fixtures load', () => {
  it('was compiled from src/ as it is now, and exports what the suite imports', () => {
    const r = runFixture('source-hash.js');
    assert.equal(r.status, 0, r.stderr);
    const loaded = JSON.parse(r.stdout) as { entry: string; sha256: string; exports: string[] };
    assert.equal(loaded.entry, path.join(__dirname, '..', '..', 'dist', 'index.js'));
    assert.equal(loaded.sha256, sourceHash(),
      'dist/ is stale: a fixture would run old code (npm test runs `npm run build:ts` first)');
    assert.deepEqual(loaded.exports, Object.keys(memseal).filter((k) => k !== 'default').sort());
  });
});

describe('the source hash (scripts/source-hash.js)', () => {
  let copy = '';
  beforeEach(() => {
    copy = fs.mkdtempSync(path.join(os.tmpdir(), 'memseal-src-'));
    fs.cpSync(path.join(__dirname, '..', '..', 'src'), copy, { recursive: true });
  });
  afterEach(() => { fs.rmSync(copy, { recursive: true, force: true }); });

  it('covers the files in subdirectories of src/: an edit under src/pubsub/ makes the build stale', () => {
    assert.ok(sourceFiles(copy).includes('pubsub/publisher.ts'), sourceFiles(copy).join(' '));
    const before = sourceHash(copy);
    assert.equal(before, sourceHash(), 'a copy of src/ hashes as src/ does: the hash depends on relative paths only');
    fs.appendFileSync(path.join(copy, 'pubsub', 'publisher.ts'), '// edited\n');
    assert.notEqual(sourceHash(copy), before);
  });

  it('depends on where a file is, not only on its name and contents', () => {
    const before = sourceHash(copy);
    fs.renameSync(path.join(copy, 'pubsub', 'loan.ts'), path.join(copy, 'loan.ts'));
    assert.notEqual(sourceHash(copy), before);
  });
});

describe('source maps in dist/', () => {
  it('carry their sources (sourcesContent), since src/ is not in the package', () => {
    const dist = path.join(__dirname, '..', '..', 'dist');
    const maps = (fs.readdirSync(dist, { recursive: true }) as string[]).filter((f) => f.endsWith('.js.map'));
    assert.ok(maps.length >= 30, `only ${maps.length} source maps in dist/`);
    for (const m of maps) {
      const map = JSON.parse(fs.readFileSync(path.join(dist, m), 'utf8')) as { sources: string[]; sourcesContent?: (string | null)[] };
      assert.equal(map.sourcesContent?.length, map.sources.length, `${m} has no sourcesContent: a debugger cannot show ${map.sources.join(', ')}`);
      assert.ok(map.sourcesContent!.every((s) => typeof s === 'string' && s.length > 0), m);
    }
  });
});
