// How many system calls reading a Channel takes, counted with strace(1) on a real process (skipped
// where strace is missing or not permitted): a batch reads several messages per call (recvmmsg), and
// finding the socket empty costs no call of its own.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FIXTURES } from '../helpers';

describe('Channel: system calls per message read', function () {
  this.timeout(60000);

  it('reads a burst several messages per call, and a lone message in one call with no empty read after it', function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memseal-strace-'));
    const log = path.join(dir, 'trace');
    try {
      const r = spawnSync('strace', ['-f', '-qq', '-e', 'trace=recvmsg,recvmmsg', '-o', log,
        process.execPath, path.join(FIXTURES, 'read-calls.js')], { encoding: 'utf8' });
      if (r.error !== undefined || !fs.existsSync(log) || /ptrace|Operation not permitted/.test(r.stderr)) this.skip();
      assert.equal(r.status, 0, r.stderr);
      const fd = r.stdout.trim();
      const reads = fs.readFileSync(log, 'utf8').split('\n').filter((l) => new RegExp(`recvm?msg\\(${fd},`).test(l));
      const empty = reads.filter((l) => /EAGAIN/.test(l)).length;
      // 110 messages: one recvmsg each plus one that finds the socket empty per wake-up would be 120 or more
      assert.ok(reads.length <= 50, `${reads.length} reads of the socket for 110 messages (${empty} found it empty)`);
      assert.ok(empty <= 2, `${empty} reads found the socket empty`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
