// The options and events of a Publisher (publisher.ts): PublisherOptions and
// their validation with defaults, the capacity rule that sizes the pool from
// them, what a subscriber looks like from the publisher's side
// (SubscriberInfo) and why it left (DetachReason).
import { type PeerCredentials } from '../channel/channel-util';
import { invalidArgValue, MemsealError } from '../kernel/errors';
import { type EmitterEvents } from '../util/events';
import { validateInteger, validateObject, validateString } from '../kernel/validate';
import * as P from './protocol';

/**
 * What a publisher does for a subscriber at its quota (`maxHeld`):
 * 'latest' skips it (it gets the newest sample when it releases one; its
 * `missed` counts the rest); 'all' makes `loan()` wait for it (lossless, at
 * the slowest subscriber's pace), detaching it after `slowTimeout` ms.
 */
export type Delivery = 'latest' | 'all';
/** {@link Delivery} under the name the package exports (SnapshotPublisher has a `Delivery` of its own). */
export type PoolDelivery = Delivery;

/** @deprecated since 0.2: use `delivery: 'all'` (and `slowTimeout: 0` for 'detach'). */
export type SlowPolicy = 'wait' | 'detach';

/** Defaults of PublisherOptions, in one place. */
export const PUBLISHER_DEFAULTS = Object.freeze({
  maxSubscribers: 8, maxHeld: 2, maxLoans: 1, delivery: 'latest' as Delivery, slowTimeout: 5000, idleTimeout: 10000,
});

export interface PublisherOptions {
  /** Bytes per slot: the largest sample. */
  slotSize: number;
  /**
   * Number of slots (1..65536). Default: derived, `maxSubscribers × maxHeld + maxLoans + 1` (the
   * newest sample, for subscribers that attach later). When given, it must cover
   * `maxSubscribers × maxHeld + maxLoans`; what is not given is derived from it
   * (maxHeld 1, then as many subscribers as fit).
   */
  slots?: number;
  /** The memfd's name (memfd_create(2)), shown in /proc/<pid>/maps and `memseal inspect`. Default 'memseal-pool'. */
  name?: string;
  /** Subscribers attached at once (detached ones count until they hang up); more are refused. Default 8. */
  maxSubscribers?: number;
  /**
   * Each subscriber's quota: samples it holds plus samples announced to it
   * and not yet received. Default 2. Declared in HELLO: a subscriber refuses
   * announcements past it.
   */
  maxHeld?: number;
  /** Loans the caller has out at once that `loan()` serves without waiting. Default 1. */
  maxLoans?: number;
  /** 'latest' (default): skip a subscriber at its quota to the newest sample. 'all': wait for it. */
  delivery?: Delivery;
  /** With `delivery: 'all'`: ms `loan()` waits for a subscriber before detaching it. Default 5000; `Infinity`: forever. */
  slowTimeout?: number;
  /**
   * A subscriber that says nothing for this long (ms) after HELLO, or that
   * sits at its quota releasing nothing, is let go. Runs while the publisher is idle too. Default 10000.
   */
  idleTimeout?: number;
  /** @deprecated since 0.2: `'wait'` is `delivery: 'all'`; `'detach'` is `delivery: 'all', slowTimeout: 0`. */
  onSlow?: SlowPolicy;
}

/** One subscriber, as events and `publisher.subscribers` report it. */
export interface SubscriberInfo {
  /** Attach order, from 1. */
  readonly id: number;
  /** The subscriber process's pid (SO_PEERCRED). */
  readonly pid: number;
  /** The subscriber process (SO_PEERCRED of the channel). */
  readonly peer: PeerCredentials;
  /** Its quota use: samples it holds plus samples announced to it and not yet received. */
  readonly held: number;
  /** Its quota (`maxHeld`). */
  readonly quota: number;
  /** Samples it was skipped for (delivery 'latest'). */
  readonly missed: number;
  /** 'attached', or 'detached' (told to go; its slots stay reserved until it releases them or hangs up). */
  readonly state: 'attached' | 'detached';
  /** The slots it holds. */
  readonly slots: readonly number[];
}

/**
 * Why a subscriber left: it hung up ('closed'), was too slow ('slow'), broke
 * the protocol, sending to it failed ('error'), said nothing after HELLO
 * ('idle'), or the publisher closed.
 */
export type DetachReason = 'closed' | 'slow' | 'protocol' | 'error' | 'idle' | 'publisher-closed';

/** Why a subscriber is slow: it was skipped ('latest'), or `loan()` waits for it ('all'). */
export type SlowReason = 'skipped' | 'waited';

/** Events of {@link Publisher}: a misspelt name or a listener of the wrong shape fails to compile. */
export interface PublisherEvents extends EmitterEvents {
  attach: [info: SubscriberInfo];
  detach: [info: SubscriberInfo, reason: DetachReason];
  /** A subscriber at its quota: skipped for a new sample (once per run of skips), or waited for by `loan()`. */
  slow: [info: SubscriberInfo, reason: SlowReason];
}

/** @internal PublisherOptions, validated, with their defaults. */
export type ResolvedOptions = Required<Omit<PublisherOptions, 'onSlow'>>;

/** The slots the options need: every subscriber's quota, the caller's loans, the newest sample. */
export function requiredSlots(maxSubscribers: number, maxHeld: number, maxLoans: number): number {
  return maxSubscribers * maxHeld + maxLoans + 1;
}

/** @internal PublisherOptions, validated, with their defaults; throws when a given `slots` cannot cover them. */
export function publisherOptions(options: PublisherOptions): ResolvedOptions {
  validateObject(options, 'options');
  const D = PUBLISHER_DEFAULTS;
  const { slotSize } = options;
  validateInteger(slotSize, 'options.slotSize', 1, Math.floor((Number.MAX_SAFE_INTEGER - 1) / (P.MAX_SLOTS + 1)));
  const name = options.name ?? 'memseal-pool';
  validateString(name, 'options.name');
  if (name.includes('\0')) throw invalidArgValue('options.name', 'must be a string without null bytes', name);
  if (options.slots !== undefined) validateInteger(options.slots, 'options.slots', 1, P.MAX_SLOTS);
  const maxLoans = options.maxLoans ?? D.maxLoans;
  validateInteger(maxLoans, 'options.maxLoans', 1, P.MAX_SLOTS);
  if (options.maxHeld !== undefined) validateInteger(options.maxHeld, 'options.maxHeld', 1, P.MAX_SLOTS);
  if (options.maxSubscribers !== undefined) validateInteger(options.maxSubscribers, 'options.maxSubscribers', 1, P.MAX_SLOTS);
  const { onSlow } = options;
  if (onSlow !== undefined && onSlow !== 'wait' && onSlow !== 'detach') {
    throw invalidArgValue('options.onSlow', "must be 'wait' or 'detach' (deprecated: use options.delivery)", onSlow);
  }
  const delivery = options.delivery ?? (onSlow === undefined ? D.delivery : 'all');
  if (delivery !== 'latest' && delivery !== 'all') throw invalidArgValue('options.delivery', "must be 'latest' or 'all'", delivery);
  const slowTimeout = options.slowTimeout ?? (onSlow === 'detach' ? 0 : D.slowTimeout);
  if (slowTimeout !== Infinity) validateInteger(slowTimeout, 'options.slowTimeout', 0, 0x7fffffff);
  const idleTimeout = options.idleTimeout ?? D.idleTimeout;
  if (idleTimeout !== Infinity) validateInteger(idleTimeout, 'options.idleTimeout', 1, 0x7fffffff);

  let { slots, maxHeld, maxSubscribers } = options;
  if (slots === undefined) {
    maxHeld ??= D.maxHeld;
    maxSubscribers ??= D.maxSubscribers;
    slots = requiredSlots(maxSubscribers, maxHeld, maxLoans);
    if (slots > P.MAX_SLOTS) {
      throw new RangeError(`Publisher.create(): maxSubscribers ${maxSubscribers} × maxHeld ${maxHeld} + maxLoans ${maxLoans} + 1 ` +
        `needs ${slots} slots, over ${P.MAX_SLOTS}`);
    }
  } else {
    // derive what is missing from the slots given: one sample each for as many seats as fit, unless told otherwise.
    // The newest sample needs no slot of its own here: a loan takes its slot back when no subscriber holds it.
    const room = slots - maxLoans;
    maxHeld ??= maxSubscribers === undefined ? 1 : Math.max(1, Math.floor(room / maxSubscribers));
    maxSubscribers ??= Math.floor(room / maxHeld);
    const seats = Math.max(maxSubscribers, 1);
    const need = seats * maxHeld + maxLoans;
    if (maxSubscribers < 1 || need > slots) {
      throw new MemsealError('ERR_MEMSEAL_SIZE', `Publisher.create(): ${slots} slots cannot hold maxSubscribers ${seats} × ` +
        `maxHeld ${maxHeld} + maxLoans ${maxLoans} = ${need}: ${need - slots} slot(s) missing`,
      { hint: 'leave options.slots out to have it derived (one more for the newest sample), or lower maxSubscribers / maxHeld / maxLoans' });
    }
  }
  return { slots, slotSize, name, maxSubscribers, maxHeld, maxLoans, delivery, slowTimeout, idleTimeout };
}
