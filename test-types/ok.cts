// Must compile: CommonJS consumers (require condition: dist/index.d.ts).
// eslint-disable-next-line @typescript-eslint/no-require-imports -- the CommonJS form a .cts consumer writes is what is tested
import memseal = require('memseal');
import { SealedBuffer, type Channel } from 'memseal';

export function handle(ch: Channel): void {
  ch.on('message', (m) => { m.closeFds(); });
  const sb: SealedBuffer = memseal.SealedBuffer.from('x');
  sb.close();
  void SealedBuffer;
}
