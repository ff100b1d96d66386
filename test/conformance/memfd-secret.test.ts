// Kernel conformance: memfd_secret(2), after the kernel's
// tools/testing/selftests/mm/memfd_secret.c, through memseal's memfdSecret and
// mmap. The selftest's process_vm_readv and ptrace(PEEKDATA) probes become a
// read of /proc/<pid>/mem by a child process (the same remote-access path in the
// kernel, and the one DESIGN.md promises is closed), with a control read of an
// ordinary mapping so the test can fail.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, ftruncateSync, readSync, writeSync } from 'node:fs';
import path from 'node:path';
import { constants as C, features, memfdSecret, mmap } from '../../src';
import { skipUnless } from '../helpers';

const ROOT = path.resolve(__dirname, '..', '..');
const PAGE = 4096;

function readRemote(pid: number, addresses: bigint[]): string[] {
  const script = `const fs = require('node:fs');
    const fd = fs.openSync('/proc/${pid}/mem', 'r');
    const out = [];
    for (const a of process.argv.slice(1)) {
      try { const b = Buffer.alloc(16); const n = fs.readSync(fd, b, 0, 16, BigInt(a)); out.push(b.subarray(0, n).toString('hex')); }
      catch (e) { out.push(e.code); }
    }
    process.stdout.write(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ['-e', script, ...addresses.map(String)], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as string[];
}

describe('conformance: memfd_secret.c', () => {
  let fd = -1;
  beforeEach(function () {
    skipUnless(this, features.memfdSecret, 'memfd_secret needs Linux ≥ 5.14 with secretmem enabled');
    fd = memfdSecret();
  });
  afterEach(() => { if (fd >= 0) closeSync(fd); fd = -1; });

  it('file APIs: read, write, pread and pwrite are refused', () => {
    ftruncateSync(fd, PAGE);
    const buf = Buffer.alloc(64);
    assert.throws(() => readSync(fd, buf, 0, 64, null));
    assert.throws(() => writeSync(fd, buf, 0, 64, null));
    assert.throws(() => readSync(fd, buf, 0, 64, 0)); // pread(2)
    assert.throws(() => writeSync(fd, buf, 0, 64, 0));
  });

  it('mlock limit: mapping up to RLIMIT_MEMLOCK works, twice the hard limit fails (without CAP_IPC_LOCK)', function () {
    // The selftest drops every capability; so does this child (setpriv), with RLIMIT_MEMLOCK at 64 KiB.
    const script = `const m = require(${JSON.stringify(ROOT)});
      const fs = require('node:fs');
      const limit = 65536;
      const fd = m.memfdSecret();
      fs.ftruncateSync(fd, limit * 4);
      const ok = m.mmap(limit, m.constants.PROT_READ | m.constants.PROT_WRITE, m.constants.MAP_SHARED, fd);
      ok.bytes().fill(0x55);
      ok.unmap();
      try { m.mmap(limit * 2, m.constants.PROT_READ | m.constants.PROT_WRITE, m.constants.MAP_SHARED, fd); process.stdout.write('mapped'); }
      catch (e) { process.stdout.write(e.code + (e.hint ? ' ' + e.hint : '')); }`;
    const r = spawnSync('prlimit', ['--memlock=65536:65536', 'setpriv', '--inh-caps=-all', '--bounding-set=-all', '--',
      process.execPath, '-e', script], { encoding: 'utf8' });
    if (r.error) {
      console.log(`      (skipped: prlimit/setpriv unavailable: ${r.error.message})`);
      this.skip();
    }
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^(EAGAIN|ENOMEM|EPERM)\b/, `over-limit mapping: ${r.stdout}`);
    if (r.stdout.startsWith('EAGAIN')) assert.match(r.stdout, /RLIMIT_MEMLOCK/, 'EAGAIN carries the memlock hint');
  });

  it('MAP_PRIVATE is refused (only shared mappings of secret memory exist)', () => {
    ftruncateSync(fd, PAGE);
    assert.throws(() => mmap(PAGE, C.PROT_READ | C.PROT_WRITE, C.MAP_PRIVATE, fd), { code: 'EINVAL', syscall: 'mmap' });
  });

  it('remote access (process_vm_readv / ptrace PEEKDATA): another process cannot read the pages', () => {
    ftruncateSync(fd, PAGE);
    const secret = mmap(PAGE, C.PROT_READ | C.PROT_WRITE, C.MAP_SHARED, fd);
    const plain = mmap(PAGE, C.PROT_READ | C.PROT_WRITE, C.MAP_PRIVATE | C.MAP_POPULATE);
    try {
      secret.bytes().fill(0x55);
      plain.bytes().fill(0x55);
      const [fromSecret, fromPlain] = readRemote(process.pid, [secret.address, plain.address]);
      assert.equal(fromPlain, '55'.repeat(16), 'control: an ordinary mapping is readable through /proc/pid/mem');
      assert.notEqual(fromSecret, '55'.repeat(16), 'secret memory was readable from another process');
      assert.match(fromSecret ?? '', /^(EIO|EFAULT|EPERM|EACCES|)$/);
    } finally {
      secret.unmap();
      plain.unmap();
    }
  });
});
