// Log an entry larger than 1 MiB to systemd-journald through a sealed memfd:
// journald's native protocol (systemd.journal-fields(7), "Native Journal
// Protocol") takes an empty datagram carrying one memfd whose contents are
// the serialized entry. From a non-root sender, systemd ≤ 252 accepts the
// memfd only if its seals are exactly SHRINK|GROW|WRITE|SEAL (0xf) — a default
// SealedBuffer also carries EXEC (0x20), so ask for exactly those seals.
// Run: npx tsx examples/journald.ts [socket] [id] [--default-seals]
//   socket  default /run/systemd/journal/socket
//   id      the value of the MEMSEAL_EXAMPLE_ID field (to find the entry again)
import { Seal, SealedBuffer, sealNames, sendDatagram } from '../src';

export const JOURNAL_SEALS = Seal.SHRINK | Seal.GROW | Seal.WRITE | Seal.SEAL;

/**
 * One journal entry in the native protocol: `KEY=value\n` for a value without
 * newlines, else `KEY\n`, the value's length as a little-endian 64-bit
 * integer, the value, `\n`.
 */
export function serializeEntry(fields: Record<string, string | Uint8Array>): Buffer {
  const parts: Buffer[] = [];
  for (const [key, value] of Object.entries(fields)) {
    const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
    if (bytes.includes(0x0a)) {
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(bytes.length));
      parts.push(Buffer.from(`${key}\n`), len, bytes, Buffer.from('\n'));
    } else {
      parts.push(Buffer.from(`${key}=`), bytes, Buffer.from('\n'));
    }
  }
  return Buffer.concat(parts);
}

/** The message the example logs: `size` bytes of numbered lines (deterministic, so a reader can check it). */
export function exampleMessage(size: number): Buffer {
  const out = Buffer.alloc(size);
  let at = 0;
  for (let line = 0; at < size; line++) at += out.write(`line ${line}: sealed memfd entry\n`, at);
  return out;
}

/**
 * Writes the entry into a memfd sealed with exactly `seals` (null: a default
 * SealedBuffer's seals) and sends it as one empty datagram with that descriptor.
 */
export async function logViaMemfd(socket: string, fields: Record<string, string | Uint8Array>, seals: number | null = JOURNAL_SEALS):
  Promise<{ bytes: number; seals: number }> {
  const entry = serializeEntry(fields);
  using sb = SealedBuffer.create(entry.length, (bytes) => entry.copy(bytes),
    seals === null ? { name: 'journal-entry' } : { name: 'journal-entry', seals });
  await sendDatagram(socket, '', [sb.fd]);
  return { bytes: entry.length, seals: sb.seals };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  const socket = args[0] ?? '/run/systemd/journal/socket';
  const id = args[1] ?? String(process.pid);
  const seals = process.argv.includes('--default-seals') ? null : JOURNAL_SEALS;
  const message = exampleMessage((1 << 20) + 12345);
  const sent = await logViaMemfd(socket, {
    MESSAGE: message,
    PRIORITY: '6',
    SYSLOG_IDENTIFIER: 'memseal-example',
    MEMSEAL_EXAMPLE_ID: id,
  }, seals);
  console.log(`logged a ${message.length}-byte message (${sent.bytes}-byte entry) through a memfd sealed ${sealNames(sent.seals).join(', ')}`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
