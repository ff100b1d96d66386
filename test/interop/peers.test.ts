// Reference peers in other languages (python/, examples/c) against the
// Node side, both directions, over spawnWithChannel and listen/connect,
// including the hostile cases: each side refuses what it must and closes it.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { addSeals, type Channel, connect, listen, memfdCreate, Seal, SealedBuffer, spawnWithChannel } from '../../src';
import { countOwnFds as countFds, settledOwnFds } from '../fd-count';

const ROOT = path.join(__dirname, '..', '..');
const PY_PEER = path.join(ROOT, 'python/memseal_peer.py');
const C_DIR = path.join(ROOT, 'examples/c');
const JOURNAL = Seal.SHRINK | Seal.GROW | Seal.WRITE | Seal.SEAL;

/** Lines of JSON a peer prints on stdout. */
function jsonLines(child: ChildProcess): { lines: Record<string, unknown>[]; next: () => Promise<Record<string, unknown>> } {
  const lines: Record<string, unknown>[] = [];
  const waiting: ((l: Record<string, unknown>) => void)[] = [];
  let text = '';
  let read = 0;
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    text += chunk;
    let nl;
    while ((nl = text.indexOf('\n')) >= 0) {
      const line = JSON.parse(text.slice(0, nl)) as Record<string, unknown>;
      text = text.slice(nl + 1);
      lines.push(line);
      waiting.shift()?.(line);
    }
  });
  return {
    lines,
    next: () => (read < lines.length ? Promise.resolve(lines[read++]!) : new Promise((resolve) => {
      read++;
      waiting.push(resolve);
    })),
  };
}

function pattern(size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = i % 251;
  return b;
}

function tmpSocket(name: string): string {
  return path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'memseal-peer-')), name);
}

interface PeerCommand { label: string; argv: (mode: string, ...args: string[]) => [string, string[]] }

const python: PeerCommand = { label: 'Python', argv: (mode, ...args) => ['python3', [PY_PEER, mode, ...args]] };
const cPeer: PeerCommand = { label: 'C', argv: (mode, ...args) => [path.join(cBuildDir(), 'memseal_peer_demo'), [mode, ...args]] };

let cBuilt: string | null = null;
function cBuildDir(): string {
  if (cBuilt === null) cBuilt = fs.mkdtempSync(path.join(os.tmpdir(), 'memseal-c-'));
  return cBuilt;
}

function available(peer: PeerCommand): string | null {
  if (peer === python) {
    const r = spawnSync('python3', ['-c', 'import socket,sys; socket.recv_fds; sys.exit(sys.version_info < (3, 9))'], { encoding: 'utf8' });
    return r.status === 0 ? null : `python3 ≥ 3.9 not available (${r.error?.message ?? r.stderr.trim()})`;
  }
  const out = path.join(cBuildDir(), 'memseal_peer_demo');
  if (fs.existsSync(out)) return null;
  const r = spawnSync('cc', ['-std=c11', '-Wall', '-Wextra', '-Werror', '-O2', '-o', out, path.join(C_DIR, 'memseal_peer_demo.c')],
    { encoding: 'utf8' });
  if (r.error) return `no C compiler (${r.error.message})`;
  assert.equal(r.status, 0, `the C peer must compile cleanly:\n${r.stderr}`);
  return null;
}

for (const peer of [python, cPeer]) {
  describe(`reference peer: ${peer.label}`, function () {
    this.timeout(60000);  // Python starts slowly on a loaded machine
    let fdsBefore = 0;
    const children: { child: ChildProcess; closed: Promise<unknown> }[] = [];
    const track = (child: ChildProcess): ChildProcess => {
      children.push({ child, closed: once(child, 'close') });
      return child;
    };
    const channels: Channel[] = [];
    before(function () {
      const why = available(peer);
      if (why !== null) {
        console.log(`      (skipped: ${why})`);
        this.skip();
      }
    });
    beforeEach(() => { fdsBefore = countFds(); });
    afterEach(async () => {
      for (const ch of channels.splice(0)) ch.close();
      for (const { child, closed } of children.splice(0)) {
        if (child.exitCode === null && child.signalCode === null) child.kill();
        await closed;
      }
      // a 1 MiB buffer's descriptor is closed on the thread pool, a moment after close()
      assert.equal(await settledOwnFds(fdsBefore), fdsBefore, 'descriptor count flat around the test');
    });

    function spawnPeer(mode: string, ...args: string[]): { child: ChildProcess; channel: Channel; exited: Promise<unknown[]> } {
      const [cmd, argv] = peer.argv(mode, ...args);
      const { child, channel } = spawnWithChannel(cmd, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
      track(child);
      channels.push(channel);
      return { child, channel, exited: children.at(-1)!.closed as Promise<unknown[]> };
    }

    it('Node → peer → Node: 4 MiB and empty buffers, meta intact, copied back byte for byte', async () => {
      const { channel } = spawnPeer('echo');
      for (const [size, meta] of [[4 << 20, 'big'], [0, ''], [1, 'x'], [65536, 'héllo']] as const) {
        const data = pattern(size);
        using sb = SealedBuffer.from(data);
        await channel.sendBuffer(sb, meta);
        const { buffer, meta: back } = await channel.receiveBuffer({ exactSize: size });
        assert.equal(back.toString(), `echo:${meta}`);
        assert.ok(buffer.bytes.equals(data), `${size} bytes arrived intact, both ways`);
        buffer.close();
      }
    });

    it('peer → Node: 1 MiB with exactly SHRINK|GROW|WRITE|SEAL, verified and mapped', async () => {
      const { channel } = spawnPeer('send', String(1 << 20), '0xf');
      const { buffer, meta } = await channel.receiveBuffer({ exactSize: 1 << 20 });
      assert.equal(meta.toString(), `from ${peer.label === 'C' ? 'c' : 'python'}`);
      assert.equal(buffer.seals, JOURNAL);
      assert.ok(buffer.bytes.equals(pattern(1 << 20)));
      buffer.close();
      await channel.send('done');
    });

    it('a hostile peer: Node refuses each message with the right code and keeps no descriptor', async () => {
      const { channel } = spawnPeer('hostile');
      const codes: string[] = [];
      for (;;) {
        try {
          const { buffer, meta } = await channel.receiveBuffer({ maxSize: 1 << 20 });
          codes.push(`ok:${meta}:${buffer.bytes.toString()}`);
          buffer.close();
          await channel.send('next');
          break;
        } catch (err) {
          codes.push((err as { code: string }).code);
          await channel.send('next');
        }
      }
      assert.deepEqual(codes, ['ERR_MEMSEAL_NOT_SEALED', 'ERR_MEMSEAL_NOT_SEALED', 'ERR_MEMSEAL_NOT_MEMFD', 'ERR_MEMSEAL_SIZE',
        'ERR_MEMSEAL_CTRUNC', 'ERR_MEMSEAL_NOT_MEMFD', 'ok:good:good bytes']);
    });

    if (peer === python) {
      it('the Python peer bounds receive_buffer() at 1 GiB by default: a 2 GiB sparse sealed file is refused unless max_size allows it', async () => {
        const big = memfdCreate('big');
        try {
          fs.ftruncateSync(big, 2 ** 31);  // 2 GiB, sparse: costs nothing to send or map
          addSeals(big, JOURNAL);
          const results: Record<string, unknown>[] = [];
          for (const args of [[], [String(2 ** 32)]]) {
            const { child, channel, exited } = spawnPeer('receive', ...args);
            const out = jsonLines(child);
            await channel.send('big', [big]);
            results.push(await out.next());
            channel.close();
            await exited;
          }
          assert.equal(results[0]!.code, 'ERR_MEMSEAL_SIZE', `refused with default options: ${JSON.stringify(results[0])}`);
          assert.deepEqual(results[1], { ok: true, size: 2 ** 31 }, 'accepted with an explicit max_size of 4 GiB');
        } finally {
          fs.closeSync(big);
        }
      });
    }

    it('Node as the hostile side: the peer refuses each message, closes it, and its descriptor count is flat', async () => {
      const { child, channel, exited } = spawnPeer('refuse');
      const out = jsonLines(child);
      const start = await out.next();
      const unsealed = memfdCreate('unsealed');
      fs.writeSync(unsealed, 'changeable');
      const r = fifoFd();
      const huge = memfdCreate('huge');
      fs.ftruncateSync(huge, 2 << 20);
      addSeals(huge, JOURNAL);
      using good = SealedBuffer.from('good bytes');
      const cases: [string, number[]][] = [['unsealed', [unsealed]], ['pipe', [r]], ['huge', [huge]],
        ['two', [good.fd, good.fd]], ['none', []], ['', [good.fd]], ['many', Array(253).fill(good.fd) as number[]]];
      const got: unknown[] = [];
      for (const [meta, fds] of cases) {
        await channel.send(meta === '' ? '\0' : meta, fds);
        got.push(await out.next());
        (await channel.receive()).closeFds();  // its 'next'
      }
      for (const fd of [unsealed, r, huge]) fs.closeSync(fd);
      channel.close();
      const end = await out.next();
      await exited;
      assert.deepEqual(got, [
        { ok: false, code: 'ERR_MEMSEAL_NOT_SEALED' }, { ok: false, code: 'ERR_MEMSEAL_NOT_MEMFD' },
        { ok: false, code: 'ERR_MEMSEAL_SIZE' }, { ok: false, code: 'ERR_MEMSEAL_CTRUNC' },
        { ok: false, code: 'ERR_MEMSEAL_NOT_MEMFD' }, { ok: true, size: 10, meta: '', head: 'good byt' },
        { ok: false, code: 'ERR_MEMSEAL_CTRUNC' },
      ]);
      assert.equal(end.fds, start.fds, `the peer's descriptor count is flat: ${JSON.stringify(end)}`);
    });

    it('listen() in Node, the peer connects; the peer listens, Node connects', async () => {
      const nodePath = tmpSocket('node.sock');
      const server = await listen(nodePath);
      try {
        const accepted = once(server, 'connection') as Promise<[Channel]>;
        const [cmd, argv] = peer.argv('echo', nodePath);
        track(spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'inherit'] }));
        const [ch] = await accepted;
        channels.push(ch);
        using sb = SealedBuffer.from('over listen');
        await ch.sendBuffer(sb, 'l');
        const { buffer, meta } = await ch.receiveBuffer({ maxSize: 64 });
        assert.equal(meta.toString(), 'echo:l');
        assert.equal(buffer.bytes.toString(), 'over listen');
        buffer.close();
        ch.close();
        await children.at(-1)!.closed;
      } finally {
        server.close();
        fs.rmSync(path.dirname(nodePath), { recursive: true, force: true });
      }

      const peerPath = tmpSocket('peer.sock');
      const [cmd, argv] = peer.argv('listen', peerPath);
      const child = track(spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'inherit'] }));
      await jsonLines(child).next();  // {listening}
      const ch = await connect(peerPath);
      channels.push(ch);
      using sb = SealedBuffer.from('over connect');
      await ch.sendBuffer(sb);
      const { buffer, meta } = await ch.receiveBuffer({ maxSize: 64 });
      assert.equal(meta.toString(), 'echo:');
      assert.equal(buffer.bytes.toString(), 'over connect');
      buffer.close();
      ch.close();
      await children.at(-1)!.closed;
      fs.rmSync(path.dirname(peerPath), { recursive: true, force: true });
    });

    it("spawnWithChannel(): the child's end is blocking, the parent's is not", async () => {
      const { channel, child } = spawnPeer('blocking');
      const flags = fs.readFileSync(`/proc/self/fdinfo/${channel.fd}`, 'utf8').match(/^flags:\s+(\d+)/m)![1]!;
      assert.ok((parseInt(flags, 8) & fs.constants.O_NONBLOCK) !== 0, "the parent's end stays non-blocking");
      assert.deepEqual(await jsonLines(child).next(), { nonblock: false });
      // Send only once the peer sleeps in the kernel (in recv_fds: it has nothing else to do), so the message
      // reaches a blocked reader, which is what a blocking end must handle.
      await waitUntilAsleep(child.pid!);
      using sb = SealedBuffer.from('x');
      await channel.send('hello', [sb.fd]);
      using reply = await channel.receive();
      assert.deepEqual(JSON.parse(reply.data.toString()), { text: 'hello', nfds: 1 });
    });
  });
}

/** A FIFO opened read-write: an S_IFIFO descriptor like a pipe's end (Node has no pipe(2)). */
function fifoFd(): number {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memseal-fifo-'));
  const fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const fd = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
  fs.rmSync(dir, { recursive: true });
  return fd;
}

after(() => {
  if (cBuilt !== null) fs.rmSync(cBuilt, { recursive: true, force: true });
});

/** Waits (bounded) until process `pid` sleeps in the kernel: state S in /proc/<pid>/stat. */
async function waitUntilAsleep(pid: number): Promise<void> {
  const deadline = Date.now() + 10000;
  for (;;) {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2)[0] === 'S') return;
    if (Date.now() > deadline) throw new Error(`process ${pid} never slept in the kernel: ${stat}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}
