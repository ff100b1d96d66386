// The snapshot protocol (docs/protocol.md, "Snapshots"): what a SnapshotPublisher
// and a SnapshotReader say to each other over one channel.
//   publisher -> reader: one sendBuffer() message per version, meta = JSON {"version": n, "meta": "..."}
//   reader -> publisher: a plain message (no descriptor), JSON {"taken": n}, once version n is mapped.
// The publisher sends a reader its next version only after the TAKEN of the one before,
// so whatever the kernel would queue, at most one version is in flight per reader.
import { MAX_PAYLOAD } from '../channel/channel-util';
import { MemsealError, outOfRange } from '../kernel/errors';

/** Longest TAKEN message accepted: `{"taken":` + a safe integer + `}` fits easily. */
export const MAX_TAKEN_BYTES = 64;

/** The meta of a version message. */
export function encodeVersion(version: number, meta: string): string {
  return JSON.stringify({ version, meta });
}

/** The meta of a version message, or RangeError when it would not fit one message (MAX_PAYLOAD). */
export function versionPayload(version: number, meta: string): Buffer {
  const payload = Buffer.from(encodeVersion(version, meta));
  if (payload.length > MAX_PAYLOAD) {
    throw outOfRange('meta', `at most ${MAX_PAYLOAD} bytes on the wire with the version header (Channel.MAX_PAYLOAD)`, payload.length);
  }
  return payload;
}

/** Reads a version message's meta; throws ERR_MEMSEAL_PROTOCOL for anything else. */
export function decodeVersion(payload: Buffer): { version: number; meta: string } {
  let h: unknown = null;
  try {
    h = JSON.parse(payload.toString('utf8'));
  } catch { /* reported below */ }
  const { version, meta } = (h !== null && typeof h === 'object' ? h : {}) as { version?: unknown; meta?: unknown };
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1 || (meta !== undefined && typeof meta !== 'string')) {
    throw new MemsealError('ERR_MEMSEAL_PROTOCOL',
      `the publisher sent a version message whose meta is not {"version": n, "meta": "…"} (${payload.length} bytes)`,
      { hint: 'the peer is not a memseal SnapshotPublisher' });
  }
  return { version, meta: meta ?? '' };
}

/** The reader's acknowledgement that `version` is mapped. */
export function encodeTaken(version: number): string {
  return JSON.stringify({ taken: version });
}

/** The version a TAKEN message acknowledges, or null when the message is not one. */
export function decodeTaken(payload: Buffer): number | null {
  if (payload.length > MAX_TAKEN_BYTES) return null;
  try {
    const t = JSON.parse(payload.toString('utf8')) as { taken?: unknown } | null;
    return t !== null && typeof t === 'object' && typeof t.taken === 'number' && Number.isSafeInteger(t.taken) && t.taken >= 1
      ? t.taken : null;
  } catch {
    return null;
  }
}
