// Honest output at the trust boundary (issue 14 items 11 and 12): what other
// users' processes name things cannot reach a terminal raw, and errors carry
// codes a program can act on.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { systemError } from '../../src/kernel/errors';
import { native } from '../../src/kernel/binding';

const ROOT = path.join(__dirname, '..', '..');
const CLI = path.join(ROOT, 'dist', 'inspect', 'cli.js');
const HOSTILE_NAME = '\x1b]0;pwned\x07\x1b[31mred\x1b[2J\nFAKE  1  2  forged-row\u202e';
const HOSTILE_COMM = '\x1b[31mevil\x07';
const HOSTILE_POOL_NAME = '\x1b]0;pool\x07\x1b[2J\nFAKE  9  9  forged\u200b\u202e';
const HOSTILE_SUB_COMM = '\x1b[32msub\x07';

describe('memseal inspect: names and commands from other processes', function () {
  this.timeout(30000);

  it('escapes control and format characters in the table, keeps them exact in --json', async () => {
    const child = spawn(process.execPath, ['-e', `
      const m = require(${JSON.stringify(ROOT)});
      process.title = ${JSON.stringify(HOSTILE_COMM)};
      const fd = m.memfdCreate(${JSON.stringify(HOSTILE_NAME)});
      require('node:fs').ftruncateSync(fd, 4096);
      process.stdout.write('ready\\n');
      process.stdin.resume();
    `], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      await once(child.stdout!, 'data');
      const table = spawnSync(process.execPath, [CLI, 'inspect', String(child.pid)], { encoding: 'utf8' });
      assert.equal(table.status, 0, table.stderr);
      // eslint-disable-next-line no-control-regex
      assert.doesNotMatch(table.stdout, /[\x00-\x09\x0b-\x1f\x7f\u202e]/, 'no control character reaches the terminal');
      assert.ok(!table.stdout.includes('\nFAKE'), 'a newline in a name cannot start a row');
      assert.ok(table.stdout.includes('\\x1b]0;pwned\\x07\\x1b[31mred\\x1b[2J\\x0aFAKE  1  2  forged-row\\u{202e}'), table.stdout);
      assert.ok(table.stdout.includes('\\x1b[31mevil\\x07'), 'comm is escaped too');
      const json = spawnSync(process.execPath, [CLI, 'inspect', '--json', String(child.pid)], { encoding: 'utf8' });
      const report = JSON.parse(json.stdout) as { processes: { comm: string; memfds: { name: string }[] }[] };
      assert.ok(report.processes[0]!.memfds.some((m) => m.name === HOSTILE_NAME), 'JSON keeps the exact name');
    } finally {
      child.kill();
    }
  });

  it('escapes them in the Publisher/Subscriber pools table too: pool name, publisher and subscriber commands', async () => {
    const fixture = path.join(__dirname, '..', 'fixtures', 'hostile-pool-names.js');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memseal-trust-'));
    const socket = path.join(dir, 'pool.sock');
    const children: ReturnType<typeof spawn>[] = [];
    const start = async (...args: string[]) => {
      const child = spawn(process.execPath, [fixture, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
      children.push(child);
      const [line] = await Promise.race([once(child.stdout!, 'data'), once(child, 'exit').then(() => { throw new Error(`${args[0]} exited`); })]);
      assert.equal(String(line), 'ready\n');
      return child;
    };
    try {
      const pub = await start('publisher', socket, HOSTILE_POOL_NAME, HOSTILE_COMM);
      const sub = await start('subscriber', socket, HOSTILE_SUB_COMM);
      const table = spawnSync(process.execPath, [CLI, 'inspect', String(pub.pid), String(sub.pid)], { encoding: 'utf8' });
      assert.equal(table.status, 0, table.stderr);
      const at = table.stdout.indexOf('Publisher/Subscriber pools:');
      assert.ok(at >= 0, `a pools table: ${table.stdout}`);
      const pools = table.stdout.slice(at);
      // eslint-disable-next-line no-control-regex
      assert.doesNotMatch(pools, /[\x00-\x09\x0b-\x1f\x7f\u202e\u200b]/, `no control or format character reaches the terminal:\n${JSON.stringify(pools)}`);
      assert.ok(!pools.includes('\nFAKE'), 'a newline in a pool name cannot start a row');
      assert.ok(pools.includes('\\x1b]0;pool\\x07\\x1b[2J\\x0aFAKE  9  9  forged\\u{200b}\\u{202e}'), `the pool name, escaped:\n${pools}`);
      assert.ok(pools.includes(`${pub.pid} \\x1b[31mevil\\x07`), `the publisher's comm, escaped:\n${pools}`);
      assert.ok(pools.includes(`${sub.pid} \\x1b[32msub\\x07`), `the subscriber's comm, escaped:\n${pools}`);
    } finally {
      for (const child of children) child.stdin!.end();
      await Promise.all(children.map((child) => (child.exitCode === null && child.signalCode === null ? once(child, 'exit') : null)));
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('error codes libuv does not know', () => {
  it('ETOOMANYREFS is reported by name', () => {
    const ETOOMANYREFS = native.internalConstants.ETOOMANYREFS;
    assert.equal(ETOOMANYREFS, 109, 'the value on every Linux architecture memseal builds for');
    const err = systemError(-ETOOMANYREFS, 'sendmsg');
    assert.equal(err.code, 'ETOOMANYREFS');
    assert.equal(err.errno, -ETOOMANYREFS);
    assert.match(err.message, /^ETOOMANYREFS: too many references/);
  });
});

describe('Channel#receive() out of descriptors (RLIMIT_NOFILE)', function () {
  this.timeout(30000);

  it('reports EMFILE with a hint naming the limit (not ERR_MEMSEAL_CTRUNC), closes what arrived, keeps working', () => {
    const fixture = path.join(__dirname, '..', 'fixtures', 'life-emfile.js');
    const r = spawnSync('sh', ['-c', `ulimit -n 64 && exec "${process.execPath}" "${fixture}"`], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { code: string; syscall: string; hint: string; free: number; after: string };
    assert.equal(out.code, 'EMFILE');
    assert.equal(out.syscall, 'recvmsg');
    assert.match(out.hint, /RLIMIT_NOFILE/);
    assert.ok(out.free >= 4, `every descriptor that arrived was closed (${out.free} free)`);
    assert.equal(out.after, 'one');
  });
});

