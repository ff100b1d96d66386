// The publisher's hand-out leaves the event loop a turn: a producer that loops on publish()/loan()
// (each resolves at once while a slot is free) must not starve its subscribers of their releases.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import { Publisher, Subscriber } from '../../src';
import { TURN_SAMPLES } from '../../src/pubsub/turn';
import { FIXTURES } from '../helpers';
import { attachPair } from './harness';

const CHECKER = path.join(FIXTURES, 'pool-checker.js');

describe('Publisher: one turn of the event loop', () => {
  let child: ChildProcess | undefined;
  afterEach(() => { child?.kill('SIGKILL'); child = undefined; });

  it('a producer looping on publish() with nothing else to await still lets a subscriber process receive', async () => {
    using pub = Publisher.create({ slotSize: 4096, maxSubscribers: 1 });
    const sock = path.join(os.tmpdir(), `memseal-turn-${process.pid}.sock`);
    await pub.listen(sock);
    child = spawn(process.execPath, [CHECKER, sock, 'count', '50'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => { out += s; });
    await once(pub, 'attach');
    const frame = Buffer.alloc(4096);
    let n = 0;
    // nothing in this loop waits on I/O: only the publisher can let the child's releases (and its stdout) in
    while (!out.includes('\n') && n < 300000) {
      frame.writeDoubleLE(n + 1, 0);
      frame.fill((n + 1) & 0xff, 8);
      await pub.publish(frame);
      n++;
    }
    assert.match(out, /^got 50 bad=0\n/, `the subscriber got its 50 samples while the producer looped (${n} published)`);
    assert.ok(n < 300000);
  });

  it('loans past the budget resolve on the next turn, in the order they were asked for', async () => {
    const count = 3 * TURN_SAMPLES;
    using pub = Publisher.create({ slotSize: 64, slots: count + 2, maxSubscribers: 1, maxHeld: count, delivery: 'all' });
    const sub = await attachPair(pub);
    let turned = false;
    setImmediate(() => { turned = true; });
    const sent = Array.from({ length: count }, (_, i) => pub.loan().then((loan) => {
      loan.bytes.write(`s${i}`, 'latin1');
      return loan.send(1 + String(i).length);
    }));
    await Promise.resolve();  // the loans served at once send in this microtask round
    assert.ok(pub.sequence >= 1 && pub.sequence <= TURN_SAMPLES, 'at most TURN_SAMPLES before a turn; the rest wait for the next turns');
    await Promise.all(sent);
    assert.ok(turned, 'the event loop turned before every loan was served');
    assert.deepEqual(await receiveAll(sub, count), Array.from({ length: count }, (_, i) => `s${i}`));
    sub.close();
  });

  it('publish() past the budget copies and publishes at once; only its promise waits for the turn', async () => {
    const count = 3 * TURN_SAMPLES;
    using pub = Publisher.create({ slotSize: 64, slots: count + 2, maxSubscribers: 1, maxHeld: count, delivery: 'all' });
    const sub = await attachPair(pub);
    const frame = Buffer.alloc(8);
    const sent: Promise<void>[] = [];
    for (let i = 0; i < count; i++) {
      frame.write(`p${i}`.padEnd(8), 'latin1');  // one buffer, changed after every call: each call must have copied it
      sent.push(pub.publish(frame));
    }
    assert.equal(pub.sequence, count);
    let settled = 0;
    for (const p of sent) void p.then(() => settled++);
    await Promise.resolve();
    await Promise.resolve();
    assert.equal(settled, TURN_SAMPLES, 'the first TURN_SAMPLES resolve at once, the rest after a turn');
    await Promise.all(sent);
    assert.deepEqual((await receiveAll(sub, count)).map((t) => t.trim()), Array.from({ length: count }, (_, i) => `p${i}`));
    sub.close();
  });
});

/** The text of the next `count` samples, each released. */
async function receiveAll(sub: Subscriber, count: number): Promise<string[]> {
  const got: string[] = [];
  for (let i = 0; i < count; i++) {
    const s = await sub.receive();
    got.push(s.bytes.toString('latin1', 0, s.length));
    s.release();
  }
  return got;
}
