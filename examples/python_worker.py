# A Python peer for examples/python-worker.ts: receives a SealedBuffer's memfd
# over the inherited channel, checks it the way receiveBuffer() does (a memfd,
# sealed SHRINK|GROW|WRITE, size bounded), maps it read-only and replies with
# its SHA-256. Python >= 3.9 (socket.recv_fds), standard library only.
import fcntl
import hashlib
import mmap
import os
import socket
import sys

REQUIRED = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
MAX_SIZE = 256 << 20

# spawnWithChannel() hands the child one end of a SOCK_SEQPACKET socketpair and names it here.
sock = socket.socket(fileno=int(os.environ.pop("MEMSEAL_CHANNEL_FD")))
meta, fds, flags, _ = socket.recv_fds(sock, 65536, 1)
if flags & socket.MSG_CTRUNC or len(fds) != 1:
    sys.exit(f"python: expected one descriptor, got {len(fds)}")
fd = fds[0]
try:
    seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)  # EINVAL: not a memfd
    size = os.fstat(fd).st_size
    if seals & REQUIRED != REQUIRED:
        sys.exit(f"python: refused, seals {seals:#x} lack {REQUIRED & ~seals:#x}")
    if size > MAX_SIZE:
        sys.exit(f"python: refused, {size} bytes is over {MAX_SIZE}")
    with mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ) as view:
        digest = hashlib.sha256(view).hexdigest()[:16]
finally:
    os.close(fd)
sock.send(f"python {os.getpid()}: {meta.decode()} {size} bytes, sha256 {digest}".encode())
sock.close()
