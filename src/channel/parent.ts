// The child's side of the spawn protocol: the descriptor number spawnWithChannel()
// put in MEMSEAL_CHANNEL_FD, and the one channel this process claims from it
// (Channel.fromParent() in ./channel.ts calls claimParentChannel(); this module
// does not import the class, so the two form no cycle).
import { closedError } from './channel-util';
import { MemsealError } from '../kernel/errors';

/** The environment variable through which {@link spawnWithChannel} tells the child its socket's descriptor number. */
export const CHANNEL_FD_ENV = 'MEMSEAL_CHANNEL_FD';

/** The channel this process claimed, once claimed. */
let parentChannel: { readonly closed: boolean } | null = null;

/** Channel.fromParent(): adopts the inherited socket once (with `adopt`), then returns the same channel. */
export function claimParentChannel<T extends { readonly closed: boolean }>(adopt: (fd: number) => T): T {
  if (parentChannel !== null) {
    if (parentChannel.closed) throw closedError('fromParent');
    return parentChannel as T;
  }
  const raw = process.env[CHANNEL_FD_ENV];
  const fd = raw !== undefined && /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(fd)) {
    throw new MemsealError('ERR_MEMSEAL_NO_CHANNEL', `no channel from a parent: ${CHANNEL_FD_ENV} is ${raw === undefined ? 'not set' : `'${raw}'`}`,
      { hint: 'start this process with spawnWithChannel()' });
  }
  const channel = adopt(fd);
  parentChannel = channel;
  delete process.env[CHANNEL_FD_ENV];
  return channel;
}
