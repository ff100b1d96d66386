// Load and peer-kill run (npm run test:load; .ci/run calls it): many client
// processes × connections × messages, each message a verified SealedBuffer,
// some clients SIGKILLed mid-stream. Asserts what issue 14 found held:
// nothing lost, duplicated or reordered; every survivor's stream exact; the
// killed ones a clean prefix; the server's descriptor count back to where it
// started. Bounded in time (exits 1 past the deadline).
//
// Usage: npm run build && node test/load/load.js [--clients 24] [--connections 2]
//          [--messages 500] [--kill 6] [--deadline 150]
'use strict';
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const { once } = require('node:events');
const { connect, listen, SealedBuffer } = require('../..');

const digest = (bytes) => crypto.createHash('sha256').update(bytes).digest('hex');
const countFds = () => fs.readdirSync('/proc/self/fd').length;

/** The bytes client `c`, connection `k` sends as message `seq`: deterministic, 64 B .. 8 KiB. */
function payload(c, k, seq) {
  const n = 64 + ((c * 7919 + k * 104729 + seq * 31) % 8128);
  const out = Buffer.alloc(n);
  out.write(`${c}:${k}:${seq}:`);
  for (let i = 16; i < n; i++) out[i] = (c + k * 3 + seq * 5 + i) & 0xff;
  return out;
}

function options(argv) {
  const o = { clients: 24, connections: 2, messages: 500, kill: 6, deadline: 150 };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in o)) throw new Error(`unknown option ${argv[i]}`);
    o[key] = Number(argv[i + 1]);
  }
  return o;
}

// ---- client process: node load.js client ADDRESS C CONNECTIONS MESSAGES ----
async function client(address, c, connections, messages) {
  await Promise.all(Array.from({ length: connections }, async (_, k) => {
    const ch = await connect(address);
    await ch.send(JSON.stringify({ c, k }));
    let acks = 0;
    const acked = (async () => {
      // the server answers every 100 messages with a sealed buffer of its own: verify it too
      for (;;) {
        const { buffer, meta } = await ch.receiveBuffer({ maxSize: 4096 });
        const text = buffer.bytes.toString();
        buffer.close();
        if (meta.toString() === 'end') {
          assert.equal(text, `received ${messages}`);
          return;
        }
        assert.equal(text, `ack ${(acks + 1) * 100}`);
        acks++;
      }
    })();
    const sends = [];
    for (let seq = 0; seq < messages; seq++) {
      const bytes = payload(c, k, seq);
      const sb = SealedBuffer.from(bytes);
      // the queue is bounded: a sender waits for 'drain' rather than being refused
      if (ch.queuedFds >= ch.maxQueuedFds || ch.queuedBytes >= ch.maxQueuedBytes - 65536) await once(ch, 'drain');
      sends.push(ch.sendBuffer(sb, JSON.stringify({ seq, sha: digest(bytes) })));
      sb.close();  // a queued send holds its own duplicate
      if (seq % 64 === 63) await Promise.all(sends.splice(0));
    }
    await Promise.all(sends);
    await acked;
    assert.equal(acks, Math.floor(messages / 100));
    ch.close();
  }));
}

// ---- the server: this process ----
async function main() {
  const o = options(process.argv.slice(2));
  const address = `\0memseal-load-${process.pid}`;
  const started = Date.now();
  const timer = setTimeout(() => {
    console.error(`load: deadline of ${o.deadline} s passed`);
    process.exit(1);
  }, o.deadline * 1000);

  const server = await listen(address);
  await new Promise((resolve) => setImmediate(resolve));
  const fdsBefore = countFds();
  let fdsMost = fdsBefore;
  const streams = new Map();  // "c:k" -> { received, ended, error }
  const killAt = new Map();   // "c:0" -> { child, at }: the victims
  let delivered = 0;
  let problems = [];
  server.on('warning', (w) => console.log(`load: server warning ${w.code} (retry in ${w.retryIn} ms)`));
  server.on('connection', async (ch) => {
    let key = '?';
    try {
      let first;
      try {
        first = await ch.receive();
      } catch (err) {
        if (err.code === 'ERR_MEMSEAL_CLOSED') return;  // a client killed before it said hello
        throw err;
      }
      const hello = JSON.parse(first.data.toString());
      key = `${hello.c}:${hello.k}`;
      const s = { received: 0, ended: false, error: null };
      streams.set(key, s);
      for (;;) {
        let got;
        try {
          got = await ch.receiveBuffer({ maxSize: 1 << 20 });
        } catch (err) {
          if (err.code === 'ERR_MEMSEAL_CLOSED') break;
          throw err;
        }
        const { buffer, meta } = got;
        const m = JSON.parse(meta.toString());
        const bytes = buffer.bytes;
        if (m.seq !== s.received) problems.push(`${key}: got seq ${m.seq}, expected ${s.received} (lost, duplicated or reordered)`);
        if (digest(bytes) !== m.sha || !bytes.equals(payload(hello.c, hello.k, m.seq))) problems.push(`${key}: seq ${m.seq} has the wrong bytes`);
        buffer.close();
        s.received++;
        delivered++;
        const kill = killAt.get(key);
        if (kill !== undefined && s.received === kill.at) kill.child.kill('SIGKILL');
        if (s.received % 100 === 0) {
          const ack = SealedBuffer.from(`ack ${s.received}`);
          ch.sendBuffer(ack, 'ack').catch(() => { /* a killed client */ });
          ack.close();
        }
        if (s.received === o.messages) {
          const end = SealedBuffer.from(`received ${s.received}`);
          ch.sendBuffer(end, 'end').catch(() => { /* a killed client */ });
          end.close();
        }
        if (delivered % 500 === 0) fdsMost = Math.max(fdsMost, countFds());
      }
      s.ended = true;
    } catch (err) {
      problems.push(`${key}: ${err.code ?? ''} ${err.message}`);
    } finally {
      ch.close();
    }
  });

  const victims = new Set();
  while (victims.size < Math.min(o.kill, o.clients)) victims.add(Math.floor(Math.random() * o.clients));
  const children = [];
  for (let c = 0; c < o.clients; c++) {
    const child = spawn(process.execPath, [__filename, 'client', `@${address.slice(1)}`, String(c), String(o.connections), String(o.messages)],
      { stdio: ['ignore', 'inherit', 'inherit'] });
    const exited = once(child, 'exit');
    children.push({ c, child, exited, victim: victims.has(c) });
    // SIGKILL mid-stream: when the server has seen some, but not all, of its first connection's messages
    if (victims.has(c)) killAt.set(`${c}:0`, { child, at: 1 + Math.floor((o.messages - 2) * (0.1 + 0.8 * Math.random())) });
  }
  const results = await Promise.all(children.map(async (x) => ({ ...x, exit: await x.exited })));
  // every connection's stream has ended on the server's side once its sockets are gone
  while ([...streams.values()].some((s) => !s.ended) || streams.size < o.clients * o.connections - countMissing(results, streams, o)) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  server.close();
  await new Promise((resolve) => setTimeout(resolve, 50));
  const fdsAfter = countFds() + 1;  // + the listening socket closed just now, to compare with before

  let survivors = 0;
  let killed = 0;
  for (const r of results) {
    const [code, signal] = r.exit;
    if (r.victim && signal === 'SIGKILL') {
      killed++;
      continue;  // its streams were checked as prefixes (seq order) above
    }
    survivors++;
    if (code !== 0) problems.push(`client ${r.c} exited with ${code ?? signal}`);
    for (let k = 0; k < o.connections; k++) {
      const s = streams.get(`${r.c}:${k}`);
      if (s === undefined || s.received !== o.messages) problems.push(`client ${r.c} connection ${k}: ${s?.received ?? 0} of ${o.messages} arrived`);
    }
  }
  clearTimeout(timer);
  const seconds = (Date.now() - started) / 1000;
  console.log(`load: ${o.clients} clients × ${o.connections} connections × ${o.messages} messages (${killed} SIGKILLed mid-stream): ` +
    `${delivered} SealedBuffers delivered and verified in ${seconds.toFixed(1)} s; ${survivors} survivors exact: ` +
    `${problems.length === 0 ? 'yes' : 'NO'}; server fds before ${fdsBefore}, most ${fdsMost}, after ${fdsAfter}`);
  if (problems.length > 0) {
    console.error(problems.slice(0, 20).join('\n'));
    process.exit(1);
  }
  if (fdsAfter !== fdsBefore) {
    console.error(`load: the server's descriptors did not come back (${fdsBefore} -> ${fdsAfter})`);
    process.exit(1);
  }
  if (killed === 0 && o.kill > 0) {
    console.error('load: no client was killed mid-stream (they finished too fast): raise --messages');
    process.exit(1);
  }
}

/** Connections a killed client never opened (killed before connecting): not expected on the server. */
function countMissing(results, streams, o) {
  let missing = 0;
  for (const r of results) {
    if (!r.victim) continue;
    for (let k = 0; k < o.connections; k++) if (!streams.has(`${r.c}:${k}`)) missing++;
  }
  return missing;
}

if (process.argv[2] === 'client') {
  const [address, c, connections, messages] = process.argv.slice(3);
  client(`\0${address.slice(1)}`, Number(c), Number(connections), Number(messages)).catch((err) => {
    console.error(`load client ${c}:`, err);
    process.exit(1);
  });
} else {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
