// The options, events and reports of the snapshot family (publisher.ts, reader.ts):
// what a reader looks like from the publisher's side, why it left, what publish() resolves with.
import { type PeerCredentials } from '../channel/channel-util';
import { invalidArgValue } from '../kernel/errors';
import { type EmitterEvents } from '../util/events';
import { validateInteger, validateObject, validateString } from '../kernel/validate';
import { type VerifyOptions } from '../sealed/verify';

export interface SnapshotPublisherOptions {
  /** The memfd name of versions made from bytes (memfd_create(2)), shown in /proc/<pid>/maps. Default 'snapshot'. */
  name?: string;
  /**
   * How long (ms) a reader may keep a version in flight without taking it
   * before it is detached ('slow'). While it waits it pins at most that one
   * version. Default 10000; `Infinity` never detaches.
   */
  slowTimeout?: number;
}

/**
 * Why a reader left, in the words a Publisher uses for its subscribers: it hung up ('closed'), did not
 * take its version within slowTimeout ('slow'), sent what the protocol forbids ('protocol'), sending to
 * it failed ('error'), or the publisher closed ('publisher-closed').
 */
export type SnapshotDetachReason = 'closed' | 'slow' | 'protocol' | 'error' | 'publisher-closed';

/** One attached reader, as events and `publisher.readers` report it. */
export interface SnapshotReaderInfo {
  /** Attach order, from 1. */
  readonly id: number;
  /** The reader's process id (SO_PEERCRED). */
  readonly pid: number;
  /** The reader process's credentials (SO_PEERCRED of the channel). */
  readonly peer: PeerCredentials;
  /** The newest version it has taken (mapped): 0 before the first. */
  readonly version: number;
  /** The version sent to it and not yet taken, or 0: never more than one. */
  readonly inFlight: number;
}

/** What `publish()` resolves with: how the version fared with the readers attached when it was published. */
export interface Delivery {
  readonly version: number;
  /** Readers that took this version (or a newer one: a busy reader skips to the newest). */
  readonly delivered: number;
  /** Readers that left before taking it. */
  readonly dropped: number;
  /** Why each of those left. */
  readonly drops: readonly { readonly reader: SnapshotReaderInfo; readonly reason: SnapshotDetachReason }[];
}

/** Events of {@link SnapshotPublisher}: a misspelt name or a listener of the wrong shape fails to compile. */
export interface SnapshotPublisherEvents extends EmitterEvents {
  /** A reader was attached (it is sent the latest version at once). */
  attach: [reader: SnapshotReaderInfo];
  /** A reader took (mapped) `version`. */
  taken: [reader: SnapshotReaderInfo, version: number];
  /** A reader left, and why. */
  detach: [reader: SnapshotReaderInfo, reason: SnapshotDetachReason];
}

export interface SnapshotReaderOptions extends VerifyOptions {
  /** Largest snapshot accepted, in bytes (as receiveBuffer's maxSize). Default `DEFAULT_MAX_SIZE` (1 GiB), as every receiver's. */
  maxSize?: number;
}

/** @internal SnapshotPublisherOptions, validated, with their defaults. */
export function snapshotPublisherOptions(options: SnapshotPublisherOptions = {}): Required<SnapshotPublisherOptions> {
  validateObject(options, 'options');
  const name = options.name ?? 'snapshot';
  validateString(name, 'options.name');
  if (name.includes('\0')) throw invalidArgValue('options.name', 'must be a string without null bytes', name);
  const slowTimeout = options.slowTimeout ?? 10_000;
  if (slowTimeout !== Infinity) validateInteger(slowTimeout, 'options.slowTimeout', 0, 0x7fffffff);
  return { name, slowTimeout };
}
