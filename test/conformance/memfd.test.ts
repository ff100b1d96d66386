// Kernel conformance: memfd_create(2) and file seals, case by case after the
// kernel's tools/testing/selftests/memfd/memfd_test.c, driven through memseal
// (memfdCreate, addSeals, getSeals, mmap, Channel) plus Node's fs for
// read/write/ftruncate/fchmod. Case list and skips: test/conformance/CASES.md.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import path from 'node:path';
import {
  addSeals, constants as C, features, getSeals, memfdCreate, mmap, Seal, socketPair, spawnWithChannel, type Channel,
} from '../../src';
import { FIXTURES, skipUnless } from '../helpers';
import {
  assertChmod, assertGrow, assertGrowWrite, assertRead, assertReadShared, assertShrink, assertWrite, failAddSeals,
  failChmod, failGrow, failGrowWrite, failShrink, failWrite, Fds, hasSeals, mode, SIZE, throwsSys,
} from './helpers';

const { SEAL, SHRINK, GROW, WRITE, FUTURE_WRITE, EXEC } = Seal;
const DEF = C.MFD_CLOEXEC | C.MFD_ALLOW_SEALING;
/** F_WX_SEALS: what F_SEAL_EXEC implies on an executable memfd (Linux 6.3+). */
const WX_SEALS = SHRINK | GROW | WRITE | FUTURE_WRITE;
const ROOT = path.resolve(__dirname, '..', '..');

describe('conformance: memfd_test.c', () => {
  const fds = new Fds();
  afterEach(() => fds.closeAll());

  describe('CREATE', () => {
    it('a NULL name cannot be expressed: a non-string name is ERR_INVALID_ARG_TYPE before any syscall', () => {
      assert.throws(() => memfdCreate(null as unknown as string), { code: 'ERR_INVALID_ARG_TYPE' });
    });

    it('an over-long name fails with EINVAL (and a hint naming the limit)', () => {
      const e = throwsSys(() => memfdCreate('\u00ff'.repeat(1023)), 'EINVAL', 'memfd_create');
      assert.match(e.hint ?? '', /longer than 249 bytes/);
      throwsSys(() => memfdCreate('x'.repeat(2047)), 'EINVAL', 'memfd_create');
    });

    it('"" is a valid name', () => {
      fds.track(memfdCreate('', 0));
    });

    it('unknown flag bits fail with EINVAL', () => {
      for (const flags of [0x0100, ~C.MFD_CLOEXEC >>> 0, ~C.MFD_ALLOW_SEALING >>> 0, 0xffffffff, 0x80000000]) {
        throwsSys(() => memfdCreate('', flags), 'EINVAL', 'memfd_create');
      }
    });

    it('MFD_EXEC and MFD_NOEXEC_SEAL together fail with EINVAL', function () {
      skipUnless(this, features.noexecSeal, 'MFD_EXEC / MFD_NOEXEC_SEAL need Linux ≥ 6.3');
      throwsSys(() => memfdCreate('', C.MFD_EXEC | C.MFD_NOEXEC_SEAL), 'EINVAL', 'memfd_create');
    });

    it('MFD_CLOEXEC, MFD_ALLOW_SEALING and both are allowed', () => {
      for (const flags of [C.MFD_CLOEXEC, C.MFD_ALLOW_SEALING, C.MFD_ALLOW_SEALING | C.MFD_CLOEXEC]) fds.track(memfdCreate('', flags));
    });
  });

  it('BASIC: seals accumulate, re-adding is fine, F_SEAL_SEAL stops all; no MFD_ALLOW_SEALING means F_SEAL_SEAL', () => {
    let fd = fds.memfd('kern_memfd_basic', SIZE, DEF);
    hasSeals(fd, 0);
    addSeals(fd, SHRINK | WRITE);
    hasSeals(fd, SHRINK | WRITE);
    addSeals(fd, SHRINK | WRITE);
    hasSeals(fd, SHRINK | WRITE);
    addSeals(fd, GROW | SEAL);
    hasSeals(fd, SHRINK | GROW | WRITE | SEAL);
    failAddSeals(fd, GROW);
    failAddSeals(fd, 0);
    fds.close(fd);

    fd = fds.memfd('kern_memfd_basic', SIZE, C.MFD_CLOEXEC);
    hasSeals(fd, SEAL);
    const e = failAddSeals(fd, SHRINK | GROW | WRITE);
    assert.match(e.hint ?? '', /F_SEAL_SEAL is set/);
    hasSeals(fd, SEAL);
  });

  describe('exec bits', () => {
    beforeEach(function () {
      skipUnless(this, features.noexecSeal && features.sealExec, 'MFD_EXEC / MFD_NOEXEC_SEAL / F_SEAL_EXEC need Linux ≥ 6.3');
    });

    it('SEAL-EXEC: after F_SEAL_EXEC on a non-executable file, chmod may not touch any x bit', function () {
      skipUnless(this, features.memfdNoexecSysctl !== 2, 'vm.memfd_noexec=2 refuses MFD_EXEC');
      const fd = fds.memfd('kern_memfd_seal_exec', SIZE, DEF | C.MFD_EXEC);
      assert.equal(mode(fd), 0o777);
      assertChmod(fd, 0o644);
      hasSeals(fd, 0);
      addSeals(fd, EXEC);
      hasSeals(fd, EXEC);
      assertChmod(fd, 0o600);
      for (const m of [0o777, 0o670, 0o605, 0o700, 0o100]) failChmod(fd, m);
      assertChmod(fd, 0o666);
      assertWrite(fd);
    });

    it('SEAL-EXEC (ALL_SEALS): F_SEAL_EXEC on an executable file also seals it against writes and resizes', function () {
      skipUnless(this, features.memfdNoexecSysctl !== 2, 'vm.memfd_noexec=2 refuses MFD_EXEC');
      const fd = fds.memfd('kern_memfd_seal_exec', SIZE, DEF | C.MFD_EXEC);
      assert.equal(mode(fd), 0o777);
      assertChmod(fd, 0o700);
      hasSeals(fd, 0);
      addSeals(fd, EXEC);
      hasSeals(fd, EXEC | WX_SEALS);
      failChmod(fd, 0o711);
      failChmod(fd, 0o600);
      failWrite(fd);
    });

    it('EXEC_NO_SEAL: MFD_EXEC without MFD_ALLOW_SEALING is executable and unsealable, chmod still works', function () {
      skipUnless(this, features.memfdNoexecSysctl !== 2, 'vm.memfd_noexec=2 refuses MFD_EXEC');
      const fd = fds.memfd('kern_memfd_exec_no_sealing', SIZE, C.MFD_CLOEXEC | C.MFD_EXEC);
      assert.equal(mode(fd), 0o777);
      hasSeals(fd, SEAL);
      assertChmod(fd, 0o666);
    });

    it('NOEXEC_SEAL: mode 0666 and F_SEAL_EXEC, with or without MFD_ALLOW_SEALING', () => {
      for (const flags of [DEF | C.MFD_NOEXEC_SEAL, C.MFD_CLOEXEC | C.MFD_NOEXEC_SEAL]) {
        const fd = fds.memfd('kern_memfd_noexec', SIZE, flags);
        assert.equal(mode(fd), 0o666);
        hasSeals(fd, EXEC);
        failChmod(fd, 0o777);
        fds.close(fd);
      }
    });
  });

  it('SEAL-WRITE: no write(), no writable shared mapping; resizing still allowed, growing by write not', () => {
    const fd = fds.memfd('kern_memfd_seal_write', SIZE, DEF);
    hasSeals(fd, 0);
    addSeals(fd, WRITE);
    hasSeals(fd, WRITE);
    assertRead(fd);
    failWrite(fd);
    assertShrink(fd);
    assertGrow(fd);
    failGrowWrite(fd);
  });

  it('SEAL-FUTURE-WRITE: an existing shared mapping survives; new writes fail, also through a reopened fd', function () {
    skipUnless(this, features.futureWrite, 'F_SEAL_FUTURE_WRITE needs Linux ≥ 5.1');
    const fd = fds.memfd('kern_memfd_seal_future_write', SIZE, DEF);
    const early = mmap(SIZE, C.PROT_READ | C.PROT_WRITE, C.MAP_SHARED, fd);
    try {
      hasSeals(fd, 0);
      addSeals(fd, FUTURE_WRITE);
      hasSeals(fd, FUTURE_WRITE);
      assertRead(fd);
      assertReadShared(fd);
      failWrite(fd);
      const fd2 = fds.track(openSync(`/proc/self/fd/${fd}`, 'r+'));
      assertRead(fd2);
      assertReadShared(fd2);
      failWrite(fd2);
      // mfd_assert_fork_private_write: a private writable mapping is allowed and stays private
      const priv = mmap(SIZE, C.PROT_READ | C.PROT_WRITE, C.MAP_PRIVATE, fd);
      priv.bytes(0, 4).write('priv', 'latin1');
      priv.unmap();
      // the mapping made before the seal can still write: FUTURE_WRITE only stops new writers
      early.bytes(0, 4).write('late', 'latin1');
      const check = mmap(SIZE, C.PROT_READ, C.MAP_SHARED, fd);
      assert.equal(check.bytes(0, 4).toString('latin1'), 'late');
      check.unmap();
    } finally {
      early.unmap();
    }
  });

  it('SEAL-SHRINK: no shrinking; writes and growth still work', () => {
    const fd = fds.memfd('kern_memfd_seal_shrink', SIZE, DEF);
    hasSeals(fd, 0);
    addSeals(fd, SHRINK);
    hasSeals(fd, SHRINK);
    assertRead(fd);
    assertWrite(fd);
    failShrink(fd);
    assertGrow(fd);
    assertGrowWrite(fd);
  });

  it('SEAL-GROW: no growing, by ftruncate or by writing past the end; shrinking works', () => {
    const fd = fds.memfd('kern_memfd_seal_grow', SIZE, DEF);
    hasSeals(fd, 0);
    addSeals(fd, GROW);
    hasSeals(fd, GROW);
    assertRead(fd);
    assertWrite(fd);
    assertShrink(fd);
    failGrow(fd);
    failGrowWrite(fd);
  });

  it('SEAL-RESIZE: SHRINK | GROW stop every size change; contents still writable', () => {
    const fd = fds.memfd('kern_memfd_seal_resize', SIZE, DEF);
    hasSeals(fd, 0);
    addSeals(fd, SHRINK | GROW);
    hasSeals(fd, SHRINK | GROW);
    assertRead(fd);
    assertWrite(fd);
    failShrink(fd);
    failGrow(fd);
    failGrowWrite(fd);
  });

  it('sysctl (simple): vm.memfd_noexec 0/1/2 in a new pid namespace: defaults, MFD_EXEC EACCES with hint', function () {
    skipUnless(this, features.noexecSeal && features.memfdNoexecSysctl !== null, 'vm.memfd_noexec needs Linux ≥ 6.3');
    const r = spawnSync('unshare', ['--pid', '--fork', process.execPath, path.join(FIXTURES, 'memfd-noexec-sysctl.js')],
      { encoding: 'utf8', timeout: 20000 });
    if (r.error || r.status === 125 || /unshare failed|Operation not permitted/.test(r.stderr)) {
      console.log(`      (skipped: cannot make a pid namespace here: ${r.error?.message ?? r.stderr.trim()})`);
      this.skip();
    }
    assert.equal(r.status, 0, r.stderr);
    const results = JSON.parse(r.stdout) as Record<string, { mode: number; seals: number; exec: string | number; hint?: string }>;
    // 0: executable by default, MFD_EXEC allowed
    assert.deepEqual({ ...results['0'], hint: undefined }, { mode: 0o777, seals: 0, exec: 0o777, hint: undefined });
    // 1: non-executable and exec-sealed by default, MFD_EXEC still allowed
    assert.deepEqual({ ...results['1'], hint: undefined }, { mode: 0o666, seals: EXEC, exec: 0o777, hint: undefined });
    // 2: as 1, and MFD_EXEC refused with EACCES and the hint
    assert.equal(results['2']!.mode, 0o666);
    assert.equal(results['2']!.seals, EXEC);
    assert.equal(results['2']!.exec, 'EACCES');
    assert.match(results['2']!.hint ?? '', /vm\.memfd_noexec=2/);
  });

  describe('sharing', () => {
    let pair: [Channel, Channel] | null = null;
    afterEach(() => { pair?.[0].close(); pair?.[1].close(); pair = null; });

    /** dup(2) as memseal can express it: the same open file description back through SCM_RIGHTS. */
    async function dupViaScmRights(fd: number): Promise<number> {
      pair ??= socketPair();
      await pair[0].send('dup', [fd]);
      const m = await pair[1].receive();
      assert.equal(m.fds.length, 1);
      return fds.track(m.fds[0]!);
    }

    it('SHARE-DUP: seals are shared by duplicated descriptors (dup via SCM_RIGHTS)', async () => {
      const fd = fds.memfd('kern_memfd_share_dup', SIZE, DEF);
      hasSeals(fd, 0);
      const fd2 = await dupViaScmRights(fd);
      assert.notEqual(fd2, fd);
      hasSeals(fd2, 0);
      addSeals(fd, WRITE);
      hasSeals(fd, WRITE);
      hasSeals(fd2, WRITE);
      addSeals(fd2, SHRINK);
      hasSeals(fd, WRITE | SHRINK);
      hasSeals(fd2, WRITE | SHRINK);
      addSeals(fd, SEAL);
      hasSeals(fd, WRITE | SHRINK | SEAL);
      hasSeals(fd2, WRITE | SHRINK | SEAL);
      for (const f of [fd, fd2]) { failAddSeals(f, GROW); failAddSeals(f, SEAL); }
      fds.close(fd2);
      failAddSeals(fd, GROW);
    });

    it('SHARE-MMAP: a writable shared mapping blocks F_SEAL_WRITE (EBUSY, with hint) but not other seals', () => {
      const fd = fds.memfd('kern_memfd_share_mmap', SIZE, DEF);
      hasSeals(fd, 0);
      const p = mmap(SIZE, C.PROT_READ | C.PROT_WRITE, C.MAP_SHARED, fd);
      try {
        const e = throwsSys(() => addSeals(fd, WRITE), 'EBUSY', 'fcntl');
        assert.equal(e.hint, 'a writable shared mapping of this memfd still exists');
        hasSeals(fd, 0);
        addSeals(fd, SHRINK);
        hasSeals(fd, SHRINK);
      } finally {
        p.unmap();
      }
      const q = mmap(SIZE, C.PROT_READ, C.MAP_PRIVATE, fd);
      try {
        addSeals(fd, WRITE);
        hasSeals(fd, WRITE | SHRINK);
      } finally {
        q.unmap();
      }
    });

    it('SHARE-OPEN: a reopen via /proc/self/fd shares seals; a read-only descriptor cannot add seals', () => {
      let fd = fds.memfd('kern_memfd_share_open', SIZE, DEF);
      hasSeals(fd, 0);
      let fd2 = fds.track(openSync(`/proc/self/fd/${fd}`, 'r+'));
      addSeals(fd, WRITE);
      hasSeals(fd, WRITE);
      hasSeals(fd2, WRITE);
      addSeals(fd2, SHRINK);
      hasSeals(fd, WRITE | SHRINK);
      hasSeals(fd2, WRITE | SHRINK);
      fds.close(fd);
      fd = fds.track(openSync(`/proc/self/fd/${fd2}`, 'r'));
      const e = failAddSeals(fd, SEAL);
      assert.match(e.hint ?? '', /not open for writing/, 'the hint names the real cause, not F_SEAL_SEAL');
      hasSeals(fd, WRITE | SHRINK);
      hasSeals(fd2, WRITE | SHRINK);
      fds.close(fd2);
      fd2 = fds.track(openSync(`/proc/self/fd/${fd}`, 'r+'));
      addSeals(fd2, SEAL);
      hasSeals(fd, WRITE | SHRINK | SEAL);
      hasSeals(fd2, WRITE | SHRINK | SEAL);
    });

    it('SHARE-FORK: a child process holding the memfd sees and adds seals; the parent sees them', () => {
      const fd = fds.memfd('kern_memfd_share_fork', SIZE, C.MFD_ALLOW_SEALING); // inheritable
      hasSeals(fd, 0);
      const script = `const m = require(${JSON.stringify(ROOT)});
        if (m.getSeals(3) !== 0) process.exit(3);
        m.addSeals(3, m.Seal.SEAL);
        try { m.addSeals(3, m.Seal.WRITE); process.exit(4); } catch (e) { if (e.code !== 'EPERM') process.exit(5); }`;
      const r = spawnSync(process.execPath, ['-e', script], { stdio: ['ignore', 'inherit', 'pipe', fd], encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      hasSeals(fd, SEAL);
      failAddSeals(fd, WRITE);
      hasSeals(fd, SEAL);
    });

    it('SCM_RIGHTS: a peer process receives the memfd, seals it, and the sender sees the seals', async () => {
      const fd = fds.memfd('kern_memfd_share_scm', SIZE, DEF);
      writeSync(fd, 'shared', 0, 'latin1');
      const script = `const m = require(${JSON.stringify(ROOT)});
        const ch = m.Channel.fromParent();
        ch.receive().then(async (msg) => {
          const fd = msg.fds[0];
          m.addSeals(fd, m.Seal.SHRINK | m.Seal.GROW | m.Seal.WRITE | m.Seal.SEAL);
          await ch.send(String(m.getSeals(fd)));
          require('node:fs').closeSync(fd);
          ch.close();
        });`;
      const { child, channel } = spawnWithChannel(process.execPath, ['-e', script], { stdio: ['ignore', 'inherit', 'inherit'] });
      try {
        await channel.send('seal this', [fd]);
        const reply = await channel.receive();
        assert.equal(Number(reply.data.toString()), SHRINK | GROW | WRITE | SEAL);
        hasSeals(fd, SHRINK | GROW | WRITE | SEAL);
        failWrite(fd);
      } finally {
        channel.close();
        await new Promise((resolve) => { if (child.exitCode !== null) resolve(null); else child.once('exit', resolve); });
      }
      assert.equal(child.exitCode, 0);
    });
  });

  it('closing the last descriptor with a live mapping keeps the pages (mapping holds the file)', () => {
    const fd = memfdCreate('kern_memfd_close', DEF);
    writeSync(fd, Buffer.alloc(SIZE, 0x5a), 0, SIZE, 0);
    const m = mmap(SIZE, C.PROT_READ, C.MAP_SHARED, fd);
    closeSync(fd);
    try {
      assert.equal(m.bytes(SIZE - 1, 1)[0], 0x5a);
    } finally {
      m.unmap();
    }
    assert.throws(() => getSeals(fd), { code: 'EBADF' });
  });
});
