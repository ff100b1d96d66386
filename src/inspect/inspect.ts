// Inspection of other processes' memfds and sealed memory, from procfs alone:
// /proc/<pid>/fd (readlink: `/memfd:<name> (deleted)`, `/secretmem (deleted)`),
// /proc/<pid>/fdinfo (open flags), /proc/<pid>/smaps (mappings and `VmFlags: sl`,
// i.e. mseal(2), Linux 6.10), and fcntl(F_GET_SEALS) on a read-only re-open of
// /proc/<pid>/fd/<n> (Linux 3.17). Everything is read-only; a process that
// vanishes or may not be inspected becomes an error entry, never an exception.
import fs from 'node:fs';
import { native } from '../kernel/binding';
import { sealNames, type SealName } from '../kernel/constants';
import { validateInteger } from '../kernel/validate';

/** What kind of memory-backed file a descriptor refers to. */
export type MemfdKind = 'memfd' | 'secretmem';

/** One VMA of a process, as /proc/<pid>/smaps lists it. */
export interface InspectMapping {
  /** first address, hex with 0x prefix (a string: JSON has no 64-bit integers) */
  start: string;
  /** one past the last address, hex with 0x prefix */
  end: string;
  /** end - start, in bytes */
  length: number;
  /** the maps permission field, e.g. `rw-s` */
  perms: string;
  /** MAP_SHARED (perms ends in `s`) rather than MAP_PRIVATE */
  shared: boolean;
  /** file offset of `start`, in bytes */
  offset: number;
  /** mseal'd (smaps `VmFlags` contains `sl`, Linux 6.10); null when smaps could not be read */
  sealed: boolean | null;
  /** bytes of this mapping resident in memory (smaps `Rss`); null when smaps could not be read */
  rss: number | null;
  /** this process's proportional share of them (smaps `Pss`: a page mapped by n processes counts 1/n); null likewise */
  pss: number | null;
}

/** An mseal'd region that is not backed by a memfd or memfd_secret file. */
export interface InspectRegion extends InspectMapping {
  /** the maps path column: '' for anonymous memory, `[stack]`, a file path ... */
  path: string;
}

/** One memfd (or memfd_secret file) a process holds open or has mapped. */
export interface InspectMemfd {
  pid: number;
  /** the process's command name (/proc/<pid>/comm) */
  comm: string;
  /** the descriptor number; null for a memfd that is mapped but whose descriptors are all closed */
  fd: number | null;
  kind: MemfdKind;
  /** the memfd_create(2) name; null for memfd_secret files, which have none */
  name: string | null;
  /** inode number (the key that ties descriptors to mappings) */
  inode: number;
  /** file size in bytes; null when it could not be read */
  size: number | null;
  /** permission bits (st_mode & 0o7777); null when unknown */
  mode: number | null;
  /** any execute bit set: MFD_NOEXEC_SEAL (Linux 6.3) clears them */
  exec: boolean | null;
  /** the descriptor's access mode (from /proc/<pid>/fdinfo); null for fd-less entries */
  access: 'r' | 'w' | 'rw' | null;
  /** F_GET_SEALS mask; null when it could not be read (see sealsError) */
  seals: number | null;
  /** seal names, as {@link sealNames} returns them; null with seals */
  sealNames: SealName[] | null;
  /** why seals are null: an errno code such as 'ENXIO' (memfd_secret files cannot be re-opened) or 'EACCES' */
  sealsError: string | null;
  /** the process's mappings of this file; null when its maps could not be read */
  mappings: InspectMapping[] | null;
  /** resident bytes of this file in this process's mappings (sum of their `rss`); null when unknown */
  rss: number | null;
  /** this process's proportional share of them (sum of their `pss`); null when unknown */
  pss: number | null;
  /**
   * How many of the processes in this report map the same file (this one included when it maps it):
   * the file's pages exist once however many map them. 0 for a file held only by descriptors.
   */
  mappedBy: number;
}

/** Something that could not be read; the rest of the report stands. */
export interface InspectError {
  /** errno code: 'EACCES' (may not inspect), 'ESRCH' (the process is gone), ... */
  code: string;
  /** the procfs path that failed */
  path: string;
  message: string;
}

/** Everything found in one process. */
export interface InspectProcess {
  pid: number;
  /** /proc/<pid>/comm; null when unreadable (the process is gone) */
  comm: string | null;
  /** false when its descriptors could not be listed at all (permission, or the process is gone) */
  inspectable: boolean;
  /** memfds and memfd_secret files, by fd (fd-less mapped ones last) */
  memfds: InspectMemfd[];
  /** mseal'd regions not backed by a memfd; null when smaps could not be read */
  sealedRegions: InspectRegion[] | null;
  /** what could not be read, in scan order */
  errors: InspectError[];
}

const MEMFD_LINK = /^\/memfd:(.*?)(?: \(deleted\))?$/s;
// memfd_secret files live on an internal `secretmem` mount; be lenient about how
// older kernels spell the link.
const SECRET_LINK = /^(?:\/|anon_inode:)?\[?secretmem\]?(?: \(deleted\))?$/;
const MAPS_LINE = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) ([0-9a-f]+) ([0-9a-f]+):([0-9a-f]+) (\d+)\s*(.*)$/;

interface Vma extends InspectMapping {
  dev: string;
  inode: number;
  path: string;
}

function errnoCode(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : 'EIO';
}

function toError(err: unknown, path: string): InspectError {
  let code = errnoCode(err);
  // A /proc/<pid> entry disappearing means the process exited mid-scan.
  if (code === 'ENOENT' && /^\/proc\/\d+(?:\/(?:comm|fd|smaps|maps))?$/.test(path)) code = 'ESRCH';
  const message = code === 'ESRCH' ? 'no such process' : code === 'EACCES' || code === 'EPERM'
    ? 'permission denied (needs the same user, or CAP_SYS_PTRACE)' : (err as Error).message;
  return { code, path, message };
}

/** major:minor in the `%02x:%02x` spelling of /proc/<pid>/maps, from a glibc dev_t. */
function devKey(dev: bigint): string {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return `${major.toString(16)}:${minor.toString(16)}`;
}

function parseSmaps(text: string, withFlags: boolean): Vma[] {
  const vmas: Vma[] = [];
  let last: Vma | undefined;
  for (const line of text.split('\n')) {
    const m = MAPS_LINE.exec(line);
    if (m) {
      const [, lo, hi, perms, off, maj, min, ino, path] = m as unknown as string[];
      const start = BigInt(`0x${lo}`);
      const end = BigInt(`0x${hi}`);
      last = {
        start: `0x${lo}`, end: `0x${hi}`, length: Number(end - start), perms: perms!,
        shared: perms!.endsWith('s'), offset: Number(BigInt(`0x${off}`)), sealed: withFlags ? false : null,
        dev: `${parseInt(maj!, 16).toString(16)}:${parseInt(min!, 16).toString(16)}`, inode: Number(ino), path: path ?? '',
        rss: null, pss: null,
      };
      vmas.push(last);
    } else if (last && (line.startsWith('Rss:') || line.startsWith('Pss:'))) {
      const kB = Number(/(\d+)\s*kB/.exec(line)?.[1] ?? NaN);
      if (Number.isFinite(kB)) last[line.startsWith('Rss:') ? 'rss' : 'pss'] = kB * 1024;
    } else if (last && line.startsWith('VmFlags:')) {
      last.sealed = line.slice(8).trim().split(/\s+/).includes('sl');
    }
  }
  return vmas;
}

function publicMapping(v: Vma): InspectMapping {
  return {
    start: v.start, end: v.end, length: v.length, perms: v.perms, shared: v.shared, offset: v.offset, sealed: v.sealed,
    rss: v.rss, pss: v.pss,
  };
}

/** F_GET_SEALS through a read-only re-open of a procfs magic link. */
function readSeals(path: string): { seals: number | null; sealsError: string | null } {
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NOCTTY | fs.constants.O_NONBLOCK);
  } catch (err) {
    return { seals: null, sealsError: errnoCode(err) };
  }
  try {
    const r = native.getSeals(fd);
    return r < 0 ? { seals: null, sealsError: native.errorName(r) } : { seals: r, sealsError: null };
  } finally {
    fs.closeSync(fd);
  }
}

function accessMode(fdinfo: string): 'r' | 'w' | 'rw' | null {
  const m = /^flags:\s*([0-7]+)/m.exec(fdinfo);
  if (!m) return null;
  const acc = parseInt(m[1]!, 8) & 3;
  return acc === 0 ? 'r' : acc === 1 ? 'w' : 'rw';
}

function classify(link: string): { kind: MemfdKind; name: string | null } | null {
  const memfd = MEMFD_LINK.exec(link);
  if (memfd) return { kind: 'memfd', name: memfd[1]! };
  if (SECRET_LINK.test(link)) return { kind: 'secretmem', name: null };
  return null;
}

function statInfo(path: string): { dev: string; inode: number; size: number; mode: number } | { error: string } {
  try {
    const st = fs.statSync(path, { bigint: true });
    return { dev: devKey(st.dev), inode: Number(st.ino), size: Number(st.size), mode: Number(st.mode & 0o7777n) };
  } catch (err) {
    return { error: errnoCode(err) };
  }
}

/** Inspects one process. Never throws for procfs failures: they become `errors`. */
function inspectOne(pid: number): InspectProcess {
  const base = `/proc/${pid}`;
  const report: InspectProcess = { pid, comm: null, inspectable: false, memfds: [], sealedRegions: null, errors: [] };
  try {
    report.comm = fs.readFileSync(`${base}/comm`, 'utf8').replace(/\n$/, '');
  } catch (err) {
    report.errors.push(toError(err, `${base}/comm`));
    return report;
  }
  const comm = report.comm;

  let fdNames: string[];
  try {
    fdNames = fs.readdirSync(`${base}/fd`);
    report.inspectable = true;
  } catch (err) {
    report.errors.push(toError(err, `${base}/fd`));
    return report;
  }

  const found: (InspectMemfd & { dev: string | null })[] = [];
  for (const entry of fdNames) {
    const fd = Number(entry);
    const fdPath = `${base}/fd/${entry}`;
    let link: string;
    try {
      link = fs.readlinkSync(fdPath);
    } catch (err) {
      const code = errnoCode(err);
      // The descriptor was closed between readdir and readlink: nothing to report.
      if (code === 'ENOENT') continue;
      // The directory may be listable while its links are not (the ptrace check
      // is per link): then the process is not inspectable at all.
      report.errors.push(toError(err, `${base}/fd`));
      if (code === 'EACCES' || code === 'EPERM') {
        report.inspectable = false;
        report.memfds = [];
        return report;
      }
      continue;
    }
    const kind = classify(link);
    if (!kind) continue;
    const info = statInfo(fdPath);
    const st = 'error' in info ? null : info;
    let access: InspectMemfd['access'] = null;
    try {
      access = accessMode(fs.readFileSync(`${base}/fdinfo/${entry}`, 'utf8'));
    } catch { /* closed meanwhile, or not permitted: leave unknown */ }
    const { seals, sealsError } = readSeals(fdPath);
    found.push({
      pid, comm, fd, kind: kind.kind, name: kind.name, inode: st?.inode ?? 0, size: st?.size ?? null,
      mode: st?.mode ?? null, exec: st ? (st.mode & 0o111) !== 0 : null, access, seals,
      sealNames: seals === null ? null : sealNames(seals), sealsError, mappings: null, rss: null, pss: null, mappedBy: 0, dev: st?.dev ?? null,
    });
  }

  let vmas: Vma[] | null = null;
  try {
    vmas = parseSmaps(fs.readFileSync(`${base}/smaps`, 'utf8'), true);
  } catch (err) {
    report.errors.push(toError(err, `${base}/smaps`));
    try {
      vmas = parseSmaps(fs.readFileSync(`${base}/maps`, 'utf8'), false);
    } catch (err2) {
      report.errors.push(toError(err2, `${base}/maps`));
    }
  }

  if (vmas) {
    const byFile = new Map<string, Vma[]>();
    for (const v of vmas) {
      if (v.inode === 0) continue;
      const key = `${v.dev}/${v.inode}`;
      const list = byFile.get(key);
      if (list) list.push(v); else byFile.set(key, [v]);
    }
    const claimed = new Set<string>();
    for (const m of found) {
      const key = `${m.dev}/${m.inode}`;
      m.mappings = m.dev === null ? [] : (byFile.get(key) ?? []).map(publicMapping);
      claimed.add(key);
    }
    // Mapped memfds whose descriptors are all closed still pin memory: report them too.
    for (const [key, list] of byFile) {
      if (claimed.has(key)) continue;
      const kind = classify(list[0]!.path);
      if (!kind) continue;
      claimed.add(key);
      const mapFile = `${base}/map_files/${list[0]!.start.slice(2)}-${list[0]!.end.slice(2)}`;
      const info = statInfo(mapFile); // needs CAP_SYS_ADMIN; unknown otherwise
      const st = 'error' in info ? null : info;
      const { seals, sealsError } = st ? readSeals(mapFile) : { seals: null, sealsError: (info as { error: string }).error };
      found.push({
        pid, comm, fd: null, kind: kind.kind, name: kind.name, inode: list[0]!.inode, size: st?.size ?? null,
        mode: st?.mode ?? null, exec: st ? (st.mode & 0o111) !== 0 : null, access: null, seals,
        sealNames: seals === null ? null : sealNames(seals), sealsError, mappings: list.map(publicMapping), rss: null, pss: null,
        mappedBy: 0, dev: list[0]!.dev,
      });
    }
    if (vmas.length === 0 || vmas[0]!.sealed !== null) {
      report.sealedRegions = vmas
        .filter((v) => v.sealed === true && !(v.inode !== 0 && claimed.has(`${v.dev}/${v.inode}`)))
        .map((v) => ({ ...publicMapping(v), path: v.path }));
    }
  }

  for (const m of found) {
    if (m.mappings === null) continue;
    const sum = (k: 'rss' | 'pss') => (m.mappings!.some((x) => x[k] === null) ? null : m.mappings!.reduce((n, x) => n + x[k]!, 0));
    m.rss = sum('rss');
    m.pss = sum('pss');
  }
  found.sort((a, b) => (a.fd ?? Infinity) - (b.fd ?? Infinity) || a.inode - b.inode);
  report.memfds = found.map(({ dev: _dev, ...rest }) => rest);
  return report;
}

function allPids(): number[] {
  return fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number).sort((a, b) => a - b);
}

/** True when a report holds a memfd or an mseal'd region. */
export function hasFindings(p: InspectProcess): boolean {
  return p.memfds.length > 0 || (p.sealedRegions?.length ?? 0) > 0;
}

/**
 * Lists the memfds, memfd_secret files and mseal'd regions of processes, from
 * /proc/<pid>/{fd,fdinfo,smaps} and fcntl(F_GET_SEALS) on a read-only re-open
 * of each memfd (Linux 3.17; `sl` in smaps needs 6.10, memfd_secret 5.14).
 * Reading another user's process needs CAP_SYS_PTRACE (ptrace access mode read).
 *
 * @param pid a process id or a list of them: one report each, in that order,
 *   including processes that are gone (`errors[0].code === 'ESRCH'`) or may not
 *   be inspected (`'EACCES'`). Omitted: every process in /proc, keeping those
 *   with findings and those that could not be inspected (not the ones that
 *   exited during the scan).
 * @throws ERR_INVALID_ARG_TYPE / ERR_OUT_OF_RANGE for a malformed pid; nothing
 *   else: procfs failures are reported in `errors`.
 * @example
 * ```ts
 * import { inspect } from 'memseal';
 * for (const m of inspect(process.pid)[0]!.memfds) console.log(m.fd, m.name, m.sealNames);
 * ```
 */
export function inspect(pid?: number | readonly number[]): InspectProcess[] {
  if (pid === undefined) {
    return countSharers(allPids().map(inspectOne).filter((p) =>
      hasFindings(p) || (!p.inspectable && p.errors.some((e) => e.code !== 'ESRCH'))));
  }
  const pids = typeof pid === 'number' ? [pid] : pid;
  if (!Array.isArray(pids)) validateInteger(pid, 'pid', 1, 0x7fffffff);
  pids.forEach((p, i) => validateInteger(p, typeof pid === 'number' ? 'pid' : `pid[${i}]`, 1, 0x7fffffff));
  return countSharers(pids.map(inspectOne));
}

/** Sets each memfd's `mappedBy`: how many processes of the report map its file (inode). */
function countSharers(processes: InspectProcess[]): InspectProcess[] {
  const mappers = new Map<number, Set<number>>();
  for (const p of processes) {
    for (const m of p.memfds) {
      if (m.mappings === null || m.mappings.length === 0) continue;
      let set = mappers.get(m.inode);
      if (set === undefined) mappers.set(m.inode, set = new Set());
      set.add(p.pid);
    }
  }
  for (const p of processes) for (const m of p.memfds) m.mappedBy = mappers.get(m.inode)?.size ?? 0;
  return processes;
}
