// Create a memfd, write to it, seal it, and watch the kernel refuse changes.
// Run: npm run example:seal-basics
import { closeSync, ftruncateSync, writeSync } from 'node:fs';
import { addSeals, constants, getSeals, memfdCreate, mmap, Seal, sealNames, type SystemError } from '../src';

const fd = memfdCreate('greeting');             // MFD_CLOEXEC | MFD_ALLOW_SEALING
ftruncateSync(fd, 4096);
writeSync(fd, 'hello, sealed world\n');

addSeals(fd, Seal.SHRINK | Seal.GROW | Seal.WRITE | Seal.SEAL);
console.log('seals:', sealNames(getSeals(fd)).join(', '));

for (const [what, attempt] of [
  ['write()', () => writeSync(fd, 'tampered')],
  ['ftruncate() to shrink', () => ftruncateSync(fd, 0)],
  ['writable shared mmap', () => mmap(4096, constants.PROT_READ | constants.PROT_WRITE, constants.MAP_SHARED, fd)],
  ['one more seal', () => addSeals(fd, Seal.EXEC)],
] as const) {
  try {
    attempt();
    console.log(`${what}: allowed?!`);
  } catch (err) {
    const e = err as SystemError;
    console.log(`${what}: refused — ${e.message}${e.hint ? ` (${e.hint})` : ''}`);
  }
}

using view = mmap(4096, constants.PROT_READ, constants.MAP_SHARED, fd); // read-only: allowed
console.log('still readable:', view.bytes(0, 19).toString());
closeSync(fd);
