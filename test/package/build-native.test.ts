// scripts/build-native.js (what `prepare` runs): builds only what is stale, and
// never leaves a checkout without an addon. Each case works on a copy of the
// build inputs in a temporary directory, never on this checkout's build/.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const ROOT = path.join(__dirname, '..', '..');
const ADDON = path.join('build', 'Release', 'memseal.node');

/** A checkout with this one's sources and build/, as if copied (or moved) to a new directory. */
function copiedCheckout(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'memseal-checkout-'));
  for (const entry of ['binding.gyp', 'native', 'scripts', 'build']) {
    cpSync(path.join(ROOT, entry), path.join(dir, entry), { recursive: true, preserveTimestamps: true });
  }
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  return dir;
}

function runScript(dir: string, env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, [path.join(dir, 'scripts', 'build-native.js')],
    { cwd: dir, encoding: 'utf8', timeout: 120000, env: { ...process.env, ...env } });
}

describe('scripts/build-native.js (prepare)', function () {
  this.timeout(150000);
  let dir = '';
  afterEach(() => { if (dir) rmSync(dir, { recursive: true, force: true }); dir = ''; });

  before(function () {
    if (!existsSync(path.join(ROOT, 'build', 'Makefile'))) this.skip(); // a prebuilt-only install has no build/ to copy
  });

  it('does nothing, silently, when the addon was built here and is newer than every input', () => {
    dir = copiedCheckout();
    // Make the copy "configured here", as after `install` in this directory.
    const makefile = path.join(dir, 'build', 'Makefile');
    writeFileSync(makefile, readFileSync(makefile, 'utf8').replaceAll(`"-Dmodule_root_dir=${ROOT}"`, `"-Dmodule_root_dir=${dir}"`));
    const future = new Date(Date.now() + 60000);
    utimesSync(path.join(dir, ADDON), future, future);
    // Without a compiler a build would fail: success proves none was attempted.
    const r = runScript(dir, { CXX: 'false', CC: 'false' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout + r.stderr, '');
  });

  it('a checkout configured elsewhere rebuilds, and keeps the working addon when the rebuild fails', () => {
    dir = copiedCheckout();
    const before = readFileSync(path.join(dir, ADDON));
    const r = runScript(dir, { CXX: 'false', CC: 'false' }); // configured in ROOT, not here: rebuild, which fails
    assert.notEqual(r.status, 0, 'a failed rebuild is reported');
    assert.match(r.stderr, /node-gyp rebuild failed; kept the addon that was there/);
    assert.ok(existsSync(path.join(dir, ADDON)), 'the addon is still there');
    assert.deepEqual(readFileSync(path.join(dir, ADDON)), before);
    assert.deepEqual(readFileSync(path.join(dir, ADDON)).subarray(0, 4), Buffer.from('\x7fELF', 'latin1'));
  });
});
