// A peer's sparse hugetlb memfd: its missing pages are charged to the reader when first read, and a
// failed charge is a SIGBUS. Receivers fault the pages in before any view exists (MADV_POPULATE_READ)
// and turn that into an error. Run in a hugetlb cgroup (v2) with a limit of 0 pages.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { addSeals, constants as C, features, memfdCreate, Seal, spawnWithChannel } from '../../src';
import * as P from '../../src/pubsub/protocol';
import { FIXTURES, killChildren } from '../helpers';

const HUGE = 2 * 1024 * 1024;
const POOL = `/sys/kernel/mm/hugepages/hugepages-${HUGE / 1024}kB`;
const FIXTURE = path.join(FIXTURES, 'trust-hugetlb.js');
const PY_PEER = path.join(__dirname, '..', '..', 'python', 'memseal_peer.py');

/** Where cgroup v2 is mounted, if anywhere. */
function cgroup2Root(): string | null {
  for (const line of fs.readFileSync('/proc/self/mounts', 'latin1').split('\n')) {
    const [, where, type] = line.split(' ');
    if (type === 'cgroup2' && where !== undefined) return where;
  }
  return null;
}

/** A sealed hugetlb memfd of `size` bytes whose pages were never allocated. */
function sparseHugetlb(size: number): number {
  const fd = memfdCreate('memseal-test-sparse-huge', C.MFD_CLOEXEC | C.MFD_ALLOW_SEALING | C.MFD_HUGETLB | C.MFD_HUGE_2MB);
  fs.ftruncateSync(fd, size);
  addSeals(fd, Seal.SHRINK | Seal.GROW | Seal.WRITE | Seal.SEAL);
  return fd;
}

/** The first line a child prints, or how it ended. */
async function firstLine(child: ChildProcess): Promise<Record<string, unknown>> {
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  child.stderr!.on('data', (d: Buffer) => (err += d));
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  if (signal !== null || code !== 0) return { died: signal ?? code, err };
  return JSON.parse(out.split('\n')[0]!) as Record<string, unknown>;
}

describe('a peer\'s sparse hugetlb memfd (hugetlb cgroup limit 0)', function () {
  this.timeout(30000);
  let group: string | null = null;
  let enabledController = false;
  let root = '';
  let savedPages: string | null = null;
  const children: ChildProcess[] = [];

  before(function () {
    const why = process.getuid!() !== 0 ? 'needs root to set a hugetlb cgroup limit and reserve huge pages'
      : !features.hugetlb ? 'this kernel has no hugetlb memfds'
        : !features.madvisePopulate ? 'needs MADV_POPULATE_READ (Linux 5.14) to turn the SIGBUS into an error'
          : !fs.existsSync(POOL) ? 'no 2 MiB huge pages on this machine'
            : null;
    const cg = why === null ? cgroup2Root() : null;
    const skip = why ?? (cg === null ? 'no cgroup v2 hierarchy is mounted'
      : !fs.readFileSync(path.join(cg, 'cgroup.controllers'), 'latin1').split(/\s+/).includes('hugetlb')
        ? `the hugetlb controller is not available in cgroup v2 (${cg})` : null);
    if (skip !== null) {
      console.log(`      (skipped: ${skip})`);
      this.skip();
    }
    root = cg!;
    // Two huge pages for the pool, so that mmap's reservation succeeds and only the cgroup charge fails.
    savedPages = fs.readFileSync(`${POOL}/nr_hugepages`, 'latin1').trim();
    fs.writeFileSync(`${POOL}/nr_hugepages`, String(Number(savedPages) + 2));
    const control = path.join(root, 'cgroup.subtree_control');
    if (!fs.readFileSync(control, 'latin1').split(/\s+/).includes('hugetlb')) {
      fs.writeFileSync(control, '+hugetlb');
      enabledController = true;
    }
    group = path.join(root, `memseal-trust-${process.pid}`);
    fs.mkdirSync(group);
    fs.writeFileSync(path.join(group, `hugetlb.${HUGE >> 20}MB.max`), '0');
  });

  afterEach(async () => {
    await killChildren(children.splice(0));
  });

  after(() => {
    if (group !== null) fs.rmdirSync(group);
    if (enabledController) fs.writeFileSync(path.join(root, 'cgroup.subtree_control'), '-hugetlb');
    if (savedPages !== null) fs.writeFileSync(`${POOL}/nr_hugepages`, savedPages);
  });

  /** Spawns a receiver with a channel and moves it into the limited cgroup before anything is sent. */
  function receiver(command: string, args: string[]) {
    const { child, channel } = spawnWithChannel(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    fs.writeFileSync(path.join(group!, 'cgroup.procs'), String(child.pid));
    return { child, channel };
  }

  it('receiveBuffer() rejects with EFAULT and a hint (no SIGBUS, nothing mapped)', async () => {
    const { child, channel } = receiver(process.execPath, [FIXTURE, 'receive']);
    const fd = sparseHugetlb(HUGE);
    try {
      const result = firstLine(child);
      await channel.send('m', [fd]);
      const r = await result;
      assert.equal(r.died, undefined, `the receiver died: ${JSON.stringify(r)}`);
      assert.equal(r.code, 'EFAULT', JSON.stringify(r));
      assert.equal(r.syscall, 'madvise');
      assert.match(String(r.hint), /hugetlb cgroup limit|nr_hugepages/);
    } finally {
      fs.closeSync(fd);
      channel.close();
    }
  });

  it('Subscriber.attach() rejects a hostile hugetlb pool with EFAULT (no SIGBUS)', async () => {
    const { child, channel } = receiver(process.execPath, [FIXTURE, 'subscribe']);
    const headerSize = 2 * P.SLOT_ALIGN;
    const stride = HUGE - headerSize;
    const hello = P.encodeHello({ slots: 1, headerSize, slotSize: stride, slotStride: stride, poolSize: HUGE });
    const fd = sparseHugetlb(HUGE);
    try {
      const result = firstLine(child);
      await channel.send(hello, [fd]);
      const r = await result;
      assert.equal(r.died, undefined, `the subscriber died: ${JSON.stringify(r)}`);
      assert.equal(r.code, 'EFAULT', JSON.stringify(r));
    } finally {
      fs.closeSync(fd);
      channel.close();
    }
  });

  it('the Python peer refuses it (and an O_PATH, a write-only and an over-the-pool one) with Node\'s codes, and keeps serving', async function () {
    if (spawn('python3', ['--version']).pid === undefined) this.skip();
    const { child, channel } = receiver('python3', [PY_PEER, 'echo']);
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d));
    const exited = once(child, 'exit');
    const sparse = sparseHugetlb(HUGE);
    const free = Number(fs.readFileSync(`${POOL}/free_hugepages`, 'latin1'));
    const tooBig = sparseHugetlb((free + 1) * HUGE);
    const weak = [fs.openSync(`/proc/self/fd/${sparse}`, 0o10000000 /* O_PATH */), fs.openSync(`/proc/self/fd/${sparse}`, fs.constants.O_WRONLY)];
    try {
      const cases: [number, string][] = [[sparse, 'EFAULT'], [weak[0]!, 'ERR_MEMSEAL_ACCESS'], [weak[1]!, 'ERR_MEMSEAL_ACCESS'], [tooBig, 'ENOMEM']];
      for (const [fd, expected] of cases) {
        await channel.send('m', [fd]);
        const reply = await channel.receive();
        reply.closeFds();
        assert.deepEqual(JSON.parse(reply.data.toString()), { refused: expected }, err);
      }
      const good = memfdCreate('good');
      fs.writeFileSync(good, 'still serving');
      addSeals(good, Seal.SHRINK | Seal.GROW | Seal.WRITE);
      await channel.send('ok', [good]);
      fs.closeSync(good);
      const echo = await channel.receiveBuffer();
      assert.equal(echo.buffer.bytes.toString(), 'still serving');
      echo.buffer.close();
      channel.close();
      const [code, signal] = (await exited) as [number | null, string | null];
      assert.deepEqual([code, signal], [0, null], err);
    } finally {
      for (const fd of [sparse, tooBig, ...weak]) fs.closeSync(fd);
      channel.close();
    }
  });
});
