// What every Channel test file shares: small descriptor helpers, and a harness that
// closes what a test opened and checks that the process holds no more descriptors than before.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { type ChildProcess } from 'node:child_process';
import { type Channel, type ChannelOptions, memfdCreate, socketPair } from '../../src';
import { countFds, killChildren, tick } from '../helpers';

export function memfdWith(text: string): number {
  const fd = memfdCreate('channel-test');
  fs.writeSync(fd, text);
  return fd;
}

export function readFd(fd: number): string {
  const buf = Buffer.alloc(256);
  return buf.subarray(0, fs.readSync(fd, buf, 0, buf.length, 0)).toString();
}

export function isCloexec(fd: number): boolean {
  const flags = /flags:\s+(\d+)/.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1]!;
  return (parseInt(flags, 8) & 0o2000000) !== 0;
}

export function code(expected: string) {
  return (err: unknown) => {
    assert.equal((err as { code?: string }).code, expected, String(err));
    return true;
  };
}

/** Registers beforeEach/afterEach for the enclosing describe(); returns the trackers. */
export function channelHarness() {
  let baseline: number;
  const open: { close(): void }[] = [];
  const children: ChildProcess[] = [];
  const fdsToClose: number[] = [];

  function track<T extends { close(): void }>(x: T): T {
    open.push(x);
    return x;
  }
  function pair(options?: ChannelOptions): [Channel, Channel] {
    const [a, b] = socketPair(options);
    return [track(a), track(b)];
  }
  function fdLater(fd: number): number {
    fdsToClose.push(fd);
    return fd;
  }

  beforeEach(() => {
    baseline = countFds();
  });

  afterEach(async () => {
    for (const x of open.splice(0)) x.close();
    for (const fd of fdsToClose.splice(0)) fs.closeSync(fd);
    await killChildren(children);
    await tick();
    assert.equal(countFds(), baseline, 'open descriptors are back at their baseline');
  });

  return { track, pair, fdLater, children };
}
