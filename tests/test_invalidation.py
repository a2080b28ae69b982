"""Cache invalidation (issue #6): one change at a time to a finished run; exactly the stages that
depend on it rerun (`hnmine mine --json`, `stages[].skipped`), and a rerun of the changed command
skips everything.

Every case starts from a copy of the session's finished tiny run (defaults: dense retriever, the
bundled bi-encoder as teacher, method `shifted`, triplet export) and of its data folder (the inputs
key holds file contents, not paths, so the copied folder is up to date).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import BUNDLED_MODEL, mine_json, reran

ALL = ["inputs", "index", "retrieve", "score", "filter", "export"]
FROM_INDEX = ALL[1:]
FROM_RETRIEVE = ALL[2:]
FILTER_EXPORT = ["filter", "export"]


@pytest.fixture
def copy_of_finished(tmp_path, finished_tiny) -> tuple[Path, Path]:
    data, run = finished_tiny
    shutil.copytree(data, tmp_path / "data")
    shutil.copytree(run, tmp_path / "run")
    # The same bytes at another path are the run's own inputs: the run follows them there (nothing reruns),
    # so an edit of the copy below is an edit of the run's inputs, not other data (hnmine.run_identity).
    assert reran(mine_json(tmp_path / "data", tmp_path / "run")) == []
    return tmp_path / "data", tmp_path / "run"


# What `--dtype auto` resolved to depends on the machine (it is measured): read it from the run.
AUTO_DTYPE, OTHER_DTYPE = "<the dtype auto chose>", "<another dtype>"


def _dtype_args(args: list[str], run: Path) -> list[str]:
    chosen = json.loads((run / "manifests/index.json").read_text())["models"]["dense"]["dtype"]
    other = "float32" if chosen != "float32" else "bfloat16"
    return [chosen if a == AUTO_DTYPE else other if a == OTHER_DTYPE else a for a in args]


OPTION_CASES = [
    # (id, options of the second run, stages that must rerun)
    ("nothing-changed", [], []),
    ("force", ["--force"], ALL),
    ("query-prompt", ["--query-prompt", "query: "], FROM_RETRIEVE),
    ("corpus-prompt", ["--corpus-prompt", "passage: "], FROM_INDEX),
    ("dtype", ["--dtype", OTHER_DTYPE], FROM_INDEX),
    ("dtype-that-auto-resolves-to", ["--dtype", AUTO_DTYPE], []),
    ("max-length", ["--max-length", "8"], FROM_INDEX),
    ("no-normalize", ["--no-normalize"], FROM_INDEX),
    # A vector does not depend on the texts batched with it (the embedding store's batching): no stage
    # of a bi-encoder run holds the batch size (with a cross-encoder teacher the score stage does).
    ("batch-size-changes-no-vector", ["--batch-size", "3"], []),
    ("device-spelled-out", ["--device", "cpu"], []),
    ("workers", ["--workers", "2"], []),
    # Hybrid candidates add BM25's; on this data the filter then keeps the same negatives, so export,
    # keyed on what it reads, reruns only if the filter's tables changed.
    ("retriever-hybrid", ["--retriever", "hybrid"], ["index", "retrieve", "score", "filter", "export?"]),
    ("max-depth", ["--method", "naive", "--depth", "4", "--max-depth", "4"], FROM_RETRIEVE),
    ("min-relevance", ["--min-relevance", "2"], ["inputs", "retrieve", "score", "filter", "export"]),
    # Every tiny query has one positive: nothing is hidden, qrels.parquet keeps its bytes, and only the
    # stages that read what changed (the inputs themselves) rerun.
    ("hide-positives", ["--hide-positives"], ["inputs"]),
    # filter options: filter and export only
    ("num-negatives", ["--num-negatives", "2"], FILTER_EXPORT),
    ("method", ["--method", "naive"], FILTER_EXPORT),
    ("depth", ["--method", "naive", "--depth", "3"], FILTER_EXPORT),
    ("min-negatives", ["--min-negatives", "2"], FILTER_EXPORT),
    ("range-window", ["--range-min", "2", "--range-max", "6"], FILTER_EXPORT),
    ("max-score", ["--method", "topk-abs", "--max-score", "0.2"], FILTER_EXPORT),
    ("min-score", ["--method", "naive", "--min-score", "0.1"], FILTER_EXPORT),
    ("margin", ["--method", "topk-marginpos", "--margin", "0.4"], FILTER_EXPORT),
    ("relative-margin", ["--method", "topk-percpos", "--relative-margin", "0.5"], FILTER_EXPORT),
    ("sampling", ["--method", "naive", "--sampling", "random", "--num-negatives", "3"], FILTER_EXPORT),
    ("positive-reference", ["--method", "topk-marginpos", "--margin", "0.3", "--positive-reference", "max"], FILTER_EXPORT),
    ("dedup-threshold", ["--method", "naive", "--dedup-threshold", "0.3"], FILTER_EXPORT),
    ("random-negatives", ["--random-negatives", "2"], FILTER_EXPORT),
    # export options: export only
    ("format", ["--format", "n-tuple"], ["export"]),
    ("with-scores", ["--with-scores"], ["export"]),
    ("file-format", ["--file-format", "jsonl"], ["export"]),
]


@pytest.mark.parametrize("case_id, args, expected", OPTION_CASES, ids=[c[0] for c in OPTION_CASES])
def test_option_change_reruns_exactly(case_id, args, expected, copy_of_finished):
    data, run = copy_of_finished
    args = _dtype_args(args, run)
    filter_outputs = ("negatives.parquet", "query_summary.parquet", "positives.parquet")  # what export reads of them
    before = {p: (run / p).read_bytes() for p in filter_outputs}
    summary = mine_json(data, run, *args)
    if "export?" in expected:
        changed = any((run / p).read_bytes() != before[p] for p in filter_outputs)
        expected = [s for s in expected if s != "export?"] + (["export"] if changed else [])
    assert reran(summary) == expected
    again = mine_json(data, run, *[a for a in args if a != "--force"])
    assert reran(again) == [], "a second identical run must skip every stage"


def test_seed_reruns_only_sampling_stages(copy_of_finished):
    """--seed feeds the filter's samplers (and hidden positives): a deterministic method reruns the
    filter, which writes the same bytes, so export is skipped."""
    data, run = copy_of_finished
    assert reran(mine_json(data, run, "--seed", "7")) == ["filter"]
    summary = mine_json(data, run, "--method", "sampled", "--seed", "7")
    assert reran(summary) == FILTER_EXPORT
    summary = mine_json(data, run, "--method", "sampled", "--seed", "8")
    assert reran(summary) == FILTER_EXPORT


def test_another_model(copy_of_finished, tmp_path):
    """A copy of the bundled model whose max_seq_length is changed gives other vectors: everything
    from the index on reruns; the same folder again skips everything."""
    data, run = copy_of_finished
    model = tmp_path / "other-model"
    shutil.copytree(BUNDLED_MODEL, model)
    cfg = model / "sentence_bert_config.json"
    conf = json.loads(cfg.read_text())
    conf["max_seq_length"] = 6
    cfg.write_text(json.dumps(conf))
    summary = mine_json(data, run, "--model", model)
    assert reran(summary) == FROM_INDEX
    manifest = json.loads((run / "manifests/index.json").read_text())
    assert manifest["models"]["dense"]["path"] == str(model.resolve())
    assert manifest["models"]["dense"]["revision"].startswith("local:")
    assert reran(mine_json(data, run, "--model", model)) == []


def edit_byte(path: Path, old: bytes, new: bytes) -> None:
    raw = path.read_bytes()
    assert raw.count(old) == 1, old
    path.write_bytes(raw.replace(old, new))


BYTE_CASES = [
    # (id, file, old bytes, new bytes, stages that must rerun)
    ("corpus-text", "corpus.jsonl", b"every few hundred", b"every few hundreD", ALL),
    ("corpus-title", "corpus.jsonl", b'"Tyres"', b'"Tyrez"', ALL),
    ("queries-text", "queries.jsonl", b"my bike chain", b"my bike chaiN", ["inputs", "retrieve", "score", "filter", "export"]),
    # A grade is in qrels.parquet (retrieve and score read it) but not in scores.parquet: the filter,
    # which reads scores, and export are not redone.
    ("qrels-grade", "qrels/train.tsv", b"q3\td9\t2", b"q3\td9\t3", ["inputs", "retrieve", "score"]),
    # Bytes that change no normalised table: the inputs stage reruns and writes the same tables.
    ("corpus-json-spacing", "corpus.jsonl", b'{"_id": "d6", ', b'{"_id":  "d6", ', ["inputs"]),
    (
        "queries-json-key-order",
        "queries.jsonl",
        b'{"_id": "q1", "text": "How is espresso made?"}',
        b'{"text": "How is espresso made?", "_id": "q1"}',
        ["inputs"],
    ),
]


@pytest.mark.parametrize("case_id, rel, old, new, expected", BYTE_CASES, ids=[c[0] for c in BYTE_CASES])
def test_one_changed_byte_of_an_input(case_id, rel, old, new, expected, copy_of_finished):
    data, run = copy_of_finished
    edit_byte(data / rel, old, new)
    summary = mine_json(data, run)
    assert reran(summary) == expected
    assert reran(mine_json(data, run)) == []


def test_same_bytes_at_another_path_reruns_nothing(copy_of_finished, tmp_path):
    data, run = copy_of_finished
    moved = tmp_path / "elsewhere" / "data"
    shutil.copytree(data, moved)
    assert reran(mine_json(moved, run)) == []


def test_stage_commands_rerun_only_themselves(copy_of_finished):
    """`hnmine filter` / `hnmine export` with changed options touch only their own stage."""
    from conftest import invoke

    data, run = copy_of_finished
    before = {p: (run / p).read_bytes() for p in ("candidates.parquet", "scores.parquet", "manifests/score.json")}
    result = invoke(["filter", "--out", run, "--num-negatives", "2", "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    assert reran(json.loads(result.stdout)) == ["filter"]
    result = invoke(["export", "--out", run, "--format", "labeled-pair", "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    assert reran(json.loads(result.stdout)) == ["export"]
    assert before == {p: (run / p).read_bytes() for p in before}
    assert pq.read_table(run / "export/labeled-pair.parquet").num_rows > 0
