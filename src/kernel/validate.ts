// Argument checks that run before any syscall. Malformed arguments throw
// TypeError/RangeError with Node's codes; well-formed values the kernel may
// not know (new flag or seal bits) pass through so its own EINVAL surfaces.
import { invalidArgType, outOfRange } from './errors';

const INT32_MAX = 0x7fffffff;

export function validateInteger(value: unknown, name: string, min: number, max: number): asserts value is number {
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value);
  if (!Number.isInteger(value)) throw outOfRange(name, 'an integer', value);
  if (value < min || value > max) throw outOfRange(name, `>= ${min} && <= ${max}`, value);
}

/** A file descriptor: an integer 0..2^31-1. */
export function validateFd(value: unknown, name = 'fd'): asserts value is number {
  validateInteger(value, name, 0, INT32_MAX);
}

/** A bit mask passed to the kernel as an unsigned 32-bit value. */
export function validateFlags(value: unknown, name: string): asserts value is number {
  validateInteger(value, name, 0, 0xffffffff);
}

/** An int-typed kernel argument (prot, advice, msync flags). */
export function validateInt32(value: unknown, name: string): asserts value is number {
  validateInteger(value, name, -0x80000000, INT32_MAX);
}

/** A byte length or offset: a safe, non-negative integer (full 64-bit range that a JS number holds). */
export function validateLength(value: unknown, name: string): asserts value is number {
  validateInteger(value, name, 0, Number.MAX_SAFE_INTEGER);
}

export function validateString(value: unknown, name: string): asserts value is string {
  if (typeof value !== 'string') throw invalidArgType(name, 'of type string', value);
}

export function validateFunction(value: unknown, name: string): asserts value is (...args: never[]) => unknown {
  if (typeof value !== 'function') throw invalidArgType(name, 'of type function', value);
}

export function validateAbortSignal(value: unknown, name: string): asserts value is AbortSignal {
  if (!(value instanceof AbortSignal)) throw invalidArgType(name, 'an instance of AbortSignal', value);
}

export function validateObject(value: unknown, name: string): asserts value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalidArgType(name, 'of type object', value);
  }
}

/**
 * The bytes of `data` without copying: a string as UTF-8 (unless `strings` is
 * false), any ArrayBufferView, or an ArrayBuffer (if `arrayBuffers`). A
 * detached buffer reads as empty, as Buffer.from(view) has it
 * (Buffer.from(arrayBuffer, …) would throw without a code).
 * @param expected what the TypeError says `data` must be
 */
export function toBytes(data: unknown, expected = 'of type string or an instance of Buffer, TypedArray, or DataView',
  accept: { strings?: boolean; arrayBuffers?: boolean } = {}): Buffer {
  if (typeof data === 'string' && accept.strings !== false) return Buffer.from(data, 'utf8');
  if (ArrayBuffer.isView(data)) {
    // already a Buffer: no new view per call (a channel's send path) — but a detached one reads as empty
    if (Buffer.isBuffer(data) && data.byteLength > 0) return data;
    return data.byteLength === 0 ? Buffer.alloc(0) : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  }
  if (data instanceof ArrayBuffer && accept.arrayBuffers === true) return data.byteLength === 0 ? Buffer.alloc(0) : Buffer.from(data);
  throw invalidArgType('data', expected, data);
}
