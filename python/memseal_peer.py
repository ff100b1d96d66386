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

This file is the core (verification, Channel, SealedView). Three sibling modules hold the rest, and
their names are reachable from this one: memseal_snapshot.py (SnapshotReader), memseal_typed.py
(open_tensor, open_table_columns; numpy only there) and memseal_pool.py (PoolSubscriber).
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

# ---- the parts in sibling modules ------------------------------------------------------------------
# Snapshots, typed data and the pool subscriber live in memseal_snapshot.py, memseal_typed.py and
# memseal_pool.py beside this file (copy them along if you copy this one). Their names are reachable
# from here too, loaded on first use (PEP 562), so `from memseal_peer import open_tensor` works.
_PARTS = {
    'memseal_snapshot': ('SnapshotReader', 'snapshot_main'),
    'memseal_typed': ('TENSOR_MAGIC', 'TENSOR_ALIGNMENT', 'TENSOR_MAX_DIMS', 'TENSOR_TYPES', 'open_tensor',
                      'open_table_columns'),
    'memseal_pool': ('POOL_MAGIC', 'POOL_VERSION', 'POOL_HELLO', 'POOL_SAMPLES', 'POOL_DETACH', 'POOL_RELEASE',
                     'POOL_DETACH_CLOSING', 'POOL_MAX_SLOTS', 'POOL_MAX_META', 'PoolSample', 'PoolSubscriber',
                     'pool_main'),
}


def __getattr__(name):
    for part, names in _PARTS.items():
        if name in names:
            import importlib
            return getattr(importlib.import_module(part), name)
    raise AttributeError(f"module 'memseal_peer' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | {n for names in _PARTS.values() for n in names})


if __name__ == '__main__':
    sys.exit(main(sys.argv))
