"""Retrieval metrics of `hnmine finetune` on hand-made vectors and rankings, every expected value worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hnmine.finetune.metrics import query_metrics, rank_documents, retrieval_scores


def test_query_metrics_graded_hand_computed():
    # Relevant: d1 (grade 2), d7 and d9 (grade 1); d5 is judged but below min_relevance 1.
    ranked = ["d3", "d1", "d7", "d2", "d5"]
    m = query_metrics(ranked, {"d1": 2, "d7": 1, "d9": 1, "d5": 0})
    dcg = 2 / math.log2(3) + 1 / math.log2(4)  # d1 at rank 2, d7 at rank 3
    idcg = 2 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)  # grades 2, 1, 1 in the best order
    assert m["ndcg_at_10"] == pytest.approx(dcg / idcg)
    assert m["ndcg_at_10"] == pytest.approx(1.7618595 / 3.1309298, abs=1e-7)  # = 0.5627273
    assert m["recall_at_100"] == pytest.approx(2 / 3)  # d9 never retrieved
    assert m["mrr_at_10"] == 0.5  # first relevant at rank 2


def test_query_metrics_cutoffs():
    # The only relevant document at rank 11: outside nDCG@10 and MRR@10, inside Recall@100.
    ranked = [f"x{i}" for i in range(10)] + ["rel"] + [f"y{i}" for i in range(200)]
    m = query_metrics(ranked, {"rel": 1})
    assert m == {"ndcg_at_10": 0.0, "recall_at_100": 1.0, "mrr_at_10": 0.0}
    # At rank 101 it is outside Recall@100 too.
    ranked = [f"x{i}" for i in range(100)] + ["rel"]
    assert query_metrics(ranked, {"rel": 1})["recall_at_100"] == 0.0


def test_min_relevance_decides_what_counts():
    ranked = ["a", "b"]
    assert query_metrics(ranked, {"a": 1, "b": 2}, min_relevance=2)["mrr_at_10"] == 0.5
    with pytest.raises(ValueError):
        query_metrics(ranked, {"a": 1}, min_relevance=2)


def test_rank_documents_breaks_ties_by_position():
    docs = np.array([[1, 0], [0, 1], [1, 0], [0.6, 0.8]], dtype=np.float32)
    query = np.array([[1, 0]], dtype=np.float32)  # scores 1, 0, 1, 0.6
    assert rank_documents(query, docs, 4).tolist() == [[0, 2, 3, 1]]
    assert rank_documents(query, docs, 1).tolist() == [[0]]
    # Many exact ties straddling the cut: the lowest positions win, whatever argpartition picked.
    same = np.ones((50, 2), dtype=np.float32) / math.sqrt(2)
    assert rank_documents(np.array([[1, 1]], dtype=np.float32), same, 3).tolist() == [[0, 1, 2]]
    # k larger than the corpus: every document, once.
    assert sorted(rank_documents(query, docs, 10)[0].tolist()) == [0, 1, 2, 3]


def test_retrieval_scores_hand_computed():
    doc_ids = ["a", "b", "c"]
    docs = np.array([[1, 0], [0.8, 0.6], [0, 1]], dtype=np.float32)
    queries = np.array([[1, 0], [0, 1], [1, 0]], dtype=np.float32)
    qrels = {
        "q1": {"b": 1},  # ranking a, b, c: relevant at rank 2
        "q2": {"c": 1, "a": 1},  # ranking c, b, a: relevant at ranks 1 and 3
        "q3": {"a": 0},  # judged, nothing relevant: not averaged
    }
    s = retrieval_scores(queries, docs, ["q1", "q2", "q3"], doc_ids, qrels)
    ndcg_q1 = (1 / math.log2(3)) / 1
    ndcg_q2 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert s.queries == 2
    assert s.ndcg_at_10 == pytest.approx((ndcg_q1 + ndcg_q2) / 2)
    assert s.mrr_at_10 == pytest.approx((1 / 2 + 1) / 2)
    assert s.recall_at_100 == 1.0


def test_retrieval_scores_needs_sorted_ids_and_a_judged_query():
    docs = np.eye(2, dtype=np.float32)
    with pytest.raises(ValueError, match="sorted"):
        retrieval_scores(docs, docs, ["q"], ["b", "a"], {"q": {"a": 1}})
    with pytest.raises(ValueError, match="no query"):
        retrieval_scores(docs, docs, ["q"], ["a", "b"], {"other": {"a": 1}})
