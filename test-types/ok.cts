// Must compile: CommonJS consumers (require condition: dist/index.d.ts).
import memseal = require('memseal');
import { SealedBuffer, type Channel } from 'memseal';

export function handle(ch: Channel): void {
  ch.on('message', (m) => { m.closeFds(); });
  const sb: SealedBuffer = memseal.SealedBuffer.from('x');
  sb.close();
  void SealedBuffer;
}
