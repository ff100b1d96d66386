// Writes dist/source-hash.json: the SHA-256 of every src/*.ts this build was
// compiled from. test/build.test.ts compares it with src/ as it is now and with
// what a child process loads through require('memseal'), so a fixture can never
// quietly run a stale build. Run after tsc.
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');

/** The hash of src/: file names and contents, in name order. */
function sourceHash() {
  const hash = crypto.createHash('sha256');
  const dir = path.join(root, 'src');
  for (const name of fs.readdirSync(dir).filter((n) => n.endsWith('.ts')).sort()) {
    hash.update(`${name}\0`).update(fs.readFileSync(path.join(dir, name))).update('\0');
  }
  return hash.digest('hex');
}

if (require.main === module) {
  fs.writeFileSync(path.join(root, 'dist', 'source-hash.json'), `${JSON.stringify({ sha256: sourceHash() })}\n`);
}

module.exports = { sourceHash };
