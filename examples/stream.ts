// Stream: video-like frames from one producer to three workers over a sealed
// slot pool. The pool's memfd goes to each worker once; after that a frame is
// one small message. Workers read the frame in place (a read-only view of the
// producer's pages) or take a verified private copy, then release the slot.
// Run: npx tsx examples/stream.ts
import { once } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import { Publisher, Subscriber } from '../src';

const WORKERS = 3;
const FRAMES = 30;
const WIDTH = 640, HEIGHT = 360;           // 8-bit grey frames: 225 KiB each
const SOCKET = path.join(os.tmpdir(), `memseal-stream-${process.pid}.sock`);

async function producer(): Promise<void> {
  // every worker must see every frame: delivery 'all' (the default, 'latest', would let a slow one skip)
  using pub = Publisher.create({ slotSize: WIDTH * HEIGHT, maxSubscribers: WORKERS, maxHeld: 2, delivery: 'all', name: 'frames' });
  await pub.listen(SOCKET);
  const { spawn } = await import('node:child_process');
  const workers = Array.from({ length: WORKERS }, (_, i) =>
    spawn(process.execPath, [...process.execArgv, __filename, 'worker', SOCKET, String(i)], { stdio: 'inherit' }));
  const exited = workers.map((w) => once(w, 'exit'));   // attached now: a worker may exit before we await
  while (pub.subscriberCount < WORKERS) await once(pub, 'attach');
  for (let frame = 0; frame < FRAMES; frame++) {
    const loan = await pub.loan();                 // 'all': waits while a worker is at its quota
    loan.bytes.fill(frame & 0xff, 0, WIDTH * HEIGHT); // "render" straight into shared memory: no copy
    await loan.send(WIDTH * HEIGHT, JSON.stringify({ frame, width: WIDTH, height: HEIGHT }));
  }
  await pub.publish('end', 'end');                  // publish() copies small things in
  await Promise.all(exited);
  console.log(`producer: ${FRAMES} frames of ${(WIDTH * HEIGHT) >> 10} KiB to ${WORKERS} workers through a ${(pub.size / 2 ** 20).toFixed(1)} MiB pool`);
}

async function worker(socket: string, id: string): Promise<void> {
  using sub = await Subscriber.connect(socket);
  let frames = 0, bad = 0, copies = 0;
  for await (const sample of sub) {
    if (sample.meta.toString() === 'end') { sample.release(); break; }
    const { frame } = JSON.parse(sample.meta.toString()) as { frame: number };
    // every third frame is kept: copy() is private and checked against reuse of the slot
    const pixels = frame % 3 === 0 ? (copies++, sample.copy()) : sample.bytes;
    if (pixels[0] !== (frame & 0xff) || pixels[pixels.length - 1] !== (frame & 0xff)) bad++;
    frames++;
    sample.release();                              // the slot can be reused once every worker released it
  }
  console.log(`worker ${id}: ${frames} frames (${frames - copies} read in place, ${copies} copied), ${bad} wrong; pool mapped read-only (seals 0x${sub.seals.toString(16)})`);
}

(process.argv[2] === 'worker' ? worker(process.argv[3]!, process.argv[4]!) : producer()).catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
