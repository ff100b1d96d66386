// The receiving side of bench/pubsub.js. Mode (argv[2]):
//   sub PATH    Subscriber.connect(PATH): checksum each sample, release it
//   slowsub PATH  the same, sleeping 100 ms per sample before releasing it
//   rawsub PATH   a raw peer: connect, acknowledge HELLO, read every message, never release anything
//   (sub, slowsub, rawsub PATH on-demand: attach on the message 'attach', close on 'leave')
// Any mode answers { count, cpu, wait, idle } to the message 'count': samples read so far, this
// process's CPU time (µs), its time waiting for a CPU on a run queue (µs, /proc/self/schedstat) and,
// for sub, the time spent waiting for the next sample (µs) and the longest such wait since the last 'count'.
//   ipc         Buffers from child.send() (advanced serialization)
//   sealed      SealedBuffers over Channel.fromParent() (spawnWithChannel with an IPC slot)
//   net PATH    frames (u64 length + bytes) over a Unix stream socket
// Every mode counts samples; the parent sends { expect: total } over IPC and the child answers
// 'done' once it has read that many in all (samples may arrive before or after the request).
'use strict';
const net = require('node:net');
const { checksum, onFrames } = require('./lib');

const mode = process.argv[2];
let total = 0;
let expect = Infinity;
let sink = 0;
let idleUs = 0;
let maxIdleUs = 0;  // the longest single wait for a sample since the last 'count'

/** µs this process has waited on a run queue for a CPU (the second field of /proc/self/schedstat), or 0. */
function runqueueWait() {
  try {
    return Number(require('node:fs').readFileSync('/proc/self/schedstat', 'utf8').split(' ')[1]) / 1000;
  } catch {
    return 0;
  }
}

function got(bytes) {
  sink += checksum(bytes);
  total++;
  check();
}

function check() {
  if (total >= expect) {
    expect = Infinity;
    process.send('done');
  }
}

process.on('message', (m) => {
  if (m && typeof m.expect === 'number') {
    expect = m.expect;
    check();
  } else if (m === 'count') {
    const cpu = process.cpuUsage();
    process.send({ count: total, cpu: cpu.user + cpu.system, wait: runqueueWait(), idle: idleUs, maxIdle: maxIdleUs });
    maxIdleUs = 0;
  } else if (m === 'pss-ready') {
    process.send('ready');
  } else if (mode === 'ipc' && m !== null && typeof m === 'object') {
    got(m);
  }
});
process.on('disconnect', () => process.exit(0));

// A subscriber that runs from start(): at once, or with argv[4] 'on-demand' on each message 'attach',
// until the message 'leave' closes it (answered 'left'), so one warm process can attach again and again.
let leave = null;
function subscribe(start) {
  const run = () => start().catch((err) => { if (err.code !== 'ERR_MEMSEAL_DETACHED') console.error(err); });
  if (process.argv[4] !== 'on-demand') return void run();
  process.on('message', (m) => {
    if (m === 'attach') run();
    else if (m === 'leave' && leave !== null) {
      leave();
      leave = null;
      process.send('left');
    }
  });
}

if (mode === 'sub' || mode === 'slowsub') {
  const { Subscriber } = require('..');
  subscribe(async () => {
    const sub = await Subscriber.connect(process.argv[3], { maxSize: 2 ** 32 });
    leave = () => sub.close();
    process.send('attached');
    let t = performance.now();
    for await (const s of sub) {
      const waited = (performance.now() - t) * 1000;
      idleUs += waited;
      if (waited > maxIdleUs) maxIdleUs = waited;
      got(s.bytes.subarray(0, s.length));
      if (mode === 'slowsub') await new Promise((r) => setTimeout(r, 100));
      s.release();
      t = performance.now();
    }
  });
} else if (mode === 'rawsub') {
  const { connect } = require('..');
  subscribe(async () => {
    const ch = await connect(process.argv[3]);
    leave = () => ch.close();
    process.send('attached');
    let first = true;
    for await (const m of ch) {
      m.closeFds();
      if (first) await ch.send(Buffer.from([16, 0, 0, 0]));  // an empty RELEASE: "I read HELLO"
      else if (m.data[0] === 2) total += m.data.readUInt16LE(2);
      first = false;
    }
  });
} else if (mode === 'sealed') {
  const { Channel } = require('..');
  const channel = Channel.fromParent();
  (async () => {
    for (;;) {
      let r;
      try {
        r = await channel.receiveBuffer({ maxSize: 2 ** 31 });
      } catch (err) {
        if (channel.closed) return;
        throw err;
      }
      got(r.buffer.bytes);
      r.buffer.close();
    }
  })().catch((err) => { console.error(err); process.exit(1); });
} else if (mode === 'net') {
  const sock = net.connect(process.argv[3]);
  onFrames(sock, got);
  sock.on('close', () => process.exit(0));
} else if (mode !== 'ipc') {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
process.on('exit', () => { if (sink < 0) console.log(sink); });
