// Snapshots: versions of a whole dataset, each a sealed memfd (snapshot/publisher.ts,
// snapshot/reader.ts; the wire format in snapshot/protocol.ts). Re-exports only.
export { SnapshotPublisher } from './snapshot/publisher';
export { SnapshotReader, type Snapshot } from './snapshot/reader';
export type {
  Delivery, SnapshotDetachReason, SnapshotPublisherEvents, SnapshotPublisherOptions, SnapshotReaderInfo, SnapshotReaderOptions,
} from './snapshot/options';
