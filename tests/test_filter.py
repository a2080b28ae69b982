"""Filter stage: hand-computed fixtures for every rule and method, and the pitfalls of pitfalls.md.

Scores are chosen to be exact in binary (0.5, 0.25, 0.375, ...) or far from thresholds, so the
expected doc ids below can be checked by hand.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from hnmine.errors import InputError, MissingColumn, OptionError
from hnmine.schemas import DROPPED_SCHEMA, NEGATIVES_SCHEMA, QUERY_SUMMARY_SCHEMA
from hnmine.selection import FilterOptions, filter_candidates

REASONS = [
    "known_positive",
    "same_text_as_positive",
    "near_duplicate_of_positive",
    "outside_rank_window",
    "above_max_score",
    "below_min_score",
    "within_margin_of_positive",
    "within_relative_margin_of_positive",
    "not_sampled",
]


def scores_table(rows):
    """rows: (query_id, doc_id, rank or None, teacher_score, is_positive[, source])."""
    cols = {k: [] for k in ("query_id", "doc_id", "rank", "score", "source", "is_positive", "dense_score", "bm25_score", "teacher_score")}
    for r in rows:
        q, d, rank, t, pos = r[:5]
        source = r[5] if len(r) > 5 else ("qrels" if rank is None else "dense")
        cols["query_id"].append(q)
        cols["doc_id"].append(d)
        cols["rank"].append(rank)
        cols["score"].append(None if rank is None else 1.0 / rank)
        cols["source"].append(source)
        cols["is_positive"].append(pos)
        cols["dense_score"].append(None if rank is None else 1.0 / rank)
        cols["bm25_score"].append(None)
        cols["teacher_score"].append(t)
    return pa.table(
        {
            "query_id": pa.array(cols["query_id"], pa.string()),
            "doc_id": pa.array(cols["doc_id"], pa.string()),
            "rank": pa.array(cols["rank"], pa.int32()),
            "score": pa.array(cols["score"], pa.float32()),
            "source": pa.array(cols["source"], pa.string()),
            "is_positive": pa.array(cols["is_positive"], pa.bool_()),
            "dense_score": pa.array(cols["dense_score"], pa.float32()),
            "bm25_score": pa.array(cols["bm25_score"], pa.float32()),
            "teacher_score": pa.array(cols["teacher_score"], pa.float32()),
        }
    )


def corpus_table(doc_ids, texts=None, titles=None):
    texts = texts or {}
    titles = titles or {}
    ids = list(doc_ids)
    return pa.table(
        {
            "doc_id": pa.array(ids, pa.string()),
            "title": pa.array([titles.get(d, "") for d in ids], pa.string()),
            "text": pa.array([texts.get(d, f"text of {d}") for d in ids], pa.string()),
        }
    )


def one_query(pos_score, cands, positives=("p",), q="q"):
    """cands: list of (doc_id, teacher_score), retrieval rank = list order (after the positive
    at rank 1 when `positives` has one retrieved positive)."""
    rows = [(q, p, None, pos_score, True) for p in positives]
    rows += [(q, d, i + 1, s, False) for i, (d, s) in enumerate(cands)]
    return scores_table(rows)


def run(scores, corpus=None, query_ids=None, doc_vectors=None, **kw):
    if corpus is None:
        ids = sorted(set(scores.column("doc_id").to_pylist()))
        corpus = corpus_table(ids)
    return filter_candidates(scores, corpus, FilterOptions(**kw), doc_vectors=doc_vectors, query_ids=query_ids)


def negs(result, q=None):
    t = result.negatives.to_pylist()
    return [r["doc_id"] for r in t if q is None or r["query_id"] == q]


def reasons(result):
    return {r["doc_id"]: r["reason"] for r in result.dropped.to_pylist()}


def summary(result, q="q"):
    return next(r for r in result.query_summary.to_pylist() if r["query_id"] == q)


# ---------------------------------------------------------------------------------- methods

TEN = [(f"d{i}", s) for i, s in enumerate([0.25, 0.875, 0.5, 0.125, 0.75, 0.625, 0.375, 0.0625, 0.9375, 0.3125])]
# by teacher score: d8 .9375, d1 .875, d4 .75, d5 .625, d2 .5, d6 .375, d9 .3125, d0 .25, d3 .125, d7 .0625


def test_naive_takes_top_teacher_scores_not_retrieval_order():
    r = run(one_query(0.5, TEN), method="naive", num_negatives=3)
    assert negs(r) == ["d8", "d1", "d4"]
    assert [x["rank"] for x in r.negatives.to_pylist()] == [1, 2, 3]
    assert [x["retrieval_rank"] for x in r.negatives.to_pylist()] == [9, 2, 5]
    assert r.dropped.num_rows == 0  # the positive was not retrieved; the rest is just unused
    assert summary(r)["status"] == "ok"


def test_shifted_skips_the_first_ten_by_teacher_rank():
    cands = [(f"d{i:02d}", 1.0 - i / 32) for i in range(15)]  # teacher rank = i + 1
    r = run(one_query(2.0, cands), method="shifted", num_negatives=3)
    assert negs(r) == ["d10", "d11", "d12"]
    assert [x["rank"] for x in r.negatives.to_pylist()] == [11, 12, 13]
    assert reasons(r) == {f"d{i:02d}": "outside_rank_window" for i in range(10)}


def test_rank_window_user_values_inclusive():
    r = run(one_query(2.0, TEN), method="naive", range_min=2, range_max=4, num_negatives=5)
    assert negs(r) == ["d1", "d4", "d5"]  # teacher ranks 2, 3, 4
    dropped = reasons(r)
    assert dropped["d8"] == "outside_rank_window"  # rank 1
    assert dropped["d2"] == "outside_rank_window"  # rank 5
    assert summary(r)["shortfall"] == 2


def test_topk_abs_drops_scores_above_0_7():
    r = run(one_query(1.0, TEN), method="topk-abs", num_negatives=3)
    assert negs(r) == ["d5", "d2", "d6"]
    assert reasons(r) == {"d8": "above_max_score", "d1": "above_max_score", "d4": "above_max_score"}


def test_topk_abs_boundary_is_kept():
    r = run(one_query(1.0, [("a", 0.75), ("b", 0.5)]), method="naive", max_score=0.5, num_negatives=2)
    assert negs(r) == ["b"]  # s(n) > max_score drops; equal stays


def test_min_score():
    r = run(one_query(1.0, TEN), method="naive", min_score=0.3, num_negatives=10)
    assert set(reasons(r)) == {"d0", "d3", "d7"}
    assert set(reasons(r).values()) == {"below_min_score"}
    assert negs(r) == ["d8", "d1", "d4", "d5", "d2", "d6", "d9"]


def test_topk_marginpos_default_margin():
    # s(p) = 0.75: keep s(n) < 0.70
    r = run(one_query(0.75, TEN), method="topk-marginpos", num_negatives=3)
    assert negs(r) == ["d5", "d2", "d6"]
    assert reasons(r) == {"d8": "within_margin_of_positive", "d1": "within_margin_of_positive", "d4": "within_margin_of_positive"}


def test_margin_boundary_is_dropped():
    # s(p) - margin = 0.75 - 0.25 = 0.5 exactly: s(n) = 0.5 is not < 0.5
    r = run(one_query(0.75, [("a", 0.5), ("b", 0.375)]), method="naive", margin=0.25, num_negatives=2)
    assert negs(r) == ["b"]
    assert reasons(r) == {"a": "within_margin_of_positive"}


def test_topk_percpos_default():
    # s(p) = 0.8 -> threshold 0.8 - 0.04 = 0.76
    r = run(one_query(0.8, [("a", 0.79), ("b", 0.77), ("c", 0.75), ("d", 0.5)]), method="topk-percpos", num_negatives=5)
    assert r.negatives.column("method").to_pylist() == ["topk-percpos"] * 2
    assert negs(r) == ["c", "d"]
    assert reasons(r) == {"a": "within_relative_margin_of_positive", "b": "within_relative_margin_of_positive"}


def test_relative_margin_with_negative_positive_score_stays_below_positive():
    # pitfall: s(p)*(1-m) would put the threshold at -1.9 (above s(p) = -2).
    # sign-safe: -2 - 2*0.05 = -2.1
    cands = [("above", -1.0), ("between", -1.95), ("close", -2.05), ("far", -3.0)]
    r = run(one_query(-2.0, cands), method="topk-percpos", num_negatives=4)
    assert negs(r) == ["far"]
    assert set(reasons(r)) == {"above", "between", "close"}
    for n in r.negatives.to_pylist():
        assert n["teacher_score"] < n["positive_score"]


def test_sampled_with_sharp_temperature_is_top_k_of_the_pool():
    cands = [(f"d{i:02d}", 0.5 - i / 64) for i in range(12)]
    r = run(one_query(1.0, cands), method="sampled", num_negatives=3, temperature=1e-4)
    assert negs(r) == ["d00", "d01", "d02"]
    rs = reasons(r)
    assert {d for d, why in rs.items() if why == "not_sampled"} == {f"d{i:02d}" for i in range(3, 12)}


def test_sampled_draws_only_from_the_pool_of_ten_and_is_seeded():
    cands = [(f"d{i:02d}", 0.5 - i / 64) for i in range(30)]
    s = one_query(1.0, cands)
    seen = set()
    for seed in range(40):
        r = run(s, method="sampled", num_negatives=4, seed=seed)
        got = negs(r)
        assert len(got) == 4 and len(set(got)) == 4
        assert set(got) <= {f"d{i:02d}" for i in range(10)}
        assert [x["rank"] for x in r.negatives.to_pylist()] == sorted(x["rank"] for x in r.negatives.to_pylist())
        assert got == negs(run(s, method="sampled", num_negatives=4, seed=seed))
        assert sum(1 for why in reasons(r).values() if why == "not_sampled") == 26
        seen.add(tuple(got))
    assert len(seen) > 5  # it does sample


def test_top1_sampled_always_keeps_the_best_eligible():
    cands = [("too_close", 0.99)] + [(f"d{i:02d}", 0.5 - i / 64) for i in range(12)]
    s = one_query(1.0, cands)
    for seed in range(20):
        got = negs(run(s, method="top1-sampled", num_negatives=3, seed=seed))
        assert got[0] == "d00"
        assert "too_close" not in got
        assert set(got) <= {f"d{i:02d}" for i in range(10)}


def test_top1_sampled_sharp_temperature():
    cands = [(f"d{i:02d}", 0.5 - i / 64) for i in range(12)]
    r = run(one_query(1.0, cands), method="top1-sampled", num_negatives=3, temperature=1e-4)
    assert negs(r) == ["d00", "d01", "d02"]


def test_simans_prefers_scores_near_the_positive():
    cands = [("high", 0.9), ("near_above", 0.625), ("nearest", 0.46875), ("low", 0.125), ("zero", 0.0)]
    r = run(one_query(0.5, cands), method="simans", num_negatives=2, simans_a=1e4)
    assert sorted(negs(r)) == ["near_above", "nearest"]
    assert {d: w for d, w in reasons(r).items()} == {"high": "not_sampled", "low": "not_sampled", "zero": "not_sampled"}
    # b shifts the target: s(p) + b = 0.0625
    r = run(one_query(0.5, cands), method="simans", num_negatives=2, simans_a=1e4, simans_b=-0.4375)
    assert sorted(negs(r)) == ["low", "zero"]


def test_simans_underflow_names_the_scale():
    cands = [(f"d{i}", float(i)) for i in range(8)]  # positive at 100, candidates 0..7
    with pytest.raises(OptionError, match=r"simans.*query 'q'.*smaller --simans-a"):
        run(one_query(100.0, cands), method="simans", num_negatives=2)
    # in log space a smaller a works on the same scale
    r = run(one_query(100.0, cands), method="simans", num_negatives=2, simans_a=0.01)
    assert len(negs(r)) == 2


def test_random_sampling():
    r = run(one_query(2.0, TEN), method="naive", sampling="random", num_negatives=3, seed=1)
    got = negs(r)
    assert len(set(got)) == 3
    assert sum(1 for w in reasons(r).values() if w == "not_sampled") == 7


def test_explicit_options_override_method_defaults():
    r = run(one_query(0.8, [("a", 0.79), ("b", 0.7), ("c", 0.5)]), method="topk-percpos", relative_margin=0.25, num_negatives=3)
    assert negs(r) == ["c"]  # threshold 0.8 - 0.2 = 0.6


# ---------------------------------------------------------------------------------- rules


def test_known_positives_never_negatives_and_dropped_when_retrieved():
    rows = [
        ("q", "p1", 2, 0.5, True),
        ("q", "p2", None, 0.75, True),
        ("q", "a", 1, 0.875, False),
        ("q", "b", 3, 0.25, False),
        ("q", "c", 4, 0.125, False),
    ]
    r = run(scores_table(rows), method="naive", num_negatives=5)
    assert negs(r) == ["a", "b", "c"]
    kp = [x for x in r.dropped.to_pylist() if x["reason"] == "known_positive"]
    assert [(x["doc_id"], x["rank"], x["retrieval_rank"]) for x in kp] == [("p1", None, 2)]
    s = summary(r)
    assert s["n_positives"] == 2 and s["positive_score"] == 0.5  # min reference
    # teacher ranks count non-positive candidates only
    assert [x["rank"] for x in r.negatives.to_pylist()] == [1, 2, 3]


def test_several_positives_min_mean_max_reference():
    rows = [("q", "p1", None, 0.5, True), ("q", "p2", None, 1.0, True), ("q", "a", 1, 0.625, False), ("q", "b", 2, 0.25, False)]
    s = scores_table(rows)
    r = run(s, method="naive", margin=0.0, num_negatives=5)
    assert negs(r) == ["b"] and summary(r)["positive_score"] == 0.5
    r = run(s, method="naive", margin=0.0, num_negatives=5, positive_reference="mean")
    assert negs(r) == ["a", "b"] and summary(r)["positive_score"] == 0.75
    r = run(s, method="naive", margin=0.0, num_negatives=5, positive_reference="max")
    assert negs(r) == ["a", "b"] and summary(r)["positive_score"] == 1.0


def test_same_text_as_positive_under_another_id():
    rows = [("q", "p", None, 0.9, True), ("q", "copy", 1, 0.5, False), ("q", "upper", 2, 0.4, False), ("q", "other", 3, 0.3, False)]
    corpus = corpus_table(
        ["p", "copy", "upper", "other"],
        texts={"p": "The  quick\nbrown fox", "copy": " The quick brown\tfox ", "upper": "THE QUICK BROWN FOX", "other": "a fox"},
        titles={"p": "Fox", "copy": "Fox", "upper": "Fox"},
    )
    r = run(scores_table(rows), corpus, method="naive", num_negatives=5)
    assert reasons(r) == {"copy": "same_text_as_positive"}
    assert negs(r) == ["upper", "other"]  # case-sensitive: "upper" is left to the near-dup rule


def test_same_text_uses_title_too():
    rows = [("q", "p", None, 0.9, True), ("q", "a", 1, 0.5, False), ("q", "b", 2, 0.4, False)]
    corpus = corpus_table(["p", "a", "b"], texts={"p": "body", "a": "body", "b": "body"}, titles={"p": "T", "a": "T", "b": "U"})
    r = run(scores_table(rows), corpus, method="naive", num_negatives=5)
    assert reasons(r) == {"a": "same_text_as_positive"}


def test_near_duplicate_of_positive():
    rows = [("q", "p", None, 0.9, True), ("q", "dup", 1, 0.5, False), ("q", "close", 2, 0.4, False), ("q", "far", 3, 0.3, False)]
    vecs = {"p": [1.0, 0.0], "dup": [0.999, 0.0447], "close": [0.9, 0.43589], "far": [0.0, 1.0]}

    def doc_vectors(ids):
        v = np.array([vecs[i] for i in ids], dtype=np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    r = run(scores_table(rows), method="naive", num_negatives=5, doc_vectors=doc_vectors)
    assert reasons(r) == {"dup": "near_duplicate_of_positive"}
    assert negs(r) == ["close", "far"]
    assert r.stats["near_duplicate_check"] == "cosine >= 0.95"
    r = run(scores_table(rows), method="naive", num_negatives=5, doc_vectors=doc_vectors, dedup_threshold=0.85)
    assert reasons(r) == {"dup": "near_duplicate_of_positive", "close": "near_duplicate_of_positive"}
    r = run(scores_table(rows), method="naive", num_negatives=5, doc_vectors=doc_vectors, dedup_threshold=None)
    assert reasons(r) == {} and r.stats["near_duplicate_check"] == "disabled"
    r = run(scores_table(rows), method="naive", num_negatives=5)
    assert reasons(r) == {} and r.stats["near_duplicate_check"] == "skipped: no embeddings"


def test_first_matching_rule_wins():
    rows = [("q", "p", None, 0.5, True), ("q", "copy", 1, 0.9, False), ("q", "high", 2, 0.8, False), ("q", "ok", 3, 0.25, False)]
    corpus = corpus_table(["p", "copy", "high", "ok"], texts={"p": "same", "copy": "same"})
    r = run(scores_table(rows), corpus, method="naive", max_score=0.7, margin=0.1, relative_margin=0.1, num_negatives=5)
    # "copy" matches same text, above max, margin and relative margin: the first one wins
    assert reasons(r) == {"copy": "same_text_as_positive", "high": "above_max_score"}
    assert r.stats["dropped_same_text_as_positive"] == 1
    assert r.stats["dropped_above_max_score"] == 1
    assert r.stats["dropped_within_margin_of_positive"] == 0


def test_teacher_score_is_compared_not_retrieval_score():
    # retrieval scores say "a" is far better; the teacher says it is too close to the positive
    rows = [("q", "p", None, 0.5, True), ("q", "a", 1, 0.49, False), ("q", "b", 2, 0.1, False)]
    s = scores_table(rows)
    s = s.set_column(s.schema.get_field_index("score"), "score", pa.array([None, 100.0, 0.0], pa.float32()))
    r = run(s, method="topk-marginpos", num_negatives=5)
    assert negs(r) == ["b"]
    assert [x["teacher_score"] for x in r.negatives.to_pylist()] == [pytest.approx(0.1)]


# ---------------------------------------------------------------------------------- depth


def test_look_deeper_extends_depth_by_step():
    cands = [(f"d{i}", s) for i, s in enumerate([0.95, 0.9, 0.85, 0.5, 0.4, 0.3, 0.2, 0.1])]
    s = one_query(1.0, cands)
    r = run(s, method="topk-abs", num_negatives=2, depth=3, depth_step=2)
    # depth 3: nothing <= 0.7; depth 5: d3, d4
    assert negs(r) == ["d3", "d4"]
    sm = summary(r)
    assert sm["depth_used"] == 5 and sm["n_candidates"] == 5
    assert r.stats["queries_looked_deeper"] == 1
    r = run(s, method="topk-abs", num_negatives=2, depth=3, depth_step=1, max_depth=4)
    assert negs(r) == ["d3"] and summary(r)["depth_used"] == 4 and summary(r)["shortfall"] == 1
    r = run(s, method="topk-abs", num_negatives=10, depth=3)  # step = depth; capped at deepest
    assert summary(r)["depth_used"] == 8 and len(negs(r)) == 5


def test_deeper_candidates_can_change_teacher_ranks():
    # at depth 2: ranks a=1, b=2; at depth 3, c (0.75) takes rank 1
    cands = [("a", 0.5), ("b", 0.25), ("c", 0.75)]
    r = run(one_query(2.0, cands), method="naive", range_min=2, num_negatives=2, depth=2, depth_step=1)
    assert negs(r) == ["a", "b"]
    assert [x["rank"] for x in r.negatives.to_pylist()] == [2, 3]
    assert reasons(r) == {"c": "outside_rank_window"}


def test_candidates_beyond_depth_are_ignored():
    cands = [(f"d{i}", 0.1 * (i + 1)) for i in range(6)]
    r = run(one_query(2.0, cands), method="naive", num_negatives=2, depth=3)
    assert negs(r) == ["d2", "d1"]  # d5 (best teacher score) is at retrieval rank 6
    assert summary(r)["n_candidates"] == 3


# ---------------------------------------------------------------------------------- shortfall


def test_more_negatives_than_candidates_is_a_shortfall_not_a_crash():
    r = run(one_query(1.0, [("a", 0.5), ("b", 0.25)]), method="naive", num_negatives=5, min_negatives=3)
    s = summary(r)
    assert negs(r) == ["a", "b"]
    assert (s["n_negatives"], s["shortfall"], s["status"], s["exported"]) == (2, 3, "short", False)
    assert r.stats["queries_short"] == 1 and r.stats["queries_full"] == 0


def test_statuses_and_queries_without_rows():
    rows = [
        ("q1", "p", None, 0.5, True),
        ("q1", "a", 1, 0.25, False),
        ("q2", "p", None, 0.5, True),  # positive, no candidates
        ("q3", "a", 1, 0.25, False),
    ]  # no positive
    r = run(scores_table(rows), method="naive", num_negatives=1, query_ids=["q4", "q3", "q2", "q1"])
    qs = r.query_summary.to_pylist()
    assert [x["query_id"] for x in qs] == ["q4", "q3", "q2", "q1"]
    assert [x["status"] for x in qs] == ["no_positive", "no_positive", "no_candidates", "ok"]
    assert [x["exported"] for x in qs] == [False, False, False, True]
    assert [x["positive_score"] for x in qs] == [None, None, 0.5, 0.25 * 2]
    assert [x["shortfall"] for x in qs] == [1, 1, 1, 0]
    assert r.stats["queries_without_negatives"] == 3
    assert r.stats["queries_full"] == 1 and r.stats["queries_short"] == 3
    assert r.stats["negatives_total"] == 1


def test_min_negatives_zero_exports_everything():
    rows = [("q", "p", None, 0.5, True)]
    r = run(scores_table(rows), method="naive", min_negatives=0)
    assert summary(r)["exported"] is True


# ---------------------------------------------------------------------------------- random (STAR)


def test_random_negatives_never_positive_candidate_same_text_or_repeat():
    rows = [("q", "p", None, 0.9, True), ("q", "a", 1, 0.5, False), ("q", "b", 2, 0.4, False)]
    ids = ["p", "a", "b", "copy_of_p"] + [f"x{i}" for i in range(6)]
    corpus = corpus_table(ids, texts={"p": "positive text", "copy_of_p": "positive  text"})
    for seed in range(30):
        r = run(scores_table(rows), corpus, method="naive", num_negatives=1, random_negatives=3, seed=seed)
        n = r.negatives.to_pylist()
        hard = [x for x in n if not x["is_random"]]
        rand = [x for x in n if x["is_random"]]
        assert [x["doc_id"] for x in hard] == ["a"]
        assert len(rand) == 3 and len({x["doc_id"] for x in rand}) == 3
        for x in rand:
            assert x["doc_id"].startswith("x")
            assert x["source"] == "random" and x["method"] == "naive"
            assert x["rank"] is None and x["retrieval_rank"] is None and x["teacher_score"] is None
            assert x["positive_score"] == pytest.approx(0.9)
        assert summary(r)["n_negatives"] == 4 and summary(r)["shortfall"] == 0


def test_random_negatives_exhausted_corpus_is_a_shortfall():
    rows = [("q", "p", None, 0.9, True), ("q", "a", 1, 0.5, False)]
    corpus = corpus_table(["p", "a", "x"])
    r = run(scores_table(rows), corpus, method="naive", num_negatives=1, random_negatives=3)
    assert negs(r) == ["a", "x"]
    s = summary(r)
    assert (s["n_negatives"], s["shortfall"], s["status"]) == (2, 2, "short")


def test_random_negatives_skip_near_duplicates_of_positives():
    rows = [("q", "p", None, 0.9, True), ("q", "a", 1, 0.5, False)]
    ids = ["p", "a", "twin", "y"]
    vec = {"p": [1, 0], "a": [0, 1], "twin": [1, 0.01], "y": [0.6, 0.8]}
    corpus = corpus_table(ids)

    def doc_vectors(doc_ids):
        v = np.array([vec[d] for d in doc_ids], dtype=np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    for seed in range(10):
        r = run(scores_table(rows), corpus, method="naive", num_negatives=1, random_negatives=2, doc_vectors=doc_vectors, seed=seed)
        assert negs(r) == ["a", "y"]


def test_random_negatives_do_not_depend_on_corpus_order_or_method():
    rows = [("q", "p", None, 0.9, True), ("q", "a", 1, 0.5, False), ("q", "b", 2, 0.25, False)]
    ids = ["p", "a", "b"] + [f"x{i:03d}" for i in range(300)]
    c1 = corpus_table(ids)
    c2 = corpus_table(list(reversed(ids)))
    r1 = run(scores_table(rows), c1, method="naive", random_negatives=4)
    r2 = run(scores_table(rows), c2, method="naive", random_negatives=4)
    r3 = run(scores_table(rows), c1, method="shifted", random_negatives=4)

    def rand(r):
        return [x["doc_id"] for x in r.negatives.to_pylist() if x["is_random"]]

    assert rand(r1) == rand(r2) == rand(r3)
    assert len(rand(r1)) == 4


# ---------------------------------------------------------------------------------- inputs


def test_non_finite_teacher_score_names_query_and_doc():
    for bad in (float("nan"), float("inf"), None):
        rows = [("q", "p", None, 0.5, True), ("q7", "doc9", 1, bad, False)]
        with pytest.raises(InputError, match=r"query 'q7', doc 'doc9'"):
            run(scores_table(rows))


def test_padding_id_not_in_corpus_is_an_error():
    rows = [("q", "p", None, 0.5, True), ("q", "-1", 1, 0.2, False), ("q", "a", 2, 0.1, False)]
    with pytest.raises(InputError, match=r"not in the corpus.*doc '-1'"):
        run(scores_table(rows), corpus_table(["p", "a"]))


def test_null_ids_are_errors():
    s = scores_table([("q", "p", None, 0.5, True), ("q", "a", 1, 0.1, False)])
    s = s.set_column(1, "doc_id", pa.array(["p", None], pa.string()))
    with pytest.raises(InputError, match="null doc_id"):
        run(s, corpus_table(["p", "a"]))


def test_duplicate_row_is_an_error():
    rows = [("q", "p", None, 0.5, True), ("q", "a", 1, 0.1, False), ("q", "a", 2, 0.2, False)]
    with pytest.raises(InputError, match=r"twice.*doc 'a'"):
        run(scores_table(rows))


def test_missing_column_lists_the_columns():
    s = scores_table([("q", "p", None, 0.5, True)]).drop_columns(["teacher_score"])
    with pytest.raises(MissingColumn, match=r"no column 'teacher_score' \(columns: query_id, doc_id"):
        run(s, corpus_table(["p"]))


def test_query_not_in_query_ids_is_an_error():
    s = scores_table([("q", "p", None, 0.5, True)])
    with pytest.raises(InputError, match="'q' is not among the queries"):
        run(s, query_ids=["other"])


def test_candidate_without_rank_is_an_error():
    s = scores_table([("q", "p", None, 0.5, True), ("q", "a", None, 0.1, False)])
    with pytest.raises(InputError, match="candidate without a rank"):
        run(s)


def test_bad_options_raise_before_work():
    s = scores_table([("q", "p", None, 0.5, True)])
    with pytest.raises(OptionError):
        run(s, num_negatives=0)
    with pytest.raises(OptionError):
        run(s, range_min=5, range_max=5)


# ---------------------------------------------------------------------------------- tables


def test_schemas_order_and_stats_keys():
    rows = [
        ("q2", "p", None, 0.5, True),
        ("q2", "a", 1, 0.25, False),
        ("q2", "b", 2, 0.4, False),
        ("q1", "p", 3, 0.5, True),
        ("q1", "a", 1, 0.125, False),
        ("q1", "c", 2, 0.49, False),
    ]
    calls = []
    r = filter_candidates(
        scores_table(rows),
        corpus_table(["p", "a", "b", "c"]),
        FilterOptions(method="topk-percpos", num_negatives=2),
        query_ids=["q1", "q2"],
        progress=calls.append,
    )
    assert r.negatives.schema == NEGATIVES_SCHEMA
    assert r.dropped.schema == DROPPED_SCHEMA
    assert r.query_summary.schema == QUERY_SUMMARY_SCHEMA
    assert [(x["query_id"], x["doc_id"]) for x in r.negatives.to_pylist()] == [("q1", "a"), ("q2", "b"), ("q2", "a")]
    assert [(x["query_id"], x["doc_id"], x["reason"]) for x in r.dropped.to_pylist()] == [
        ("q1", "p", "known_positive"),
        ("q1", "c", "within_relative_margin_of_positive"),
    ]
    assert sum(calls) == 2
    for reason in REASONS:
        assert f"dropped_{reason}" in r.stats
    for key in ("queries_full", "queries_short", "queries_without_negatives", "negatives_total"):
        assert key in r.stats
    assert r.stats["negatives_total"] == 3


def test_query_order_defaults_to_first_appearance():
    rows = [("b", "p", None, 0.5, True), ("a", "p", None, 0.5, True), ("a", "x", 1, 0.1, False)]
    r = run(scores_table(rows))
    assert r.query_summary.column("query_id").to_pylist() == ["b", "a"]


def test_ties_broken_by_retrieval_rank():
    cands = [("z", 0.25), ("y", 0.25), ("x", 0.25)]
    r = run(one_query(1.0, cands), method="naive", num_negatives=2)
    assert negs(r) == ["z", "y"]


def test_negative_zero_and_zero_tie():
    r = run(one_query(1.0, [("a", -0.0), ("b", 0.0)]), method="naive", num_negatives=1)
    assert negs(r) == ["a"]


def test_empty_scores():
    r = run(scores_table([]), corpus_table(["a"]), query_ids=["q"])
    assert r.negatives.num_rows == 0 and r.dropped.num_rows == 0
    assert summary(r)["status"] == "no_positive"
