"""Verdicts in the filter: a person's (hnmine review, --judgments) and the teacher's (--relabel), one rule."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import TINY_DOCS, TINY_QRELS, TINY_QUERIES, invoke, mine_json, reran, write_beir

DOC_IDS = [d["_id"] for d in TINY_DOCS]


@pytest.fixture(scope="module")
def controlled(tmp_path_factory):
    """The tiny collection with vectors chosen so that, for q1 (positive d1), d10 scores above the positive,
    d11 just below it, and the rest far below: every rule below acts on known scores."""
    base = tmp_path_factory.mktemp("verdicts")
    data = write_beir(base / "tiny", TINY_DOCS, TINY_QUERIES, TINY_QRELS)
    rng = np.random.default_rng(11)
    docs = rng.normal(size=(len(DOC_IDS), 32)).astype(np.float32)
    queries = rng.normal(size=(len(TINY_QUERIES), 32)).astype(np.float32)
    q1 = queries[0] / np.linalg.norm(queries[0])
    noise = rng.normal(size=32)
    noise -= noise @ q1 * q1
    noise /= np.linalg.norm(noise)
    for doc, cosine in (("d1", 0.80), ("d10", 0.90), ("d11", 0.79)):
        docs[DOC_IDS.index(doc)] = cosine * q1 + np.sqrt(1 - cosine**2) * noise
    np.save(base / "docs.npy", docs)
    np.save(base / "queries.npy", queries)
    args = ["--corpus-embeddings", base / "docs.npy", "--query-embeddings", base / "queries.npy", "--dedup-threshold", "2"]
    return data, args, base


def _rows(run, table, query="q1"):
    return [r for r in pq.read_table(run / table).to_pylist() if r["query_id"] == query]


def test_relabel_turns_the_candidate_above_the_best_positive_into_a_positive(controlled, tmp_path):
    data, args, _ = controlled
    run = tmp_path / "run"
    mine_json(data, run, *args, "--method", "naive", "--num-negatives", "3")
    assert "d10" in {r["doc_id"] for r in _rows(run, "negatives.parquet")}  # without --relabel: a negative
    summary = mine_json(data, run, *args, "--method", "naive", "--num-negatives", "3", "--relabel")
    assert reran(summary) == ["filter", "export"]
    assert {r["doc_id"]: r["origin"] for r in _rows(run, "positives.parquet")} == {"d1": "qrels", "d10": "relabelled"}
    assert "d10" not in {r["doc_id"] for r in _rows(run, "negatives.parquet")}
    assert {r["doc_id"]: r["reason"] for r in _rows(run, "dropped.parquet")}["d10"] == "relabelled_positive"
    triplets = pq.read_table(run / "export/triplet.parquet").to_pylist()
    d10 = next(d for d in TINY_DOCS if d["_id"] == "d10")
    assert any(t["positive"] == f"{d10['title']} {d10['text']}" for t in triplets)  # an extra (query, positive) row
    stats = json.loads((run / "manifests/filter.json").read_text())["stats"]
    assert stats["relabelled"] == stats["judgments"]["automatic"]["new_positives"] >= 1


def test_relabel_margin_and_cap(controlled, tmp_path):
    data, args, _ = controlled
    run = tmp_path / "run"
    mine_json(data, run, *args, "--method", "naive", "--relabel", "--relabel-margin", "0.2")
    assert {r["origin"] for r in _rows(run, "positives.parquet")} == {"qrels"}  # 0.90 is not 0.2 above 0.80
    mine_json(data, run, *args, "--method", "naive", "--relabel", "--relabel-margin", "-0.02", "--relabel-max", "1")
    assert {r["doc_id"] for r in _rows(run, "positives.parquet")} == {"d1", "d10"}  # d11 qualifies too, the cap keeps the best


def test_a_persons_verdicts_from_a_qrels_file(controlled, tmp_path):
    """Judged relevant: a positive; judged not relevant: exempt from the suspected-false-negative rules (here
    the shifted window, which otherwise skips the top candidates)."""
    data, args, _ = controlled
    run = tmp_path / "run"
    mine_json(data, run, *args, "--num-negatives", "1")  # shifted: ranks 11+ only
    assert "d10" not in {r["doc_id"] for r in _rows(run, "negatives.parquet")}
    verdicts = tmp_path / "verdicts.tsv"
    verdicts.write_text("query-id\tcorpus-id\tscore\nq1\td10\t0\nq1\td11\t2\n")
    summary = mine_json(data, run, *args, "--num-negatives", "1", "--judgments", verdicts)
    assert reran(summary) == ["filter", "export"]
    assert {r["doc_id"] for r in _rows(run, "negatives.parquet")} == {"d10"}  # exempt from the window: the best eligible
    origins = {r["doc_id"]: r["origin"] for r in _rows(run, "positives.parquet")}
    assert origins["d11"].startswith("judged:") and origins["d1"] == "qrels"
    assert {r["doc_id"]: r["reason"] for r in _rows(run, "dropped.parquet")}["d11"] == "judged_relevant"
    assert reran(mine_json(data, run, *args, "--num-negatives", "1", "--judgments", verdicts)) == []


def test_a_persons_verdict_beats_the_teachers(controlled, tmp_path):
    data, args, _ = controlled
    run = tmp_path / "run"
    verdicts = tmp_path / "verdicts.tsv"
    verdicts.write_text("query-id\tcorpus-id\tscore\nq1\td10\t0\n")
    mine_json(data, run, *args, "--method", "naive", "--relabel", "--judgments", verdicts)
    assert {r["doc_id"] for r in _rows(run, "positives.parquet")} == {"d1"}
    assert "d10" in {r["doc_id"] for r in _rows(run, "negatives.parquet")}


def test_a_review_verdict_reruns_only_filter_and_export_and_the_report_counts_it(controlled, tmp_path):
    from hnmine.journal import JudgmentLog

    data, args, _ = controlled
    run = tmp_path / "run"
    mine_json(data, run, *args, "--method", "naive")
    log = JudgmentLog(run)
    log.judge("q1", "d10", 1)
    log.save()
    summary = mine_json(data, run, *args, "--method", "naive")
    assert reran(summary) == ["filter", "export"]
    report = json.loads(invoke(["report", run, "--json"]).stdout)
    assert report["judgments"]["human"]["new_positives"] == 1 and report["judgments"]["automatic"]["new_positives"] == 0
    text = invoke(["report", run]).stdout
    assert "human verdicts: 1" in text


def test_positives_table_is_written_and_documented(finished_tiny):
    _, run = finished_tiny
    table = pq.read_table(run / "positives.parquet")
    assert table.column_names == ["query_id", "doc_id", "teacher_score", "origin"]
    assert set(table.column("origin").to_pylist()) == {"qrels"}
