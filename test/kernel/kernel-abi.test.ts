// native/kernel.h against the kernel's own uapi headers, for x86_64 AND aarch64:
// every constant and syscall number kernel.h defines must equal the kernel's.
// The addon is only ever compiled for one of the two here, so a wrong aarch64
// number would otherwise go unnoticed until it ran on one.
//
// Headers come from Debian's linux-libc-dev (≥ 6.x ships every architecture's
// asm/ under /usr/include/<triplet>) or its -<arch>-cross packages (older
// layout, /usr/<triplet>/include). MEMSEAL_UAPI_ROOT names an extracted
// linux-libc-dev tried first, then those .ci/uapi-headers.sh cached; with
// MEMSEAL_UAPI_REQUIRED=1 (CI) missing headers or names fail instead of skip.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { skipUnless } from '../helpers';

const KERNEL_H = path.join(__dirname, '..', '..', 'native', 'kernel.h');
const REQUIRED = process.env.MEMSEAL_UAPI_REQUIRED === '1';
/**
 * kernel.h names that are not uapi: SCM_MAX_FD lives in include/net/scm.h (kernel-internal);
 * MEMSEAL_KNOWN_SEALS is memseal's own (the seal bits this build knows), and so is MEMSEAL_MFD_NAME_MAX
 * (memfd_create(2)'s 249-byte name limit: the kernel's MFD_NAME_MAX_LEN lives in mm/memfd.c, not in uapi).
 */
const NOT_UAPI = new Set(['SCM_MAX_FD', 'MEMSEAL_KNOWN_SEALS', 'MEMSEAL_MFD_NAME_MAX']);

/** Object-like `#define NAME VALUE` lines of a header; comments removed; first definition wins. */
function defines(text: string): Map<string, string> {
  const out = new Map<string, string>();
  const clean = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
  for (const m of clean.matchAll(/^[ \t]*#[ \t]*define[ \t]+([A-Za-z_]\w*)(?![\w(])[ \t]*(.*)$/gm)) {
    if (!out.has(m[1]!) && m[2]!.trim() !== '') out.set(m[1]!, m[2]!.trim());
  }
  return out;
}

/** The integer value of a macro: literals (U/L suffixes), other macros, ( ) + - | << only. */
function evaluate(name: string, defs: Map<string, string>, depth = 0): number | undefined {
  const expr = defs.get(name);
  if (expr === undefined || depth > 8) return undefined;
  let failed = false;
  const substituted = expr
    .replace(/\b(0x[0-9a-fA-F]+|\d+)[uUlL]*\b/g, '$1')
    .replace(/\b[A-Za-z_]\w*\b/g, (id) => {
      if (/^0x[0-9a-fA-F]+$/.test(id)) return id;
      const v = evaluate(id, defs, depth + 1);
      if (v === undefined) failed = true;
      return String(v);
    });
  if (failed || !/^[\s0-9a-fA-Fx()+\-|<]+$/.test(substituted)) return undefined;
  return Number(new Function(`return (${substituted});`)());
}

const kernelH = defines(readFileSync(KERNEL_H, 'utf8'));

interface Arch { name: string; triplet: string }
const ARCHES: Arch[] = [
  { name: 'x86_64', triplet: 'x86_64-linux-gnu' },
  { name: 'aarch64', triplet: 'aarch64-linux-gnu' },
];
/** Headers holding kernel.h's constants (asm-generic/fcntl.h has F_LINUX_SPECIFIC_BASE). */
const CONSTANT_HEADERS = ['linux/memfd.h', 'linux/fcntl.h', 'asm-generic/fcntl.h', 'asm-generic/mman-common.h', 'linux/un.h'];

interface Found { syscallHeader: string; files: string[]; defs: Map<string, string>; version: string }

/** The uapi headers for one architecture under one root, or undefined if that root has none. */
function headersFor(arch: Arch, root: string): Found | undefined {
  const archDirs = [path.join(root, 'usr/include', arch.triplet), path.join(root, 'usr', arch.triplet, 'include')];
  const dirs = [...archDirs, path.join(root, 'usr/include')];
  let syscallHeader: string | undefined;
  for (const dir of archDirs) {
    if (existsSync(path.join(dir, 'asm/unistd_64.h'))) { syscallHeader = path.join(dir, 'asm/unistd_64.h'); break; }
    // arm64 before Linux 6.11: asm/unistd.h includes the generic table itself
    const unistd = path.join(dir, 'asm/unistd.h');
    if (existsSync(unistd) && readFileSync(unistd, 'utf8').includes('asm-generic/unistd.h') &&
        existsSync(path.join(dir, 'asm-generic/unistd.h'))) {
      syscallHeader = path.join(dir, 'asm-generic/unistd.h');
      break;
    }
  }
  if (!syscallHeader) return undefined;
  const files = [syscallHeader];
  for (const rel of [...CONSTANT_HEADERS, 'linux/version.h']) {
    const file = dirs.map((d) => path.join(d, rel)).find((f) => existsSync(f));
    if (file) files.push(file);
  }
  const defs = new Map<string, string>();
  for (const file of files) for (const [k, v] of defines(readFileSync(file, 'utf8'))) if (!defs.has(k)) defs.set(k, v);
  const code = evaluate('LINUX_VERSION_CODE', defs);
  const version = code === undefined ? 'unknown' : `${code >> 16}.${(code >> 8) & 0xff}`;
  return { syscallHeader, files, defs, version };
}

/** Extracted packages .ci/uapi-headers.sh left in its cache, newest first. */
function cachedRoots(): string[] {
  const cache = path.join(process.env.MEMSEAL_CI_CACHE ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'memseal-ci'), 'uapi');
  try {
    return readdirSync(cache).filter((d) => !d.startsWith('.')).sort().reverse().map((d) => path.join(cache, d));
  } catch {
    return [];
  }
}

function findHeaders(arch: Arch): Found | undefined {
  const roots = [process.env.MEMSEAL_UAPI_ROOT, ...cachedRoots(), '/'].filter((r): r is string => !!r);
  for (const root of roots) {
    const found = headersFor(arch, root);
    if (found) return found;
  }
  return undefined;
}

describe('native/kernel.h', () => {
  it('defines the constants and syscall numbers this test checks', () => {
    // a parser that found nothing would make every check below vacuous
    for (const name of ['F_ADD_SEALS', 'F_SEAL_EXEC', 'MFD_NOEXEC_SEAL', 'MADV_POPULATE_WRITE', 'SYS_memfd_secret', 'SYS_mseal']) {
      assert.ok(kernelH.has(name), `${name} in kernel.h`);
    }
    assert.equal(evaluate('F_ADD_SEALS', kernelH), 1033);
    assert.equal(evaluate('MFD_NOEXEC_SEAL', kernelH), 8);
    assert.equal(evaluate('SYS_mseal', kernelH), 462);
  });

  for (const arch of ARCHES) {
    describe(`matches the ${arch.name} uapi headers`, function () {
      const found = findHeaders(arch);
      if (!found) {
        it('headers are installed', function () {
          assert.ok(!REQUIRED, `no ${arch.name} uapi headers (MEMSEAL_UAPI_REQUIRED=1): run .ci/uapi-headers.sh`);
          skipUnless(this, false, `no ${arch.name} uapi headers here: install linux-libc-dev ` +
            '(≥ 6.x, every architecture) or linux-libc-dev-arm64-cross, or run .ci/uapi-headers.sh');
        });
        return;
      }
      before(function () {
        console.log(`      (${arch.name}: Linux ${found.version} headers, ${found.syscallHeader})`);
      });

      for (const name of [...kernelH.keys()].filter((n) => !NOT_UAPI.has(n))) {
        const uapiName = name.startsWith('SYS_') ? `__NR_${name.slice(4)}` : name;
        const ours = evaluate(name, kernelH);
        it(name === uapiName ? `${name} (${ours})` : `${name} = ${uapiName} (${ours})`, function () {
          const theirs = evaluate(uapiName, found.defs);
          if (theirs === undefined && !REQUIRED) {
            skipUnless(this, false, `${arch.name} headers from Linux ${found.version} predate ${uapiName}`);
          }
          assert.notEqual(theirs, undefined, `${uapiName} not in ${found.files.join(', ')}`);
          assert.equal(ours, theirs, `${name} in kernel.h vs ${uapiName} in the ${arch.name} headers`);
        });
      }
    });
  }
});
