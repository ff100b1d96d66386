// The README's benchmark figures and docs/bench.md come from docs/bench.json (one run): the structure is
// checked here — the same figures, rows, targets and reproduce commands — never the timing itself.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

interface Headline { id: string; label: string; value: number | null; text: string; command: string; target: string | null }
// eslint-disable-next-line @typescript-eslint/no-require-imports
const headlines = require('../../bench/headlines.js') as {
  HEADLINES: { id: string; only: string }[];
  compute(r: unknown): Headline[];
  readmeBlock(r: unknown): string;
  replaceBlock(text: string, block: string): string;
  readmeMismatches(text: string, r: unknown): string[];
};

const root = path.join(__dirname, '..', '..');
const read = (f: string): string => fs.readFileSync(path.join(root, f), 'utf8');
const published = (): unknown => JSON.parse(read('docs/bench.json'));

describe('published benchmark figures', () => {
  it('the README quotes exactly the headline figures of docs/bench.json, each with its standalone command', () => {
    assert.deepEqual(headlines.readmeMismatches(read('README.md'), published()), []);
  });

  it('the structure check notices a README figure that docs/bench.json does not give', () => {
    const readme = read('README.md');
    const first = headlines.compute(published()).find((h) => h.value !== null);
    assert.ok(first, 'docs/bench.json gives no headline figure');
    const edited = readme.replace(`| ${first.text} |`, `| ${(first.value! * 2).toFixed(2)}${first.text.replace(/^[\d.]+/, '')} |`);
    assert.notEqual(edited, readme);
    assert.ok(headlines.readmeMismatches(edited, published()).length > 0);
    // and a row left out
    const dropped = readme.split('\n').filter((l) => !l.includes(first.command) || !l.includes(first.label)).join('\n');
    assert.ok(headlines.readmeMismatches(dropped, published()).length > 0);
  });

  it('docs/bench.md gives every headline with a target beside the command that reproduces it', () => {
    const md = read('docs/bench.md');
    for (const h of headlines.compute(published())) {
      if (h.value === null || h.target === null) continue;
      const row = md.split('\n').find((l) => l.startsWith(`| ${h.label} |`));
      assert.ok(row, `docs/bench.md has no targets row for '${h.label}'`);
      assert.ok(row.includes(`| ${h.text} |`), `docs/bench.md: '${h.label}' is not ${h.text}`);
      assert.ok(row.includes(`\`${h.command}\``), `docs/bench.md: '${h.label}' lacks \`${h.command}\``);
    }
  });

  it('every reproduce command names a section bench/run.js runs', () => {
    const run = read('bench/run.js');
    const sections = /const SECTIONS = \{([\s\S]*?)\n\};/.exec(run)?.[1] ?? '';
    const names = [...sections.matchAll(/^ {2}(\w+): \{/gm)].map((m) => m[1]);
    assert.ok(names.length >= 6, `could not read the sections of bench/run.js (${names.join(', ')})`);
    for (const h of headlines.HEADLINES) assert.ok(names.includes(h.only), `headline ${h.id}: no section '${h.only}'`);
  });
});
