// `memseal inspect` for Publisher/Subscriber pools: which memfds found by
// inspect() are pools (sealed F_SEAL_FUTURE_WRITE, with the pool header's
// magic), which process publishes into each (a writable shared mapping) and
// which map it read-only (subscribers). Built from inspect()'s reports plus a
// 40-byte pread(2) of the header through a read-only re-open of
// /proc/<pid>/fd/<n>; read-only, and never throws for procfs failures.
import fs from 'node:fs';
import { Seal } from '../kernel/constants';
import type { InspectProcess } from './inspect';
import { H, POOL_MAGIC, u64 } from '../pubsub/protocol';

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
}

function readHeader(path: string): { slots: number; slotSize: number } | null {
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NOCTTY | fs.constants.O_NONBLOCK);
  } catch {
    return null;
  }
  try {
    const b = Buffer.alloc(40);
    if (fs.readSync(fd, b, 0, 40, 0) !== 40 || b.readUInt32LE(H.MAGIC) !== POOL_MAGIC) return null;
    return { slots: b.readUInt32LE(H.SLOTS), slotSize: u64(b, H.SLOT_SIZE) };
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
