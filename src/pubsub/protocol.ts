// The pool protocol of Publisher/Subscriber: the layout of a pool memfd's
// header and the messages that travel over a Channel (SOCK_SEQPACKET, one
// message per send). docs/pubsub.md ("Wire protocol") describes the same bytes
// for peers in other languages; keep the two in step.
//
// All multi-byte fields are little-endian (every architecture memseal builds
// for: x64, arm64). The per-slot sequence words are native 64-bit integers
// accessed atomically (native/pool.cc); on those architectures that is the
// same byte order.
import { MemsealError } from '../kernel/errors';
import { roundUp } from '../kernel/mapping';

/** 'pool' as four ASCII bytes, read as a little-endian u32. */
export const POOL_MAGIC = 0x6c6f6f70;
/** Protocol version carried in the header and in HELLO. */
export const POOL_VERSION = 1;
/** Bytes of fixed header fields before the sequence words. */
export const HEADER_FIXED = 64;
/** Most slots one pool may have (bounds the header a subscriber maps and checks). */
export const MAX_SLOTS = 65536;
/** Most meta bytes one sample may carry. */
export const MAX_META = 4096;
/** Largest sequence number: the word 2·s must stay an exact double. */
export const MAX_SEQUENCE = 2 ** 52 - 1;
/** Slot data starts at a multiple of this within the pool. */
export const SLOT_ALIGN = 64;

/** Message types (first payload byte). Types >= 0x80 are optional: a receiver that does not know one ignores it. */
export const MsgType = Object.freeze({
  HELLO: 1,     // publisher -> subscriber, carries the pool memfd
  SAMPLES: 2,   // publisher -> subscriber, one or more samples
  DETACH: 3,    // publisher -> subscriber, why it is about to hang up
  RELEASE: 16,  // subscriber -> publisher, samples it is done with
} as const);

export const HELLO_SIZE = 40;
export const SAMPLE_ENTRY_SIZE = 24;
export const RELEASE_ENTRY_SIZE = 16;
/** Bytes before the first entry of SAMPLES and RELEASE: type u8, reserved u8, count u16. */
export const BATCH_HEAD = 4;

/**
 * Why a publisher detaches a subscriber (DETACH byte 1). CLOSING is the
 * publisher's clean close(): the only reason that ends a stream quietly.
 * FULL refuses an attach (sent instead of HELLO); IDLE: silent after HELLO.
 */
export const DetachReason = Object.freeze({ SLOW: 1, CLOSING: 2, PROTOCOL: 3, FULL: 4, IDLE: 5 } as const);

/** HELLO flags (byte 2). */
export const HelloFlag = Object.freeze({ DELIVERY_ALL: 1 } as const);

/** What HELLO says beyond the geometry: the subscriber's quota (0: not declared, i.e. `slots`) and the delivery mode. */
export interface HelloTerms {
  quota: number;
  deliveryAll: boolean;
}

/** The geometry of a pool: from HELLO, cross-checked against the header. */
export interface PoolGeometry {
  slots: number;
  headerSize: number;
  slotSize: number;
  slotStride: number;
  poolSize: number;
}

/** Header byte offsets. */
export const H = Object.freeze({ MAGIC: 0, VERSION: 4, FLAGS: 6, SLOTS: 8, HEADER_SIZE: 12, SLOT_SIZE: 16,
  SLOT_STRIDE: 24, POOL_SIZE: 32 } as const);

/** Byte offset of slot `i`'s sequence word in the header. */
export function wordOffset(slot: number): number {
  return HEADER_FIXED + 8 * slot;
}

/** Seats the holder table of the header names (subscribers past them are not shown by `memseal inspect`). */
export const HOLDER_SEATS = 64;
/** Header flags (u16 at H.FLAGS). */
export const HeaderFlag = Object.freeze({ HOLDERS: 1 } as const);
/** Offset of the holder table: HOLDER_SEATS u32 pids (0: seat free), then one u64 seat mask per slot. */
export function holderTable(slots: number): number {
  return HEADER_FIXED + 8 * slots;
}
/** Offset of slot `slot`'s u64 mask of the seats that hold it. */
export function holderMask(slots: number, slot: number): number {
  return holderTable(slots) + 4 * HOLDER_SEATS + 8 * slot;
}

/** The geometry for `slots` × `slotSize`, header (sequence words, holder table) rounded up to `page`. */
export function geometry(slots: number, slotSize: number, page: number): PoolGeometry {
  const headerSize = roundUp(holderMask(slots, slots), page);
  const slotStride = roundUp(slotSize, SLOT_ALIGN);
  return { slots, headerSize, slotSize, slotStride, poolSize: headerSize + slots * slotStride };
}

export function writeHeader(h: Buffer, g: PoolGeometry): void {
  h.writeUInt32LE(POOL_MAGIC, H.MAGIC);
  h.writeUInt16LE(POOL_VERSION, H.VERSION);
  h.writeUInt16LE(g.headerSize >= holderMask(g.slots, g.slots) ? HeaderFlag.HOLDERS : 0, H.FLAGS);
  h.writeUInt32LE(g.slots, H.SLOTS);
  h.writeUInt32LE(g.headerSize, H.HEADER_SIZE);
  writeU64(h, g.slotSize, H.SLOT_SIZE);
  writeU64(h, g.slotStride, H.SLOT_STRIDE);
  writeU64(h, g.poolSize, H.POOL_SIZE);
}

export function protocolError(message: string, hint?: string): MemsealError {
  return new MemsealError('ERR_MEMSEAL_PROTOCOL', message, hint === undefined ? undefined : { hint });
}

/** A u64 field as a number, or -1 if it does not fit a safe integer. */
export function u64(b: Buffer, off: number): number {
  const hi = b.readUInt32LE(off + 4);
  return hi > 0x1fffff ? -1 : hi * 0x100000000 + b.readUInt32LE(off);
}

/** Writes a safe non-negative integer as a u64 (no BigInt: this runs per sample). */
export function writeU64(b: Buffer, v: number, off: number): void {
  b.writeUInt32LE(v % 0x100000000, off);
  b.writeUInt32LE(Math.floor(v / 0x100000000), off + 4);
}

export function encodeHello(g: PoolGeometry, terms: HelloTerms = { quota: 0, deliveryAll: false }): Buffer {
  const b = Buffer.alloc(HELLO_SIZE);
  b[0] = MsgType.HELLO;
  b[1] = POOL_VERSION;
  b[2] = terms.deliveryAll ? HelloFlag.DELIVERY_ALL : 0;
  b.writeUInt32LE(g.slots, 4);
  b.writeUInt32LE(g.headerSize, 8);
  b.writeUInt32LE(terms.quota, 12);
  writeU64(b, g.slotSize, 16);
  writeU64(b, g.slotStride, 24);
  writeU64(b, g.poolSize, 32);
  return b;
}

/** The quota and delivery mode a (checked) HELLO declares; a quota of 0 or over `slots` means `slots`. */
export function helloTerms(b: Buffer, g: PoolGeometry): HelloTerms {
  const q = b.readUInt32LE(12);
  return { quota: q === 0 || q > g.slots ? g.slots : q, deliveryAll: (b[2]! & HelloFlag.DELIVERY_ALL) !== 0 };
}

/** Checks a HELLO payload and the geometry it states; throws ERR_MEMSEAL_PROTOCOL. */
export function decodeHello(b: Buffer): PoolGeometry {
  if (b.length < HELLO_SIZE || b[0] !== MsgType.HELLO) {
    throw protocolError(`the first message is not a pool HELLO (${b.length} bytes, type ${b.length > 0 ? b[0] : 'none'})`,
      'the peer is not a memseal Publisher');
  }
  if (b[1] !== POOL_VERSION) throw protocolError(`pool protocol version ${b[1]} is not supported (this side speaks ${POOL_VERSION})`);
  const g: PoolGeometry = { slots: b.readUInt32LE(4), headerSize: b.readUInt32LE(8), slotSize: u64(b, 16),
    slotStride: u64(b, 24), poolSize: u64(b, 32) };
  checkGeometry(g);
  return g;
}

/** The rules every geometry obeys; a publisher that breaks one is refused before anything is mapped. */
export function checkGeometry(g: PoolGeometry): void {
  const bad = (why: string) => protocolError(`the pool geometry is invalid: ${why}`);
  if (g.slots < 1 || g.slots > MAX_SLOTS) throw bad(`${g.slots} slots (1..${MAX_SLOTS})`);
  if (g.slotSize < 1 || g.slotStride < g.slotSize || g.slotStride % SLOT_ALIGN !== 0) {
    throw bad(`slot size ${g.slotSize}, stride ${g.slotStride}`);
  }
  if (g.headerSize < HEADER_FIXED + 8 * g.slots || g.headerSize % SLOT_ALIGN !== 0) throw bad(`header size ${g.headerSize}`);
  if (g.poolSize !== g.headerSize + g.slots * g.slotStride) {
    throw bad(`pool size ${g.poolSize} is not header ${g.headerSize} + ${g.slots} × ${g.slotStride}`);
  }
}

/** Compares the mapped header once against HELLO (the header is never read again). */
export function checkHeader(h: Buffer, g: PoolGeometry): void {
  const same = h.readUInt32LE(H.MAGIC) === POOL_MAGIC && h.readUInt16LE(H.VERSION) === POOL_VERSION &&
    h.readUInt32LE(H.SLOTS) === g.slots && h.readUInt32LE(H.HEADER_SIZE) === g.headerSize &&
    u64(h, H.SLOT_SIZE) === g.slotSize && u64(h, H.SLOT_STRIDE) === g.slotStride && u64(h, H.POOL_SIZE) === g.poolSize;
  if (!same) throw protocolError('the pool header does not match the HELLO message');
}

/** One announced sample. */
export interface SampleEntry {
  slot: number;
  sequence: number;
  length: number;
  meta: Uint8Array;
}

export function samplesSize(entries: readonly SampleEntry[]): number {
  let n = BATCH_HEAD;
  for (const e of entries) n += SAMPLE_ENTRY_SIZE + e.meta.length;
  return n;
}

export function encodeSamples(entries: readonly SampleEntry[], out: Buffer = Buffer.allocUnsafe(samplesSize(entries))): Buffer {
  out[0] = MsgType.SAMPLES;
  out[1] = 0;
  out.writeUInt16LE(entries.length, 2);
  let off = BATCH_HEAD;
  for (const e of entries) {
    out.writeUInt32LE(e.slot, off);
    out.writeUInt16LE(e.meta.length, off + 4);
    out.writeUInt16LE(0, off + 6);
    writeU64(out, e.sequence, off + 8);
    writeU64(out, e.length, off + 16);
    out.set(e.meta, off + SAMPLE_ENTRY_SIZE);
    off += SAMPLE_ENTRY_SIZE + e.meta.length;
  }
  return out.subarray(0, off);
}

/**
 * Parses SAMPLES against the geometry; any entry out of range fails the whole
 * message (ERR_MEMSEAL_PROTOCOL). Meta bytes are copied out of the payload.
 */
export function decodeSamples(b: Buffer, g: PoolGeometry): SampleEntry[] {
  if (b.length < BATCH_HEAD) throw protocolError(`a SAMPLES message of ${b.length} bytes is truncated`);
  const count = b.readUInt16LE(2);
  if (count === 0) throw protocolError('a SAMPLES message with no samples');
  const out: SampleEntry[] = [];
  let off = BATCH_HEAD;
  for (let i = 0; i < count; i++) {
    if (off + SAMPLE_ENTRY_SIZE > b.length) throw protocolError(`SAMPLES entry ${i} is truncated`);
    const slot = b.readUInt32LE(off);
    const metaLen = b.readUInt16LE(off + 4);
    const sequence = u64(b, off + 8);
    const length = u64(b, off + 16);
    if (slot >= g.slots) throw protocolError(`sample slot ${slot} is out of range (the pool has ${g.slots})`);
    if (length < 0 || length > g.slotSize) throw protocolError(`sample length ${length} is out of range (slot size ${g.slotSize})`);
    if (sequence < 1 || sequence > MAX_SEQUENCE) throw protocolError(`sample sequence ${sequence} is out of range`);
    if (metaLen > MAX_META || off + SAMPLE_ENTRY_SIZE + metaLen > b.length) {
      throw protocolError(`sample meta of ${metaLen} bytes overruns the message`);
    }
    const meta = Buffer.from(b.subarray(off + SAMPLE_ENTRY_SIZE, off + SAMPLE_ENTRY_SIZE + metaLen));
    out.push({ slot, sequence, length, meta });
    off += SAMPLE_ENTRY_SIZE + metaLen;
  }
  if (off !== b.length) throw protocolError(`a SAMPLES message has ${b.length - off} trailing bytes`);
  return out;
}

/** Most release entries one message holds. */
export const MAX_RELEASES = Math.floor((65536 - BATCH_HEAD) / RELEASE_ENTRY_SIZE);

export function encodeRelease(slots: readonly number[], sequences: readonly number[], from: number, count: number): Buffer {
  const b = Buffer.allocUnsafe(BATCH_HEAD + count * RELEASE_ENTRY_SIZE);
  b[0] = MsgType.RELEASE;
  b[1] = 0;
  b.writeUInt16LE(count, 2);
  for (let i = 0; i < count; i++) {
    const off = BATCH_HEAD + i * RELEASE_ENTRY_SIZE;
    b.writeUInt32LE(slots[from + i]!, off);
    b.writeUInt32LE(0, off + 4);
    writeU64(b, sequences[from + i]!, off + 8);
  }
  return b;
}

/** [slot, sequence] pairs of a RELEASE, or null if the message is malformed. */
export function decodeRelease(b: Buffer): Array<[number, number]> | null {
  if (b.length < BATCH_HEAD) return null;
  const count = b.readUInt16LE(2);
  if (b.length !== BATCH_HEAD + count * RELEASE_ENTRY_SIZE) return null;
  const out: Array<[number, number]> = [];
  for (let i = 0; i < count; i++) {
    const off = BATCH_HEAD + i * RELEASE_ENTRY_SIZE;
    out.push([b.readUInt32LE(off), u64(b, off + 8)]);
  }
  return out;
}

export function encodeDetach(reason: number, text: string): Buffer {
  const t = Buffer.from(text.slice(0, 1000), 'utf8');
  const b = Buffer.alloc(4 + t.length);
  b[0] = MsgType.DETACH;
  b[1] = reason;
  t.copy(b, 4);
  return b;
}
