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
too (the same fixed 1 GiB on every Node version); a
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

    def __init__(self, code, message, hint=None):
        super().__init__(f'{code}: {message}')
        self.code = code
        self.hint = hint


_ACCESS_HINT = 'the sender must pass the descriptor memfd_create(2) returned (O_RDWR) or one opened for reading'


def _check_access(fd):
    """Refuses an O_PATH or write-only descriptor (ERR_MEMSEAL_ACCESS): nothing can be read or mapped
    through it, and the OSError it would raise later reads like the receiver's own bug."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)  # EBADF here: fd is not open at all
    if flags & getattr(os, 'O_PATH', 0o10000000):
        raise MemsealError('ERR_MEMSEAL_ACCESS', 'the descriptor was opened with O_PATH: it grants no access to the file',
                           _ACCESS_HINT)
    if flags & 3 == os.O_WRONLY:
        raise MemsealError('ERR_MEMSEAL_ACCESS', 'the descriptor is write-only (O_WRONLY): it cannot be read or mapped',
                           _ACCESS_HINT)


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
        self._map = None
        if size > 0:
            try:
                self._map = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ)
            except OSError as e:  # ENOMEM: e.g. a hugetlb file larger than the free pool
                raise MemsealError(errno.errorcode.get(e.errno, 'EIO'), f'{e.strerror}, mmap') from None
            if os.fstat(fd).st_blksize > mmap.PAGESIZE:
                _populate_hugetlb(self._map, size)
        self.view = memoryview(self._map) if self._map is not None else memoryview(b'')

    def close(self):
        """Unmaps and closes fd. Never raises: while slices of `view` are still exported the
        mapping cannot be closed here (BufferError); it is then unmapped when the last one goes."""
        if self.fd < 0:
            return
        try:
            self.view.release()
            if self._map is not None:
                self._map.close()
        except BufferError:
            pass  # views still exported: the mapping (and mmap's own descriptor) go with the last one
        self._map = None
        self.view = memoryview(b'')
        os.close(self.fd)
        self.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


MADV_POPULATE_READ = getattr(mmap, 'MADV_POPULATE_READ', 22)  # Linux 5.14


def _populate_hugetlb(m, size):
    """A hugetlb file from a peer may be sparse: the first read of a missing page allocates a huge page
    charged to this process (its pool, its hugetlb cgroup), and when that fails the kernel sends SIGBUS.
    MADV_POPULATE_READ faults every page in now and answers EFAULT (ENOMEM) instead; without it (before
    Linux 5.14) a hugetlb file is refused. Closes `m` on failure."""
    try:
        m.madvise(MADV_POPULATE_READ, 0, size)
    except (OSError, AttributeError) as e:
        m.close()
        err = getattr(e, 'errno', None)
        if err in (errno.EFAULT, errno.ENOMEM):
            raise MemsealError(errno.errorcode[err], "the peer's hugetlb memfd has pages that were never allocated, "
                               'and this process could not get them', 'reserve more huge pages (nr_hugepages), or '
                               "raise this process's hugetlb cgroup limit (hugetlb.<size>.max)") from None
        raise MemsealError('ERR_MEMSEAL_UNSUPPORTED', 'a hugetlb memfd cannot be checked before it is read '
                           '(MADV_POPULATE_READ needs Linux 5.14)', 'send an ordinary buffer') from None


def verify(fd, require=DEFAULT_REQUIRED, forbid=0, min_size=0, max_size=DEFAULT_MAX_SIZE, exact_size=None):
    """The checks of memseal's verifySeals(); returns (seals, size) or raises MemsealError.
    A file over max_size (default DEFAULT_MAX_SIZE, 1 GiB; None: no bound) is refused with
    ERR_MEMSEAL_SIZE; an O_PATH or write-only descriptor with ERR_MEMSEAL_ACCESS. Leaves fd open either way."""
    _check_access(fd)
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
        # CMSG_SPACE rounds up to 8 bytes: an odd max_fds has room for one more, so count what arrived.
        if flags & socket.MSG_CTRUNC or len(fds) > max_fds:
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
        except OSError as e:  # every refusal is a MemsealError, with the code Node's error has
            os.close(fd)
            raise MemsealError(errno.errorcode.get(e.errno, 'EIO'), str(e)) from None
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


# ==== Snapshot reader: the reading end of a Node SnapshotPublisher ===============================
# (docs/protocol.md, "Snapshots"). Each version is one buffer message whose meta is the JSON
# {"version": n, "meta": "..."}; once it is verified and mapped the reader answers with the plain
# message {"taken": n}. The publisher sends the next version only after that answer, so at most one
# version is ever queued for this reader, however long it takes.
# Used from Python:
#     reader = SnapshotReader(Channel.connect('\0dataset'), max_size=256 << 20)
#     with reader.next() as snap:          # a SealedView with .version and .snapshot_meta
#         use(snap.view)
# Run by the test-suite as: python3 -c 'import memseal_peer; memseal_peer.snapshot_main([...])'.

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


# ==== Typed data: tensors and Arrow tables as numpy views ======================================
# open_tensor() and open_table_columns() read what SealedBuffer.fromTypedArray()/allocTensor() and
# memseal/arrow's sealTable()/createTableBuilder() write (docs/protocol.md, "Tensors" and "Arrow tables"), as numpy
# arrays over the mapping: numpy.frombuffer, no copy. numpy is imported only inside them, so the
# rest of this module stays standard-library only. Every offset, length, type and shape is
# checked against the buffer before an array exists; a lie raises MemsealError
# (ERR_MEMSEAL_PROTOCOL), never an out-of-bounds view. The arrays keep the mapping exported:
# drop them (del) before SealedView.close().
import struct as _struct

TENSOR_MAGIC = b'MSTENSOR'
TENSOR_ALIGNMENT = 64
TENSOR_MAX_DIMS = 32
# Element type codes of the tensor header -> numpy dtype strings (little-endian).
TENSOR_TYPES = {1: '<i1', 2: '<u1', 3: '<u1', 4: '<i2', 5: '<u2', 6: '<i4', 7: '<u4',
                8: '<f4', 9: '<f8', 10: '<i8', 11: '<u8'}


def _bytes_of(view):
    mv = view if isinstance(view, memoryview) else memoryview(view)
    if mv.ndim != 1 or mv.itemsize != 1:
        mv = mv.cast('B')
    return mv


def _protocol(message):
    return MemsealError('ERR_MEMSEAL_PROTOCOL', message)


def open_tensor(view):
    """The tensor in `view` (a SealedView's .view, any bytes-like) as a read-only numpy.ndarray
    over the same memory, with the header's shape (C order)."""
    import numpy
    mv = _bytes_of(view)
    size = len(mv)
    if size < 32:
        raise _protocol(f'tensor header: {size} bytes are too few for a header (32)')
    magic, version, code, flags, ndim, offset, length = _struct.unpack_from('<8sHBBIQQ', mv, 0)
    if magic != TENSOR_MAGIC:
        raise _protocol('tensor header: no MSTENSOR magic')
    if version != 1:
        raise MemsealError('ERR_MEMSEAL_UNSUPPORTED', f'tensor header: version {version}, this reader knows 1')
    if code not in TENSOR_TYPES:
        raise _protocol(f'tensor header: unknown element type code {code}')
    if flags != 0:
        raise _protocol(f'tensor header: unknown flags 0x{flags:x}')
    if ndim > TENSOR_MAX_DIMS or 32 + 8 * ndim > size:
        raise _protocol(f'tensor header: {ndim} dimensions do not fit')
    if offset > size or offset % TENSOR_ALIGNMENT or offset < 32 + 8 * ndim:
        raise _protocol(f'tensor header: data offset {offset} is out of place')
    if length > size - offset:
        raise _protocol(f'tensor header: data length {length} exceeds the buffer')
    shape = _struct.unpack_from(f'<{ndim}Q', mv, 32)
    dtype = numpy.dtype(TENSOR_TYPES[code])
    count = 1
    for d in shape:
        count *= d  # Python integers: no overflow to hide a lie
    if count * dtype.itemsize != length:
        raise _protocol(f'tensor header: shape {list(shape)} of {dtype} does not match the data length {length}')
    return numpy.frombuffer(mv, dtype=dtype, count=count, offset=offset).reshape(shape)


# -- A minimal FlatBuffers reader for Arrow's IPC metadata (Message.fbs, Schema.fbs): every
#    offset is checked against the metadata's bounds before it is followed.

class _Fb:
    def __init__(self, buf):
        self.buf = buf

    def _u(self, fmt, at):
        n = _struct.calcsize(fmt)
        if at < 0 or at + n > len(self.buf):
            raise _protocol('arrow metadata: an offset points outside the message')
        return _struct.unpack_from(fmt, self.buf, at)[0]

    def root(self):
        return self._u('<I', 0)

    def field(self, table, index):
        """Position of field `index` of the table at `table`, or None when absent."""
        vtable = table - self._u('<i', table)
        vsize = self._u('<H', vtable)
        if 4 + 2 * index + 2 > vsize:
            return None
        off = self._u('<H', vtable + 4 + 2 * index)
        return table + off if off else None

    def scalar(self, table, index, fmt, default=0):
        at = self.field(table, index)
        return default if at is None else self._u(fmt, at)

    def ref(self, table, index):
        at = self.field(table, index)
        return None if at is None else at + self._u('<I', at)

    def vector(self, table, index):
        """(position of the first element, count), or (0, 0) when absent."""
        at = self.ref(table, index)
        if at is None:
            return 0, 0
        return at + 4, self._u('<I', at)

    def string(self, table, index):
        start, n = self.vector(table, index)
        if start + n > len(self.buf):
            raise _protocol('arrow metadata: a string runs past the message')
        return bytes(self.buf[start:start + n]).decode('utf-8', 'replace')


# Arrow Type union members, and how many buffers a column of each has (before its children).
_ARROW_BUFFERS = {2: 2, 3: 2, 4: 3, 5: 3, 6: 2, 7: 2, 8: 2, 9: 2, 10: 2, 11: 2, 12: 2, 13: 1, 15: 2,
                  16: 1, 17: 2, 18: 2, 19: 3, 20: 3, 21: 2}
_ARROW_TYPE_NAMES = {1: 'Null', 2: 'Int', 3: 'FloatingPoint', 4: 'Binary', 5: 'Utf8', 6: 'Bool', 7: 'Decimal',
                     8: 'Date', 9: 'Time', 10: 'Timestamp', 11: 'Interval', 12: 'List', 13: 'Struct',
                     14: 'Union', 15: 'FixedSizeBinary', 16: 'FixedSizeList', 17: 'Map', 18: 'Duration',
                     19: 'LargeBinary', 20: 'LargeUtf8', 21: 'LargeList'}


def _arrow_field(fb, field):
    """(name, numpy dtype string or None, type code, child field positions, dictionary-encoded, fb)."""
    name = fb.string(field, 0)
    ttype = fb.scalar(field, 2, '<B')
    tpos = fb.ref(field, 3)
    dtype = None
    if ttype == 2 and tpos is not None:      # Int { bitWidth: int, is_signed: bool }
        bits, signed = fb.scalar(tpos, 0, '<i'), fb.scalar(tpos, 1, '<B')
        if bits in (8, 16, 32, 64):
            dtype = f"<{'i' if signed else 'u'}{bits // 8}"
    elif ttype == 3 and tpos is not None:    # FloatingPoint { precision: HALF, SINGLE, DOUBLE }
        dtype = {0: '<f2', 1: '<f4', 2: '<f8'}.get(fb.scalar(tpos, 0, '<h'))
    start, n = fb.vector(field, 5)
    children = [start + 4 * i + fb._u('<I', start + 4 * i) for i in range(n)]
    return name, dtype, ttype, children, fb.field(field, 4) is not None, fb


def _arrow_messages(mv):
    """Yields (header type, flatbuffer reader, header table, body memoryview) for each message."""
    pos = 8 if bytes(mv[:6]) == b'ARROW1' else 0
    while pos + 8 <= len(mv):
        marker, meta_len = _struct.unpack_from('<iI', mv, pos)
        if marker != -1:
            raise _protocol(f'arrow: no continuation marker at byte {pos}')
        if meta_len == 0:
            return  # end of stream
        meta_start = pos + 8
        if meta_len > len(mv) - meta_start:
            raise _protocol(f'arrow: metadata of {meta_len} bytes runs past the buffer')
        fb = _Fb(mv[meta_start:meta_start + meta_len])
        msg = fb.root()
        body_len = fb.scalar(msg, 3, '<q')
        body_start = meta_start + meta_len
        if body_len < 0 or body_len > len(mv) - body_start:
            raise _protocol(f'arrow: a body of {body_len} bytes runs past the buffer')
        header = fb.ref(msg, 2)
        if header is None:
            raise _protocol('arrow: a message without a header')
        yield fb.scalar(msg, 1, '<B'), fb, header, mv[body_start:body_start + body_len]
        pos = body_start + body_len
    raise _protocol('arrow: the stream has no end-of-stream marker')


def open_table_columns(view, columns=None):
    """The columns of the Arrow IPC stream in `view` (what memseal/arrow's sealTable() or createTableBuilder() writes) as a
    dict of read-only numpy arrays over the mapping, in schema order. Supported: Int (8-64 bits,
    signed or not) and FloatingPoint (half, single, double) columns without nulls, in a table of
    one record batch. Another column type, nulls, several batches or compressed bodies raise
    MemsealError ERR_MEMSEAL_UNSUPPORTED: pass `columns` (names) to read only some columns."""
    import numpy
    mv = _bytes_of(view)
    fields = None
    batch = None
    for htype, fb, header, body in _arrow_messages(mv):
        if htype == 1:                       # Schema
            if fb.scalar(header, 0, '<h') != 0:
                raise MemsealError('ERR_MEMSEAL_UNSUPPORTED', 'arrow: big-endian data')
            start, n = fb.vector(header, 1)
            fields = [_arrow_field(fb, start + 4 * i + fb._u('<I', start + 4 * i)) for i in range(n)]
        elif htype == 3:                     # RecordBatch
            if batch is not None:
                raise MemsealError('ERR_MEMSEAL_UNSUPPORTED', 'arrow: more than one record batch '
                                   '(a column would have to be concatenated, a copy)')
            batch = (fb, header, body)
        elif htype != 2:                     # DictionaryBatch: skipped, its columns are refused
            raise _protocol(f'arrow: unexpected message type {htype}')
    if fields is None or batch is None:
        raise _protocol('arrow: no schema or no record batch')
    fb, rb, body = batch
    if fb.ref(rb, 3) is not None:
        raise MemsealError('ERR_MEMSEAL_UNSUPPORTED', 'arrow: compressed record batch')
    rows = fb.scalar(rb, 0, '<q')
    nodes_at, n_nodes = fb.vector(rb, 1)
    bufs_at, n_bufs = fb.vector(rb, 2)

    def node(i):
        if i >= n_nodes:
            raise _protocol('arrow: fewer field nodes than fields')
        return fb._u('<q', nodes_at + 16 * i), fb._u('<q', nodes_at + 16 * i + 8)

    def buffer(i):
        if i >= n_bufs:
            raise _protocol('arrow: fewer buffers than the fields need')
        off, length = fb._u('<q', bufs_at + 16 * i), fb._u('<q', bufs_at + 16 * i + 8)
        if off < 0 or length < 0 or off + length > len(body):
            raise _protocol(f'arrow: buffer {i} ({off}+{length}) lies outside the body of {len(body)} bytes')
        return off, length

    wanted = None if columns is None else set(columns)
    out = {}
    counter = {'node': 0, 'buffer': 0}

    def walk(field, top):
        name, dtype, ttype, children, dictionary, ffb = field
        tname = _ARROW_TYPE_NAMES.get(ttype, f'type {ttype}')
        if ttype not in _ARROW_BUFFERS and not dictionary:
            raise MemsealError('ERR_MEMSEAL_UNSUPPORTED', f"arrow: column '{name}' has type {tname}, whose layout "
                               'this reader does not walk')
        length, nulls = node(counter['node'])
        first = counter['buffer']
        counter['node'] += 1
        # A dictionary-encoded column holds integer indices here (validity, indices); its values and
        # their children travel in a DictionaryBatch.
        counter['buffer'] += 2 if dictionary else _ARROW_BUFFERS[ttype]
        for child in ([] if dictionary else children):
            walk(_arrow_field(ffb, child), False)
        if not top or (wanted is not None and name not in wanted):
            return
        if dtype is None or dictionary:
            raise MemsealError('ERR_MEMSEAL_UNSUPPORTED', f"arrow: column '{name}' is {tname}"
                               f"{' (dictionary-encoded)' if dictionary else ''}; supported: Int and FloatingPoint")
        if nulls:
            raise MemsealError('ERR_MEMSEAL_UNSUPPORTED', f"arrow: column '{name}' has {nulls} nulls")
        if length != rows or length < 0:
            raise _protocol(f"arrow: column '{name}' states {length} rows, the batch {rows}")
        off, size = buffer(first + 1)
        item = numpy.dtype(dtype).itemsize
        if length * item > size:
            raise _protocol(f"arrow: column '{name}' needs {length * item} bytes, its buffer has {size}")
        if off % item:
            raise _protocol(f"arrow: column '{name}' is misaligned (offset {off})")
        out[name] = numpy.frombuffer(body, dtype=dtype, count=length, offset=off)

    try:
        for f in fields:
            walk(f, True)
    finally:
        walk = None  # the closure refers to itself: break the cycle so no slice of the mapping outlives the call
    if wanted is not None and wanted - out.keys():
        raise KeyError(f'no such column: {sorted(wanted - out.keys())}')
    return out


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
