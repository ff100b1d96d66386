// Keep a key in a SecretBuffer (memfd_secret) and show that even
// /proc/self/mem, which root and debuggers use to read a process, cannot.
// Run: npm run example:secret-key
import { createHmac, randomFillSync } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { features, SecretBuffer } from '../src';

using key = SecretBuffer.alloc(32, { fallback: 'mlock' }); // disposed (zeroed, unmapped) at the end of the scope
randomFillSync(key.bytes); // generated in place: the key never exists in ordinary memory
console.log(`32-byte key in ${key.kind} memory (memfd_secret available: ${features.memfdSecret})`);

// node:crypto takes the view directly (OpenSSL keeps its own copy in the HMAC context while it lives).
const mac = createHmac('sha256', key.bytes).update('message').digest('hex');
console.log('HMAC-SHA256("message"):', mac.slice(0, 16), '…');

const mem = openSync('/proc/self/mem', 'r');
try {
  const peek = Buffer.alloc(32);
  readSync(mem, peek, 0, 32, Number(key.address));
  console.log('read through /proc/self/mem:', peek.equals(key.bytes) ? 'the key (mlock memory is not hidden)' : 'other bytes');
} catch (err) {
  console.log('read through /proc/self/mem: refused,', (err as Error).message);
} finally {
  closeSync(mem);
}

key.wipe(); // zero it as soon as it is no longer needed; dispose() at scope exit zeroes again and unmaps
console.log('after wipe():', key.bytes.subarray(0, 8));
