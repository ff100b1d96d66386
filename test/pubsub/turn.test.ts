// The publisher's hand-out leaves the event loop a turn: a producer that loops on publish()/loan()
// (each resolves at once while a slot is free) must not starve its subscribers of their releases.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import { Publisher, Subscriber, socketPair } from '../../src';
import { TURN_SAMPLES } from '../../src/pubsub/turn';
import { FIXTURES } from '../helpers';

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

  it('loans past one turn\'s budget resolve on the next turn, in the order they were asked for', async () => {
    const count = 3 * TURN_SAMPLES;
    using pub = Publisher.create({ slotSize: 64, slots: count + 2, maxSubscribers: 1, maxHeld: count, delivery: 'all' });
    const [a, b] = socketPair();
    const attached = pub.attach(a);
    using sub = await Subscriber.attach(b);
    await attached;
    let turned = false;
    setImmediate(() => { turned = true; });
    const sent = Array.from({ length: count }, (_, i) => pub.publish(`s${i}`));  // not awaited: one synchronous burst
    assert.ok(pub.sequence >= 1 && pub.sequence <= TURN_SAMPLES, 'one turn publishes at most TURN_SAMPLES; the rest wait for the next turns');
    await Promise.all(sent);
    assert.ok(turned, 'the event loop turned before the burst was published');
    const got: string[] = [];
    for (let i = 0; i < count; i++) {
      const s = await sub.receive();
      got.push(s.bytes.toString('latin1', 0, s.length));
      s.release();
    }
    assert.deepEqual(got, Array.from({ length: count }, (_, i) => `s${i}`));
  });
});
