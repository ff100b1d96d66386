// The main job: hand a sealed 64 MiB buffer to a child process, which verifies
// the seals before mapping it and checksums it — and the same bytes through
// child.send() (advanced serialization) for comparison.
// Run: npm run demo            (size in MiB: npm run demo -- 256)
'use strict';
const { fork } = require('node:child_process');
const path = require('node:path');
const { SealedBuffer, spawnWithChannel, sealNames } = require('..');

const MiB = 1024 * 1024;
const size = Number(process.argv[2] ?? 64) * MiB;
const CHILD = path.join(__dirname, 'demo-child.js');
const ROUNDS = 5;

function fillPattern(bytes) {
  for (let i = 0; i < bytes.length; i += 4096) bytes[i] = (i / 4096) & 0xff;
  return bytes;
}
function checksum(bytes) {
  let s = 0;
  for (let i = 0; i < bytes.length; i += 4096) s += bytes[i];
  return s;
}
const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;
const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function viaMemseal() {
  const { child, channel } = spawnWithChannel(process.execPath, [CHILD, 'memseal'], { stdio: 'inherit' });
  const times = [];
  let report;
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    // The producer writes straight into the shared pages; then they are sealed.
    const sb = SealedBuffer.create(size, fillPattern, { name: 'demo-payload' });
    const reply = channel.receive();
    await channel.sendBuffer(sb, 'payload');
    report = JSON.parse((await reply).data.toString());
    times.push(ms(t0));
    if (r === 0) console.log(`  sent fd ${sb.fd} (${sealNames(sb.seals).join(', ')}), ${sb.size} bytes`);
    sb.close();
  }
  channel.close();
  await new Promise((resolve) => child.once('exit', resolve));
  return { times, report };
}

async function viaChildSend() {
  const child = fork(CHILD, ['ipc'], { serialization: 'advanced', stdio: 'inherit' });
  const times = [];
  let report;
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    const bytes = fillPattern(Buffer.alloc(size)); // the same work for the producer
    const reply = new Promise((resolve) => child.once('message', resolve));
    child.send(bytes);
    report = await reply;
    times.push(ms(t0));
  }
  child.disconnect();
  await new Promise((resolve) => child.once('exit', resolve));
  return { times, report };
}

(async () => {
  const want = checksum(fillPattern(Buffer.alloc(size)));
  console.log(`memseal demo: ${size / MiB} MiB, parent ${process.pid} -> child, ${ROUNDS} rounds each\n`);
  console.log('memseal (sealed memfd over SCM_RIGHTS, verified, mapped copy-on-write):');
  const a = await viaMemseal();
  console.log(`  child ${a.report.pid} verified: ${a.report.verified}; checksum ${a.report.sum === want ? 'ok' : 'WRONG'}`);
  console.log('child.send() (advanced serialization, copied through a pipe):');
  const b = await viaChildSend();
  console.log(`  child ${b.report.pid} checksum ${b.report.sum === want ? 'ok' : 'WRONG'}`);
  const ma = median(a.times), mb = median(b.times);
  console.log('\n                      median      min      max   (ms, create/fill -> child verified + checksummed)');
  for (const [name, t, m] of [['memseal', a.times, ma], ['child.send()', b.times, mb]]) {
    console.log(`  ${name.padEnd(16)} ${m.toFixed(1).padStart(9)} ${Math.min(...t).toFixed(1).padStart(8)} ${Math.max(...t).toFixed(1).padStart(8)}`);
  }
  console.log(`\nmemseal was ${(mb / ma).toFixed(1)}x faster, and the child never held a second copy of the bytes.`);
  if (a.report.sum !== want || b.report.sum !== want) process.exitCode = 1;
})().catch((err) => { console.error(err); process.exit(1); });
