// What a Subscriber (subscriber.ts) checks of the pool a publisher hands it before reading a byte
// of it — a memfd, sealed against shrinking, growing and new writers, the size its HELLO announced
// and within maxSize — then maps read-only; and the error a DETACH message turns into.
import { constants as C, Seal, sealNames } from '../kernel/constants';
import { MemsealError } from '../kernel/errors';
import { type Mapping, mmap } from '../kernel/mapping';
import { populatePeerMapping, verifySeals } from '../sealed/verify';
import * as P from './protocol';

/**
 * Verifies the pool's memfd `fd` against its HELLO geometry `g` and maps it PROT_READ (MAP_SHARED).
 * The caller keeps (and closes) `fd`.
 * @throws MemsealError ERR_MEMSEAL_NOT_MEMFD / ERR_MEMSEAL_NOT_SEALED / ERR_MEMSEAL_SIZE / ERR_MEMSEAL_PROTOCOL
 */
export function mapPool(fd: number, g: P.PoolGeometry, maxSize: number): { mapping: Mapping; seals: number } {
  const v = verifySeals(fd, { require: Seal.SHRINK | Seal.GROW });
  if (!v.ok) {
    throw new MemsealError(v.code ?? 'ERR_MEMSEAL_NOT_SEALED', `Subscriber.attach(): ${v.reason}`,
      { hint: v.code === 'ERR_MEMSEAL_NOT_SEALED' ? 'a pool must be sealed SHRINK | GROW | FUTURE_WRITE' : v.hint });
  }
  if ((v.seals & (Seal.WRITE | Seal.FUTURE_WRITE)) === 0) {
    throw new MemsealError('ERR_MEMSEAL_NOT_SEALED', 'Subscriber.attach(): the pool is writable by anyone who holds it ' +
      `(seals: ${sealNames(v.seals).join(', ') || 'none'}; neither write nor future_write)`,
    { hint: 'a pool must be sealed F_SEAL_FUTURE_WRITE (or F_SEAL_WRITE)' });
  }
  if (v.size !== g.poolSize) {
    throw new MemsealError('ERR_MEMSEAL_SIZE', `Subscriber.attach(): the pool file is ${v.size} bytes, its HELLO says ${g.poolSize}`);
  }
  if (v.size > maxSize) {
    throw new MemsealError('ERR_MEMSEAL_SIZE', `Subscriber.attach(): the pool is ${v.size} bytes, over maxSize ${maxSize}`,
      { hint: 'raise options.maxSize if this publisher is trusted to need that much' });
  }
  let mapping: Mapping;
  try {
    mapping = mmap(g.poolSize, C.PROT_READ, C.MAP_SHARED, fd);
  } catch (err) {
    // WRITE-sealed read-only MAP_SHARED is refused before ~6.1; such a pool cannot change, so a private map sees the same bytes
    if ((err as { code?: string }).code !== 'EPERM' || (v.seals & Seal.WRITE) === 0) throw err;
    mapping = mmap(g.poolSize, C.PROT_READ, C.MAP_PRIVATE, fd);
  }
  populatePeerMapping(mapping, v, fd, 'Subscriber.attach()');  // a sparse hugetlb pool: EFAULT here, never SIGBUS later
  try {
    P.checkHeader(mapping.bytes(0, P.HEADER_FIXED), g);
  } catch (err) {
    mapping.unmap();
    throw err;
  }
  return { mapping, seals: v.seals };
}

/** ERR_MEMSEAL_DETACHED from a DETACH message: its reason byte and text. */
export function detachedError(op: string, data: Buffer): MemsealError {
  const reason = ({ 1: 'too slow', 3: 'protocol', 4: 'refused: full', 5: 'idle' } as Record<number, string>)[data[1] ?? 0] ?? 'detached';
  return new MemsealError('ERR_MEMSEAL_DETACHED', `${op}: the publisher detached this subscriber (${reason}): ` +
    data.subarray(4, 1004).toString('utf8'), { hint: 'samples already handed out stay valid until released; nothing queued was delivered' });
}
