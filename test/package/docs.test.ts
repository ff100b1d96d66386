// Every ```ts and ```js snippet in README.md and docs/*.md runs as written.
//
// Conventions (see CONTRIBUTING notes in docs/api.md, "Examples in these docs"):
//   - a ```ts snippet runs as an ES module (top-level await, `using`), a ```js one as CommonJS;
//   - a snippet whose first line is `// file: <name>` is not run: it is written to <name> next to
//     the others of the same document (a worker script a snippet spawns);
//   - `<!-- snippet: not run (<reason>) -->` on the line before the fence skips it (signatures);
//   - `<!-- snippet: needs <feature> -->` runs it only where `features.<feature>` is true.
// `'memseal'` resolves as in a project that depends on this checkout (node_modules/memseal -> here, so
// through package.json "exports" to dist/), in the snippet and in every process or thread it starts;
// tsx only compiles the TypeScript of the snippets themselves.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureBuilt } from '../built';
import { pathToFileURL } from 'node:url';
import { features } from '../../src';

const ROOT = path.join(__dirname, '..', '..');
const TSX_LOADER = pathToFileURL(path.join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;

export interface Snippet {
  doc: string;
  line: number;
  lang: 'ts' | 'js';
  code: string;
  /** `// file: <name>`: a helper file, not run. */
  file?: string;
  skip?: string;
  needs?: string;
}

/** The ```ts and ```js blocks of a Markdown file, with the directive comment before each. */
export function snippets(doc: string): Snippet[] {
  const lines = readFileSync(path.join(ROOT, doc), 'utf8').split('\n');
  const out: Snippet[] = [];
  for (let i = 0; i < lines.length; i++) {
    const fence = /^```(ts|js)\s*$/.exec(lines[i]!);
    if (!fence) {
      if (/^```/.test(lines[i]!)) { // another language: skip to its end
        for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++);
      }
      continue;
    }
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
    const s: Snippet = { doc, line: start + 1, lang: fence[1] as 'ts' | 'js', code: body.join('\n') + '\n' };
    const directive = /^<!-- snippet: (.*) -->$/.exec(lines[start - 1] ?? '');
    if (directive) {
      const skip = /^not run \((.+)\)$/.exec(directive[1]!);
      const needs = /^needs (\w+)$/.exec(directive[1]!);
      assert.ok(skip || needs, `${doc}:${start}: unknown snippet directive "${directive[1]}"`);
      if (skip) s.skip = skip[1];
      if (needs) s.needs = needs[1];
    }
    const file = /^\/\/ file: (\S+)$/.exec(body[0] ?? '');
    if (file) s.file = file[1];
    out.push(s);
  }
  return out;
}

/**
 * What the snippet says it prints: the trailing comment of each `console.log(...)` line, quotes
 * stripped, up to an explanation after ' — '.
 */
export function printed(code: string): string[] {
  const out: string[] = [];
  for (const line of code.split('\n')) {
    const m = /console\.log\(.*\/\/ (.+)$/.exec(line);
    if (!m) continue;
    let text = m[1]!.split(' — ')[0]!.trim();
    if (/^'.*'$/.test(text)) text = text.slice(1, -1);
    out.push(text);
  }
  return out;
}


export const DOCS = ['README.md', ...readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];

describe('documentation snippets run as written', function () {
  this.timeout(60000);

  before(function () {
    this.timeout(120000);
    ensureBuilt();
  });

  for (const doc of DOCS) {
    const all = snippets(doc);
    if (all.length === 0) continue;
    describe(doc, () => {
      let dir = '';
      const results = new Map<Snippet, Promise<Run>>();
      before(() => {
        dir = mkdtempSync(path.join(os.tmpdir(), 'memseal-doc-'));
        mkdirSync(path.join(dir, 'node_modules'));
        symlinkSync(ROOT, path.join(dir, 'node_modules', 'memseal'));
        // apache-arrow, memseal/arrow's optional peer dependency, as a project that uses it installs it
        symlinkSync(path.join(ROOT, 'node_modules', 'apache-arrow'), path.join(dir, 'node_modules', 'apache-arrow'));
        for (const s of all) if (s.file) writeFileSync(path.join(dir, s.file), s.code);
        // Start this document's snippets now, a few at a time; each test below awaits its own.
        for (const s of all) if (!s.file && !s.skip && featurePresent(s.needs)) results.set(s, limit(() => runSnippet(dir, s)));
      });
      after(() => { rmSync(dir, { recursive: true, force: true }); });

      for (const s of all) {
        if (s.file) continue;
        it(`${doc}:${s.line} (${s.lang})`, async function () {
          if (s.skip) this.skip(); // a signature, not a program: the directive says why
          if (!featurePresent(s.needs)) {
            console.log(`      (skipped: this kernel lacks ${s.needs})`);
            this.skip();
          }
          const r = await results.get(s)!;
          assert.equal(r.status, 0, `${doc}:${s.line} exited ${r.status ?? r.signal}\n${r.stdout}${r.stderr}`);
          assert.doesNotMatch(r.stderr, /Error|Warning/, `${doc}:${s.line} wrote to stderr:\n${r.stderr}`);
          for (const expected of printed(s.code)) {
            assert.ok(r.stdout.includes(expected), `${doc}:${s.line} should print "${expected}"; it printed:\n${r.stdout}`);
          }
        });
      }
    });
  }
});

interface Run { status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

function featurePresent(needs: string | undefined): boolean {
  if (needs === undefined) return true;
  assert.ok(needs in features, `unknown feature ${needs}`);
  return Boolean((features as unknown as Record<string, unknown>)[needs]);
}

function runSnippet(dir: string, s: Snippet): Promise<Run> {
  const file = path.join(dir, `snippet-${s.line}.${s.lang === 'ts' ? 'mts' : 'cjs'}`);
  writeFileSync(file, s.code);
  return new Promise((resolve) => {
    execFile(process.execPath, [file], {
      cwd: dir, encoding: 'utf8', timeout: 50000,
      env: { ...process.env, NODE_OPTIONS: `--import=${TSX_LOADER}` },
    }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: number | string; signal?: NodeJS.Signals }) | null;
      resolve({ status: e === null ? 0 : typeof e.code === 'number' ? e.code : null, signal: e?.signal ?? null, stdout, stderr });
    });
  });
}

/** Runs at most three snippets at once: each is a Node process (and some start more). */
const limit = (() => {
  let running = 0;
  const waiting: (() => void)[] = [];
  return async <T>(job: () => Promise<T>): Promise<T> => {
    if (running >= 3) await new Promise<void>((go) => waiting.push(go));
    running++;
    try {
      return await job();
    } finally {
      running--;
      waiting.shift()?.();
    }
  };
})();

describe('docs/api.md covers every export', () => {
  it('names every export of the package in its export table, and nothing that is not exported', async () => {
    const api = readFileSync(path.join(ROOT, 'docs', 'api.md'), 'utf8');
    const table = api.slice(api.indexOf('## Every export'));
    const listed = new Set([...table.matchAll(/^\| ([^|]+) \|/gm)].flatMap((m) => [...m[1]!.matchAll(/`(\w+)`/g)].map((x) => x[1]!)));
    const index = readFileSync(path.join(ROOT, 'src', 'index.ts'), 'utf8');
    const exported = new Set([...index.matchAll(/export (?:type )?\{([^}]*)\}/g)]
      .flatMap((m) => m[1]!.split(',').map((n) => n.trim().replace(/^type /, '')).filter(Boolean)));
    assert.deepEqual([...exported].filter((n) => !listed.has(n)), [], 'exported but not in docs/api.md "Every export"');
    assert.deepEqual([...listed].filter((n) => !exported.has(n)), [], 'listed in docs/api.md but not exported');
  });
});
