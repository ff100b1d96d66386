#!/usr/bin/env python3
"""Snapshot reader: the reading end of a Node SnapshotPublisher (part of the memseal reference peer).

(docs/protocol.md, "Snapshots"). Each version is one buffer message whose meta is the JSON
{"version": n, "meta": "..."}; once it is verified and mapped the reader answers with the plain
message {"taken": n}. The publisher sends the next version only after that answer, so at most one
version is ever queued for this reader, however long it takes.
Used from Python:
    reader = SnapshotReader(Channel.connect('\0dataset'), max_size=256 << 20)
    with reader.next() as snap:          # a SealedView with .version and .snapshot_meta
        use(snap.view)
Run by the test-suite as: python3 -c 'import memseal_peer; memseal_peer.snapshot_main([...])'.

Importing memseal_peer is enough: memseal_peer.SnapshotReader and snapshot_main come from here.
"""
import hashlib
import json

from memseal_peer import DEFAULT_REQUIRED, Channel, MemsealError, _out



class SnapshotReader:
    """Receives a SnapshotPublisher's versions over `channel`, blocking. Each next() returns a
    SealedView the caller owns (close it, or use `with`): it stays mapped and unchanged until then."""

    def __init__(self, channel, max_size, require=DEFAULT_REQUIRED):
        self.channel = channel
        self.max_size = max_size
        self.require = require
        self.version = 0    # the newest version taken

    def next(self):
        """The next version the publisher sends (newer than the last one): verified, mapped, then
        acknowledged. Raises MemsealError: ERR_MEMSEAL_CLOSED when the publisher hung up,
        ERR_MEMSEAL_PROTOCOL for a message that is not a newer version (it is closed), or the
        receive_buffer() refusals."""
        view = self.channel.receive_buffer(require=self.require, max_size=self.max_size)
        try:
            header = json.loads(bytes(view.meta).decode('utf-8'))
            version = header.get('version') if isinstance(header, dict) else None
            meta = header.get('meta', '') if isinstance(header, dict) else None
            if isinstance(version, bool) or not isinstance(version, int) or not isinstance(meta, str):
                raise ValueError('not {"version": n, "meta": "..."}')
            if version <= self.version:
                raise ValueError(f'version {version} after {self.version}')
        except (ValueError, UnicodeDecodeError) as err:
            view.close()
            raise MemsealError('ERR_MEMSEAL_PROTOCOL', f'the publisher sent a bad version message: {err}') from None
        self.version = version
        view.version = version
        view.snapshot_meta = meta
        self.channel.send(json.dumps({'taken': version}).encode())
        return view

    def close(self):
        self.channel.close()


def snapshot_main(argv):
    """snapshot_main([address, last]): connect to a SnapshotPublisher at `address` ('@name' is the
    abstract '\\0name'), take versions until `last`, printing one JSON line per version
    ({version, meta, size, sha256}); close each before taking the next."""
    import hashlib
    address, last = argv[0], int(argv[1])
    reader = SnapshotReader(Channel.connect('\0' + address[1:] if address.startswith('@') else address), max_size=1 << 30)
    try:
        while reader.version < last:
            with reader.next() as snap:
                _out({'version': snap.version, 'meta': snap.snapshot_meta, 'size': snap.size,
                      'sha256': hashlib.sha256(snap.view).hexdigest()})
    finally:
        reader.close()
    return 0


