// The pieces an apache-arrow RecordBatchStreamWriter has buffered (its metadata and the columns'
// own buffers), so that sealTable() copies each once, straight into the sealed memory, instead of
// joining them into one array first and copying that. apache-arrow keeps them in a field of its
// own: used only after checking that they form a whole stream; else null (one more copy).

/** The writer's buffered chunks, where apache-arrow keeps them (checked before use, else one more copy). */
export function writtenChunks(writer: object): Uint8Array[] | null {
  const chunks = (writer as { _sink?: { _values?: unknown } })._sink?._values;
  if (!Array.isArray(chunks) || chunks.length === 0 || !chunks.every((c) => c instanceof Uint8Array)) return null;
  // A whole stream: it opens with a continuation marker and closes with the end-of-stream marker.
  const first = chunks[0] as Uint8Array;
  const last = chunks[chunks.length - 1] as Uint8Array;
  const eos = last.byteLength >= 8 && new DataView(last.buffer, last.byteOffset + last.byteLength - 8, 8);
  return first.byteLength >= 4 && new DataView(first.buffer, first.byteOffset, 4).getInt32(0, true) === -1 &&
    eos !== false && eos.getInt32(0, true) === -1 && eos.getInt32(4, true) === 0 ? chunks as Uint8Array[] : null;
}

