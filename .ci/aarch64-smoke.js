// Runs the cross-compiled linux-arm64 prebuilt under qemu-aarch64 (user mode:
// real aarch64 code, the host kernel's syscalls), through the public API:
// constants, memfd + seals, mmap/mprotect, WriteOnceArena, SecretBuffer, a
// sealed buffer verified, passed over a Channel and mapped by the receiver. qemu passes syscalls it does not know
// (mseal, memfd_secret on older qemu) back as ENOSYS, which features reports.
//   qemu-aarch64 -L /usr/aarch64-linux-gnu node aarch64-smoke.js <package dir>
'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(process.argv[2]);
const m = require(root);
const { addonPath } = require(path.join(root, 'dist', 'kernel', 'binding.js'));
assert.equal(process.arch, 'arm64');
assert.equal(path.relative(root, addonPath), path.join('prebuilds', 'linux-arm64', 'memseal.napi.glibc.node'));

// The values kernel.h and the C library gave the aarch64 build.
const c = m.constants;
assert.deepEqual([c.F_ADD_SEALS, c.F_GET_SEALS, c.MFD_CLOEXEC, c.MFD_ALLOW_SEALING, c.MFD_NOEXEC_SEAL, c.F_SEAL_EXEC,
  c.MADV_POPULATE_WRITE, c.MAP_SHARED, c.PROT_READ], [1033, 1034, 1, 2, 8, 0x20, 23, 1, 1]);

const fd = m.memfdCreate('arm64');
fs.ftruncateSync(fd, 8192);
m.addSeals(fd, m.Seal.SHRINK | m.Seal.GROW);
assert.equal(m.getSeals(fd), m.Seal.SHRINK | m.Seal.GROW);
assert.throws(() => fs.ftruncateSync(fd, 4096), { code: 'EPERM' });
const map = m.mmap(8192, c.PROT_READ | c.PROT_WRITE, c.MAP_SHARED, fd);
map.bytes().write('written through the mapping');
map.protect(c.PROT_READ);
map.unmap();
assert.equal(map.buffer.byteLength, 0);
fs.closeSync(fd);

// WriteOnceArena: write, seal (mprotect; mseal where the kernel — here qemu — has it), read.
const arena = new m.WriteOnceArena(65536, { name: 'arm64-arena' });
arena.alloc(16).write('frozen on arm64');
arena.seal();
assert.equal(arena.sealed, true);
assert.throws(() => arena.alloc(8), { code: 'ERR_MEMSEAL_SEALED' });

// SecretBuffer: memfd_secret where available, else the mlock fallback.
const secret = m.SecretBuffer.alloc(64, { fallback: 'mlock' });
secret.bytes.fill(7);
assert.equal(secret.bytes.reduce((a, x) => a + x, 0), 64 * 7);
secret.dispose();

const sealed = m.SealedBuffer.from('hello from aarch64');
assert.equal(m.verifySeals(sealed.fd).ok, true);

(async () => {
  const [a, b] = m.socketPair();
  await a.send('meta', [sealed.fd]);
  const msg = await b.receive();
  assert.equal(msg.data.toString(), 'meta');
  assert.equal(msg.fds.length, 1);
  const got = m.SealedBuffer.open(msg.fds[0]);
  assert.equal(got.bytes.toString(), 'hello from aarch64');
  got.close(); sealed.close(); a.close(); b.close();
  const f = m.features;
  console.log(`aarch64 smoke ok: node ${process.version} ${process.arch}, sealing ${f.sealing}, ` +
    `noexecSeal ${f.noexecSeal}, mseal ${f.mseal}, memfdSecret ${f.memfdSecret}, arena sealed with ${arena.sealedWith}, ` +
    `secret kind ${secret.kind} (under qemu-user)`);
})().catch((err) => { console.error(err); process.exit(1); });
