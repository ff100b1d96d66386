#!/usr/bin/env python3
"""Typed data: tensors and Arrow tables as numpy views (part of the memseal reference peer).

open_tensor() and open_table_columns() read what SealedBuffer.fromTypedArray()/allocTensor() and
memseal/arrow's sealTable()/createTableBuilder() write (docs/protocol.md, "Tensors" and "Arrow tables"), as numpy
arrays over the mapping: numpy.frombuffer, no copy. numpy is imported only inside them, so the
rest of this module stays standard-library only. Every offset, length, type and shape is
checked against the buffer before an array exists; a lie raises MemsealError
(ERR_MEMSEAL_PROTOCOL), never an out-of-bounds view. The arrays keep the mapping exported:
drop them (del) before SealedView.close().

Importing memseal_peer is enough: memseal_peer.open_tensor and open_table_columns come from here.
"""
import struct as _struct

from memseal_peer import MemsealError



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


