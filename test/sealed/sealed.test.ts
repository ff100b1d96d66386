// SealedBuffer (src/sealed/): creation (from, create), the bytes views, open()
// of a received descriptor, and the descriptor's lifetime.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants as fsConstants, fstatSync, ftruncateSync, openSync, readlinkSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { addSeals, features, getSeals, MemsealError, memfdCreate, Seal, SealedBuffer, verifySeals } from '../../src';
import { collectGarbage, keepUntilTestEnds, skipUnless } from '../helpers';

const S = Seal;

/** A memfd of `size` bytes with `seals` added: the raw material a peer might send. */
function rawMemfd(size: number, seals: number, content = ''): number {
  const fd = memfdCreate('raw');
  ftruncateSync(fd, size);
  if (content) writeSync(fd, content, 0);
  addSeals(fd, seals);
  return fd;
}

function isClosed(fd: number): boolean {
  try {
    fstatSync(fd);
    return false;
  } catch (err) {
    return (err as { code?: string }).code === 'EBADF';
  }
}

describe('SealedBuffer', () => {
  const keep = keepUntilTestEnds<SealedBuffer>();

  describe('from()', () => {
    it('copies bytes into a memfd sealed SHRINK|GROW|WRITE|SEAL (and EXEC where the kernel has it)', () => {
      const b = keep(SealedBuffer.from(Buffer.from('hello, world'), { name: 'greeting' }));
      assert.equal(b.size, 12);
      assert.equal(b.bytes.toString(), 'hello, world');
      const want = S.SHRINK | S.GROW | S.WRITE | S.SEAL;
      assert.equal(b.seals & want, want);
      assert.equal(getSeals(b.fd), b.seals);
      if (features.noexecSeal) {
        assert.ok(b.seals & S.EXEC, 'created with MFD_NOEXEC_SEAL');
        assert.equal(fstatSync(b.fd).mode & 0o111, 0);
      }
      assert.equal(readlinkSync(`/proc/self/fd/${b.fd}`), '/memfd:greeting (deleted)');
      assert.equal(fstatSync(b.fd).size, 12);
    });

    it('accepts strings (UTF-8), ArrayBuffers and typed-array views with offsets', () => {
      assert.equal(keep(SealedBuffer.from('héllo')).bytes.toString('utf8'), 'héllo');
      const ab = new Uint8Array([1, 2, 3, 4]).buffer;
      assert.deepEqual([...keep(SealedBuffer.from(ab)).bytes], [1, 2, 3, 4]);
      const view = new Uint16Array([0x0102, 0x0304, 0x0506]).subarray(1, 2);
      assert.equal(keep(SealedBuffer.from(view)).bytes.readUInt16LE(0), 0x0304);
    });

    it('an empty buffer is fine', () => {
      const b = keep(SealedBuffer.from(''));
      assert.equal(b.size, 0);
      assert.equal(b.bytes.length, 0);
    });

    it('rejects what is not bytes with ERR_INVALID_ARG_TYPE, opening nothing', () => {
      for (const bad of [42, null, undefined, {}, [1, 2]]) {
        assert.throws(() => SealedBuffer.from(bad as unknown as string), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
      }
      assert.throws(() => SealedBuffer.from('x', { name: 5 as unknown as string }), { code: 'ERR_INVALID_ARG_TYPE' });
    });

    it('honours options.seals', () => {
      const b = keep(SealedBuffer.from('x', { seals: S.WRITE }));
      assert.equal(b.seals & (S.SHRINK | S.WRITE), S.WRITE);
    });
  });

  describe('create()', () => {
    it('lets the producer write straight into the shared pages, then seals them', () => {
      let seen: Buffer | undefined;
      const b = keep(SealedBuffer.create(3 * 4096 + 5, (bytes) => {
        seen = bytes;
        assert.equal(bytes.length, 3 * 4096 + 5);
        bytes.fill(0x5a);
        bytes[bytes.length - 1] = 0x01;
      }));
      assert.equal(seen!.length, 0, 'the writable view is detached once sealed');
      assert.equal(b.bytes[0], 0x5a);
      assert.equal(b.bytes[3 * 4096 + 4], 0x01);
      assert.throws(() => writeSync(b.fd, 'x', 0), { code: 'EPERM' }, 'the file is write-sealed');
      assert.throws(() => ftruncateSync(b.fd, 1), { code: 'EPERM' }, 'and shrink-sealed');
    });

    it('a throwing fill closes the memfd and rethrows', () => {
      assert.throws(() => SealedBuffer.create(4096, () => { throw new Error('producer failed'); }), /producer failed/);
    });

    it('validates size and fill before any syscall', () => {
      assert.throws(() => SealedBuffer.create(-1, () => {}), { code: 'ERR_OUT_OF_RANGE' });
      assert.throws(() => SealedBuffer.create(1.5, () => {}), { code: 'ERR_OUT_OF_RANGE' });
      assert.throws(() => SealedBuffer.create('1' as unknown as number, () => {}), { code: 'ERR_INVALID_ARG_TYPE' });
      assert.throws(() => SealedBuffer.create(1, null as unknown as () => void), { code: 'ERR_INVALID_ARG_TYPE' });
    });
  });

  describe('bytes', () => {
    it('is a private copy-on-write view: the owner\'s writes never reach the file', () => {
      const a = keep(SealedBuffer.from('original'));
      const again = keep(SealedBuffer.open(openSync(`/proc/self/fd/${a.fd}`, 'r')));
      a.bytes.write('modified');
      assert.equal(a.bytes.toString(), 'modified');
      assert.equal(a.view, 'private');
      assert.equal(again.bytes.toString(), 'original', 'another mapping of the file is unchanged');
    });

    it('is length 0 after close(), and reading bytes of a closed buffer throws ERR_MEMSEAL_CLOSED', () => {
      const b = SealedBuffer.from('bye');
      const view = b.bytes;
      b.close();
      b.close();
      assert.equal(b.closed, true);
      assert.equal(view.length, 0);
      assert.throws(() => b.bytes, { code: 'ERR_MEMSEAL_CLOSED' });
      assert.ok(isClosed(b.fd));
    });

    it('using: disposes at scope exit', () => {
      let fd: number;
      {
        using b = SealedBuffer.from('scoped');
        fd = b.fd;
        assert.equal(b.bytes.toString(), 'scoped');
      }
      assert.ok(isClosed(fd));
    });
  });

  describe('open()', () => {
    it('adopts a sealed memfd after verifying it', () => {
      const fd = rawMemfd(4096, S.SHRINK | S.GROW | S.WRITE, 'peer data');
      const b = keep(SealedBuffer.open(fd));
      assert.equal(b.fd, fd);
      assert.equal(b.size, 4096);
      assert.equal(b.bytes.subarray(0, 9).toString(), 'peer data');
    });

    it('refuses an unsealed memfd, names the missing seals, and closes it', () => {
      const fd = rawMemfd(4096, 0);
      assert.throws(() => SealedBuffer.open(fd), (err: unknown) => {
        assert.ok(err instanceof MemsealError);
        assert.equal(err.code, 'ERR_MEMSEAL_NOT_SEALED');
        assert.match(err.message, /missing seals: shrink, grow, write/);
        return true;
      });
      assert.ok(isClosed(fd));
    });

    it('refuses a memfd sealed without SHRINK before mapping anything', () => {
      const fd = rawMemfd(4096, S.GROW | S.WRITE | S.SEAL);
      assert.throws(() => SealedBuffer.open(fd), { code: 'ERR_MEMSEAL_NOT_SEALED', message: /missing seals: shrink \(/ });
      assert.ok(isClosed(fd));
    });

    it('does not accept FUTURE_WRITE in place of WRITE (a peer\'s old writable mapping could still write)', function () {
      skipUnless(this, features.futureWrite, 'F_SEAL_FUTURE_WRITE needs Linux ≥ 5.1');
      const fd = rawMemfd(4096, S.SHRINK | S.GROW | S.FUTURE_WRITE);
      assert.throws(() => SealedBuffer.open(fd), { code: 'ERR_MEMSEAL_NOT_SEALED', message: /missing seals: write/ });
    });

    it('refuses a regular file, a pipe and a device with ERR_MEMSEAL_NOT_MEMFD, closing each', () => {
      const file = path.join(tmpdir(), `memseal-test-${process.pid}`);
      const fds: Array<[number, RegExp]> = [];
      fds.push([openSync(file, 'w+'), /regular file/]);
      unlinkSync(file);
      const [r, w] = pipePair();
      fds.push([r, /pipe/]);
      closeSync(w);
      fds.push([openSync('/dev/null', 'r'), /character device/]);
      for (const [fd, kind] of fds) {
        assert.throws(() => SealedBuffer.open(fd), (err: unknown) => {
          assert.ok(err instanceof MemsealError);
          assert.equal(err.code, 'ERR_MEMSEAL_NOT_MEMFD');
          assert.match(err.message, kind);
          return true;
        });
        assert.ok(isClosed(fd));
      }
    });

    it('enforces minSize / maxSize / exactSize with ERR_MEMSEAL_SIZE', () => {
      const sealed = S.SHRINK | S.GROW | S.WRITE;
      assert.throws(() => SealedBuffer.open(rawMemfd(8192, sealed), { maxSize: 4096 }),
        { code: 'ERR_MEMSEAL_SIZE', message: /^SealedBuffer.open\(\): size 8192 bytes exceeds maxSize \(4096 bytes\); accepted: 0\.\.4096 bytes$/ });
      assert.throws(() => SealedBuffer.open(rawMemfd(100, sealed), { minSize: 101 }), { code: 'ERR_MEMSEAL_SIZE' });
      assert.throws(() => SealedBuffer.open(rawMemfd(100, sealed), { exactSize: 99 }),
        { code: 'ERR_MEMSEAL_SIZE', message: /exactly 99/ });
      keep(SealedBuffer.open(rawMemfd(100, sealed), { exactSize: 100, minSize: 1, maxSize: 100 }));
    });

    it('EBADF for a closed descriptor; malformed arguments throw before any syscall', () => {
      const fd = rawMemfd(1, S.SHRINK | S.GROW | S.WRITE);
      closeSync(fd);
      assert.throws(() => SealedBuffer.open(fd), { code: 'EBADF', syscall: 'fcntl' });
      assert.throws(() => SealedBuffer.open(-1), { code: 'ERR_OUT_OF_RANGE' });
      assert.throws(() => SealedBuffer.open('3' as unknown as number), { code: 'ERR_INVALID_ARG_TYPE' });
      const ok = rawMemfd(1, S.SHRINK | S.GROW | S.WRITE);
      assert.throws(() => SealedBuffer.open(ok, { maxSize: -1 }), { code: 'ERR_OUT_OF_RANGE' });
      assert.ok(isClosed(ok), 'ownership was taken even though the options were bad');
    });

    it('the constructor is not public', () => {
      const Ctor = SealedBuffer as unknown as new (...a: unknown[]) => SealedBuffer;
      assert.throws(() => new Ctor(Symbol('x'), 3, 0, 0), TypeError);
    });
  });

  it('a forgotten SealedBuffer\'s fd is closed when it is garbage-collected', async () => {
    await collectGarbage(); // let earlier tests' garbage go first, so the fd count is stable
    keep.rebase();
    let fd = -1;
    (() => { fd = SealedBuffer.from('forgotten').fd; })();
    assert.ok(!isClosed(fd));
    for (let i = 0; i < 10 && !isClosed(fd); i++) await collectGarbage();
    assert.ok(isClosed(fd), 'the finalizer closed it');
  });
});

describe('verifySeals()', () => {
  const open: number[] = [];
  const track = (fd: number): number => { open.push(fd); return fd; };
  afterEach(() => { while (open.length) closeSync(open.pop()!); });

  it('passes a sealed memfd and reports its seals and size', () => {
    const fd = track(rawMemfd(4096, S.SHRINK | S.GROW | S.WRITE | S.SEAL));
    assert.deepEqual(verifySeals(fd), { ok: true, seals: S.SHRINK | S.GROW | S.WRITE | S.SEAL, size: 4096, missing: 0 });
  });

  it('is a superset check, never an exact match', () => {
    const fd = track(rawMemfd(1, S.SHRINK | S.GROW | S.WRITE | S.SEAL));
    assert.equal(verifySeals(fd, { require: S.SHRINK }).ok, true);
    assert.equal(verifySeals(fd, { require: 0 }).ok, true);
  });

  it('returns (never throws) a policy failure and leaves the fd open', () => {
    const fd = track(rawMemfd(10, S.SHRINK));
    const r = verifySeals(fd);
    assert.equal(r.ok, false);
    assert.equal(r.missing, S.GROW | S.WRITE);
    assert.equal(r.code, 'ERR_MEMSEAL_NOT_SEALED');
    assert.match(r.reason ?? '', /missing seals: grow, write \(has: shrink\)/);
    assert.ok(!isClosed(fd));
  });

  it('forbid rejects present seals', () => {
    const fd = track(rawMemfd(10, S.SHRINK | S.GROW | S.WRITE | S.SEAL));
    const r = verifySeals(fd, { forbid: S.SEAL });
    assert.equal(r.ok, false);
    assert.match(r.reason ?? '', /forbidden seals present: seal/);
  });

  it('says a non-memfd is not a memfd', () => {
    const fd = track(openSync('/dev/null', 'r'));
    const r = verifySeals(fd);
    assert.equal(r.ok, false);
    assert.equal(r.code, 'ERR_MEMSEAL_NOT_MEMFD');
  });

  it('rejects malformed options', () => {
    const fd = track(rawMemfd(1, 0));
    assert.throws(() => verifySeals(fd, null as unknown as object), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => verifySeals(fd, { require: -1 }), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => verifySeals(fd, { minSize: 0.5 }), { code: 'ERR_OUT_OF_RANGE' });
  });
});

/** A pipe's two ends, from a FIFO opened read-write (fs has no pipe(2)). */
function pipePair(): [number, number] {
  const fifo = path.join(tmpdir(), `memseal-fifo-${process.pid}-${Date.now()}`);
  execFileSync('mkfifo', [fifo]);
  try {
    const r = openSync(fifo, fsConstants.O_RDWR | fsConstants.O_NONBLOCK);
    const w = openSync(fifo, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
    return [r, w];
  } finally {
    unlinkSync(fifo);
  }
}
