// Must NOT compile: every line after a `@ts-expect-error` is a mistake the types catch.
// tsc fails with "Unused '@ts-expect-error' directive" if one of them compiles.
import memseal, {
  Channel, ChannelServer, Loan, Mapping, MemsealError, Message, Publisher, Sample, SealedBuffer, SecretBuffer, socketPair, Subscriber,
} from 'memseal';

export function mistakes(server: ChannelServer, err: MemsealError, pub: Publisher): void {
  const [a] = socketPair();
  // @ts-expect-error misspelt event name
  a.on('mesage', () => {});
  // @ts-expect-error a listener of the wrong shape: 'message' passes a Message
  a.on('message', (m: string) => { void m; });
  // @ts-expect-error 'close' passes nothing
  a.once('close', (code: number) => { void code; });
  // @ts-expect-error ChannelServer has no 'message' event
  server.on('message', () => {});
  // @ts-expect-error 'connection' passes a Channel
  server.on('connection', (ch: Buffer) => { void ch; });
  // @ts-expect-error emit with the wrong payload
  a.emit('message', 'not a message');
  // @ts-expect-error misspelt Publisher event name
  pub.on('atach', () => {});
  // @ts-expect-error 'attach' passes a SubscriberInfo
  pub.on('attach', (info: string) => { void info; });
  // @ts-expect-error 'detach' passes a DetachReason, not a number
  pub.once('detach', (_info, reason: number) => { void reason; });

  // @ts-expect-error the constructor is not public: use socketPair(), connect() ...
  new Channel();
  // @ts-expect-error the constructor is not public: messages come from Channel#receive()
  new Message(Buffer.alloc(0), []);
  // @ts-expect-error the constructor is not public: use from(), create() or open()
  new SealedBuffer();
  // @ts-expect-error the constructor is not public: use mmap()
  new Mapping();
  // @ts-expect-error the constructor is not public: use SecretBuffer.alloc()
  new SecretBuffer();
  // @ts-expect-error the constructor is not public: use listen()
  new ChannelServer();
  // @ts-expect-error the constructor is not public: use Publisher.create()
  new Publisher();
  // @ts-expect-error the constructor is not public: use Subscriber.attach() or connect()
  new Subscriber();
  // @ts-expect-error the constructor is not public: use subscriber.receive()
  new Sample();
  // @ts-expect-error the constructor is not public: use publisher.loan()
  new Loan();

  // @ts-expect-error not an error code memseal has
  if (err.code === 'ERR_MEMSEAL_NOPE') return;
  // @ts-expect-error the default export has what the named exports have, nothing else
  memseal.notAnExport();
}
