// Descriptor counts that ignore the test loader's own: tsx keeps a descriptor
// of its cache directory (/tmp/tsx-<uid>) open for a while after it compiles a
// module, which would make a baseline taken right after a lazy import off by one.
import { readdirSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const loaderCache = path.join(tmpdir(), 'tsx-');

/** Open descriptors of this process, less the loader's cache directory and the one readdir uses. */
export function countOwnFds(): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue;  // readdir's own descriptor, gone by now
    }
    if (!target.startsWith(loaderCache)) n++;
  }
  return n;
}

/**
 * Waits (up to `ms`) for the descriptor count to come down to `expected`:
 * buffers of 1 MiB and more close their descriptor on the libuv thread pool,
 * a moment after close() returns. Returns the last count.
 */
export async function settledOwnFds(expected: number, ms = 2000): Promise<number> {
  const deadline = Date.now() + ms;
  let n = countOwnFds();
  while (n > expected && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    n = countOwnFds();
  }
  return n;
}
