#!/usr/bin/env python3
"""Pool subscriber (Publisher/Subscriber streams, docs/pubsub.md) (part of the memseal reference peer).

A standard-library subscriber of a memseal Publisher's pool: attach (HELLO + the pool memfd),
verify the seals and size before mapping, map PROT_READ | MAP_SHARED once, receive SAMPLES,
copy a sample with the sequence-word check, release it. Run:
  python3 -c 'import memseal_peer as m, sys; sys.exit(m.pool_main(sys.argv))' pool N [path]

Importing memseal_peer is enough: memseal_peer.PoolSubscriber and pool_main come from here.
"""
import mmap
import struct

from memseal_peer import (
    DEFAULT_MAX_SIZE, F_SEAL_FUTURE_WRITE, F_SEAL_GROW, F_SEAL_SHRINK, F_SEAL_WRITE, Channel, MemsealError,
    _close_all, _out, verify,
)



POOL_MAGIC = 0x6c6f6f70
POOL_VERSION = 1
POOL_HELLO, POOL_SAMPLES, POOL_DETACH, POOL_RELEASE = 1, 2, 3, 16
POOL_DETACH_CLOSING = 2
POOL_MAX_SLOTS = 65536
POOL_MAX_META = 4096


class PoolSample:
    """One announced sample: slot, sequence, length, meta (bytes)."""

    def __init__(self, slot, sequence, length, meta):
        self.slot, self.sequence, self.length, self.meta = slot, sequence, length, meta


class PoolSubscriber:
    """The reading end of a Publisher's pool over a blocking Channel."""

    def __init__(self, ch, max_size=DEFAULT_MAX_SIZE):
        self.ch = ch
        msg = ch.receive(max_fds=1)
        if msg is None:
            raise MemsealError('ERR_MEMSEAL_PUBLISHER_GONE', 'the publisher hung up before HELLO')
        data, fds = msg
        try:
            if data[:1] == bytes([POOL_DETACH]):
                raise MemsealError('ERR_MEMSEAL_DETACHED', data[4:].decode('utf-8', 'replace'))
            if len(fds) != 1:
                raise MemsealError('ERR_MEMSEAL_NOT_MEMFD', f'HELLO carried {len(fds)} descriptors, expected 1')
            if len(data) < 40 or data[0] != POOL_HELLO or data[1] != POOL_VERSION:
                raise MemsealError('ERR_MEMSEAL_PROTOCOL', 'not a pool HELLO of version 1')
            flags, slots, header, quota = data[2], *struct.unpack_from('<III', data, 4)
            slot_size, stride, pool_size = struct.unpack_from('<QQQ', data, 16)
            if not (1 <= slots <= POOL_MAX_SLOTS and 1 <= slot_size <= stride and stride % 64 == 0
                    and header >= 64 + 8 * slots and header % 64 == 0 and pool_size == header + slots * stride):
                raise MemsealError('ERR_MEMSEAL_PROTOCOL', 'the pool geometry is invalid')
            # a pool is sealed SHRINK | GROW and FUTURE_WRITE (or WRITE): verify() before anything is mapped
            seals, _size = verify(fds[0], require=F_SEAL_SHRINK | F_SEAL_GROW, max_size=max_size, exact_size=pool_size)
            if not seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE):
                raise MemsealError('ERR_MEMSEAL_NOT_SEALED', 'the pool is writable by anyone who holds it')
            self.map = mmap.mmap(fds[0], pool_size, mmap.MAP_SHARED, mmap.PROT_READ)
        finally:
            _close_all(fds)
        magic, version, _flags, h_slots, h_header = struct.unpack_from('<IHHII', self.map, 0)  # flags: e.g. the holder table
        if (magic, version, h_slots, h_header) != (POOL_MAGIC, POOL_VERSION, slots, header) or \
                struct.unpack_from('<QQQ', self.map, 16) != (slot_size, stride, pool_size):
            self.map.close()
            raise MemsealError('ERR_MEMSEAL_PROTOCOL', 'the pool header does not match HELLO')
        self.slots, self.header, self.slot_size, self.stride = slots, header, slot_size, stride
        self.quota = quota if 0 < quota <= slots else slots
        self.delivery_all = bool(flags & 1)
        self.held = {}            # slot -> sequence, announced and not released
        self.queue = []
        self.last = 0
        self.missed = 0
        self.ended = None         # None while streaming; 'closed' after the publisher's close(), else an error code
        ch.send(struct.pack('<BBH', POOL_RELEASE, 0, 0))  # an empty RELEASE acknowledges HELLO

    def _read(self):
        msg = self.ch.receive(max_fds=0)
        if msg is None:
            if self.ended != 'closed':  # a publisher that lives on may reuse what it announced
                self.queue.clear()
                self.ended = self.ended or 'ERR_MEMSEAL_PUBLISHER_GONE'
            return
        data, _ = msg
        kind = data[0]
        if kind == POOL_DETACH:
            if data[1] == POOL_DETACH_CLOSING:
                self.ended = 'closed'          # what is queued stays deliverable: the pool is never written again
            else:
                self.release_all(self.queue)   # nothing queued is delivered after a detach
                self.queue.clear()
                self.ended = 'ERR_MEMSEAL_DETACHED'
        elif kind == POOL_SAMPLES:
            count, off = struct.unpack_from('<H', data, 2)[0], 4
            if count == 0 or len(self.held) + count > self.quota:
                raise MemsealError('ERR_MEMSEAL_PROTOCOL', f'{count} samples past the quota of {self.quota}')
            for _ in range(count):
                slot, meta_len, _r, seq, length = struct.unpack_from('<IHHQQ', data, off)
                if slot >= self.slots or length > self.slot_size or not self.last < seq < 2 ** 52 \
                        or meta_len > POOL_MAX_META or slot in self.held or off + 24 + meta_len > len(data):
                    raise MemsealError('ERR_MEMSEAL_PROTOCOL', f'a bad sample entry (slot {slot}, sequence {seq})')
                if self.last:
                    self.missed += seq - self.last - 1
                self.last = seq
                self.held[slot] = seq
                sample = PoolSample(slot, seq, length, bytes(data[off + 24:off + 24 + meta_len]))
                if self.ended is None:
                    self.queue.append(sample)
                else:
                    self.release_all([sample])
                off += 24 + meta_len
            if off != len(data):
                raise MemsealError('ERR_MEMSEAL_PROTOCOL', 'trailing bytes after the SAMPLES entries')
        elif kind < 0x80:
            raise MemsealError('ERR_MEMSEAL_PROTOCOL', f'unknown message type {kind}')

    def receive(self):
        """The next PoolSample, or None after the publisher's clean close(); raises MemsealError
        ERR_MEMSEAL_DETACHED / ERR_MEMSEAL_PUBLISHER_GONE when the stream failed."""
        while not self.queue:
            if self.ended == 'closed':
                return None
            if self.ended is not None:
                raise MemsealError(self.ended, 'the stream ended')
            self._read()
        return self.queue.pop(0)

    def copy(self, sample):
        """The sample's bytes, private; raises ERR_MEMSEAL_TORN if the slot's sequence word is not
        2 × sequence before and after the copy (stdlib has no atomics: a best-effort seqcount read)."""
        word = 64 + 8 * sample.slot
        start = self.header + sample.slot * self.stride
        before = struct.unpack_from('<Q', self.map, word)[0]
        data = self.map[start:start + sample.length]
        after = struct.unpack_from('<Q', self.map, word)[0]
        if before != 2 * sample.sequence or after != before:
            raise MemsealError('ERR_MEMSEAL_TORN', f'slot {sample.slot} was reused during the copy of sample {sample.sequence}')
        return data

    def release_all(self, samples):
        entries = [s for s in samples if self.held.get(s.slot) == s.sequence]
        for s in entries:
            del self.held[s.slot]
        if entries and self.ended in (None, 'ERR_MEMSEAL_DETACHED', 'closed'):
            msg = struct.pack('<BBH', POOL_RELEASE, 0, len(entries))
            msg += b''.join(struct.pack('<IIQ', s.slot, 0, s.sequence) for s in entries)
            try:
                self.ch.send(msg)
            except OSError:
                pass  # the publisher is gone: nothing to release

    def close(self):
        self.ch.close()
        self.map.close()


def pool_main(argv):
    """pool N [path]: receive N samples (or until the stream ends), copying each with the sequence check
    and releasing it; print one JSON line per sample {seq, len, meta, first, ok} (ok: every byte after the
    first 8 is seq & 0xff), then {end, missed, quota}."""
    rest = argv[2:]
    ch = Channel.connect(rest[1]) if len(rest) > 1 else Channel.from_parent()
    sub = PoolSubscriber(ch)
    end = 'count'
    for _ in range(int(rest[0])):
        try:
            s = sub.receive()
        except MemsealError as err:
            end = err.code
            break
        if s is None:
            end = 'closed'
            break
        data = sub.copy(s)
        ok = len(data) < 8 or data[8:] == bytes([s.sequence & 0xff]) * (len(data) - 8)
        _out({'seq': s.sequence, 'len': s.length, 'meta': s.meta.decode('utf-8', 'replace'), 'ok': ok})
        sub.release_all([s])
    _out({'end': end, 'missed': sub.missed, 'quota': sub.quota})
    sub.close()
    return 0
