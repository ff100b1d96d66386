// The receiving peers of the handoff and fan-out sections: each is a fresh child process (bench/worker.js)
// with `sendAndWait(payload)` (resolves with the receiver's checksum) and `close()` (resolves once the
// child has exited, so a finished row leaves no process behind to compete for the CPUs).
'use strict';
const { fork } = require('node:child_process');
const { once } = require('node:events');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { exited } = require('./lib');
const { spawnWithChannel } = require('..');

const WORKER = path.join(__dirname, 'worker.js');

/** spawnWithChannel() of a bench worker, pinned to CPU `pin` (taskset) when one is given. */
function spawnWorker(args, pin) {
  const node = [process.execPath, WORKER, ...args];
  return pin === undefined
    ? spawnWithChannel(node[0], node.slice(1), { stdio: 'inherit' })
    : spawnWithChannel('taskset', ['-c', String(pin), ...node], { stdio: 'inherit' });
}

/** A receiver of SealedBuffers over a Channel. */
function memsealPeer(extra = []) {
  const { child, channel } = spawnWorker(['memseal', ...extra]);
  return {
    child,
    channel,
    async sendAndWait(sb, meta) {
      const reply = channel.receive();
      await channel.sendBuffer(sb, meta);
      return Number((await reply).data.toString());
    },
    close() { channel.close(); return exited(child); },
  };
}

/** A receiver of child.send() messages, `serialization` 'advanced' or 'json'. */
function ipcPeer(serialization, extra = []) {
  const child = fork(WORKER, ['ipc', ...extra], { serialization, stdio: 'inherit' });
  return {
    child,
    async sendAndWait(payload) {
      const reply = once(child, 'message');
      child.send(payload);
      return Number((await reply)[0]);
    },
    close() { child.disconnect(); return exited(child); },
  };
}

/** A receiver of length-prefixed frames over a Unix stream socket (net). */
async function netPeer() {
  const sockPath = path.join(os.tmpdir(), `memseal-bench-${process.pid}.sock`);
  fs.rmSync(sockPath, { force: true });
  const server = net.createServer();
  server.listen(sockPath);
  await once(server, 'listening');
  const child = fork(WORKER, ['net', sockPath], { stdio: 'inherit' });
  const [sock] = await once(server, 'connection');
  server.close();
  fs.rmSync(sockPath, { force: true });
  return {
    child,
    async sendAndWait(bytes) {
      const reply = once(sock, 'data');
      const head = Buffer.alloc(8);
      head.writeBigUInt64LE(BigInt(bytes.length));
      sock.write(head);
      sock.write(bytes);
      return Number((await reply)[0].readBigUInt64LE(0));
    },
    close() { sock.end(); return exited(child); },
  };
}

module.exports = { WORKER, spawnWorker, memsealPeer, ipcPeer, netPeer };
