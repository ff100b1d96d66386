// The addon build that `prepare` runs (and `npm run build:native:incremental`).
//
// `npm install` in a clone runs two scripts: `install` (node-gyp-build: loads a
// prebuilt or an existing build, else `node-gyp rebuild`) and then `prepare`.
// This one therefore builds only what is missing or stale, and never leaves the
// checkout without an addon:
//   - build/ configured in this directory and the addon newer than every input:
//     nothing to do, and nothing is printed (the usual case right after `install`);
//   - configured here but stale: `node-gyp build` (make rebuilds what changed);
//   - not configured, or configured in another directory (a copied checkout:
//     build/Makefile names the old path): `node-gyp rebuild`, with the working
//     addon kept aside and put back if the rebuild fails.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const build = path.join(root, 'build');
const addon = path.join(build, 'Release', 'memseal.node');
const makefile = path.join(build, 'Makefile');

function mtime(file) {
  try { return fs.statSync(file).mtimeMs; } catch { return -1; }
}

/** Newest modification time among the sources and build files make depends on. */
function newestInput() {
  const native = path.join(root, 'native');
  const files = [path.join(root, 'binding.gyp'), ...fs.readdirSync(native).map((f) => path.join(native, f))];
  return Math.max(...files.map(mtime));
}

/** build/Makefile regenerates itself with -Dmodule_root_dir=<where node-gyp configured it>. */
function configuredHere() {
  try {
    return fs.readFileSync(makefile, 'utf8').includes(`"-Dmodule_root_dir=${root}"`);
  } catch {
    return false;
  }
}

function nodeGyp(args) {
  // The node-gyp npm ships (npm_config_node_gyp), else the one on PATH.
  const gyp = process.env.npm_config_node_gyp;
  const [cmd, argv] = gyp ? [process.execPath, [gyp, ...args]] : ['node-gyp', args];
  const r = spawnSync(cmd, [...argv, '--loglevel=warn'], { cwd: root, stdio: 'inherit' });
  if (r.error) throw r.error;
  return r.status ?? 1;
}

function main() {
  const here = configuredHere();
  if (here && mtime(addon) >= newestInput()) return 0;
  if (here) return nodeGyp(['build']);
  // `rebuild` starts by deleting build/: keep the working addon until a new one exists.
  let kept = null;
  if (mtime(addon) >= 0) {
    kept = path.join(root, `.memseal.node.${process.pid}`);
    fs.copyFileSync(addon, kept);
  }
  const status = nodeGyp(['rebuild']);
  if (kept !== null) {
    if (status !== 0 && mtime(addon) < 0) {
      fs.mkdirSync(path.dirname(addon), { recursive: true });
      fs.copyFileSync(kept, addon);
      console.error(`memseal: node-gyp rebuild failed; kept the addon that was there (${path.relative(root, addon)})`);
    }
    fs.rmSync(kept, { force: true });
  }
  return status;
}

process.exitCode = main();
