"""Retrieval metrics of a model on held-out judgments: exact search, then nDCG@10, Recall@100, MRR@10.

Pure numpy, no model: the vectors come in, the metrics go out, so every number can be checked by hand.

Conventions (those of BEIR / trec_eval, and of sentence-transformers' InformationRetrievalEvaluator
when every grade is 1):
- search is exact: inner product of L2-normalised vectors (cosine) against the whole corpus;
- ties in score are broken by document id (ascending string order), so a ranking never depends on
  the order of the corpus file or on the search routine;
- a document is relevant when its grade >= min_relevance; nDCG uses the grade as the gain
  (linear gain, as trec_eval) and log2(rank + 1) as the discount, the ideal ranking taken from
  the query's relevant grades; Recall@k = relevant in the top k / all relevant; MRR@k = 1 / rank
  of the first relevant document in the top k, else 0;
- each metric is the mean over the queries that have at least one relevant document.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

NDCG_K = 10
RECALL_K = 100
MRR_K = 10
METRICS = ("ndcg_at_10", "recall_at_100", "mrr_at_10")  # the names of the result columns

# Score rows held in memory at once during search: about 256 MB of float32.
_SCORE_BUDGET = 64 * 1024 * 1024


def rank_documents(query_vectors: np.ndarray, doc_vectors: np.ndarray, k: int) -> np.ndarray:
    """Top-k document positions per query by inner product, ties broken by position (ascending).

    Callers order the corpus by document id, so "by position" means "by document id".
    Returns an int64 array of shape (queries, min(k, documents)).
    """
    q = np.asarray(query_vectors, dtype=np.float32)
    d = np.asarray(doc_vectors, dtype=np.float32)
    n_docs = d.shape[0]
    k = min(k, n_docs)
    out = np.empty((q.shape[0], k), dtype=np.int64)
    if k == 0:
        return out
    rows_per_chunk = max(1, _SCORE_BUDGET // max(1, n_docs))
    for start in range(0, q.shape[0], rows_per_chunk):
        scores = q[start : start + rows_per_chunk] @ d.T
        # The k best per row, unordered; then every document tied with the k-th joins, so the
        # tie-break below sees all of them, not just the ones argpartition happened to pick.
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        kth = np.take_along_axis(scores, part, axis=1).min(axis=1)
        for i, row in enumerate(scores):
            candidates = np.flatnonzero(row >= kth[i])
            order = np.lexsort((candidates, -row[candidates]))  # by score desc, then position asc
            out[start + i] = candidates[order[:k]]
    return out


def dcg(gains: Sequence[float]) -> float:
    """Sum of gain / log2(rank + 1) over ranks 1, 2, …"""
    g = np.asarray(gains, dtype=np.float64)
    return float((g / np.log2(np.arange(2, g.size + 2))).sum())


def query_metrics(ranked_doc_ids: Sequence[str], grades: Mapping[str, int], min_relevance: int = 1) -> dict[str, float]:
    """nDCG@10, Recall@100 and MRR@10 of one query's ranked list against its graded judgments."""
    relevant = {d: g for d, g in grades.items() if g >= min_relevance}
    if not relevant:
        raise ValueError("a query without a relevant document has no metrics")
    gains = [relevant.get(d, 0) for d in ranked_doc_ids[:NDCG_K]]
    ideal = sorted(relevant.values(), reverse=True)[:NDCG_K]
    ndcg = dcg(gains) / dcg(ideal)
    found = sum(1 for d in ranked_doc_ids[:RECALL_K] if d in relevant)
    mrr = 0.0
    for rank, d in enumerate(ranked_doc_ids[:MRR_K], start=1):
        if d in relevant:
            mrr = 1.0 / rank
            break
    return {"ndcg_at_10": ndcg, "recall_at_100": found / len(relevant), "mrr_at_10": mrr}


@dataclass(frozen=True)
class RetrievalScores:
    """Mean metrics over the judged queries, and how many queries they cover."""

    ndcg_at_10: float
    recall_at_100: float
    mrr_at_10: float
    queries: int

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in METRICS}


def retrieval_scores(
    query_vectors: np.ndarray,
    doc_vectors: np.ndarray,
    query_ids: Sequence[str],
    doc_ids: Sequence[str],
    qrels: Mapping[str, Mapping[str, int]],
    min_relevance: int = 1,
) -> RetrievalScores:
    """Search the whole corpus for every query with a relevant document, then average the metrics.

    doc_ids must be sorted (ascending) so that ties fall back to the document id; query_ids and
    doc_ids align with the rows of their vectors.
    """
    doc_ids = list(doc_ids)
    if any(a > b for a, b in zip(doc_ids, doc_ids[1:])):
        raise ValueError("doc_ids must be sorted so that ties are broken by document id")
    judged = [i for i, q in enumerate(query_ids) if any(g >= min_relevance for g in qrels.get(q, {}).values())]
    if not judged:
        raise ValueError("no query has a relevant document")
    top = rank_documents(np.asarray(query_vectors)[judged], doc_vectors, max(NDCG_K, RECALL_K, MRR_K))
    totals = dict.fromkeys(METRICS, 0.0)
    for row, i in zip(top, judged):
        m = query_metrics([doc_ids[j] for j in row], qrels[query_ids[i]], min_relevance)
        for name in METRICS:
            totals[name] += m[name]
    n = len(judged)
    return RetrievalScores(**{name: totals[name] / n for name in METRICS}, queries=n)
