"""Issue 28, part 3: the teacher cascade (--rerank-teacher, --rerank-budget; hnmine.teachers.cascade) and the
per-teacher percentile thresholds (--max-score-percentile; hnmine.selection.percentile)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import invoke
from test_filter import corpus_table
from test_hunt import one_line_error

from hnmine.selection import FilterOptions, filter_candidates
from hnmine.selection.percentile import percentile_thresholds
from hnmine.teachers.cascade import first_ranks, grow, within_budget

# --- per-teacher percentile thresholds ----------------------------------------------------------------


def two_teachers(rows):
    """rows: (query, doc, retrieval rank or None, is_positive, score of teacher a, score of teacher b); the
    combined teacher_score is their mean (it only orders the candidates here)."""
    cols = list(zip(*rows))
    a, b = np.array(cols[4], np.float32), np.array(cols[5], np.float32)
    return pa.table(
        {
            "query_id": pa.array(cols[0], pa.string()),
            "doc_id": pa.array(cols[1], pa.string()),
            "rank": pa.array(cols[2], pa.int32()),
            "source": pa.array(["qrels" if r is None else "dense" for r in cols[2]], pa.string()),
            "is_positive": pa.array(cols[3], pa.bool_()),
            "teacher_a": pa.array(a, pa.float32()),
            "teacher_b": pa.array(b, pa.float32()),
            "teacher_score": pa.array((a + b / 100) / 2, pa.float32()),
        }
    )


# Teacher a scores on [0, 1], teacher b on [0, 100]. Positives: a 0.2, 0.4, 0.6, 0.8 -> 50th percentile 0.5;
# b 10, 20, 30, 40 -> 25. One absolute --max-score could not serve both.
PERCENTILE_ROWS = [
    ("q1", "p1", None, True, 0.2, 10.0),
    ("q1", "p2", None, True, 0.4, 20.0),
    ("q2", "p3", None, True, 0.6, 30.0),
    ("q2", "p4", None, True, 0.8, 40.0),
    ("q1", "c1", 1, False, 0.45, 30.0),  # b above 25
    ("q1", "c2", 2, False, 0.55, 5.0),  # a above 0.5
    ("q1", "c3", 3, False, 0.3, 20.0),  # below both
    ("q2", "c4", 1, False, 0.5, 25.0),  # at both thresholds: not above
    ("q2", "c5", 2, False, 0.9, 90.0),  # above both
]


def test_each_teacher_gets_the_percentile_of_its_own_positive_scores():
    scores = two_teachers(PERCENTILE_ROWS)
    assert percentile_thresholds(scores, 50) == pytest.approx({"teacher_a": 0.5, "teacher_b": 25.0})
    # linear interpolation between order statistics: 10th percentile of 10, 20, 30, 40 is 13
    assert percentile_thresholds(scores, 10)["teacher_b"] == pytest.approx(13.0)
    opts = FilterOptions(method="naive", num_negatives=5, depth=10, max_depth=10, dedup_threshold=None, max_score_percentile=50)
    docs = [r[1] for r in PERCENTILE_ROWS]
    result = filter_candidates(scores, corpus_table(docs), opts, query_ids=["q1", "q2"])
    reasons = {r["doc_id"]: r["reason"] for r in result.dropped.to_pylist()}
    assert {d: reasons.get(d) for d in ("c1", "c2", "c3", "c4", "c5")} == {
        "c1": "above_score_percentile",
        "c2": "above_score_percentile",
        "c3": None,
        "c4": None,
        "c5": "above_score_percentile",
    }
    assert sorted(result.negatives.column("doc_id").to_pylist()) == ["c3", "c4"]
    assert result.stats["dropped_above_score_percentile"] == 3


def test_one_teacher_is_thresholded_on_teacher_score():
    rows = [
        ("q1", "p1", None, True, 0.2, 0.0),
        ("q1", "p2", 1, True, 0.6, 0.0),
        ("q1", "c1", 2, False, 0.5, 0.0),
        ("q1", "c2", 3, False, 0.1, 0.0),
    ]
    scores = two_teachers(rows).drop_columns(["teacher_a", "teacher_b"])
    scores = scores.set_column(scores.column_names.index("teacher_score"), "teacher_score", pa.array([0.2, 0.6, 0.5, 0.1], pa.float32()))
    assert percentile_thresholds(scores, 50) == pytest.approx({"teacher_score": 0.4})
    opts = FilterOptions(method="naive", num_negatives=2, depth=10, max_depth=10, dedup_threshold=None, max_score_percentile=50)
    result = filter_candidates(scores, corpus_table(["p1", "p2", "c1", "c2"]), opts, query_ids=["q1"])
    assert result.negatives.column("doc_id").to_pylist() == ["c2"]
    assert {r["doc_id"]: r["reason"] for r in result.dropped.to_pylist()}["c1"] == "above_score_percentile"


def test_a_candidate_judged_not_relevant_is_exempt_from_the_percentile_rule():
    scores = two_teachers(PERCENTILE_ROWS).append_column("judged_relevance", pa.array([None] * 4 + [0] + [None] * 4, pa.int32()))
    opts = FilterOptions(method="naive", num_negatives=5, depth=10, max_depth=10, dedup_threshold=None, max_score_percentile=50)
    result = filter_candidates(scores, corpus_table([r[1] for r in PERCENTILE_ROWS]), opts, query_ids=["q1", "q2"])
    assert "c1" in result.negatives.column("doc_id").to_pylist()


def copy_run(finished_tiny, tmp_path, name="run"):
    _, done = finished_tiny
    run = tmp_path / name
    shutil.copytree(done, run)
    return run


def test_the_percentile_threshold_through_the_cli(sample_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(sample_run, run)
    result = invoke(["filter", "--out", run, "--method", "naive", "--max-score-percentile", "0", "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)["filter"]
    scores = pq.read_table(run / "scores.parquet")
    positive = scores.filter(scores.column("is_positive")).column("teacher_score").to_numpy().astype(np.float64)
    expected = float(positive.min())  # the 0th percentile: the lowest positive score
    assert stats["score_percentile"] == {"percentile": 0.0, "thresholds": {"teacher_score": pytest.approx(expected)}}
    negatives = pq.read_table(run / "negatives.parquet")
    assert all(float(s) <= expected for s in negatives.column("teacher_score").to_pylist())
    dropped = pq.read_table(run / "dropped.parquet").to_pylist()
    assert any(r["reason"] == "above_score_percentile" for r in dropped)
    assert all(float(r["teacher_score"]) > expected for r in dropped if r["reason"] == "above_score_percentile")


@pytest.mark.parametrize("value", ["101", "-1", "nan"])
def test_the_percentile_must_be_between_0_and_100(finished_tiny, value):
    _, done = finished_tiny
    one_line_error(invoke(["filter", "--out", done, "--max-score-percentile", value]), "--max-score-percentile must be")


# --- the cascade: its rule, by hand -----------------------------------------------------------------


def test_first_ranks_budgets_and_growth():
    table = pa.table(
        {
            "query_id": ["q1", "q1", "q1", "q1", "q2", "q2"],
            "doc_id": ["p", "a", "b", "c", "p2", "x"],
            "rank": pa.array([1, 2, 3, 4, None, 1], pa.int32()),
            "is_positive": [True, False, False, False, True, False],
        }
    )
    first = np.array([0.9, 0.1, 0.5, 0.5, 0.3, 0.2], np.float32)
    ranks = first_ranks(table, first)
    assert ranks.tolist() == [0, 3, 1, 2, 0, 1]  # b and c tie on the score: b has the better retrieval rank
    assert within_budget(table, ranks, {}, 1).tolist() == [True, False, True, False, True, True]
    assert within_budget(table, ranks, {"q1": 2}, 1).tolist() == [True, False, True, True, True, True]
    counts = {"q1": 3, "q2": 1}
    assert grow({}, {"q1", "q2"}, counts, 1) == {"q1": 2}  # q2 has no candidate beyond its budget
    assert grow({"q1": 2}, {"q1"}, counts, 1) == {"q1": 3}  # doubling stops at every candidate
    assert grow({"q1": 3}, {"q1"}, counts, 1) == {}


# --- the cascade through the CLI ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cross_encoder_dir(tmp_path_factory):
    """A cross-encoder from the bundled MiniLM with a fresh head (as tests/test_teachers.py): real model code."""
    import torch
    from sentence_transformers import CrossEncoder

    from hnmine.inference.models import resolve_model

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("ce") / "ce"
    CrossEncoder(resolve_model("all-MiniLM-L6-v2")[0], num_labels=1, device="cpu").save(str(folder))
    return folder


@pytest.fixture(scope="module")
def cascade_run(tiny_beir_module, cross_encoder_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("cascade") / "run"
    args = ["mine", tiny_beir_module, "--out", run, "--method", "naive", "-n", "3", "--depth", "20"]
    result = invoke([*args, "--rerank-teacher", cross_encoder_dir, "--rerank-budget", "1", "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    return run, json.loads(result.stdout)


@pytest.fixture(scope="module")
def tiny_beir_module(tmp_path_factory):
    from conftest import TINY_DOCS, TINY_QRELS, TINY_QUERIES, write_beir

    return write_beir(tmp_path_factory.mktemp("tiny") / "data", TINY_DOCS, TINY_QUERIES, TINY_QRELS)


def test_the_strong_teacher_scores_only_the_budget_and_grows_it_for_short_queries(cascade_run):
    run, summary = cascade_run
    score = json.loads((run / "manifests" / "score.json").read_text())
    cascade = score["stats"]["cascade"]
    assert cascade["budget"] == 1
    # budget 1, 3 negatives wanted: every query short at first, grown 1 -> 2 -> 4
    assert [r["queries_grown"] for r in cascade["rounds"]][:2] == [3, 3]
    assert cascade["queries_short"] == 0 and cascade["budgets"] == {"4": 3}
    scores = pq.read_table(run / "scores.parquet")
    candidates = pq.read_table(run / "candidates.parquet")
    assert scores.num_rows == cascade["strong_pairs_scored"] < candidates.num_rows + 3
    assert cascade["candidates_outside_budget"] > 0
    strong = [c for c in scores.column_names if c.startswith("teacher_cross-encoder")]
    assert len(strong) == 1 and scores.column(strong[0]).equals(scores.column("teacher_score"))
    assert "teacher_bi-encoder:all-MiniLM-L6-v2" in scores.column_names
    # a candidate the strong teacher did not score is never a negative
    scored = set(zip(scores.column("query_id").to_pylist(), scores.column("doc_id").to_pylist()))
    negatives = pq.read_table(run / "negatives.parquet")
    assert set(zip(negatives.column("query_id").to_pylist(), negatives.column("doc_id").to_pylist())) <= scored
    assert summary["filter"]["queries_short"] == 0


def test_the_cascade_warns_when_the_filter_runs_with_other_options(cascade_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(cascade_run[0], run)
    result = invoke(["filter", "--out", run, "-n", "5"])
    assert result.exit_code == 0, result.output
    assert "the teacher cascade's budgets were grown for other filter options" in result.stderr
    again = invoke(["filter", "--out", run, "-n", "3"])
    assert "budgets were grown" not in again.stderr


def test_a_budget_without_a_strong_teacher_is_refused(finished_tiny):
    _, done = finished_tiny
    one_line_error(invoke(["score", "--out", done, "--rerank-budget", "4"]), "--rerank-budget applies only with --rerank-teacher")


def test_a_strong_teacher_that_is_not_there_is_named(finished_tiny, tmp_path):
    _, done = finished_tiny
    one_line_error(invoke(["score", "--out", done, "--rerank-teacher", tmp_path / "nothing"]), "cannot load cross-encoder", "nothing")
