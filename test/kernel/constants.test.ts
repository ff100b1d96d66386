// The kernel constants TypeScript takes from native/kernel.h (never repeated
// in TS), Seal, and sealNames().
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { constants, Seal, sealNames } from '../../src';

describe('constants', () => {
  it('holds the kernel values of the seal and memfd constants', () => {
    assert.equal(constants.F_ADD_SEALS, 1033);
    assert.equal(constants.F_GET_SEALS, 1034);
    assert.equal(constants.F_SEAL_SEAL, 0x1);
    assert.equal(constants.F_SEAL_SHRINK, 0x2);
    assert.equal(constants.F_SEAL_GROW, 0x4);
    assert.equal(constants.F_SEAL_WRITE, 0x8);
    assert.equal(constants.F_SEAL_FUTURE_WRITE, 0x10);
    assert.equal(constants.F_SEAL_EXEC, 0x20);
    assert.equal(constants.MFD_CLOEXEC, 0x1);
    assert.equal(constants.MFD_ALLOW_SEALING, 0x2);
    assert.equal(constants.MFD_HUGETLB, 0x4);
    assert.equal(constants.MFD_NOEXEC_SEAL, 0x8);
    assert.equal(constants.MFD_EXEC, 0x10);
    assert.equal(constants.MFD_HUGE_64KB, 16 << 26);
    assert.equal(constants.MFD_HUGE_2MB, 21 << 26);
    assert.equal(constants.MFD_HUGE_16GB, 34 * 2 ** 26);
    assert.equal(constants.MADV_POPULATE_READ, 22);
    assert.equal(constants.MADV_POPULATE_WRITE, 23);
    assert.equal(constants.MADV_WIPEONFORK, 18);
    assert.equal(constants.MADV_DONTDUMP, 16);
  });

  it('agrees with the machine\'s uapi headers where they exist', function () {
    let header: string;
    try {
      header = readFileSync('/usr/include/linux/fcntl.h', 'utf8');
    } catch {
      this.skip();
      return;
    }
    for (const name of ['F_SEAL_SEAL', 'F_SEAL_SHRINK', 'F_SEAL_GROW', 'F_SEAL_WRITE', 'F_SEAL_FUTURE_WRITE'] as const) {
      const m = new RegExp(`#define\\s+${name}\\s+(0x[0-9a-f]+)`).exec(header);
      assert.ok(m, `${name} in linux/fcntl.h`);
      assert.equal(constants[name], Number(m[1]), name);
    }
  });

  it('is frozen', () => {
    assert.ok(Object.isFrozen(constants));
    assert.equal(Reflect.set(constants, 'F_SEAL_SEAL', 7), false);
    assert.equal(constants.F_SEAL_SEAL, 1);
  });

  it('Seal mirrors the F_SEAL_* constants', () => {
    assert.deepEqual(Seal, { SEAL: 1, SHRINK: 2, GROW: 4, WRITE: 8, FUTURE_WRITE: 0x10, EXEC: 0x20 });
    assert.equal(Seal.WRITE, constants.F_SEAL_WRITE);
    assert.equal(Seal.EXEC, constants.F_SEAL_EXEC);
    assert.ok(Object.isFrozen(Seal));
  });
});

describe('sealNames()', () => {
  it('names each bit, lowest first', () => {
    assert.deepEqual(sealNames(0x0e), ['shrink', 'grow', 'write']);
    assert.deepEqual(sealNames(0x3f), ['seal', 'shrink', 'grow', 'write', 'future_write', 'exec']);
    assert.deepEqual(sealNames(0), []);
  });

  it('leaves out bits it does not know', () => {
    assert.deepEqual(sealNames(0x40 | Seal.SEAL), ['seal']);
  });

  it('rejects non-integers with Node-style errors', () => {
    assert.throws(() => sealNames('3' as unknown as number), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => sealNames(1.5), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => sealNames(-1), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
  });
});
