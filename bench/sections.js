// Sections 2–4 of the benchmarks: fan-out of one buffer, the per-call cycle, and the Channel's round trip
// and pipelined rate. Each compares its methods interleaved (lib.interleaved) against peers started for
// the section, and is run by bench/run.js in a process of its own (`node bench/run.js --only <section>`).
'use strict';
const { execFileSync, fork } = require('node:child_process');
const { once } = require('node:events');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const lib = require('./lib');
const { WORKER, spawnWorker, memsealPeer, ipcPeer } = require('./peers');
const { SealedBuffer, memfdCreate, addSeals, getSeals, mmap, Seal, constants: C } = require('..');

const MiB = 2 ** 20;

/**
 * Fan-out of one buffer to several children: memseal (one sealed memfd) against child.send() (a copy each),
 * and the C floor: a C program taking SealedBuffer's steps (memfd, pwrite, seals) and sending the file to
 * as many children, each of which maps it and reads one byte per page (bench/c/handoff.c children=N).
 */
async function fanout({ quick, cBin }) {
  const size = quick ? 16 * MiB : 64 * MiB;
  const children = quick ? 4 : 8;
  const src = lib.pattern(Buffer.alloc(size));
  const want = lib.checksum(src);
  const total = (pids) => pids.reduce((s, pid) => s + lib.pss(pid), 0);
  const ms = Array.from({ length: children }, () => memsealPeer(['--hold']));
  const adv = Array.from({ length: children }, () => ipcPeer('advanced', ['--hold']));
  await Promise.all([...ms.map((p) => p.sendAndWait(SealedBuffer.from('warm-up'))), ...adv.map((p) => p.sendAndWait('warm-up'))]);
  const peak = { memseal: 0, ipcAdvanced: 0 };
  // Each sample: the send to every child, timed; then the growth of the summed PSS (this process and the
  // children) over its value before the send; then the children let go of what they hold.
  const everyone = [process.pid, ...ms.map((p) => p.child.pid), ...adv.map((p) => p.child.pid)];
  const sample = (key, peers, send, release) => async () => {
    const pids = [process.pid, ...peers.map((p) => p.child.pid)];
    // every process idle first: eight children collecting the last round's 64 MiB copies (child.send())
    // or unmapping theirs would otherwise land in whichever method comes next
    await lib.settle(everyone);
    const base = total(pids);
    const a = process.hrtime.bigint();
    const sums = await send();
    const t = Number(process.hrtime.bigint() - a) / 1e6;
    if (sums.some((s) => s !== want)) throw new Error(`fan-out ${key} checksum`);
    peak[key] = Math.max(peak[key], total(pids) - base);
    await release();
    return t;
  };
  let sb = null;
  const times = await lib.interleaved({
    memseal: sample('memseal', ms, () => {
      sb = SealedBuffer.from(src);
      return Promise.all(ms.map((p) => p.sendAndWait(sb)));
    }, async () => {
      sb.close();
      const release = SealedBuffer.from('x');
      await Promise.all(ms.map((p) => p.sendAndWait(release, 'release')));
      release.close();
    }),
    ipcAdvanced: sample('ipcAdvanced', adv, () => Promise.all(adv.map((p) => p.sendAndWait(src))),
      () => Promise.all(adv.map((p) => p.sendAndWait('release')))),
    // the children reply before they unmap (defer), as memseal's hold theirs until after the clock stops
    ...(cBin ? { c: async () => lib.runC(cBin, [size, 3, 'defer', `children=${children}`]).median } : {}),
  }, quick ? 2 : 9, 1);
  await Promise.all([...ms, ...adv].map((p) => p.close()));
  const result = { size, children };
  for (const key of ['memseal', 'ipcAdvanced']) result[key] = { ...times[key], rssDelta: peak[key], rssMultiple: peak[key] / size };
  if (times.c) result.c = times.c;
  return result;
}

/** memfdCreate + ftruncate + addSeals + getSeals + mmap + unmap + close, from JS and in C, interleaved. */
async function cycle({ quick, cBin }) {
  const n = quick ? 20000 : 100000;
  const per = (ms) => (ms * 1000) / n;  // µs per cycle
  const us = await lib.interleaved({
    jsUs: async () => per(await lib.timed(() => {
      for (let i = 0; i < n; i++) {
        const fd = memfdCreate('bench');
        fs.ftruncateSync(fd, 4096);
        addSeals(fd, Seal.SHRINK | Seal.GROW | Seal.WRITE);
        getSeals(fd);
        const m = mmap(4096, C.PROT_READ, C.MAP_SHARED, fd);
        m.close();
        fs.closeSync(fd);
      }
    })()),
    cUs: async () => Number(execFileSync(cBin, [String(n)], { encoding: 'utf8' })) / 1000,
  }, quick ? 3 : 7, 1);
  return { iterations: n, ...us };
}

/** A child echoing every byte over a Unix stream socket (net): Node's own round trip without descriptors. */
async function netEcho() {
  const sockPath = path.join(os.tmpdir(), `memseal-bench-echo-${process.pid}.sock`);
  fs.rmSync(sockPath, { force: true });
  const server = net.createServer();
  server.listen(sockPath);
  await once(server, 'listening');
  const child = fork(WORKER, ['netecho', sockPath], { stdio: 'inherit' });  // inherits the pinning
  const [sock] = await once(server, 'connection');
  server.close();
  fs.rmSync(sockPath, { force: true });
  const byte = Buffer.from('.');
  return {
    ping: () => new Promise((resolve) => { sock.once('data', resolve); sock.write(byte); }),
    close: () => { sock.destroy(); return lib.exited(child); },
  };
}

const WARMUP = 3;  // untimed rounds of the channel section (see channelOn)

/** Ping-pong and pipelined descriptors over a Channel, against C and Node's net, interleaved; CPU `pin` or any. */
async function channelOn({ quick, cBin }, pin) {
  const rounds = quick ? 3 : 7;
  const n = quick ? 2000 : 10000;  // messages per round
  const fd = memfdCreate('bench-fd');
  const echo = spawnWorker(['echo'], pin);
  const drain = spawnWorker(['drain'], pin);
  await drain.channel.receive();  // 'ready': the child's start-up is not part of the rate
  const nodeNet = await netEcho();
  // one byte in a Buffer made once, as the net ping writes one (a string would be encoded per send)
  const byte = Buffer.from('.');
  const ping = async () => {
    const reply = echo.channel.receive();
    await echo.channel.send(byte, [fd]);
    (await reply).closeFds();
  };
  // Pipelined, two senders: `queued` sends all n without waiting and waits for 'drain' only when the
  // send queue is at its bound (maxQueuedFds: each message queued beyond what the kernel's buffer
  // takes owns a duplicate of its descriptor); `paced` waits for 'drain' as soon as the kernel pushes
  // back (a message waits in the queue), as the C program blocks in sendmsg() and as a Node stream's
  // writer waits when write() returns false.
  // The sender's loop is a function of its own. Inline in the timed function, the code after it (reading
  // the answer, run once per round, so without type feedback when V8 optimizes the loop on stack) made V8
  // throw the optimized code away at the end of every round ("insufficient type feedback", --trace-deopt):
  // each round then ran much of its loop unoptimized again — paced measured ≈ 150 000/s instead of ≈ 190 000/s.
  const sendAll = async (ch, paced) => {
    const sends = [];
    for (let i = 0; i < n; i++) {
      if (paced ? ch.pendingSends > 0 : ch.queuedFds >= ch.maxQueuedFds) await once(ch, 'drain');
      sends.push(ch.send(byte, [fd]));
    }
    sends.push(ch.send('end'));
    await Promise.all(sends);
  };
  const pipelined = (paced) => async () => {
    const ch = drain.channel;
    const done = ch.receive();
    const a = process.hrtime.bigint();
    await sendAll(ch, paced);
    const answer = await done;
    const seconds = Number(process.hrtime.bigint() - a) / 1e9;
    const got = Number(answer.data.toString());
    if (got !== n) throw new Error(`drain received ${got} of ${n}`);
    return n / seconds;
  };
  const cRuns = [];  // one run of the C program gives both of its figures
  const c = async () => {
    cRuns.push(lib.runC(cBin, [n], { pin }));
    return cRuns[cRuns.length - 1].pingPongUs;
  };
  const loop = (fn) => async () => {
    const a = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await fn();
    return Number(process.hrtime.bigint() - a) / n / 1000;
  };
  // Three untimed rounds first: a paced run of 10 000 messages took 80 000 → 135 000 → 150 000 → 185 000
  // descriptors/s over its first four rounds (V8 compiling the send and receive paths of both processes),
  // then held; one warm-up round measured a Channel still getting there.
  const r = await lib.interleaved({
    pingPongUs: loop(ping), nodeNetUs: loop(nodeNet.ping), fdsPerSec: pipelined(false), fdsPerSecPaced: pipelined(true), c,
  }, rounds, WARMUP);
  const cTimed = cRuns.slice(WARMUP);  // less the warm-up rounds
  echo.channel.close();
  drain.channel.close();
  await Promise.all([lib.exited(echo.child), lib.exited(drain.child), nodeNet.close()]);
  fs.closeSync(fd);
  return { messages: n, rounds, pingPongUs: r.pingPongUs, nodeNetUs: r.nodeNetUs, fdsPerSec: r.fdsPerSec, fdsPerSecPaced: r.fdsPerSecPaced,
    c: { pingPongUs: r.c, fdsPerSec: lib.stats(cTimed.map((x) => x.fdsPerSec)) } };
}

async function channel(opts) {
  const any = await channelOn(opts);
  const pinned = os.cpus().length > 1 ? await lib.pinned(0, () => channelOn(opts, 0)) : null;
  return { any, pinned };
}

module.exports = { fanout, cycle, channel };
