// What the Publisher/Subscriber test files share: the fixture programs, an attached pair in one
// process, and small readers of /proc and of a child's output.
import fs from 'node:fs';
import path from 'node:path';
import { Publisher, Subscriber, socketPair } from '../../src';
import { FIXTURES } from '../helpers';

export const PUBLISHER = path.join(FIXTURES, 'pool-publisher.js');
export const SUBSCRIBER = path.join(FIXTURES, 'pool-subscriber.js');

export async function pair(options: Parameters<typeof Publisher.create>[0]): Promise<{ pub: Publisher; sub: Subscriber }> {
  const pub = Publisher.create(options);
  const [a, b] = socketPair();
  const attached = pub.attach(a);
  const sub = await Subscriber.attach(b);
  await attached;
  return { pub, sub };
}

/** Lines of /proc/self/maps that map a memfd of this name. */
export function poolMappings(name: string): number {
  return fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes(`/memfd:${name} `)).length;
}



/** Descriptors of this process that refer to the memfd of this name. */
export { memfdFds as poolFds } from '../helpers';

export function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

export function lines(stream: NodeJS.ReadableStream): { next(match: RegExp): Promise<string> } {
  let text = '';
  const waiting: Array<[RegExp, (s: string) => void]> = [];
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    text += chunk;
    for (let i = 0; i < waiting.length; i++) {
      const [re, resolve] = waiting[i]!;
      const m = re.exec(text);
      if (m) {
        waiting.splice(i--, 1);
        resolve(m[0]);
      }
    }
  });
  return {
    next(re) {
      const m = re.exec(text);
      return m ? Promise.resolve(m[0]) : new Promise((resolve) => waiting.push([re, resolve]));
    },
  };
}

/** A subscriber attached to `pub` over a socketpair in this process. */
export async function attachPair(pub: Publisher): Promise<Subscriber> {
  const [a, b] = socketPair();
  const attached = pub.attach(a);
  const sub = await Subscriber.attach(b);
  await attached;
  return sub;
}
