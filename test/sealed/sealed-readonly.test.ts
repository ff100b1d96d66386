// SealedBuffer#readonlyBytes: a read-only shared mapping of the contents, whose
// writes fault instead of being silently private.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { SealedBuffer, socketPair } from '../../src';
import { runFixture } from '../helpers';

/** /proc/self/maps lines of memfds named `name`. */
function mapsOf(name: string): string[] {
  return readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.endsWith(`/memfd:${name} (deleted)`));
}

describe('SealedBuffer#readonlyBytes', () => {
  it('is a read-only shared mapping with the contents', () => {
    const sb = SealedBuffer.from('read me', { name: 'ro-view-shared' });
    try {
      assert.equal(sb.readonlyBytes.toString(), 'read me');
      assert.equal(sb.readonlyBytes, sb.readonlyBytes, 'mapped once');
      const lines = mapsOf('ro-view-shared');
      assert.equal(lines.length, 1, lines.join('\n'));
      // r--s: PROT_READ, MAP_SHARED (Linux ≥ ~6.1 allows it for a write-sealed file)
      assert.match(lines[0]!, / r--[sp] /);
      assert.equal(sb.view, null, 'bytes was not touched');
    } finally {
      sb.close();
    }
  });

  it('exists beside the private bytes view, and close() detaches both', () => {
    const sb = SealedBuffer.from(Buffer.alloc(3 * 4096, 7), { name: 'ro-view-both' });
    const ro = sb.readonlyBytes;
    const rw = sb.bytes;
    rw[0] = 1; // private copy-on-write: the file and the read-only view keep 7
    assert.equal(ro[0], 7);
    assert.equal(sb.view, 'private');
    assert.deepEqual(mapsOf('ro-view-both').map((l) => l.split(' ')[1]).sort(), ['r--s', 'rw-p']);
    sb.close();
    assert.equal(ro.length, 0);
    assert.equal(rw.length, 0);
    assert.equal(mapsOf('ro-view-both').length, 0);
    assert.throws(() => sb.readonlyBytes, { code: 'ERR_MEMSEAL_CLOSED' });
  });

  it('works for a received buffer and for an empty one', async () => {
    const [a, b] = socketPair();
    try {
      const sb = SealedBuffer.from('over the wire');
      await a.sendBuffer(sb);
      sb.close();
      const { buffer } = await b.receiveBuffer();
      assert.equal(buffer.readonlyBytes.toString(), 'over the wire');
      buffer.close();
    } finally {
      a.close();
      b.close();
    }
    const empty = SealedBuffer.from('');
    assert.equal(empty.readonlyBytes.length, 0);
    empty.close();
  });

  it('a write through it kills the process with SIGSEGV (child process)', () => {
    const r = runFixture('segv-readonly-bytes.js');
    assert.equal(r.stdout, 'readable abc\n');
    assert.equal(r.signal, 'SIGSEGV', `child ended with ${r.signal ?? r.status}: ${r.stderr}`);
  });
});
