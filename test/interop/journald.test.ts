// examples/journald.ts against a private systemd-journald: a namespace
// instance (`systemd-journald NAME`, its own socket under
// /run/systemd/journal.NAME/ and its own journal files), fed by an
// unprivileged sender, read back with `journalctl --namespace` byte for byte.
// Skips, saying why, where there is no systemd-journald or we are not root.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { exampleMessage } from '../../examples/journald';
import { countOwnFds as countFds } from '../fd-count';
import { readableCheckout } from '../helpers';

const NOBODY = 65534;
const MESSAGE_SIZE = (1 << 20) + 12345;  // what the example logs

function journaldBinary(): string | null {
  for (const p of ['/lib/systemd/systemd-journald', '/usr/lib/systemd/systemd-journald']) if (fs.existsSync(p)) return p;
  return null;
}

/** Fields of the entries in `journalctl -o export` output (binary-safe form). */
function parseExport(buf: Buffer): Map<string, Buffer>[] {
  const entries: Map<string, Buffer>[] = [];
  let cur = new Map<string, Buffer>();
  let at = 0;
  while (at < buf.length) {
    const nl = buf.indexOf(0x0a, at);
    if (nl < 0) break;
    if (nl === at) {  // blank line: end of entry
      if (cur.size > 0) entries.push(cur);
      cur = new Map();
      at = nl + 1;
      continue;
    }
    const line = buf.subarray(at, nl);
    const eq = line.indexOf(0x3d);
    if (eq >= 0) {
      cur.set(line.subarray(0, eq).toString(), Buffer.from(line.subarray(eq + 1)));
      at = nl + 1;
    } else {  // NAME\n, le64 length, data, \n
      const len = Number(buf.readBigUInt64LE(nl + 1));
      cur.set(line.toString(), Buffer.from(buf.subarray(nl + 9, nl + 9 + len)));
      at = nl + 9 + len + 1;
    }
  }
  if (cur.size > 0) entries.push(cur);
  return entries;
}

describe('systemd-journald: a > 1 MiB entry through a sealed memfd (examples/journald.ts)', function () {
  this.timeout(180000);  // cold tsx cache for the unprivileged user, slow under the sanitizers
  const namespace = `memseal-test-${process.pid}`;
  const socket = `/run/systemd/journal.${namespace}/socket`;
  let journald: ChildProcess | null = null;
  let version = 0;
  let fdsBefore = 0;

  before(async function () {
    const bin = journaldBinary();
    const why = bin === null ? 'no systemd-journald binary (install the systemd package)'
      : process.getuid?.() !== 0 ? 'starting a private systemd-journald needs root'
        : spawnSync('journalctl', ['--version']).error ? 'no journalctl'
          // the sender runs as nobody: a Node installed under a private directory (root's home) cannot start there
          : spawnSync(process.execPath, ['-e', '0'], { uid: NOBODY, gid: NOBODY }).status !== 0
            ? `this Node (${process.execPath}) cannot be run by uid ${NOBODY}` : null;
    if (why !== null) {
      console.log(`      (skipped: ${why})`);
      this.skip();
    }
    version = Number(/systemd (\d+)/.exec(spawnSync('journalctl', ['--version'], { encoding: 'utf8' }).stdout)?.[1] ?? 0);
    fdsBefore = countFds();
    journald = spawn(bin!, [namespace], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    journald.stderr!.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
    const deadline = Date.now() + 15000;
    while (!fs.existsSync(socket)) {
      if (journald.exitCode !== null || Date.now() > deadline) {
        console.log(`      (skipped: systemd-journald ${namespace} did not start here: ${stderr.trim() || `exit ${journald.exitCode}`})`);
        this.skip();
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  });

  after(async () => {
    if (journald !== null && journald.exitCode === null) {
      const exited = once(journald, 'close');
      journald.kill('SIGTERM');
      await exited;
    }
    journald = null;
    const machineId = fs.existsSync('/etc/machine-id') ? fs.readFileSync('/etc/machine-id', 'utf8').trim() : '';
    for (const dir of [`/run/systemd/journal.${namespace}`, `/var/log/journal/${machineId}.${namespace}`, `/run/log/journal/${machineId}.${namespace}`]) {
      if (machineId !== '' || dir.startsWith('/run/systemd/')) fs.rmSync(dir, { recursive: true, force: true });
    }
    if (fdsBefore > 0) assert.equal(countFds(), fdsBefore, 'descriptor count flat');
  });

  /** Runs the example as an unprivileged user (nobody); returns its output. */
  function sendAsNobody(id: string, ...flags: string[]): string {
    // From a copy any user can read when the checkout lies under a private directory.
    const root = readableCheckout();
    const r = spawnSync(process.execPath, [path.join(root, 'node_modules', 'tsx', 'dist', 'cli.mjs'), 'examples/journald.ts', socket, id, ...flags], {
      cwd: root, encoding: 'utf8', uid: NOBODY, gid: NOBODY, timeout: 90000,
      env: { ...process.env, HOME: '/tmp', TSX_TSCONFIG_PATH: path.join(root, 'tsconfig.json') },
    });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    return r.stdout;
  }

  async function readBack(field: string, value: string): Promise<Map<string, Buffer> | undefined> {
    const deadline = Date.now() + 15000;
    for (;;) {
      const r = spawnSync('journalctl', [`--namespace=${namespace}`, '-o', 'export', '--all', `${field}=${value}`],
        { maxBuffer: 64 << 20, timeout: 15000 });
      const found = parseExport(r.stdout ?? Buffer.alloc(0))[0];
      if (found !== undefined || Date.now() > deadline) return found;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  it('logs it as user nobody with exactly SHRINK|GROW|WRITE|SEAL, and journalctl returns it byte for byte', async () => {
    const id = `exact-${process.pid}`;
    const out = sendAsNobody(id);
    assert.match(out, new RegExp(`logged a ${MESSAGE_SIZE}-byte message .* sealed seal, shrink, grow, write$`, 'm'));
    const entry = await readBack('MEMSEAL_EXAMPLE_ID', id);
    assert.ok(entry, 'the entry is in the journal');
    assert.equal(entry.get('_UID')?.toString(), String(NOBODY), 'sent by an unprivileged user');
    assert.equal(entry.get('_TRANSPORT')?.toString(), 'journal');
    assert.equal(entry.get('SYSLOG_IDENTIFIER')?.toString(), 'memseal-example');
    const message = entry.get('MESSAGE')!;
    assert.equal(message.length, MESSAGE_SIZE);
    assert.ok(message.equals(exampleMessage(MESSAGE_SIZE)), 'MESSAGE is byte for byte what was sent');
  });

  it('systemd ≤ 252 refuses the default seals (EXEC too) from a non-root sender: why options.seals exists', async function () {
    if (version === 0 || version > 252) {
      console.log(`      (skipped: systemd ${version} accepts F_SEAL_EXEC; only ≤ 252 compares the seals exactly)`);
      this.skip();
    }
    const refused = `default-${process.pid}`;
    const marker = `marker-${process.pid}`;
    const out = sendAsNobody(refused, '--default-seals');
    if (!/exec/.test(out)) {
      console.log('      (skipped: this kernel has no F_SEAL_EXEC, so the default seals are exactly 0xf)');
      this.skip();
    }
    sendAsNobody(marker);  // the same socket, processed in order: once the marker is in, the other was handled
    assert.ok(await readBack('MEMSEAL_EXAMPLE_ID', marker), 'the marker entry arrived');
    const r = spawnSync('journalctl', [`--namespace=${namespace}`, '-o', 'export', `MEMSEAL_EXAMPLE_ID=${refused}`], { timeout: 15000 });
    assert.equal(r.status, 0);
    assert.equal(parseExport(r.stdout).length, 0, 'journald dropped the memfd sealed 0x2f');
  });
});
