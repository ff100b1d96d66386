// Tests that use the package as a dependent project would (through package.json
// "exports": dist/) first make sure dist/ is built from the current src/.
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.join(__dirname, '..');

function mtime(file: string): number {
  try { return statSync(file).mtimeMs; } catch { return -1; }
}

/** Runs `npm run build:ts`'s steps when dist/ is missing or older than a file in src/. */
export function ensureBuilt(): void {
  const built = Math.min(mtime(path.join(ROOT, 'dist', 'index.js')), mtime(path.join(ROOT, 'dist', 'index.d.mts')));
  const newest = Math.max(...readdirSync(path.join(ROOT, 'src')).map((f) => mtime(path.join(ROOT, 'src', f))));
  if (built >= newest) return;
  const run = (file: string, args: string[]) => execFileSync(process.execPath, [file, ...args], { cwd: ROOT, stdio: 'inherit' });
  run(path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), ['-p', 'tsconfig.json']);
  run(path.join(ROOT, 'scripts', 'gen-esm.js'), []);
  run(path.join(ROOT, 'scripts', 'bin-mode.js'), []);
}
