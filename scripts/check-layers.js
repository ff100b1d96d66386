// Fails (exit 1) when an import in src/ points up the layer map below, sideways
// into another folder of the same rank, or closes a cycle between modules.
// The map is the one source of the layering: README.md's "Layers" table and
// each folder's README.md describe the same order.
//   node scripts/check-layers.js [src-dir]
'use strict';
const fs = require('node:fs');
const path = require('node:path');

/** Folder -> rank. A module may import its own folder and any folder of a lower rank. */
const LAYERS = {
  util: 0,       // plain data structures, no kernel
  kernel: 1,     // the addon and its typed wrappers, errors, validation, feature probes
  channel: 2,    // the transport: sockets, messages, send queue, server, datagrams, spawn
  memory: 2,     // this process's own protected memory: WriteOnceArena, SecretBuffer
  typed: 2,      // typed data as bytes: the tensor header, written and read (no kernel objects)
  sealed: 3,     // SealedBuffer: create, seal, verify, and carrying it over a Channel
  pubsub: 4,     // Publisher/Subscriber over a sealed pool
  snapshot: 4,   // SnapshotPublisher/SnapshotReader
  arrow: 4,      // 'memseal/arrow': Arrow tables in a SealedBuffer (its own package entry)
  inspect: 5,    // memseal inspect: what a process holds, pools, the CLI
  '.': 6,        // src/index.ts: re-exports only
};

const root = path.resolve(process.argv[2] ?? path.join(__dirname, '..', 'src'));
const files = [];
(function walk(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p);
    else if (e.name.endsWith('.ts')) files.push(p);
  }
})(root);

const problems = [];
const graph = new Map();
const layerOf = (file) => path.relative(root, path.dirname(file)).split(path.sep)[0] || '.';
for (const file of files) {
  const rel = path.relative(root, file);
  const layer = layerOf(file);
  if (!(layer in LAYERS)) problems.push(`${rel}: folder '${layer}' is not in the layer map (scripts/check-layers.js)`);
  const text = fs.readFileSync(file, 'utf8');
  const edges = [];
  // Static imports and re-exports, `import type` included (a type cycle is still a cycle of concepts).
  for (const m of text.matchAll(/^\s*(?:import|export)\b[^'";]*?from\s*'(\.[^']*)'|^\s*import\s*'(\.[^']*)'|require\('(\.[^']*)'\)|declare module '(\.[^']*)'/gm)) {
    const spec = m[1] ?? m[2] ?? m[3] ?? m[4];
    const target = path.resolve(path.dirname(file), spec) + '.ts';
    if (!files.includes(target) && !fs.existsSync(target)) { problems.push(`${rel}: '${spec}' does not resolve to a .ts file`); continue; }
    edges.push(target);
    const to = layerOf(target);
    if (to !== layer && !(LAYERS[to] < LAYERS[layer])) {
      problems.push(`${rel} imports ${path.relative(root, target)}: layer '${layer}' (${LAYERS[layer]}) may not import '${to}' (${LAYERS[to]})`);
    }
  }
  graph.set(file, edges);
}

// Cycles: depth-first search, reporting each back edge's loop once.
const state = new Map();
const stack = [];
function visit(f) {
  state.set(f, 1); stack.push(f);
  for (const g of graph.get(f) ?? []) {
    if (state.get(g) === 1) {
      const loop = stack.slice(stack.indexOf(g)).concat(g).map((x) => path.relative(root, x));
      problems.push(`import cycle: ${loop.join(' -> ')}`);
    } else if (!state.has(g)) visit(g);
  }
  stack.pop(); state.set(f, 2);
}
for (const f of files) if (!state.has(f)) visit(f);

if (problems.length > 0) {
  for (const p of problems) console.error(`check-layers: ${p}`);
  process.exit(1);
}
console.log(`check-layers: ${files.length} modules in ${new Set(files.map(layerOf)).size} layer folders, imports only downward, no cycle`);
