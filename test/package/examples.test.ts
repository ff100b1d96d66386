// Every example and the demo run as the README says, and print what they claim.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.join(__dirname, '..', '..');
const TSX = path.join(ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs');

function run(file: string, env: NodeJS.ProcessEnv = process.env): { status: number | null; out: string } {
  const args = file.endsWith('.ts') ? [TSX, file] : [file];
  const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', timeout: 60000, env });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('examples (run as the README says)', function () {
  this.timeout(90000);

  const cases: [string, RegExp[]][] = [
    ['examples/seal-basics.ts', [/seals: seal, shrink, grow, write/, /EPERM/]],
    ['examples/handoff.ts', [/child \d+: 1048576 bytes, mapped private/, /child says "checksum ok"/]],
    ['examples/fan-out.ts', [/4 workers received, verified and read all 64 MiB/, /worker 3 \(pid \d+\): [^\n]*PSS of shared memory \d+\.\d MiB/,
      /the buffer's pages: (6[2-6])\.\d MiB in all for 4 readers of 64 MiB \(PSS summed\)/]],
    ['examples/channel-handoff.ts', [/parent: child says "checked [0-9a-f]{16}"; its memfd holds "written by the child"/]],
    ['examples/server-client.ts', [/client \d+ read greeting=hello limit=42/]],
    ['examples/frozen-config.ts', [/sealed \d+ of 65536 bytes with (mseal|mprotect)/, /routes: \[ 200, 301, 404 \]/,
      /alloc\(\) after seal\(\): refused/, /still readable: \{"listen"/]],
    ['examples/secret-key.ts', [/32-byte key in (secretmem|mlock) memory/, /HMAC-SHA256\("message"\): [0-9a-f]{16}/,
      /read through \/proc\/self\/mem: (refused, EIO|the key \(mlock memory is not hidden\))/, /after wipe\(\): <Buffer 00 00/]],
    ['examples/stream.ts', [/worker [0-2]: 30 frames \(20 read in place, 10 copied\), 0 wrong; pool mapped read-only/,
      /producer: 30 frames of 225 KiB to 3 workers through a [\d.]+ MiB pool/]],
    ['examples/demo.js', [/checksum ok/, /memseal was [\d.]+x faster/]],
    ['examples/cluster-dataset.ts', [/(worker \d+: 16777216 bytes, checksum ok\n){3}/,
      /3 workers read the same 16 MiB dataset \(sha256 [0-9a-f]{16}\); 1 other process refused/]],
    ['examples/snapshots.ts', [/fast reader saw versions [\d,]+; latest 10/, /slow reader saw versions [\d,]+; latest 10/,
      /published 10 versions to 2 readers/]],
    ['examples/arrow-cluster.ts', [/(node worker: sum\(price\*qty\) = 98999967, mean\(matrix\[:, 1\]\) = 0\.015625, views over the mapping\n){4}/,
      /python reader: sum\(price\*qty\) = 98999967, mean\(matrix\[:, 1\]\) = 0\.015625, views over the mapping|the Python reader is skipped/,
      /readers shared a 15\.3 MiB table and a 4\.9 MiB matrix; expected sum\(price\*qty\) = 98999967/]],
  ];
  for (const [file, patterns] of cases) {
    it(file, () => {
      const { status, out } = run(file);
      assert.equal(status, 0, out);
      for (const p of patterns) assert.match(out, p);
    });
  }

  it('examples/snapshots.ts prints its last line when the readers exit before the parent waits for them', () => {
    // The parent sleeps 1 s longer at every step, so both readers have exited before its last sleep ends.
    const preload = path.join(ROOT, 'test', 'fixtures', 'slow-timers.js');
    const { status, out } = run('examples/snapshots.ts', { ...process.env, NODE_OPTIONS: `--require ${preload}` });
    assert.equal(status, 0, out);
    assert.match(out, /published 10 versions to 2 readers/);
  });

  it('examples/python-worker.ts (a Python peer verifies the seals and reads the bytes)', function () {
    const py = spawnSync('python3', ['-c', 'import socket, fcntl; socket.recv_fds; fcntl.F_GET_SEALS'], { encoding: 'utf8' });
    if (py.status !== 0) {
      console.log('      (skipped: no python3 >= 3.9 with socket.recv_fds and fcntl.F_GET_SEALS)');
      this.skip();
    }
    const { status, out } = run('examples/python-worker.ts');
    assert.equal(status, 0, out);
    assert.match(out, /python \d+: frame 1 8388608 bytes, sha256 [0-9a-f]{16}/);
    assert.match(out, /python read the same bytes: checksum ok/);
  });

  it("README's quick start runs as written and prints what its comments say", () => {
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Quick start'));
    const code = /```ts\n([\s\S]*?)```/.exec(section)![1]!;
    const dir = mkdtempSync(path.join(os.tmpdir(), 'memseal-readme-'));
    try {
      const file = path.join(dir, 'quick-start.ts');
      writeFileSync(file, code.replace(/from 'memseal'/g, `from ${JSON.stringify(ROOT)}`));
      const { status, out } = run(file);
      assert.equal(status, 0, out);
      assert.match(out, /\[ 'seal', 'shrink', 'grow', 'write' \]/);
      assert.match(out, /EPERM: operation not permitted, write/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
