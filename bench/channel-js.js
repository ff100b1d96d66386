// Channel throughput and latency: one descriptor per message over SOCK_SEQPACKET.
//   ping-pong: A sends (payload + 1 fd), B answers with (payload + 1 fd), A receives; one round trip = 2 messages.
//   pipelined: A sends N messages of 1 fd each without waiting; B takes each and closes its fd.
// Both in one process (socketPair) and parent <-> child (spawnWithChannel). No assertions.
// Usage: npm run build:ts && node bench/channel-js.js [roundTrips=20000] [pipelined=200000]
'use strict';
const fs = require('node:fs');
const { once } = require('node:events');
const { Channel, socketPair, spawnWithChannel, memfdCreate } = require('..');

if (process.env.MEMSEAL_CHANNEL_FD !== undefined) {
  // child: echo every message with its descriptor back ('pong' mode) or just close it ('sink' mode)
  const ch = Channel.fromParent();
  let sink = 0;
  ch.on('message', (m) => {
    const text = m.data.toString();
    if (text === 'count') { ch.send(String(sink)); return; }
    if (m.data.length === 1 && m.fds.length === 1 && m.data[0] === 0x73) { // 's': sink message
      fs.closeSync(m.fds[0]);
      sink++;
      return;
    }
    const fd = m.fds[0];
    ch.send(m.data, [fd]).finally(() => fs.closeSync(fd));
  });
  return;
}

const roundTrips = Number(process.argv[2] ?? 20000);
const pipelined = Number(process.argv[3] ?? 200000);
const memfd = memfdCreate('bench');
const PING = Buffer.from('p');

async function pingPong(a, n) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    await a.send(PING, [memfd]);
    const m = await a.receive();
    fs.closeSync(m.fds[0]);
  }
  return Number(process.hrtime.bigint() - t0) / n / 1000;  // µs per round trip
}

async function pipeline(a, n, done) {
  const S = Buffer.from('s');
  const t0 = process.hrtime.bigint();
  let last;
  for (let i = 0; i < n; i++) {
    // all at once: the channel queues under backpressure, up to its bound (maxQueuedFds), then waits for 'drain'
    if (a.queuedFds >= a.maxQueuedFds) await once(a, 'drain');
    last = a.send(S, [memfd]);
  }
  await last;
  await done();
  return n / (Number(process.hrtime.bigint() - t0) / 1e9);
}

(async () => {
  // --- one process ---
  {
    const [a, b] = socketPair();
    b.on('message', (m) => {
      if (m.data[0] === 0x73) { fs.closeSync(m.fds[0]); b.sunk = (b.sunk ?? 0) + 1; return; }
      const fd = m.fds[0];
      b.send(m.data, [fd]).finally(() => fs.closeSync(fd));
    });
    await pingPong(a, Math.min(roundTrips, 2000));
    const rt = await pingPong(a, roundTrips);
    const rate = await pipeline(a, pipelined, () => new Promise((resolve) => {
      const check = () => (b.sunk >= pipelined ? resolve() : setImmediate(check));
      check();
    }));
    console.log(`one process (socketPair): ping-pong ${rt.toFixed(1)} µs/round trip (${(rt / 2).toFixed(1)} µs/message), ` +
      `pipelined ${Math.round(rate).toLocaleString('en-US')} fds/s (${pipelined} messages of 1 fd)`);
    a.close();
    b.close();
  }
  // --- parent <-> child ---
  {
    const { child, channel } = spawnWithChannel(process.execPath, [__filename], { stdio: 'inherit' });
    await pingPong(channel, Math.min(roundTrips, 2000));
    const rt = await pingPong(channel, roundTrips);
    const rate = await pipeline(channel, pipelined, async () => {
      // the child counts what it received; ask until it has all (messages are ordered, so one ask suffices)
      await channel.send('count');
      const m = await channel.receive();
      if (Number(m.data.toString()) !== pipelined) console.log(`  (child counted ${m.data.toString()})`);
    });
    console.log(`parent <-> child (spawnWithChannel): ping-pong ${rt.toFixed(1)} µs/round trip (${(rt / 2).toFixed(1)} µs/message), ` +
      `pipelined ${Math.round(rate).toLocaleString('en-US')} fds/s`);
    channel.close();
    await new Promise((resolve) => child.on('exit', resolve));
  }
  fs.closeSync(memfd);
})();
