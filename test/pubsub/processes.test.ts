// Publisher/Subscriber across real processes: a hostile publisher, and peers that die.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import { type Channel, features, Publisher, Subscriber, spawnWithChannel } from '../../src';
import { countFds, skipUnless, until } from '../helpers';
import { lines, poolFds, poolMappings, PUBLISHER, SUBSCRIBER } from './harness';

describe('Publisher/Subscriber', function () {
  before(function () {
    skipUnless(this, features.futureWrite, 'needs F_SEAL_FUTURE_WRITE (Linux 5.1)');
  });
  describe('hostile publisher (a real child process)', function () {
    this.timeout(30000);

    async function attachTo(mode: string, maxSize?: number): Promise<{ result: Subscriber | Error; close: () => Promise<void> }> {
      const { child, channel } = spawnWithChannel(process.execPath, [PUBLISHER, mode], { stdio: ['ignore', 'pipe', 'inherit'] });
      const out = lines(child.stdout!);
      const result = await Subscriber.attach(channel, { maxSize }).then((s) => s, (e: Error) => e);
      return {
        result,
        close: async () => {
          await out.next(/sent\n/);
          if (!(result instanceof Error)) result.close();
          channel.close();
          if (child.exitCode === null) await once(child, 'exit');
        },
      };
    }

    const refusals: [string, string, RegExp, number?][] = [
      ['notmemfd', 'ERR_MEMSEAL_NOT_MEMFD', /not a memfd/],
      ['writable', 'ERR_MEMSEAL_NOT_SEALED', /neither write nor future_write/],
      ['noshrink', 'ERR_MEMSEAL_NOT_SEALED', /missing seals: shrink/],
      ['nogrow', 'ERR_MEMSEAL_NOT_SEALED', /missing seals: grow/],
      ['small', 'ERR_MEMSEAL_SIZE', /HELLO says/],
      ['big', 'ERR_MEMSEAL_SIZE', /over maxSize 1048576/, 1 << 20],
      ['nofd', 'ERR_MEMSEAL_NOT_MEMFD', /no descriptor/],
      ['twofds', 'ERR_MEMSEAL_CTRUNC', /2 descriptors/],
      ['garbage', 'ERR_MEMSEAL_PROTOCOL', /not a pool HELLO/],
      ['mismatch', 'ERR_MEMSEAL_PROTOCOL', /header does not match/],
      ['version', 'ERR_MEMSEAL_PROTOCOL', /version 99/],
    ];
    for (const [mode, code, message, maxSize] of refusals) {
      it(`refuses a pool HELLO: ${mode} (${code}), every descriptor closed`, async () => {
        const fds = countFds();
        const maps = poolMappings('hostile-pool');
        const { result, close } = await attachTo(mode, maxSize);
        assert.ok(result instanceof Error, 'refused');
        assert.equal((result as { code?: string }).code, code);
        assert.match(result.message, message);
        await close();
        assert.equal(countFds(), fds);
        assert.equal(poolMappings('hostile-pool'), maps);
      });
    }

    const violations: [string, RegExp][] = [
      ['slot', /slot 4 is out of range/],
      ['length', /length 4097 is out of range/],
      ['sequence', /sequence -1 is out of range|sequence \d+ is out of range/],
      ['zero', /sequence 0 is out of range/],
      ['backwards', /sequence 1 is not after 1/],
      ['again', /announced slot 1 again/],
      ['truncated', /truncated/],
      ['unknown', /unknown message type 66/],
      ['fd', /bad message/],
    ];
    for (const [bad, message] of violations) {
      it(`ends the stream on a bad sample: ${bad} (ERR_MEMSEAL_PROTOCOL once, then ERR_MEMSEAL_CLOSED)`, async () => {
        const fds = countFds();
        const maps = poolMappings('hostile-pool');
        const { result, close } = await attachTo(`after:${bad}`);
        assert.ok(result instanceof Subscriber);
        const good = await result.receive();
        assert.equal(good.slot, 1);
        await assert.rejects(result.receive(), (err: Error & { code?: string }) => {
          assert.equal(err.code, 'ERR_MEMSEAL_PROTOCOL');
          assert.match(err.message, message);
          return true;
        });
        await assert.rejects(result.receive(), { code: 'ERR_MEMSEAL_CLOSED' });
        good.release();
        await close();
        assert.equal(countFds(), fds);
        assert.equal(poolMappings('hostile-pool'), maps, 'unmapped once the last sample was released');
      });
    }
  });

  describe('peers that die', function () {
    this.timeout(30000);

    it('a subscriber SIGKILLed while holding samples: its slots return to the publisher', async () => {
      const sock = path.join(os.tmpdir(), `memseal-pool-kill-${process.pid}.sock`);
      const pub = Publisher.create({ slots: 5, slotSize: 64, maxHeld: 4 });
      await pub.listen(sock);
      const child = spawn(process.execPath, [SUBSCRIBER, sock, '3'], { stdio: ['ignore', 'pipe', 'inherit'] });
      await once(pub, 'attach');
      for (let i = 0; i < 3; i++) await pub.publish(`s${i}`);
      await lines(child.stdout!).next(/holding 3/);
      assert.equal(pub.subscribers[0]!.held, 3);
      const detached = once(pub, 'detach');
      child.kill('SIGKILL');
      const [info, reason] = await detached;
      assert.equal(reason, 'closed');
      assert.equal(info.held, 3);
      // every slot can be loaned again (the newest sample's slot too: only the retention holds it)
      const loans = [await pub.loan(), await pub.loan(), await pub.loan(), await pub.loan(), await pub.loan()];
      assert.deepEqual(loans.map((l) => l.slot).sort(), [0, 1, 2, 3, 4]);
      for (const l of loans) l.cancel();
      pub.close();
    });

    it('a publisher SIGKILLed: ERR_MEMSEAL_PUBLISHER_GONE, nothing queued delivered; held views stay valid until released', async () => {
      // A pool name of its own: a pool an earlier test mapped may still be on its way out (released off the loop).
      const name = `pool-killed-${process.pid}`;
      const { child, channel } = spawnWithChannel(process.execPath, [PUBLISHER, 'good', '3', name], { stdio: ['ignore', 'pipe', 'inherit'] });
      const sub = await Subscriber.attach(channel as Channel);
      await lines(child.stdout!).next(/published/);
      const first = await sub.receive();
      await until(() => sub.held === 3);  // two more queued
      child.kill('SIGKILL');
      await once(child, 'exit');
      await assert.rejects(sub.receive(), { code: 'ERR_MEMSEAL_PUBLISHER_GONE' });
      await assert.rejects(sub.receive(), { code: 'ERR_MEMSEAL_PUBLISHER_GONE' }, 'it stays the reason');
      assert.equal(sub.held, 1, 'the queued samples were dropped');
      assert.equal(first.bytes.toString(), 'sample 1');
      assert.equal(first.copy().toString(), 'sample 1');
      assert.equal(poolMappings(name), 1, 'mapped while a sample is held');
      first.release();
      assert.equal(poolMappings(name), 0, 'unmapped once the last one is released');
      assert.equal(first.bytes.length, 0);
      assert.equal(poolFds(name), 0, 'the pool descriptor is closed');
    });

    it('writing to a sample view kills the subscriber (SIGSEGV): the mapping is read-only', async () => {
      const script = `
        const { Publisher, Subscriber, socketPair } = require(${JSON.stringify(path.join(__dirname, '..', '..'))});
        (async () => {
          const pub = Publisher.create({ slots: 2, slotSize: 16 });
          const [a, b] = socketPair();
          void pub.attach(a);
          const sub = await Subscriber.attach(b);
          await pub.publish('x');
          const s = await sub.receive();
          console.log('writing');
          s.bytes[0] = 1;
          console.log('survived');
        })();`;
      const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d) => { out += d; });
      const [, signal] = await once(child, 'exit');
      assert.equal(signal, 'SIGSEGV');
      assert.match(out, /writing/);
      assert.doesNotMatch(out, /survived/);
    });
  });
});
