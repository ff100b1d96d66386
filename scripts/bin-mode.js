// Makes dist/cli.js executable after tsc (tsc writes files 0644): `npx memseal`
// and a direct ./dist/cli.js both need the x bit.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

fs.chmodSync(path.join(__dirname, '..', 'dist', 'cli.js'), 0o755);
