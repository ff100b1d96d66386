// inspect() and the `memseal inspect` CLI, against a real child process that
// holds known memfds, seals and mappings (test/fixtures/inspect-holder.js).
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { features, inspect, SealedBuffer, sealNames, Seal, spawnWithChannel, type InspectMemfd, type InspectProcess } from '../../src';
import { FIXTURES, readableCheckout, skipUnless } from '../helpers';

const ROOT = path.join(__dirname, '..', '..');
const CLI = path.join(ROOT, 'dist', 'inspect', 'cli.js');

interface Range { start: string; end: string }
interface HolderInfo {
  pid: number;
  features: typeof features;
  fds: { sealed: number; open: number; nosealing: number; readonly: number; secret?: number };
  mappings: { sealedShared: Range; sealedPrivate: Range; openShared: Range; orphan: Range; secret?: Range; anon: Range };
}

async function startHolder(): Promise<{ child: ChildProcess; info: HolderInfo }> {
  const child = spawn(process.execPath, [path.join(FIXTURES, 'inspect-holder.js')], { stdio: ['pipe', 'pipe', 'inherit'] });
  let text = '';
  child.stdout!.setEncoding('utf8');
  for await (const chunk of child.stdout!) {
    text += chunk;
    if (text.includes('\n')) break;
  }
  return { child, info: JSON.parse(text) as HolderInfo };
}

async function stopHolder(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.stdin!.end();
  await exited;
}

/** A pid that belonged to a process that has exited and been reaped. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

function cli(args: string[], options: { command?: string[] } = {}) {
  const [cmd, ...pre] = options.command ?? [process.execPath];
  return spawnSync(cmd!, [...pre, ...(options.command ? [] : [CLI]), ...args], { encoding: 'utf8', cwd: ROOT, timeout: 20000 });
}

/** Runs `node dist/inspect/cli.js` as uid/gid 65534 with no capabilities. */
function cliUnprivileged(args: string[]) {
  return cli(args, {
    command: ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', process.execPath,
      path.join(readableCheckout(), 'dist', 'inspect', 'cli.js')],
  });
}

function byName(report: InspectProcess, name: string): InspectMemfd {
  const m = report.memfds.find((x) => x.name === name);
  assert.ok(m, `memfd ${name} not reported: ${JSON.stringify(report.memfds.map((x) => x.name))}`);
  return m;
}

/** A JSON-schema-like check of one process report: every field, its type. */
function assertProcessShape(p: InspectProcess): void {
  assert.deepEqual(Object.keys(p).sort(), ['comm', 'errors', 'inspectable', 'memfds', 'pid', 'sealedRegions']);
  assert.equal(typeof p.pid, 'number');
  assert.ok(p.comm === null || typeof p.comm === 'string');
  assert.equal(typeof p.inspectable, 'boolean');
  const mappingKeys = ['end', 'length', 'offset', 'perms', 'pss', 'rss', 'sealed', 'shared', 'start'];
  const assertMapping = (m: Record<string, unknown>, keys: string[]) => {
    assert.deepEqual(Object.keys(m).sort(), keys);
    assert.match(m.start as string, /^0x[0-9a-f]+$/);
    assert.match(m.end as string, /^0x[0-9a-f]+$/);
    assert.equal(BigInt(m.end as string) - BigInt(m.start as string), BigInt(m.length as number));
    assert.match(m.perms as string, /^[r-][w-][x-][sp]$/);
    assert.equal(m.shared, (m.perms as string).endsWith('s'));
    assert.equal(typeof m.offset, 'number');
    assert.ok(m.sealed === null || typeof m.sealed === 'boolean');
    for (const k of ['rss', 'pss']) assert.ok(m[k] === null || (Number.isInteger(m[k]) && (m[k] as number) <= (m.length as number)), k);
  };
  for (const m of p.memfds) {
    assert.deepEqual(Object.keys(m).sort(), ['access', 'comm', 'exec', 'fd', 'inode', 'kind', 'mappedBy', 'mappings', 'mode', 'name',
      'pid', 'pss', 'rss', 'sealNames', 'seals', 'sealsError', 'size']);
    assert.ok(Number.isInteger(m.mappedBy) && m.mappedBy >= (m.mappings?.length ? 1 : 0));
    assert.equal(m.pid, p.pid);
    assert.ok(m.fd === null || Number.isInteger(m.fd));
    assert.ok(m.kind === 'memfd' || m.kind === 'secretmem');
    assert.ok(m.kind === 'memfd' ? typeof m.name === 'string' : m.name === null);
    assert.ok(Number.isInteger(m.inode));
    assert.ok(m.size === null || Number.isInteger(m.size));
    assert.ok(m.mode === null || (Number.isInteger(m.mode) && m.mode <= 0o7777));
    assert.ok(m.access === null || ['r', 'w', 'rw'].includes(m.access));
    assert.equal(m.seals === null, m.sealNames === null);
    assert.equal(m.seals === null, m.sealsError !== null);
    if (m.seals !== null) assert.deepEqual(m.sealNames, sealNames(m.seals));
    for (const mapping of m.mappings ?? []) assertMapping(mapping as unknown as Record<string, unknown>, mappingKeys);
  }
  for (const r of p.sealedRegions ?? []) {
    assertMapping(r as unknown as Record<string, unknown>, [...mappingKeys, 'path'].sort());
    assert.equal(r.sealed, true);
  }
  for (const e of p.errors) {
    assert.deepEqual(Object.keys(e).sort(), ['code', 'message', 'path']);
    assert.match(e.code, /^E[A-Z]+$/);
  }
}

describe('inspect()', function () {
  let child: ChildProcess;
  let info: HolderInfo;
  let report: InspectProcess;

  before(async function () {
    ({ child, info } = await startHolder());
    [report] = inspect(info.pid) as [InspectProcess];
  });
  after(async function () {
    if (child) await stopHolder(child);
  });

  it('reports the process, inspectable, without errors', function () {
    assert.equal(report.pid, info.pid);
    // Node ≥ 24 names its main thread ('MainThread', 'node-MainThread'), which is what comm shows
    assert.equal(report.comm, readFileSync(`/proc/${info.pid}/comm`, 'utf8').trimEnd());
    assert.match(report.comm!, /^(node|(node-)?MainThread)$/);
    assert.equal(report.inspectable, true);
    assert.deepEqual(report.errors, []);
    assertProcessShape(report);
  });

  it('names, sizes, descriptors and access modes of each memfd', function () {
    const sealed = byName(report, 'memseal-test-sealed');
    assert.equal(sealed.fd, info.fds.sealed);
    assert.equal(sealed.kind, 'memfd');
    assert.equal(sealed.size, 8192);
    assert.equal(sealed.access, 'rw');
    assert.equal(byName(report, 'memseal-test-open').size, 12288);
    const nosealing = report.memfds.filter((m) => m.name === 'memseal-test-nosealing');
    assert.deepEqual(nosealing.map((m) => [m.fd, m.access, m.size]),
      [[info.fds.nosealing, 'rw', 100], [info.fds.readonly, 'r', 100]]);
    assert.equal(nosealing[0]!.inode, nosealing[1]!.inode);
  });

  it('reads seals through /proc/<pid>/fd/<n>', function () {
    const sealed = byName(report, 'memseal-test-sealed');
    assert.equal(sealed.seals! & ~Seal.EXEC, Seal.SEAL | Seal.SHRINK | Seal.GROW | Seal.WRITE);
    assert.deepEqual(sealed.sealNames!.filter((n) => n !== 'exec'), ['seal', 'shrink', 'grow', 'write']);
    assert.equal(sealed.sealsError, null);
    assert.equal(byName(report, 'memseal-test-open').seals, 0);
    assert.deepEqual(byName(report, 'memseal-test-open').sealNames, []);
    // memfd_create without MFD_ALLOW_SEALING starts with F_SEAL_SEAL
    assert.equal(byName(report, 'memseal-test-nosealing').seals, Seal.SEAL);
  });

  it('mode bits: MFD_NOEXEC_SEAL clears the execute bits', function () {
    skipUnless(this, features.noexecSeal, 'MFD_NOEXEC_SEAL needs Linux ≥ 6.3');
    const sealed = byName(report, 'memseal-test-sealed');
    assert.equal(sealed.exec, false);
    assert.equal(sealed.mode! & 0o111, 0);
    assert.ok(sealed.sealNames!.includes('exec'), 'MFD_NOEXEC_SEAL implies F_SEAL_EXEC');
    const open = byName(report, 'memseal-test-open');
    assert.equal(open.exec, (open.mode! & 0o111) !== 0);
    if (features.memfdNoexecSysctl === 0) assert.equal(open.exec, true);
  });

  it('matches shared and private mappings by inode', function () {
    const sealed = byName(report, 'memseal-test-sealed');
    const shared = sealed.mappings!.find((m) => m.start === info.mappings.sealedShared.start);
    const priv = sealed.mappings!.find((m) => m.start === info.mappings.sealedPrivate.start);
    assert.ok(shared && priv, JSON.stringify(sealed.mappings));
    assert.deepEqual([shared.end, shared.perms, shared.shared, shared.offset, shared.length],
      [info.mappings.sealedShared.end, 'r--s', true, 0, 8192]);
    assert.deepEqual([priv.end, priv.perms, priv.shared, priv.offset, priv.length],
      [info.mappings.sealedPrivate.end, 'rw-p', false, 4096, 4096]);
    assert.equal(sealed.mappings!.length, 2);
    const open = byName(report, 'memseal-test-open');
    assert.deepEqual(open.mappings!.map((m) => [m.start, m.end, m.perms]),
      [[info.mappings.openShared.start, info.mappings.openShared.end, 'rw-s']]);
    assert.deepEqual(byName(report, 'memseal-test-nosealing').mappings, []);
  });

  it('flags mseal\'d mappings (smaps VmFlags sl)', function () {
    skipUnless(this, features.mseal, 'mseal needs Linux ≥ 6.10 (64-bit)');
    const sealed = byName(report, 'memseal-test-sealed');
    const byStart = new Map(sealed.mappings!.map((m) => [m.start, m.sealed]));
    assert.equal(byStart.get(info.mappings.sealedPrivate.start), true);
    assert.equal(byStart.get(info.mappings.sealedShared.start), false);
  });

  it('lists mseal\'d regions that are not memfd-backed, and only those', function () {
    skipUnless(this, features.mseal, 'mseal needs Linux ≥ 6.10 (64-bit)');
    const anon = report.sealedRegions!.find((r) => r.start === info.mappings.anon.start);
    assert.ok(anon, JSON.stringify(report.sealedRegions));
    assert.deepEqual([anon.end, anon.perms, anon.shared, anon.path, anon.sealed],
      [info.mappings.anon.end, 'r--p', false, '', true]);
    assert.ok(!report.sealedRegions!.some((r) => r.start === info.mappings.sealedPrivate.start),
      'the mseal\'d memfd mapping belongs to its memfd, not to sealedRegions');
  });

  it('reports a memfd whose descriptors are closed but which is still mapped', function () {
    const orphan = byName(report, 'memseal-test-orphan');
    assert.equal(orphan.fd, null);
    assert.equal(orphan.access, null);
    assert.deepEqual(orphan.mappings!.map((m) => [m.start, m.end, m.perms]),
      [[info.mappings.orphan.start, info.mappings.orphan.end, 'r--s']]);
    // as root, /proc/<pid>/map_files gives size and seals (CAP_SYS_ADMIN)
    if (process.getuid!() === 0) assert.deepEqual([orphan.size, orphan.seals], [4096, 0]);
    assert.equal(report.memfds.at(-1), orphan, 'fd-less entries come last');
  });

  it('reports memfd_secret files: size and mappings, seals unreadable (ENXIO)', function () {
    skipUnless(this, features.memfdSecret, 'memfd_secret needs Linux ≥ 5.14 with secretmem enabled');
    const secret = report.memfds.find((m) => m.kind === 'secretmem');
    assert.ok(secret, JSON.stringify(report.memfds));
    assert.deepEqual([secret.fd, secret.name, secret.size, secret.seals, secret.sealsError],
      [info.fds.secret, null, 4096, null, 'ENXIO']);
    assert.deepEqual(secret.mappings!.map((m) => [m.start, m.perms]), [[info.mappings.secret!.start, 'rw-s']]);
  });

  it('reports a process that has exited as ESRCH, without throwing', function () {
    const pid = deadPid();
    const [gone] = inspect([pid]);
    assert.deepEqual([gone!.pid, gone!.inspectable, gone!.comm, gone!.memfds], [pid, false, null, []]);
    assert.equal(gone!.errors[0]!.code, 'ESRCH');
    assertProcessShape(gone!);
  });

  it('keeps the order of the pids asked for', function () {
    const pid = deadPid();
    assert.deepEqual(inspect([pid, info.pid]).map((p) => p.pid), [pid, info.pid]);
  });

  it('scans every process when no pid is given, leaving out the empty and the vanished', function () {
    const all = inspect();
    const mine = all.find((p) => p.pid === info.pid);
    assert.ok(mine);
    assert.ok(mine.memfds.some((m) => m.name === 'memseal-test-sealed'));
    for (const p of all) {
      assertProcessShape(p);
      assert.ok(p.memfds.length > 0 || (p.sealedRegions?.length ?? 0) > 0 || !p.inspectable);
      assert.ok(!p.errors.some((e) => e.code === 'ESRCH') || p.inspectable);
    }
  });

  it('rejects malformed pids before reading anything', function () {
    assert.throws(() => inspect('1' as unknown as number), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => inspect(0), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => inspect(1.5), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => inspect([1, -2]), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE', message: /pid\[1\]/ });
  });
});

describe('memseal inspect (CLI)', function () {
  let child: ChildProcess;
  let info: HolderInfo;

  before(async function () {
    ({ child, info } = await startHolder());
  });
  after(async function () {
    if (child) await stopHolder(child);
  });

  it('dist/inspect/cli.js is executable and starts with a shebang', function () {
    assert.notEqual(statSync(CLI).mode & 0o111, 0);
    const r = spawnSync(CLI, ['--help'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^Usage: memseal inspect/);
  });

  it('prints an aligned table and exits 0 when it finds memfds', function () {
    const r = cli(['inspect', String(info.pid)]);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.split('\n');
    const header = lines[0]!;
    assert.match(header, /^PID\s+COMMAND\s+FD\s+NAME\s+SIZE\s+MODE\s+ACC\s+SEALS\s+RSS\s+PSS\s+PROCS\s+MAPPINGS$/);
    const row = lines.find((l) => l.includes('memseal-test-sealed'))!;
    assert.ok(row, r.stdout);
    const comm = readFileSync(`/proc/${info.pid}/comm`, 'utf8').trimEnd().replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    assert.match(row, new RegExp(`^${info.pid}\\s+${comm}\\s+${info.fds.sealed}\\s+memseal-test-sealed\\s+8 KiB\\s+`));
    assert.match(row, /seal,shrink,grow,write/);
    // columns line up: every field starts where its header does
    const rows = lines.filter((l) => l.startsWith(`${info.pid} `));
    assert.ok(rows.length >= 4, r.stdout);
    for (const col of ['COMMAND', 'FD', 'NAME', 'SIZE', 'MODE', 'ACC', 'SEALS', 'RSS', 'PSS', 'PROCS', 'MAPPINGS']) {
      const at = header.indexOf(col);
      for (const l of rows.slice(0, rows.length - (features.mseal ? 1 : 0))) {
        assert.ok(l[at - 1] === ' ' && l[at] !== ' ', `${col} column misaligned in\n${r.stdout}`);
      }
    }
    assert.match(r.stdout, new RegExp(`${info.mappings.sealedShared.start.slice(2)}-${info.mappings.sealedShared.end.slice(2)} r--s`));
    if (features.mseal) {
      assert.match(r.stdout, new RegExp(`${info.mappings.sealedPrivate.start.slice(2)}-\\S+ rw-p mseal`));
      assert.match(r.stdout, /mseal'd regions not backed by a memfd:/);
      assert.match(r.stdout, new RegExp(`${info.pid}\\s+${comm}\\s+${info.mappings.anon.start.slice(2)}-${info.mappings.anon.end.slice(2)}\\s+r--p\\s+4 KiB\\s+\\[anon\\]`));
    }
  });

  it('--json prints what inspect() returns', function () {
    const r = cli(['inspect', '--json', String(info.pid)]);
    assert.equal(r.status, 0, r.stderr);
    const parsed = JSON.parse(r.stdout) as { processes: InspectProcess[] };
    assert.deepEqual(Object.keys(parsed), ['processes']);
    assert.equal(parsed.processes.length, 1);
    assertProcessShape(parsed.processes[0]!);
    assert.deepEqual(parsed.processes, inspect(info.pid));
  });

  it('with no pid scans every process, the fixture included', function () {
    const r = cli(['inspect', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const { processes } = JSON.parse(r.stdout) as { processes: InspectProcess[] };
    assert.ok(processes.some((p) => p.pid === info.pid && p.memfds.some((m) => m.name === 'memseal-test-open')));
  });

  it('exits 1 when a process holds nothing', async function () {
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      await once(sleeper, 'spawn');
      // let exec finish so /proc shows sleep, not the forked parent
      for (let i = 0; i < 100 && inspect(sleeper.pid!)[0]!.comm !== 'sleep'; i++) await new Promise((r) => setTimeout(r, 10));
      const [lib] = inspect(sleeper.pid!);
      assert.deepEqual(lib!.memfds, []);
      // kernels built with CONFIG_MSEAL_SYSTEM_MAPPINGS (6.15+) seal [vdso] & co in every process
      const systemOnly = (lib!.sealedRegions ?? []).every((reg) => reg.path.startsWith('['));
      assert.ok(systemOnly, JSON.stringify(lib!.sealedRegions));
      const r = cli(['inspect', String(sleeper.pid)]);
      assert.equal(r.status, (lib!.sealedRegions ?? []).length === 0 ? 1 : 0, r.stdout + r.stderr);
      if ((lib!.sealedRegions ?? []).length === 0) assert.match(r.stdout, /no memfds or mseal'd regions found/);
    } finally {
      sleeper.kill();
    }
  });

  it('exits 2 for a pid that does not exist', function () {
    const pid = deadPid();
    const r = cli(['inspect', String(pid)]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, new RegExp(`^memseal: ${pid}: ESRCH: no such process`, 'm'));
  });

  // As root the CLI is run as uid 65534 against the holder; as any other user the
  // CLI already is unprivileged, and root's pid 1 is the process it may not inspect.
  const asRoot = process.getuid!() === 0;

  it('exits 2 when it may not inspect the process (unprivileged user)', function () {
    if (!asRoot) skipUnless(this, statSync('/proc/1').uid !== process.getuid!(), 'pid 1 belongs to this user: nothing here is off limits');
    const r = asRoot ? cliUnprivileged(['inspect', '--json', String(info.pid)]) : cli(['inspect', '--json', '1']);
    assert.equal(r.status, 2, r.stdout + r.stderr);
    const [p] = (JSON.parse(r.stdout) as { processes: InspectProcess[] }).processes;
    assert.equal(p!.inspectable, false);
    assert.equal(p!.errors[0]!.code, 'EACCES');
    assert.deepEqual(p!.memfds, []);
  });

  it('an unprivileged full scan skips what it may not read and still exits cleanly', function () {
    if (!asRoot) skipUnless(this, statSync('/proc/1').uid !== process.getuid!(), 'pid 1 belongs to this user: nothing here is off limits');
    const r = asRoot ? cliUnprivileged(['inspect']) : cli(['inspect']);
    assert.match(r.stdout, /could not be inspected: permission denied/);
    if (asRoot) {
      assert.equal(r.status, 1, r.stdout + r.stderr);
      assert.doesNotMatch(r.stdout, /memseal-test-/);
    } else {
      assert.equal(r.status, 0, r.stdout + r.stderr);   // its own holder is found
      assert.match(r.stdout, /memseal-test-sealed/);
    }
  });

  it('usage errors exit 2 with a message', function () {
    for (const args of [[], ['bogus'], ['inspect', '--frob'], ['inspect', 'abc'], ['inspect', '--watch'],
      ['inspect', '--watch', '0'], ['inspect', '--watch=x']]) {
      const r = cli(args);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /^memseal: .+\n\nUsage: memseal inspect/);
      assert.equal(r.stdout, '');
    }
  });

  it('--help exits 0', function () {
    for (const args of [['--help'], ['inspect', '-h']]) {
      const r = cli(args);
      assert.equal(r.status, 0);
      assert.match(r.stdout, /--watch <ms>/);
    }
  });

  it('--watch refreshes until interrupted (one JSON document per line)', async function () {
    const w = spawn(process.execPath, [CLI, 'inspect', '--json', '--watch', '50', String(info.pid)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    w.stdout!.setEncoding('utf8');
    for await (const chunk of w.stdout!) {
      text += chunk;
      if (text.split('\n').length > 2) break;
    }
    const exited = once(w, 'exit');
    w.kill('SIGINT');
    const [code] = await exited;
    const docs = text.split('\n').slice(0, 2).map((l) => JSON.parse(l) as { processes: InspectProcess[] });
    for (const d of docs) assert.equal(d.processes[0]!.pid, info.pid);
    assert.equal(code, 0);
  });

  it('node_modules/.bin/memseal inspect works from the repository (the local bin, run directly)', function () {
    const bin = path.join(ROOT, 'node_modules', '.bin', 'memseal');
    assert.equal(realpathSync(bin), CLI, 'the build links the local bin to dist/inspect/cli.js');
    const r = cli(['inspect', '--json', String(info.pid)], { command: [bin] });
    assert.equal(r.status, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { processes: InspectProcess[] }).processes[0]!.pid, info.pid);
  });

  it('npx --no-install memseal, in a project that depends on memseal, runs its local bin (no npx cache, no install)', function () {
    this.timeout(60000);
    // The layout npm makes for a dependency; an empty npm cache proves nothing is fetched or installed into it.
    const project = mkdtempSync(path.join(tmpdir(), 'memseal-dependent-'));
    try {
      writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'dependent', version: '1.0.0', dependencies: { memseal: '*' } }));
      mkdirSync(path.join(project, 'node_modules', '.bin'), { recursive: true });
      symlinkSync(ROOT, path.join(project, 'node_modules', 'memseal'));
      symlinkSync('../memseal/dist/inspect/cli.js', path.join(project, 'node_modules', '.bin', 'memseal'));
      const cache = path.join(project, 'npm-cache');
      const r = spawnSync('npx', ['--no-install', 'memseal', 'inspect', '--json', String(info.pid)],
        { cwd: project, encoding: 'utf8', timeout: 50000, env: { ...process.env, npm_config_cache: cache, npm_config_update_notifier: 'false' } });
      assert.equal(r.status, 0, r.stderr);
      assert.equal((JSON.parse(r.stdout) as { processes: InspectProcess[] }).processes[0]!.pid, info.pid);
      assert.ok(!existsSync(path.join(cache, '_npx')), 'npx installed something into its cache');
    } finally {
      rmSync(project, { recursive: true, force: true });
    }
  });
});

describe('memseal inspect: how much memory', function () {
  this.timeout(60000);

  it('gives each memfd its resident and proportional size and how many processes map it; the PSS of all sums to the file once', async () => {
    const SIZE = 1 << 20;
    using sb = SealedBuffer.create(SIZE, (b) => { b.fill(7); }, { name: 'memseal-test-memory' });
    let sum = 0;
    for (let i = 0; i < SIZE; i += 4096) sum += sb.readonlyBytes[i]!;   // resident in this process's read-only view too
    assert.equal(sum, 7 * (SIZE / 4096));
    const { child, channel } = spawnWithChannel(process.execPath, [path.join(FIXTURES, 'inspect-reader.js')], { stdio: 'inherit' });
    const exited = once(child, 'exit');
    try {
      await channel.sendBuffer(sb);
      assert.match((await channel.receive()).data.toString(), /^read \d+$/);
      const report = inspect([process.pid, child.pid!]);
      const entries = report.flatMap((p) => p.memfds.filter((m) => m.name === 'memseal-test-memory' && m.mappings!.length > 0));
      assert.equal(new Set(entries.map((m) => m.inode)).size, 1, JSON.stringify(entries));
      const [mine, theirs] = [process.pid, child.pid].map((pid) => entries.find((m) => m.pid === pid)!);
      assert.ok(mine && theirs, JSON.stringify(entries));
      for (const m of [mine, theirs]) {
        assert.equal(m.mappedBy, 2);
        assert.ok(m.rss! >= SIZE, `rss ${m.rss}`);
        assert.equal(m.rss, m.mappings!.reduce((n, x) => n + x.rss!, 0));
      }
      // Every page is mapped by both processes: the PSS of the two sums to the file, once.
      const pss = mine.pss! + theirs.pss!;
      assert.ok(Math.abs(pss - SIZE) <= 16 * 4096, `PSS summed ${pss}, file ${SIZE}`);
      const r = cli(['inspect', String(process.pid), String(child.pid)]);
      assert.equal(r.status, 0, r.stderr);
      const row = r.stdout.split('\n').find((l) => l.startsWith(`${child.pid} `) && l.includes('memseal-test-memory'))!;
      assert.match(row, /\s1(?:\.0)? MiB\s+(?:\d+(?:\.\d)? KiB|[\d.]+ MiB)\s+2\s+/, r.stdout);
      assert.match(r.stdout, /^total: \d+ files?, .*resident in the mappings listed: .*\(PSS summed over processes: each page once\)$/m);
      assert.match(r.stdout, /^ACC rw\*: opened read-write, but the file is write-sealed/m);
    } finally {
      channel.close();
      await exited;
    }
  });
});
