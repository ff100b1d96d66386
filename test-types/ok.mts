// Must compile: what a strict TypeScript program does with memseal, through the package's own
// exports (self-reference: 'memseal' resolves to ../package.json "exports", i.e. dist/*.d.(m)ts).
import { EventEmitter, once } from 'node:events';
import memseal, {
  type Channel, type ChannelEvents, type ChannelServer, type DetachReason, type Message, MemsealError, type MemsealErrorCode,
  Publisher, type PublisherEvents, SealedBuffer, socketPair, type SubscriberInfo, type SystemError, WriteOnceArena,
} from 'memseal';

// the default export is the whole module
const { Seal, sealNames } = memseal;
const names: string[] = sealNames(Seal.SHRINK | Seal.GROW);

export async function main(): Promise<void> {
  const [a, b]: [Channel, Channel] = socketPair();
  // typed events: the listener's argument types come from ChannelEvents
  b.on('message', (m) => { const data: Buffer = m.data; const fds: number[] = m.fds; void data; void fds; m.closeFds(); });
  b.once('close', () => {});
  const emitter: EventEmitter = b;   // still an EventEmitter to code that takes one
  void emitter;
  const isEmitter: boolean = b instanceof EventEmitter;
  void isEmitter;
  b.on('error', (err) => { const e: Error = err; void e; });
  b.off('message', (m: Message) => { void m; });
  const args: ChannelEvents['message'] = [undefined as unknown as Message];
  void args;

  using sb = SealedBuffer.create(4096, (bytes) => { bytes.fill(1); });
  await a.sendBuffer(sb, 'meta');
  const { buffer, meta } = await b.receiveBuffer({ maxSize: 1 << 20 });
  using _received = buffer;
  const m: Buffer = meta;
  void m;

  for await (const message of b) {
    using msg = message;
    void msg.data.length;
    break;
  }
  await using arena = new WriteOnceArena(4096);
  void arena;
  await once(a, 'close');

  try {
    SealedBuffer.open(0);
  } catch (err) {
    if (err instanceof MemsealError) {
      const code: MemsealErrorCode = err.code;
      switch (code) {
        case 'ERR_MEMSEAL_SIZE': break;
        case 'ERR_MEMSEAL_NOT_MEMFD': break;
        default: break;
      }
    } else {
      const sys = err as SystemError;
      const s: string = sys.syscall;
      const n: number = sys.errno;
      void s; void n;
    }
  }
}

export function serve(server: ChannelServer): void {
  server.on('connection', (ch) => { ch.close(); });
  server.on('close', () => {});
}
export function stream(pub: Publisher): void {
  // typed events: the listener's argument types come from PublisherEvents
  pub.on('attach', (info) => { const id: number = info.id; const held: number = info.held; void id; void held; });
  pub.once('detach', (info: SubscriberInfo, reason) => { const r: DetachReason = reason; void info; void r; });
  pub.off('attach', (info: SubscriberInfo) => { void info; });
  // EventEmitter's own events, as on Channel
  pub.on('newListener', (event) => { const e: string | symbol = event; void e; });
  const emitter: EventEmitter = pub;
  void emitter;
  const args: PublisherEvents['detach'] = [undefined as unknown as SubscriberInfo, 'slow'];
  void args;
  void Publisher.create({ slots: 2, slotSize: 64 });
}
void names;

// 'memseal/inspect': the inspection entry, typed.
import { inspect as inspectEntry, type InspectProcess } from 'memseal/inspect';
export const processes: InspectProcess[] = inspectEntry(process.pid);
