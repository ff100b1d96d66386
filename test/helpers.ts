// Shared test helpers: resource counts from /proc and child-process runners.
import assert from 'node:assert/strict';
import { type ChildProcess, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Open descriptors of this process: one counter for the whole suite (./fd-count.ts; the test loader's own cache descriptor is not counted). */
import { countOwnFds as countFds, settledOwnFds } from './fd-count';
export { countFds };

/** Lines of /proc/self/maps: one per VMA. */
export function countMappings(): number {
  return readFileSync('/proc/self/maps', 'utf8').trimEnd().split('\n').length;
}

/** The /proc/self/maps line of the VMA containing `address`, if any. */
export function mapsLineFor(address: bigint): string | undefined {
  return readFileSync('/proc/self/maps', 'utf8').split('\n').find((line) => {
    const [range] = line.split(' ');
    if (!range) return false;
    const [lo, hi] = range.split('-').map((h) => BigInt(`0x${h}`));
    return lo !== undefined && hi !== undefined && address >= lo && address < hi;
  });
}

/**
 * The mapping `before` (a line of /proc/self/maps, read while it was mapped) described is gone:
 * nothing covers `address` now, or a mapping with other bounds does — once a range is free,
 * another allocator in this process (V8, malloc, a sanitizer's) may map the same addresses anew.
 */
export function unmappedSince(address: bigint, before: string | undefined): boolean {
  assert.ok(before !== undefined, 'unmappedSince: nothing was mapped there to begin with');
  const line = mapsLineFor(address);
  return line === undefined || line.split(' ')[0] !== before.split(' ')[0];
}

/**
 * Call inside a describe(): returns `keep(x)`, which holds x until the test ends; after each test
 * everything kept is closed and the descriptor count must be back where the test started
 * (or where `keep.rebase()` was called).
 */
export function keepUntilTestEnds<T extends { close(): void }>(): ((x: T) => T) & { rebase(): void } {
  let baseline = 0;
  const kept: T[] = [];
  beforeEach(() => { baseline = countFds(); });
  afterEach(async () => {
    for (const x of kept.splice(0)) x.close();
    // Not above where it started: an earlier test's descriptor may close meanwhile (large buffers
    // close theirs on the thread pool), which lowers the count without this test having leaked.
    const now = await settledOwnFds(baseline);
    assert.ok(now <= baseline, `every descriptor the test opened is closed (${now} open, ${baseline} before)`);
  });
  return Object.assign((x: T): T => { kept.push(x); return x; }, { rebase: () => { baseline = countFds(); } });
}

/** Descriptors of this process open on the memfd named `name` (exactly: /proc/self/fd links read `/memfd:NAME (deleted)`). */
export function memfdFds(name: string): number {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).startsWith(`/memfd:${name} `);
    } catch {
      return false;  // readdir's own descriptor, gone by now
    }
  }).length;
}

/** One turn of the event loop (setImmediate): lets pending I/O callbacks run. */
export function tick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Waits, polling every 5 ms, until `cond` holds; throws after `limitMs` naming `what`. */
export async function until(cond: () => boolean, what = 'condition', limitMs = 10000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export const FIXTURES = path.join(__dirname, 'fixtures');
const ROOT = path.join(__dirname, '..');

/** Every directory from `dir` up to / lets others through (o+x), so another user can reach files below it. */
function othersCanReach(dir: string): boolean {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    if ((statSync(d).mode & 0o001) === 0) return false;
    if (d === path.dirname(d)) return true;
  }
}

let readableRoot: string | null = null;

/**
 * The checkout as another user (uid 65534 in the tests that need one) can read it: the checkout itself when
 * every directory above it lets others through, else a copy in a fresh temporary folder (made once per run,
 * removed at exit) of what such a process loads: package.json, tsconfig.json, dist/, the built addon, src/,
 * examples/, test/fixtures/ and node_modules/. A clone under root's home or a `chmod 700` folder needs the copy.
 */
export function readableCheckout(): string {
  if (readableRoot !== null) return readableRoot;
  if (othersCanReach(ROOT)) return (readableRoot = ROOT);
  const copy = mkdtempSync(path.join(os.tmpdir(), 'memseal-readable-'));
  chmodSync(copy, 0o755);   // mkdtemp makes it 0700
  process.once('exit', () => { rmSync(copy, { recursive: true, force: true }); });
  for (const item of ['package.json', 'tsconfig.json', 'dist', 'src', 'examples', 'test/fixtures', 'node_modules', 'build/Release/memseal.node']) {
    if (existsSync(path.join(ROOT, item))) cpSync(path.join(ROOT, item), path.join(copy, item), { recursive: true });
  }
  // cpSync keeps each file's mode; make sure others may read everything and enter every directory.
  (function open(dir: string): void {
    chmodSync(dir, 0o755);
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) open(p);
      else if (e.isFile()) chmodSync(p, statSync(p).mode | 0o444);
    }
  })(copy);
  return (readableRoot = copy);
}

/** Runs `node test/fixtures/<name> ...args` to completion. */
export function runFixture(name: string, args: string[] = [], options: { env?: NodeJS.ProcessEnv; timeout?: number } = {}):
  SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [path.join(FIXTURES, name), ...args], {
    encoding: 'utf8',
    env: options.env ?? process.env,
    timeout: options.timeout ?? 20000,
  });
}

/** Lets finalizers run: gc() (mocha runs under --expose-gc), then a few turns of the loop. */
export async function collectGarbage(rounds = 4): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('tests must run with --expose-gc');
  for (let i = 0; i < rounds; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Prints why a kernel-dependent test is skipped, then skips it. */
export function skipUnless(ctx: Mocha.Context, condition: boolean, why: string): void {
  if (!condition) {
    console.log(`      (skipped: ${why})`);
    ctx.skip();
  }
}

/** The smaps entry of the VMA containing `address`: its VmFlags (two-letter codes) and `Locked:` kB. */
export function smapsFor(address: bigint): { flags: string[]; lockedKb: number } | undefined {
  const blocks = readFileSync('/proc/self/smaps', 'utf8').split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/);
  for (const block of blocks) {
    const [lo, hi] = block.slice(0, block.indexOf(' ')).split('-').map((h) => BigInt(`0x${h}`));
    if (lo === undefined || hi === undefined || address < lo || address >= hi) continue;
    const flags = /^VmFlags:(.*)$/m.exec(block)?.[1]?.trim().split(/\s+/) ?? [];
    const lockedKb = Number(/^Locked:\s+(\d+) kB$/m.exec(block)?.[1] ?? 0);
    return { flags, lockedKb };
  }
  return undefined;
}

/** SIGKILLs every child still running and waits for it to exit; empties the list. */
export async function killChildren(children: ChildProcess[]): Promise<void> {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  }
}

/** Things a test opened, closed in its afterEach: `track(x)` remembers one, `closeAll()` closes them. */
export class Tracker {
  readonly #open: { close(): void }[] = [];
  track<T extends { close(): void }>(x: T): T {
    this.#open.push(x);
    return x;
  }
  closeAll(): void {
    for (const x of this.#open.splice(0)) x.close();
  }
}

/**
 * The pages that were mapped at `address` are gone: nothing is mapped there, or
 * only the anonymous placeholder unmap() leaves while a detached view object
 * is still alive (private, no file, nothing resident). The range itself is
 * released once the views are collected.
 */
export function releasedAt(address: bigint): boolean {
  const line = mapsLineFor(address);
  if (line === undefined) return true;
  if (!/^\S+ rw-p 00000000 00:00 0\s*$/.test(line)) return false;
  const blocks = readFileSync('/proc/self/smaps', 'utf8').split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/);
  const block = blocks.find((b) => b.startsWith(line.split(' ')[0]!));
  return block !== undefined && /^Rss:\s+0 kB$/m.test(block);
}
