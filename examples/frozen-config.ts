// Load a JSON configuration into a WriteOnceArena, seal it, and watch the
// kernel refuse to make it writable or unmap it again.
// Run: npm run example:frozen-config (or npx --no-install tsx examples/frozen-config.ts [config.json])
import { readFileSync } from 'node:fs';
import { constants, features, type SystemError, WriteOnceArena } from '../src';

const raw = process.argv[2] !== undefined
  ? JSON.parse(readFileSync(process.argv[2], 'utf8'))
  : { listen: { host: '127.0.0.1', port: 8443 }, allowedOrigins: ['https://example.test'], maxBodyBytes: 1 << 20 };

// allocate → write …
const arena = new WriteOnceArena(64 * 1024, { name: 'config' });
const configBytes = arena.allocJSON(raw);
const routes = arena.allocArray(Uint16Array, [200, 301, 404]); // a small lookup table next to it

// … → seal → read, read, read
arena.seal(); // mprotect(PROT_READ), then mseal(2) where the kernel has it
console.log(`sealed ${arena.used} of ${arena.capacity} bytes with ${arena.sealedWith} (kernel ${features.kernelRelease})`);

const config = JSON.parse(configBytes.toString()); // an ordinary object: re-parse the sealed bytes whenever you need the truth
console.log('config:', config.listen, 'routes:', [...routes]);

for (const [what, attempt] of [
  ['alloc() after seal()', () => arena.alloc(8)],
  ['mprotect(PROT_READ|PROT_WRITE)', () => arena.mapping.protect(constants.PROT_READ | constants.PROT_WRITE)],
  ['munmap()', () => arena.mapping.unmap()],
  ['destroy()', () => arena.destroy()],
] as const) {
  try {
    attempt();
    console.log(`${what}: allowed (no mseal on this kernel: only mprotect protects it)`);
  } catch (err) {
    const e = err as SystemError;
    console.log(`${what}: refused: ${e.message}`);
  }
}
console.log('still readable:', configBytes.toString().slice(0, 40), '…');
// configBytes[0] = 0x20 would now kill the process with SIGSEGV: that is the protection.
