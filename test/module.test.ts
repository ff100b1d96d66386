import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { features } from '../src';

const ROOT = path.join(__dirname, '..');

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

  it('ships type declarations for both', () => {
    const pkg = require('../package.json') as { types: string; exports: Record<string, Record<string, { types: string }>> };
    assert.equal(pkg.types, 'dist/index.d.ts');
    assert.equal(pkg.exports['.']!.import!.types, './dist/index.d.mts');
    assert.equal(pkg.exports['.']!.require!.types, './dist/index.d.ts');
  });

  it('the loaded addon was compiled without C++ exceptions (it references no __cxa_throw)', () => {
    void features;  // the addon is loaded
    const line = readFileSync('/proc/self/maps', 'utf8').split('\n').find((l) => l.endsWith('memseal.node'));
    assert.ok(line, 'memseal.node is not mapped');
    const file = line.slice(line.indexOf('/'));
    assert.equal(readFileSync(file).includes('__cxa_throw'), false, `${file} can throw C++ exceptions`);
  });
});
