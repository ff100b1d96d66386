// Peers that map a received memfd writable and shared, as a Wayland compositor maps a client's wl_shm
// pool (libwayland: mmap(PROT_READ | PROT_WRITE, MAP_SHARED)). The kernel refuses that mapping of a
// file sealed WRITE or FUTURE_WRITE (EPERM), so such peers need SHRINK | GROW | SEAL; those seals
// still keep the file from shrinking under the client. docs/channel.md, "Peers that map writable".
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { offerPool } from '../../examples/wayland-shm';
import { constants as C, mmap, Seal, SealedBuffer, socketPair, type SystemError } from '../../src';

const WL_SHM_SEALS = Seal.SHRINK | Seal.GROW | Seal.SEAL;

/** What the peer does with the descriptor it received: libwayland's wl_shm pool mapping. */
function mapLikeWlShm(fd: number, size: number): { ok: true; first: number } | { ok: false; code: string } {
  try {
    using m = mmap(size, C.PROT_READ | C.PROT_WRITE, C.MAP_SHARED, fd);
    return { ok: true, first: m.bytes()[0]! };
  } catch (err) {
    return { ok: false, code: (err as SystemError).code };
  }
}

describe('peers that map a received memfd writable and shared (Wayland wl_shm)', () => {
  for (const [what, seals] of [['the default seals (WRITE)', undefined], ['FUTURE_WRITE', Seal.SHRINK | Seal.GROW | Seal.FUTURE_WRITE | Seal.SEAL]] as const) {
    it(`refuse a buffer sealed with ${what}: the kernel answers EPERM`, async () => {
      const [a, b] = socketPair();
      try {
        using sb = SealedBuffer.from('frame', seals === undefined ? {} : { seals });
        await a.send('pool', [sb.fd]);
        using m = await b.receive();
        assert.deepEqual(mapLikeWlShm(m.fds[0]!, 5), { ok: false, code: 'EPERM' });
        m.closeFds();
      } finally {
        a.close(); b.close();
      }
    });
  }

  it('map a buffer sealed SHRINK | GROW | SEAL, which still cannot shrink or grow under the client', async () => {
    const [a, b] = socketPair();
    try {
      using sb = SealedBuffer.from('frame', { seals: WL_SHM_SEALS });
      assert.equal(sb.seals & (Seal.WRITE | Seal.FUTURE_WRITE), 0);
      await a.send('pool', [sb.fd]);
      using m = await b.receive();
      const fd = m.fds[0]!;
      assert.deepEqual(mapLikeWlShm(fd, 5), { ok: true, first: 'f'.charCodeAt(0) });
      // What protects the client from SIGBUS: nobody can truncate the pool it maps, nor add to it.
      assert.throws(() => fs.ftruncateSync(fd, 0), { code: 'EPERM' });
      assert.throws(() => fs.ftruncateSync(fd, 8192), { code: 'EPERM' });
      m.closeFds();
    } finally {
      a.close(); b.close();
    }
  });
});

describe('a real Wayland compositor (weston, headless) and a wl_shm pool from a SealedBuffer', function () {
  this.timeout(60000);
  let weston: ChildProcess | null = null;
  let runtime = '';
  let log = '';
  const socket = () => path.join(runtime, 'wl-memseal');

  before(async function () {
    if (spawnSync('weston', ['--version'], { encoding: 'utf8' }).error) {
      console.log('      (skipped: weston is not installed; .ci/interop-deps.sh installs it)');
      this.skip();
    }
    runtime = fs.mkdtempSync(path.join(os.tmpdir(), 'memseal-xdg-'));   // 0700, as XDG_RUNTIME_DIR must be
    weston = spawn('weston', ['--backend=headless-backend.so', '--socket=wl-memseal', '--idle-time=0', '--no-config'],
      { env: { ...process.env, XDG_RUNTIME_DIR: runtime }, stdio: ['ignore', 'pipe', 'pipe'] });
    weston.stdout!.on('data', (d: Buffer) => (log += d));
    weston.stderr!.on('data', (d: Buffer) => (log += d));
    const deadline = Date.now() + 20000;
    while (!fs.existsSync(`${socket()}.lock`) || !fs.existsSync(socket())) {
      if (weston.exitCode !== null || Date.now() > deadline) throw new Error(`weston did not start:\n${log}`);
      await new Promise((resolve) => setTimeout(resolve, 20));   // polling for the socket file
    }
  });
  after(async () => {
    if (weston !== null && weston.exitCode === null) {
      const exited = once(weston, 'exit');
      weston.kill('SIGTERM');
      await exited;
    }
    if (runtime !== '') fs.rmSync(runtime, { recursive: true, force: true });
  });

  it('accepts a pool sealed SHRINK | GROW | SEAL', async () => {
    using pool = SealedBuffer.from(new Uint8Array(64 * 64 * 4), { seals: WL_SHM_SEALS, name: 'wl_shm pool' });
    assert.equal(await offerPool(socket(), pool), 'accepted', log);
  });

  it('refuses one with the default seals: invalid_fd, "failed mmap … Operation not permitted"', async () => {
    using pool = SealedBuffer.from(new Uint8Array(64 * 64 * 4), { name: 'wl_shm pool' });
    // wl_shm error 2 is invalid_fd, posted on the wl_shm object (id 4 in the example's numbering)
    assert.match(await offerPool(socket(), pool), /^error 2 on object 4: failed mmap fd \d+: Operation not permitted$/);
  });
});
