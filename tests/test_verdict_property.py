"""The invariant every verdict source must keep (issue 23, item 3): for any mix of judgment sources (review
journals of several sessions with undos, judgments files with or without a byte-order mark, the teacher's
relabelling), random negatives, methods and export formats, no (query, document) that the winning verdict
judges relevant — nor a known positive, nor a positive of a query with the same text — is a negative in
negatives.parquet or in the training file. The winning verdict is computed here, independently of
hnmine.judgments: a person's latest live verdict beats a file's, a file's beats the teacher's.

Hypothesis draws the mixes over one mined run (the filter and export need no model). The Ray engine runs
one fixed mix of every source (tests/test_verdict_property.py::test_ray_keeps_every_verdict)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import invoke, mine_json, synthetic_beir, write_beir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hnmine.journal import JudgmentLog

N_DOCS, N_QUERIES = 30, 6
METHODS = ["naive", "shifted", "topk-abs", "topk-marginpos", "topk-percpos", "sampled", "top1-sampled", "simans", "auto"]
FORMATS = ["triplet", "n-tuple", "labeled-pair", "labeled-list", "flagembedding", "tevatron"]
DOC_IDS = [f"d{i}" for i in range(N_DOCS)]
QUERY_IDS = [f"q{i}" for i in range(N_QUERIES)] + ["q_same"]


@pytest.fixture(scope="module")
def mined(tmp_path_factory) -> tuple[Path, Path]:
    """A synthetic run: 30 documents, 6 queries, plus q_same asking q0's question with another positive."""
    base = tmp_path_factory.mktemp("verdict_property")
    data = synthetic_beir(base / "synth", N_DOCS, N_QUERIES)
    queries = [json.loads(line) for line in (data / "queries.jsonl").read_text().splitlines()]
    docs = [json.loads(line) for line in (data / "corpus.jsonl").read_text().splitlines()]
    qrels = [(f"q{i}", f"d{(3 * i) % N_DOCS}", 1) for i in range(N_QUERIES)] + [("q_same", "d1", 1)]
    data = write_beir(base / "data", docs, [*queries, {"_id": "q_same", "text": queries[0]["text"]}], qrels)
    mine_json(data, base / "run", "--method", "naive", "-n", "4", "--max-depth", "20", "--depth", "10")
    return data, base / "run"


pairs = st.tuples(st.sampled_from(QUERY_IDS), st.sampled_from(DOC_IDS))
verdict = st.tuples(pairs, st.integers(-1, 3))
journal_ops = st.lists(
    st.one_of(st.tuples(st.just("judge"), st.integers(0, 1), verdict), st.tuples(st.just("undo"), st.integers(0, 1))), max_size=12
)
mixes = st.fixed_dictionaries(
    {
        "journal": journal_ops,
        "file": st.lists(verdict, max_size=8),
        "bom": st.booleans(),
        "relabel": st.one_of(st.none(), st.floats(-0.2, 0.2, allow_nan=False)),
        "random": st.integers(0, 5),
        "method": st.sampled_from(METHODS),
        "format": st.sampled_from(FORMATS),
    }
)


def write_sources(run: Path, mix: dict, folder: Path) -> tuple[dict, list[str]]:
    """Carry out the mix's journal (two sessions, the first ended before the second starts its undos), write
    its judgments file; return the winning non-teacher verdicts {pair: relevance} and the filter flags."""
    sessions = [JudgmentLog(run, session="s0"), JudgmentLog(run, session="s1")]
    live: list[tuple[int, tuple[str, str], int]] = []  # (session, pair, relevance), oldest first
    for op in mix["journal"]:
        if op[0] == "judge":
            (q, d), rel = op[2]
            sessions[op[1]].judge(q, d, rel)
            live.append((op[1], (q, d), rel))
        else:
            sessions[op[1]].undo()  # both sessions are open: each withdraws its own latest verdict only
            own = [i for i, (s, _, _) in enumerate(live) if s == op[1]]
            if own:
                del live[own[-1]]
    for s in sessions:
        s.close()
    human = {pair: rel for _, pair, rel in live}  # the latest live verdict per pair
    flags = []
    file_verdicts: dict = {}
    if mix["file"]:
        lines = [f"{q}\t{d}\t{rel}" for (q, d), rel in mix["file"]]
        path = folder / "judged.tsv"
        path.write_text(("\ufeff" if mix["bom"] else "") + "query-id\tcorpus-id\tscore\n" + "\n".join(lines) + "\n", encoding="utf-8")
        for (q, d), rel in mix["file"]:
            file_verdicts[(q, d)] = rel  # within one file, the later row wins
        flags += ["--judgments", str(path)]
    winning = {**file_verdicts, **human}
    if mix["relabel"] is not None:
        flags += ["--relabel", "--relabel-margin", str(mix["relabel"])]
    flags += ["--random-negatives", str(mix["random"]), "--method", mix["method"], "--min-negatives", "0"]
    return winning, flags


def export_negatives(table, fmt: str) -> list[tuple[str, str]]:
    """(query text, negative text) of every negative a training file holds, whatever its shape."""
    rows = table.to_pylist()
    out = []
    for r in rows:
        if fmt == "triplet":
            out.append((r["anchor"], r["negative"]))
        elif fmt == "n-tuple":
            out += [(r["anchor"], v) for k, v in r.items() if k.startswith("negative_")]
        elif fmt == "labeled-pair":
            out += [(r["anchor"], r.get("passage", r.get("positive"))) for _ in [0] if r["label"] == 0]
        elif fmt == "labeled-list":
            out += [(r["anchor"], p) for p, label in zip(r.get("passages", r.get("positive")), r["labels"]) if label == 0]
        elif fmt == "flagembedding":
            out += [(r["query"], n) for n in r["neg"]]
        else:
            out += [(r["query"], (f"{n['title']} {n['text']}" if n["title"] else n["text"])) for n in r["negative_passages"]]
    return out


def forbidden_pairs(run: Path, winning: dict) -> set[tuple[str, str]]:
    """Every (query, document) that may not be a negative: relevant by the winning verdict, a positive the
    filter exports (known, judged or relabelled), or a positive of a query with the same text."""
    positives = {(r["query_id"], r["doc_id"]) for r in pq.read_table(run / "positives.parquet").to_pylist()}
    qrels = {(r["query_id"], r["doc_id"]) for r in pq.read_table(run / "inputs" / "qrels.parquet").to_pylist() if r["relevance"] >= 1}
    relevant = {p for p, rel in winning.items() if rel > 0 and p not in qrels} | qrels | positives
    texts = {r["query_id"]: r["text"] for r in pq.read_table(run / "inputs" / "queries.parquet").to_pylist()}
    out = set(relevant)
    for q, d in relevant:  # a query asked twice shares its positives
        out |= {(other, d) for other, t in texts.items() if t == texts.get(q)}
    return out


def check(run: Path, winning: dict, fmt: str) -> None:
    forbidden = forbidden_pairs(run, winning)
    negatives = {(r["query_id"], r["doc_id"]) for r in pq.read_table(run / "negatives.parquet").to_pylist()}
    assert not negatives & forbidden, sorted(negatives & forbidden)
    assert len(negatives) == pq.read_metadata(run / "negatives.parquet").num_rows  # no negative twice
    queries = {r["query_id"]: r["text"] for r in pq.read_table(run / "inputs" / "queries.parquet").to_pylist()}
    docs = {}
    for r in pq.read_table(run / "inputs" / "corpus.parquet").to_pylist():
        docs.setdefault(f"{r['title']} {r['text']}" if r["title"] else r["text"], r["doc_id"])
    export = next((run / "export").glob(f"{fmt}.*"))
    table = pq.read_table(export) if export.suffix == ".parquet" else _jsonl(export)
    for query_text, negative_text in export_negatives(table, fmt):
        doc = docs[negative_text]
        for q in (q for q, t in queries.items() if t == query_text):
            assert (q, doc) not in forbidden, (q, doc)


def _jsonl(path: Path):
    import pyarrow as pa

    return pa.Table.from_pylist([json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()])


def refilter(run: Path, flags: list[str], fmt: str, *extra: str) -> None:
    result = invoke(["filter", "--out", run, "--quiet", *flags, *extra])
    assert result.exit_code == 0, result.output
    result = invoke(["export", "--out", run, "--quiet", "--format", fmt, *extra])
    assert result.exit_code == 0, result.output


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(mix=mixes)
def test_no_verdict_of_relevance_is_ever_a_negative(mined, tmp_path_factory, mix):
    folder = tmp_path_factory.mktemp("mix")
    run = folder / "run"
    shutil.copytree(mined[1], run)
    winning, flags = write_sources(run, mix, folder)
    refilter(run, flags, mix["format"])
    check(run, winning, mix["format"])


@pytest.mark.parametrize("engine", ["ray"])
def test_ray_keeps_every_verdict(mined, tmp_path, engine):
    run = tmp_path / "run"
    shutil.copytree(mined[1], run)
    mix = {
        "journal": [("judge", 0, (("q0", "d5"), 1)), ("judge", 1, (("q1", "d7"), 2)), ("undo", 1), ("judge", 1, (("q2", "d8"), 1))],
        "file": [(("q3", "d2"), 1), (("q0", "d5"), 0), (("q4", "d11"), 1)],
        "bom": True,
        "relabel": 0.0,
        "random": 5,
        "method": "naive",
        "format": "triplet",
    }
    winning, flags = write_sources(run, mix, tmp_path)
    refilter(run, flags, "triplet", "--engine", engine)
    check(run, winning, "triplet")
