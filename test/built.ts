// Tests that use the package as a dependent project would (through package.json
// "exports": dist/) first make sure dist/ is built from the current src/.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.join(__dirname, '..');

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { sourceHash, builtHash } = require('../scripts/source-hash.js') as { sourceHash(): string; builtHash(): string | null };

/**
 * Runs `npm run build:ts`'s steps when dist/ is missing or was built from other
 * sources than src/ holds now (every .ts file under src/, subdirectories too:
 * the hash scripts/source-hash.js records at build time).
 */
export function ensureBuilt(): void {
  const present = existsSync(path.join(ROOT, 'dist', 'index.js')) && existsSync(path.join(ROOT, 'dist', 'index.d.mts'));
  if (present && builtHash() === sourceHash()) return;
  const run = (file: string, args: string[]) => execFileSync(process.execPath, [file, ...args], { cwd: ROOT, stdio: 'inherit' });
  run(path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), ['-p', 'tsconfig.json']);
  run(path.join(ROOT, 'scripts', 'gen-esm.js'), []);
  run(path.join(ROOT, 'scripts', 'bin-mode.js'), []);
  run(path.join(ROOT, 'scripts', 'source-hash.js'), []);
}
