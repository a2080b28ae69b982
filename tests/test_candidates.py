"""The vectorised candidate table against a plain per-query reference (the loop hnmine used to run)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles import rrf

from hnmine.stages.candidates import CANDIDATE_SCHEMA, build_candidates


def reference_candidates(query_ids, positives, corpus_ids, lists, max_depth, rrf_k) -> pa.Table:
    cols: dict[str, list] = {name: [] for name in CANDIDATE_SCHEMA.names}
    names = list(lists)
    for row, qid in enumerate(query_ids):
        pos = positives.get(qid, set())
        per_source: dict[str, dict[str, float]] = {}
        ranked: dict[str, list[str]] = {}
        for name in names:
            ids, scores = lists[name]
            valid = ids[row] >= 0
            docs = corpus_ids[ids[row][valid]].tolist()
            ranked[name] = docs
            per_source[name] = dict(zip(docs, scores[row][valid].tolist()))
        if len(names) == 1:
            fused = [(d, per_source[names[0]][d], names[0]) for d in ranked[names[0]]]
        else:
            fused = rrf(ranked, k=rrf_k)
        kept_neg = 0
        for rank, (doc_id, score, source) in enumerate(fused, start=1):
            is_pos = doc_id in pos
            if not is_pos:
                if kept_neg >= max_depth:
                    continue
                kept_neg += 1
            for col, value in (
                ("query_id", qid),
                ("doc_id", doc_id),
                ("rank", rank),
                ("score", score),
                ("source", source),
                ("is_positive", is_pos),
                ("dense_score", per_source.get("dense", {}).get(doc_id)),
                ("bm25_score", per_source.get("bm25", {}).get(doc_id)),
            ):
                cols[col].append(value)
    return pa.table(cols, schema=CANDIDATE_SCHEMA)


def _ranked_lists(rng, n_queries, n_docs, k, pad):
    ids = np.stack([rng.permutation(n_docs)[:k] for _ in range(n_queries)]).astype(np.int64)
    # scores descending per row, with repeated values so that ties happen
    scores = -np.sort(-rng.integers(0, 4, size=(n_queries, k)).astype(np.float32), axis=1)
    if pad:
        cut = rng.integers(0, k + 1, size=n_queries)
        for row, c in enumerate(cut):
            ids[row, c:] = -1
            scores[row, c:] = 0
    return ids, scores


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_queries=st.integers(1, 6),
    n_docs=st.integers(1, 30),
    k=st.integers(1, 12),
    sources=st.sampled_from([("dense",), ("bm25",), ("dense", "bm25"), ("dense", "dense2", "bm25")]),
    max_depth=st.integers(1, 10),
    rrf_k=st.sampled_from([1, 60]),
    pad=st.booleans(),
)
def test_vectorised_candidates_equal_the_reference(seed, n_queries, n_docs, k, sources, max_depth, rrf_k, pad):
    rng = np.random.default_rng(seed)
    k = min(k, n_docs)
    # ids with mixed lengths, so sorting by id string differs from sorting by row
    corpus_ids = np.array([f"doc-{rng.integers(0, 10 ** rng.integers(1, 4))}-{i}" for i in range(n_docs)], dtype=object)
    query_ids = [f"q{i}" for i in range(n_queries)]
    lists = {name: _ranked_lists(rng, n_queries, n_docs, k, pad) for name in sources}
    positives = {q: set(rng.choice(corpus_ids, size=rng.integers(0, 4)).tolist()) for q in query_ids if rng.random() < 0.8}
    got = build_candidates(query_ids, positives, corpus_ids, lists, max_depth, rrf_k)
    want = reference_candidates(query_ids, positives, corpus_ids, lists, max_depth, rrf_k)
    assert got.equals(want), (got.to_pylist(), want.to_pylist())


def test_no_candidates_at_all_gives_an_empty_table():
    ids = np.full((2, 3), -1, dtype=np.int64)
    table = build_candidates(
        ["a", "b"], {}, np.array(["d1", "d2", "d3"], dtype=object), {"bm25": (ids, np.zeros((2, 3), np.float32))}, 5, 60
    )
    assert table.num_rows == 0 and table.schema == CANDIDATE_SCHEMA
