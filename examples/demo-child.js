// The receiving side of examples/demo.js.
'use strict';
const { Channel, sealNames } = require('..');

function checksum(bytes) {
  let s = 0;
  for (let i = 0; i < bytes.length; i += 4096) s += bytes[i];
  return s;
}

if (process.argv[2] === 'memseal') {
  const channel = Channel.fromParent();
  (async () => {
    for (;;) {
      let got;
      try {
        // Nothing is mapped before it is verified: a memfd, sealed SHRINK|GROW|WRITE, at most 1 GiB.
        got = await channel.receiveBuffer({ maxSize: 1 << 30 });
      } catch (err) {
        if (channel.closed) return;
        throw err;
      }
      const { buffer } = got;
      const sum = checksum(buffer.bytes);
      const verified = `${sealNames(buffer.seals).join(', ')}; ${buffer.size} bytes`;
      buffer.close();
      await channel.send(JSON.stringify({ pid: process.pid, sum, verified }));
    }
  })().catch((err) => { console.error(err); process.exit(1); });
  channel.on('close', () => process.exit(0));
} else {
  process.on('message', (bytes) => process.send({ pid: process.pid, sum: checksum(bytes) }));
  process.on('disconnect', () => process.exit(0));
}
