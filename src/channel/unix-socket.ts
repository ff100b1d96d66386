// AF_UNIX addresses and the calls every channel kind shares: socket(2) of a
// type, sun_path encoding of a path or abstract name (unix(7)), bind(2) with a
// mode, the `allow`/`mode` options, the retry of a call that meets a full
// queue (EAGAIN), and the hints for reaching an address. Used by listen(),
// connect() (channel-server.ts) and the datagram calls (datagram.ts).
import fs from 'node:fs';
import { native } from '../kernel/binding';
import { E, invalidArgType, invalidArgValue, outOfRange, systemError } from '../kernel/errors';
import { validateInteger, validateString } from '../kernel/validate';
import { type PeerCredentials, type SocketType, sockTypeNumber } from './channel-util';

const K = native.channelConstants;

/** How long connect() and sendDatagram() retry while the other side's queue is full (EAGAIN). */
const FULL_RETRY_MS = 5000;

/**
 * @internal Calls `attempt` (a syscall answering a result or -errno) again while it
 * answers -EAGAIN, backing off from 1 ms to 100 ms, for up to 5 s; returns its last answer.
 */
export async function retryWhileFull(attempt: () => number): Promise<number> {
  const deadline = Date.now() + FULL_RETRY_MS;
  for (let delay = 1; ; delay = Math.min(delay * 2, 100)) {
    const r = attempt();
    if (r !== -E.EAGAIN || Date.now() > deadline) return r;
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

/**
 * @internal The hint for a failure to reach an address: connect(2) to a `listener`
 * or sendmsg(2) of a `datagram`.
 */
export function addressHint(r: number, to: 'listener' | 'datagram'): string | undefined {
  const listener = to === 'listener';
  if (r === -E.ENOENT) return 'no socket at this path';
  if (r === -E.ECONNREFUSED) {
    return `nobody ${listener ? 'listens' : 'is bound'} there (a stale socket file, or an abstract name nobody holds)`;
  }
  if (r === -E.EPROTOTYPE) {
    return listener ? 'the listener is of another socket type (options.type: seqpacket or stream)' : 'the socket there is not a datagram socket';
  }
  if (r === -E.EAGAIN) return listener ? "the listener's backlog stayed full for 5 s" : "the receiver's queue stayed full for 5 s";
  if (r === -E.EBADF && !listener) return 'a descriptor in fds is not open';
  if (r === -E.EMSGSIZE && !listener) return 'the datagram is larger than the socket send buffer';
  return undefined;
}

/** @internal socket(2): AF_UNIX, non-blocking, close-on-exec. */
export function openSocket(type: SocketType): number {
  const fd = native.socket(sockTypeNumber(type));
  if (fd < 0) throw systemError(fd, 'socket', `AF_UNIX, SOCK_${type.toUpperCase()}`);
  return fd;
}

/**
 * @internal An address as the caller may write it, as the kernel takes it: '@name' is the abstract name
 * '\0name' (the spelling memseal prints, and one that survives environment variables and argv, which
 * cannot carry a NUL). A file whose name starts with '@' is written './@name'.
 */
export function socketAddress(path: string): string {
  validateString(path, 'path');
  return path.startsWith('@') ? `\0${path.slice(1)}` : path;
}

/** @internal sun_path bytes: a filesystem path plus its NUL, or an abstract name as given. */
export function sunPath(path: string): Buffer {
  validateString(path, 'path');
  const abstract = path.startsWith('\0');
  if (path.length === 0 || path === '\0') throw outOfRange('path', 'a non-empty path or abstract name', path);
  if (!abstract && path.includes('\0')) throw outOfRange('path', 'a path without NUL characters', printable(path));
  const bytes = Buffer.from(abstract ? path : `${path}\0`, 'utf8');
  if (bytes.length > K.UNIX_PATH_MAX) {
    throw outOfRange('path', `at most ${K.UNIX_PATH_MAX - (abstract ? 0 : 1)} bytes (sun_path)`, Buffer.byteLength(path),
      'use a shorter path (e.g. a relative one) or an abstract name');
  }
  return bytes;
}

/** @internal How a path appears in messages: an abstract name as '@name'. */
export function printable(path: string): string {
  return path.startsWith('\0') ? `@${path.slice(1)}` : path;
}

/**
 * @internal Validates the `allow` and `mode` options of listen() and bindDatagram()
 * and returns the `allow` in force (the default one when absent).
 */
export function accessOptions(path: string, allowOption: unknown, mode: unknown): (peer: PeerCredentials) => boolean {
  if (allowOption !== undefined && typeof allowOption !== 'function') throw invalidArgType('options.allow', 'a function', allowOption);
  if (mode !== undefined) {
    validateInteger(mode, 'options.mode', 0, 0o777);
    if (path.startsWith('\0')) throw invalidArgValue('options.mode', 'is for filesystem sockets; an abstract name has no permissions (use allow)', mode);
  }
  return (allowOption as ((peer: PeerCredentials) => boolean) | undefined) ?? sameUserOrRoot(process.geteuid?.() ?? 0);
}

/**
 * The default ListenOptions.allow: the server's own user, and root — but never
 * a peer that reads as the overflow uid or gid. Across user namespaces
 * SO_PEERCRED reports an id with no mapping in the server's namespace as the
 * overflow id (/proc/sys/kernel/overflowuid, 65534) and a pid outside its pid
 * namespace as 0: a server running as `nobody` (or unmapped itself) would
 * otherwise admit every stranger whose id does not map, host root included.
 */
function sameUserOrRoot(uid: number): (peer: PeerCredentials) => boolean {
  const overflowUid = overflowId('uid');
  const overflowGid = overflowId('gid');
  return (peer) => peer.uid !== overflowUid && peer.gid !== overflowGid && (peer.uid === uid || peer.uid === 0);
}

/** /proc/sys/kernel/overflow{uid,gid}: what an unmapped id reads as (65534 unless changed). */
function overflowId(kind: 'uid' | 'gid'): number {
  try {
    const n = Number(fs.readFileSync(`/proc/sys/kernel/overflow${kind}`, 'latin1').trim());
    return Number.isInteger(n) ? n : 65534;
  } catch {
    return 65534;
  }
}

/**
 * bind(2), with `mode` for a filesystem socket: fchmod(2) on the socket before
 * bind makes the file appear with at most those bits (the kernel applies the
 * umask on top of them), then chmod(2) sets exactly them. At no moment is the
 * file more open than asked; umask(2), process-wide, is never touched.
 * @internal also bindDatagram()'s
 */
export function bindMode(fd: number, addr: Buffer, path: string, mode: number | undefined): void {
  if (mode !== undefined) fs.fchmodSync(fd, mode);
  const r = native.bind(fd, addr);
  if (r < 0) {
    throw systemError(r, 'bind', printable(path), r === -E.EADDRINUSE
      ? (path.startsWith('\0') ? 'another socket has this abstract name' : 'the path exists: another server, or a stale socket file to remove')
      : undefined);
  }
  if (mode === undefined) return;
  try {
    fs.chmodSync(path, mode);
  } catch (err) {
    fs.rmSync(path, { force: true });
    throw err;
  }
}
