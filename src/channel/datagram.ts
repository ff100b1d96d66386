// Datagrams with descriptors: one sendmsg(2) with SCM_RIGHTS on an
// unconnected AF_UNIX SOCK_DGRAM socket (unix(7)) to a path or abstract name —
// the shape of systemd-journald's native protocol — and a bound SOCK_DGRAM
// socket received through a Channel.
import { native } from '../kernel/binding';
import { type Channel, newChannel } from './channel';
import { type ChannelOptions, closeQuietly, MAX_FDS, MAX_PAYLOAD } from './channel-util';
import { openSocket, printable, sunPath } from './channel-server';
import { E, invalidArgType, outOfRange, systemError } from '../kernel/errors';
import { toBytes, validateFd, validateInteger, validateObject } from '../kernel/validate';

/**
 * Sends one datagram carrying `data` and `fds` to the SOCK_DGRAM socket bound
 * at `path` (a filesystem path or '\0name'): socket(2) + sendmsg(2) with
 * msg_name and SCM_RIGHTS, then close. No connection: nothing comes back.
 * While the receiver's queue is full (EAGAIN) it retries for up to 5 s.
 * @param data at most {@link MAX_PAYLOAD} bytes (a string is sent as UTF-8); may be empty
 * @param fds at most 253 open descriptors; the kernel duplicates them, the caller keeps its own
 * @rejects RangeError/TypeError for bad arguments (nothing sent); ENOENT (no such path),
 *   ECONNREFUSED (nobody bound there), EPROTOTYPE (not a datagram socket), EACCES/EPERM,
 *   EBADF (a descriptor is not open), EMSGSIZE (over the socket buffer), EAGAIN (still full after 5 s)
 */
export async function sendDatagram(path: string, data: Uint8Array | ArrayBufferView | string, fds: readonly number[] = []): Promise<void> {
  const addr = sunPath(path);
  const bytes = toBytes(data);
  if (bytes.byteLength > MAX_PAYLOAD) throw outOfRange('data.byteLength', `<= ${MAX_PAYLOAD} (MAX_PAYLOAD)`, bytes.byteLength);
  if (!Array.isArray(fds)) throw invalidArgType('fds', 'an array of file descriptors', fds);
  if (fds.length > MAX_FDS) throw outOfRange('fds.length', `<= ${MAX_FDS} (SCM_MAX_FD)`, fds.length);
  for (let i = 0; i < fds.length; i++) validateFd(fds[i], `fds[${i}]`);
  const fdArr = Int32Array.from(fds);
  const sock = openSocket('dgram');
  try {
    const deadline = Date.now() + 5000;
    for (let delay = 1; ; delay = Math.min(delay * 2, 100)) {
      const r = native.sendmsg(sock, bytes, fdArr, addr);
      if (r >= 0) return;
      if (r !== -E.EAGAIN || Date.now() > deadline) throw systemError(r, 'sendmsg', printable(path), datagramHint(r));
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  } finally {
    closeQuietly(sock);
  }
}

/**
 * A SOCK_DGRAM socket bound at `path` (filesystem path or '\0name'), as a
 * Channel of type 'dgram': each `receive()` is one datagram, with the
 * descriptors it carried (the same checks and `maxFds` bound as any channel).
 * An empty datagram is an empty message, not end-of-stream; there is no peer
 * (`peer` is not meaningful) and no hang-up. `send()` needs a connected socket,
 * so send with {@link sendDatagram}. `close()` does not remove a socket file:
 * unlink it yourself, or use an abstract name.
 * @rejects EADDRINUSE (path exists), EACCES, ENOENT (directory missing)
 */
export async function bindDatagram(path: string, options?: ChannelOptions): Promise<Channel> {
  const addr = sunPath(path);
  if (options !== undefined) validateObject(options, 'options');
  if (options?.maxFds !== undefined) validateInteger(options.maxFds, 'options.maxFds', 0, MAX_FDS);
  const fd = openSocket('dgram');
  const r = native.bind(fd, addr);
  if (r < 0) {
    closeQuietly(fd);
    throw systemError(r, 'bind', printable(path), r === -E.EADDRINUSE ? 'the path or abstract name is taken' : undefined);
  }
  return newChannel(fd, options);
}

function datagramHint(r: number): string | undefined {
  if (r === -E.ENOENT) return 'no socket at this path';
  if (r === -E.ECONNREFUSED) return 'nobody is bound there (a stale socket file, or an abstract name nobody holds)';
  if (r === -E.EPROTOTYPE) return 'the socket there is not a datagram socket';
  if (r === -E.EBADF) return 'a descriptor in fds is not open';
  if (r === -E.EAGAIN) return "the receiver's queue stayed full for 5 s";
  if (r === -E.EMSGSIZE) return 'the datagram is larger than the socket send buffer';
  return undefined;
}
