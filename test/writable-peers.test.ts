// Peers that map a received memfd writable and shared, as a Wayland compositor maps a client's wl_shm
// pool (libwayland: mmap(PROT_READ | PROT_WRITE, MAP_SHARED)). The kernel refuses that mapping of a
// file sealed WRITE or FUTURE_WRITE (EPERM), so such peers need SHRINK | GROW | SEAL; those seals
// still keep the file from shrinking under the client. docs/channel.md, "Peers that map writable".
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { constants as C, mmap, Seal, SealedBuffer, socketPair, type SystemError } from '../src';

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
