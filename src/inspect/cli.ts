#!/usr/bin/env node
// The `memseal` command: `memseal inspect [--json] [--watch <ms>] [pid ...]`, and
// `memseal python-path` (the folder holding the Python reference peer, memseal_peer.py).
// Exit codes: 0 something found, 1 nothing found, 2 usage error, or a requested
// pid that could not be inspected (permission denied, no such process).
import path from 'node:path';
import { hasFindings, inspect, type InspectMemfd, type InspectProcess } from './inspect';
import { inspectPools } from './inspect-pools';

const USAGE = `Usage: memseal inspect [options] [pid ...]
       memseal python-path

python-path prints the folder of the package's Python reference peer
(memseal_peer.py, standard library only): PYTHONPATH=$(npx memseal python-path)

Lists the memfds and memfd_secret files processes hold (name, size, seals,
mode, mappings) and their mseal'd memory regions, read from /proc.
Without a pid: every process you may inspect.

Options:
  --json         print JSON ({ "processes": [...] }; one line per refresh with --watch)
  --watch <ms>   refresh every <ms> milliseconds until interrupted
  -h, --help     show this help

Exit status: 0 found, 1 nothing found, 2 usage error or a pid that could not be
inspected (permission denied, no such process).
`;

interface Options { json: boolean; watch: number | null; pids: number[] }

/** The package's python/ folder: this file is dist/inspect/cli.js (or src/inspect/cli.ts). */
export const PYTHON_DIR = path.join(__dirname, '..', '..', 'python');

class UsageError extends Error {}

function parseArgs(argv: string[]): Options | 'help' | 'python-path' {
  const opts: Options = { json: false, watch: null, pids: [] };
  const args = [...argv];
  if (args[0] === '-h' || args[0] === '--help' || args[0] === 'help') return 'help';
  if (args[0] === 'python-path') {
    if (args.length > 1) throw new UsageError(`python-path takes no arguments, got '${args[1]}'`);
    return 'python-path';
  }
  if (args[0] !== 'inspect') throw new UsageError(args[0] === undefined ? 'missing command' : `unknown command '${args[0]}'`);
  args.shift();
  while (args.length > 0) {
    const arg = args.shift()!;
    if (arg === '-h' || arg === '--help') return 'help';
    if (arg === '--json') opts.json = true;
    else if (arg === '--watch' || arg.startsWith('--watch=')) {
      const value = arg === '--watch' ? args.shift() : arg.slice('--watch='.length);
      if (value === undefined || !/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 86_400_000) {
        throw new UsageError(`--watch needs a number of milliseconds (1..86400000), got ${value === undefined ? 'nothing' : `'${value}'`}`);
      }
      opts.watch = Number(value);
    } else if (/^\d+$/.test(arg) && Number(arg) >= 1 && Number(arg) <= 0x7fffffff) opts.pids.push(Number(arg));
    else if (arg.startsWith('-')) throw new UsageError(`unknown option '${arg}'`);
    else throw new UsageError(`not a pid: '${arg}'`);
  }
  return opts;
}

/** 1536 -> '1.5 KiB' */
export function formatSize(n: number | null): string {
  if (n === null) return '?';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return u === 0 ? `${n} B` : `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[u]}`;
}

/**
 * A string from another process (memfd name, comm, mapped path) made safe for
 * a terminal: control and format characters (C0, DEL, C1, bidi overrides,
 * zero-width, line/paragraph separators) and the backslash itself become
 * visible escapes, so a name can neither send escape sequences to the
 * terminal nor forge a table row. `--json` needs none of this.
 */
export function escapeText(text: string): string {
  return text.replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\\]/gu, (c) => {
    if (c === '\\') return '\\\\';
    const code = c.codePointAt(0)!;
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
  });
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [fmt(header), ...rows.map(fmt)].join('\n');
}

function sealsText(m: InspectMemfd): string {
  if (m.sealNames === null) return `? (${m.sealsError ?? 'unknown'})`;
  return m.sealNames.length === 0 ? '-' : m.sealNames.join(',');
}

function mappingText(m: { start: string; end: string; perms: string; sealed: boolean | null }): string {
  // A private writable view (rw-p) looks alarming beside a write-sealed file: its writes would go to this process's
  // own copies of the pages (copy-on-write), never to the file. Say so where it is read.
  const cow = m.perms[1] === 'w' && m.perms[3] === 'p' ? ' (cow)' : '';
  return `${m.start.slice(2)}-${m.end.slice(2)} ${m.perms}${m.sealed ? ' mseal' : ''}${cow}`;
}

/** ACC as the descriptor's open mode, marked when seals forbid what the mode would allow. */
function accessText(m: InspectMemfd): string {
  if (m.access === null) return '-';
  const writeSealed = m.seals !== null && (m.sealNames!.includes('write') || m.sealNames!.includes('future_write'));
  return m.access.includes('w') && writeSealed ? `${m.access}*` : m.access;
}

/** The totals line: each file counted once, however many processes hold or map it. */
function memoryTotals(processes: InspectProcess[]): string[] {
  const files = new Map<number, number | null>();
  let pss = 0;
  let pssKnown = true;
  for (const p of processes) {
    for (const m of p.memfds) {
      files.set(m.inode, m.size);
      if (m.mappings?.length) { if (m.pss === null) pssKnown = false; else pss += m.pss; }
    }
  }
  const sizes = [...files.values()];
  const size = sizes.every((x) => x !== null) ? formatSize(sizes.reduce((a, b) => a! + b!, 0)) : '?';
  return [`total: ${files.size} file${files.size === 1 ? '' : 's'}, ${size}; resident in the mappings listed: ${pssKnown ? formatSize(pss) : '?'} (PSS summed over processes: each page once)`];
}

/** What ACC `rw*` and `(cow)` mean, printed only when a row shows them. */
function legend(processes: InspectProcess[]): string[] {
  const memfds = processes.flatMap((p) => p.memfds);
  const lines: string[] = [];
  if (memfds.some((m) => accessText(m).endsWith('*'))) {
    lines.push('ACC rw*: opened read-write, but the file is write-sealed: no descriptor or mapping can change it');
  }
  if (memfds.some((m) => m.mappings?.some((x) => mappingText(x).endsWith('(cow)')))) {
    lines.push("(cow): a private copy-on-write view: this process's writes would stay in its own pages, never reach the file");
  }
  return lines;
}

export function renderHuman(processes: InspectProcess[], scanAll: boolean): string {
  const out: string[] = [];
  const rows: string[][] = [];
  for (const p of processes) {
    for (const m of p.memfds) {
      const maps = m.mappings === null ? ['?'] : m.mappings.length === 0 ? ['-'] : m.mappings.map(mappingText);
      const name = m.kind === 'secretmem' ? '[secretmem]' : escapeText(m.name ?? '');
      const mode = m.mode === null ? '?' : `${m.mode.toString(8).padStart(4, '0')}${m.exec ? ' exec' : ''}`;
      rows.push([String(p.pid), p.comm === null ? '?' : escapeText(p.comm), m.fd === null ? '-' : String(m.fd), name, formatSize(m.size), mode,
        accessText(m), sealsText(m), m.mappings?.length ? formatSize(m.rss) : '-', m.mappings?.length ? formatSize(m.pss) : '-',
        String(m.mappedBy), maps[0]!]);
      for (const extra of maps.slice(1)) rows.push(['', '', '', '', '', '', '', '', '', '', '', extra]);
    }
  }
  if (rows.length > 0) {
    out.push(table(['PID', 'COMMAND', 'FD', 'NAME', 'SIZE', 'MODE', 'ACC', 'SEALS', 'RSS', 'PSS', 'PROCS', 'MAPPINGS'], rows));
    out.push(...memoryTotals(processes), ...legend(processes));
  }

  const pools = inspectPools(processes);
  if (pools.length > 0) {
    out.push('', 'Publisher/Subscriber pools:');
    out.push(table(['INODE', 'NAME', 'SLOTS', 'SIZE', 'PUBLISHER', 'SUBSCRIBERS (map it read-only)', 'HELD (pid: slots)'], pools.map((x) => [
      String(x.inode), escapeText(x.name ?? ''), `${x.slots} × ${formatSize(x.slotSize)}`, formatSize(x.size),
      x.publisher === null ? '-' : `${x.publisher.pid} ${x.publisher.comm === null ? '?' : escapeText(x.publisher.comm)}`,
      x.subscribers.length === 0 ? '-' : x.subscribers.map((s) => `${s.pid} ${s.comm === null ? '?' : escapeText(s.comm)}`).join(', '),
      x.holders.length === 0 ? '-' : x.holders.map((h) => `${h.pid}: ${h.slots.length === 0 ? 'none' : h.slots.join(',')}`).join('; ')])));
  }

  const sealedRows: string[][] = [];
  for (const p of processes) {
    for (const r of p.sealedRegions ?? []) {
      sealedRows.push([String(p.pid), p.comm === null ? '?' : escapeText(p.comm), `${r.start.slice(2)}-${r.end.slice(2)}`, r.perms,
        formatSize(r.length), r.path ? escapeText(r.path) : '[anon]']);
    }
  }
  if (sealedRows.length > 0) {
    if (out.length > 0) out.push('');
    out.push("mseal'd regions not backed by a memfd:");
    out.push(table(['PID', 'COMMAND', 'RANGE', 'PERMS', 'SIZE', 'PATH'], sealedRows));
  }
  // Say so only when something was actually looked at: failures go to stderr.
  if (out.length === 0 && (scanAll || processes.some((p) => p.inspectable))) out.push('no memfds or mseal\'d regions found');

  if (scanAll) {
    const denied = processes.filter((p) => !p.inspectable).length;
    if (denied > 0) out.push(`(${denied} process${denied === 1 ? '' : 'es'} could not be inspected: permission denied)`);
    const partial = processes.filter((p) => p.inspectable && p.errors.length > 0).length;
    if (partial > 0) out.push(`(${partial} process${partial === 1 ? '' : 'es'} only partly inspected: mappings unreadable)`);
  }
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}

/** One line per procfs failure of an explicitly requested pid, for stderr. */
export function renderErrors(processes: InspectProcess[]): string {
  return processes.flatMap((p) => p.errors.map((e) => `memseal: ${p.pid}: ${e.code}: ${e.message} (${e.path})\n`)).join('');
}

export function exitStatus(processes: InspectProcess[], scanAll: boolean): 0 | 1 | 2 {
  if (!scanAll && processes.some((p) => !p.inspectable)) return 2;
  return processes.some(hasFindings) ? 0 : 1;
}

function runOnce(opts: Options): 0 | 1 | 2 {
  const scanAll = opts.pids.length === 0;
  // A full scan leaves out this process itself: the inspector is not what is being inspected.
  const processes = scanAll ? inspect().filter((p) => p.pid !== process.pid) : inspect(opts.pids);
  const status = exitStatus(processes, scanAll);
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ processes }, null, opts.watch === null ? 2 : 0)}\n`);
  } else {
    const text = renderHuman(processes, scanAll);
    const clear = opts.watch !== null && process.stdout.isTTY ? '\x1b[H\x1b[2J' : '';
    const title = opts.watch === null ? '' : `memseal inspect — ${new Date().toISOString()} (every ${opts.watch} ms)\n`;
    process.stdout.write(`${clear}${title}${text}`);
    if (!scanAll) process.stderr.write(renderErrors(processes));
  }
  return status;
}

function main(argv: string[]): void {
  let opts: Options | 'help' | 'python-path';
  try {
    opts = parseArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`memseal: ${err.message}\n\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  if (opts === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  if (opts === 'python-path') {
    process.stdout.write(`${PYTHON_DIR}\n`);
    return;
  }
  const status = runOnce(opts);
  if (opts.watch === null) {
    process.exitCode = status;
    return;
  }
  let last = status;
  const timer = setInterval(() => { last = runOnce(opts as Options); }, opts.watch);
  const stop = () => { clearInterval(timer); process.exitCode = last; };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (require.main === module) {
  // `memseal inspect --watch 500 | head`: a closed pipe ends the program quietly.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(process.exitCode ?? 0);
  });
  main(process.argv.slice(2));
}
