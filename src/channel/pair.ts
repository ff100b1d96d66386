// socketPair(): two connected Channels in this process (channel.ts).
import { native } from '../kernel/binding';
import { systemError } from '../kernel/errors';
import { type Channel, newChannel } from './channel';
import { type ChannelOptions, channelOptions, closeQuietly } from './channel-util';

/**
 * A connected pair: socketpair(2) (AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK |
 * SOCK_CLOEXEC; Linux 2.6.27). Handy in one process, or to hand one end to a
 * child yourself.
 * @throws EMFILE/ENFILE
 */
export function socketPair(options?: ChannelOptions): [Channel, Channel] {
  if (options !== undefined) channelOptions(options);
  const r = native.socketpair();
  if (typeof r === 'number') throw systemError(r, 'socketpair');
  let a: Channel | undefined;
  try {
    a = newChannel(r[0], options);
    return [a, newChannel(r[1], options)];
  } catch (err) {
    if (a === undefined) closeQuietly(r[0]);
    else a.close();
    closeQuietly(r[1]);
    throw err;
  }
}
