// Errors shaped like Node's own: system errors with code/errno/syscall, argument
// errors with ERR_INVALID_ARG_TYPE / ERR_OUT_OF_RANGE, and MemsealError for
// conditions the library itself detects. Every error memseal throws is built
// here, so the same misuse gets the same code, message shape and hint at
// every level.
import { constants as osConstants } from 'node:os';
import { inspect } from 'node:util';
import { native } from './binding';

/**
 * errno values by name, for comparing with a native -errno: Node's
 * os.constants.errno plus ETOOMANYREFS (from native: Node's typings lack it).
 */
export const E: Readonly<typeof osConstants.errno & { ETOOMANYREFS: number }> = Object.freeze({
  ...osConstants.errno,
  ETOOMANYREFS: native.internalConstants.ETOOMANYREFS,
});

/** A failed system call, shaped like Node's own system errors. */
export interface SystemError extends Error {
  /** e.g. 'EPERM' */
  code: string;
  /** negative errno, as in Node: -1 for EPERM */
  errno: number;
  /** the system call, e.g. 'fcntl' */
  syscall: string;
  /** a known cause, when there is one */
  hint?: string;
}

/**
 * Builds a system error from a negative errno: message
 * `EPERM: operation not permitted, fcntl(F_ADD_SEALS)`.
 * @param syscall the system call name ('fcntl')
 * @param detail what it was called with ('F_ADD_SEALS'), shown in the message
 */
/** What Node's own APIs reject with when their `signal` aborts: name 'AbortError', code 'ABORT_ERR'. */
export function abortError(signal: AbortSignal, what: string): Error {
  const err = new Error(`${what} was aborted`, { cause: signal.reason }) as Error & { code: string };
  err.name = 'AbortError';
  err.code = 'ABORT_ERR';
  return err;
}

export function systemError(negErrno: number, syscall: string, detail?: string, hint?: string): SystemError {
  const code = native.errorName(negErrno);
  const where = detail === undefined ? syscall : `${syscall}(${detail})`;
  const err = new Error(`${code}: ${native.errorMessage(negErrno)}, ${where}`) as SystemError;
  err.code = code;
  err.errno = negErrno;
  err.syscall = syscall;
  if (hint !== undefined) err.hint = hint;
  return err;
}

/** The library's own error codes. */
export type MemsealErrorCode =
  | 'ERR_MEMSEAL_NOT_SEALED'
  | 'ERR_MEMSEAL_NOT_MEMFD'
  | 'ERR_MEMSEAL_SIZE'
  | 'ERR_MEMSEAL_UNSUPPORTED'
  | 'ERR_MEMSEAL_CLOSED'
  | 'ERR_MEMSEAL_SEALED'
  | 'ERR_MEMSEAL_CTRUNC'
  | 'ERR_MEMSEAL_NO_CHANNEL'
  | 'ERR_MEMSEAL_QUEUE_FULL'
  | 'ERR_MEMSEAL_FD_IN_USE'
  | 'ERR_MEMSEAL_TORN'
  | 'ERR_MEMSEAL_PROTOCOL'
  | 'ERR_MEMSEAL_NO_SNAPSHOT'
  | 'ERR_MEMSEAL_ACCESS'
  | 'ERR_MEMSEAL_DETACHED'
  | 'ERR_MEMSEAL_PUBLISHER_GONE';

/** A condition memseal detects itself (policy, state), not a failed syscall. */
export class MemsealError extends Error {
  readonly code: MemsealErrorCode;
  declare hint?: string;
  constructor(code: MemsealErrorCode, message: string, options?: { hint?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MemsealError';
    this.code = code;
    if (options?.hint !== undefined) this.hint = options.hint;
  }
}

/**
 * ERR_MEMSEAL_CLOSED, one shape for every object: `Mapping.advise(): the mapping is unmapped`,
 * followed by `: <reason>` when the object was ended by someone else for a known reason.
 * @param op what was called ('Channel.send()', 'SealedBuffer.bytes')
 * @param what the object ('the channel', "the arena 'cfg'")
 * @param state how it ended ('closed', 'unmapped', 'destroyed', 'disposed')
 * @param why the reason (appended to the message), a hint, the error that ended it (cause)
 */
export function closedError(op: string, what: string, state = 'closed',
  why?: { reason?: string; hint?: string; cause?: unknown }): MemsealError {
  const reason = why?.reason === undefined ? '' : `: ${why.reason}`;
  return new MemsealError('ERR_MEMSEAL_CLOSED', `${op}: ${what} is ${state}${reason}`, { hint: why?.hint, cause: why?.cause });
}

/** A RangeError with a Node-style `code` (and `hint`) whose message is not an argument's range. */
export function rangeError(code: 'ERR_OUT_OF_RANGE', message: string, hint?: string): RangeError {
  const err = new RangeError(message) as RangeError & { code: string; hint?: string };
  err.code = code;
  if (hint !== undefined) err.hint = hint;
  return err;
}

/** Node's ERR_INVALID_ARG_TYPE. */
export function invalidArgType(name: string, expected: string, actual: unknown): TypeError {
  const err = new TypeError(`The "${name}" argument must be ${expected}. Received ${describe(actual)}`);
  (err as TypeError & { code: string }).code = 'ERR_INVALID_ARG_TYPE';
  return err;
}

/** Node's ERR_INVALID_ARG_VALUE: the type is right, the value is not acceptable. */
export function invalidArgValue(name: string, reason: string, actual: unknown): TypeError {
  const err = new TypeError(`The argument '${name}' ${reason}. Received ${describe(actual)}`);
  (err as TypeError & { code: string }).code = 'ERR_INVALID_ARG_VALUE';
  return err;
}

/** Node's ERR_ILLEGAL_CONSTRUCTOR, for classes made only by factories. */
export function illegalConstructor(use: string): TypeError {
  const err = new TypeError(`Illegal constructor: use ${use}`);
  (err as TypeError & { code: string }).code = 'ERR_ILLEGAL_CONSTRUCTOR';
  return err;
}

/**
 * Node's ERR_INVALID_RETURN_VALUE: a callback returned what the caller cannot
 * use (e.g. a promise from a callback that must finish synchronously).
 */
export function invalidReturnValue(name: string, expected: string, actual: unknown, hint?: string, note = ''): TypeError {
  const err = new TypeError(`Expected ${name} to return ${expected}, but got ${describe(actual)}${note}`);
  (err as TypeError & { code: string }).code = 'ERR_INVALID_RETURN_VALUE';
  if (hint !== undefined) (err as TypeError & { hint: string }).hint = hint;
  return err;
}

/** Node's ERR_OUT_OF_RANGE. */
export function outOfRange(name: string, range: string, actual: unknown, hint?: string): RangeError {
  return rangeError('ERR_OUT_OF_RANGE', `The value of "${name}" is out of range. It must be ${range}. Received ${describe(actual)}`, hint);
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (typeof value === 'function') return `function ${value.name || '<anonymous>'}`;
  if (typeof value === 'object') {
    const ctor = (value as object).constructor?.name;
    return ctor ? `an instance of ${ctor}` : inspect(value, { depth: -1 });
  }
  const shown = inspect(value, { colors: false }).slice(0, 28);
  return typeof value === 'number' || typeof value === 'bigint' ? shown : `type ${typeof value} (${shown})`;
}

/**
 * Returns `r` when it is a result (>= 0); throws the system error for -errno.
 * `hint` is consulted only on failure, so it may do extra work.
 */
export function check(r: number, syscall: string, detail?: string, hint?: (negErrno: number) => string | undefined): number {
  if (r >= 0) return r;
  const err = systemError(r, syscall, detail, hint?.(r));
  Error.captureStackTrace(err, check);
  throw err;
}

/**
 * ERR_OUT_OF_RANGE for a view larger than an ArrayBuffer may be in this Node.js
 * (buffer.constants.MAX_LENGTH: 4 GiB on Node 20), with a hint naming the
 * windowed accessor that reaches the rest.
 */
export function tooLargeForBuffer(what: string, size: number, max: number, instead: string): RangeError {
  return rangeError('ERR_OUT_OF_RANGE', `${what} (${size} bytes) is larger than an ArrayBuffer may be in this Node.js (${max} bytes)`,
    `use ${instead} for windows of at most ${max} bytes`);
}
