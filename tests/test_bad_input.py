"""Bad input, through the real CLI (issue #6): a table of cases, each run twice.

Every failing case must exit 2 with one line `hnmine: error: ...` on stderr naming the file, column
or row, print no traceback, and leave the run directory as it was: it is run once against a copy of
a finished run (whose files must not change by a byte) and once with a fresh --out (which must not
be created). Cases that are warnings instead are tested for the warning and for a sane result; each
is listed in docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import (
    HNMINE,
    TINY_DOCS,
    TINY_QRELS,
    TINY_QUERIES,
    invoke,
    mine_json,
    snapshot,
    write_beir,
)

# --- helpers -------------------------------------------------------------------------------------


def beir(tmp: Path, docs=TINY_DOCS, queries=TINY_QUERIES, qrels=TINY_QRELS, name: str = "data") -> Path:
    return write_beir(tmp / name, docs, queries, qrels)


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def files(good: Path, corpus: Path | None = None, queries: Path | None = None, qrels: Path | None = None) -> list[str]:
    """--corpus/--queries/--qrels, the good tiny files except those given."""
    return [
        "--corpus",
        corpus or good / "corpus.jsonl",
        "--queries",
        queries or good / "queries.jsonl",
        "--qrels",
        qrels or good / "qrels" / "train.tsv",
    ]


def assert_clean_error(result, fragments: list[str]) -> str:
    """Exit 2, one line on stderr starting `hnmine: error:`, holding every fragment; no traceback."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    err = result.stderr.strip()
    assert "Traceback" not in err and "Traceback" not in result.stdout
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("hnmine: error: "), err
    for fragment in fragments:
        assert str(fragment) in lines[0], (fragment, lines[0])
    assert result.stdout == ""
    return lines[0]


def assert_fails_cleanly(tmp: Path, finished: tuple[Path, Path], args: list, fragments: list[str]) -> str:
    _, done = finished
    existing = tmp / "existing_run"
    shutil.copytree(done, existing)
    before = snapshot(existing)
    # --replace: the bad data is other data than the run's; without it the refusal to mix them would be the message
    message = assert_clean_error(invoke(["mine", *args, "--out", existing, "--replace"]), fragments)
    assert snapshot(existing) == before, "a failing command changed the run directory"
    fresh = tmp / "fresh_run"
    assert_clean_error(invoke(["mine", *args, "--out", fresh, "--quiet"]), fragments)
    assert not fresh.exists(), "a failing command created the run directory"
    return message


# --- failing cases: (id, builder(tmp, good data) -> (args, fragments)) ----------------------------

Case = Callable[[Path, Path], tuple[list, list[str]]]


def c_missing_folder(t, g):
    return [t / "nope"], [f"{t / 'nope'}: no such file or folder"]


def c_missing_file(t, g):
    return files(g, corpus=t / "nope.jsonl"), [f"{t / 'nope.jsonl'}: no such file (corpus)"]


def c_file_is_folder(t, g):
    (t / "adir").mkdir()
    return files(g, queries=t / "adir"), [f"{t / 'adir'}: is a folder, expected a queries file"]


def c_unknown_format(t, g):
    (t / "corpus.xml").write_text("<docs/>")
    return files(g, corpus=t / "corpus.xml"), [str(t / "corpus.xml"), "unknown file format '.xml'", "valid: .csv"]


def c_named_column_missing(t, g):
    return [g, "--doc-text-column", "body"], [str(g / "corpus.jsonl"), "no column 'body'", "(columns: _id, title, text)"]


def c_no_id_column(t, g):
    p = write_jsonl(t / "corpus.jsonl", [{"key": "d1", "text": "espresso"}])
    return files(g, corpus=p), [str(p), "no column 'document id", "(columns: key, text)"]


def c_headerless_qrels(t, g):
    p = t / "qrels.tsv"
    p.write_text("q1\td1\t1\n")
    return files(g, qrels=p), [str(p), "its first line (q1, d1, 1) is a judgment, not a header"]


def c_empty_file(t, g):
    p = t / "corpus.jsonl"
    p.write_text("")
    return files(g, corpus=p), [f"{p}: file is empty"]


def c_blank_lines_file(t, g):
    p = t / "queries.jsonl"
    p.write_text("\n   \n\n")
    return files(g, queries=p), [f"{p}: file is empty"]


def c_header_only_csv(t, g):
    p = t / "corpus.csv"
    p.write_text("_id,text\n")
    return files(g, corpus=p), [f"{p}: the corpus has no non-empty documents"]


def c_empty_parquet(t, g):
    p = t / "corpus.parquet"
    pq.write_table(pa.table({"_id": pa.array([], pa.string()), "text": pa.array([], pa.string())}), p)
    return files(g, corpus=p), [f"{p}: the corpus has no non-empty documents"]


def c_only_whitespace_docs(t, g):
    p = write_jsonl(t / "corpus.jsonl", [{"_id": "d1", "text": "   "}, {"_id": "d2", "title": "", "text": "\t\n"}])
    return files(g, corpus=p), [f"{p}: the corpus has no non-empty documents"]


def c_only_empty_queries(t, g):
    p = write_jsonl(t / "queries.jsonl", [{"_id": "q1", "text": " "}, {"_id": "q2", "text": None}])
    return files(g, queries=p), [f"{p}: no query has a non-empty text"]


def c_duplicate_doc_ids(t, g):
    p = write_jsonl(t / "corpus.jsonl", TINY_DOCS + [{"_id": "d3", "title": "Cold brew", "text": "Another text."}])
    return files(g, corpus=p), [str(p), f"row {len(TINY_DOCS) + 1}", "document id 'd3' appears twice with different texts"]


def c_duplicate_query_ids(t, g):
    p = write_jsonl(t / "queries.jsonl", TINY_QUERIES + [{"_id": "q2", "text": "something else"}])
    return files(g, queries=p), [str(p), "row 4", "query id 'q2' appears twice with different texts"]


def c_qrels_all_unknown_queries(t, g):
    p = t / "qrels.tsv"
    p.write_text("query-id\tcorpus-id\tscore\nx1\td1\t1\nx2\td5\t1\n")
    return files(g, qrels=p), [str(p), "no judgment names a query of", "wrong file or split?"]


def c_positives_all_absent(t, g):
    p = t / "qrels.tsv"
    p.write_text("query-id\tcorpus-id\tscore\nq1\tzz1\t1\nq2\tzz2\t1\n")
    return files(g, qrels=p), [str(p), "no positive judgment left"]


def c_no_positive_at_min_relevance(t, g):
    return [g, "--min-relevance", "3"], [str(g / "qrels" / "train.tsv"), "no positive judgment left", "--min-relevance"]


def c_non_utf8_jsonl(t, g):
    p = t / "corpus.jsonl"
    p.write_bytes(b'{"_id": "d1", "text": "ok"}\n{"_id": "d2", "text": "caf\xe9"}\n')
    return files(g, corpus=p), [f"{p}:2: not valid UTF-8"]


def c_non_utf8_tsv(t, g):
    p = t / "qrels.tsv"
    p.write_bytes(b"query-id\tcorpus-id\tscore\nq1\td1\t1\nq\xff2\td5\t1\n")
    return files(g, qrels=p), [f"{p}:3: not valid UTF-8", "column 'query-id'"]


def c_non_utf8_csv(t, g):
    p = t / "corpus.csv"
    p.write_bytes(b"_id,text\nd1,espresso\nd2,caf\xe9 cr\xe8me\n")
    return files(g, corpus=p), [f"{p}:3: not valid UTF-8", "column 'text'"]


def c_invalid_json(t, g):
    p = t / "queries.jsonl"
    p.write_text('{"_id": "q1", "text": "a"}\n{"_id": "q2", "text": \n')
    return files(g, queries=p), [f"{p}:2: invalid JSON"]


def c_json_not_object(t, g):
    p = t / "queries.jsonl"
    p.write_text('["q1", "a"]\n')
    return files(g, queries=p), [f"{p}:1: expected a JSON object, got list"]


def c_null_doc_id(t, g):
    p = write_jsonl(t / "corpus.jsonl", TINY_DOCS[:2] + [{"_id": None, "text": "x"}])
    return files(g, corpus=p), [str(p), "row 3", "document id column '_id' is missing (null/NaN)"]


def c_nan_doc_id_parquet(t, g):
    p = t / "corpus.parquet"
    pq.write_table(pa.table({"_id": [1.0, math.nan], "text": ["espresso", "tea"]}), p)
    return files(g, corpus=p), [str(p), "row 2", "document id column '_id' is missing (null/NaN)"]


def c_null_query_id(t, g):
    p = write_jsonl(t / "queries.jsonl", [{"_id": None, "text": "a question"}])
    return files(g, queries=p), [str(p), "row 1", "query id column '_id' is missing"]


def c_nan_qrels_doc_id(t, g):
    p = t / "qrels.csv"
    p.write_text("query-id,corpus-id,score\nq1,d1,1\nq2,,1\n")
    return files(g, qrels=p), [str(p), "row 2", "document id column 'corpus-id' is empty"]


def c_relevance_not_integer(t, g):
    p = t / "qrels.tsv"
    p.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td5\thigh\n")
    return files(g, qrels=p), [str(p), "row 2", "relevance column 'score' holds 'high', expected an integer"]


def c_relevance_nan(t, g):
    p = t / "qrels.parquet"
    pq.write_table(pa.table({"query-id": ["q1", "q2"], "corpus-id": ["d1", "d5"], "score": [1.0, math.nan]}), p)
    return files(g, qrels=p), [str(p), "row 2", "relevance column 'score' holds nan"]


def c_text_is_a_list(t, g):
    p = t / "corpus.parquet"
    pq.write_table(pa.table({"_id": ["d1", "d2"], "text": [["espresso"], ["tea"]]}), p)
    return files(g, corpus=p), [str(p), "row 1", "document text column 'text' holds a list, expected text"]


def c_corrupt_parquet(t, g):
    p = t / "corpus.parquet"
    p.write_bytes(b"PAR1 this is not parquet")
    return files(g, corpus=p), [f"{p}: not a readable Parquet file"]


def c_ragged_tsv(t, g):
    p = t / "qrels.tsv"
    p.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\textra\n")
    return files(g, qrels=p), [f"{p}: cannot parse", "Expected 3 columns, got 4"]


def c_pairs_empty_list(t, g):
    p = write_jsonl(t / "pairs.jsonl", [{"query": "how is espresso made", "positive": ["Pressure."]}, {"query": "q", "positive": []}])
    return [p], [str(p), "row 2", "positive column 'positive' is an empty list"]


def c_pairs_null_positive(t, g):
    p = write_jsonl(t / "pairs.jsonl", [{"query": "q", "positive": None}])
    return [p], [str(p), "row 1", "positive column 'positive' is missing or empty"]


def c_pairs_and_qrels(t, g):
    p = write_jsonl(t / "pairs.jsonl", [{"query": "q", "positive": "p"}])
    return [p, "--qrels", g / "qrels" / "train.tsv"], ["a pairs file replaces --queries and --qrels"]


def c_beir_without_corpus(t, g):
    (t / "folder").mkdir()
    return [t / "folder"], [f"{t / 'folder'}: no corpus file", "looked for corpus.jsonl"]


def c_several_splits(t, g):
    d = beir(t, name="splits")
    shutil.copy(d / "qrels" / "train.tsv", d / "qrels" / "dev.tsv")
    (d / "qrels" / "train.tsv").rename(d / "qrels" / "test.tsv")
    return [d], [f"{d}: several splits (dev, test); choose one with --split"]


def c_unknown_split(t, g):
    return [g, "--split", "validation"], [f"{g / 'qrels'}: no split 'validation' (splits: train)"]


def opt(*flags):
    def build(t, g):
        return [g, *flags], []

    return build


FAILING: list[tuple[str, Case, list[str]]] = [
    ("missing-data-folder", c_missing_folder, []),
    ("missing-file", c_missing_file, []),
    ("file-is-a-folder", c_file_is_folder, []),
    ("unknown-file-format", c_unknown_format, []),
    ("named-column-missing", c_named_column_missing, []),
    ("no-id-column", c_no_id_column, []),
    ("headerless-qrels", c_headerless_qrels, []),
    ("empty-file", c_empty_file, []),
    ("blank-lines-file", c_blank_lines_file, []),
    ("header-only-csv-corpus", c_header_only_csv, []),
    ("empty-parquet-corpus", c_empty_parquet, []),
    ("only-whitespace-documents", c_only_whitespace_docs, []),
    ("only-empty-queries", c_only_empty_queries, []),
    ("duplicate-doc-ids-different-texts", c_duplicate_doc_ids, []),
    ("duplicate-query-ids-different-texts", c_duplicate_query_ids, []),
    ("qrels-name-no-known-query", c_qrels_all_unknown_queries, []),
    ("positives-all-absent-from-corpus", c_positives_all_absent, []),
    ("no-positive-at-min-relevance", c_no_positive_at_min_relevance, []),
    ("non-utf8-jsonl", c_non_utf8_jsonl, []),
    ("non-utf8-tsv", c_non_utf8_tsv, []),
    ("non-utf8-csv", c_non_utf8_csv, []),
    ("invalid-json-line", c_invalid_json, []),
    ("json-line-not-object", c_json_not_object, []),
    ("null-doc-id", c_null_doc_id, []),
    ("nan-doc-id-parquet", c_nan_doc_id_parquet, []),
    ("null-query-id", c_null_query_id, []),
    ("empty-qrels-doc-id", c_nan_qrels_doc_id, []),
    ("relevance-not-integer", c_relevance_not_integer, []),
    ("relevance-nan", c_relevance_nan, []),
    ("text-is-a-list", c_text_is_a_list, []),
    ("corrupt-parquet", c_corrupt_parquet, []),
    ("ragged-tsv", c_ragged_tsv, []),
    ("pairs-empty-positive-list", c_pairs_empty_list, []),
    ("pairs-null-positive", c_pairs_null_positive, []),
    ("pairs-with-qrels", c_pairs_and_qrels, []),
    ("beir-folder-without-corpus", c_beir_without_corpus, []),
    ("several-splits", c_several_splits, []),
    ("unknown-split", c_unknown_split, []),
    # options
    ("range-min-equals-range-max", opt("--range-min", "3", "--range-max", "3"), ["--range-min (3) must be smaller than --range-max (3)"]),
    ("range-min-above-range-max", opt("--range-min", "5", "--range-max", "2"), ["--range-min (5) must be smaller than --range-max (2)"]),
    ("range-min-zero", opt("--range-min", "0", "--range-max", "3"), ["--range-min must be between 1 and 100,000, got 0"]),
    ("num-negatives-zero", opt("--num-negatives", "0"), ["--num-negatives must be between 1 and 1,000, got 0"]),
    ("num-negatives-negative", opt("--num-negatives", "-2"), ["--num-negatives must be between 1 and 1,000, got -2"]),
    ("depth-above-max-depth", opt("--depth", "300"), ["--depth (300) is larger than --max-depth (200)"]),
    ("margin-nan", opt("--margin", "nan"), ["margin must be a finite number, got nan"]),
    ("max-score-inf", opt("--max-score", "inf"), ["--max-score must be a finite number, got inf"]),
    ("min-score-minus-inf", opt("--min-score", "-inf"), ["--min-score must be a finite number, got -inf"]),
    ("relative-margin-nan", opt("--relative-margin", "nan"), ["--relative-margin must be a finite number"]),
    ("dedup-threshold-nan", opt("--dedup-threshold", "nan"), ["--dedup-threshold must be a finite number"]),
    ("temperature-zero", opt("--method", "sampled", "--temperature", "0"), ["--temperature must be above 0, got 0.0"]),
    ("max-length-zero", opt("--max-length", "0"), ["--max-length must be between 1 and 1,000,000, got 0"]),
    ("batch-size-zero", opt("--batch-size", "0"), ["--batch-size must be between 1 and 65,536, got 0"]),
    ("unknown-method", opt("--method", "best"), ["unknown method 'best' (valid: ", "naive", "simans"]),
    ("unknown-retriever", opt("--retriever", "sparse"), ["unknown retriever 'sparse' (valid: bm25, dense, hybrid)"]),
    ("unknown-format", opt("--format", "xml"), ["unknown export format 'xml' (valid: ", "triplet", "tevatron"]),
    ("unknown-file-format-option", opt("--file-format", "xml"), ["unknown file format 'xml' (valid: jsonl, parquet)"]),
    ("unknown-dtype", opt("--dtype", "int4"), ["unknown dtype 'int4' (valid: auto, bfloat16, float16, float32)"]),
    ("unknown-teacher-type", opt("--teacher-type", "oracle"), ["unknown teacher type 'oracle' (valid: bi-encoder, cross-encoder)"]),
    (
        "unknown-bm25-backend",
        opt("--retriever", "bm25", "--bm25-backend", "lucene"),
        ["unknown BM25 backend 'lucene' (valid: bm25s, rank-bm25)"],
    ),
    ("unknown-bm25-method", opt("--retriever", "bm25", "--bm25-method", "okapi"), ["unknown BM25 method 'okapi' (valid: "]),
    ("unknown-sampling", opt("--sampling", "greedy"), ["unknown sampling 'greedy' (valid: "]),
    ("unknown-positive-reference", opt("--positive-reference", "median"), ["unknown positive reference 'median' (valid: max, mean, min)"]),
    ("unknown-device", opt("--device", "tpu"), ["unknown device 'tpu' (valid: cpu, cuda, cuda:N, mps, or a list such as cuda:0,cuda:1)"]),
    ("missing-model-folder", opt("--model", "/no/such/model"), ["/no/such/model: no such model folder"]),
    ("min-recall-above-one", opt("--min-recall", "1.5"), ["--min-recall must be in (0, 1]"]),
    ("nprobe-zero", opt("--nprobe", "0"), ["--nprobe must be between 1 and 1,000,000, got 0"]),
    ("cross-encoder-without-model", opt("--teacher-type", "cross-encoder"), ["--teacher-type cross-encoder needs --teacher MODEL"]),
]


@pytest.mark.parametrize("case_id, build, extra", FAILING, ids=[c[0] for c in FAILING])
def test_failing_case(case_id, build, extra, tmp_path, finished_tiny):
    good, _ = finished_tiny
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    args, fragments = build(scratch, good)
    assert_fails_cleanly(tmp_path, finished_tiny, args, fragments + extra)


def test_the_battery_is_large_enough():
    assert len(FAILING) + len(WARNING_CASES) >= 30


# --- failing cases that need their own set-up ------------------------------------------------------


def test_out_is_a_file(tmp_path, finished_tiny):
    good, _ = finished_tiny
    target = tmp_path / "run.txt"
    target.write_text("not a run\n")
    assert_clean_error(invoke(["mine", good, "--out", target]), [f"{target}: is a file, not a run directory"])
    assert target.read_text() == "not a run\n"


def test_bad_config_file(tmp_path, finished_tiny):
    good, done = finished_tiny
    bad = tmp_path / "bad.toml"
    bad.write_text("num_negatives = [\n")
    assert_fails_cleanly(tmp_path, finished_tiny, [good, "--config", bad], [f"{bad}: not valid TOML"])


def test_real_process_prints_one_line_and_nothing_on_stdout(tmp_path, finished_tiny):
    """The installed console script, not the in-process runner: exit code, streams, no traceback."""
    good, _ = finished_tiny
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for args, expected in (
        ([str(tmp_path / "nope")], f"hnmine: error: {tmp_path / 'nope'}: no such file or folder"),
        ([str(good), "--retriever", "sparse"], "hnmine: error: unknown retriever 'sparse' (valid: bm25, dense, hybrid)"),
    ):
        proc = subprocess.run(
            [str(HNMINE), "mine", *args, "--out", str(tmp_path / "run")], capture_output=True, text=True, env=env, timeout=120
        )
        assert proc.returncode == 2
        assert proc.stdout == ""
        assert proc.stderr.strip() == expected
        assert not (tmp_path / "run").exists()


# Failures that can only show after the inputs stage: the inputs tables are written (they are
# valid), nothing later is created or changed.


def test_bm25_on_a_corpus_of_stopwords(tmp_path, finished_tiny):
    good, done = finished_tiny
    data = beir(
        tmp_path,
        docs=[{"_id": "d1", "text": "the"}, {"_id": "d2", "text": "a an of"}],
        queries=[{"_id": "q1", "text": "the"}],
        qrels=[("q1", "d1", 1)],
    )
    run = tmp_path / "run"
    shutil.copytree(done, run)
    before = snapshot(run)
    result = invoke(["mine", data, "--out", run, "--retriever", "bm25", "--quiet", "--replace"])
    assert_clean_error(result, ["the corpus has no word BM25 can index", "--retriever dense"])
    after = snapshot(run)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    # The index stage failed midway (its dense part was written before BM25 failed): its manifest
    # is the old one, so the half-made index is redone by the next run, never trusted.
    assert all(k.startswith(("inputs/", "index/", "cache/")) or k == "manifests/inputs.json" for k in changed), changed
    summary = mine_json(good, run, "--replace", "--retriever", "dense")
    assert summary["stages"][1]["skipped"] is False
    assert (run / "export/triplet.parquet").read_bytes() == (done / "export/triplet.parquet").read_bytes()


def test_corpus_embeddings_of_the_wrong_shape(tmp_path, finished_tiny):
    good, done = finished_tiny
    vectors = tmp_path / "vectors.npy"
    np.save(vectors, np.ones((3, 8), dtype=np.float32))
    run = tmp_path / "run"
    shutil.copytree(done, run)
    before = snapshot(run)
    result = invoke(["mine", good, "--out", run, "--corpus-embeddings", vectors, "--quiet"])
    assert_clean_error(result, [str(vectors), f"expected {len(TINY_DOCS)} vectors, one per row of the run's corpus table", "(3, 8)"])
    assert snapshot(run) == before  # the inputs were up to date: nothing was rewritten


def test_corpus_embeddings_not_finite(tmp_path, finished_tiny):
    good, done = finished_tiny
    vectors = np.ones((len(TINY_DOCS), 8), dtype=np.float32)
    vectors[4, 2] = np.nan
    path = tmp_path / "vectors.npy"
    np.save(path, vectors)
    run = tmp_path / "run"
    shutil.copytree(done, run)
    before = snapshot(run)
    assert_clean_error(invoke(["mine", good, "--out", run, "--corpus-embeddings", path, "--quiet"]), [f"{path}: holds non-finite values"])
    assert snapshot(run) == before


def test_teacher_gives_non_finite_scores(tmp_path, finished_tiny, monkeypatch):
    """A teacher (here: a patched bi-encoder) returning NaN: exit 2 naming the pair, scores untouched."""
    import hnmine.stages.score as score_mod

    good, done = finished_tiny
    run = tmp_path / "run"
    shutil.copytree(done, run)
    before = snapshot(run)
    real = score_mod._bi_encoder_scores

    def nan_scores(*args, **kwargs):
        s = real(*args, **kwargs)
        s[2] = np.nan
        return s

    monkeypatch.setattr(score_mod, "_bi_encoder_scores", nan_scores)
    message = assert_clean_error(
        invoke(["score", "--out", run, "--force", "--quiet"]), ["gave a non-finite score for query", "--dtype float32"]
    )
    table = pq.read_table(done / "scores.parquet")
    assert f"query {table['query_id'][2]} and document {table['doc_id'][2]}" in message
    assert snapshot(run) == before


# --- read-only and full output directories ----------------------------------------------------------


@contextlib.contextmanager
def mounted(target: Path, *commands: list[str]):
    """Run mount commands on `target` (skip the test where mounting is not allowed); unmount after."""
    target.mkdir(parents=True, exist_ok=True)
    done = 0
    try:
        for command in commands:
            proc = subprocess.run(["mount", *command, str(target)], capture_output=True, text=True)
            if proc.returncode != 0:
                pytest.skip(f"cannot mount here: {proc.stderr.strip().splitlines()[0] if proc.stderr.strip() else proc.returncode}")
            done += 1
        yield target
    finally:
        if done:
            subprocess.run(["umount", "-l", str(target)], capture_output=True)


def read_only(folder: Path):
    """A read-only view of `folder` for root (who writes through file modes): a read-only bind mount."""
    return mounted(folder, ["--bind", str(folder)], ["-o", "remount,ro,bind"])


def test_read_only_run_directory(tmp_path, finished_tiny):
    good, done = finished_tiny
    run = tmp_path / "ro"
    shutil.copytree(done, run)
    before = snapshot(run)
    if os.geteuid() != 0:
        for p in [run, *run.rglob("*")]:
            if p.is_dir():
                p.chmod(0o555)
        ctx = contextlib.nullcontext(run)
    else:  # root writes through file modes: make it a read-only bind mount instead
        ctx = read_only(run)
    try:
        with ctx:
            # A changed option, so some stage would have to write.
            result = invoke(["mine", good, "--out", run, "--num-negatives", "2"])
            assert_clean_error(result, [f"{run}: run directory is not writable"])
            assert snapshot(run) == before
    finally:
        for p in [run, *run.rglob("*")]:
            if p.is_dir():
                p.chmod(0o755)


def test_read_only_parent_of_a_new_run_directory(tmp_path, finished_tiny):
    good, _ = finished_tiny
    parent = tmp_path / "parent"
    parent.mkdir()
    with read_only(parent) if os.geteuid() == 0 else contextlib.nullcontext(parent):
        if os.geteuid() != 0:
            parent.chmod(0o555)
        result = invoke(["mine", good, "--out", parent / "new" / "run"])
        assert_clean_error(result, [f"{parent / 'new' / 'run'}: cannot create the run directory", "not writable"])
        assert not (parent / "new").exists()
    parent.chmod(0o755)


def test_full_disk(tmp_path, finished_tiny):
    """A stage that runs out of space: exit 2 naming the file, the earlier file kept, no partial file."""
    good, done = finished_tiny
    mount = tmp_path / "small"
    size = sum(p.stat().st_size for p in done.rglob("*") if p.is_file())
    with mounted(mount, ["-t", "tmpfs", "-o", f"size={size + (1 << 20)}", "tmpfs"]):
        run = mount / "run"
        shutil.copytree(done, run)
        before = snapshot(run)
        # Fill the disk, then ask for something that makes the filter stage write again.
        with open(mount / "filler", "wb") as fh:
            with contextlib.suppress(OSError):
                while True:
                    fh.write(b"\0" * 65536)
                    fh.flush()
        result = invoke(["mine", good, "--out", run, "--num-negatives", "2", "--quiet"])
        message = assert_clean_error(result, [str(run), "cannot write", "No space left on device"])
        assert "negatives.parquet" in message or "dropped.parquet" in message or "query_summary.parquet" in message
        assert snapshot(run) == before
        assert not [p for p in run.rglob("*.tmp")]


# --- warnings: a documented message and a sane result ----------------------------------------------


def warnings_of(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("warning: ")]


def mine_warn(data_args: list, run: Path, *args):
    result = invoke(["mine", *data_args, "--out", run, "--json", *args])
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result, json.loads(result.stdout)


def table(run: Path, rel: str, column: str) -> list:
    return pq.read_table(run / rel).column(column).to_pylist()


def w_empty_documents(t):
    docs = [dict(d) for d in TINY_DOCS]
    docs[3] = {"_id": "d4", "title": "", "text": "   \t "}
    docs[6] = {"_id": "d7", "title": None, "text": None}
    docs[7] = {"_id": "d8", "text": float("nan")}
    data = beir(t, docs=docs)
    return (
        [data],
        [f"{data / 'corpus.jsonl'}: 3 empty documents left out (d4, d7, d8)"],
        lambda run: set(table(run, "inputs/corpus.parquet", "doc_id")) == {d["_id"] for d in TINY_DOCS} - {"d4", "d7", "d8"},
    )


def w_empty_queries(t):
    queries = [{"_id": "q1", "text": "  "}, TINY_QUERIES[1], TINY_QUERIES[2], {"_id": "q4", "text": None}]
    data = beir(t, queries=queries, qrels=TINY_QRELS + [("q4", "d2", 1)])
    return (
        [data],
        [f"{data / 'queries.jsonl'}: 2 empty queries left out (q1, q4)"],
        lambda run: (
            table(run, "inputs/queries.parquet", "query_id") == ["q2", "q3"]
            and not any("judgments name queries not in" in w for w in json.loads((run / "manifests/inputs.json").read_text())["warnings"])
        ),
    )


def w_duplicate_rows_same_text(t):
    data = beir(t, docs=TINY_DOCS + [TINY_DOCS[0]], queries=TINY_QUERIES + [TINY_QUERIES[0]])
    return (
        [data],
        [],
        lambda run: (
            table(run, "inputs/corpus.parquet", "doc_id") == [d["_id"] for d in TINY_DOCS]
            and table(run, "inputs/queries.parquet", "query_id") == ["q1", "q2", "q3"]
            and json.loads((run / "manifests/inputs.json").read_text())["stats"]["corpus_duplicate_rows"] == 1
        ),
    )


def w_qrels_unknown_queries(t):
    data = beir(t, qrels=TINY_QRELS + [("q99", "d1", 1), ("q98", "d2", 1)])
    return (
        [data],
        [f"{data / 'qrels' / 'train.tsv'}: 2 judgments name queries not in {data / 'queries.jsonl'} (q99, q98); left out"],
        lambda run: sorted(table(run, "inputs/qrels.parquet", "query_id")) == ["q1", "q2", "q3"],
    )


def w_qrels_unknown_documents(t):
    # q1 keeps one positive in the corpus; q2's only positive is absent: q2 is left out.
    data = beir(t, qrels=[("q1", "d1", 1), ("q1", "dX", 1), ("q2", "dY", 1), ("q3", "d9", 1)])
    qrels = data / "qrels" / "train.tsv"
    return (
        [data],
        [
            f"{qrels}: 2 judgments name documents not in the corpus (or empty ones) (dX, dY); left out",
            f"{qrels}: 1 queries have no judged document in the corpus (q2); left out",
        ],
        lambda run: (
            table(run, "inputs/queries.parquet", "query_id") == ["q1", "q3"] and "q2" not in table(run, "negatives.parquet", "query_id")
        ),
    )


def w_queries_without_positive(t):
    data = beir(t, qrels=[("q1", "d1", 1), ("q2", "d5", 0)])
    return (
        [data],
        [
            f"{data / 'qrels' / 'train.tsv'}: 1 judged queries have no positive at --min-relevance (q2); left out",
            f"{data / 'queries.jsonl'}: 1 queries have no judgment in {data / 'qrels' / 'train.tsv'} (q3); left out",
        ],
        lambda run: table(run, "inputs/queries.parquet", "query_id") == ["q1"],
    )


def w_positive_is_an_empty_document(t):
    docs = [dict(d) for d in TINY_DOCS]
    docs[0] = {"_id": "d1", "title": "", "text": " "}
    data = beir(t, docs=docs)
    return (
        [data],
        [f"{data / 'corpus.jsonl'}: 1 empty documents left out (d1)", "(d1); left out"],
        lambda run: "q1" not in table(run, "inputs/queries.parquet", "query_id"),
    )


def w_corpus_smaller_than_depth(t):
    data = beir(t)

    def sane(run):
        summary = pq.read_table(run / "query_summary.parquet").to_pylist()
        return (
            all(
                s["status"] == "short"
                and s["n_negatives"] + s["shortfall"] == 40
                and s["n_candidates"] == len(TINY_DOCS) - 1
                and s["n_negatives"] == table(run, "negatives.parquet", "query_id").count(s["query_id"]) >= 8
                for s in summary
            )
            and len(summary) == 3
        )

    return (
        [data, "--method", "naive", "--depth", "500", "--max-depth", "1000", "--num-negatives", "40"],
        ["3 queries have fewer than 40 negatives (see query_summary.parquet)"],
        sane,
    )


def w_numeric_ids(t):
    docs = [{"_id": i + 1, "title": d["title"], "text": d["text"]} for i, d in enumerate(TINY_DOCS)]
    queries = [{"_id": i + 1, "text": q["text"]} for i, q in enumerate(TINY_QUERIES)]
    data = beir(t, docs=docs, queries=queries, qrels=[("1", "1", 1), ("2", "5", 1), ("3", "9", 1)])
    return (
        [data],
        [],
        lambda run: (
            table(run, "inputs/corpus.parquet", "doc_id")[:3] == ["1", "2", "3"]
            and pq.read_table(run / "inputs/corpus.parquet").schema.field("doc_id").type == pa.string()
        ),
    )


def w_byte_order_mark(t):
    data = beir(t)
    raw = (data / "corpus.jsonl").read_bytes()
    (data / "corpus.jsonl").write_bytes(b"\xef\xbb\xbf" + raw)
    (data / "queries.jsonl").write_bytes(b"\xef\xbb\xbf" + (data / "queries.jsonl").read_bytes())
    return [data], [], lambda run: table(run, "inputs/corpus.parquet", "doc_id")[0] == "d1"


def w_pairs_positive_as_string(t):
    p = write_jsonl(
        t / "pairs.jsonl",
        [
            {"query": "How is espresso made?", "positive": "Espresso is brewed by forcing hot water through coffee."},
            {"query": "Bike chain care?", "positive": ["Clean the chain.", "Lubricate the chain every few hundred kilometres."]},
        ],
    )
    extra = write_jsonl(t / "extra.jsonl", [{"_id": d["_id"], "text": d["text"]} for d in TINY_DOCS])
    return (
        [p, "--corpus", extra],
        [],
        lambda run: (
            # a string is one positive (never a list of characters); a list is several
            sorted(
                pq.read_table(run / "inputs/qrels.parquet")
                .group_by("query_id")
                .aggregate([("doc_id", "count")])
                .column("doc_id_count")
                .to_pylist()
            )
            == [1, 2]
            and "Espresso is brewed by forcing hot water through coffee." in table(run, "inputs/corpus.parquet", "text")
        ),
    )


def w_pairs_json_list_in_csv(t):
    p = t / "pairs.csv"
    p.write_text(
        'query,positive\n"How is espresso made?","[""Hot water under pressure."", ""Finely ground coffee.""]"\n'
        '"Bike chain care?","Clean it, then oil it."\n',
        encoding="utf-8",
    )
    return (
        [p, "--retriever", "bm25"],
        [],
        lambda run: (
            sorted(table(run, "inputs/corpus.parquet", "text"))
            == ["Clean it, then oil it.", "Finely ground coffee.", "Hot water under pressure."]
        ),
    )


WARNING_CASES = [
    ("empty-whitespace-none-nan-documents", w_empty_documents),
    ("empty-and-null-queries", w_empty_queries),
    ("duplicate-ids-with-the-same-text", w_duplicate_rows_same_text),
    ("qrels-name-unknown-queries", w_qrels_unknown_queries),
    ("positives-absent-from-corpus", w_qrels_unknown_documents),
    ("queries-without-positive", w_queries_without_positive),
    ("positive-is-an-empty-document", w_positive_is_an_empty_document),
    ("corpus-smaller-than-depth-and-negatives", w_corpus_smaller_than_depth),
    ("numeric-ids", w_numeric_ids),
    ("utf8-byte-order-mark", w_byte_order_mark),
    ("pairs-positive-given-as-string", w_pairs_positive_as_string),
    ("pairs-json-list-in-a-csv-cell", w_pairs_json_list_in_csv),
]


@pytest.mark.parametrize("case_id, build", WARNING_CASES, ids=[c[0] for c in WARNING_CASES])
def test_warning_case(case_id, build, tmp_path):
    args, expected, sane = build(tmp_path)
    run = tmp_path / "run"
    result, summary = mine_warn(args, run)
    got = warnings_of(result)
    for w in expected:
        assert any(w in line for line in got), (w, got)
    # Input warnings are kept in the inputs manifest too.
    recorded = json.loads((run / "manifests/inputs.json").read_text())["warnings"]
    for w in expected:
        if "negatives (see query_summary" not in w:
            assert any(w in r for r in recorded), (w, recorded)
    assert sane(run)
    assert (run / summary["export"]).exists() if summary["export"] else True
    # The positives never appear among a query's negatives, whatever was left out.
    positives = set(zip(table(run, "inputs/qrels.parquet", "query_id"), table(run, "inputs/qrels.parquet", "doc_id")))
    negatives = set(zip(table(run, "negatives.parquet", "query_id"), table(run, "negatives.parquet", "doc_id")))
    assert not positives & negatives


@pytest.mark.parametrize("megabytes", [pytest.param(1, id="1MB"), pytest.param(5, id="5MB", marks=pytest.mark.slow)])
def test_text_of_several_megabytes(tmp_path, megabytes):
    """A document of megabytes: read, indexed (the model truncates it), mined; no crash."""
    big = "Espresso machines force hot water through coffee. " * (20_000 * megabytes)
    assert len(big) >= megabytes * 1_000_000
    docs = TINY_DOCS + [{"_id": "big", "title": "A very long page", "text": big}]
    data = beir(tmp_path, docs=docs)
    run = tmp_path / "run"
    summary = mine_json(data, run, "--retriever", "bm25")
    assert summary["stages"][0]["counts"]["documents"] == len(TINY_DOCS) + 1
    corpus = pq.read_table(run / "inputs/corpus.parquet")
    assert len(corpus.column("text")[len(TINY_DOCS)].as_py()) == len(big)


def test_negative_teacher_scores(tmp_path, finished_tiny, monkeypatch):
    """Scores below zero (a teacher with another scale): the relative margin uses |s(p)|, so the
    threshold stays below the positive, and no positive becomes a negative."""
    import hnmine.stages.score as score_mod

    good, done = finished_tiny
    run = tmp_path / "run"
    shutil.copytree(done, run)
    real = score_mod._bi_encoder_scores
    monkeypatch.setattr(score_mod, "_bi_encoder_scores", lambda *a, **k: real(*a, **k) - 3.0)
    summary = mine_json(good, run, "--force", "--relative-margin", "0.02")
    scores = pq.read_table(run / "scores.parquet")
    assert max(scores.column("teacher_score").to_pylist()) < 0
    neg = pq.read_table(run / "negatives.parquet").to_pylist()
    assert neg, summary
    for row in neg:
        sp = row["positive_score"]
        assert sp < 0 and row["teacher_score"] < sp - abs(sp) * 0.02
    dropped = pq.read_table(run / "dropped.parquet").to_pylist()
    for row in dropped:
        if row["reason"] == "within_relative_margin_of_positive":
            assert row["teacher_score"] >= row["positive_score"] - abs(row["positive_score"]) * 0.02 - 1e-6


def test_run_directory_of_another_version(tmp_path, finished_tiny, monkeypatch):
    """Every stage key holds the hnmine version: a run made by another version is redone, not trusted,
    and gives the same export."""
    import hnmine.pipeline

    good, done = finished_tiny
    run = tmp_path / "run"
    monkeypatch.setattr(hnmine.pipeline, "__version__", "0.0.1")
    mine_json(good, run)
    assert json.loads((run / "manifests/index.json").read_text())["key"] != json.loads((done / "manifests/index.json").read_text())["key"]
    monkeypatch.undo()
    summary = mine_json(good, run)
    assert [s["skipped"] for s in summary["stages"]] == [False] * 6
    export = summary["export"]
    assert Path(export).read_bytes() == (done / Path(export).relative_to(run)).read_bytes()


def test_run_directory_of_other_inputs(tmp_path, finished_tiny):
    """--out pointing at a run of other data, with --replace: everything is redone; stale hidden positives go
    (--no-hide-positives: the run's options are otherwise kept). Without --replace it is refused (test_run_options)."""
    good, done = finished_tiny
    run = tmp_path / "run"
    other = beir(tmp_path, docs=TINY_DOCS[:10], qrels=[("q1", "d1", 1), ("q1", "d10", 1), ("q2", "d5", 1), ("q3", "d9", 1)], name="other")
    mine_json(other, run, "--hide-positives")
    assert (run / "inputs/hidden_qrels.parquet").exists()
    summary = mine_json(good, run, "--replace", "--no-hide-positives")
    assert [s["skipped"] for s in summary["stages"]] == [False] * 6
    assert not (run / "inputs/hidden_qrels.parquet").exists()
    for rel in ("inputs/corpus.parquet", "candidates.parquet", "scores.parquet", "negatives.parquet", "export/triplet.parquet"):
        assert (run / rel).read_bytes() == (done / rel).read_bytes(), rel


def test_damaged_or_foreign_manifests_are_not_trusted(tmp_path, finished_tiny):
    good, done = finished_tiny
    run = tmp_path / "run"
    shutil.copytree(done, run)
    (run / "manifests/retrieve.json").write_text("{ not json")
    (run / "manifests/filter.json").write_text("[1, 2, 3]\n")
    (run / "manifests/export.json").write_bytes(b"\xff\xfe")
    summary = mine_json(good, run)
    assert [s["stage"] for s in summary["stages"] if not s["skipped"]] == ["retrieve", "filter", "export"]
    assert (run / "export/triplet.parquet").read_bytes() == (done / "export/triplet.parquet").read_bytes()


def test_outputs_have_ordinary_permissions(finished_tiny):
    _, done = finished_tiny
    mask = os.umask(0)
    os.umask(mask)
    for rel in ("export/triplet.parquet", "negatives.parquet", "manifests/export.json"):
        assert (done / rel).stat().st_mode & 0o777 == 0o666 & ~mask, rel


def test_hub_model_missing_offline(tmp_path, finished_tiny):
    """A model name that is neither a folder nor in the local Hugging Face cache (offline): the index
    stage fails with one line; the finished run is untouched (its inputs were up to date)."""
    good, done = finished_tiny
    run = tmp_path / "run"
    shutil.copytree(done, run)
    before = snapshot(run)
    result = invoke(["mine", good, "--out", run, "--model", "no-such-org/no-such-model", "--quiet"])
    assert_clean_error(result, ["cannot load model 'no-such-org/no-such-model'"])
    assert snapshot(run) == before
