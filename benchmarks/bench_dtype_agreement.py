"""Top-10 agreement of bfloat16 (or float16) with float32 on SciFact train: share of (query, document) pairs in common.

Uses the vectors saved by floor_encode.py (bench_scifact.py saves them), or encodes them itself.
For every train query, the 10 best documents by cosine under each dtype; agreement =
|top10_bf16 ∩ top10_fp32| summed over queries / (10 × queries). Reported twice: over all documents,
and with the query's positives left out (hnmine's negative candidates). When --run is given (an hnmine
run made at bf16), its candidates.parquet top-10 non-positives are compared with the fp32 list too.

  python benchmarks/bench_dtype_agreement.py [--low floor-bf16.npz --fp32 floor-fp32.npz] [--run RUN]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCH, PY, SCIFACT, bench_env, write_results  # noqa: E402
from scifact_data import load  # noqa: E402

TARGET = 0.98


def topk(q: np.ndarray, d: np.ndarray, k: int, exclude: list[set[int]] | None = None) -> np.ndarray:
    s = q @ d.T
    if exclude is not None:
        for i, ex in enumerate(exclude):
            if ex:
                s[i, list(ex)] = -np.inf
    # ties broken by document row, like hnmine
    order = np.lexsort((np.broadcast_to(np.arange(d.shape[0]), s.shape), -s), axis=1)
    return order[:, :k]


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    return sum(len(set(x) & set(y)) for x, y in zip(a.tolist(), b.tolist())) / float(a.size)


def agreement(low_npz: Path, fp32_npz: Path, k: int = 10, run: Path | None = None, data: Path = SCIFACT) -> dict:
    lo, hi = np.load(low_npz), np.load(fp32_npz)
    assert (lo["doc_ids"] == hi["doc_ids"]).all() and (lo["query_ids"] == hi["query_ids"]).all()
    doc_ids, qids = hi["doc_ids"].tolist(), hi["query_ids"].tolist()
    _, _, _, _, pairs = load(data)
    row = {d: i for i, d in enumerate(doc_ids)}
    qrow = {q: i for i, q in enumerate(qids)}
    pos = [set() for _ in qids]
    for q, d in pairs:
        if q in qrow:
            pos[qrow[q]].add(row[d])
    out = {"queries": len(qids), "documents": len(doc_ids), "k": k, "target": TARGET}
    a_lo, a_hi = topk(lo["queries"], lo["docs"], k), topk(hi["queries"], hi["docs"], k)
    out["agreement_all_docs"] = round(overlap(a_lo, a_hi), 4)
    n_lo, n_hi = topk(lo["queries"], lo["docs"], k, pos), topk(hi["queries"], hi["docs"], k, pos)
    out["agreement_positives_left_out"] = round(overlap(n_lo, n_hi), 4)
    out["queries_identical_top10"] = int(sum(set(x) == set(y) for x, y in zip(n_lo.tolist(), n_hi.tolist())))
    cos = np.sum(lo["docs"] * hi["docs"], axis=1)
    out["doc_vector_cosine_bf16_vs_fp32"] = {"min": round(float(cos.min()), 5), "mean": round(float(cos.mean()), 5)}
    if run is not None and (Path(run) / "candidates.parquet").exists():
        import pyarrow.parquet as pq

        t = pq.read_table(Path(run) / "candidates.parquet").to_pydict()
        per_q: dict[str, list[tuple[int, str]]] = {}
        for q, d, r, p in zip(t["query_id"], t["doc_id"], t["rank"], t["is_positive"]):
            if not p:
                per_q.setdefault(q, []).append((r, d))
        hits = total = 0
        for q, lst in per_q.items():
            mine = {d for _, d in sorted(lst)[:k]}
            ref = {doc_ids[j] for j in n_hi[qrow[q]].tolist()}
            hits += len(mine & ref)
            total += k
        out["hnmine_run_candidates_vs_fp32"] = round(hits / total, 4) if total else None
    out["met"] = out["agreement_positives_left_out"] >= TARGET and out["agreement_all_docs"] >= TARGET
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--low", type=Path, default=None, help="floor_encode.py npz at the lower precision")
    ap.add_argument("--fp32", type=Path, default=None)
    ap.add_argument("--low-dtype", default="bfloat16")
    ap.add_argument("--run", type=Path, default=None)
    ap.add_argument("--results", type=Path, default=BENCH / "results" / "dtype_agreement.json")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hnmine-dtype-"))
    for attr, dtype in (("low", args.low_dtype), ("fp32", "float32")):
        if getattr(args, attr) is None:
            p = tmp / f"{dtype}.npz"
            subprocess.run([PY, str(BENCH / "floor_encode.py"), "--dtype", dtype, "--save", str(p)], check=True, env=bench_env())
            setattr(args, attr, p)
    res = agreement(args.low, args.fp32, run=args.run)
    res["low_dtype"] = args.low_dtype
    print(
        f"top-10 agreement {args.low_dtype} vs float32: {res['agreement_all_docs']:.2%} (all docs), "
        f"{res['agreement_positives_left_out']:.2%} (positives left out); target ≥ {TARGET:.0%}: {'met' if res['met'] else 'NOT met'}"
    )
    write_results(args.results, res)


if __name__ == "__main__":
    main()
