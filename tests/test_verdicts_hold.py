"""A relevance verdict is never silently overridden (issue 23, items 3 and 4): a document judged relevant, by a
person, a file or the teacher, is never a negative — not drawn at random, not lost to another source, not lost
to a byte-order mark — and queries asked twice (two ids, one text) share their positives for exclusion.
Each test is a case that broke on main at 5bb8c03."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import TINY_DOCS, TINY_QRELS, TINY_QUERIES, invoke, mine_json, write_beir

from hnmine.journal import JudgmentLog

NAIVE = ["--method", "naive", "-n", "3", "--max-depth", "4", "--depth", "4"]


@pytest.fixture(scope="module")
def naive_tiny(tmp_path_factory) -> tuple[Path, Path]:
    """The tiny BEIR folder mined with naive top-3 of 4 candidates: q1's negatives are d10, d2, d11."""
    base = tmp_path_factory.mktemp("naive_tiny")
    data = write_beir(base / "tiny", TINY_DOCS, TINY_QUERIES, TINY_QRELS)
    mine_json(data, base / "run", *NAIVE)
    return data, base / "run"


@pytest.fixture
def run(naive_tiny, tmp_path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(naive_tiny[1], target)
    return target


def negatives(run: Path) -> set[tuple[str, str]]:
    return {(r["query_id"], r["doc_id"]) for r in pq.read_table(run / "negatives.parquet").to_pylist()}


def refilter(run: Path, *args) -> dict:
    result = invoke(["filter", "--out", run, "--json", "--quiet", *NAIVE, *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_the_fixture_has_the_negatives_the_cases_rely_on(run):
    assert {("q1", "d10"), ("q1", "d2"), ("q2", "d12")} <= negatives(run)


def test_a_document_judged_relevant_is_never_drawn_as_a_random_negative(run, tmp_path):
    """d4 is no candidate of q1; judged relevant, it was still drawn among q1's random negatives (the warning
    even said "they are not negatives")."""
    judged = tmp_path / "judged.tsv"
    judged.write_text("query-id\tcorpus-id\tscore\nq1\td4\t1\n")
    refilter(run, "--judgments", judged, "--random-negatives", "7")  # q1 has 7 documents outside its candidates
    random = {(r["query_id"], r["doc_id"]) for r in pq.read_table(run / "negatives.parquet").to_pylist() if r["is_random"]}
    assert ("q1", "d4") not in random
    assert len([p for p in random if p[0] == "q1"]) == 6  # every other document outside its candidates


def test_a_judgments_file_folds_with_the_runs_own_verdicts(run, tmp_path):
    """--judgments FILE replaced the run's human verdicts instead of folding with them: a document a person
    judged relevant in `hnmine review` came back as a negative."""
    log = JudgmentLog(run)
    log.judge("q1", "d10", 1)
    log.save()
    log.close()
    other = tmp_path / "other.tsv"
    other.write_text("query-id\tcorpus-id\tscore\nq2\td12\t0\n")
    summary = refilter(run, "--judgments", other)
    assert ("q1", "d10") not in negatives(run)
    assert summary["filter"]["judgments"]["human"]["new_positives"] == 1


def test_a_person_beats_a_judgments_file_on_the_same_pair(run, tmp_path):
    log = JudgmentLog(run)
    log.judge("q1", "d2", 1)
    log.save()
    log.close()
    other = tmp_path / "other.tsv"
    other.write_text("query-id\tcorpus-id\tscore\nq1\td2\t0\n")
    refilter(run, "--judgments", other)
    assert ("q1", "d2") not in negatives(run)


@pytest.mark.parametrize("text", ["\ufeffq1 0 d10 1\nq2 0 d12 1\n", "\ufeffq1\td10\t1\nq2\td12\t1\n"], ids=["trec", "beir-no-header"])
def test_a_byte_order_mark_does_not_eat_the_first_judgment(run, tmp_path, text):
    """A judgments file starting with a UTF-8 byte-order mark lost its first judgment (query id '\\ufeffq1')."""
    judged = tmp_path / "judged.txt"
    judged.write_text(text, encoding="utf-8")
    refilter(run, "--judgments", judged)
    assert not {("q1", "d10"), ("q2", "d12")} & negatives(run)


def test_queries_with_the_same_text_share_their_positives_for_exclusion(tmp_path):
    """q4 asks what q1 asks, and d10 is its positive: d10 was q1's negative, so the same anchor text trained
    with d10 as positive in one row and as negative in another."""
    queries = [*TINY_QUERIES, {"_id": "q4", "text": "How is  espresso made?"}]  # whitespace differs only
    data = write_beir(tmp_path / "data", TINY_DOCS, queries, [*TINY_QRELS, ("q4", "d10", 1)])
    summary = mine_json(data, tmp_path / "run", *NAIVE)
    neg = negatives(tmp_path / "run")
    assert ("q1", "d10") not in neg and ("q4", "d1") not in neg
    dropped = {(r["query_id"], r["doc_id"]): r["reason"] for r in pq.read_table(tmp_path / "run" / "dropped.parquet").to_pylist()}
    assert dropped[("q1", "d10")] == "positive_of_same_text_query"
    assert summary["filter"]["queries_sharing_text"] == 2
    triplets = pq.read_table(tmp_path / "run" / "export" / "triplet.parquet").to_pylist()
    by_anchor: dict[str, tuple[set, set]] = {}
    for row in triplets:
        pos, neg_texts = by_anchor.setdefault(" ".join(row["anchor"].split()), (set(), set()))
        pos.add(row["positive"])
        neg_texts.add(row["negative"])
    for pos, neg_texts in by_anchor.values():
        assert not pos & neg_texts


def test_a_positive_of_a_same_text_query_is_never_a_random_negative(tmp_path):
    queries = [*TINY_QUERIES, {"_id": "q4", "text": "How is espresso made?"}]
    data = write_beir(tmp_path / "data", TINY_DOCS, queries, [*TINY_QRELS, ("q4", "d4", 1)])
    mine_json(data, tmp_path / "run", *NAIVE, "--random-negatives", "7")
    assert ("q1", "d4") not in negatives(tmp_path / "run")
