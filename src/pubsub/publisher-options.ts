// The options and events of a Publisher (publisher.ts): PublisherOptions and
// their validation with defaults, what a subscriber looks like from the
// publisher's side (SubscriberInfo) and why it left (DetachReason).
import { type PeerCredentials } from '../channel/channel-util';
import { invalidArgValue } from '../kernel/errors';
import { type EmitterEvents } from '../util/events';
import { validateInteger, validateObject, validateString } from '../kernel/validate';
import * as P from './protocol';

/** What a publisher does about a subscriber that holds `maxHeld` samples. */
export type SlowPolicy = 'wait' | 'detach';

export interface PublisherOptions {
  /** Number of slots (1..65536). */
  slots: number;
  /** Bytes per slot: the largest sample. */
  slotSize: number;
  /** The memfd's name (memfd_create(2)), shown in /proc/<pid>/maps and `memseal inspect`. Default 'memseal-pool'. */
  name?: string;
  /**
   * Most samples one subscriber may hold (received or queued, not yet
   * released). Default `max(1, slots - 1)`. While any subscriber holds this
   * many, `loan()` does not hand out a slot (see `onSlow`).
   */
  maxHeld?: number;
  /**
   * 'wait' (default): `loan()` waits for the subscriber to release; after
   * `slowTimeout` ms of waiting it is detached. 'detach': it is detached at once.
   */
  onSlow?: SlowPolicy;
  /**
   * With `onSlow: 'wait'`: how long (ms) `loan()` may wait before the
   * subscribers in the way are detached. Default 5000; `Infinity` waits forever.
   */
  slowTimeout?: number;
}

/** One attached subscriber, as events and `publisher.subscriberList` report it. */
export interface SubscriberInfo {
  /** Attach order, from 1. */
  readonly id: number;
  /** The subscriber process (SO_PEERCRED of the channel). */
  readonly peer: PeerCredentials;
  /** Samples it holds now. */
  readonly held: number;
}

/** Why a subscriber left: it hung up, it was too slow, it broke the protocol, sending to it failed, or the publisher closed. */
export type DetachReason = 'closed' | 'slow' | 'protocol' | 'error' | 'publisher-closed';

/** Events of {@link Publisher}: a misspelt name or a listener of the wrong shape fails to compile. */
export interface PublisherEvents extends EmitterEvents {
  attach: [info: SubscriberInfo];
  detach: [info: SubscriberInfo, reason: DetachReason];
}

/** @internal PublisherOptions, validated, with their defaults. */
export function publisherOptions(options: PublisherOptions): Required<PublisherOptions> {
  validateObject(options, 'options');
  const { slots, slotSize } = options;
  validateInteger(slots, 'options.slots', 1, P.MAX_SLOTS);
  validateInteger(slotSize, 'options.slotSize', 1, Math.floor((Number.MAX_SAFE_INTEGER - 1) / (P.MAX_SLOTS + 1)));
  const name = options.name ?? 'memseal-pool';
  validateString(name, 'options.name');
  if (name.includes('\0')) throw invalidArgValue('options.name', 'must be a string without null bytes', name);
  const maxHeld = options.maxHeld ?? Math.max(1, slots - 1);
  validateInteger(maxHeld, 'options.maxHeld', 1, slots);
  const onSlow = options.onSlow ?? 'wait';
  if (onSlow !== 'wait' && onSlow !== 'detach') throw invalidArgValue('options.onSlow', "must be 'wait' or 'detach'", onSlow);
  const slowTimeout = options.slowTimeout ?? 5000;
  if (slowTimeout !== Infinity) validateInteger(slowTimeout, 'options.slowTimeout', 0, 0x7fffffff);
  return { slots, slotSize, name, maxHeld, onSlow, slowTimeout };
}
