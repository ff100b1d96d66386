// After tsc: makes dist/inspect/cli.js executable (tsc writes files 0644), and, in a
// checkout of memseal itself, links node_modules/.bin/memseal to it.
//
// npm links the bins of dependencies, never the project's own. Without the link,
// `npx memseal` inside this repository finds no local bin and installs the
// checkout into npx's cache (running `prepare`, i.e. a rebuild) before it runs
// anything; with it, `npx --no-install memseal` and `node_modules/.bin/memseal`
// run this build directly, as they do in a project that depends on memseal.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const cli = path.join(root, 'dist', 'inspect', 'cli.js');
fs.chmodSync(cli, 0o755);

const bin = path.join(root, 'node_modules', '.bin');
// Installed as a dependency (…/node_modules/memseal): npm links the bin itself.
if (path.basename(path.dirname(root)) !== 'node_modules' && fs.existsSync(path.join(root, 'node_modules'))) {
  fs.mkdirSync(bin, { recursive: true });
  const link = path.join(bin, 'memseal');
  const target = path.relative(bin, cli);
  let current = null;
  try { current = fs.readlinkSync(link); } catch { /* absent, or not a link */ }
  if (current !== target) {
    fs.rmSync(link, { force: true });
    fs.symlinkSync(target, link);
  }
}
