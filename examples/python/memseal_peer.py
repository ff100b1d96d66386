#!/usr/bin/env python3
"""A memseal peer in standard-library Python (3.9+, Linux).

Speaks the protocol of docs/protocol.md: AF_UNIX SOCK_SEQPACKET, one message
per sendmsg(2), descriptors as SCM_RIGHTS. send_buffer()/receive_buffer() are
the same messages as Channel.sendBuffer()/receiveBuffer() in Node, with the
same checks before anything is mapped: exactly one descriptor, a memfd
(F_GET_SEALS works), the required seals present, the forbidden ones absent,
the size within bounds. Whatever a check refuses is closed.

Size bound: receive_buffer() and verify() refuse a file larger than
DEFAULT_MAX_SIZE (1 GiB) unless the caller passes a larger max_size (or
max_size=None for no bound). Node's receiveBuffer() bounds at DEFAULT_MAX_SIZE
too (buffer.constants.MAX_LENGTH there, which depends on the Node version); a
fixed 1 GiB here keeps a hostile peer's sparse terabyte from being mapped.

    from memseal_peer import Channel, create_sealed
    ch = Channel.connect('\\0my-service')        # or Channel.from_parent()
    ch.send_buffer(create_sealed(b'hello'), b'greeting')
    buf = ch.receive_buffer(max_size=64 << 20)
    print(buf.meta, bytes(buf.view[:16]))
    buf.close()

Run as a script it is the peer the memseal test-suite drives (see main()).
"""
import array
import errno
import fcntl
import json
import mmap
import os
import socket
import stat
import sys

MAX_PAYLOAD = 65536          # Channel.MAX_PAYLOAD
MAX_FDS = 253                # SCM_MAX_FD
CHANNEL_FD_ENV = 'MEMSEAL_CHANNEL_FD'

F_SEAL_SEAL = 0x1
F_SEAL_SHRINK = 0x2
F_SEAL_GROW = 0x4
F_SEAL_WRITE = 0x8
F_SEAL_FUTURE_WRITE = 0x10
F_SEAL_EXEC = 0x20
DEFAULT_REQUIRED = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE
DEFAULT_SEALS = DEFAULT_REQUIRED | F_SEAL_SEAL
# An empty meta travels as one NUL byte (docs/protocol.md, "sendBuffer").
EMPTY_META = b'\0'
# The largest file receive_buffer()/verify() accept unless max_size says otherwise: 1 GiB.
DEFAULT_MAX_SIZE = 1 << 30


class MemsealError(Exception):
    """A refused message; `code` is the same ERR_MEMSEAL_* code Node uses."""

    def __init__(self, code, message):
        super().__init__(f'{code}: {message}')
        self.code = code


def _close_all(fds):
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


class SealedView:
    """A verified, mapped buffer from a peer. Owns `fd` and the mapping."""

    def __init__(self, fd, size, seals, meta):
        self.fd = fd
        self.size = size
        self.seals = seals
        self.meta = meta
        # A read-only shared mapping of a file sealed against writing and
        # shrinking: nobody can change it or pull pages from under it.
        self._map = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ) if size > 0 else None
        self.view = memoryview(self._map) if self._map is not None else memoryview(b'')

    def close(self):
        if self.fd < 0:
            return
        self.view.release()
        if self._map is not None:
            self._map.close()
        os.close(self.fd)
        self.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def verify(fd, require=DEFAULT_REQUIRED, forbid=0, min_size=0, max_size=DEFAULT_MAX_SIZE, exact_size=None):
    """The checks of memseal's verifySeals(); returns (seals, size) or raises MemsealError.
    A file over max_size (default DEFAULT_MAX_SIZE, 1 GiB; None: no bound) is refused with
    ERR_MEMSEAL_SIZE. Leaves fd open either way."""
    try:
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        raise MemsealError('ERR_MEMSEAL_NOT_MEMFD', 'the descriptor is not a memfd: it cannot be sealed') from None
    st = os.fstat(fd)  # after the seals: once SHRINK|GROW are seen, the size is final
    if not stat.S_ISREG(st.st_mode):
        raise MemsealError('ERR_MEMSEAL_NOT_MEMFD', 'the descriptor is not a memfd')
    missing = require & ~seals
    if missing:
        raise MemsealError('ERR_MEMSEAL_NOT_SEALED', f'missing seals 0x{missing:x} (has 0x{seals:x})')
    if seals & forbid:
        raise MemsealError('ERR_MEMSEAL_NOT_SEALED', f'forbidden seals present: 0x{seals & forbid:x}')
    lo, hi = min_size, max_size
    if exact_size is not None:
        lo, hi = max(lo, exact_size), exact_size if hi is None else min(hi, exact_size)
    if st.st_size < lo or (hi is not None and st.st_size > hi):
        raise MemsealError('ERR_MEMSEAL_SIZE', f'size {st.st_size} bytes is outside the accepted range')
    return seals, st.st_size


def create_sealed(data, seals=DEFAULT_SEALS, name='memseal'):
    """A memfd holding `data`, sealed with exactly `seals`; returns its fd (close it)."""
    flags = os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING
    fd = os.memfd_create(name, flags)
    try:
        view = memoryview(data)
        done = 0
        while done < len(view):
            done += os.pwrite(fd, view[done:], done)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    except BaseException:
        os.close(fd)
        raise
    return fd


class Channel:
    """One end of a SOCK_SEQPACKET connection, blocking."""

    def __init__(self, sock):
        self.sock = sock

    @classmethod
    def connect(cls, path):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            s.connect(path)
        except BaseException:
            s.close()
            raise
        return cls(s)

    @classmethod
    def from_parent(cls):
        """The socket spawnWithChannel() handed this process (MEMSEAL_CHANNEL_FD)."""
        raw = os.environ.pop(CHANNEL_FD_ENV, None)
        if raw is None or not raw.isdigit():
            raise MemsealError('ERR_MEMSEAL_NO_CHANNEL', f'{CHANNEL_FD_ENV} is not set')
        fd = int(raw)
        os.set_inheritable(fd, False)
        return cls(socket.socket(fileno=fd))

    def fileno(self):
        return self.sock.fileno()

    def close(self):
        self.sock.close()

    def send(self, data, fds=()):
        """One message. An empty message without descriptors is refused: it reads as end-of-stream."""
        if len(data) > MAX_PAYLOAD or len(fds) > MAX_FDS:
            raise ValueError('payload over 65536 bytes or more than 253 descriptors')
        if not data and not fds:
            raise ValueError('an empty message reads as end-of-stream')
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array('i', fds).tobytes())] if fds else []
        self.sock.sendmsg([data], anc)

    def receive(self, max_fds=MAX_FDS):
        """(data, fds) of the next message, or None at end-of-stream. The caller owns fds.
        Raises MemsealError ERR_MEMSEAL_CTRUNC / ERR_MEMSEAL_SIZE for a message that did not
        fit, after closing every descriptor of it that arrived."""
        data, anc, flags, _ = self.sock.recvmsg(MAX_PAYLOAD, socket.CMSG_SPACE(4 * max_fds) if max_fds else 0,
                                                socket.MSG_CMSG_CLOEXEC)
        fds = []
        for level, kind, payload in anc:
            # Only SCM_RIGHTS carries descriptors; anything else (SCM_CREDENTIALS...) is ignored.
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                n = len(payload) // 4
                fds.extend(memoryview(payload[:4 * n]).cast('i'))
        if flags & socket.MSG_CTRUNC:
            _close_all(fds)
            raise MemsealError('ERR_MEMSEAL_CTRUNC', f'more than {max_fds} descriptors: all closed')
        if flags & socket.MSG_TRUNC:
            _close_all(fds)
            raise MemsealError('ERR_MEMSEAL_SIZE', 'payload over 65536 bytes: dropped')
        if not data and not fds:
            return None
        return data, fds

    def send_buffer(self, fd, meta=b''):
        """Sends a sealed memfd and meta, as Channel.sendBuffer() does."""
        if meta == EMPTY_META:
            raise ValueError('a meta of one NUL byte is reserved: it stands for an empty meta')
        self.send(meta or EMPTY_META, [fd])

    def receive_buffer(self, require=DEFAULT_REQUIRED, forbid=0, min_size=0, max_size=DEFAULT_MAX_SIZE, exact_size=None):
        """The next message as a verified SealedView (close it), as Channel.receiveBuffer() does.
        A file over max_size (default DEFAULT_MAX_SIZE, 1 GiB: pass a larger one explicitly, or
        None for no bound) is refused with ERR_MEMSEAL_SIZE.
        A refused message is consumed and its descriptors closed; raises MemsealError."""
        got = self.receive(max_fds=MAX_FDS)
        if got is None:
            raise MemsealError('ERR_MEMSEAL_CLOSED', 'the peer hung up')
        data, fds = got
        if len(fds) != 1:
            _close_all(fds)
            if not fds:
                raise MemsealError('ERR_MEMSEAL_NOT_MEMFD', 'the message carried no descriptor')
            raise MemsealError('ERR_MEMSEAL_CTRUNC', f'the message carried {len(fds)} descriptors, expected 1; all were closed')
        fd = fds[0]
        try:
            seals, size = verify(fd, require, forbid, min_size, max_size, exact_size)
            return SealedView(fd, size, seals, b'' if data == EMPTY_META else data)
        except BaseException:
            os.close(fd)
            raise


def listen(path, backlog=16):
    """A listening SOCK_SEQPACKET socket; accept() it and wrap the result in Channel."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    s.bind(path)
    s.listen(backlog)
    return s


# ---- the peer the test-suite drives ------------------------------------------------------------

def _count_fds():
    return len(os.listdir('/proc/self/fd')) - 1


def _out(obj):
    sys.stdout.write(json.dumps(obj) + '\n')
    sys.stdout.flush()


def main(argv):
    """Modes (the channel is MEMSEAL_CHANNEL_FD unless a path follows the mode):
    echo [path]      for each buffer received: reply with a new sealed buffer holding a copy of
                     its bytes and meta b'echo:' + meta; a refused message is answered
                     with JSON {refused: code}; ends when the peer hangs up.
    refuse [path]    receive_buffer(max_size=1 MiB) until end-of-stream, printing one JSON line per
                     message ({ok, code, size, meta}) and the fd counts at the start and the end.
    receive [MAX]    one receive_buffer() with default options (or max_size=MAX bytes), printing
                     {ok, size} or {ok: false, code}; then wait for the peer to hang up.
    send SIZE SEALS [path]  send one buffer of SIZE bytes (byte i = i % 251) with exactly SEALS.
    hostile [path]   send what a receiver must refuse (see the list below), then one good buffer.
    blocking         the spawn hand-over, stdlib only: socket.socket(fileno=...) and
                     socket.recv_fds without setblocking(); reply with what arrived.
    listen PATH      accept one connection, then behave as 'echo' on it.
    """
    mode = argv[1]
    rest = argv[2:]

    def channel(path_index):
        if len(rest) > path_index:
            return Channel.connect(rest[path_index])
        return Channel.from_parent()

    if mode == 'blocking':
        fd = int(os.environ[CHANNEL_FD_ENV])
        s = socket.socket(fileno=fd)
        _out({'nonblock': bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK)})
        msg, fds, _flags, _addr = socket.recv_fds(s, 1024, 4)  # waits: the parent sends only now
        s.send(json.dumps({'text': msg.decode(), 'nfds': len(fds)}).encode())
        _close_all(fds)
        s.close()
        return 0

    if mode == 'listen':
        server = listen(rest[0])
        _out({'listening': rest[0]})
        conn, _ = server.accept()
        server.close()
        ch = Channel(conn)
        mode = 'echo'
    elif mode in ('echo', 'refuse', 'hostile'):
        ch = channel(0)
    elif mode == 'receive':
        ch = Channel.from_parent()
    elif mode == 'send':
        ch = channel(2)
    else:
        raise SystemExit(f'unknown mode {mode}')

    if mode == 'echo':
        while True:
            try:
                view = ch.receive_buffer(max_size=1 << 30)
            except MemsealError as e:
                if e.code == 'ERR_MEMSEAL_CLOSED':
                    break
                ch.send(json.dumps({'refused': e.code}).encode())
                continue
            with view:
                reply = create_sealed(view.view)
                try:
                    ch.send_buffer(reply, b'echo:' + view.meta)
                finally:
                    os.close(reply)
        ch.close()
        return 0

    if mode == 'refuse':
        start = _count_fds()
        _out({'fds': start})
        while True:
            try:
                with ch.receive_buffer(max_size=1 << 20) as buf:
                    _out({'ok': True, 'size': buf.size, 'meta': buf.meta.decode(errors='replace'),
                          'head': bytes(buf.view[:8]).decode(errors='replace')})
            except MemsealError as e:
                if e.code == 'ERR_MEMSEAL_CLOSED':
                    break
                _out({'ok': False, 'code': e.code})
            ch.send(b'next')
        _out({'fds': _count_fds(), 'start': start})
        ch.close()
        return 0

    if mode == 'receive':
        try:
            with (ch.receive_buffer(max_size=int(rest[0])) if rest else ch.receive_buffer()) as buf:
                _out({'ok': True, 'size': buf.size})
        except MemsealError as e:
            _out({'ok': False, 'code': e.code, 'message': str(e)})
        while ch.receive() is not None:
            pass
        ch.close()
        return 0

    if mode == 'send':
        size, seals = int(rest[0]), int(rest[1], 0)
        fd = create_sealed(bytes(i % 251 for i in range(size)) if size < 4096 else
                           (bytes(range(251)) * (size // 251 + 1))[:size], seals)
        try:
            ch.send_buffer(fd, b'from python')
        finally:
            os.close(fd)
        got = ch.receive()  # wait for the reply so the buffer is read before we exit
        if got:
            _close_all(got[1])
        ch.close()
        return 0

    if mode == 'hostile':
        def wait():
            got = ch.receive()
            if got:
                _close_all(got[1])
        unsealed = os.memfd_create('unsealed', os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        os.write(unsealed, b'changeable')
        no_shrink = create_sealed(b'shrinkable', F_SEAL_GROW | F_SEAL_WRITE)
        r, w = os.pipe()
        huge = os.memfd_create('huge', os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        os.ftruncate(huge, 1 << 40)  # 1 TiB, sparse: costs nothing to send
        fcntl.fcntl(huge, fcntl.F_ADD_SEALS, DEFAULT_SEALS)
        good = create_sealed(b'good bytes')
        two = [create_sealed(b'a'), create_sealed(b'b')]
        cases = [
            ('unsealed', [unsealed]), ('noshrink', [no_shrink]), ('pipe', [r]), ('huge', [huge]),
            ('two', two), ('none', []), ('good', [good]),
        ]
        for meta, fds in cases:
            ch.send(meta.encode(), fds)
            wait()
        _close_all([unsealed, no_shrink, r, w, huge, good] + two)
        ch.close()
        return 0
    return 1


if __name__ == '__main__':
    sys.exit(main(sys.argv))


# ==== Pool subscriber (Publisher/Subscriber streams, docs/pubsub.md) ==============================
# A standard-library subscriber of a memseal Publisher's pool: attach (HELLO + the pool memfd),
# verify the seals and size before mapping, map PROT_READ | MAP_SHARED once, receive SAMPLES,
# copy a sample with the sequence-word check, release it. Run (the module is imported so that
# every section of this file is defined first):
#   python3 -c 'import memseal_peer as m, sys; sys.exit(m.pool_main(sys.argv))' pool N [path]
import struct  # noqa: E402

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
