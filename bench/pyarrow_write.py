#!/usr/bin/env python3
"""The issue-20 input as a user's pyarrow script writes it: IN.arrow (bench/gen-formats.sh) with
`steps` as list<list<double>> and string id and group, written by pyarrow with its defaults
(Parquet: snappy, row groups of up to 1Mi rows; Arrow IPC: the file format, uncompressed).

usage: python3 bench/pyarrow_write.py IN.arrow OUT.parquet|OUT.arrow
"""
import sys

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

src, dst = sys.argv[1], sys.argv[2]
table = ipc.open_file(pa.memory_map(src, "r")).read_all()
steps_type = pa.list_(pa.list_(pa.float64()))
table = table.set_column(table.schema.get_field_index("steps"), "steps", table.column("steps").cast(steps_type))
if dst.endswith(".parquet"):
    pq.write_table(table, dst)
else:
    with ipc.new_file(dst, table.schema) as w:
        w.write_table(table)
