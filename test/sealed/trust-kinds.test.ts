// What a receiver makes of the descriptors a peer sends: a fixed default size
// bound, exact descriptor counts, and refusals for the wrong kind or access
// mode of descriptor, before anything is mapped.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { once } from 'node:events';
import {
  addSeals, type Channel, connect, DEFAULT_MAX_SIZE, listen, memfdCreate, Publisher, Seal, socketPair, Subscriber, verifySeals,
} from '../../src';
import { native } from '../../src/kernel/binding';
import { DEFAULT_MAX_POOL_SIZE } from '../../src/pubsub/subscriber';
import { countFds, FIXTURES, killChildren, readableCheckout } from '../helpers';

const PY_DIR = path.join(__dirname, '..', '..', 'python');
// A socketpair inside Python: two descriptors to a max_fds=1 receiver; prints the code and how many leaked.
const PY_COUNT = `
import os, socket
from memseal_peer import Channel, MemsealError
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
fd = os.memfd_create('x')
before = len(os.listdir('/proc/self/fd'))
socket.send_fds(a, [b'x'], [fd, fd])
try:
    Channel(b).receive(max_fds=1)
    print('accepted')
except MemsealError as e:
    print(e.code, 'leaked=%d' % (len(os.listdir('/proc/self/fd')) - before))
`;
// Sealed memfds re-opened O_PATH and O_WRONLY, sent to a receive_buffer(); prints each refusal's code.
const PY_ACCESS = `
import os, socket
from memseal_peer import Channel, MemsealError, create_sealed
fd = create_sealed(b'x' * 4096)
for name, flags in (('O_PATH', os.O_PATH), ('O_WRONLY', os.O_WRONLY)):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    weak = os.open('/proc/self/fd/%d' % fd, flags)
    socket.send_fds(a, [b'm'], [weak])
    os.close(weak)
    try:
        Channel(b).receive_buffer().close()
        print(name, 'accepted')
    except MemsealError as e:
        print(name, e.code)
`;
// SealedView.close() while the caller still holds a slice of its view: no BufferError, the descriptor
// is closed, and the mapping (with the descriptor mmap keeps) goes when the slice does.
const PY_CLOSE = `
import gc, os, socket
from memseal_peer import Channel, create_sealed
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
fd = create_sealed(b'hello world')
Channel(a).send_buffer(fd)
os.close(fd)
before = len(os.listdir('/proc/self/fd'))
v = Channel(b).receive_buffer()
head = v.view[:5]
v.close()
print(bytes(head).decode())
del head
gc.collect()
print('leaked=%d' % (len(os.listdir('/proc/self/fd')) - before))
`;
const SEALS = Seal.SHRINK | Seal.GROW | Seal.WRITE | Seal.SEAL;

function code(expected: string, hint?: RegExp) {
  return (err: unknown) => {
    assert.equal((err as { code?: string }).code, expected, String(err));
    if (hint !== undefined) assert.match((err as { hint?: string }).hint ?? '', hint, String(err));
    return true;
  };
}

/** A sealed memfd of `size` bytes, never written (sparse). */
function sparseSealed(size: number): number {
  const fd = memfdCreate('memseal-test-sparse');
  fs.ftruncateSync(fd, size);
  addSeals(fd, SEALS);
  return fd;
}

describe('receivers: default size bound', function () {
  this.timeout(20000);

  it('is one fixed 1 GiB on every Node version, as the Subscriber\'s', () => {
    assert.equal(DEFAULT_MAX_SIZE, 2 ** 30);
    assert.equal(DEFAULT_MAX_POOL_SIZE, DEFAULT_MAX_SIZE);
  });

  it('receiveBuffer() without maxSize refuses a sealed sparse file over 1 GiB, below what a Buffer can show', async () => {
    const [a, b] = socketPair();
    const fd = sparseSealed(2 ** 31);
    try {
      assert.equal(verifySeals(fd).code, 'ERR_MEMSEAL_SIZE');
      const before = countFds();
      await a.send('x', [fd]);
      await assert.rejects(b.receiveBuffer(), code('ERR_MEMSEAL_SIZE'));
      assert.equal(countFds(), before, 'the refused descriptor is closed');
      // an explicit maxSize still admits it
      await a.send('x', [fd]);
      const { buffer } = await b.receiveBuffer({ maxSize: 2 ** 31 });
      assert.equal(buffer.size, 2 ** 31);
      buffer.close();
    } finally {
      fs.closeSync(fd);
      a.close();
      b.close();
    }
  });
});

describe('receivers: descriptor counts', function () {
  this.timeout(20000);

  for (const maxFds of [1, 3]) {
    it(`a maxFds ${maxFds} channel refuses a message carrying ${maxFds + 1} descriptors (the control buffer's rounding has room for them)`, async () => {
      const [a, b] = socketPair({ maxFds });
      const fd = memfdCreate('memseal-test-count');
      try {
        // Count this test's memfd only: another test's descriptor may close meanwhile (released off the loop).
        const mine = () => fs.readdirSync('/proc/self/fd').filter((f) => {
          try { return fs.readlinkSync(`/proc/self/fd/${f}`).startsWith('/memfd:memseal-test-count '); } catch { return false; }
        }).length;
        assert.equal(mine(), 1);
        await a.send('one too many', Array.from({ length: maxFds + 1 }, () => fd));
        await assert.rejects(b.receive(), code('ERR_MEMSEAL_CTRUNC'));
        assert.equal(mine(), 1, 'every descriptor that arrived is closed');
        await a.send('exact', Array.from({ length: maxFds }, () => fd));
        const m = await b.receive();
        assert.equal(m.fds.length, maxFds, 'as many as maxFds still pass');
        m.closeFds();
      } finally {
        fs.closeSync(fd);
        a.close();
        b.close();
      }
    });
  }

  it('receiveBuffer() on a maxFds 1 channel refuses a message with two memfds', async () => {
    const [a, b] = socketPair({ maxFds: 1 });
    const fd = sparseSealed(4096);
    try {
      await a.send('two', [fd, fd]);
      await assert.rejects(b.receiveBuffer(), code('ERR_MEMSEAL_CTRUNC'));
    } finally {
      fs.closeSync(fd);
      a.close();
      b.close();
    }
  });

  it('the Python peer\'s receive(max_fds=1) refuses two descriptors and closes both', async function () {
    const py = spawnSync('python3', ['-c', PY_COUNT], { encoding: 'utf8', env: { ...process.env, PYTHONPATH: PY_DIR } });
    if (py.error !== undefined) this.skip();
    assert.equal(py.stdout.trim(), 'ERR_MEMSEAL_CTRUNC leaked=0', py.stderr);
  });
});

describe('receivers: descriptors of the wrong kind or access mode', function () {
  this.timeout(20000);
  const { O_PATH } = native.internalConstants;

  /** Another descriptor of the memfd `fd`, opened through /proc with `flags`. */
  const reopen = (fd: number, flags: number) => fs.openSync(`/proc/self/fd/${fd}`, flags);
  const kinds: [string, (fd: number) => number][] = [
    ['an O_PATH', (fd) => reopen(fd, O_PATH)],
    ['a write-only', (fd) => reopen(fd, fs.constants.O_WRONLY)],
  ];

  for (const [label, make] of kinds) {
    it(`verifySeals() and receiveBuffer() refuse ${label} descriptor of a sealed memfd with ERR_MEMSEAL_ACCESS and a hint`, async () => {
      const memfd = sparseSealed(4096);
      const fd = make(memfd);
      const [a, b] = socketPair({ maxFds: 1 });
      try {
        const v = verifySeals(fd);
        assert.equal(v.ok, false);
        assert.equal(v.code, 'ERR_MEMSEAL_ACCESS', v.reason);
        const before = countFds();
        await a.send('x', [fd]);
        await assert.rejects(b.receiveBuffer(), code('ERR_MEMSEAL_ACCESS', /O_RDWR|reading/));
        assert.equal(countFds(), before, 'the refused descriptor is closed');
      } finally {
        fs.closeSync(fd);
        fs.closeSync(memfd);
        a.close();
        b.close();
      }
    });

    it(`Subscriber.attach() refuses a pool sent as ${label} descriptor with ERR_MEMSEAL_ACCESS`, async () => {
      const pub = Publisher.create({ slotSize: 4096, slots: 2 });
      const [p, hostile] = socketPair();
      const [h, s] = socketPair();
      try {
        const attached = pub.attach(p);
        const hello = await hostile.receive();  // the real HELLO, its pool descriptor swapped for a weaker one
        const fd = make(hello.fds[0]!);
        await h.send(hello.data, [fd]);
        fs.closeSync(fd);
        hello.closeFds();
        await assert.rejects(Subscriber.attach(s), code('ERR_MEMSEAL_ACCESS', /O_RDWR|reading/));
        hostile.close();
        await attached.catch(() => {});
      } finally {
        pub.close();
        for (const c of [p, hostile, h, s]) c.close();
      }
    });
  }

  it('the Python peer\'s SealedView.close() does not raise while a slice of its view is held', function () {
    const py = spawnSync('python3', ['-c', PY_CLOSE], { encoding: 'utf8', env: { ...process.env, PYTHONPATH: PY_DIR } });
    if (py.error !== undefined) this.skip();
    assert.equal(py.stdout.trim(), 'hello\nleaked=0', py.stderr);
  });

  it('the Python peer refuses O_PATH and write-only descriptors with ERR_MEMSEAL_ACCESS', function () {
    const py = spawnSync('python3', ['-c', PY_ACCESS], { encoding: 'utf8', env: { ...process.env, PYTHONPATH: PY_DIR } });
    if (py.error !== undefined) this.skip();
    assert.equal(py.stdout.trim(), 'O_PATH ERR_MEMSEAL_ACCESS\nO_WRONLY ERR_MEMSEAL_ACCESS', py.stderr);
  });
});

describe('listen(): default allow() across user namespaces', function () {
  this.timeout(30000);
  const NS_FIXTURE = path.join(FIXTURES, 'trust-ns.js');
  // Run as other users: from a copy any user can read when the checkout lies under a private directory.
  const connectFixture = () => path.join(readableCheckout(), 'test', 'fixtures', 'trust-channel.js');
  const children: ChildProcess[] = [];
  afterEach(async () => {
    for (const c of children) c.stdin?.end();
    await killChildren(children.splice(0));
  });

  /** Lines of JSON a child prints, one promise per line as it comes. */
  function lines(child: ChildProcess): () => Promise<Record<string, unknown>> {
    const queue: string[] = [];
    const waiting: ((l: string) => void)[] = [];
    let buf = '';
    let err = '';
    child.stderr?.on('data', (d: Buffer) => (err += d));
    child.stdout!.on('data', (d: Buffer) => {
      buf += d;
      for (let i; (i = buf.indexOf('\n')) >= 0; buf = buf.slice(i + 1)) {
        const l = buf.slice(0, i);
        const w = waiting.shift();
        if (w) w(l); else queue.push(l);
      }
    });
    child.on('exit', (c, s) => { for (const w of waiting.splice(0)) w(JSON.stringify({ exited: c ?? s, err })); });
    return () => new Promise((resolve) => {
      const got = (l: string) => resolve(JSON.parse(l) as Record<string, unknown>);
      const l = queue.shift();
      if (l !== undefined) got(l); else waiting.push(got);
    });
  }

  it('a server whose own uid is the overflow uid refuses peers whose ids do not map (another user, host root)', async function () {
    if (process.getuid!() !== 0) {
      console.log('      (skipped: needs root to start an unmapped user namespace and clients as other users)');
      this.skip();
    }
    const probe = spawnSync('unshare', ['--user', '--pid', '--fork', 'true']);
    if (probe.status !== 0) {
      console.log(`      (skipped: unshare --user --pid is not permitted here: ${String(probe.stderr).trim()})`);
      this.skip();
    }
    const overflow = Number(fs.readFileSync('/proc/sys/kernel/overflowuid', 'latin1'));
    const address = `@memseal-ns-${process.pid}-${Date.now()}`;
    // unshare --user without a mapping: the server's own euid reads as the overflow uid; --pid: peers outside read as pid 0
    const server = spawn('unshare', ['--user', '--pid', '--fork', '--kill-child', process.execPath, NS_FIXTURE, 'server', address], { stdio: ['pipe', 'pipe', 'pipe'] });
    children.push(server);
    const next = lines(server);
    assert.deepEqual(await next(), { ready: true, euid: overflow });
    for (const uid of ['1234', '0']) {
      const client = spawnSync('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', process.execPath, connectFixture(),
        'connect-as', address], { encoding: 'utf8' });
      assert.equal(client.status, 0, client.stderr);
      const seen = await next();
      assert.equal(seen.event, 'refused', `host uid ${uid} reads as ${JSON.stringify(seen)} in the server's namespace`);
      assert.equal(seen.uid, overflow);
      assert.equal(seen.pid, 0, 'a peer outside the pid namespace reads as pid 0');
      assert.equal((JSON.parse(client.stdout) as { result: string }).result, 'closed');
    }
  });
});

describe('stream sockets: which write a read\'s descriptors belong to (docs/protocol.md)', function () {
  this.timeout(20000);

  it('a read joins earlier fd-less writes in front and ends with the write that carried descriptors', async () => {
    const name = `\0memseal-trust-stream-${process.pid}`;
    const server = await listen(name, { type: 'stream' });
    const accepted = once(server, 'connection');
    const client = await connect(name, { type: 'stream' });
    const [ch] = (await accepted) as [Channel];
    const fd = sparseSealed(4096);
    try {
      await client.send('plain;');         // no descriptor
      await client.send('first', [fd]);     // the descriptor's write
      await client.send('after');           // a later write is never joined to it
      const m = await ch.receive();
      assert.equal(m.data.toString(), 'plain;first', 'the descriptors belong to the last write in the read');
      assert.equal(m.fds.length, 1);
      m.closeFds();
      assert.equal((await ch.receive()).data.toString(), 'after');
      // receiveBuffer() takes one read as one buffer message: joined bytes arrive as meta
      await client.send('plain;');
      await client.send('meta', [fd]);
      const { buffer, meta } = await ch.receiveBuffer();
      assert.equal(meta.toString(), 'plain;meta');
      buffer.close();
    } finally {
      fs.closeSync(fd);
      client.close();
      ch.close();
      server.close();
    }
  });
});
