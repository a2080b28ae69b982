"""Property tests of the filter stage against a plain-Python reference implementation.

Random small problems (several queries, positives retrieved or missed, ties, negative scores,
duplicate texts, near-duplicate vectors) under every method, with random options.
"""

from __future__ import annotations

import unicodedata

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hnmine.methods import method_names, resolve_options
from hnmine.selection import FilterOptions, filter_candidates, make_selector
from hnmine.selection.prepare import prepare_rows, sort_order
from hnmine.selection.tables import build_result

REASONS = (
    "known_positive",
    "same_text_as_positive",
    "near_duplicate_of_positive",
    "outside_rank_window",
    "above_max_score",
    "below_min_score",
    "within_margin_of_positive",
    "within_relative_margin_of_positive",
    "same_text_as_negative",
    "not_sampled",
)

DOCS = [f"d{i:02d}" for i in range(16)]
TEXTS = ["alpha", "alpha ", "Alpha", "beta\tgamma", "beta gamma", "delta", "epsilon", "zeta"]
# unit vectors; 0 and 1 are near duplicates (cos 0.999), the others are far from 0.95
BASES = np.array([[1.0, 0.0, 0.0], [0.999, 0.0447, 0.0], [0.6, 0.8, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.6, 0.8]])
BASES = BASES / np.linalg.norm(BASES, axis=1, keepdims=True)
SCORES = [-2.0, -1.5, -0.5, 0.0, 0.25, 0.5, 0.6, 0.7, 0.72, 0.75, 0.8, 0.9, 1.0, 2.5]
SETTINGS = settings(max_examples=70, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def text_key(title: str, text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", title + " " + text).split())


@st.composite
def problems(draw):
    corpus_ids = DOCS + [f"x{i}" for i in range(draw(st.integers(0, 6)))]
    texts = {d: draw(st.sampled_from(TEXTS + [f"unique {d}"] * 4)) for d in corpus_ids}
    vec_of = {d: draw(st.integers(0, len(BASES) - 1)) for d in corpus_ids}
    score = st.one_of(st.sampled_from(SCORES), st.floats(-3, 3, width=32, allow_nan=False, allow_subnormal=False))
    rows = []
    qids = [f"q{i}" for i in range(draw(st.integers(1, 4)))]
    for q in qids:
        docs = draw(st.permutations(DOCS))
        n_pos = draw(st.integers(0, 3))
        n_cand = draw(st.integers(0, 10))
        pos, cand = docs[:n_pos], docs[n_pos : n_pos + n_cand]
        retrieved_pos = [p for p in pos if draw(st.booleans())]
        ranked = draw(st.permutations(list(cand) + retrieved_pos))
        for r, d in enumerate(ranked):
            rows.append((q, d, r + 1, draw(score), d in pos))
        for p in pos:
            if p not in retrieved_pos:
                rows.append((q, p, None, draw(score), True))
    extra_q = draw(st.booleans())  # a query with no rows at all
    query_ids = qids + (["q_empty"] if extra_q else [])

    method = draw(st.sampled_from(method_names()))
    num = draw(st.integers(1, 4))
    depth = draw(st.integers(1, 8))
    kw = {
        "method": method,
        "num_negatives": num,
        "depth": depth,
        "depth_step": draw(st.one_of(st.none(), st.integers(1, 3))),
        "max_depth": draw(st.one_of(st.none(), st.integers(depth, depth + 5))),
        "random_negatives": draw(st.integers(0, 2)),
        "positive_reference": draw(st.sampled_from(["min", "mean", "max"])),
        "dedup_threshold": draw(st.sampled_from([None, 0.95])),
        "seed": draw(st.integers(0, 3)),
    }
    kw["min_negatives"] = draw(st.integers(0, num + kw["random_negatives"]))
    if method == "shifted":
        kw["range_min"] = draw(st.one_of(st.none(), st.integers(1, 4)))
        if kw["range_min"] is None:
            kw["max_depth"] = None
        elif kw["max_depth"] is not None:
            kw["max_depth"] = max(kw["max_depth"], kw["range_min"])  # a window past max_depth is an error, not a case
    if draw(st.booleans()) and not (method == "shifted" and kw["range_min"] is None):
        kw["range_max"] = draw(st.integers(6, 9))
    if draw(st.booleans()):
        kw[draw(st.sampled_from(["max_score", "min_score", "margin", "relative_margin"]))] = draw(st.sampled_from([0.0, 0.05, 0.5, 0.7]))
    if method == "simans":
        kw["simans_a"] = draw(st.sampled_from([0.5, 2.0]))
        kw["simans_b"] = draw(st.sampled_from([0.0, -0.3]))
    if method in ("sampled", "top1-sampled") and draw(st.booleans()):
        kw["temperature"] = draw(st.sampled_from([0.05, 1.0, 10.0]))
    use_vectors = draw(st.booleans())
    return rows, corpus_ids, texts, vec_of, query_ids, kw, use_vectors


def build(problem, shuffle_seed=None):
    rows, corpus_ids, texts, vec_of, _query_ids, _kw, use_vectors = problem
    rows = list(rows)
    cids = list(corpus_ids)
    if shuffle_seed is not None:
        rng = np.random.default_rng(shuffle_seed)
        rows = [rows[i] for i in rng.permutation(len(rows))]
        cids = [cids[i] for i in rng.permutation(len(cids))]
    scores = pa.table(
        {
            "query_id": pa.array([r[0] for r in rows], pa.string()),
            "doc_id": pa.array([r[1] for r in rows], pa.string()),
            "rank": pa.array([r[2] for r in rows], pa.int32()),
            "score": pa.array([0.0 for _ in rows], pa.float32()),
            "source": pa.array(["qrels" if r[2] is None else "dense" for r in rows], pa.string()),
            "is_positive": pa.array([r[4] for r in rows], pa.bool_()),
            "teacher_score": pa.array([r[3] for r in rows], pa.float32()),
        }
    )
    corpus = pa.table({"doc_id": cids, "title": [""] * len(cids), "text": [texts[d] for d in cids]})

    def doc_vectors(ids):
        return BASES[[vec_of[d] for d in ids]].astype(np.float32)

    return scores, corpus, (doc_vectors if use_vectors else None)


def run(problem, shuffle_seed=None):
    scores, corpus, vectors = build(problem, shuffle_seed)
    return filter_candidates(scores, corpus, FilterOptions(**problem[5]), doc_vectors=vectors, query_ids=problem[4])


def cos(problem, a, b):
    va, vb = BASES[problem[3][a]], BASES[problem[3][b]]
    return float(va @ vb)


def reference(problem):
    """Plain-Python filter: per query, eligible candidates (in teacher order), the reasons of the
    dropped ones, depth used. Sampling is not reproduced; "top" picks the first N eligible."""
    rows, _corpus_ids, texts, _vec_of, query_ids, kw, use_vectors = problem
    o = resolve_options(FilterOptions(**kw))
    out = {}
    for q in query_ids:
        qrows = [r for r in rows if r[0] == q]
        pos = sorted([r for r in qrows if r[4]], key=lambda r: (-np.float64(np.float32(r[3])), r[2] if r[2] is not None else 10**9, r[1]))
        cands = [r for r in qrows if not r[4]]
        if not pos:
            out[q] = {"status": "no_positive", "n_candidates": sum(1 for c in cands if c[2] <= o.depth)}
            continue
        ps = [float(np.float32(p[3])) for p in pos]
        if o.positive_reference == "min":
            sp = min(ps)
        elif o.positive_reference == "max":
            sp = max(ps)
        else:
            total = 0.0
            for x in ps:
                total += x
            sp = total / len(ps)
        sp = float(np.float32(sp))
        pkeys = {text_key("", texts[p[1]]) for p in pos}
        deepest = max((c[2] for c in cands), default=o.depth)
        cap = deepest if o.max_depth is None else min(deepest, o.max_depth)
        d = o.depth
        while True:
            cur = sorted([c for c in cands if c[2] <= d], key=lambda c: (-float(np.float32(c[3])), c[2], c[1]))
            reasons, elig, elig_keys = {}, [], set()
            for i, c in enumerate(cur):
                s, tr = float(np.float32(c[3])), i + 1
                if text_key("", texts[c[1]]) in pkeys:
                    why = "same_text_as_positive"
                elif use_vectors and o.dedup_threshold is not None and max(cos(problem, c[1], p[1]) for p in pos) >= o.dedup_threshold:
                    why = "near_duplicate_of_positive"
                elif (o.range_min is not None and tr < o.range_min) or (o.range_max is not None and tr > o.range_max):
                    why = "outside_rank_window"
                elif o.max_score is not None and s > o.max_score:
                    why = "above_max_score"
                elif o.min_score is not None and s < o.min_score:
                    why = "below_min_score"
                elif o.margin is not None and s >= sp - o.margin:
                    why = "within_margin_of_positive"
                elif o.relative_margin is not None and s >= sp - abs(sp) * o.relative_margin:
                    why = "within_relative_margin_of_positive"
                elif text_key("", texts[c[1]]) in elig_keys:
                    why = "same_text_as_negative"  # one copy of a text among a query's negatives
                else:
                    why = None
                    elig_keys.add(text_key("", texts[c[1]]))
                if why:
                    reasons[c[1]] = (why, tr)
                else:
                    elig.append((c[1], tr, s))
            if len(elig) >= o.num_negatives or d >= cap:
                break
            d = min(d + o.depth_step, cap)
        known = sorted([p for p in pos if p[2] is not None and p[2] <= d], key=lambda p: p[2])
        out[q] = {
            "sp": sp,
            "depth_used": d,
            "n_candidates": len(cur),
            "eligible": elig,
            "reasons": reasons,
            "known": [p[1] for p in known],
            "pkeys": pkeys,
            "pos": [p[1] for p in pos],
            "rows": {r[1] for r in qrows},
        }
    return o, out


def by_query(table):
    res = {}
    for r in table.to_pylist():
        res.setdefault(r["query_id"], []).append(r)
    return res


@SETTINGS
@given(problems())
def test_matches_reference(problem):
    o, ref = reference(problem)
    result = run(problem)
    negs = by_query(result.negatives)
    drops = by_query(result.dropped)
    summ = {r["query_id"]: r for r in result.query_summary.to_pylist()}
    texts = problem[2]
    assert list(summ) == problem[4]
    target = o.num_negatives + o.random_negatives
    for q, exp in ref.items():
        s = summ[q]
        got = negs.get(q, [])
        hard = [r for r in got if not r["is_random"]]
        rand = [r for r in got if r["is_random"]]
        assert s["n_negatives"] == len(got)
        assert s["shortfall"] == max(0, target - len(got))
        assert s["exported"] == (len(got) >= o.min_negatives)
        if s["shortfall"] > 0:
            assert s["shortfall"] + s["n_negatives"] == target
        assert len({r["doc_id"] for r in got}) == len(got)  # never the same negative twice
        if exp.get("status") == "no_positive":
            assert s["status"] == "no_positive" and not got and q not in drops
            assert s["n_candidates"] == exp["n_candidates"]
            continue
        assert s["positive_score"] == pytest.approx(exp["sp"], abs=0, rel=0)
        assert s["depth_used"] == exp["depth_used"]
        assert s["n_candidates"] == exp["n_candidates"]
        expected_status = "no_candidates" if exp["n_candidates"] == 0 else "short" if s["shortfall"] > 0 else "ok"
        assert s["status"] == expected_status
        elig = exp["eligible"]
        elig_ids = [e[0] for e in elig]
        n_hard = min(o.num_negatives, len(elig))
        assert len(hard) == n_hard
        assert [r["rank"] for r in hard] == sorted(r["rank"] for r in hard)
        dropped = {r["doc_id"]: (r["reason"], r["rank"]) for r in drops.get(q, [])}
        kp = [r["doc_id"] for r in drops.get(q, []) if r["reason"] == "known_positive"]
        assert kp == exp["known"]
        rule_drops = {d: v for d, v in dropped.items() if v[0] not in ("known_positive", "not_sampled")}
        assert rule_drops == exp["reasons"]
        if o.sampling == "top":
            assert [r["doc_id"] for r in hard] == elig_ids[:n_hard]
            assert not any(v[0] == "not_sampled" for v in dropped.values())
        else:
            chosen = {r["doc_id"] for r in hard}
            not_sampled = {d for d, v in dropped.items() if v[0] == "not_sampled"}
            assert chosen | not_sampled == set(elig_ids) and not chosen & not_sampled
            if o.sample_pool is not None:
                assert chosen <= set(elig_ids[: o.sample_pool])
            if o.sampling == "top1-softmax" and elig_ids:
                assert elig_ids[0] in chosen
        # every kept hard negative satisfies the method's bounds
        for r in hard:
            t = float(np.float32(r["teacher_score"]))
            assert r["doc_id"] not in exp["pos"]
            assert text_key("", texts[r["doc_id"]]) not in exp["pkeys"]
            assert r["retrieval_rank"] <= s["depth_used"]
            if o.max_score is not None:
                assert t <= o.max_score
            if o.min_score is not None:
                assert t >= o.min_score
            if o.margin is not None:
                assert t < exp["sp"] - o.margin
            if o.relative_margin is not None:
                assert t < exp["sp"] - abs(exp["sp"]) * o.relative_margin
                assert t < exp["sp"]  # sign-safe: the threshold never rises above s(p)
            if o.range_min is not None:
                assert r["rank"] >= o.range_min
            if o.range_max is not None:
                assert r["rank"] <= o.range_max
        # random negatives (STAR)
        for r in rand:
            assert r["source"] == "random" and r["rank"] is None and r["teacher_score"] is None
            assert r["doc_id"] not in exp["rows"]
            assert text_key("", texts[r["doc_id"]]) not in exp["pkeys"]
            if problem[6] and o.dedup_threshold is not None:
                assert max(cos(problem, r["doc_id"], p) for p in exp["pos"]) < o.dedup_threshold
        available = [
            d
            for d in problem[1]
            if d not in exp["rows"]
            and text_key("", texts[d]) not in exp["pkeys"]
            and not (problem[6] and o.dedup_threshold is not None and max(cos(problem, d, p) for p in exp["pos"]) >= o.dedup_threshold)
        ]
        assert len(rand) == min(o.random_negatives, len(available))
    # stats agree with the tables
    for reason in REASONS:
        assert result.stats[f"dropped_{reason}"] == sum(1 for r in result.dropped.to_pylist() if r["reason"] == reason)
    assert result.stats["negatives_total"] == result.negatives.num_rows
    assert result.stats["queries_full"] + result.stats["queries_short"] == len(problem[4])
    assert result.stats["queries_without_negatives"] == sum(1 for s in summ.values() if s["n_negatives"] == 0)


@SETTINGS
@given(problems(), st.integers(0, 1000))
def test_deterministic_and_independent_of_row_order(problem, shuffle_seed):
    a = run(problem)
    b = run(problem)
    c = run(problem, shuffle_seed=shuffle_seed)
    for x, y in ((a, b), (a, c)):
        assert x.negatives.equals(y.negatives)
        assert x.dropped.equals(y.dropped)
        assert x.query_summary.equals(y.query_summary)
        assert x.stats == y.stats


def selected(problem, per_query):
    """The hard negatives (no random ones) of every query, chosen by the vectorised path
    (which sends the queries left short to look_deeper) or by look_deeper alone."""
    scores, corpus, vectors = build(problem)
    opts = resolve_options(FilterOptions(**problem[5]))
    rows = prepare_rows(scores, corpus, problem[4], opts.positive_reference)
    selector = make_selector(rows, opts, vectors)
    record = selector.new_record()
    if per_query:
        for q in np.flatnonzero(rows.n_positives > 0).tolist():
            selector.look_deeper(q, record)
    else:
        selector.select_queries(0, rows.n_queries, record)
    return build_result(rows, opts, record, None, "")


@SETTINGS
@given(problems())
def test_vectorised_path_equals_per_query_path(problem):
    a = selected(problem, per_query=False)
    b = selected(problem, per_query=True)
    assert a.negatives.equals(b.negatives)
    assert a.dropped.equals(b.dropped)
    assert a.query_summary.equals(b.query_summary)
    assert a.stats == b.stats


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.sampled_from(SCORES + [-0.0, 1e-30, -1e30, 3e38]), st.integers(1, 5)), min_size=1, max_size=30)
)
def test_packed_sort_matches_lexsort(items):
    qidx = np.array([i[0] for i in items], np.int64)
    t32 = np.array([i[1] for i in items], np.float32) + np.float32(0.0)
    rank = np.array([i[2] for i in items], np.int64)
    # unique (query, rank) so the packed key has no ties between candidates
    seen, keep = set(), []
    for j, (q, r) in enumerate(zip(qidx.tolist(), rank.tolist())):
        if (q, r) not in seen:
            seen.add((q, r))
            keep.append(j)
    qidx, t32, rank = qidx[keep], t32[keep], rank[keep]
    dcol = pa.array([f"d{j}" for j in range(len(keep))])
    order = sort_order(qidx, t32, rank, np.zeros(len(keep), bool), dcol)
    expected = np.lexsort((rank, -t32.astype(np.float64), qidx))
    assert order.tolist() == expected.tolist()
