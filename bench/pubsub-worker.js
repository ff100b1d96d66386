// The receiving side of bench/pubsub.js. Mode (argv[2]):
//   sub PATH    Subscriber.connect(PATH): checksum each sample, release it
//   slowsub PATH  the same, sleeping 100 ms per sample before releasing it
//   rawsub PATH   a raw peer: connect, acknowledge HELLO, read every message, never release anything
// Any mode answers { count } to the message 'count' (samples read so far).
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
  } else if (m === 'count') {
    process.send({ count: total });
  } else if (m === 'pss-ready') {
    process.send('ready');
  } else if (mode === 'ipc' && m !== null && typeof m === 'object') {
    got(m);
  }
});
process.on('disconnect', () => process.exit(0));

if (mode === 'sub' || mode === 'slowsub') {
  const { Subscriber } = require('..');
  (async () => {
    const sub = await Subscriber.connect(process.argv[3], { maxSize: 2 ** 32 });
    process.send('attached');
    for await (const s of sub) {
      got(s.bytes.subarray(0, s.length));
      if (mode === 'slowsub') await new Promise((r) => setTimeout(r, 100));
      s.release();
    }
  })().catch((err) => { if (err.code !== 'ERR_MEMSEAL_DETACHED') console.error(err); });
} else if (mode === 'rawsub') {
  const { connect } = require('..');
  (async () => {
    const ch = await connect(process.argv[3]);
    process.send('attached');
    let first = true;
    for await (const m of ch) {
      m.closeFds();
      if (first) await ch.send(Buffer.from([16, 0, 0, 0]));  // an empty RELEASE: "I read HELLO"
      else if (m.data[0] === 2) total += m.data.readUInt16LE(2);
      first = false;
    }
  })().catch(() => {});
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
