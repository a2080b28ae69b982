"""benchmarks/bench_downstream_dense.py (issue 29): the split, the known and hidden positives, the
false-negative count, the paired statistics, and a smoke run of the whole benchmark on a tiny collection."""

from __future__ import annotations

import json
import math
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ROOT, write_beir

sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_downstream_dense as bench  # noqa: E402
import bench_downstream_report as report  # noqa: E402

TOPICS = {
    "coffee": ["espresso pressure", "pour over filter", "cold brew steeping", "moka pot steam", "grinder burrs", "crema foam"],
    "bikes": ["chain lubrication", "tyre pressure", "disc brakes", "gear cassette", "saddle height", "wheel truing"],
    "volcanoes": ["magma chamber", "lava flows", "ash clouds", "pyroclastic surge", "caldera collapse", "gas vents"],
    "tides": ["moon gravity", "spring tides", "neap tides", "tidal range", "tide tables", "tidal currents"],
}


def dense_beir(root):
    """A Cranfield-like folder: 24 documents in 4 topics, 8 queries with 3 graded relevant documents each."""
    docs, queries, qrels = [], [], []
    for t, (topic, subjects) in enumerate(TOPICS.items()):
        for i, subject in enumerate(subjects):
            docs.append({"_id": str(6 * t + i + 1), "title": subject.title(), "text": f"A note about {subject} in {topic}."})
        for k in range(2):
            qid = str(2 * t + k + 1)
            queries.append({"_id": qid, "text": f"what should I know about {topic}, question {k + 1}"})
            qrels += [(qid, str(6 * t + 3 * k + j + 1), 3 - j) for j in range(3)]
    return write_beir(root / "cranfield", docs, queries, qrels, split="test")


def test_split_by_query_is_fixed_disjoint_and_independent_of_order():
    ids = [str(i) for i in range(1, 226)]
    train, test = bench.split_by_query(ids)
    assert (len(train), len(test)) == (112, 113)
    assert set(train).isdisjoint(test) and set(train) | set(test) == set(ids)
    assert bench.split_by_query(list(reversed(ids))) == (train, test)
    assert bench.split_by_query(ids, seed=1) != (train, test)
    assert train == sorted(train, key=int)  # listed by id, chosen by hash


def test_known_positive_is_the_best_graded_and_the_others_are_hidden():
    known, hidden = bench.known_and_hidden({"q1": {"d1": 2, "d2": 4, "d3": 1}, "q2": {"d9": 1}})
    assert known == {"q1": "d2", "q2": "d9"}
    assert hidden == {"q1": ["d1", "d3"]}  # q2 has nothing hidden


def test_prepare_data_writes_the_known_pairs_the_hidden_and_the_test_half(tmp_path):
    bench.COLLECTIONS["cranfield"] = (dense_beir(tmp_path / "data"), "test", None)
    try:
        setup = bench.prepare_data("cranfield", tmp_path / "work")
    finally:
        bench.COLLECTIONS["cranfield"] = (bench.SHARED / "cranfield", "test", None)
    qrels = setup["data"] / "qrels"
    train = [line.split("\t") for line in (qrels / "train.tsv").read_text().splitlines()[1:]]
    hidden = [line.split("\t") for line in (qrels / "hidden.tsv").read_text().splitlines()[1:]]
    test = [line.split("\t") for line in (qrels / "test.tsv").read_text().splitlines()[1:]]
    assert len(train) == 4 and all(g == "3" for _, _, g in train)  # one known positive, the best graded
    assert len(hidden) == 8 and len(test) == 12
    assert {q for q, _, _ in train} == set(setup["known"]) and {q for q, _, _ in train}.isdisjoint(q for q, _, _ in test)
    assert setup["hidden_positives"] == 8 and setup["test_queries"] == 4


def test_false_negatives_counts_hidden_documents_among_the_training_negatives(tmp_path):
    setup = {
        "data": tmp_path,
        "known": {"1": "a"},
        "hidden": {"1": ["b"]},
        "corpus": {"a": "doc a", "b": "doc b", "c": "doc c", "d": "doc d"},
    }
    (tmp_path / "queries.jsonl").write_text(json.dumps({"_id": "1", "text": "query one"}) + "\n")
    file = tmp_path / "triplets.parquet"
    pq.write_table(pa.table({"anchor": ["query one"] * 3, "positive": ["doc a"] * 3, "negative": ["doc b", "doc c", "doc d"]}), file)
    fn = bench.false_negatives(file, setup)
    assert (fn["negatives"], fn["false_negatives"], fn["pairs"]) == (3, 1, 1)
    assert fn["false_negative_rate"] == pytest.approx(1 / 3)


def test_paired_comparison_by_hand():
    a = {1: 0.50, 2: 0.52, 3: 0.49, 4: 0.55}
    b = {1: 0.48, 2: 0.50, 3: 0.50, 4: 0.51, 5: 0.40}  # seed 5 has no pair: left out
    cmp = report.paired(a, b)
    diffs = [0.02, 0.02, -0.01, 0.04]
    assert cmp["seeds"] == [1, 2, 3, 4] and (cmp["wins"], cmp["losses"], cmp["ties"]) == (3, 1, 0)
    assert cmp["mean"] == pytest.approx(sum(diffs) / 4)
    assert cmp["std"] == pytest.approx(math.sqrt(sum((d - 0.0175) ** 2 for d in diffs) / 3))
    from scipy import stats

    assert cmp["t_p"] == pytest.approx(stats.ttest_rel([a[s] for s in cmp["seeds"]], [b[s] for s in cmp["seeds"]]).pvalue)
    assert cmp["sign_p"] == pytest.approx(stats.binomtest(3, 4).pvalue)
    assert report.sign_test_p(5, 0) == pytest.approx(0.0625) and report.sign_test_p(0, 0) is None
    assert report.paired(a, {9: 0.1}) is None


def test_the_benchmark_runs_end_to_end_on_a_tiny_collection_and_resumes(tmp_path, monkeypatch):
    """Mining (hnmine and its derived runs), fine-tuning, measuring, the tables; a rerun runs no cell again."""
    root = tmp_path / "data"
    dense_beir(root)
    results = tmp_path / "results.json"
    argv = [
        "bench_downstream_dense.py",
        "--collections", "cranfield",
        "--arms", "untrained,in-batch,shifted,naive,auto",
        "--seeds", "1,2",
        "--data-root", str(root),
        "--work", str(tmp_path / "work"),
        "--results", str(results),
        "--epochs", "1", "--batch-size", "4", "--max-length", "32",
    ]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    bench.main()
    saved = json.loads(results.read_text())
    arms = saved["collections"]["cranfield"]["arms"]
    # auto has one known positive per query to calibrate on: it falls back to the default, the same file
    assert arms["auto"]["same_data_as"] == "shifted"
    assert sorted(saved["cells"]) == sorted(
        ["cranfield|untrained|None"] + [f"cranfield|{a}|{s}" for a in ("in-batch", "shifted", "naive") for s in (1, 2)]
    )
    assert arms["naive"]["negatives"] == 20 and 0 <= arms["naive"]["false_negative_rate"] <= 1
    assert set(saved["paired"]["cranfield"]["naive"]) == {"in-batch", "shifted"}  # auto has shifted's rows: not twice
    md = results.with_suffix(".md").read_text()
    assert "auto (= shifted: the same training file)" in md and "| arm − shifted |" in md
    finished = {k: v["finished_at"] for k, v in saved["cells"].items()}
    bench.main()  # resumes: every cell is there
    assert {k: v["finished_at"] for k, v in json.loads(results.read_text())["cells"].items()} == finished
