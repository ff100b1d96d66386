// `memseal inspect` for Publisher/Subscriber pools: which memfds found by
// inspect() are pools (sealed F_SEAL_FUTURE_WRITE, with the pool header's
// magic), which process publishes into each (a writable shared mapping) and
// which map it read-only (subscribers). Built from inspect()'s reports plus a
// 40-byte pread(2) of the header through a read-only re-open of
// /proc/<pid>/fd/<n>; read-only, and never throws for procfs failures.
import fs from 'node:fs';
import { Seal } from '../kernel/constants';
import type { InspectProcess } from './inspect';
import { H, HeaderFlag, HOLDER_SEATS, holderMask, holderTable, POOL_MAGIC, u64 } from '../pubsub/protocol';

/** One pool and the processes that map it. */
export interface InspectPool {
  /** inode of the pool memfd */
  inode: number;
  /** memfd_create(2) name */
  name: string | null;
  slots: number;
  slotSize: number;
  /** bytes of the whole file */
  size: number | null;
  /** the process with a writable shared mapping; null if none was seen */
  publisher: { pid: number; comm: string | null } | null;
  /** processes that map it read-only and shared */
  subscribers: Array<{ pid: number; comm: string | null }>;
  /** which subscriber (pid) holds which slots, as the publisher marks them in the header (advisory) */
  holders: Array<{ pid: number; slots: number[] }>;
}

/** Seats of the header's holder table: each named subscriber's pid and the slots it holds. */
function readHolders(fd: number, slots: number): Array<{ pid: number; slots: number[] }> {
  const t = Buffer.alloc(holderMask(slots, slots) - holderTable(slots));
  if (fs.readSync(fd, t, 0, t.length, holderTable(slots)) !== t.length) return [];
  const out: Array<{ pid: number; slots: number[] }> = [];
  for (let seat = 0; seat < HOLDER_SEATS; seat++) {
    const pid = t.readUInt32LE(4 * seat);
    if (pid === 0) continue;
    const held: number[] = [];
    const word = 4 * HOLDER_SEATS + (seat >= 32 ? 4 : 0);
    for (let slot = 0; slot < slots; slot++) if ((t.readUInt32LE(word + 8 * slot) >>> (seat & 31)) & 1) held.push(slot);
    out.push({ pid, slots: held });
  }
  return out;
}

function readHeader(path: string): { slots: number; slotSize: number; holders: Array<{ pid: number; slots: number[] }> } | null {
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NOCTTY | fs.constants.O_NONBLOCK);
  } catch {
    return null;
  }
  try {
    const b = Buffer.alloc(40);
    if (fs.readSync(fd, b, 0, 40, 0) !== 40 || b.readUInt32LE(H.MAGIC) !== POOL_MAGIC) return null;
    const slots = b.readUInt32LE(H.SLOTS);
    const withTable = (b.readUInt16LE(H.FLAGS) & HeaderFlag.HOLDERS) !== 0 && slots <= 65536 &&
      b.readUInt32LE(H.HEADER_SIZE) >= holderMask(slots, slots);
    return { slots, slotSize: u64(b, H.SLOT_SIZE), holders: withTable ? readHolders(fd, slots) : [] };
  } catch {
    return null;
  } finally {
    fs.closeSync(fd);
  }
}

/** The pools among the memfds of `processes` (from {@link inspect}), with publisher and subscribers. */
export function inspectPools(processes: readonly InspectProcess[]): InspectPool[] {
  const pools = new Map<number, InspectPool>();
  for (const p of processes) {
    for (const m of p.memfds) {
      if (m.fd === null || m.seals === null || (m.seals & Seal.FUTURE_WRITE) === 0 || pools.has(m.inode)) continue;
      const h = readHeader(`/proc/${p.pid}/fd/${m.fd}`);
      if (h !== null) pools.set(m.inode, { inode: m.inode, name: m.name, ...h, size: m.size, publisher: null, subscribers: [] });
    }
  }
  for (const p of processes) {
    for (const m of p.memfds) {
      const pool = pools.get(m.inode);
      if (pool === undefined || m.mappings === null) continue;
      const who = { pid: p.pid, comm: p.comm };
      if (m.mappings.some((v) => v.shared && v.perms[1] === 'w')) pool.publisher = who;
      else if (m.mappings.some((v) => v.shared) && !pool.subscribers.some((s) => s.pid === p.pid)) pool.subscribers.push(who);
    }
  }
  return [...pools.values()];
}
