// The receiving side of the benchmarks. Mode (argv[2]):
//   memseal  receive SealedBuffers over Channel.fromParent(), reply with the checksum
//   ipc      receive Buffers (advanced serialization) or base64 JSON via process.on('message')
//   net      connect to the Unix stream socket argv[3]; frames: u64 length + bytes
//   echo     Channel ping-pong: send every received fd straight back
//   drain    Channel pipelining: close every received fd; answer the count at each end marker
//   netecho  connect to the Unix stream socket argv[3] and echo every byte (Node's own round-trip floor)
// With argv includes --hold, a receiver keeps what it received until told to release it (fan-out RSS),
// and answers 'released' when it has.
'use strict';
const net = require('node:net');
const { checksum, onFrames } = require('./lib');

const mode = process.argv[2];
const hold = process.argv.includes('--hold');
let held = null;

if (mode === 'memseal' || mode === 'echo' || mode === 'drain') {
  const { Channel } = require('..');
  const channel = Channel.fromParent();
  if (mode === 'memseal') {
    (async () => {
      for (;;) {
        let got;
        try {
          got = await channel.receiveBuffer({ maxSize: 2 ** 31 });
        } catch (err) {
          if (channel.closed) return;
          throw err;
        }
        const { buffer, meta } = got;
        if (meta.toString() === 'release') { buffer.close(); if (held) held.close(); held = null; await channel.send('released'); continue; }
        const sum = checksum(buffer.bytes);
        if (hold) held = buffer; else buffer.close();
        await channel.send(String(sum));
      }
    })().catch((err) => { console.error(err); process.exit(1); });
  } else if (mode === 'echo') {
    // the message straight back; its descriptors may be closed as soon as send() returns (a send that
    // has to wait owns duplicates), as Channel.send() documents
    channel.on('message', (msg) => {
      channel.send(msg.data, msg.fds).catch((err) => {
        if (channel.closed) return;  // the parent went first: nothing to answer
        console.error(err);  // a failed echo would leave the parent waiting: fail loudly
        process.exit(1);
      });
      msg.closeFds();
    });
  } else {
    let n = 0;
    channel.send('ready');
    channel.on('message', (msg) => {
      if (msg.fds.length) {
        n++;
        msg.closeFds();
      } else {
        channel.send(String(n));  // one answer per round: the parent measures several
        n = 0;
      }
    });
  }
  channel.on('close', () => process.exit(0));
} else if (mode === 'ipc') {
  process.on('message', (m) => {
    if (m === 'release') { held = null; process.send('released'); return; }
    const bytes = typeof m === 'object' && m !== null && typeof m.b64 === 'string' ? Buffer.from(m.b64, 'base64') : m;
    const sum = checksum(bytes);
    if (hold) held = bytes;
    process.send(String(sum));
  });
  process.on('disconnect', () => process.exit(0));
} else if (mode === 'net') {
  const sock = net.connect(process.argv[3]);
  onFrames(sock, (frame) => {
    const sum = Buffer.alloc(8);
    sum.writeBigUInt64LE(BigInt(checksum(frame)));
    sock.write(sum);
  });
  sock.on('close', () => process.exit(0));
} else if (mode === 'netecho') {
  // Node's own floor for a round trip: echo every byte back over a Unix stream socket (no descriptors)
  const sock = net.connect(process.argv[3]);
  sock.on('data', (d) => sock.write(d));
  sock.on('close', () => process.exit(0));
} else {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
