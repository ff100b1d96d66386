// Streams no subscriber can stall or corrupt: quotas and the pool's capacity, skip-to-newest delivery,
// no slot reused while a live subscriber may read it, why a stream ended, bounds on what peers make us hold.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import { features, type Loan, Publisher, type Sample, Subscriber, socketPair } from '../../src';
import * as P from '../../src/pubsub/protocol';
import { FIXTURES, skipUnless, until } from '../helpers';
import { attachPair } from './harness';

const CHECKER = path.join(FIXTURES, 'pool-checker.js');

function tick(ms = 0): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Frame s: s as a little-endian double, then s & 0xff in every byte. */
function fill(bytes: Buffer, seq: number): void {
  bytes.writeDoubleLE(seq, 0);
  bytes.fill(seq & 0xff, 8);
}

function badBytes(s: Sample): number {
  const b = s.bytes;
  let bad = b.readDoubleLE(0) === s.sequence ? 0 : 1;
  for (let i = 8; i < b.length; i++) if (b[i] !== (s.sequence & 0xff)) bad++;
  return bad;
}

/** Lines of a child's stdout, awaited by pattern. */
function lines(child: ChildProcess): (re: RegExp) => Promise<string> {
  let text = '';
  const waiting: Array<[RegExp, (s: string) => void]> = [];
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    text += chunk;
    for (let i = 0; i < waiting.length; i++) {
      const m = waiting[i]![0].exec(text);
      if (m) {
        waiting[i]![1](m[0]);
        waiting.splice(i--, 1);
      }
    }
  });
  return (re) => {
    const m = re.exec(text);
    return m ? Promise.resolve(m[0]) : new Promise((resolve) => waiting.push([re, resolve]));
  };
}

/** Publishes patterned frames flat out (yielding to I/O every 16) until stop() is called. */
function flatOut(pub: Publisher): { stop(): Promise<number>; count(): number } {
  let run = true;
  let n = 0;
  const done = (async () => {
    while (run && !pub.closed) {
      const loan: Loan = await pub.loan();
      fill(loan.bytes, pub.sequence + 1);
      await loan.send();
      if (++n % 16 === 0) await new Promise((r) => setImmediate(r));
    }
  })();
  return { stop: async () => { run = false; await done; return n; }, count: () => n };
}

describe('Publisher/Subscriber isolation', function () {
  this.timeout(30000);
  before(function () {
    skipUnless(this, features.futureWrite, 'needs F_SEAL_FUTURE_WRITE (Linux 5.1)');
  });
  const sock = (tag: string) => path.join(os.tmpdir(), `memseal-iso-${tag}-${process.pid}.sock`);

  describe('capacity', () => {
    it('derives slots from maxSubscribers × maxHeld + maxLoans + 1 when slots is not given', () => {
      using a = Publisher.create({ slotSize: 64 });
      assert.deepEqual([a.slots, a.maxSubscribers, a.maxHeld, a.maxLoans, a.delivery], [8 * 2 + 1 + 1, 8, 2, 1, 'latest']);
      using b = Publisher.create({ slotSize: 64, maxSubscribers: 3, maxHeld: 4, maxLoans: 2 });
      assert.equal(b.slots, 3 * 4 + 2 + 1);
    });

    it('checks a given slots against the quotas and says how many are missing', () => {
      assert.throws(() => Publisher.create({ slotSize: 64, slots: 6, maxSubscribers: 3, maxHeld: 2 }),
        { code: 'ERR_MEMSEAL_SIZE', message: /6 slots cannot hold maxSubscribers 3 × maxHeld 2 \+ maxLoans 1 = 7: 1 slot\(s\) missing/ });
      using p = Publisher.create({ slotSize: 64, slots: 8 });  // the rest derived: quota 1, as many seats as fit
      assert.deepEqual([p.maxHeld, p.maxSubscribers], [1, 7]);
    });

    it('refuses an attach beyond maxSubscribers, with a reason on both sides', async () => {
      using pub = Publisher.create({ slotSize: 64, maxSubscribers: 1 });
      using first = await attachPair(pub);
      const [a, b] = socketPair();
      const refused = pub.attach(a);
      await assert.rejects(refused, { code: 'ERR_MEMSEAL_QUEUE_FULL', message: /maxSubscribers 1/ });
      await assert.rejects(Subscriber.attach(b), { code: 'ERR_MEMSEAL_DETACHED', message: /refused: full.*maxSubscribers 1/ });
      assert.equal(pub.subscriberCount, 1);
      assert.equal(first.closed, false);
    });
  });

  describe("delivery 'latest' (the default)", () => {
    it('skips a subscriber at its quota without waiting; it gets the newest on release, and sees the gap in missed', async () => {
      using pub = Publisher.create({ slotSize: 64, maxSubscribers: 2, maxHeld: 2 });
      using fast = await attachPair(pub);
      using stuck = await attachPair(pub);
      const slow: string[] = [];
      pub.on('slow', (info, why) => slow.push(`${info.id} ${why}`));
      for (let seq = 1; seq <= 50; seq++) {
        const loan = pub.loan();
        let immediate = false;
        void loan.then(() => { immediate = true; });
        await Promise.resolve();
        assert.ok(immediate, `loan ${seq} was served at once`);
        const l = await loan;
        fill(l.bytes, seq);
        await l.send();
        const s = await fast.receive();
        assert.equal(s.sequence, seq);
        assert.equal(badBytes(s), 0);
        s.release();
      }
      assert.equal(fast.missed, 0);
      assert.deepEqual(slow, ['2 skipped'], "'slow' once for the run of skips, naming the stuck subscriber");
      const info = pub.subscribers.find((s) => s.id === 2)!;
      assert.deepEqual([info.pid, info.held, info.quota, info.missed, info.state], [process.pid, 2, 2, 48, 'attached']);
      const [one, two] = [await stuck.receive(), await stuck.receive()];
      assert.deepEqual([one.sequence, two.sequence], [1, 2]);
      one.release();
      const newest = await stuck.receive();
      assert.equal(newest.sequence, 50, 'the newest sample, not the next one');
      assert.equal(badBytes(newest), 0);
      assert.equal(stuck.missed, 47);
      two.release();
      newest.release();
    });

    it('a subscriber refuses announcements past the quota its HELLO declared (hostile publisher)', async () => {
      using pub = Publisher.create({ slotSize: 64, slots: 8, maxSubscribers: 1, maxHeld: 2 });
      const [raw, b] = socketPair();
      const g = P.geometry(pub.slots, pub.slotSize, 4096);
      await raw.send(P.encodeHello(g, { quota: 2, deliveryAll: false }), [pub.fd]);
      using sub = await Subscriber.attach(b);
      assert.equal(sub.quota, 2);
      const e = (slot: number, sequence: number) => ({ slot, sequence, length: 8, meta: Buffer.alloc(4096) });
      await raw.send(P.encodeSamples([e(0, 1), e(1, 2), e(2, 3)]));
      await assert.rejects(sub.receive(), { code: 'ERR_MEMSEAL_PROTOCOL', message: /holding 0 of its quota of 2/ });
      assert.equal(sub.held, 0, 'nothing of it was queued');
      raw.close();
    });
  });

  describe('no slot is reused while a live subscriber may read it', () => {
    let child: ChildProcess | undefined;
    afterEach(() => { child?.kill('SIGKILL'); child = undefined; });

    async function holdingChild(pub: Publisher, p: string): Promise<(re: RegExp) => Promise<string>> {
      await pub.listen(p);
      child = spawn(process.execPath, [CHECKER, p, 'hold'], { stdio: ['pipe', 'pipe', 'inherit'] });
      const next = lines(child);
      return next;
    }

    it('after a detach: the held frame stays intact while the publisher runs flat out; nothing queued is delivered', async () => {
      const pub = Publisher.create({ slotSize: 4096, slots: 6, maxHeld: 2, delivery: 'all', slowTimeout: 50 });
      const next = await holdingChild(pub, sock('detach'));
      const attached = once(pub, 'attach');
      await attached;
      const run = flatOut(pub);
      assert.match(await next(/holding \d+ bad=\d+/), /bad=0/);
      const [info, reason] = await once(pub, 'detach');
      assert.equal(reason, 'slow');
      const after = run.count();
      await until(() => run.count() > after + 3000, 'the publisher to reuse every other slot many times');
      child!.stdin!.write('check\n');
      const result = await next(/checked .*/);
      await run.stop();
      assert.equal(result, 'checked bad=0 end=ERR_MEMSEAL_DETACHED');
      assert.equal(info.state, 'detached', 'it kept its seat (and slots) until it released and hung up');
      pub.close();
    });

    it('after subscriber.close() with a sample still held: intact until released, then the subscriber hangs up', async () => {
      const pub = Publisher.create({ slotSize: 4096, slots: 4, maxHeld: 2 });
      const next = await holdingChild(pub, sock('close'));
      await once(pub, 'attach');
      const run = flatOut(pub);
      assert.match(await next(/holding \d+ bad=\d+/), /bad=0/);
      child!.stdin!.write('close\n');
      await next(/closed/);
      const before = run.count();
      await until(() => run.count() > before + 3000, 'the publisher to run on');
      child!.stdin!.write('check\n');
      const result = await next(/checked .*/);
      const [, reason] = await once(pub, 'detach');
      await run.stop();
      assert.equal(result, 'checked bad=0 end=ERR_MEMSEAL_CLOSED');
      assert.equal(reason, 'closed');
      pub.close();
    });

    it('a fast subscriber reads every frame intact beside a stuck one, the publisher flat out', async () => {
      using pub = Publisher.create({ slotSize: 4096, maxSubscribers: 2, maxHeld: 2 });
      using fast = await attachPair(pub);
      using stuck = await attachPair(pub);
      const run = flatOut(pub);
      let bad = 0;
      let got = 0;
      let last = 0;
      let first = 0;
      for await (const s of fast) {
        first ||= s.sequence;
        bad += badBytes(s);
        assert.ok(s.sequence > last);
        last = s.sequence;
        s.release();
        if (++got === 2000) break;
      }
      await run.stop();
      assert.equal(bad, 0);
      assert.equal(fast.missed, last - first + 1 - got, 'missed counts exactly the gaps in sequence');
      assert.ok(stuck.held <= 2);
    });
  });

  describe('why a stream ended', () => {
    it("the publisher's clean close() ends iteration quietly after the samples already announced", async () => {
      const pub = Publisher.create({ slotSize: 64, maxHeld: 3 });
      const sub = await attachPair(pub);
      for (const t of ['a', 'b', 'c']) await pub.publish(t);
      pub.close();
      const got: string[] = [];
      for await (const s of sub) {
        got.push(s.bytes.toString('latin1', 0, 1));
        s.release();
      }
      assert.deepEqual(got, ['a', 'b', 'c']);
      assert.equal(sub.failure, null);
      await assert.rejects(sub.receive(), { code: 'ERR_MEMSEAL_CLOSED' });
    });

    it('a detach makes the iterator throw ERR_MEMSEAL_DETACHED, not end quietly', async () => {
      using pub = Publisher.create({ slotSize: 64, slots: 4, maxHeld: 1, delivery: 'all', slowTimeout: 0 });
      using sub = await attachPair(pub);
      await pub.publish('x');
      const loop = (async () => {
        for await (const s of sub) void s;  // holds every sample: at its quota after the first
      })();
      await pub.publish('y');
      await assert.rejects(loop, { code: 'ERR_MEMSEAL_DETACHED' });
    });
  });

  describe('bounds and re-entrancy', () => {
    it('lets go of a connection that never acknowledges HELLO, also while the publisher is idle', async () => {
      using pub = Publisher.create({ slotSize: 64, maxSubscribers: 1, idleTimeout: 50 });
      const [a, silent] = socketPair();
      const detached = once(pub, 'detach');
      await pub.attach(a);
      const [info, reason] = await detached;
      assert.deepEqual([info.id, reason], [1, 'idle']);
      assert.equal(pub.subscriberCount, 0, 'the seat is free again');
      using _honest = await attachPair(pub);
      assert.equal(pub.subscriberCount, 1);
      silent.close();
    });

    it("detaching from inside send(), from a RELEASE and from a hang-up never breaks the slot hand-out", async () => {
      const pub = Publisher.create({ slots: 8, slotSize: 64, maxHeld: 2, maxSubscribers: 3, onSlow: 'detach' });
      const errors: unknown[] = [];
      const honest = await attachPair(pub);
      void (async () => { for await (const s of honest) { await tick(1); s.release(); } })().catch(() => {});
      let stop = false;
      let sent = 0;
      const producer = async () => {
        while (!stop) {
          try {
            const l = await pub.loan();
            fill(l.bytes, 1);
            await l.send(8);
            sent++;
          } catch (err) {
            if (!stop) errors.push(err);
            return;
          }
          await tick(0);
        }
      };
      const producers = [producer(), producer(), producer()];
      // stuck subscribers come and go: detached at their quota inside send() and RELEASE handling, then hang up
      for (let i = 0; i < 20; i++) {
        const stuck = await attachPair(pub);
        await until(() => stuck.held >= 1 || stuck.failure !== null, 'a sample for the stuck one');
        if (i % 2 === 0) stuck.close(); else await until(() => stuck.failure !== null, 'its detach');
        stuck.close();
      }
      stop = true;
      await Promise.all(producers);
      honest.close();
      await until(() => pub.subscriberCount === 0, 'every subscriber gone');
      assert.deepEqual(errors, []);
      assert.ok(sent > 20);
      // every slot can be loaned: none was lost to a half-finished hand-out
      const loans = await Promise.all(Array.from({ length: 8 }, () => pub.loan()));
      assert.deepEqual(loans.map((l) => l.slot).sort(), [0, 1, 2, 3, 4, 5, 6, 7]);
      for (const l of loans) l.cancel();
      pub.close();
    });
  });
});
