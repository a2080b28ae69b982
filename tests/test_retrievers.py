"""Retrievers: BM25 against the rank-bm25 reference, RRF fusion by hand, dense search edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TINY_DOCS, TINY_QUERIES
from oracles import rrf

from hnmine.retrievers import bm25
from hnmine.retrievers.dense import DenseSearcher, build_index
from hnmine.stages.candidates import build_candidates


def test_bm25s_matches_rank_bm25_reference(tmp_path):
    texts = [f"{d['title']} {d['text']}" for d in TINY_DOCS]
    queries = [q["text"] for q in TINY_QUERIES] + ["coffee pressure water", "bicycle chain wear cassette"]
    results = {}
    for backend in ("bm25s", "rank-bm25"):
        opts = bm25.BM25Options(backend=backend, method="robertson")
        bm25.build(texts, opts, tmp_path / backend)
        results[backend] = bm25.search(queries, 5, opts, tmp_path / backend, len(texts))
    ids_a, sc_a = results["bm25s"]
    ids_b, sc_b = results["rank-bm25"]
    assert (ids_a == ids_b).all()
    # rank-bm25's BM25Okapi carries the constant factor (k1 + 1); the rankings are the same.
    valid = ids_a >= 0
    np.testing.assert_allclose(sc_a[valid] * (1.5 + 1), sc_b[valid], rtol=1e-4)


def test_bm25_no_shared_term_is_not_a_candidate(tmp_path):
    texts = [f"{d['title']} {d['text']}" for d in TINY_DOCS]
    opts = bm25.BM25Options()
    bm25.build(texts, opts, tmp_path / "i")
    ids, _ = bm25.search(["zzzz qqqq"], 5, opts, tmp_path / "i", len(texts))
    assert (ids == -1).all()


def test_rrf_hand_computed():
    fused = rrf({"dense": ["a", "b", "c"], "bm25": ["b", "d"]}, k=60)
    scores = {d: s for d, s, _ in fused}
    assert scores["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert scores["a"] == pytest.approx(1 / 61)
    assert scores["d"] == pytest.approx(1 / 62)
    assert [d for d, _, _ in fused] == ["b", "a", "d", "c"]
    assert dict((d, s) for d, _, s in fused)["b"] == "dense+bm25"


def test_dense_search_caps_k_at_corpus_size_and_never_returns_padding(tmp_path):
    rng = np.random.default_rng(0)
    docs = rng.normal(size=(4, 8)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    info = build_index(docs, tmp_path)
    ids, scores = DenseSearcher(docs, index_info=info, folder=tmp_path, plan={"type": "exact"}).search(docs[:2], 10)
    assert ids.shape == (2, 4)
    assert (ids >= 0).all()
    assert ids[0, 0] == 0 and ids[1, 0] == 1


def _clustered(n: int, dim: int = 16, clusters: int = 50, noise: float = 0.3, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    docs = (centres[rng.integers(0, clusters, size=n)] + noise * rng.normal(size=(n, dim))).astype(np.float32)
    return docs / np.linalg.norm(docs, axis=1, keepdims=True)


def test_ivf_plan_reaches_the_recall_asked_for(tmp_path):
    from hnmine.retrievers.dense import plan_search

    docs = _clustered(3000)
    info = build_index(docs, tmp_path, exact_max_docs=1000)
    assert info["type"] == "ivf"
    queries = docs[:200] + 0.01
    plan = plan_search(queries, docs, 10, index_info=info, folder=tmp_path, min_recall=0.9)
    assert plan["type"] == "ivf" and plan["recall"] >= 0.9
    assert [t["nprobe"] for t in plan["tried"]][-1] == plan["nprobe"]
    # the plan's recall is what the search then gives
    ids, _ = DenseSearcher(docs, index_info=info, folder=tmp_path, plan=plan).search(queries, 10)
    import faiss

    _, exact = faiss.knn(np.ascontiguousarray(queries), docs, 10, metric=faiss.METRIC_INNER_PRODUCT)
    assert np.mean([len(set(a) & set(e)) / 10 for a, e in zip(ids, exact)]) >= 0.9
    assert plan == plan_search(queries, docs, 10, index_info=info, folder=tmp_path, min_recall=0.9)  # deterministic


def test_ivf_that_cannot_reach_the_recall_falls_back_to_exact_search(tmp_path):
    from hnmine.retrievers.dense import plan_search

    rng = np.random.default_rng(2)
    docs = rng.normal(size=(3000, 64)).astype(np.float32)  # no structure: IVF recall is poor at any cheap nprobe
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    info = build_index(docs, tmp_path, exact_max_docs=1000)
    queries = rng.normal(size=(100, 64)).astype(np.float32)
    plan = plan_search(queries, docs, 50, index_info=info, folder=tmp_path, min_recall=0.99)
    assert plan["type"] == "exact" and plan["tried"] and all(t["recall"] < 0.99 for t in plan["tried"])
    ids, _ = DenseSearcher(docs, index_info=info, folder=tmp_path, plan=plan).search(queries, 50)
    import faiss

    _, exact = faiss.knn(queries, docs, 50, metric=faiss.METRIC_INNER_PRODUCT)
    assert (ids == exact).all()


def test_a_given_nprobe_is_used_as_is(tmp_path):
    from hnmine.retrievers.dense import plan_search

    docs = _clustered(3000)
    info = build_index(docs, tmp_path, exact_max_docs=1000)
    plan = plan_search(docs[:100], docs, 10, index_info=info, folder=tmp_path, nprobe=1, min_recall=0.999)
    assert plan["type"] == "ivf" and plan["nprobe"] == 1 and len(plan["tried"]) == 1


def test_candidates_keep_depth_negatives_whatever_the_number_of_positives():
    # A pitfall of other miners: searching depth + 1 leaves queries with several positives short.
    corpus_ids = np.array([f"d{i}" for i in range(10)], dtype=object)
    ids = np.array([[0, 1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1, 0]])
    scores = np.linspace(1, 0, 7, dtype=np.float32)[None, :].repeat(2, 0)
    positives = {"q1": {"d0", "d1", "d2"}, "q2": {"d9"}}
    table = build_candidates(["q1", "q2"], positives, corpus_ids, {"dense": (ids, scores)}, max_depth=4, rrf_k=60)
    rows = table.to_pylist()
    q1 = [r for r in rows if r["query_id"] == "q1"]
    assert sum(not r["is_positive"] for r in q1) == 4
    assert sum(r["is_positive"] for r in q1) == 3
    assert [r["rank"] for r in q1] == [1, 2, 3, 4, 5, 6, 7]
    q2 = [r for r in rows if r["query_id"] == "q2"]
    assert len(q2) == 4 and not any(r["is_positive"] for r in q2)


def _reference_bm25_top_k(model, doc_tokens: list[set[str]], query_tokens: list[str], k: int):
    """bm25s's dense scores, restricted to documents that share a term, ordered by score then row."""
    scores = model.get_scores(query_tokens or ["\x00"]) if any(t in model.vocab_dict for t in query_tokens) else np.zeros(len(doc_tokens))
    shared = np.array([bool(set(query_tokens) & d) for d in doc_tokens])
    rows = [r for r in np.lexsort((np.arange(len(scores)), -scores)) if shared[r] and scores[r] > 0][:k]
    return rows, scores[rows]


@pytest.mark.parametrize("method", bm25.BM25_VARIANTS)
def test_sparse_bm25_top_k_matches_bm25s_scores(tmp_path, method):
    """The postings-only search gives bm25s's own scores, best first, ties by row, for every BM25 variant."""
    import bm25s

    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(40)]
    # few words, short documents: many equal scores, so the tie order at the k-th place is exercised
    texts = [" ".join(rng.choice(words, size=rng.integers(1, 6))) for _ in range(300)]
    queries = [" ".join(rng.choice(words, size=rng.integers(1, 4))) for _ in range(60)] + ["nothing matches", "w1 w1 w2"]
    opts = bm25.BM25Options(method=method)
    bm25.build(texts, opts, tmp_path / "i")
    ids, scores = bm25.search(queries, 7, opts, tmp_path / "i", len(texts))
    model = bm25s.BM25.load(str(tmp_path / "i"), show_progress=False)
    doc_tokens = [set(t) for t in bm25.tokenize(texts, opts.stopwords)]
    for row, q in enumerate(bm25.tokenize(queries, opts.stopwords)):
        ref_rows, ref_scores = _reference_bm25_top_k(model, doc_tokens, q, 7)
        got = ids[row][ids[row] >= 0]
        assert got.tolist() == list(ref_rows), (queries[row], got, ref_rows)
        np.testing.assert_allclose(scores[row][: len(got)], ref_scores, rtol=1e-6)


def test_bm25_search_in_batches_gives_the_same_arrays(tmp_path):
    """The retrieve stage searches batches of queries, in any worker: each query's result is its own."""
    rng = np.random.default_rng(5)
    words = [f"w{i}" for i in range(60)]
    texts = [" ".join(rng.choice(words, size=8)) for _ in range(500)]
    queries = [" ".join(rng.choice(words, size=3)) for _ in range(41)]
    opts = bm25.BM25Options()
    bm25.build(texts, opts, tmp_path / "i")
    one = bm25.search(queries, 10, opts, tmp_path / "i", len(texts))
    searcher = bm25.BM25Searcher(tmp_path / "i", opts, len(texts))
    parts = [searcher.search(queries[a : a + 7], 10) for a in range(0, len(queries), 7)]
    assert one[0].tobytes() == np.concatenate([p[0] for p in parts]).tobytes()
    assert one[1].tobytes() == np.concatenate([p[1] for p in parts]).tobytes()
