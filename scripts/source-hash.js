// Writes dist/source-hash.json: the SHA-256 of every .ts file under src/ (its
// subdirectories too: src/pubsub/) this build was compiled from.
// test/package/build.test.ts compares it with src/ as it is now and with what a child
// process loads through require('memseal'), and test/built.ts rebuilds when it
// differs, so a fixture can never quietly run a stale build. Run after tsc.
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');

/** Every .ts file under `dir`, as paths relative to it with '/' separators, sorted. */
function sourceFiles(dir, prefix = '') {
  const out = [];
  for (const entry of fs.readdirSync(path.join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory()) out.push(...sourceFiles(dir, rel));
    else if (entry.name.endsWith('.ts')) out.push(rel);
  }
  return out.sort();
}

/** The hash of src/ (or `dir`): relative paths and contents of every .ts file, in path order. */
function sourceHash(dir = path.join(root, 'src')) {
  const hash = crypto.createHash('sha256');
  for (const rel of sourceFiles(dir)) {
    hash.update(`${rel}\0`).update(fs.readFileSync(path.join(dir, rel))).update('\0');
  }
  return hash.digest('hex');
}

/** The hash dist/source-hash.json recorded at the last build, or null if there is none. */
function builtHash() {
  try {
    return JSON.parse(fs.readFileSync(path.join(root, 'dist', 'source-hash.json'), 'utf8')).sha256;
  } catch {
    return null;
  }
}

if (require.main === module) {
  fs.writeFileSync(path.join(root, 'dist', 'source-hash.json'), `${JSON.stringify({ sha256: sourceHash() })}\n`);
}

module.exports = { sourceFiles, sourceHash, builtHash };
