// Prints which addon file this Node process actually loaded, with its hash:
//   <node version> napi <n> <path relative to the package> sha256:<hex>
// Read from /proc/self/maps after require(), so it reports the file the dynamic
// loader mapped, not the one a resolver would pick. Used by .ci/node-matrix.sh
// and .ci/pack-smoke.sh to show one N-API binary serving every Node major.
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(process.argv[2] || path.join(__dirname, '..'));
const m = require(root);
const fd = m.memfdCreate('probe');
m.addSeals(fd, m.Seal.SHRINK | m.Seal.GROW | m.Seal.WRITE);
if (m.getSeals(fd) !== 0x0e) throw new Error(`seals read back as ${m.getSeals(fd)}`);
fs.closeSync(fd);

const files = new Set(fs.readFileSync('/proc/self/maps', 'utf8').split('\n')
  .map((line) => line.split(/\s+/).slice(5).join(' '))
  .filter((file) => file.endsWith('.node')));
if (files.size !== 1) throw new Error(`expected one .node file mapped, found: ${[...files].join(', ') || 'none'}`);
const [file] = files;
const sha = crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
console.log(`${process.version} napi ${process.versions.napi} ${path.relative(root, file)} sha256:${sha.slice(0, 16)}`);
