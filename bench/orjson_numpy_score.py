#!/usr/bin/env python3
"""The comparison for `ecr score` on JSONL (issue 12): the same file read with orjson and scored
with a vectorized numpy implementation of the reference formulas (docs/ECR-SPEC.md section 3),
then written as the same result lines.

usage: python3 bench/orjson_numpy_score.py IN.jsonl [--out OUT.jsonl] [--tau 0.65]

Scope: the default configuration (trace EVB, lambda 0.4 toward the identity, unweighted CR,
confIndex 0, vmax 0.25, dmax default, equal weights) with an optional tau; records may carry
embeddings, expected/realized and policy, and shapes may be mixed (scored per shape, as the engine
does). Records are assumed valid: this is a speed comparison, not a validator. Prints one line
`records N seconds S records_per_s R` on stderr.
"""
import argparse
import gc
import sys
import time

import numpy as np


def metrics(steps, emb=None, expected=None, realized=None, policy=None):
    """Five metrics and nothing else for one shape bucket; every array is [n][t][...]."""
    n, t, m = steps.shape
    h = t - 1
    # EVB (trace mode): tr(0.6 S + 0.4 I) / m with S the sample covariance (ddof 1).
    evb = np.minimum(1.0, 0.6 * steps.var(axis=1, ddof=1).mean(axis=1) + 0.4)
    # CR: the ordering of components, largest first and ties to the lower index, changes.
    order = np.argsort(-steps, axis=2, kind="stable")
    cr = (order[:, 1:, :] != order[:, :-1, :]).any(axis=2).sum(axis=1) / h
    # TS
    if emb is not None:
        a, b = emb[:, 1:, :], emb[:, :-1, :]
        na, nb = np.linalg.norm(a, axis=2), np.linalg.norm(b, axis=2)
        with np.errstate(divide="ignore", invalid="ignore"):
            cos = (a * b).sum(axis=2) / (na * nb)
        dist = np.where((na < 1e-12) | (nb < 1e-12), 1.0, np.clip(1.0 - cos, 0.0, 1.0))
    else:
        dist = np.minimum(1.0, np.linalg.norm(np.diff(steps, axis=1), axis=2) / np.sqrt(m))
    ts = 1.0 - dist.mean(axis=1)
    # ES
    v = (realized - expected).var(axis=1) if expected is not None else steps[:, :, 0].var(axis=1)
    es = np.clip(1.0 - v / 0.25, 0.0, 1.0)
    # PD
    p_in = policy if policy is not None else steps
    dmax = np.log(policy.shape[2]) if policy is not None else 2.0
    p = p_in / (p_in.sum(axis=2, keepdims=True) + 1e-10)
    kl = (p[:, 1:, :] * np.log((p[:, 1:, :] + 1e-10) / (p[:, :-1, :] + 1e-10))).sum(axis=2)
    pd = np.minimum(1.0, np.maximum(kl, 0.0).mean(axis=1) / dmax)
    cci = 0.2 * (1 - evb) + 0.2 * (1 - cr) + 0.2 * ts + 0.2 * es + 0.2 * (1 - pd)
    return evb, cr, ts, es, pd, cci


def shape_of(r):
    s = r["steps"]
    return (len(s), len(s[0]), len(r["embeddings"][0]) if "embeddings" in r else 0,
            len(r["policy"][0]) if "policy" in r else 0, "expected" in r)


def main():
    import orjson  # here, so that pyarrow_numpy_score.py can import metrics() without orjson

    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("--out")
    ap.add_argument("--tau", type=float, default=0.65)
    args = ap.parse_args()
    start = time.perf_counter()
    # Millions of small lists would make the cyclic collector rescan them again and again (the
    # 1M-record run took 3x longer with it on); nothing here forms cycles.
    gc.disable()
    with open(args.input, "rb") as f:
        numbered = [(no, orjson.loads(line)) for no, line in enumerate(f, 1) if line.strip()]
    records = [r for _, r in numbered]
    n = len(records)
    cols = np.zeros((6, n))
    buckets = {}
    for i, r in enumerate(records):
        buckets.setdefault(shape_of(r), []).append(i)
    for (_, _, d, a, rewards), idx in buckets.items():
        rs = [records[i] for i in idx]
        arr = lambda key: np.array([r[key] for r in rs], dtype=np.float64)
        out = metrics(arr("steps"), arr("embeddings") if d else None, arr("expected") if rewards else None,
                      arr("realized") if rewards else None, arr("policy") if a else None)
        cols[:, idx] = np.stack(out)
    evb, cr, ts, es, pd, cci = cols

    # Selection per group (ECR-SPEC section 3): the admissible candidate with the highest base
    # score (default CCI), else the highest CCI; ties to the lower index.
    admissible = cci >= args.tau
    groups = [orjson.dumps(r.get("group")) for r in records]
    _, gidx = np.unique(np.array(groups, dtype=object), return_inverse=True)
    base = np.array([r.get("baseScore", np.nan) for r in records])
    base = np.where(np.isnan(base), cci, base)
    key = np.where(admissible, base, cci)
    # Sort by group, then admissible first, then key descending, then index ascending.
    order = np.lexsort((np.arange(n), -key, ~admissible, gidx))
    first = np.ones(n, dtype=bool)
    first[1:] = gidx[order[1:]] != gidx[order[:-1]]
    selected = np.zeros(n, dtype=bool)
    selected[order[first]] = True

    lines = []
    for i, (no, r) in enumerate(numbered):
        lines.append(orjson.dumps({
            "id": r.get("id", no), "group": r.get("group"), "EVB": evb[i], "CR": cr[i], "TS": ts[i], "ES": es[i],
            "PD": pd[i], "CCI": cci[i], "admissible": bool(admissible[i]), "selected": bool(selected[i]),
        }, option=orjson.OPT_SERIALIZE_NUMPY))
    data = b"\n".join(lines) + b"\n"
    if args.out:
        with open(args.out, "wb") as f:
            f.write(data)
    else:
        sys.stdout.buffer.write(data)
    seconds = time.perf_counter() - start
    print(f"records {n} seconds {seconds:.3f} records_per_s {n / seconds:.0f}", file=sys.stderr)


if __name__ == "__main__":
    main()
