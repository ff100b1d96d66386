// The package as users load it: require and import of 'memseal' and its
// subpaths, the shipped types, and the native addon loader.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { features } from '../../src';
import { addonPath } from '../../src/kernel/binding';

const ROOT = path.join(__dirname, '..', '..');

function node(args: string[]): string {
  return execFileSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8' });
}

describe('the package entry points', () => {
  it('require(\'memseal\') loads the CommonJS build', () => {
    const out = node(['-e', `
      const m = require('memseal');
      const fd = m.memfdCreate('cjs');
      m.addSeals(fd, m.Seal.SEAL);
      console.log(typeof m.mmap, m.getSeals(fd), Object.keys(m).length > 10);`]);
    assert.equal(out, 'function 1 true\n');
  });

  it('import { memfdCreate } from \'memseal\' works, sharing one instance with require', () => {
    const out = node(['--input-type=module', '-e', `
      import { memfdCreate, getSeals, Mapping, features } from 'memseal';
      import def from 'memseal';
      import { createRequire } from 'node:module';
      const cjs = createRequire(import.meta.url)('memseal');
      const fd = memfdCreate('esm');
      console.log(getSeals(fd), Mapping === cjs.Mapping, features === cjs.features, def === cjs,
        Object.keys(cjs).every((k) => k in def));`]);
    assert.equal(out, '0 true true true true\n');
  });

  it("'memseal/inspect' is the inspection entry, for require and import, the same functions as the root's", () => {
    const out = node(['--input-type=module', '-e', `
      import { inspect, inspectPools } from 'memseal/inspect';
      import { createRequire } from 'node:module';
      const require = createRequire(import.meta.url);
      const cjs = require('memseal/inspect');
      const root = require('memseal');
      const me = inspect(process.pid)[0];
      console.log(typeof inspectPools, inspect === cjs.inspect, inspect === root.inspect, me.pid === process.pid);`]);
    assert.equal(out, 'function true true true\n');
  });

  it('ships type declarations for both', () => {
    const pkg = JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { types: string; exports: Record<string, Record<string, { types: string }>> };
    assert.equal(pkg.types, 'dist/index.d.ts');
    assert.equal(pkg.exports['.']!.import!.types, './dist/index.d.mts');
    assert.equal(pkg.exports['.']!.require!.types, './dist/index.d.ts');
  });

  it('the loaded addon was compiled without C++ exceptions (it references no __cxa_throw)', () => {
    void features;  // the addon is loaded
    const line = readFileSync('/proc/self/maps', 'utf8').split('\n').find((l) => l.endsWith('.node'));
    assert.ok(line, 'memseal.node is not mapped');
    const file = line.slice(line.indexOf('/'));
    assert.equal(readFileSync(file).includes('__cxa_throw'), false, `${file} can throw C++ exceptions`);
  });
});

describe('the native addon loader (src/binding.ts)', () => {

  it('loads a source build when there is one, and that is the file mapped into the process', () => {
    // MEMSEAL_PREBUILD=<dir> (node-gyp-build) looks in <dir> instead of the package
    const override = process.env.MEMSEAL_PREBUILD;
    if (override) assert.ok(addonPath.startsWith(override + path.sep), addonPath);
    else assert.equal(addonPath, path.join(ROOT, 'build', 'Release', 'memseal.node'));
    const mapped = readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.endsWith('.node'));
    assert.ok(mapped.some((l) => l.endsWith(` ${addonPath}`)), mapped.join('\n'));
  });

  it('falls back to the prebuilt binary, and says how to build when none fits', () => {
    // A copy of the package without build/, the addon only under prebuilds/ (what npm pack ships).
    const dir = mkdtempSync(path.join(tmpdir(), 'memseal-loader-'));
    try {
      const prebuilds = path.join(dir, 'prebuilds', `linux-${process.arch}`);
      mkdirSync(prebuilds, { recursive: true });
      cpSync(addonPath, path.join(prebuilds, 'memseal.napi.glibc.node'));
      cpSync(path.join(ROOT, 'package.json'), path.join(dir, 'package.json'));
      cpSync(path.join(ROOT, 'dist'), path.join(dir, 'dist'), { recursive: true });
      symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
      const probe = `const m = require(${JSON.stringify(dir)}); console.log(typeof m.memfdCreate, require(${JSON.stringify(path.join(dir, 'dist', 'kernel', 'binding.js'))}).addonPath)`;
      const env = { ...process.env, MEMSEAL_PREBUILD: '' };
      const ok = spawnSync(process.execPath, ['-e', probe], { encoding: 'utf8', env });
      assert.equal(ok.stdout, `function ${path.join(prebuilds, 'memseal.napi.glibc.node')}\n`, ok.stderr);
      const none = spawnSync(process.execPath, ['-e', probe], { encoding: 'utf8', env: { ...env, LIBC: 'musl' } });
      assert.notEqual(none.status, 0);
      assert.match(none.stderr, /memseal: no native addon fits this machine/);
      assert.match(none.stderr, /npm rebuild memseal/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

