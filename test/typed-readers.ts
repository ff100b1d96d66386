// Reader processes for the typed-data tests: a Node child (test/fixtures/typed-reader.js, the
// built package) and a Python one (test/fixtures/typed_peer.py over python/memseal_peer.py), each
// answering every sealed buffer it is sent with one JSON reply.
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { type Channel, type SealedBuffer, spawnWithChannel } from '../src';
import { ensureBuilt } from './built';
import { FIXTURES } from './helpers';

export interface Reader { ask(buffer: SealedBuffer, meta: string): Promise<Record<string, unknown>>; close(): Promise<void> }

/** Why Python tests cannot run here, or null when python3 with numpy is present. */
export function pythonNumpyMissing(): string | null {
  const r = spawnSync('python3', ['-c', 'import numpy, socket; socket.recv_fds'], { encoding: 'utf8' });
  return r.status === 0 ? null : `python3 with numpy not available (${r.error?.message ?? r.stderr.trim().split('\n').pop()})`;
}

/** A mocha before() hook that skips, saying why, when a `kind` reader cannot run here (Python without numpy). */
export function skipUnlessReader(kind: 'node' | 'python'): (this: Mocha.Context) => void {
  return function (this: Mocha.Context) {
    const why = kind === 'python' ? pythonNumpyMissing() : null;
    if (why !== null) {
      console.log(`      skipped: ${why}`);
      this.skip();
    }
  };
}

export function startReader(kind: 'node' | 'python'): Reader {
  if (kind === 'node') ensureBuilt();
  const [cmd, args] = kind === 'node'
    ? [process.execPath, [path.join(FIXTURES, 'typed-reader.js')]]
    : ['python3', [path.join(FIXTURES, 'typed_peer.py')]];
  const { child, channel } = spawnWithChannel(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  const exited = once(child, 'exit');
  return {
    async ask(buffer, meta) {
      await channel.sendBuffer(buffer, meta);
      const reply = await (channel as Channel).receive();
      return JSON.parse(reply.data.toString()) as Record<string, unknown>;
    },
    async close() {
      channel.close();
      const [code] = await exited;
      if (code !== 0) throw new Error(`${kind} reader exited with ${String(code)}`);
    },
  };
}

/** The start of a seeded Python fuzz script: the module imported as `m`, the good bytes from stdin, `rng`, `refused`. */
export function pythonFuzzPrelude(): string {
  return `import random, sys
sys.path.insert(0, ${JSON.stringify(path.join(__dirname, '..', 'python'))})
import memseal_peer as m
good = sys.stdin.buffer.read()
rng = random.Random(27)
refused = 0
`;
}
