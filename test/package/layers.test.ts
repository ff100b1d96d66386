// The layer map of src/ (scripts/check-layers.js): imports only point down, and no cycle.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.join(__dirname, '..', '..');
const SCRIPT = path.join(ROOT, 'scripts', 'check-layers.js');

function check(src: string): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [SCRIPT, src], { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('src/ layers', () => {
  let dir = '';
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'memseal-layers-'));
    cpSync(path.join(ROOT, 'src'), path.join(dir, 'src'), { recursive: true });
  });
  afterEach(() => { rmSync(dir, { recursive: true, force: true }); });

  it('the tree as it is passes: imports only downward, no cycle', () => {
    const r = check(path.join(ROOT, 'src'));
    assert.equal(r.status, 0, r.out);
  });

  it('an import from a lower layer into a higher one fails the check', () => {
    appendFileSync(path.join(dir, 'src', 'kernel', 'mapping.ts'), "\nimport { SealedBuffer } from '../sealed/sealed';\nvoid SealedBuffer;\n");
    const r = check(path.join(dir, 'src'));
    assert.equal(r.status, 1, r.out);
    assert.match(r.out, /kernel\/mapping\.ts imports sealed\/sealed\.ts: layer 'kernel' \(1\) may not import 'sealed' \(3\)/);
  });

  it('an import sideways between two folders of the same rank fails the check', () => {
    appendFileSync(path.join(dir, 'src', 'memory', 'arena.ts'), "\nimport { Channel } from '../channel/channel';\nvoid Channel;\n");
    const r = check(path.join(dir, 'src'));
    assert.equal(r.status, 1, r.out);
    assert.match(r.out, /memory\/arena\.ts imports channel\/channel\.ts/);
  });

  it('a cycle inside one folder fails the check', () => {
    appendFileSync(path.join(dir, 'src', 'kernel', 'errors.ts'), "\nimport type { Mapping } from './mapping';\nexport type _M = Mapping;\n");
    const r = check(path.join(dir, 'src'));
    assert.equal(r.status, 1, r.out);
    assert.match(r.out, /import cycle: .*kernel\/errors\.ts/);
  });
});
