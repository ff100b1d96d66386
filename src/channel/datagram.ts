// Datagrams with descriptors: one sendmsg(2) with SCM_RIGHTS on an
// unconnected AF_UNIX SOCK_DGRAM socket (unix(7)) to a path or abstract name —
// the shape of systemd-journald's native protocol — and a bound SOCK_DGRAM
// socket received through a Channel.
import { native } from '../kernel/binding';
import { type Channel, newChannel } from './channel';
import { type ChannelOptions, closeQuietly, MAX_FDS, type PeerCredentials, sendBytes } from './channel-util';
import { accessOptions, addressHint, bindMode, openSocket, printable, retryWhileFull, socketAddress, sunPath } from './unix-socket';
import { check, systemError } from '../kernel/errors';
import { validateInteger, validateObject } from '../kernel/validate';
import { dropIncoming, EOF, Message, RESET, screenIncoming, senderOf } from './message';

/** Options of {@link bindDatagram}: a channel's, and who may send. */
export interface DatagramOptions extends ChannelOptions {
  /**
   * Whose datagrams to take, decided from each sender's credentials
   * (SCM_CREDENTIALS: SO_PASSCRED is on): return true to accept. A datagram
   * from anyone else is dropped (its descriptors closed), counted in
   * `channel.dropped` and reported by the `'dropped'` event — never `'error'`.
   * Default: as listen()'s — the own effective uid and root, never the
   * overflow uid or gid (an id with no mapping in this user namespace).
   */
  allow?: (sender: PeerCredentials) => boolean;
  /** Permission bits of a filesystem socket, as listen()'s `mode` (sendto(2) needs write permission). */
  mode?: number;
}

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
  path = socketAddress(path);
  const addr = sunPath(path);
  const bytes = sendBytes(data, fds, 'dgram', 'MAX_PAYLOAD');
  const fdArr = Int32Array.from(fds);
  const sock = openSocket('dgram');
  try {
    const r = await retryWhileFull(() => native.sendmsg(sock, bytes, fdArr, addr));
    if (r < 0) throw systemError(r, 'sendmsg', printable(path), addressHint(r, 'datagram'));
  } finally {
    closeQuietly(sock);
  }
}

/**
 * A SOCK_DGRAM socket bound at `path` (filesystem path or '\0name'), as a
 * Channel of type 'dgram': each `receive()` is one datagram, with the
 * descriptors it carried (the same checks and `maxFds` bound as any channel)
 * and its sender (`message.sender`, SCM_CREDENTIALS). Anyone who can reach
 * the name can send to it (an abstract name: every local user), so what a
 * stranger sends is never the application's error: a datagram from a sender
 * `allow` refuses, one over MAX_PAYLOAD, or one with more than `maxFds`
 * descriptors is dropped (descriptors closed), counted in `channel.dropped`
 * and reported by the non-fatal `'dropped'` event; `receive()` waits on for
 * the next good one. An empty datagram is an empty message, not
 * end-of-stream; there is no peer (`peer` is not meaningful) and no hang-up.
 * `send()` needs a connected socket, so send with {@link sendDatagram}.
 * `close()` does not remove a socket file: unlink it yourself, or use an
 * abstract name.
 * @rejects EADDRINUSE (path exists), EACCES, ENOENT (directory missing);
 *   TypeError/RangeError for bad options (`mode` with an abstract name: ERR_INVALID_ARG_VALUE)
 */
export async function bindDatagram(path: string, options: DatagramOptions = {}): Promise<Channel> {
  path = socketAddress(path);
  const addr = sunPath(path);
  validateObject(options, 'options');
  const { allow: allowOption, mode, ...channelOptions } = options;
  if (channelOptions.maxFds !== undefined) validateInteger(channelOptions.maxFds, 'options.maxFds', 0, MAX_FDS);
  const allow = accessOptions(path, allowOption, mode);
  const fd = openSocket('dgram');
  try {
    check(native.passCred(fd), 'setsockopt', 'SO_PASSCRED');
    bindMode(fd, addr, path, mode as number | undefined);
  } catch (err) {
    closeQuietly(fd);
    throw err;
  }
  const channel = newChannel(fd, channelOptions);
  channel[screenIncoming] = (m) => {
    if (m === null || m === EOF || m === RESET) return m;
    const sender = m instanceof Message ? m.sender : senderOf(m);
    if (m instanceof Message) {
      let allowed = false;
      let error: Error | undefined;
      try {
        allowed = sender !== null && allow(sender) === true;
      } catch (err) {
        error = err instanceof Error ? err : new Error(String(err));  // a throwing filter admits nobody
      }
      if (allowed) return m;
      m.closeFds();
      channel[dropIncoming](error === undefined ? { reason: 'refused', sender } : { reason: 'refused', sender, error });
    } else {
      channel[dropIncoming]({ reason: 'invalid', sender, error: m });
    }
    return null;
  };
  return channel;
}
