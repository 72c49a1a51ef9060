#!/usr/bin/env python3
"""The comparison for `ecr score` on Parquet and Arrow IPC (issue 20): the file read with pyarrow
(Parquet with pq.read_table, Arrow IPC memory-mapped), its steps taken as one numpy array without a
copy per row, scored with the vectorized numpy metrics of orjson_numpy_score.py (the reference
formulas, docs/ECR-SPEC.md section 3), selection per group, and the results written in the input's
format with pyarrow.

usage: python3 bench/pyarrow_numpy_score.py IN.parquet|IN.arrow OUT [--tau 0.65]

Scope: what the benchmark files hold (bench/gen-formats.sh): id, group and steps of one shape
[T][m], the default configuration. Prints `records N seconds S read R metrics M write W` on stderr.
"""
import argparse
import os
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from orjson_numpy_score import metrics  # noqa: E402


def steps_array(column, n):
    """[n][T][m] float64 from a list<list<float>> (or fixed-size) column, without a per-row loop."""
    flat = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    inner = flat.flatten()
    t = len(inner) // n
    values = inner.flatten().to_numpy(zero_copy_only=False)
    return values.astype(np.float64, copy=False).reshape(n, t, len(values) // (n * t))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--tau", type=float, default=0.65)
    args = ap.parse_args()
    start = time.perf_counter()
    parquet = args.input.endswith((".parquet", ".pq"))
    if parquet:
        table = pq.read_table(args.input)
    else:
        table = ipc.open_file(pa.memory_map(args.input, "r")).read_all()
    n = table.num_rows
    steps = steps_array(table.column("steps"), n)
    read = time.perf_counter()
    evb, cr, ts, es, pd, cci = metrics(steps)
    admissible = cci >= args.tau
    _, gidx = np.unique(table.column("group").to_numpy(zero_copy_only=False), return_inverse=True)
    key = cci
    order = np.lexsort((np.arange(n), -key, ~admissible, gidx))
    first = np.ones(n, dtype=bool)
    first[1:] = gidx[order[1:]] != gidx[order[:-1]]
    selected = np.zeros(n, dtype=bool)
    selected[order[first]] = True
    scored = time.perf_counter()
    out = pa.table({
        "id": table.column("id"), "group": table.column("group"), "EVB": evb, "CR": cr, "TS": ts, "ES": es,
        "PD": pd, "CCI": cci, "admissible": admissible, "selected": selected,
    })
    if parquet:
        pq.write_table(out, args.output)
    else:
        with ipc.new_file(args.output, out.schema) as w:
            w.write_table(out)
    end = time.perf_counter()
    print(f"records {n} seconds {end - start:.3f} read {read - start:.3f} metrics {scored - read:.3f} write {end - scored:.3f}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
