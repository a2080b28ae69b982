"""BM25 search cost per query on a finished run's index, as hnmine does it, and with a top-k over the
non-zero scores only (a proposed fix; measured here, not in hnmine).

bm25s picks each query's top k with np.argpartition over the score of every document. Most documents
score exactly 0 for a query (no shared term), and numpy's introselect is an order of magnitude slower on
arrays made mostly of equal values. Selecting among the non-zero scores first gives the same top k
(hnmine drops zero scores anyway).

  python benchmarks/bench_bm25_topk.py RUN [--sample 500] [--k 101]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCH, write_results  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--sample", type=int, default=500)
    ap.add_argument("--k", type=int, default=101)
    ap.add_argument("--results", type=Path, default=None)
    args = ap.parse_args()
    import bm25s

    from hnmine.retrievers.bm25 import BM25Options, search, tokenize

    queries = pq.read_table(args.run / "inputs/queries.parquet").column("text").to_pylist()
    n_docs = pq.ParquetFile(args.run / "inputs/corpus.parquet").metadata.num_rows
    rng = np.random.default_rng(0)
    sample = [queries[i] for i in np.sort(rng.choice(len(queries), size=min(args.sample, len(queries)), replace=False))]
    opts = BM25Options()
    t = time.perf_counter()
    ids_a, scores_a = search(sample, args.k, opts, args.run / "index/bm25", n_docs)
    hnmine_s = time.perf_counter() - t

    model = bm25s.BM25.load(str(args.run / "index/bm25"))
    toks = tokenize(sample, opts.stopwords)
    t = time.perf_counter()
    ids_b = np.full((len(sample), args.k), -1, dtype=np.int64)
    scores_b = np.zeros((len(sample), args.k), dtype=np.float32)
    nonzero = []
    for row, q in enumerate(toks):
        s = model.get_scores(q)
        nz = np.flatnonzero(s)
        nonzero.append(len(nz) / len(s))
        if len(nz) > args.k:
            nz = nz[np.argpartition(-s[nz], args.k - 1)[: args.k]]
        order = np.lexsort((nz, -s[nz]))
        ids_b[row, : len(nz)] = nz[order]
        scores_b[row, : len(nz)] = s[nz[order]]
    nonzero_first_s = time.perf_counter() - t
    same = float(np.mean([set(a[a >= 0]) == set(b[b >= 0]) for a, b in zip(ids_a, ids_b)]))
    # ties at the k-th score may be cut differently; the ranked score lists must be the same
    same_scores = float(np.mean(np.all(np.abs(np.where(ids_a >= 0, scores_a, 0) - scores_b) <= 1e-5 * np.maximum(1, np.abs(scores_b)), axis=1)))
    res = {
        "run": str(args.run), "documents": n_docs, "queries_sampled": len(sample), "k": args.k,
        "hnmine_search_s": round(hnmine_s, 2), "hnmine_ms_per_query": round(1000 * hnmine_s / len(sample), 2),
        "nonzero_first_s": round(nonzero_first_s, 2), "nonzero_first_ms_per_query": round(1000 * nonzero_first_s / len(sample), 2),
        "share_of_docs_nonzero_mean": round(float(np.mean(nonzero)), 4), "same_top_k_ids_share": same, "same_top_k_scores_share": same_scores,
        "speedup": round(hnmine_s / nonzero_first_s, 1),
    }
    print(res)
    write_results(args.results or BENCH / "results" / f"bm25_topk-{n_docs}.json", res)


if __name__ == "__main__":
    main()
