// The Go sketch in docs/protocol.md, compiled and run as a peer where a Go
// toolchain exists: the snippet is cut out of the document as written, so the
// document cannot drift from what works.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SealedBuffer, spawnWithChannel } from '../../src';
import { countOwnFds } from '../fd-count';

const ROOT = path.join(__dirname, '..', '..');

const MAIN = `
package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
)

SNIPPET

func main() {
	fd, _ := strconv.Atoi(os.Getenv("MEMSEAL_CHANNEL_FD"))
	c, err := net.FileConn(os.NewFile(uintptr(fd), "channel"))
	if err != nil {
		panic(err)
	}
	uc := c.(*net.UnixConn)
	for i := 0; i < 2; i++ {
		data, meta, err := receiveBuffer(uc, 1<<20)
		if err != nil {
			fmt.Printf("refused %v\\n", err)
			continue
		}
		fmt.Printf("got %d bytes %q meta %q\\n", len(data), string(data[:5]), string(meta))
	}
	// Echo a memfd back with an empty payload: Go puts one NUL byte in its place.
	oob := make([]byte, syscall.CmsgSpace(4))
	buf := make([]byte, 16)
	_, oobn, _, _, _ := uc.ReadMsgUnix(buf, oob)
	scms, _ := syscall.ParseSocketControlMessage(oob[:oobn])
	fds, _ := syscall.ParseUnixRights(&scms[0])
	if _, _, err := uc.WriteMsgUnix(nil, syscall.UnixRights(fds[0]), nil); err != nil {
		panic(err)
	}
	syscall.Close(fds[0])
}
`;

describe('the Go sketch of docs/protocol.md', function () {
  this.timeout(180000);
  let dir = '';
  let binary = '';

  before(function () {
    const go = spawnSync('go', ['version'], { encoding: 'utf8' });
    if (go.error || go.status !== 0) {
      console.log('      (skipped: no Go toolchain (apt-get install golang-go); the sketch is not compiled)');
      this.skip();
    }
    const doc = fs.readFileSync(path.join(ROOT, 'docs/protocol.md'), 'utf8');
    const snippet = /```go\n([\s\S]*?)```/.exec(doc.slice(doc.indexOf('### Go')))![1]!;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memseal-go-'));
    fs.writeFileSync(path.join(dir, 'main.go'), MAIN.replace('SNIPPET', snippet));
    binary = path.join(dir, 'peer');
    const env = { ...process.env, GOCACHE: path.join(dir, 'cache'), GOPATH: path.join(dir, 'gopath'), GO111MODULE: 'off', GOFLAGS: '' };
    const r = spawnSync('go', ['build', '-o', binary, 'main.go'], { cwd: dir, encoding: 'utf8', env, timeout: 170000 });
    assert.equal(r.status, 0, `the snippet must compile as written:\n${r.stderr}`);
  });

  after(() => {
    if (dir !== '') fs.rmSync(dir, { recursive: true, force: true });
  });

  it('receives buffers with and without meta, and its empty-payload send reads as empty meta', async () => {
    const before = countOwnFds();
    const { child, channel } = spawnWithChannel(binary, [], { stdio: ['ignore', 'pipe', 'inherit'] });
    const closed = once(child, 'close');
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => { out += s; });
    {
      using a = SealedBuffer.from('hello, go');
      using b = SealedBuffer.from('world');
      await channel.sendBuffer(a, 'v1');
      await channel.sendBuffer(b);  // empty meta: one NUL byte on the wire, so Go does not read EOF
      await channel.send('take it back', [a.fd]);
      const { buffer, meta } = await channel.receiveBuffer({ maxSize: 64 });
      assert.equal(meta.length, 0, "Go's dummy byte is an empty meta");
      assert.equal(buffer.bytes.toString(), 'hello, go');
      buffer.close();
    }
    channel.close();
    await closed;
    assert.equal(out, 'got 9 bytes "hello" meta "v1"\ngot 5 bytes "world" meta ""\n');
    assert.equal(countOwnFds(), before);
  });
});
