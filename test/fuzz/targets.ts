// Property-based fuzzing of every public function and constructor: random
// types, NaN, negatives, huge and fractional numbers, BigInt, closed fds, fds
// of the wrong kind, detached buffers, objects reused after close. Invariant:
// each call returns or throws an Error with a string `code` — never another
// kind of error, never a crash (run.ts runs in a child process), and after a
// run no descriptor and no memfd mapping is left behind.
import assert from 'node:assert/strict';
import { closeSync, openSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import * as memseal from '../../src';
import { native } from '../../src/kernel/binding';
import { Channel, ChannelServer, constants as C, Mapping, SealedBuffer } from '../../src';

/** A resource made fresh for each case, closed after it. */
type TokenKind =
  | 'closedFd' | 'pipeFd' | 'devNullFd' | 'dirFd' | 'fileFd' | 'memfd' | 'sealedMemfd' | 'secretFd'
  | 'detachedArrayBuffer' | 'detachedView' | 'openMapping' | 'closedMapping' | 'readOnlyMapping'
  | 'closedSealedBuffer' | 'openSealedBuffer' | 'closedChannel' | 'openChannel' | 'abstractPath' | 'bigFd';

class Token { constructor(readonly kind: TokenKind) {} }

const TOKEN_KINDS: TokenKind[] = [
  'closedFd', 'pipeFd', 'devNullFd', 'dirFd', 'fileFd', 'memfd', 'sealedMemfd', 'secretFd',
  'detachedArrayBuffer', 'detachedView', 'openMapping', 'closedMapping', 'readOnlyMapping',
  'closedSealedBuffer', 'openSealedBuffer', 'closedChannel', 'openChannel', 'abstractPath', 'bigFd',
];

const SPECIALS: unknown[] = [
  NaN, -0, 0, -1, 1, 1.5, -1.5, 4095, 4096, 4097, Infinity, -Infinity, 2 ** 31 - 1, 2 ** 31, -(2 ** 31), 2 ** 32 - 1, 2 ** 32,
  2 ** 53 - 1, 2 ** 53, 2 ** 63, -(2 ** 53), 1e300, Number.MIN_VALUE, 10n, -1n, 0n, 2n ** 64n, '', '3', 'x'.repeat(300), '\0',
  '\u00ff'.repeat(200), null, undefined, true, false, {}, [], [1, 2], [-1], ['3'], Symbol('s'), () => 1, new Date(0),
  new ArrayBuffer(8), Buffer.from('ab'), new Uint8Array(3), new Float64Array(2), new DataView(new ArrayBuffer(4)),
  Object.create(null), new Proxy({}, {}), { valueOf: () => 3 }, { toString: () => '3' },
];

/** Any value at all, weighted towards the interesting ones. */
export const anyArg: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...SPECIALS) },
  { weight: 3, arbitrary: fc.constantFrom(...TOKEN_KINDS).map((k) => new Token(k)) },
  { weight: 2, arbitrary: fc.integer({ min: -8, max: 70000 }) },
  { weight: 1, arbitrary: fc.double() },
  { weight: 1, arbitrary: fc.bigInt() },
  { weight: 1, arbitrary: fc.string() },
  { weight: 1, arbitrary: fc.anything() },
);

/** Options objects: records of arbitrary values under the real option names, or anything. */
function optionsArg(keys: string[]): fc.Arbitrary<unknown> {
  return fc.oneof(
    fc.record(Object.fromEntries(keys.map((k) => [k, anyArg])), { requiredKeys: [] }),
    anyArg,
  );
}

/**
 * Sizes for calls that would really allocate (SealedBuffer.create populates
 * its pages): invalid values of every kind, or at most 64 KiB. A valid 2^40
 * would be an honest request for a terabyte, not a bug to find.
 */
const sizeArg: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(NaN, -1, 1.5, Infinity, 2 ** 53, -0, 10n, '8', null, undefined, {}, 1e300),
  fc.integer({ min: 0, max: 65536 }),
  anyArg.filter((v) => typeof v !== 'number'),
);

/** Advice values that are safe to give our own pages: never MADV_HWPOISON/SOFT_OFFLINE (≥ 100: they poison real RAM as root). */
const adviceArg: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer({ min: -4, max: 99 }),
  anyArg.filter((v) => typeof v !== 'number' || !(v >= 100 && v < 2 ** 31)),
);

/** Per-case resources; everything is closed in cleanup(). */
export class Ctx {
  #fds: number[] = [];
  #objects: Array<{ close(): void } | Mapping> = [];
  #dirs: string[] = [];

  fd(fd: number): number { this.#fds.push(fd); return fd; }
  /** An owner took `fd` (SealedBuffer.open, Channel.fromFd): closing it again here could close a reused number. */
  release(fd: unknown): void { const i = this.#fds.indexOf(fd as number); if (i >= 0) this.#fds.splice(i, 1); }
  own<T extends { close(): void } | Mapping>(o: T): T { this.#objects.push(o); return o; }

  materialize(v: unknown): unknown {
    if (Array.isArray(v)) return v.map((x) => this.materialize(x));
    if (!(v instanceof Token)) return v;
    switch (v.kind) {
      case 'closedFd': { const fd = memseal.memfdCreate('fuzz-closed'); closeSync(fd); return fd; }
      case 'bigFd': return 1 << 20;
      case 'pipeFd': {
        // a raw SOCK_SEQPACKET end nobody owns yet: the right type for Channel.fromFd, the wrong kind for seals
        const pair = native.socketpair();
        if (typeof pair === 'number') throw new Error(`socketpair: ${pair}`);
        this.fd(pair[1]);
        return this.fd(pair[0]);
      }
      case 'devNullFd': return this.fd(openSync('/dev/null', 'r+'));
      case 'dirFd': return this.fd(openSync('/', 'r'));
      case 'fileFd': {
        const dir = mkdtempSync(path.join(tmpdir(), 'memseal-fuzz-'));
        this.#dirs.push(dir);
        const f = path.join(dir, 'f');
        writeFileSync(f, 'regular file');
        return this.fd(openSync(f, 'r+'));
      }
      case 'memfd': return this.fd(memseal.memfdCreate('fuzz'));
      case 'sealedMemfd': {
        const fd = this.fd(memseal.memfdCreate('fuzz-sealed'));
        memseal.addSeals(fd, memseal.DEFAULT_SEALS);
        return fd;
      }
      case 'secretFd': return memseal.features.memfdSecret ? this.fd(memseal.memfdSecret()) : -1;
      case 'detachedArrayBuffer': { const ab = new ArrayBuffer(16); structuredClone(ab, { transfer: [ab] }); return ab; }
      case 'detachedView': { const ab = new ArrayBuffer(16); const u = new Uint8Array(ab); structuredClone(ab, { transfer: [ab] }); return u; }
      case 'openMapping': return this.own(memseal.mmap(8192, C.PROT_READ | C.PROT_WRITE, C.MAP_PRIVATE));
      case 'readOnlyMapping': return this.own(memseal.mmap(4096, C.PROT_READ, C.MAP_SHARED));
      case 'closedMapping': { const m = memseal.mmap(4096, C.PROT_READ, C.MAP_PRIVATE); m.unmap(); return m; }
      case 'openSealedBuffer': return this.own(SealedBuffer.from('fuzz'));
      case 'closedSealedBuffer': { const b = SealedBuffer.from('fuzz'); b.close(); return b; }
      case 'openChannel': { const [a, b] = memseal.socketPair(); this.own(b); return this.own(a); }
      case 'closedChannel': { const [a, b] = memseal.socketPair(); a.close(); b.close(); return a; }
      case 'abstractPath': return `\0memseal-fuzz-${process.pid}-${Math.random().toString(36).slice(2)}`;
    }
  }

  /** Takes ownership of what a call returned. */
  adopt(r: unknown): void {
    if (typeof r === 'number' && Number.isInteger(r) && r > 2) {
      // only descriptor-returning targets hand back numbers > 2 (see NUMBER_RESULT)
      this.#fds.push(r);
    } else if (r instanceof Mapping || r instanceof SealedBuffer || r instanceof Channel || r instanceof ChannelServer) {
      this.own(r);
    } else if (Array.isArray(r)) {
      for (const x of r) if (x instanceof Channel) this.own(x);
    }
  }

  cleanup(): void {
    for (const o of this.#objects.splice(0).reverse()) {
      if (o instanceof Mapping && o.sealed) continue; // mseal'd: lives until exit, by design
      try { o.close(); } catch { /* a failing close is reported by the close target itself */ }
    }
    for (const fd of this.#fds.splice(0)) { try { closeSync(fd); } catch { /* already closed by an owner */ } }
    for (const d of this.#dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  }
}

/** The invariant on a thrown value. */
export function checkThrown(err: unknown, target: string): void {
  assert.ok(err instanceof Error, `${target}: threw a non-Error: ${String(err)}`);
  const code = (err as { code?: unknown }).code;
  assert.equal(typeof code, 'string', `${target}: ${err.name} without a code: ${err.message}`);
}

export interface Target {
  name: string;
  args: fc.Arbitrary<unknown[]>;
  /** Targets whose numeric result is a descriptor to close. */
  returnsFd?: boolean;
  call(ctx: Ctx, args: unknown[]): unknown;
}

const args = (...a: fc.Arbitrary<unknown>[]): fc.Arbitrary<unknown[]> => fc.tuple(...a);
const anyFn = (o: unknown, name: string): ((...a: unknown[]) => unknown) => {
  const f = o !== null && (typeof o === 'object' || typeof o === 'function') ? (o as Record<string, unknown>)[name] : undefined;
  if (typeof f !== 'function') throw Object.assign(new TypeError(`${name} is not a method here`), { code: 'FUZZ_NOT_A_METHOD' });
  return (f as (...a: unknown[]) => unknown).bind(o);
};
/** A receiver: mostly the right kind of object, sometimes anything. */
const recv = (...kinds: TokenKind[]): fc.Arbitrary<unknown> =>
  fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...kinds).map((k) => new Token(k)) }, { weight: 1, arbitrary: anyArg });
/**
 * Descriptors for calls that take ownership (close on failure): fresh ones of
 * every kind, or values that are no descriptor of this process (never 0..1023,
 * which would close libuv's epoll fd or stdio).
 */
const ownedFd = (...kinds: TokenKind[]): fc.Arbitrary<unknown> =>
  fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...kinds).map((k) => new Token(k)) },
    { weight: 1, arbitrary: anyArg.filter((v) => !(typeof v === 'number' && v >= 0 && v < 1024)) });

const call = (fn: (...a: never[]) => unknown) => (_ctx: Ctx, a: unknown[]) => (fn as (...a: unknown[]) => unknown)(...a);

export const GROUPS: Record<string, Target[]> = {
  memfd: [
    { name: 'memfdCreate', returnsFd: true, args: args(anyArg, anyArg), call: call(memseal.memfdCreate) },
    { name: 'memfdCreate(flags only)', returnsFd: true, args: args(fc.constant('fuzz'), fc.oneof(fc.integer({ min: 0, max: 0xffffffff }).map((x) => x >>> 0), anyArg)), call: call(memseal.memfdCreate) },
    { name: 'memfdSecret', returnsFd: true, args: args(anyArg), call: call(memseal.memfdSecret) },
    { name: 'addSeals', args: args(anyArg, anyArg), call: call(memseal.addSeals) },
    { name: 'getSeals', args: args(anyArg), call: call(memseal.getSeals) },
    { name: 'sealNames', args: args(anyArg), call: call(memseal.sealNames) },
    { name: 'verifySeals', args: args(anyArg, optionsArg(['require', 'forbid', 'minSize', 'maxSize', 'exactSize'])), call: call(memseal.verifySeals) },
  ],
  mapping: [
    {
      name: 'mmap',
      args: args(fc.oneof(sizeArg, fc.constantFrom(2 ** 40, 2 ** 46 + 2 ** 45, 2 ** 47, 2 ** 53 - 1)), anyArg,
        fc.oneof(fc.constantFrom(C.MAP_PRIVATE, C.MAP_SHARED, C.MAP_SHARED | C.MAP_NORESERVE, C.MAP_PRIVATE | C.MAP_NORESERVE, 0x10, 0x13, 0x100000 | 1), fc.integer({ min: 0, max: 0x7fffffff }), anyArg),
        anyArg, anyArg),
      call: (_ctx, [length, prot, flags, fd, offset]) => {
        // never ask for a populated or locked terabyte: that is a request, not a bug
        let f = flags;
        if (typeof f === 'number' && typeof length === 'number' && length > 2 ** 24) f = f & ~(C.MAP_POPULATE | C.MAP_LOCKED);
        return memseal.mmap(length as number, prot as number, f as number, fd as number, offset as number);
      },
    },
    { name: 'mseal', args: args(recv('openMapping', 'closedMapping', 'readOnlyMapping')), call: call(memseal.mseal) },
    { name: 'Mapping#bytes', args: args(recv('openMapping', 'closedMapping'), anyArg, anyArg), call: (_c, [m, a, b]) => anyFn(m, 'bytes')(a, b) },
    { name: 'Mapping#buffer', args: args(recv('openMapping', 'closedMapping')), call: (_c, [m]) => (m instanceof Mapping ? m.buffer : anyFn(m, 'buffer')) },
    { name: 'Mapping#protect', args: args(recv('openMapping', 'closedMapping', 'readOnlyMapping'), anyArg), call: (_c, [m, p]) => anyFn(m, 'protect')(p) },
    { name: 'Mapping#advise', args: args(recv('openMapping', 'closedMapping', 'readOnlyMapping'), adviceArg, anyArg, anyArg), call: (_c, [m, a, o, l]) => anyFn(m, 'advise')(a, o, l) },
    { name: 'Mapping#sync', args: args(recv('openMapping', 'closedMapping', 'readOnlyMapping'), anyArg), call: (_c, [m, f]) => anyFn(m, 'sync')(f) },
    { name: 'Mapping#lock/unlock', args: args(recv('openMapping', 'closedMapping')), call: (_c, [m]) => { anyFn(m, 'lock')(); anyFn(m, 'unlock')(); } },
    { name: 'Mapping#seal', args: args(recv('openMapping', 'closedMapping')), call: (_c, [m]) => anyFn(m, 'seal')() },
    { name: 'Mapping#unmap twice', args: args(recv('openMapping', 'closedMapping')), call: (_c, [m]) => { anyFn(m, 'unmap')(); anyFn(m, 'unmap')(); } },
    { name: 'new Mapping', args: args(anyArg, anyArg, anyArg, anyArg, anyArg, anyArg), call: (_c, a) => new (Mapping as unknown as new (...x: unknown[]) => unknown)(...a) },
  ],
  sealed: [
    { name: 'SealedBuffer.from', args: args(anyArg, optionsArg(['name', 'seals'])), call: call(SealedBuffer.from) },
    {
      name: 'SealedBuffer.create',
      args: args(sizeArg, fc.oneof(fc.constant((b: Buffer) => { b.fill(1); }), fc.constant(() => { throw Object.assign(new Error('fill failed'), { code: 'FUZZ_FILL' }); }), anyArg), optionsArg(['name', 'seals'])),
      call: call(SealedBuffer.create),
    },
    {
      name: 'SealedBuffer.open',
      // open() takes ownership of the descriptor (closes it on rejection): never hand it one of this process's own
      args: args(ownedFd('memfd', 'sealedMemfd', 'closedFd', 'devNullFd', 'dirFd', 'fileFd', 'secretFd', 'bigFd', 'pipeFd'),         optionsArg(['require', 'forbid', 'minSize', 'maxSize', 'exactSize'])),
      call: (ctx, [fd, opts]) => {
        // takes ownership whatever happens (a rejected fd is closed), once the arguments are valid
        try { return SealedBuffer.open(fd as number, opts as memseal.VerifyOptions); } finally { if (Number.isInteger(fd) && (fd as number) >= 0) ctx.release(fd); }
      },
    },
    {
      name: 'SealedBuffer#bytes/close',
      args: args(recv('openSealedBuffer', 'closedSealedBuffer')),
      call: (_c, [b]) => { if (b instanceof SealedBuffer) void b.bytes; anyFn(b, 'close')(); anyFn(b, 'close')(); },
    },
    { name: 'new SealedBuffer', args: args(anyArg, anyArg, anyArg, anyArg), call: (_c, a) => new (SealedBuffer as unknown as new (...x: unknown[]) => unknown)(...a) },
  ],
  channel: [
    { name: 'socketPair', args: args(optionsArg(['maxFds'])), call: call(memseal.socketPair) },
    {
      name: 'Channel.fromFd',
      // never descriptors 0-2 of this process: fromFd takes ownership and would close them
      args: args(ownedFd('pipeFd', 'devNullFd', 'memfd', 'closedFd', 'bigFd', 'dirFd'), optionsArg(['maxFds'])),
      call: (ctx, [fd, opts]) => { const ch = Channel.fromFd(fd as number, opts as memseal.ChannelOptions); ctx.release(fd); return ch; },
    },
    { name: 'Channel.fromParent', args: args(optionsArg(['maxFds'])), call: call(Channel.fromParent) },
    {
      name: 'Channel#send',
      args: args(recv('openChannel', 'closedChannel'), anyArg, fc.oneof(fc.array(anyArg, { maxLength: 4 }), anyArg)),
      call: (_c, [ch, d, f]) => anyFn(ch, 'send')(d, f),
    },
    {
      name: 'Channel#receive (closed)',
      // an open channel with nothing sent would wait forever, as it should: closed ones only
      args: args(fc.oneof(fc.constant(new Token('closedChannel')), fc.constantFrom(...SPECIALS))),
      call: (_c, [ch]) => anyFn(ch, 'receive')(),
    },
    { name: 'Channel#sendBuffer', args: args(recv('openChannel', 'closedChannel'), recv('openSealedBuffer', 'closedSealedBuffer'), anyArg), call: (_c, [ch, b, m]) => anyFn(ch, 'sendBuffer')(b, m) },
    { name: 'listen', args: args(fc.oneof(recv('abstractPath'), anyArg.filter((v) => typeof v !== 'string')), optionsArg(['maxFds', 'backlog'])), call: call(memseal.listen) },
    { name: 'connect', args: args(fc.oneof(recv('abstractPath'), anyArg.filter((v) => typeof v !== 'string')), optionsArg(['maxFds'])), call: call(memseal.connect) },
    { name: 'spawnWithChannel (bad arguments)', args: args(anyArg.filter((v) => typeof v !== 'string'), anyArg, anyArg), call: call(memseal.spawnWithChannel) },
    { name: 'new Channel', args: args(anyArg, anyArg, anyArg), call: (_c, a) => new (Channel as unknown as new (...x: unknown[]) => unknown)(...a) },
    { name: 'new ChannelServer', args: args(anyArg, anyArg, anyArg, anyArg), call: (_c, a) => new (ChannelServer as unknown as new (...x: unknown[]) => unknown)(...a) },
  ],
  misc: [
    { name: 'inspect', args: args(fc.oneof(fc.constantFrom(process.pid, 1, 0, -1, 2 ** 22 + 1), anyArg)), call: call(memseal.inspect) },
  ],
};

/** Optional high-level classes that may not be in this build yet. */
const m = memseal as Record<string, unknown>;
if (typeof m.WriteOnceArena === 'function') {
  type ArenaLike = { alloc(...a: unknown[]): unknown; seal(...a: unknown[]): void; destroy(): void } & Record<string, unknown>;
  const Arena = m.WriteOnceArena as unknown as new (...a: unknown[]) => ArenaLike;
  const fresh = (ctx: Ctx): ArenaLike => {
    const x = new Arena(4096);
    ctx.own({ close: () => { try { x.destroy(); } catch { /* mseal'd: lives until exit, by design */ } } });
    return x;
  };
  GROUPS.arena = [
    { name: 'new WriteOnceArena', args: args(sizeArg, optionsArg(['name'])), call: (ctx, a) => { const x = new Arena(...a); ctx.own({ close: () => x.destroy() }); return undefined; } },
    {
      name: 'WriteOnceArena#alloc/seal',
      args: args(sizeArg, anyArg, fc.oneof(optionsArg(['mseal']).filter((o) => !(o && typeof o === 'object' && (o as { mseal?: unknown }).mseal === true)), anyArg)),
      call: (ctx, [size, align, opts]) => {
        const x = fresh(ctx);
        x.alloc(size, align);
        x.seal(opts);
        x.alloc(8);
      },
    },
    ...['allocString', 'allocJSON', 'allocFrom', 'allocArray'].map((method): Target => ({
      name: `WriteOnceArena#${method}`,
      args: args(anyArg, anyArg, anyArg),
      call: (ctx, [a, b, c]) => anyFn(fresh(ctx), method)(a, b, c),
    })),
    { name: 'WriteOnceArena#destroy twice', args: args(fc.boolean()), call: (ctx, [sealFirst]) => { const x = fresh(ctx); if (sealFirst) x.seal({ mseal: false }); x.destroy(); x.destroy(); } },
  ];
}
if (typeof m.SecretBuffer === 'function') {
  const SB = m.SecretBuffer as unknown as { alloc(...a: unknown[]): { dispose(): void; bytes: Buffer } };
  GROUPS.secret = [
    { name: 'SecretBuffer.alloc', args: args(sizeArg, optionsArg(['fallback'])), call: (ctx, a) => { const b = SB.alloc(...a); ctx.own({ close: () => b.dispose() }); void b.bytes; b.dispose(); void b.bytes; } },
    {
      name: 'SecretBuffer#wipe/dispose after dispose',
      args: args(fc.constantFrom(undefined, { fallback: 'mlock' })),
      call: (ctx, [o]) => { const b = SB.alloc(64, o); ctx.own({ close: () => b.dispose() }); b.dispose(); anyFn(b, 'wipe')(); b.dispose(); },
    },
    { name: 'new SecretBuffer', args: args(anyArg, anyArg, anyArg, anyArg), call: (_c, a) => new (m.SecretBuffer as unknown as new (...x: unknown[]) => unknown)(...a) },
  ];
}
