// Publisher/Subscriber over a sealed slot pool: creation, streaming, slow subscribers, listen/connect,
// resources (hostile publishers and peers that die: processes.test.ts).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Channel, constants as C, features, getSeals, listen, mmap, Publisher, Seal, Subscriber, socketPair } from '../../src';
import * as P from '../../src/pubsub/protocol';
import { countFds, countMappings, skipUnless, tick, until } from '../helpers';
import { codeOf, pair, poolMappings } from './harness';

describe('Publisher/Subscriber', function () {
  before(function () {
    skipUnless(this, features.futureWrite, 'needs F_SEAL_FUTURE_WRITE (Linux 5.1)');
  });

  describe('Publisher.create()', () => {
    it('seals the pool SHRINK | GROW | FUTURE_WRITE | SEAL: no new writable mapping, no write(2), no resize', () => {
      using pub = Publisher.create({ slots: 2, slotSize: 100 });
      const seals = getSeals(pub.fd);
      assert.equal(seals & (Seal.SHRINK | Seal.GROW | Seal.FUTURE_WRITE | Seal.SEAL), Seal.SHRINK | Seal.GROW | Seal.FUTURE_WRITE | Seal.SEAL);
      assert.equal(codeOf(() => mmap(pub.size, C.PROT_READ | C.PROT_WRITE, C.MAP_SHARED, pub.fd)), 'EPERM');
      assert.equal(codeOf(() => fs.writeSync(pub.fd, 'x', 0)), 'EPERM');
      assert.equal(codeOf(() => fs.ftruncateSync(pub.fd, 0)), 'EPERM');
      assert.equal(codeOf(() => fs.ftruncateSync(pub.fd, pub.size * 2)), 'EPERM');
      // a read-only shared mapping cannot be made writable later (FUTURE_WRITE clears VM_MAYWRITE)
      const ro = mmap(pub.size, C.PROT_READ, C.MAP_SHARED, pub.fd);
      assert.equal(codeOf(() => ro.protect(C.PROT_READ | C.PROT_WRITE)), 'EACCES');
      ro.unmap();
    });

    it('lays out header and slots as the protocol says', () => {
      using pub = Publisher.create({ slots: 3, slotSize: 100 });
      const g = P.geometry(3, 100, 4096);
      assert.equal(pub.size, g.poolSize);
      assert.equal(g.slotStride, 128);
      const m = mmap(pub.size, C.PROT_READ, C.MAP_SHARED, pub.fd);
      P.checkHeader(m.bytes(0, P.HEADER_FIXED), g);
      m.unmap();
    });

    it('warns when the pool is over the bound subscribers apply by default (DEFAULT_MAX_SIZE)', async () => {
      const warned = once(process, 'warning') as Promise<[Error & { code?: string }]>;
      using pub = Publisher.create({ slots: 3, slotSize: 512 << 20 });   // 1.5 GiB, sparse: no page is touched
      const [w] = await warned;
      assert.equal(w.code, 'MEMSEAL_POOL_OVER_DEFAULT_MAX_SIZE');
      assert.match(w.message, new RegExp(`the pool is ${pub.size} bytes, over the 1073741824-byte bound`));
    });

    it('names the call that was misused: a second Loan.send() is Loan.send()\'s error', async () => {
      using pub = Publisher.create({ slots: 2, slotSize: 16 });
      const loan = await pub.loan();
      await loan.send(1);
      await assert.rejects(loan.send(1), { code: 'ERR_MEMSEAL_CLOSED', message: /^Loan\.send\(\): the loan is sent or cancelled/ });
    });

    it('checks its options before any syscall', () => {
      assert.equal(codeOf(() => Publisher.create({ slots: 0, slotSize: 1 })), 'ERR_OUT_OF_RANGE');
      assert.equal(codeOf(() => Publisher.create({ slots: 1, slotSize: 0 })), 'ERR_OUT_OF_RANGE');
      assert.equal(codeOf(() => Publisher.create({ slotSize: 1, maxHeld: 0 })), 'ERR_OUT_OF_RANGE');
      assert.equal(codeOf(() => Publisher.create({ slotSize: 1, delivery: 'some' as 'all' })), 'ERR_INVALID_ARG_VALUE');
      assert.equal(codeOf(() => Publisher.create({ slots: 2, slotSize: 1, onSlow: 'drop' as 'wait' })), 'ERR_INVALID_ARG_VALUE');
      assert.equal(codeOf(() => Publisher.create(null as never)), 'ERR_INVALID_ARG_TYPE');
    });
  });

  describe('streaming', () => {
    it('delivers samples in order with meta; the view is the slot, copy() is private', async () => {
      const { pub, sub } = await pair({ slots: 4, slotSize: 64, maxHeld: 2 });
      await pub.publish('hello', 'm1');
      const loan = await pub.loan();
      assert.equal(loan.bytes.length, 64);
      loan.bytes.write('in place');
      await loan.send(8, Buffer.from([1, 2, 3]));
      assert.equal(codeOf(() => loan.bytes), 'ERR_MEMSEAL_CLOSED');
      const a = await sub.receive();
      const b = await sub.receive();
      assert.deepEqual([a.sequence, a.length, a.bytes.toString(), a.meta.toString()], [1, 5, 'hello', 'm1']);
      assert.deepEqual([b.sequence, b.bytes.toString(), [...b.meta]], [2, 'in place', [1, 2, 3]]);
      const c = b.copy();
      assert.equal(c.toString(), 'in place');
      const target = Buffer.alloc(16);
      assert.equal(b.copy(target).toString(), 'in place');
      assert.equal(codeOf(() => b.copy(Buffer.alloc(4))), 'ERR_OUT_OF_RANGE');
      a.release();
      b.release();
      pub.close();
      sub.close();
    });

    it('gives a late subscriber the newest sample first', async () => {
      using pub = Publisher.create({ slots: 3, slotSize: 32 });
      await pub.publish('old');
      await pub.publish('newest');
      const [a, b] = socketPair();
      void pub.attach(a);
      using sub = await Subscriber.attach(b);
      const s = await sub.receive();
      assert.deepEqual([s.sequence, s.bytes.toString()], [2, 'newest']);
      s.release();
    });

    it('returns a slot once every subscriber released it; loan() waits while every slot is held', async () => {
      const pub = Publisher.create({ slots: 5, slotSize: 16, maxHeld: 2, maxSubscribers: 2 });
      const [a1, b1] = socketPair();
      const [a2, b2] = socketPair();
      void pub.attach(a1);
      void pub.attach(a2);
      const s1 = await Subscriber.attach(b1);
      const s2 = await Subscriber.attach(b2);
      await pub.publish('one');
      await pub.publish('two');
      const x1 = await s1.receive();
      const y1 = await s1.receive();
      const x2 = await s2.receive();
      const y2 = await s2.receive();
      // the caller takes every free slot (beyond maxLoans: served while free, then waits)
      const own = [await pub.loan(), await pub.loan(), await pub.loan()];
      let got = false;
      const pending = pub.loan().then((l) => { got = true; return l; });
      await tick();
      assert.equal(got, false, 'both samples are held by both subscribers');
      x1.release();
      await until(() => pub.subscribers.find((x) => x.id === 1)!.held === 1, "subscriber 1's release of sample 1");
      assert.equal(got, false, 'subscriber 2 still holds slot of sample 1');
      x2.release();
      const loan = await pending;
      assert.equal(loan.slot, x1.slot);
      loan.cancel();
      for (const l of own) l.cancel();
      for (const s of [y1, y2]) s.release();
      pub.close();
      s1.close();
      s2.close();
    });

    it('batches the announcements of one tick into one message (raw wire check)', async () => {
      using pub = Publisher.create({ slots: 16, slotSize: 64, maxHeld: 10, maxSubscribers: 1 });
      const [a, raw] = socketPair();
      void pub.attach(a);
      const hello = await raw.receive();
      assert.equal(hello.data[0], P.MsgType.HELLO);
      assert.equal(hello.fds.length, 1);
      hello.closeFds();
      for (let i = 0; i < 10; i++) void pub.publish(`s${i}`, i % 2 ? 'odd' : '');
      const m = await raw.receive();
      const entries = P.decodeSamples(m.data, P.geometry(16, 64, 4096));
      assert.deepEqual(entries.map((e) => e.sequence), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      assert.equal(entries[1]!.meta.toString(), 'odd');
      // releases come back the same way: one message for many samples
      await raw.send(P.encodeRelease(entries.map((e) => e.slot), entries.map((e) => e.sequence), 0, 10));
      await until(() => pub.subscribers[0]!.held === 0, 'the releases of all ten');
      raw.close();
    });

    it('subscriber.close() drops queued samples at once; it keeps the ones handed out (and the connection) until released', async () => {
      const { pub, sub } = await pair({ slots: 3, slotSize: 16, maxHeld: 2 });
      await pub.publish('a');
      await pub.publish('b');
      const a = await sub.receive();
      await until(() => sub.held === 2);
      const released = once(pub, 'detach');
      sub.close();
      await until(() => pub.subscribers[0]?.held === 1);
      assert.deepEqual(pub.subscribers[0]!.slots, [a.slot], 'the queued sample came back; the held one did not');
      await assert.rejects(sub.receive(), { code: 'ERR_MEMSEAL_CLOSED' });
      assert.equal(a.copy().toString(), 'a');
      a.release();
      await released;
      assert.equal(pub.subscriberCount, 0, 'hung up once the last sample was released');
      pub.close();
    });

    it('publisher.close(): subscribers get the samples already sent, then ERR_MEMSEAL_CLOSED; views stay valid until released', async () => {
      const { pub, sub } = await pair({ slots: 3, slotSize: 16 });
      await pub.publish('kept');
      await tick();  // the announcement goes out at the end of the turn
      pub.close();
      const s = await sub.receive();
      await assert.rejects(sub.receive(), { code: 'ERR_MEMSEAL_CLOSED' });
      assert.equal(s.bytes.toString(), 'kept');
      assert.equal(s.copy().toString(), 'kept');
      s.release();
      assert.equal(s.bytes.length, 0, 'unmapped (view detached) once the last sample was released');
      assert.equal(codeOf(() => s.copy()), 'ERR_MEMSEAL_CLOSED', 'a released sample cannot be copied');
    });
  });

  describe('slow subscribers', () => {
    it("onSlow 'detach' (deprecated: delivery 'all', slowTimeout 0): a subscriber at maxHeld is detached, its slots kept until released", async () => {
      const { pub, sub } = await pair({ slots: 4, slotSize: 16, maxHeld: 2, onSlow: 'detach' });
      assert.equal(pub.delivery, 'all');
      const reasons: string[] = [];
      pub.on('detach', (_info, reason) => reasons.push(reason));
      await pub.publish('1');
      await pub.publish('2');
      const held = [await sub.receive(), await sub.receive()];
      await pub.publish('3');  // sub holds 2 (its bound): detached before this loan
      assert.deepEqual(reasons, ['slow']);
      assert.equal(pub.subscribers[0]!.state, 'detached');
      assert.deepEqual([...pub.subscribers[0]!.slots].sort(), held.map((s) => s.slot).sort());
      const err = await sub.receive().then(() => null, (e: Error) => e);
      assert.equal((err as { code?: string })?.code, 'ERR_MEMSEAL_DETACHED');
      assert.match(String((err as Error).message), /^Subscriber.receive\(\): the publisher detached this subscriber \(too slow\): held 2 samples/);
      assert.deepEqual(held.map((s) => s.copy().toString()), ['1', '2'], 'not reused while held');
      for (const s of held) s.release();
      await until(() => pub.subscriberCount === 0);
      pub.close();
    });

    it("delivery 'all': loan() waits for the subscriber at its quota ('slow' names it), then detaches it after slowTimeout", async () => {
      const { pub, sub } = await pair({ slots: 4, slotSize: 16, maxHeld: 2, delivery: 'all', slowTimeout: 100 });
      const events: string[] = [];
      pub.on('slow', (info, why) => events.push(`slow ${info.id} ${why}`));
      pub.on('detach', (info, why) => events.push(`detach ${info.id} ${why}`));
      await pub.publish('1');
      await pub.publish('2');
      await pub.publish('3');
      assert.deepEqual(events, ['slow 1 waited', 'detach 1 slow']);
      await until(() => sub.failure !== null);
      await assert.rejects(sub.receive(), { code: 'ERR_MEMSEAL_DETACHED' }, 'the two queued samples are not delivered after the DETACH');
      assert.equal(sub.held, 0);
      pub.close();
      sub.close();
    });

    it('copy() reports ERR_MEMSEAL_TORN once the slot is reused after a hang-up; bytes is the live view', async () => {
      const pub = Publisher.create({ slots: 2, slotSize: 16 });
      const [a, b] = socketPair();
      void pub.attach(a);
      const sub = await Subscriber.attach(b);
      await pub.publish('first');
      const s = await sub.receive();
      assert.equal(s.copy().toString(), 'first');
      b.close();  // the channel closed under the subscriber: the publisher sees a hang-up and frees the slot
      await until(() => pub.subscriberCount === 0);
      const loan = await pub.loan();
      const again = loan.slot === s.slot ? loan : await pub.loan();
      assert.equal(again.slot, s.slot);
      assert.equal(codeOf(() => s.copy()), 'ERR_MEMSEAL_TORN', 'the word is odd while the publisher writes');
      again.bytes.write('SECOND');
      await again.send(6);
      assert.equal(codeOf(() => s.copy()), 'ERR_MEMSEAL_TORN', 'the word names another sample now');
      assert.equal(s.bytes.toString(), 'SECON', 'the live view shows what the publisher wrote');
      if (loan !== again) loan.cancel();
      s.release();
      pub.close();
      sub.close();
    });
  });

  describe('Publisher#listen() / Subscriber.connect()', () => {
    it('attaches each subscriber that connects', async () => {
      const sock = path.join(os.tmpdir(), `memseal-pool-${process.pid}.sock`);
      const pub = Publisher.create({ slots: 4, slotSize: 32 });
      const server = await pub.listen(sock);
      const attached = once(pub, 'attach');
      const sub = await Subscriber.connect(sock);
      const [info] = await attached;
      assert.equal(info.peer.pid, process.pid);
      await pub.publish('over a path');
      const s = await sub.receive();
      assert.equal(s.bytes.toString(), 'over a path');
      s.release();
      pub.close();
      assert.equal(server.closed, true);
      assert.equal(fs.existsSync(sock), false);
      sub.close();
    });
  });

  describe('a publisher that never says HELLO', () => {
    it('attach() gives up when its signal aborts: AbortError, the channel closed', async () => {
      const [a, b] = socketPair();
      const started = Date.now();
      await assert.rejects(Subscriber.attach(b, { signal: AbortSignal.timeout(50) }),
        { name: 'AbortError', code: 'ABORT_ERR', message: 'Subscriber.attach() was aborted' });
      assert.ok(Date.now() - started < 5000);
      assert.equal(b.closed, true, 'the subscriber closed its channel');
      if (!a.closed) await once(a, 'close');
      a.close();
    });

    it('an already aborted signal rejects at once, with the reason as cause', async () => {
      const [a, b] = socketPair();
      const ac = new AbortController();
      ac.abort(new Error('not any more'));
      await assert.rejects(Subscriber.attach(b, { signal: ac.signal }),
        (err: Error) => err.name === 'AbortError' && (err.cause as Error).message === 'not any more');
      assert.equal(b.closed, true);
      a.close();
    });

    it('connect() to a listener that accepts and stays silent gives up too', async () => {
      const sock = path.join(os.tmpdir(), `memseal-silent-${process.pid}.sock`);
      const held: Channel[] = [];
      const server = await listen(sock);
      server.on('connection', (ch: Channel) => held.push(ch));
      await assert.rejects(Subscriber.connect(sock, { signal: AbortSignal.timeout(100) }), { code: 'ABORT_ERR' });
      server.close();
      for (const ch of held) ch.close();
    });

    it('a signal that is not an AbortSignal is ERR_INVALID_ARG_TYPE', async () => {
      const [a, b] = socketPair();
      await assert.rejects(Subscriber.attach(b, { signal: {} as AbortSignal }), { code: 'ERR_INVALID_ARG_TYPE' });
      a.close();
      b.close();
    });
  });

  describe('resources', () => {
    it('1,000 attach/detach cycles leave descriptors and mappings flat', async function () {
      this.timeout(60000);
      const pub = Publisher.create({ slots: 4, slotSize: 4096, name: 'cycles-pool' });
      await pub.publish('latest');
      const fds = countFds();
      const maps = poolMappings('cycles-pool');
      const all = countMappings();
      for (let i = 0; i < 1000; i++) {
        const [a, b] = socketPair();
        void pub.attach(a);
        const sub = await Subscriber.attach(b);
        const s = await sub.receive();
        s.release();
        sub.close();
      }
      await until(() => pub.subscriberCount === 0);
      await until(() => countFds() <= fds).catch(() => {});
      assert.equal(countFds(), fds);
      assert.equal(poolMappings('cycles-pool'), maps, 'every subscriber mapping of the pool is gone');
      // the heap grows a little over 1,000 cycles (V8's own VMAs); a leaked mapping per cycle would be 1,000 more
      assert.ok(countMappings() - all < 100, `mappings ${all} -> ${countMappings()}`);
      pub.close();
    });
  });
});
