// Shared helpers for the benchmarks: statistics, machine description, memory
// readings from /proc, the C floor programs, and the report writers.
'use strict';
const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const C_DIR = path.join(__dirname, 'c');
const BIN_DIR = path.join(C_DIR, 'bin');

/** Compiles bench/c/<name>.c with the system's cc; returns the binary's path. */
function buildC(name) {
  fs.mkdirSync(BIN_DIR, { recursive: true });
  const bin = path.join(BIN_DIR, name);
  execFileSync('cc', ['-O2', '-Wall', '-Wextra', '-o', bin, path.join(C_DIR, `${name}.c`)], { stdio: 'inherit' });
  return bin;
}

/** Runs a C floor program and parses the JSON line it prints. */
function runC(bin, args, { pin } = {}) {
  const cmd = pin === undefined ? bin : 'taskset';
  const argv = pin === undefined ? args.map(String) : ['-c', String(pin), bin, ...args.map(String)];
  return JSON.parse(execFileSync(cmd, argv, { encoding: 'utf8' }));
}

/**
 * Runs `fn` with every thread of this process pinned to CPU `pin` (taskset -a),
 * then restores the previous affinity. With `pin` undefined, just runs `fn`.
 */
async function pinned(pin, fn) {
  if (pin === undefined) return fn();
  const mask = /:\s*([0-9a-f]+)\s*$/.exec(execFileSync('taskset', ['-p', String(process.pid)], { encoding: 'utf8' }))[1];
  execFileSync('taskset', ['-a', '-p', '-c', String(pin), String(process.pid)], { stdio: 'ignore' });
  try {
    return await fn();
  } finally {
    execFileSync('taskset', ['-a', '-p', mask, String(process.pid)], { stdio: 'ignore' });
  }
}

function stats(samples) {
  const xs = samples.slice().sort((a, b) => a - b);
  return { min: xs[0], median: xs[Math.floor(xs.length / 2)], max: xs[xs.length - 1], runs: xs.length };
}

/** A full garbage collection of this process (so every method starts from the same heap), where V8 allows it. */
const gc = (() => {
  try {
    require('node:v8').setFlagsFromString('--expose-gc');
    return require('node:vm').runInNewContext('gc');
  } catch {
    return () => {};
  }
})();

/** An async function that runs `fn` and returns how long it took (ms). */
function timed(fn) {
  return async () => {
    const a = process.hrtime.bigint();
    await fn();
    return Number(process.hrtime.bigint() - a) / 1e6;
  };
}

/**
 * Measures several methods interleaved: each round runs every method once, so drift in the machine's load
 * and state left behind hit all of them alike. The order rotates by one each round (no method always
 * follows the same one) and the heap is collected before every round. `methods`: { key: async () => ms }
 * (a method measures itself: see timed()). `warmup` whole rounds are run first and dropped.
 * Returns { key: { min, median, max, runs } }.
 */
async function interleaved(methods, rounds, warmup = 2) {
  const keys = Object.keys(methods);
  const samples = Object.fromEntries(keys.map((k) => [k, []]));
  for (let r = -warmup; r < rounds; r++) {
    gc();
    for (let i = 0; i < keys.length; i++) {
      const key = keys[(i + Math.max(r, 0)) % keys.length];
      const ms = await methods[key]();
      if (r >= 0) samples[key].push(ms);
    }
  }
  return Object.fromEntries(keys.map((k) => [k, stats(samples[k])]));
}

/** Sizes from the command line: 4K, 64K, 1M, 64M; a bare number is MiB (16,64). */
function parseSizes(text) {
  return text.split(',').map((t) => {
    const m = /^(\d+(?:\.\d+)?)([KkMmGg]?)$/.exec(t.trim());
    if (!m) throw new RangeError(`--sizes: '${t}' is not a size (4K, 64K, 1M or a number of MiB)`);
    return Number(m[1]) * 1024 ** ({ k: 1, m: 2, g: 3 }[m[2].toLowerCase()] ?? 2);
  });
}

/** The size as --sizes writes it (4K, 64M). */
const sizeArg = (n) => (n >= 2 ** 20 ? `${n / 2 ** 20}M` : `${n / 1024}K`);

/** Resolves when `child` has exited (at once if it already has). */
const exited = (child) => (child.exitCode !== null || child.signalCode !== null
  ? Promise.resolve() : new Promise((resolve) => child.once('exit', resolve)));

/** Times `fn` (async) `n` times after `warmup` untimed runs; milliseconds. */
async function measure(fn, n, warmup = 2) {
  for (let i = 0; i < warmup; i++) await fn();
  const t = [];
  for (let i = 0; i < n; i++) {
    const a = process.hrtime.bigint();
    await fn();
    t.push(Number(process.hrtime.bigint() - a) / 1e6);
  }
  return stats(t);
}

/** Proportional set size of a process in bytes (smaps_rollup): shared pages are split among their users. */
function pss(pid) {
  const m = /^Pss:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** CPU time of a process so far in clock ticks (utime + stime from /proc/PID/stat), 0 once it is gone. */
function cpuTicks(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

/**
 * Waits until the processes `pids` together used at most one clock tick of CPU over `ms` (at most `max` ms
 * in all), so a round starts with every process idle: not still collecting, sweeping or unmapping what the
 * last round left. Returns how long it waited (ms).
 */
async function settle(pids, ms = 50, max = 3000) {
  const t0 = Date.now();
  const sum = () => pids.reduce((s, pid) => s + cpuTicks(pid), 0);
  while (Date.now() - t0 < max) {
    const a = sum();
    await new Promise((resolve) => setTimeout(resolve, ms));
    if (sum() - a <= 1) break;
  }
  return Date.now() - t0;
}

/** PSS of the mappings of one file (a /proc/PID/maps path containing `name`) in a process, in bytes. */
function mappingPss(pid, name) {
  let total = 0;
  for (const block of fs.readFileSync(`/proc/${pid}/smaps`, 'utf8').split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/)) {
    if (!block.split('\n', 1)[0].includes(name)) continue;
    const m = /^Pss:\s+(\d+) kB/m.exec(block);
    if (m) total += Number(m[1]) * 1024;
  }
  return total;
}

function machine() {
  const cpus = os.cpus();
  return {
    cores: cpus.length,
    cpu: cpus[0] ? cpus[0].model : 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    node: process.version,
    date: new Date().toISOString().slice(0, 10),
  };
}

/** Fills `buf` with a fixed pattern (the same in every method). */
function pattern(buf) {
  for (let i = 0; i < Math.min(buf.length, 4096); i++) buf[i] = (i * 31 + 7) & 0xff;
  for (let off = 4096; off < buf.length; off *= 2) buf.copyWithin(off, 0, Math.min(off, buf.length - off));
  return buf;
}

/** The receiver's proof of reading: the sum of one byte per page and the last byte. */
function checksum(bytes) {
  let s = 0;
  for (let i = 0; i < bytes.length; i += 4096) s += bytes[i];
  return bytes.length ? s + bytes[bytes.length - 1] : 0;
}

/** Reads frames (u64 little-endian length + bytes) from a stream socket; calls onFrame(bytes) for each. */
function onFrames(sock, onFrame) {
  let chunks = [];
  let have = 0;
  let want = -1;
  sock.on('data', (chunk) => {
    chunks.push(chunk);
    have += chunk.length;
    for (;;) {
      if (want < 0) {
        if (have < 8) return;
        const head = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
        want = Number(head.readBigUInt64LE(0));
        chunks = [head.subarray(8)];
        have -= 8;
      }
      if (have < want) return;
      const all = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, have);
      onFrame(all.subarray(0, want));
      const rest = all.subarray(want);
      chunks = rest.length ? [rest] : [];
      have = rest.length;
      want = -1;
    }
  });
}

function fmtSize(n) {
  if (n >= 2 ** 20) return `${n / 2 ** 20} MiB`;
  if (n >= 2 ** 10) return `${n / 2 ** 10} KiB`;
  return `${n} B`;
}

function fmtMs(x) {
  if (x >= 100) return x.toFixed(0);
  if (x >= 10) return x.toFixed(1);
  if (x >= 1) return x.toFixed(2);
  if (x >= 0.01 || x === 0) return x.toFixed(3);
  return x.toPrecision(2);  // below 10 µs: two significant digits, not 0.00x
}

/**
 * A log-log line chart of handoff time by size, as a standalone SVG.
 * series: [{ name, color, points: [[size, ms], ...] }]
 */
function handoffSvg(series, title,
  caption = 'time from "sender holds the bytes" to "receiver verified them and read one byte per page" (log scale, lower is better)') {
  const W = 920, H = 440, L = 70, R = 250, T = 40, B = 60;
  const all = series.flatMap((s) => s.points);
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
  // x: the measured sizes, edge to edge with a little margin; y: whole decades
  const pad = (Math.log10(Math.max(...xs)) - Math.log10(Math.min(...xs))) * 0.05;
  const lx0 = Math.log10(Math.min(...xs)) - pad, lx1 = Math.log10(Math.max(...xs)) + pad;
  const ly0 = Math.floor(Math.log10(Math.min(...ys))), ly1 = Math.ceil(Math.log10(Math.max(...ys)));
  const X = (v) => L + ((Math.log10(v) - lx0) / (lx1 - lx0)) * (W - L - R);
  const Y = (v) => H - B - ((Math.log10(v) - ly0) / (ly1 - ly0)) * (H - T - B);
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${L}" y="22" font-size="15" font-weight="bold">${title}</text>`);
  for (let e = ly0; e <= ly1; e++) {
    const y = Y(10 ** e).toFixed(1);
    out.push(`<line x1="${L}" x2="${W - R}" y1="${y}" y2="${y}" stroke="#ddd"/>`);
    out.push(`<text x="${L - 8}" y="${y}" text-anchor="end" dominant-baseline="middle">${10 ** e >= 1 ? 10 ** e : (10 ** e).toFixed(-e)} ms</text>`);
  }
  const ticks = [...new Set(xs)].sort((a, b) => a - b);
  for (const t of ticks) {
    const x = X(t).toFixed(1);
    out.push(`<line x1="${x}" x2="${x}" y1="${T}" y2="${H - B}" stroke="#eee"/>`);
    out.push(`<text x="${x}" y="${H - B + 18}" text-anchor="middle">${fmtSize(t)}</text>`);
  }
  out.push(`<text x="${(L + W - R) / 2}" y="${H - 28}" text-anchor="middle">payload size (log scale)</text>`);
  out.push(`<text x="${(L + W - R) / 2}" y="${H - 10}" text-anchor="middle" font-size="11" fill="#555">${caption}</text>`);
  series.forEach((s, i) => {
    const d = s.points.map((p, j) => `${j ? 'L' : 'M'}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2.5"${s.dash ? ' stroke-dasharray="6 4"' : ''}/>`);
    for (const p of s.points) out.push(`<circle cx="${X(p[0]).toFixed(1)}" cy="${Y(p[1]).toFixed(1)}" r="3" fill="${s.color}"/>`);
    const ly = T + 10 + i * 22;
    out.push(`<line x1="${W - R + 15}" x2="${W - R + 40}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2.5"${s.dash ? ' stroke-dasharray="6 4"' : ''}/>`);
    out.push(`<text x="${W - R + 46}" y="${ly}" dominant-baseline="middle">${s.name}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/**
 * Samples the summed PSS of `pids` every `ms` in a process of its own, so the reads of
 * /proc/PID/smaps_rollup (the kernel walks each process's page tables) never block the event loop
 * of the process being measured. `stop()` resolves with the peak sum seen, in bytes.
 */
function pssSampler(pids, ms = 20) {
  const child = spawn(process.execPath, [path.join(__dirname, 'pss-sampler.js'), String(ms), ...pids.map(String)], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  return { stop: async () => { child.stdin.end(); await exited; return Number(out) || 0; } };
}

module.exports = {
  pssSampler,
  settle, cpuTicks,
  pinned, buildC, runC, stats, measure, gc, timed, interleaved, parseSizes, sizeArg, exited, pss, mappingPss, machine, pattern, checksum, onFrames, fmtSize, fmtMs, handoffSvg };
