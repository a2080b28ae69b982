"""`--method auto`: the rule is chosen on the run's own queries with several positives (hidden-positive protocol)."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from conftest import invoke

from hnmine.selection import FilterOptions
from hnmine.selection.calibrate import calibrate, hidden_positive_set


def _collection(n_queries: int):
    """Each query: a kept positive (0.75, best grade), two more positives that score just below it (0.72,
    0.71: hidden, they become the top candidates), and 30 candidates from 0.70 down."""
    rows, qrels, docs = [], [], []
    for q in range(n_queries):
        qid = f"q{q}"
        for name, score, grade in (("a", 0.75, 2), ("b", 0.72, 1), ("c", 0.71, 1)):
            rows.append((qid, f"p{q}{name}", None, score, True))
            qrels.append((qid, f"p{q}{name}", grade))
            docs.append(f"p{q}{name}")
        for i in range(30):
            rows.append((qid, f"c{q}_{i}", None, 0.70 - 0.005 * i, False))
            docs.append(f"c{q}_{i}")
    # retrieval ranks: by score within the query (positives too: retrieval found them)
    ranked = []
    for q in range(n_queries):
        mine = sorted([r for r in rows if r[0] == f"q{q}"], key=lambda r: -r[3])
        ranked += [(r[0], r[1], i + 1, r[3], r[4]) for i, r in enumerate(mine)]
    scores = pa.table(
        {
            "query_id": [r[0] for r in ranked],
            "doc_id": [r[1] for r in ranked],
            "rank": pa.array([r[2] for r in ranked], pa.int32()),
            "source": ["dense"] * len(ranked),
            "is_positive": [r[4] for r in ranked],
            "teacher_score": pa.array([r[3] for r in ranked], pa.float32()),
        }
    )
    qrels_t = pa.table(
        {
            "query_id": [r[0] for r in qrels],
            "doc_id": [r[1] for r in qrels],
            "relevance": pa.array([r[2] for r in qrels], pa.int32()),
            "is_positive": [True] * len(qrels),
        }
    )
    corpus = pa.table({"doc_id": docs, "title": [""] * len(docs), "text": [f"text of {d}" for d in docs]})
    return scores, qrels_t, corpus


def test_hidden_positives_become_candidates_and_the_best_graded_is_kept():
    scores, qrels, _ = _collection(3)
    rows, hidden, n = hidden_positive_set(scores, qrels, seed=42)
    assert n == 3 and hidden == {f"q{q}": {f"p{q}b", f"p{q}c"} for q in range(3)}
    positives = rows.filter(rows.column("is_positive"))
    assert sorted(positives.column("doc_id").to_pylist()) == ["p0a", "p1a", "p2a"]


def test_auto_picks_the_rule_that_avoids_the_hidden_positives_and_keeps_hardness():
    scores, qrels, corpus = _collection(25)
    chosen, record = calibrate(scores, qrels, corpus, FilterOptions(method="auto", num_negatives=5), default_method="shifted")
    # margin 0.05 keeps only candidates below 0.70: no hidden positive, and the hardest such negatives
    assert (chosen.method, chosen.margin) == ("topk-marginpos", 0.05)
    tried = {(t["method"], tuple(t["params"].items())): t for t in record["tried"]}
    assert tried[("naive", ())]["false_negative_rate"] == pytest.approx(2 / 5)  # both hidden positives are its top 2
    assert tried[("shifted", (("range_min", 6),))]["false_negative_rate"] == 0.0
    assert tried[("topk-marginpos", (("margin", 0.02),))]["false_negative_rate"] == pytest.approx(2 / 5)  # 0.72 < 0.75 − 0.02
    assert record["queries"] == 25 and record["hidden_positives"] == 50 and "lowest estimated false-negative rate" in record["reason"]


def test_too_few_queries_with_several_positives_fall_back_to_the_default_and_say_so():
    scores, qrels, corpus = _collection(5)
    chosen, record = calibrate(scores, qrels, corpus, FilterOptions(method="auto"), default_method="shifted")
    assert chosen.method == "shifted" and record["tried"] == []
    assert "only 5 queries have two or more positives" in record["reason"]


def test_auto_through_the_cli_is_recorded_and_reported(finished_tiny, tmp_path):
    import shutil

    data, done = finished_tiny
    run = tmp_path / "run"
    shutil.copytree(done, run)
    result = invoke(["mine", data, "--out", run, "--method", "auto"])
    assert result.exit_code == 0, result.output
    assert "method auto: shifted (only 0 queries have two or more positives" in result.stderr
    stats = json.loads((run / "manifests/filter.json").read_text())["stats"]
    assert stats["calibration"]["chosen"] == {"method": "shifted", "params": {}}
    report = json.loads(invoke(["report", run, "--json"]).stdout)
    assert report["meta"]["calibration"]["chosen"]["method"] == "shifted"
    assert "auto → shifted" in invoke(["report", run]).stdout
