#!/usr/bin/env python3
"""The Python reader of examples/arrow-cluster.ts: receives a sealed Arrow table and a sealed float32
matrix over the channel its parent handed it, and computes one aggregate over each with numpy on views
of the mapping (open_table_columns, open_tensor): nothing is copied."""
from memseal_peer import Channel, open_table_columns, open_tensor

ch = Channel.from_parent()
with ch.receive_buffer(max_size=1 << 30) as table, ch.receive_buffer(max_size=1 << 30) as matrix:
    cols = open_table_columns(table.view, columns=['price', 'qty'])
    turnover = float((cols['price'] * cols['qty']).sum())
    m = open_tensor(matrix.view)
    mean = float(m[:, 1].mean(dtype='float64'))
    views = not cols['price'].flags.owndata and not m.flags.owndata
    print(f"python reader: sum(price*qty) = {turnover:.0f}, mean(matrix[:, 1]) = {mean:.6f}, "
          f"{'views over the mapping' if views else 'COPIES'}", flush=True)
    del cols, m
ch.close()
