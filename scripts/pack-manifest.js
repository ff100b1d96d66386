// The manifest that goes into the tarball names only scripts that work from it. The repository's
// package.json keeps its development scripts (test, demo, example:*, bench, prepare…), which point at
// files the package does not ship; `npm pack` runs this last in `prepack` (--publish: package.json
// becomes the published manifest, the original is kept beside it) and again in `postpack` (--restore).
//   node scripts/pack-manifest.js --publish | --restore
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const manifest = path.join(root, 'package.json');
const kept = path.join(root, '.package.json.dev');

/** Scripts a user's install runs: node-gyp-build loads a fitting prebuilt or builds from source. */
const PUBLISHED_SCRIPTS = ['install'];

const mode = process.argv[2];
if (mode === '--publish') {
  if (fs.existsSync(kept)) throw new Error(`${kept} exists: a previous pack did not finish; run --restore first`);
  const text = fs.readFileSync(manifest, 'utf8');
  const pkg = JSON.parse(text);
  fs.writeFileSync(kept, text);
  pkg.scripts = Object.fromEntries(PUBLISHED_SCRIPTS.filter((s) => pkg.scripts?.[s] !== undefined).map((s) => [s, pkg.scripts[s]]));
  fs.writeFileSync(manifest, `${JSON.stringify(pkg, null, 2)}\n`);
} else if (mode === '--restore') {
  if (fs.existsSync(kept)) fs.renameSync(kept, manifest);
} else {
  console.error('usage: node scripts/pack-manifest.js --publish | --restore');
  process.exit(2);
}
