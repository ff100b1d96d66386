// The spawn protocol: spawnWithChannel() starts a child with one end of a
// socketPair() as an inherited descriptor named in MEMSEAL_CHANNEL_FD, and
// Channel.fromParent() (./parent.ts keeps the claim) takes it in the child.
import { spawn, type ChildProcess, type SpawnOptions, type StdioOptions } from 'node:child_process';
import { native } from '../kernel/binding';
import { Channel, newChannel } from './channel';
import { CHANNEL_FD_ENV } from './parent';
import { type ChannelOptions, closeQuietly } from './channel-util';
import { invalidArgType, systemError } from '../kernel/errors';
import { validateObject, validateString } from '../kernel/validate';

export { CHANNEL_FD_ENV };

export interface SpawnWithChannelOptions extends SpawnOptions {
  /** Options for the parent's end. */
  channel?: ChannelOptions;
}

/**
 * child_process.spawn() with one end of a socketPair() inherited by the child
 * as the next descriptor after its stdio (3 by default) and named in its
 * environment (MEMSEAL_CHANNEL_FD); the child calls `Channel.fromParent()`.
 * The parent's copy of the child's end is closed, so the channel closes when
 * the child exits.
 * @example
 * ```ts
 * import { Channel, spawnWithChannel } from 'memseal';
 * const { child, channel } = spawnWithChannel(process.execPath, ['worker.js'], { stdio: 'inherit' });
 * await channel.send('hello');
 * // worker.js: const ch = Channel.fromParent(); const m = await ch.receive();
 * ```
 */
export function spawnWithChannel(command: string, args: readonly string[] = [], options: SpawnWithChannelOptions = {}):
  { child: ChildProcess; channel: Channel } {
  validateString(command, 'command');
  if (!Array.isArray(args)) throw invalidArgType('args', 'an array of strings', args);
  validateObject(options as unknown, 'options');
  const { channel: channelOptions, ...spawnOptions } = options;
  if (channelOptions !== undefined) validateObject(channelOptions, 'options.channel');
  const stdio = normalizeStdio(spawnOptions.stdio);
  const pair = native.socketpair();
  if (typeof pair === 'number') throw systemError(pair, 'socketpair');
  const [ours, theirs] = pair;
  // The child's end is blocking, as most programs expect of an inherited socket
  // (Channel.fromParent() makes it non-blocking again); ours stays non-blocking.
  const blocking = native.setBlocking(theirs);
  if (blocking < 0) {
    closeQuietly(ours);
    closeQuietly(theirs);
    throw systemError(blocking, 'fcntl', 'F_SETFL');
  }
  const index = stdio.length;
  stdio.push(theirs);
  let child: ChildProcess;
  let channel: Channel;
  try {
    channel = newChannel(ours, channelOptions);
  } catch (err) {
    closeQuietly(ours);
    closeQuietly(theirs);
    throw err;
  }
  try {
    child = spawn(command, args, {
      ...spawnOptions,
      stdio,
      env: { ...(spawnOptions.env ?? process.env), [CHANNEL_FD_ENV]: String(index) },
    });
  } catch (err) {
    channel.close();
    closeQuietly(theirs);
    throw err;
  }
  closeQuietly(theirs);
  return { child, channel };
}

// ---- helpers ----

type StdioEntry = Exclude<StdioOptions, string>[number];

function normalizeStdio(stdio: StdioOptions | undefined): StdioEntry[] {
  if (stdio === undefined) return ['pipe', 'pipe', 'pipe'];
  if (typeof stdio === 'string') return [stdio, stdio, stdio];
  if (!Array.isArray(stdio)) throw invalidArgType('options.stdio', 'a string or an array', stdio);
  const out: StdioEntry[] = [...stdio];
  while (out.length < 3) out.push(undefined);
  return out;
}
