"""`--method auto`: choose the selection rule on the user's own data, by the hidden-positive protocol.

Thresholds do not carry across models and collections (a relative margin of 0.05 drops 84 % of the
candidates with one model and few with another), so `auto` measures them here. Among the queries
that have several positives, one positive is kept (the best graded; ties by a seeded draw, as
`--hide-positives` does) and the others are hidden: they become candidates again, and a rule that
mines one of them as a negative has mined a false negative. Each candidate rule of CANDIDATES runs on
those queries; the one with the lowest false-negative rate wins among those that keep at least
MIN_COVERAGE of the queries full and their negatives hard: HARDNESS_KEPT of naive top-k's hardness, or
as hard as the default method's negatives on these queries if that is lower.
With fewer than MIN_QUERIES such queries there is nothing to measure, and the default method is used,
saying so. Everything tried is recorded (manifest stats `calibration`, and the report).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hnmine.selection.options import FilterOptions

# The published family (NV-Retriever's positive-aware rules and shifted top-k) around their published
# values; absolute thresholds (TopK-Abs) are left out: they depend on the teacher's score scale.
CANDIDATES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("naive", {}),
    ("shifted", {"range_min": 6}),
    ("shifted", {"range_min": 11}),
    ("shifted", {"range_min": 21}),
    ("topk-marginpos", {"margin": 0.02}),
    ("topk-marginpos", {"margin": 0.05}),
    ("topk-marginpos", {"margin": 0.1}),
    ("topk-percpos", {"relative_margin": 0.02}),
    ("topk-percpos", {"relative_margin": 0.05}),
    ("topk-percpos", {"relative_margin": 0.1}),
)
MIN_QUERIES = 20  # queries with two or more positives needed to measure anything
MAX_QUERIES = 2000  # a deterministic sample of them is enough, and bounds the time
MIN_COVERAGE = 0.95
HARDNESS_KEPT = 0.8  # of naive top-k's hardness


def calibrate(
    scores: pa.Table,
    qrels: pa.Table,
    corpus: pa.Table,
    base: FilterOptions,
    *,
    default_method: str,
    doc_vectors=None,
    positives_hidden: bool = False,
) -> tuple[FilterOptions, dict]:
    """(the settings to run with, a record of what was measured and chosen). `positives_hidden`: the run's
    qrels keep one positive per query (--hide-positives), which leaves calibration nothing to hold out."""
    from hnmine.methods import resolve_options

    cal_scores, hidden, n_queries = hidden_positive_set(scores, qrels, base.seed)
    record: dict[str, Any] = {
        "queries": n_queries,
        "hidden_positives": int(sum(len(v) for v in hidden.values())),
        "min_queries": MIN_QUERIES,
        "min_coverage": MIN_COVERAGE,
        "hardness_kept": HARDNESS_KEPT,
    }
    if n_queries < MIN_QUERIES:
        chosen = resolve_options(dataclasses.replace(base, method=default_method))
        record.update(chosen=_describe(default_method, {}), tried=[], reason=_too_few_reason(n_queries, default_method, positives_hidden))
        return chosen, record
    tried = [_measure(cal_scores, corpus, base, name, params, hidden, doc_vectors) for name, params in CANDIDATES]
    if not any(t["method"] == default_method and not t["params"] for t in tried):
        tried.append(_measure(cal_scores, corpus, base, default_method, {}, hidden, doc_vectors))
    naive = tried[0]
    for t in tried:
        t["hardness_vs_naive"] = _ratio(t["hardness"], naive["hardness"])
    # Hard enough: HARDNESS_KEPT of naive's, or as hard as the default method here (the default is the
    # standing recommendation; a rule as hard as it is never refused for its hardness).
    default = next(
        t
        for t in tried
        if t["method"] == default_method and not t["params"] or t["method"] == default_method and t["params"] == _defaults(default_method)
    )
    floor = min(HARDNESS_KEPT, default["hardness_vs_naive"] or HARDNESS_KEPT)
    record["hardness_floor"] = floor
    for t in tried:
        t["eligible"] = bool(t["coverage"] >= MIN_COVERAGE and (t["hardness_vs_naive"] or 0) >= floor)
    eligible = [t for t in tried if t["eligible"] and t["false_negative_rate"] is not None]
    if eligible:
        best = min(eligible, key=lambda t: (t["false_negative_rate"], -(t["hardness_vs_naive"] or 0)))
        name, params = best["method"], best["params"]
        reason = (
            f"lowest estimated false-negative rate ({best['false_negative_rate']:.1%} vs naive "
            f"{naive['false_negative_rate']:.1%}) with {best['coverage']:.0%} of queries full and "
            f"{best['hardness_vs_naive']:.2f}× naive's hardness, on {n_queries} queries with hidden positives"
        )
        if (best["method"], best["params"]) == (default["method"], default["params"]) or best is default:
            name, params = default_method, {}
    else:
        name, params = default_method, {}
        reason = (
            f"no candidate rule kept {MIN_COVERAGE:.0%} of the queries full and {floor:.2f}× naive's hardness: "
            f"the default method {default_method} is used"
        )
    record.update(tried=tried, chosen=_describe(name, params), reason=reason)
    return resolve_options(dataclasses.replace(base, method=name, **params)), record


def _too_few_reason(n_queries: int, default_method: str, positives_hidden: bool) -> str:
    if positives_hidden:  # not the data's doing: say so, or the user looks for queries that are there
        return (
            f"--hide-positives keeps one positive per query, so no query has a second positive to hold out "
            f"and nothing can be measured: the default method {default_method} is used"
        )
    return (
        f"only {n_queries} queries have two or more positives (at least {MIN_QUERIES} are needed "
        f"to measure false negatives): the default method {default_method} is used"
    )


def hidden_positive_set(scores: pa.Table, qrels: pa.Table, seed: int) -> tuple[pa.Table, dict[str, set[str]], int]:
    """The rows of the queries with several positives, their extra positives turned into candidates
    (or left out when retrieval missed them); (table, query -> hidden doc ids, number of queries)."""
    from hnmine.hide import choose_kept

    pos = scores.filter(pc.fill_null(scores.column("is_positive"), False))
    grades: dict[tuple[str, str], int] = {}
    for q, d, r in zip(*(qrels.column(c).to_pylist() for c in ("query_id", "doc_id", "relevance"))):
        grades[(q, d)] = max(grades.get((q, d), r), r)
    by_query: dict[str, list[str]] = {}
    for q, d in zip(pos.column("query_id").to_pylist(), pos.column("doc_id").to_pylist()):
        by_query.setdefault(q, []).append(d)
    multi = sorted(q for q, docs in by_query.items() if len(docs) >= 2)
    if len(multi) > MAX_QUERIES:  # a deterministic sample, the same for the same seed
        from hnmine.methods.samplers import query_seed

        multi = sorted(multi, key=lambda q: query_seed(seed, "calibrate", q))[:MAX_QUERIES]
    hidden: dict[str, set[str]] = {}
    for q in multi:
        kept = choose_kept(seed, q, {d: grades.get((q, d), 1) for d in by_query[q]})
        hidden[q] = set(by_query[q]) - {kept}
    rows = scores.filter(pc.is_in(scores.column("query_id"), value_set=pa.array(multi, pa.string())))
    qd = list(zip(rows.column("query_id").to_pylist(), rows.column("doc_id").to_pylist()))
    is_hidden = np.array([d in hidden.get(q, ()) for q, d in qd], dtype=bool)
    retrieved = np.asarray(rows.column("rank").is_valid().to_numpy(zero_copy_only=False), bool)
    rows = rows.filter(pa.array(~is_hidden | retrieved))  # a hidden positive retrieval missed cannot be mined
    is_hidden = np.array(
        [d in hidden.get(q, ()) for q, d in zip(rows.column("query_id").to_pylist(), rows.column("doc_id").to_pylist())], bool
    )
    is_pos = np.asarray(pc.fill_null(rows.column("is_positive"), False).to_numpy(zero_copy_only=False), bool) & ~is_hidden
    rows = rows.set_column(rows.column_names.index("is_positive"), "is_positive", pa.array(is_pos))
    return rows, hidden, len(multi)


def _measure(
    scores: pa.Table, corpus: pa.Table, base: FilterOptions, name: str, params: dict, hidden: dict[str, set[str]], doc_vectors
) -> dict:
    from hnmine.coverage import full_queries
    from hnmine.methods import resolve_options
    from hnmine.selection.run import filter_candidates

    rule: dict[str, Any] = dict.fromkeys(("range_min", "range_max", "max_score", "margin", "relative_margin"))
    rule.update(params)
    opts = resolve_options(dataclasses.replace(base, method=name, random_negatives=0, min_negatives=min(base.min_negatives, 1), **rule))
    result = filter_candidates(scores, corpus, opts, doc_vectors=doc_vectors)
    neg = result.negatives
    qs, ds = neg.column("query_id").to_pylist(), neg.column("doc_id").to_pylist()
    false = sum(1 for q, d in zip(qs, ds) if d in hidden.get(q, ()))
    shortfall = result.query_summary.column("shortfall").to_numpy(zero_copy_only=False)
    neg_scores = neg.column("teacher_score").to_numpy(zero_copy_only=False).astype(np.float64)
    pos = scores.filter(pc.fill_null(scores.column("is_positive"), False)).column("teacher_score")
    pos_median = float(np.median(pos.to_numpy(zero_copy_only=False))) if len(pos) else None
    neg_median = float(np.median(neg_scores)) if neg_scores.size else None
    return {
        "method": name,
        "params": params,
        "negatives": neg.num_rows,
        "false_negatives": false,
        "false_negative_rate": false / neg.num_rows if neg.num_rows else None,
        "coverage": float(full_queries(shortfall).mean()) if shortfall.size else 0.0,
        "hardness": _hardness(neg_median, pos_median, scores),
    }


def _hardness(neg_median: float | None, pos_median: float | None, scores: pa.Table) -> float | None:
    """How hard the negatives are: the median mined negative's score over the median positive's (as
    `hnmine eval` reports it), where both are positive numbers (cosines); for other score scales (logits)
    the scale-free form, 0 at the median candidate and 1 at the median positive."""
    if neg_median is None or pos_median is None:
        return None
    if pos_median > 0 and neg_median >= 0:
        return neg_median / pos_median
    cand = scores.filter(pc.invert(pc.fill_null(scores.column("is_positive"), False))).column("teacher_score")
    middle = float(np.median(cand.to_numpy(zero_copy_only=False))) if len(cand) else None
    if middle is None or pos_median <= middle:
        return None
    return (neg_median - middle) / (pos_median - middle)


def _defaults(method: str) -> dict:
    """The rule parameters a method sets by default (as CANDIDATES writes them)."""
    from hnmine.methods import get_method

    keys = ("range_min", "range_max", "max_score", "margin", "relative_margin")
    return {k: v for k, v in get_method(method).defaults.items() if k in keys}


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b not in (None, 0) else None


def _describe(name: str, params: dict) -> dict:
    return {"method": name, "params": params}
