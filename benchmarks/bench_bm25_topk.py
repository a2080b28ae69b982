"""BM25 search cost per query on a finished run's index: bm25s's own retrieve (what hnmine used before)
against hnmine's search (top k over the postings of the query's terms only).

bm25s picks each query's top k with np.argpartition over the score of every document. Most documents
score exactly 0 for a query (no shared term), and numpy's introselect is an order of magnitude slower on
arrays made mostly of equal values. hnmine sums the postings of the query's terms (np.bincount) and
selects among the documents that share a term; the ranked scores must be the same.

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

    from hnmine.retrievers.bm25 import BM25Options, SparseBM25, search, tokenize

    queries = pq.read_table(args.run / "inputs/queries.parquet").column("text").to_pylist()
    n_docs = pq.ParquetFile(args.run / "inputs/corpus.parquet").metadata.num_rows
    rng = np.random.default_rng(0)
    sample = [queries[i] for i in np.sort(rng.choice(len(queries), size=min(args.sample, len(queries)), replace=False))]
    opts = BM25Options()
    toks = tokenize(sample, opts.stopwords)
    model = bm25s.BM25.load(str(args.run / "index/bm25"), show_progress=False)
    t = time.perf_counter()
    ids_a, scores_a = model.retrieve([q if q else ["\x00"] for q in toks], k=args.k, show_progress=False, n_threads=0)
    scores_a = np.where(scores_a > 0, scores_a, 0)
    bm25s_s = time.perf_counter() - t

    t = time.perf_counter()
    ids_b, scores_b = search(sample, args.k, opts, args.run / "index/bm25", n_docs)
    hnmine_s = time.perf_counter() - t
    index = SparseBM25(args.run / "index/bm25")
    nonzero = [len(index.scores(q)[0]) / n_docs for q in toks[:100]]
    same = float(np.mean([set(a[s > 0]) == set(b[b >= 0]) for a, s, b in zip(ids_a, scores_a, ids_b)]))
    # ties at the k-th score may be cut differently by bm25s; the ranked score lists must be the same
    ranked_a = -np.sort(-scores_a, axis=1)
    same_scores = float(np.mean(np.all(np.abs(ranked_a - scores_b) <= 1e-5 * np.maximum(1, np.abs(scores_b)), axis=1)))
    res = {
        "run": str(args.run),
        "documents": n_docs,
        "queries_sampled": len(sample),
        "k": args.k,
        "bm25s_retrieve_s": round(bm25s_s, 2),
        "bm25s_ms_per_query": round(1000 * bm25s_s / len(sample), 2),
        "hnmine_search_s": round(hnmine_s, 2),
        "hnmine_ms_per_query": round(1000 * hnmine_s / len(sample), 2),
        "share_of_docs_sharing_a_term_mean": round(float(np.mean(nonzero)), 4),
        "same_top_k_ids_share": same,
        "same_ranked_scores_share": same_scores,
        "speedup": round(bm25s_s / hnmine_s, 1),
    }
    print(res)
    write_results(args.results or BENCH / "results" / f"bm25_topk-{n_docs}.json", res)


if __name__ == "__main__":
    main()
