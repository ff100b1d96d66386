// The receiving side of bench/pubsub.js. Mode (argv[2]):
//   sub PATH    Subscriber.connect(PATH): checksum each sample, release it
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
  } else if (m === 'pss-ready') {
    process.send('ready');
  } else if (mode === 'ipc' && m !== null && typeof m === 'object') {
    got(m);
  }
});
process.on('disconnect', () => process.exit(0));

if (mode === 'sub') {
  const { Subscriber } = require('..');
  (async () => {
    const sub = await Subscriber.connect(process.argv[3], { maxSize: 2 ** 32 });
    process.send('attached');
    for await (const s of sub) {
      got(s.bytes.subarray(0, s.length));
      s.release();
    }
  })().catch((err) => { console.error(err); process.exit(1); });
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
