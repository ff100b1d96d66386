// Helpers for the kernel-conformance tests: the assertions the kernel's own
// selftests make (tools/testing/selftests/memfd/memfd_test.c), re-expressed
// through memseal's API and Node's fs. Each throws an AssertionError on a
// kernel answer other than the one the selftest expects.
import assert from 'node:assert/strict';
import { closeSync, fchmodSync, fstatSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { addSeals, constants as C, getSeals, memfdCreate, mmap, sealNames, type SystemError } from '../../src';

/** The selftest's mfd_def_size. */
export const SIZE = 8192;

/** Asserts `fn` throws a system error with this code (and syscall, when given). */
export function throwsSys(fn: () => unknown, code: string, syscall?: string): SystemError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof Error, `expected ${code}, but it succeeded`);
  const e = caught as SystemError;
  assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
  if (syscall !== undefined) assert.equal(e.syscall, syscall);
  assert.ok(typeof e.errno === 'number' && e.errno < 0);
  return e;
}

/** Opens memfds and closes whatever is left in afterEach. */
export class Fds {
  readonly #open = new Set<number>();
  track(fd: number): number { this.#open.add(fd); return fd; }
  close(fd: number): void { this.#open.delete(fd); closeSync(fd); }
  closeAll(): void { for (const fd of this.#open) closeSync(fd); this.#open.clear(); }
  /** mfd_assert_new: memfd_create + ftruncate to `size`. */
  memfd(name: string, size: number, flags: number): number {
    const fd = this.track(memfdCreate(name, flags));
    ftruncateSync(fd, size);
    assert.equal(fstatSync(fd).size, size);
    return fd;
  }
}

export function hasSeals(fd: number, seals: number): void {
  const got = getSeals(fd);
  assert.equal(got, seals, `seals are [${sealNames(got)}], expected [${sealNames(seals)}]`);
}

export function failAddSeals(fd: number, seals: number): SystemError {
  return throwsSys(() => addSeals(fd, seals), 'EPERM', 'fcntl');
}

export function mode(fd: number): number {
  return fstatSync(fd).mode & 0o7777;
}

export function assertChmod(fd: number, m: number): void {
  fchmodSync(fd, m);
  assert.equal(mode(fd), m);
}

export function failChmod(fd: number, m: number): void {
  const before = mode(fd);
  assert.throws(() => fchmodSync(fd, m), { code: 'EPERM' }, `fchmod 0${m.toString(8)} should fail`);
  assert.equal(mode(fd), before, 'mode bits unchanged');
}

/** mfd_assert_read: pread, and a private read-only mapping shows the same bytes. */
export function assertRead(fd: number): void {
  const buf = Buffer.alloc(4);
  assert.equal(readSync(fd, buf, 0, 4, 0), 4);
  const m = mmap(SIZE, C.PROT_READ, C.MAP_PRIVATE, fd);
  try {
    assert.deepEqual(m.bytes(0, 4), buf);
  } finally {
    m.unmap();
  }
  const w = mmap(SIZE, C.PROT_READ | C.PROT_WRITE, C.MAP_PRIVATE, fd); // private writable: always allowed
  w.unmap();
}

/** mfd_assert_read_shared: a shared read-only mapping is allowed. */
export function assertReadShared(fd: number): void {
  mmap(SIZE, C.PROT_READ, C.MAP_SHARED, fd).unmap();
}

/** mfd_assert_write: write(), shared writable mappings and mprotect to writable all work. */
export function assertWrite(fd: number): void {
  assert.equal(writeSync(fd, 'data', 0, 'latin1'), 4);
  const rw = mmap(SIZE, C.PROT_READ | C.PROT_WRITE, C.MAP_SHARED, fd);
  rw.bytes(0, 4).write('DATA', 'latin1');
  rw.unmap();
  mmap(SIZE, C.PROT_WRITE, C.MAP_SHARED, fd).unmap();
  const ro = mmap(SIZE, C.PROT_READ, C.MAP_SHARED, fd);
  try {
    ro.protect(C.PROT_READ | C.PROT_WRITE);
  } finally {
    ro.unmap();
  }
}

/** mfd_fail_write: write() EPERM, shared writable mmap EPERM, mprotect of a shared read-only one EACCES. */
export function failWrite(fd: number): void {
  throwsSys(() => writeSync(fd, 'data', 0, 'latin1'), 'EPERM');
  throwsSys(() => mmap(SIZE, C.PROT_READ | C.PROT_WRITE, C.MAP_SHARED, fd), 'EPERM', 'mmap');
  throwsSys(() => mmap(SIZE, C.PROT_WRITE, C.MAP_SHARED, fd), 'EPERM', 'mmap');
  const ro = mmap(SIZE, C.PROT_READ, C.MAP_SHARED, fd);
  try {
    throwsSys(() => ro.protect(C.PROT_READ | C.PROT_WRITE), 'EACCES', 'mprotect');
  } finally {
    ro.unmap();
  }
}

/** mfd_assert_shrink: ftruncate to half works, and so does a reopen with O_TRUNC (to 0). */
export function assertShrink(fd: number): void {
  ftruncateSync(fd, SIZE / 2);
  assert.equal(fstatSync(fd).size, SIZE / 2);
  closeSync(openSync(`/proc/self/fd/${fd}`, 'w+')); // O_RDWR | O_CREAT | O_TRUNC
  assert.equal(fstatSync(fd).size, 0);
}

/** mfd_fail_shrink: ftruncate smaller and a reopen with O_TRUNC fail with EPERM. */
export function failShrink(fd: number): void {
  const before = fstatSync(fd).size;
  throwsSys(() => ftruncateSync(fd, before / 2), 'EPERM');
  throwsSys(() => openSync(`/proc/self/fd/${fd}`, 'w+'), 'EPERM');
  assert.equal(fstatSync(fd).size, before);
}

/** mfd_assert_grow: ftruncate to twice SIZE works (the selftest's fallocate step has no memseal/Node API). */
export function assertGrow(fd: number): void {
  ftruncateSync(fd, SIZE * 2);
  assert.equal(fstatSync(fd).size, SIZE * 2);
}

export function failGrow(fd: number): void {
  const before = fstatSync(fd).size;
  throwsSys(() => ftruncateSync(fd, SIZE * 2), 'EPERM');
  assert.equal(fstatSync(fd).size, before);
}

/** mfd_assert_grow_write: pwrite past the end grows the file. */
export function assertGrowWrite(fd: number): void {
  const buf = Buffer.alloc(SIZE * 8, 1);
  assert.equal(writeSync(fd, buf, 0, buf.length, 0), buf.length);
  assert.equal(fstatSync(fd).size, SIZE * 8);
}

/**
 * mfd_fail_grow_write: pwrite of 8 × SIZE from offset 0 must not complete. As
 * in the selftest, a short write (the pages inside the current size) counts as
 * a failure to grow; either way the size does not change.
 */
export function failGrowWrite(fd: number): void {
  const before = fstatSync(fd).size;
  const buf = Buffer.alloc(SIZE * 8, 1);
  let written: number | 'EPERM';
  try {
    written = writeSync(fd, buf, 0, buf.length, 0);
  } catch (err) {
    assert.equal((err as { code?: string }).code, 'EPERM');
    written = 'EPERM';
  }
  assert.ok(written === 'EPERM' || written <= before, `pwrite grew a grow-sealed file (${written} bytes)`);
  assert.equal(fstatSync(fd).size, before);
}
