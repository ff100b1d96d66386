// The send queue of a Channel (channel.ts): the messages sendmsg(2) could not
// take yet, each owning a copy of its payload and a duplicate of each of its
// descriptors (fcntl(F_DUPFD_CLOEXEC)), bounded in bytes and descriptors
// (ERR_MEMSEAL_QUEUE_FULL), sent in order when the socket becomes writable.
// The Channel decides when to flush and what to emit; this file owns the
// bookkeeping, and imports nothing of the Channel.
import { native } from '../kernel/binding';
import { closeQuietly, NO_FDS, QUEUED_MESSAGE_OVERHEAD } from './channel-util';
import { E, MemsealError, systemError, type SystemError } from '../kernel/errors';
import { Queue } from '../util/queue';

// Messages per call into the addon when flushing, and where it writes each one's result.
const FLUSH_BATCH = 64;
const results = new Int32Array(FLUSH_BATCH);

interface SendJob {
  data: Uint8Array;
  fds: Int32Array;        // duplicates the job owns (F_DUPFD_CLOEXEC), closed when it settles
  cost: number;           // what it counts in queuedBytes
  resolve: () => void;
  reject: (err: Error) => void;
}

/** @internal A Channel's send queue (its figures are the Channel's queuedBytes, queuedFds, pendingSends). */
export class SendQueue {
  #jobs = new Queue<SendJob>();
  #bytes = 0;
  #fds = 0;
  #drained: (() => void)[] = [];  // asyncDispose waiting for the send queue to empty

  /** Messages waiting. */
  get length(): number { return this.#jobs.length; }
  /** Payloads plus QUEUED_MESSAGE_OVERHEAD per message. */
  get bytes(): number { return this.#bytes; }
  /** Descriptors held (our duplicates). */
  get fds(): number { return this.#fds; }

  /**
   * Queues what sendmsg did not take of `bytes` (`sent` bytes of it went: a stream took a
   * prefix, and the descriptors with it) within the bounds, or throws ERR_MEMSEAL_QUEUE_FULL
   * taking nothing. `data` is what send() was given: a string's bytes are ours already.
   */
  push(data: Uint8Array | ArrayBufferView | string, bytes: Buffer, fdArr: Int32Array, sent: number,
    maxBytes: number, maxFds: number): Promise<void> {
    const cost = bytes.byteLength + QUEUED_MESSAGE_OVERHEAD;
    // A stream that took a prefix took the descriptors with it; the rest must follow whatever the bound.
    const owned = sent > 0 ? NO_FDS : fdArr;
    if (sent === 0 && (this.#bytes + cost > maxBytes || this.#fds + owned.length > maxFds)) {
      throw queueFullError({ queuedBytes: this.#bytes, queuedFds: this.#fds, maxQueuedBytes: maxBytes, maxQueuedFds: maxFds },
        cost, owned.length);
    }
    // A queued message must never refer to a descriptor number it does not own: the caller may
    // close its descriptor as soon as send() returns and the number may then name another file.
    dupAll(owned);
    // the caller may reuse its buffer once send() returns; a string's bytes are ours already
    const rest = bytes.subarray(sent);
    const copy = typeof data === 'string' ? rest : Buffer.from(rest);
    const p = new Promise<void>((resolve, reject) => {
      this.#jobs.push({ data: copy, fds: owned, cost, resolve, reject });
    });
    this.#bytes += cost;
    this.#fds += owned.length;
    return p;
  }

  /**
   * Sends queued messages on `socket` in order until the kernel pushes back (EAGAIN) or none is
   * left, in one call into the addon per FLUSH_BATCH messages (sendBatch, which also closes the
   * duplicates of each message it is done with). Returns true when this emptied the queue (and
   * wakes drained() waiters).
   */
  flush(socket: number): boolean {
    const had = this.#jobs.length > 0;
    while (this.#jobs.length > 0) {
      const jobs = this.#jobs.peekFirst(FLUSH_BATCH);
      const done = native.sendBatch(socket, jobs.map((j) => j.data), jobs.map((j) => j.fds), results);
      let partial = false;
      for (let i = 0; i < done; i++) {
        const job = jobs[i]!;
        const r = results[i]!;
        this.#fds -= job.fds.length;
        job.fds = NO_FDS;  // closed by sendBatch: the kernel holds its own references to what went
        if (r >= 0 && r < job.data.byteLength) {
          job.data = job.data.subarray(r);  // a stream took a prefix and the descriptors with it: the rest goes next, alone
          partial = true;  // the kernel took what it could: the rest waits for the socket
          continue;
        }
        this.#jobs.shift();
        this.#dequeued(job);
        if (r >= 0) job.resolve();
        else job.reject(sendError(r));
      }
      if (partial || (done < jobs.length && results[done] === -E.EAGAIN)) break;
    }
    const drained = had && this.#jobs.length === 0;
    if (drained) for (const finish of this.#drained.splice(0)) finish();
    return drained;
  }

  /** Rejects every queued send with `error()` and wakes drained() waiters; returns how many there were. */
  failAll(error: () => Error): number {
    const jobs = this.#jobs.drain();
    for (const job of jobs) {
      this.#dequeued(job);
      job.reject(error());
    }
    for (const done of this.#drained.splice(0)) done();
    return jobs.length;
  }

  /** Settles when the queue has emptied (flush() sent everything, or failAll()). */
  drained(): Promise<void> {
    return new Promise<void>((resolve) => this.#drained.push(resolve));
  }

  /** A job left the queue: its duplicates are closed (the kernel holds its own references once sent). */
  #dequeued(job: SendJob): void {
    for (const fd of job.fds) closeQuietly(fd);
    this.#bytes -= job.cost;
    this.#fds -= job.fds.length;
  }
}

/** What the send queue holds and may hold, as ERR_MEMSEAL_QUEUE_FULL reports it. */
interface QueueFigures {
  readonly queuedBytes: number;
  readonly queuedFds: number;
  readonly maxQueuedBytes: number;
  readonly maxQueuedFds: number;
}

/** Replaces each descriptor in `fds` by a close-on-exec duplicate; all or none (then it throws). */
function dupAll(fds: Int32Array): void {
  for (let i = 0; i < fds.length; i++) {
    const dup = native.dup(fds[i]!);
    if (dup < 0) {
      for (let k = 0; k < i; k++) closeQuietly(fds[k]!);
      throw dup === -E.EBADF ? sendError(dup) : systemError(dup, 'fcntl', 'F_DUPFD_CLOEXEC',
        dup === -E.EMFILE ? 'this process is out of descriptors (RLIMIT_NOFILE) for the send queue; lower maxQueuedFds or wait for \'drain\'' : undefined);
    }
    fds[i] = dup;
  }
}

/** ERR_MEMSEAL_QUEUE_FULL: what the queue holds and which bound a send of `cost` bytes, `nfds` descriptors would pass. */
function queueFullError(ch: QueueFigures, cost: number, nfds: number): MemsealError {
  const fdsFull = ch.queuedFds + nfds > ch.maxQueuedFds;
  return new MemsealError('ERR_MEMSEAL_QUEUE_FULL', fdsFull
    ? `the send queue holds ${ch.queuedFds} descriptors; ${nfds} more would exceed maxQueuedFds (${ch.maxQueuedFds}): nothing was taken`
    : `the send queue holds ${ch.queuedBytes} bytes; ${cost} more would exceed maxQueuedBytes (${ch.maxQueuedBytes}): nothing was taken`,
  { hint: "the peer is not reading fast enough: wait for the channel's 'drain' event before sending more" });
}

/** @internal A sendmsg(2) failure, with a hint for the usual causes. */
export function sendError(r: number): SystemError {
  let hint: string | undefined;
  if (r === -E.EBADF) hint = 'a descriptor in fds is not open';
  else if (r === -E.EPIPE || r === -E.ECONNRESET) hint = 'the peer has closed its end';
  else if (r === -E.EMSGSIZE) hint = 'the message is larger than the socket send buffer (net.core.wmem_default)';
  else if (r === -E.ETOOMANYREFS) hint = 'too many descriptors in flight for this user (bounded by RLIMIT_NOFILE)';
  return systemError(r, 'sendmsg', undefined, hint);
}
