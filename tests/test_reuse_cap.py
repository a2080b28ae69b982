"""--max-negative-reuse K (issue 28, part 4): no document is a negative of more than K queries; the choice
keeps every query full where any choice can (a maximum flow, hnmine.selection.reuse), deterministic; what the
cap takes back is dropped as negative_reuse_cap and counted in the stats and the report."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from conftest import invoke
from hypothesis import given
from hypothesis import strategies as st
from test_filter import corpus_table, scores_table
from test_filter_properties import SETTINGS, build, problems, reference
from test_hunt import one_line_error

from hnmine.selection import FilterOptions, filter_candidates


def negatives_of(result) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in result.negatives.to_pylist():
        out.setdefault(r["query_id"], []).append(r["doc_id"])
    return out


def reasons_of(result) -> dict[tuple[str, str], str]:
    return {(r["query_id"], r["doc_id"]): r["reason"] for r in result.dropped.to_pylist()}


def naive(rows, docs, **kw):
    opts = FilterOptions(method="naive", depth=10, max_depth=10, dedup_threshold=None, **kw)
    return filter_candidates(scores_table(rows), corpus_table(docs), opts, query_ids=sorted({r[0] for r in rows}))


# q1's candidates: a (0.9), b (0.8); q2's: a (0.9) alone. One negative each, each document at most once.
SHARED = [
    ("q1", "p1", None, 1.0, True),
    ("q1", "a", 1, 0.9, False),
    ("q1", "b", 2, 0.8, False),
    ("q2", "p2", None, 1.0, True),
    ("q2", "a", 1, 0.9, False),
]


def test_a_greedy_pass_would_leave_a_query_short_and_the_cap_does_not():
    """In query order a greedy pass gives `a` to q1 (its best) and leaves q2 with nothing; the augmenting path
    moves q1 to `b` and gives `a` to q2: both full."""
    uncapped = naive(SHARED, ["p1", "p2", "a", "b"], num_negatives=1)
    assert negatives_of(uncapped) == {"q1": ["a"], "q2": ["a"]}
    capped = naive(SHARED, ["p1", "p2", "a", "b"], num_negatives=1, max_negative_reuse=1)
    assert negatives_of(capped) == {"q1": ["b"], "q2": ["a"]}
    assert reasons_of(capped)[("q1", "a")] == "negative_reuse_cap"
    summary = {r["query_id"]: r for r in capped.query_summary.to_pylist()}
    assert [summary[q]["status"] for q in ("q1", "q2")] == ["ok", "ok"]
    reuse = capped.stats["negative_reuse"]
    assert reuse == {
        "max_negative_reuse": 1,
        "most_uses_before": 2,
        "documents_over_cap": 1,
        "negatives_taken_back": 1,
        "negatives_replaced": 1,
        "queries_short_by_cap": 0,
        "most_uses_after": 1,
    }
    assert capped.stats["dropped_negative_reuse_cap"] == 1
    assert capped.spare is None


def test_a_longer_augmenting_path():
    """q3 can only have `a`; `a` is q1's, who can move to `b` only if q2 gives `b` up for `c`."""
    rows = [
        ("q1", "p1", None, 1.0, True),
        ("q1", "a", 1, 0.9, False),
        ("q1", "b", 2, 0.8, False),
        ("q2", "p2", None, 1.0, True),
        ("q2", "b", 1, 0.9, False),
        ("q2", "c", 2, 0.5, False),
        ("q3", "p3", None, 1.0, True),
        ("q3", "a", 1, 0.7, False),
    ]
    capped = naive(rows, ["p1", "p2", "p3", "a", "b", "c"], num_negatives=1, max_negative_reuse=1)
    assert negatives_of(capped) == {"q1": ["b"], "q2": ["c"], "q3": ["a"]}
    assert capped.stats["queries_short"] == 0


def test_where_no_choice_keeps_every_query_full_the_short_one_is_named():
    """Two queries with the one candidate `a` and K = 1: the query that ranks it better keeps it (both rank it
    first: the first in query order); the other is short, and `a` is its dropped negative_reuse_cap row."""
    rows = [("q1", "p1", None, 1.0, True), ("q1", "a", 1, 0.9, False), ("q2", "p2", None, 1.0, True), ("q2", "a", 1, 0.9, False)]
    capped = naive(rows, ["p1", "p2", "a"], num_negatives=1, max_negative_reuse=1)
    assert negatives_of(capped) == {"q1": ["a"]}
    summary = {r["query_id"]: r for r in capped.query_summary.to_pylist()}
    assert (summary["q2"]["status"], summary["q2"]["shortfall"], summary["q2"]["n_negatives"]) == ("short", 1, 0)
    assert reasons_of(capped)[("q2", "a")] == "negative_reuse_cap"
    assert capped.stats["negative_reuse"]["queries_short_by_cap"] == 1
    assert capped.stats["queries_short"] == 1 and capped.stats["queries_without_negatives"] == 1


def test_a_cap_that_holds_already_changes_nothing():
    plain = naive(SHARED, ["p1", "p2", "a", "b"], num_negatives=1)
    capped = naive(SHARED, ["p1", "p2", "a", "b"], num_negatives=1, max_negative_reuse=2)
    for name in ("negatives", "dropped", "query_summary"):
        assert getattr(capped, name).equals(getattr(plain, name))
    assert capped.stats["negative_reuse"]["negatives_taken_back"] == 0


def test_a_sampled_method_replaces_with_its_next_draw():
    """With a random sampler the spare that replaces a capped negative is the next one of the query's draw, and
    it is no longer a not_sampled row."""
    rows = [("q1", "p1", None, 1.0, True), ("q2", "p2", None, 1.0, True)]
    docs = ["p1", "p2"] + [f"d{i}" for i in range(6)]
    for q in ("q1", "q2"):
        rows += [(q, f"d{i}", i + 1, 0.5 - 0.01 * i, False) for i in range(6)]
    opts = {"method": "naive", "sampling": "random", "num_negatives": 3, "depth": 10, "max_depth": 10, "dedup_threshold": None}
    plain = filter_candidates(scores_table(rows), corpus_table(docs), FilterOptions(**opts), query_ids=["q1", "q2"])
    capped = filter_candidates(scores_table(rows), corpus_table(docs), FilterOptions(**opts, max_negative_reuse=1), query_ids=["q1", "q2"])
    negs = negatives_of(capped)
    assert not set(negs["q1"]) & set(negs["q2"])
    assert len(negs["q1"]) == len(negs["q2"]) == 3
    reasons = reasons_of(capped)
    for q, docs_of_q in negs.items():
        assert all((q, d) not in reasons for d in docs_of_q)  # a negative is never also a dropped row
    taken = [k for k, r in reasons.items() if r == "negative_reuse_cap"]
    assert len(taken) == len(set(negatives_of(plain)["q1"]) & set(negatives_of(plain)["q2"]))
    assert capped.stats["dropped_not_sampled"] == sum(1 for r in reasons.values() if r == "not_sampled")


@SETTINGS
@given(problems(), st.integers(1, 3))
def test_invariants_under_the_cap(problem, k):
    """On the random problems of tests/test_filter_properties.py: no document a negative of more than K
    queries, a known positive never a negative, every negative within the method's bounds, stats that
    agree with the tables, and a query never fuller than without the cap."""
    kw = dict(problem[5], random_negatives=0, max_negative_reuse=k)
    kw["min_negatives"] = min(kw["min_negatives"], kw["num_negatives"])
    problem = problem[:5] + (kw,) + problem[6:]
    o, ref = reference(problem)
    scores, corpus, vectors = build(problem)
    result = filter_candidates(scores, corpus, FilterOptions(**kw), doc_vectors=vectors, query_ids=problem[4])
    uncapped = filter_candidates(
        scores, corpus, FilterOptions(**dict(kw, max_negative_reuse=None)), doc_vectors=vectors, query_ids=problem[4]
    )
    uses: dict[str, int] = {}
    for r in result.negatives.to_pylist():
        uses[r["doc_id"]] = uses.get(r["doc_id"], 0) + 1
        exp = ref[r["query_id"]]
        assert r["doc_id"] not in exp["pos"]  # known positives never negatives
        assert r["doc_id"] in {e[0] for e in exp["eligible"]}  # eligible: every rule and margin respected
        t = float(r["teacher_score"])
        if o.margin is not None:
            assert t < exp["sp"] - o.margin
        if o.relative_margin is not None:
            assert t < exp["sp"] - abs(exp["sp"]) * o.relative_margin
        if o.max_score is not None:
            assert t <= o.max_score
    assert max(uses.values(), default=0) <= k
    assert sum(uses.values()) == result.stats["negatives_total"] == result.negatives.num_rows
    summary = result.query_summary.to_pylist()
    assert sum(1 for s in summary if s["shortfall"] > 0) == result.stats["queries_short"]
    for s, u in zip(summary, uncapped.query_summary.to_pylist()):
        assert s["n_negatives"] <= u["n_negatives"]
        assert s["n_negatives"] + s["shortfall"] == u["n_negatives"] + u["shortfall"]
    taken = sum(1 for r in result.dropped.to_pylist() if r["reason"] == "negative_reuse_cap")
    assert taken == result.stats["dropped_negative_reuse_cap"]
    assert sum(1 for r in result.dropped.to_pylist() if r["reason"] == "not_sampled") == result.stats["dropped_not_sampled"]
    again = filter_candidates(scores, corpus, FilterOptions(**kw), doc_vectors=vectors, query_ids=problem[4])
    assert again.negatives.equals(result.negatives) and again.dropped.equals(result.dropped)


# --- through the CLI ---------------------------------------------------------------------------------


def test_the_cap_through_the_cli(finished_tiny, tmp_path):
    import shutil

    _, done = finished_tiny
    run = tmp_path / "run"
    shutil.copytree(done, run)
    result = invoke(["filter", "--out", run, "--method", "naive", "-n", "3", "--max-negative-reuse", "1", "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)["filter"]
    negatives = pq.read_table(run / "negatives.parquet").to_pylist()
    uses: dict[str, int] = {}
    for r in negatives:
        uses[r["doc_id"]] = uses.get(r["doc_id"], 0) + 1
    assert max(uses.values()) == 1
    assert stats["negative_reuse"]["max_negative_reuse"] == 1
    assert stats["negative_reuse"]["negatives_taken_back"] == stats["dropped_negative_reuse_cap"]
    report = invoke(["report", str(run)])
    assert report.exit_code == 0, report.output
    assert "negative reuse capped at 1 queries per document" in " ".join(report.stdout.split())


def test_the_cap_with_random_negatives_is_refused(finished_tiny, tmp_path):
    _, done = finished_tiny
    one_line_error(
        invoke(["filter", "--out", done, "--max-negative-reuse", "2", "--random-negatives", "1"]),
        "--max-negative-reuse caps the mined negatives, and --random-negatives (1) draws others",
    )


@pytest.mark.parametrize("value", ["0", "-1"])
def test_the_cap_must_be_positive(finished_tiny, value):
    _, done = finished_tiny
    one_line_error(invoke(["filter", "--out", done, "--max-negative-reuse", value]), "--max-negative-reuse must be between 1 and")


def test_the_cap_over_parts_equals_the_cap_over_the_whole(finished_tiny, tmp_path, monkeypatch):
    """The filter stage selects in parts of whole queries (hnmine.stages.filter.PARTITION_ROWS) and caps the
    reuse once the parts are together: the same tables as in one part."""
    import shutil

    import hnmine.stages.filter as filter_stage

    _, done = finished_tiny
    tables = []
    for rows_per_part in (filter_stage.PARTITION_ROWS, 7):
        monkeypatch.setattr(filter_stage, "PARTITION_ROWS", rows_per_part)
        run = tmp_path / f"run{rows_per_part}"
        shutil.copytree(done, run)
        args = ["filter", "--out", run, "--method", "naive", "-n", "3", "--max-negative-reuse", "1", "--quiet"]
        assert invoke(args).exit_code == 0
        tables.append([pq.read_table(run / f"{name}.parquet") for name in ("negatives", "dropped", "query_summary")])
    assert all(a.equals(b) for a, b in zip(*tables))
    assert tables[0][0].num_rows > 0
